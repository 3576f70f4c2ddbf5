# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""audit_archive on temporary folders: the layout, unreadable files, retention, dry runs."""

from __future__ import annotations

import datetime
import errno
import json
import os
import stat
from unittest import mock

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import audit_archive as aa

NOW = datetime.datetime(2026, 12, 2, 10, 15, 0, tzinfo=datetime.timezone.utc)
PROPOSAL_ID = "0123456789abcdef"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def state(tmp_path, slug="demo", egress=True):
    """A state directory laid out as a launched bottle's, with some audit."""
    root = tmp_path / "state" / slug
    write(root / "meta.json", json.dumps({"slug": slug, "agent": "demo", "policy": "demo", "backend": "docker",
                                          "created": "2026-12-01T09:00:00Z"}))
    write(root / "bundle" / "egress.json", "{}")            # configuration: not audit
    write(root / "private" / "egress" / "tokens.json", '{"T": "secret"}')
    write(root / "ca" / "bottle-ca.key", "KEY")
    write(root / "supervise" / "audit.jsonl", '{"event": "proposed", "id": "%s"}\n' % PROPOSAL_ID)
    write(root / "supervise" / "proposals" / (PROPOSAL_ID + ".json"), '{"id": "%s", "status": "pending"}' % PROPOSAL_ID)
    write(root / "supervise" / "proposals" / (PROPOSAL_ID + ".json.tmp"), "half")
    if egress:
        write(root / "audit" / "egress.jsonl", '{"host": "a.example", "action": "block"}\n')
    write(root / "supervise-approved.json", '{"domains": ["pypi.org"], "routes": []}')
    return root


def test_archive_keeps_the_audit_in_the_state_layout(tmp_path):
    root = state(tmp_path)
    made = aa.create(str(root), str(tmp_path / "archive"), "demo", host="laptop", now=NOW)
    path = tmp_path / "archive" / "demo-20261202T101500Z"
    assert made["path"] == str(path) and made["skipped"] == []
    got = sorted(os.path.relpath(os.path.join(d, f), str(path)) for d, _dirs, fs in os.walk(str(path)) for f in fs)
    assert got == ["audit/egress.jsonl", "meta.json", "supervise-approved.json", "supervise/audit.jsonl",
                   "supervise/proposals/%s.json" % PROPOSAL_ID]
    assert (path / "supervise" / "audit.jsonl").read_text() == (root / "supervise" / "audit.jsonl").read_text()
    meta = json.loads((path / "meta.json").read_text())
    assert meta == {"slug": "demo", "agent": "demo", "policy": "demo", "backend": "docker",
                    "created": "2026-12-01T09:00:00Z", "archived": "2026-12-02T10:15:00Z", "host": "laptop",
                    "state_dir": str(root), "files": made["files"], "skipped": []}
    # private to the operator; nothing half-written left beside it
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(str(path / "audit" / "egress.jsonl")).st_mode) == 0o600
    assert os.listdir(str(tmp_path / "archive")) == ["demo-20261202T101500Z"]
    # the same second again: a second archive beside the first, both listed newest first
    again = aa.create(str(root), str(tmp_path / "archive"), "demo", now=NOW)
    assert again["path"].endswith("demo-20261202T101500Z-2")
    assert [a["name"] for a in aa.list_archives(str(tmp_path / "archive"))] == [
        "demo-20261202T101500Z-2", "demo-20261202T101500Z"]


def test_no_audit_no_archive(tmp_path):
    root = tmp_path / "state" / "quiet"
    write(root / "meta.json", "{}")
    write(root / "bundle" / "egress.json", "{}")
    made = aa.create(str(root), str(tmp_path / "archive"), "quiet", now=NOW)
    assert made == {"path": None, "files": [], "skipped": []}
    assert not (tmp_path / "archive").exists()


def test_dry_run_writes_nothing_and_names_the_files(tmp_path):
    root = state(tmp_path)
    made = aa.create(str(root), str(tmp_path / "archive"), "demo", now=NOW, dry_run=True)
    assert made["path"] == str(tmp_path / "archive" / "demo-20261202T101500Z")
    assert "audit/egress.jsonl" in made["files"] and "supervise/audit.jsonl" in made["files"]
    assert not (tmp_path / "archive").exists()


def test_unreadable_file_is_named_and_nothing_is_written(tmp_path):
    root = state(tmp_path)
    blocked = str(root / "audit" / "egress.jsonl")
    real_open = os.open

    def fake_open(path, flags, *args):
        if path == blocked:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args)

    with mock.patch.object(aa.os, "open", fake_open):
        assert aa.plan(str(root))["unreadable"] == ["audit/egress.jsonl (Permission denied)"]
        for dry_run in (True, False):
            with pytest.raises(aa.ArchiveError) as err:
                aa.create(str(root), str(tmp_path / "archive"), "demo", now=NOW, dry_run=dry_run)
            assert "cannot read audit/egress.jsonl (Permission denied)" in str(err.value)
            assert "-e bottle_archive=false" in str(err.value)
    assert not (tmp_path / "archive").exists()


def test_unlistable_proposals_folder_is_named(tmp_path):
    root = state(tmp_path)
    folder = str(root / "supervise" / "proposals")
    real_listdir = os.listdir

    def fake_listdir(path):
        if path == folder:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_listdir(path)

    with mock.patch.object(aa.os, "listdir", fake_listdir):
        assert aa.plan(str(root))["unreadable"] == ["supervise/proposals/ (Permission denied)"]


def test_links_are_not_followed_but_reported(tmp_path):
    root = state(tmp_path, egress=False)
    outside = tmp_path / "operator-secret"
    outside.write_text("not for the archive")
    (root / "audit").mkdir()
    os.symlink(str(outside), str(root / "audit" / "egress.jsonl"))
    made = aa.create(str(root), str(tmp_path / "archive"), "demo", now=NOW)
    assert made["skipped"] == ["audit/egress.jsonl (a symbolic link, not followed)"]
    assert not os.path.lexists(os.path.join(made["path"], "audit", "egress.jsonl"))
    assert json.loads(open(os.path.join(made["path"], "meta.json")).read())["skipped"] == made["skipped"]


def test_archive_root_that_is_a_file_fails_cleanly(tmp_path):
    root = state(tmp_path)
    (tmp_path / "archive").write_text("in the way")
    with pytest.raises(aa.ArchiveError) as err:
        aa.create(str(root), str(tmp_path / "archive"), "demo", now=NOW)
    assert "is not a folder" in str(err.value) and "bottle_archive_root" in str(err.value)


def test_write_failure_leaves_no_partial_archive(tmp_path):
    root = state(tmp_path)
    real_copy = aa._copy

    def failing_copy(src, dest):
        if src.endswith("egress.jsonl"):
            raise OSError(errno.ENOSPC, "No space left on device", dest)
        real_copy(src, dest)

    with mock.patch.object(aa, "_copy", failing_copy):
        with pytest.raises(aa.ArchiveError) as err:
            aa.create(str(root), str(tmp_path / "archive"), "demo", now=NOW)
    assert "No space left on device" in str(err.value)
    assert os.listdir(str(tmp_path / "archive")) == []


def make_archive(root, name, archived=None):
    path = root / name
    path.mkdir(parents=True)
    meta = {"slug": aa.parse_name(name)[0]}
    if archived:
        meta["archived"] = archived
    (path / "meta.json").write_text(json.dumps(meta))
    return str(path)


def test_prune_by_age_and_count(tmp_path):
    root = tmp_path / "archive"
    old = make_archive(root, "a-20261001T000000Z")                              # age from its name: 62 days
    mid = make_archive(root, "b-20261125T000000Z", "2026-11-25T00:00:00Z")      # 7 days
    new = make_archive(root, "a-20261202T000000Z")
    (root / "not-an-archive").mkdir()
    (root / "notes.txt").write_text("kept")
    os.symlink(old, str(root / "c-20200101T000000Z"))                           # a link: never followed, never removed

    assert aa.prune(str(root), keep_days=0, keep=0, now=NOW) == ([], [])
    assert aa.prune(str(root), keep_days=30, now=NOW, dry_run=True) == ([old], [])
    assert os.path.isdir(old)
    assert aa.prune(str(root), keep_days=30, now=NOW) == ([old], [])
    assert not os.path.exists(old) and os.path.isdir(mid) and os.path.isdir(new)
    # count: the newest one stays; a protected one is never removed
    assert aa.prune(str(root), keep=1, now=NOW, protect=[mid]) == ([], [])
    assert aa.prune(str(root), keep=1, now=NOW) == ([mid], [])
    assert sorted(os.listdir(str(root))) == ["a-20261202T000000Z", "c-20200101T000000Z", "not-an-archive", "notes.txt"]
    # a dry run counts the archive about to be made as the newest
    assert aa.prune(str(root), keep=1, now=NOW, dry_run=True, pending=1) == ([new], [])
    with pytest.raises(aa.ArchiveError):
        aa.prune(str(root), keep_days=-1)


def test_list_archives_filters(tmp_path):
    root = tmp_path / "archive"
    make_archive(root, "demo-2-20261201T000000Z")
    make_archive(root, "demo-20261202T000000Z")
    assert [a["slug"] for a in aa.list_archives(str(root))] == ["demo", "demo-2"]
    assert [a["name"] for a in aa.list_archives(str(root), slug="demo-2")] == ["demo-2-20261201T000000Z"]
    assert aa.list_archives(str(tmp_path / "none")) == []


@pytest.mark.parametrize("name, parsed", [
    ("demo-20261202T101500Z", ("demo", NOW)),
    ("demo-x-20261202T101500Z-3", ("demo-x", NOW)),
    ("demo-20261202T101500Z-1", None),
    ("demo-20261302T101500Z", None),
    ("Demo-20261202T101500Z", None),
    (".demo-20261202T101500Z.partial", None),
])
def test_parse_name(name, parsed):
    assert aa.parse_name(name) == parsed
