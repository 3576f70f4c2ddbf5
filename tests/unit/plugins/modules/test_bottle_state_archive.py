# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_state state=absent with archive_root: the audit goes to the archive before the state goes."""

from __future__ import annotations

import errno
import json
import os
from unittest import mock

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import audit_archive
from ansible_collections.botbottle.bottle.plugins.modules import bottle_state
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import Failed, run_module


def launched(tmp_path):
    run_module(bottle_state, None, {"slug": "demo", "state_root": str(tmp_path / "state"),
                                    "policy": {"allowed_domains": ["api.anthropic.com"]},
                                    "meta": {"slug": "demo", "agent": "demo", "created": "t1"}})
    root = tmp_path / "state" / "demo"
    (root / "supervise" / "proposals").mkdir(parents=True)
    (root / "supervise" / "audit.jsonl").write_text('{"event": "proposed"}\n')
    (root / "audit" / "egress.jsonl").write_text('{"host": "x.example", "action": "block"}\n')
    return root


def absent(tmp_path, check=False, **extra):
    args = {"slug": "demo", "state_root": str(tmp_path / "state"), "state": "absent",
            "archive_root": str(tmp_path / "archive")}
    args.update(extra)
    return run_module(bottle_state, None, args, check=check)


def test_absent_archives_then_removes(tmp_path):
    root = launched(tmp_path)
    old = tmp_path / "archive" / "gone-20200101T000000Z"
    old.mkdir(parents=True)
    result = absent(tmp_path, archive_keep_days=30)
    assert result["changed"] and not root.exists()
    archive = result["archive"]
    assert archive["files"] == ["supervise/audit.jsonl", "audit/egress.jsonl"]
    assert archive["pruned"] == [str(old)] and not old.exists()
    assert open(os.path.join(archive["path"], "audit", "egress.jsonl")).read().count("block") == 1
    assert json.load(open(os.path.join(archive["path"], "meta.json")))["agent"] == "demo"
    # gone already: nothing to archive, nothing changes
    again = absent(tmp_path)
    assert not again["changed"] and again["archive"] == {"path": None, "files": [], "skipped": [], "pruned": []}


def test_check_mode_reports_and_removes_nothing(tmp_path):
    root = launched(tmp_path)
    old = tmp_path / "archive" / "gone-20200101T000000Z"
    old.mkdir(parents=True)
    result = absent(tmp_path, check=True, archive_keep=1)
    assert result["changed"] and root.is_dir() and old.is_dir()
    assert result["archive"]["path"].startswith(str(tmp_path / "archive" / "demo-"))
    assert result["archive"]["pruned"] == [str(old)]
    assert os.listdir(str(tmp_path / "archive")) == ["gone-20200101T000000Z"]


def test_unreadable_audit_fails_and_keeps_the_state(tmp_path):
    root = launched(tmp_path)
    blocked = str(root / "supervise" / "audit.jsonl")
    real_open = os.open

    def fake_open(path, flags, *args):
        if path == blocked:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args)

    for check in (True, False):
        with mock.patch.object(audit_archive.os, "open", fake_open):
            with pytest.raises(Failed) as err:
                absent(tmp_path, check=check)
        msg = err.value.result["msg"]
        assert msg.startswith("bottle demo: cannot read supervise/audit.jsonl (Permission denied)")
        assert "bottle_archive=false" in msg
        assert root.is_dir() and not (tmp_path / "archive").exists()


def test_without_archive_root_nothing_is_archived(tmp_path):
    root = launched(tmp_path)
    result = run_module(bottle_state, None, {"slug": "demo", "state_root": str(tmp_path / "state"), "state": "absent"})
    assert result["changed"] and "archive" not in result and not root.exists()
    assert not (tmp_path / "archive").exists()


def test_negative_retention_is_refused(tmp_path):
    root = launched(tmp_path)
    with pytest.raises(Failed) as err:
        absent(tmp_path, archive_keep=-2)
    assert err.value.result["msg"].startswith("archive_keep: -2 is negative; use 0")
    assert root.is_dir()
