# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load the bundle image's Python programs (not a package: they are copied into the image)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

BUNDLE = pathlib.Path(__file__).resolve().parents[3] / "images" / "bundle"


def load(name, filename):
    spec = importlib.util.spec_from_file_location(name, BUNDLE / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bottle_init():
    return load("bottle_init_under_test", "bottle_init.py")


@pytest.fixture
def bottle_health():
    return load("bottle_health_under_test", "bottle_health.py")


@pytest.fixture
def git_gate():
    return load("git_gate_under_test", "git_gate.py")


@pytest.fixture
def supervise():
    return load("supervise_under_test", "supervise.py")
