# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One owner per format: each test here fails when a second reader or a second definition comes back."""

from __future__ import annotations

import ast
import json
import pathlib

from ansible_collections.botbottle.bottle.plugins.module_utils import (
    audit_archive, audit_log, loopback, state_meta, supervise)

ROOT = pathlib.Path(__file__).resolve().parents[4]
TREES = ("plugins", "images/bundle", "console")


def _python_files():
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            if not path.is_symlink() and "__pycache__" not in path.parts:
                yield path


def _functions_named(name):
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                found.append(str(path.relative_to(ROOT)))
    return found


def test_one_meta_reader(tmp_path):
    assert _functions_named("read_meta") == ["plugins/module_utils/state_meta.py"]
    assert audit_log.read_meta is state_meta.read_meta is supervise.read_meta
    assert audit_log.META == audit_archive.META == state_meta.META
    assert state_meta.read_meta(str(tmp_path)) == {}
    (tmp_path / "meta.json").write_text("[1]")
    assert state_meta.read_meta(str(tmp_path)) == {}
    (tmp_path / "meta.json").write_text("{not json")
    assert state_meta.read_meta(str(tmp_path)) == {}
    (tmp_path / "meta.json").write_text(json.dumps({"slug": "demo", "loopback_address": "127.77.0.9"}))
    assert state_meta.read_meta(str(tmp_path))["slug"] == "demo"
    # loopback reads the same file through the same reader.
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "meta.json").write_text(json.dumps({"loopback_address": "127.77.0.9"}))
    assert loopback.meta_addresses(str(tmp_path)) == {"127.77.0.9": ["demo"]}


def test_console_reads_through_module_utils_only():
    for path in sorted((ROOT / "console").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "plugins.modules" not in text and "plugins/modules" not in text, path
