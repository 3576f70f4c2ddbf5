# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every Molecule assertion is a string: an unquoted `x: y` in a `that:` list is read by YAML as a
mapping, which ansible.builtin.assert takes as true whatever it says (a probe that cannot fail)."""

from __future__ import annotations

import pathlib

import pytest
import yaml

MOLECULE = pathlib.Path(__file__).resolve().parents[2] / "extensions" / "molecule"


def assertions(node, where):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "that":
                for item in value if isinstance(value, list) else [value]:
                    yield where, item
            yield from assertions(value, where)
    elif isinstance(node, list):
        for item in node:
            yield from assertions(item, where)


FILES = sorted(MOLECULE.rglob("*.yml"))


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(MOLECULE)) for p in FILES])
def test_every_assertion_is_a_string(path):
    found = list(assertions(yaml.safe_load(path.read_text(encoding="utf-8")), path.name))
    bad = [item for _where, item in found if not isinstance(item, str)]
    assert not bad, "%s: assertions YAML did not read as strings (quote them): %s" % (path, bad)
