# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""supervise's store reader: read_proposal and list_proposals trust only what supervise writes."""

from __future__ import annotations

import json

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as supervise
from ansible_collections.botbottle.bottle.plugins.module_utils.supervise_store import SuperviseError

ID = "0123456789abcdef"


def pid(n):
    return "%016x" % n


@pytest.fixture
def store(tmp_path):
    (tmp_path / "supervise" / "proposals").mkdir(parents=True)
    return tmp_path


def put(store, name, record):
    path = store / "supervise" / "proposals" / (name + ".json")
    path.write_text(record if isinstance(record, str) else json.dumps(record))
    return path


def proposal(proposal_id=ID, kind="domain", status="pending", **kw):
    return dict({"id": proposal_id, "kind": kind, "status": status, "created": "2026-01-01T00:00:00Z",
                 "host": "api.example.com"}, **kw)


def test_reads_a_proposal(store):
    put(store, ID, proposal())
    assert supervise.read_proposal(str(store), ID) == proposal()


def test_absent_proposal_is_none(store, tmp_path):
    assert supervise.read_proposal(str(store), ID) is None
    assert supervise.read_proposal(str(tmp_path / "no-bottle"), ID) is None


@pytest.mark.parametrize("bad", ["../../etc/passwd", "0123456789ABCDEF", "0123456789abcde", "p1", "", None, 7])
def test_bad_ids_are_refused_before_any_path_is_built(store, bad):
    with pytest.raises(SuperviseError, match="is not a proposal id: 16 hex characters"):
        supervise.read_proposal(str(store), bad)


def test_a_symlink_is_not_followed(store, tmp_path):
    target = tmp_path / "outside.json"
    target.write_text(json.dumps(proposal()))
    (store / "supervise" / "proposals" / (ID + ".json")).symlink_to(target)
    with pytest.raises(SuperviseError, match="not a regular file of at most 65536 bytes"):
        supervise.read_proposal(str(store), ID)


def test_an_oversized_file_is_not_read(store):
    put(store, ID, proposal(note="x" * supervise.MAX_PROPOSAL_BYTES))
    with pytest.raises(SuperviseError, match="not a regular file of at most 65536 bytes"):
        supervise.read_proposal(str(store), ID)


def test_invalid_json(store):
    put(store, ID, "{not json")
    with pytest.raises(SuperviseError, match="proposal %s is not valid JSON" % ID):
        supervise.read_proposal(str(store), ID)


@pytest.mark.parametrize("record", [[], "a string", proposal(proposal_id=pid(9)), {"kind": "domain"}])
def test_a_file_must_hold_its_own_proposal(store, record):
    put(store, ID, json.dumps(record))
    with pytest.raises(SuperviseError, match="proposal file %s.json does not hold proposal %s" % (ID, ID)):
        supervise.read_proposal(str(store), ID)


@pytest.mark.parametrize("kind, status", [("egress", "pending"), (None, "pending"), ("domain", "done"),
                                          ("route", None)])
def test_kinds_and_statuses_supervise_never_writes(store, kind, status):
    put(store, ID, proposal(kind=kind, status=status))
    with pytest.raises(SuperviseError, match="which supervise never writes"):
        supervise.read_proposal(str(store), ID)


def test_every_kind_and_status_reads(store):
    for n, (kind, status) in enumerate((k, s) for k in supervise.KINDS for s in supervise.STATUSES):
        put(store, pid(n), proposal(pid(n), kind=kind, status=status))
        assert supervise.read_proposal(str(store), pid(n))["kind"] == kind


def test_list_without_a_store_is_empty(tmp_path):
    assert supervise.list_proposals(str(tmp_path)) == ([], [])
    (tmp_path / "supervise").mkdir()
    (tmp_path / "supervise" / "proposals").write_text("a file, not a folder")
    assert supervise.list_proposals(str(tmp_path)) == ([], [])


def test_list_is_oldest_first_then_by_id_and_filters_by_status(store):
    put(store, pid(3), proposal(pid(3), created="2026-01-02T00:00:00Z"))
    put(store, pid(2), proposal(pid(2), created="2026-01-01T00:00:00Z", status="approved"))
    put(store, pid(1), proposal(pid(1), created="2026-01-02T00:00:00Z"))
    everything, problems = supervise.list_proposals(str(store))
    assert [p["id"] for p in everything] == [pid(2), pid(1), pid(3)] and problems == []
    pending, _problems = supervise.list_proposals(str(store), status="pending")
    assert [p["id"] for p in pending] == [pid(1), pid(3)]


def test_list_skips_other_names_and_reports_what_it_does_not_trust(store, tmp_path):
    put(store, pid(1), proposal(pid(1)))
    put(store, "p1", proposal("p1"))  # not a proposal id: not a proposal, not a problem
    put(store, pid(2) + ".tmp", proposal(pid(2)))
    (store / "supervise" / "proposals" / "README").write_text("notes")
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(proposal(pid(3))))
    (store / "supervise" / "proposals" / (pid(3) + ".json")).symlink_to(outside)
    put(store, pid(4), proposal(pid(4), note="x" * supervise.MAX_PROPOSAL_BYTES))
    put(store, pid(5), proposal(pid(6)))
    put(store, pid(7), proposal(pid(7), status="maybe"))
    put(store, pid(8), "][")
    found, problems = supervise.list_proposals(str(store))
    assert [p["id"] for p in found] == [pid(1)]
    assert len(problems) == 5
    assert [pid(n) in " ".join(problems) for n in (3, 4, 5, 7, 8)] == [True] * 5
