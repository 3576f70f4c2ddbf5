# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""audit_log: the one reader of a bottle's audit, fed by the firewall's own writer."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import audit_log
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as supervise

WRITER = pathlib.Path(__file__).resolve().parents[4] / "images" / "bundle" / "bottle_firewall" / "audit.py"


@pytest.fixture
def writer(tmp_path):
    """egress's Audit, writing where bottle-init points it: <state_dir>/audit/egress.jsonl."""
    spec = importlib.util.spec_from_file_location("bb_firewall_audit", WRITER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "audit").mkdir()
    return module.Audit(str(tmp_path / "audit" / "egress.jsonl"), stream=open("/dev/null", "w"))


def test_decisions_are_summarised_by_host(tmp_path, writer):
    writer.record("connect", "pypi.org", 443, "CONNECT")
    writer.record("request", "pypi.org", 443, "GET", "/simple/?q=secret", nbytes=0)
    writer.record("connect", "evil.example", 443, "CONNECT", rule="allowlist", action="block", status=403)
    writer.record("request", "api.example.com", 443, "POST", "/v1", rule="github-pat", action="hold", proposal="a" * 16)
    writer.record("request", "evil.example", 443, "GET", "/", rule="allowlist", action="block", status=403,
                  tunnel="refused")
    writer.record("tcp", None, None, rule="error", action="block")
    rows = {row["host"]: row for row in audit_log.firewall_by_host(str(tmp_path))}
    # one request, one count: the CONNECT of a tunnel is not counted again
    assert rows["pypi.org"]["allowed"] == 1 and rows["pypi.org"]["refused"] == 0
    assert rows["evil.example"]["refused"] == 1 and rows["evil.example"]["rules"] == {"allowlist": 1}
    assert rows["evil.example"]["last_action"] == "block"
    assert rows["api.example.com"]["held"] == 1
    assert rows[audit_log.NO_HOST]["rules"] == {"error": 1}
    # the most recent first
    assert audit_log.firewall_by_host(str(tmp_path))[0]["host"] == audit_log.NO_HOST


def test_follower_reads_only_what_was_appended_and_waits_for_whole_lines(tmp_path, writer):
    follower = audit_log.Follower(str(tmp_path))
    assert follower.poll() == ([], [])
    writer.record("request", "pypi.org", 443, "GET", "/")
    new, _events = follower.poll()
    assert [r["host"] for r in new] == ["pypi.org"]
    path = tmp_path / "audit" / "egress.jsonl"
    with open(path, "a") as handle:
        handle.write('{"ts": 1, "event": "request", "host": "half.example", "action": "al')
    assert follower.poll() == ([], [])
    with open(path, "a") as handle:
        handle.write('low"}\nnot json\n')
    new, _events = follower.poll()
    assert [r["host"] for r in new] == ["half.example"]
    assert any("not a JSON object" in p for p in follower.problems)
    assert {row["host"]: row["allowed"] for row in follower.hosts.rows()} == {"pypi.org": 1, "half.example": 1}


def test_follower_starts_again_after_rotation(tmp_path, writer):
    follower = audit_log.Follower(str(tmp_path))
    writer.record("request", "one.example", 443, "GET", "/")
    writer.record("request", "one.example", 443, "GET", "/")
    follower.poll()
    path = tmp_path / "audit" / "egress.jsonl"
    path.rename(str(path) + ".1")
    writer.record("request", "two.example", 443, "GET", "/")
    new, _events = follower.poll()
    assert [r["host"] for r in new] == ["two.example"]


def test_a_large_file_is_read_from_its_tail_starting_on_a_whole_line(tmp_path, writer):
    for n in range(200):
        writer.record("request", "h%d.example" % n, 443, "GET", "/")
    rows = audit_log.firewall_by_host(str(tmp_path), max_bytes=1000)
    assert 0 < len(rows) < 200 and all(row["host"].endswith(".example") for row in rows)
    assert rows[0]["host"] == "h199.example"


def test_rotated_file_counts_while_the_budget_allows(tmp_path, writer):
    writer.record("request", "old.example", 443, "GET", "/")
    path = tmp_path / "audit" / "egress.jsonl"
    path.rename(str(path) + ".1")
    writer.record("request", "new.example", 443, "GET", "/")
    assert {row["host"] for row in audit_log.firewall_by_host(str(tmp_path))} == {"old.example", "new.example"}


def test_supervise_events_and_meta_of_an_archive_layout(tmp_path):
    (tmp_path / "supervise").mkdir()
    supervise.append_audit(str(tmp_path), {"event": "proposed", "id": "a" * 16, "kind": "domain", "host": "pypi.org"})
    supervise.append_audit(str(tmp_path), {"event": "approved", "id": "a" * 16, "by": "operator", "note": "ok"})
    (tmp_path / "meta.json").write_text(json.dumps({"slug": "demo", "agent": "demo"}))
    summary = audit_log.summary(str(tmp_path))
    assert [e["event"] for e in summary["supervise"]] == ["proposed", "approved"]
    assert summary["meta"] == {"slug": "demo", "agent": "demo"}
    assert summary["firewall"] == [] and summary["problems"] == []


def test_missing_or_broken_files_are_empty_not_fatal(tmp_path):
    empty = {"meta": {}, "firewall": [], "supervise": [], "problems": []}
    assert audit_log.summary(str(tmp_path / "nowhere")) == empty
    (tmp_path / "meta.json").write_text("[1]")
    assert audit_log.read_meta(str(tmp_path)) == {}


def test_allowed_refused_and_failed_upstream_are_separate_counts(tmp_path, writer):
    """Issue 21 item 1: three HTTPS requests count three; an upstream failure is no refusal."""
    for n in range(3):
        writer.record("connect", "pypi.org", 443, "CONNECT", flow="c%d" % n)
        writer.record("request", "pypi.org", 443, "GET", "/simple/", flow="r%d" % n)
    writer.record("outcome", "pypi.org", 443, "GET", "/simple/", action="complete", status=200, flow="r0",
                  down=10, duration=0.1)
    writer.record("outcome", "pypi.org", 443, "GET", "/simple/", rule="upstream-tls", action="upstream-error",
                  flow="r1")
    writer.record("outcome", "pypi.org", 443, "GET", "/simple/", rule="upstream-status", action="upstream-error",
                  status=500, flow="r2")
    writer.record("connect", "gone.example", 443, "CONNECT", rule="upstream-dns", action="upstream-error", status=502)
    writer.record("request", "gone.example", 443, "GET", "/", rule="upstream-dns", action="upstream-error",
                  status=502)
    writer.record("request", "evil.example", 443, "GET", "/", rule="allowlist", action="block", status=403)
    writer.record("connect", "files.example.org", 443, "CONNECT", rule="passthrough")
    writer.record("tcp", "files.example.org", 443, rule="passthrough")
    rows = {row["host"]: row for row in audit_log.firewall_by_host(str(tmp_path))}
    assert (rows["pypi.org"]["allowed"], rows["pypi.org"]["failed"], rows["pypi.org"]["refused"]) == (1, 2, 0)
    assert rows["pypi.org"]["failures"] == {"upstream-tls": 1, "upstream-status": 1}
    assert (rows["gone.example"]["failed"], rows["gone.example"]["refused"]) == (1, 0)
    assert rows["gone.example"]["failures"] == {"upstream-dns": 1} and rows["gone.example"]["rules"] == {}
    assert rows["evil.example"]["refused"] == 1
    assert rows["files.example.org"]["allowed"] == 1


def test_an_outcome_whose_decision_was_not_read_counts_as_failed_only(tmp_path, writer):
    writer.record("outcome", "pypi.org", 443, "GET", "/", rule="upstream-connect", action="upstream-error",
                  flow="gone-in-rotation")
    rows = {row["host"]: row for row in audit_log.firewall_by_host(str(tmp_path))}
    assert (rows["pypi.org"]["allowed"], rows["pypi.org"]["failed"]) == (0, 1)


def test_an_outcome_egress_refused_moves_the_request_to_refused(tmp_path, writer):
    writer.record("request", "api.github.com", 443, "GET", "/repos/x", flow="r1")
    writer.record("response", "api.github.com", 443, "GET", "/repos/x", rule="response-encoding", action="block",
                  status=502)
    writer.record("outcome", "api.github.com", 443, "GET", "/repos/x", rule="response-encoding", action="block",
                  status=502, flow="r1")
    row = audit_log.firewall_by_host(str(tmp_path))[0]
    assert (row["allowed"], row["refused"], row["failed"], row["rules"]) == (0, 1, 0, {"response-encoding": 1})


def test_a_held_request_counts_once_where_it_ended(tmp_path, writer):
    writer.record("request", "api.example.com", 443, "POST", "/v1", rule="github-pat", action="hold", proposal="p" * 16)
    rows = {row["host"]: row for row in audit_log.firewall_by_host(str(tmp_path))}
    assert (rows["api.example.com"]["held"], rows["api.example.com"]["allowed"]) == (1, 0)
    writer.record("request", "api.example.com", 443, "POST", "/v1", rule="github-pat", proposal="p" * 16)
    writer.record("request", "api.example.com", 443, "POST", "/v2", rule="github-pat", action="hold", proposal="q" * 16)
    writer.record("request", "api.example.com", 443, "POST", "/v2", rule="github-pat", action="block", proposal="q" * 16)
    row = audit_log.firewall_by_host(str(tmp_path))[0]
    assert (row["held"], row["allowed"], row["refused"]) == (0, 1, 1)


# --- rotated files (issue 23 item 5) -------------------------------------------------------------

def _writer_module():
    spec = importlib.util.spec_from_file_location("bb_firewall_audit_rot", WRITER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rotating(tmp_path, keep=0):
    (tmp_path / "audit").mkdir(exist_ok=True)
    return _writer_module().Audit(str(tmp_path / "audit" / "egress.jsonl"), stream=open("/dev/null", "w"),
                                  max_bytes=1000, keep=keep)


def test_counts_read_across_every_rotated_file(tmp_path):
    log = _rotating(tmp_path)
    for n in range(60):
        log.record("request", "h%d.example" % (n % 3), 443, "GET", "/")
    assert len(audit_log.egress_files(str(tmp_path))) > 4
    assert audit_log.egress_files(str(tmp_path))[-2:] == ["audit/egress.jsonl.1", "audit/egress.jsonl"]
    rows = audit_log.firewall_by_host(str(tmp_path), max_bytes=None)
    assert sorted((r["host"], r["allowed"]) for r in rows) == [("h0.example", 20), ("h1.example", 20),
                                                               ("h2.example", 20)]
    assert rows[0]["host"] == "h2.example", "the newest line is in the live file"
    # a budget reads the newest lines first, across files
    some = sum(r["allowed"] for r in audit_log.firewall_by_host(str(tmp_path), max_bytes=2500))
    assert 10 < some < 60


def test_the_follower_reads_across_rotations_between_polls(tmp_path):
    log = _rotating(tmp_path)
    follower = audit_log.Follower(str(tmp_path))
    seen = []
    for batch in (3, 1, 25, 0, 40):  # none, one, several rotations between two polls
        for _n in range(batch):
            log.record("request", "a.example", 443, "GET", "/", nbytes=len(seen) + _n)
        new, _events = follower.poll()
        seen.extend(r["bytes"] for r in new)
    assert seen == list(range(69)), "every line once, in order"
    assert follower.hosts.rows()[0]["allowed"] == 69


def test_the_followers_first_read_spans_the_rotated_files(tmp_path):
    log = _rotating(tmp_path)
    for n in range(30):
        log.record("request", "a.example", 443, "GET", "/", nbytes=n)
    follower = audit_log.Follower(str(tmp_path), max_bytes=None)
    new, _events = follower.poll()
    assert [r["bytes"] for r in new] == list(range(30))
    log.record("request", "a.example", 443, "GET", "/", nbytes=30)
    assert [r["bytes"] for r in follower.poll()[0]] == [30]


def test_the_archive_takes_every_rotated_file(tmp_path):
    from ansible_collections.botbottle.bottle.plugins.module_utils import audit_archive
    log = _rotating(tmp_path, keep=3)
    for n in range(60):
        log.record("request", "a.example", 443, "GET", "/", nbytes=n)
    made = audit_archive.create(str(tmp_path), str(tmp_path.parent / "archive"), "demo")
    assert [f for f in made["files"] if f.startswith("audit/")] == [
        "audit/egress.jsonl.3", "audit/egress.jsonl.2", "audit/egress.jsonl.1", "audit/egress.jsonl"]
    rows = audit_log.firewall_by_host(made["path"], max_bytes=None)
    kept = sum(len(p.read_text().splitlines()) for p in (tmp_path / "audit").iterdir())
    assert rows[0]["allowed"] == kept
