# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operator writes into supervise's store (a folder the supervise daemon's uid can write) without following
a symlink planted there: a taken-over supervise must not get the operator's ~/.bashrc appended to."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as supervise
from ansible_collections.botbottle.bottle.plugins.module_utils.supervise_store import SuperviseError

ID = "0123456789abcdef"
EVENT = {"event": "approved", "by": "operator", "id": ID, "kind": "domain", "note": "ok"}


@pytest.fixture
def store(tmp_path):
    (tmp_path / "state" / "supervise" / "proposals").mkdir(parents=True)
    return tmp_path / "state"


@pytest.fixture
def bashrc(tmp_path):
    """The operator's file a symlink points at."""
    path = tmp_path / "home" / ".bashrc"
    path.parent.mkdir()
    path.write_text("export PATH=$HOME/bin:$PATH\n")
    return path


def test_append_audit_appends_lines(store):
    supervise.append_audit(str(store), EVENT)
    supervise.append_audit(str(store), dict(EVENT, note="again"))
    lines = (store / "supervise" / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["note"] for line in lines] == ["ok", "again"]


def test_append_audit_refuses_a_symlink_and_leaves_its_target(store, bashrc):
    audit = store / "supervise" / "audit.jsonl"
    audit.symlink_to(bashrc)
    with pytest.raises(SuperviseError) as err:
        supervise.append_audit(str(store), EVENT)
    assert str(err.value).startswith("%s is a symlink: not writing to it as the operator" % audit)
    assert "remove it" in str(err.value)
    assert bashrc.read_text() == "export PATH=$HOME/bin:$PATH\n"


def test_append_audit_refuses_a_dangling_symlink_without_creating_its_target(store, tmp_path):
    audit = store / "supervise" / "audit.jsonl"
    audit.symlink_to(tmp_path / "home" / ".profile")
    with pytest.raises(SuperviseError, match="is a symlink"):
        supervise.append_audit(str(store), EVENT)
    assert not (tmp_path / "home" / ".profile").exists()


def test_append_audit_refuses_what_is_not_a_regular_file(store):
    os.mkfifo(store / "supervise" / "audit.jsonl")
    with pytest.raises(SuperviseError, match="audit.jsonl is not a regular file"):
        supervise.append_audit(str(store), EVENT)


def test_append_audit_refuses_a_hard_link(store, bashrc):
    os.link(bashrc, store / "supervise" / "audit.jsonl")
    with pytest.raises(SuperviseError, match="audit.jsonl has 2 hard links"):
        supervise.append_audit(str(store), EVENT)
    assert bashrc.read_text() == "export PATH=$HOME/bin:$PATH\n"


def test_a_symlinked_store_is_refused(tmp_path, bashrc):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "supervise").symlink_to(bashrc.parent)
    with pytest.raises(SuperviseError, match="supervise is a symlink"):
        supervise.append_audit(str(tmp_path / "state"), EVENT)
    assert sorted(os.listdir(bashrc.parent)) == [".bashrc"]


def test_write_proposal_refuses_a_symlinked_proposals_folder(store, bashrc):
    proposals = store / "supervise" / "proposals"
    proposals.rmdir()
    proposals.symlink_to(bashrc.parent)
    with pytest.raises(SuperviseError) as err:
        supervise.write_proposal(str(store), {"id": ID, "kind": "domain", "status": "approved"})
    assert str(err.value).startswith("%s is a symlink" % proposals)
    assert sorted(os.listdir(bashrc.parent)) == [".bashrc"]


def test_write_proposal_replaces_a_symlink_at_its_name_without_writing_through_it(store, bashrc):
    path = store / "supervise" / "proposals" / (ID + ".json")
    path.symlink_to(bashrc)
    supervise.write_proposal(str(store), {"id": ID, "kind": "domain", "status": "approved"})
    assert not path.is_symlink()
    assert json.loads(path.read_text())["status"] == "approved"
    assert oct(path.stat().st_mode & 0o777) == oct(0o664)
    assert bashrc.read_text() == "export PATH=$HOME/bin:$PATH\n"
    assert [p.name for p in path.parent.iterdir()] == [ID + ".json"], "no temporary file left"
