# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""supervise (the bundle's MCP server): input validation, the proposal store, the tools' answers.

The MCP transport itself (the official SDK) is exercised end to end by molecule/supervise."""

from __future__ import annotations

import json
import os

import pytest

J = "because the build needs it"


@pytest.fixture
def store(supervise, tmp_path):
    s = supervise.Store(str(tmp_path / "store"))
    s.ensure()
    return s


@pytest.fixture
def config(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "egress.json").write_text(json.dumps({"version": 2, "allowed_hosts": ["allowed.test", "b.test"], "routes": [
        {"host": "api.test", "auth": {"scheme": "Bearer", "token_ref": "API_TOKEN"},
         "matches": [{"methods": ["GET"]}]}]}))
    (conf / "supervise.json").write_text(json.dumps({"wait_seconds": 0, "max_pending": 3}))
    return conf


@pytest.fixture
def tools(supervise, store, config):
    return supervise.Supervise(store, str(config), sleep=lambda _s: None)


@pytest.mark.parametrize("host, expected", [
    ("pypi.org", "pypi.org"),
    ("  Files.PythonHosted.org. ", "files.pythonhosted.org"),
    ("a-b.c-d.example", "a-b.c-d.example"),
])
def test_host_accepted_and_normalised(supervise, host, expected):
    assert supervise.check_host(host) == expected


@pytest.mark.parametrize("host", [
    "", "https://pypi.org", "pypi.org/simple", "pypi.org:443", "*.pypi.org", "../etc/passwd", "a..b",
    "-a.b", "10.0.0.1", "a b", "x" * 64 + ".org", ("a." * 130) + "org", "pypi.org\nevil.org", "ünï.org", None, 42,
])
def test_host_refused(supervise, host):
    with pytest.raises(supervise.InvalidRequest):
        supervise.check_host(host)


@pytest.mark.parametrize("value", ["0123456789abcdef", "ffffffffffffffff"])
def test_id_accepted(supervise, value):
    assert supervise.check_id(value) == value


@pytest.mark.parametrize("value", [
    "", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "../0123456789abcd", "0123456789abcdef/",
    "0123456789abcdef.json", "/etc/passwd", None, 12345,
])
def test_id_refused(supervise, value):
    with pytest.raises(supervise.InvalidRequest, match="not a proposal id"):
        supervise.check_id(value)


@pytest.mark.parametrize("kind, fields, error", [
    ("domain", {"host": "pypi.org"}, "justification is required"),
    ("domain", {"host": "pypi.org", "justification": "  "}, "justification is required"),
    ("domain", {"host": "pypi.org", "justification": "x" * 2001}, "at most 2000"),
    ("domain", {"host": "pypi.org", "justification": "bell\x07"}, "control characters"),
    ("domain", {"host": "pypi.org", "justification": ["list"]}, "must be a string"),
    ("route", {"host": "api.x.org", "auth_ref": "ghp secret value", "justification": J}, "auth_ref must name"),
    ("route", {"host": "api.x.org", "auth_ref": "A" * 65, "justification": J}, "auth_ref must name"),
    ("route", {"host": "api.x.org", "matches": [], "justification": J}, "non-empty list"),
    ("route", {"host": "api.x.org", "matches": [{"methods": ["GET"]}] * 9, "justification": J}, "at most 8"),
    ("route", {"host": "api.x.org", "matches": [{"verbs": ["GET"]}], "justification": J}, "mapping of paths"),
    ("route", {"host": "api.x.org", "matches": [{"methods": ["BREW"]}], "justification": J}, "not one of"),
    ("route", {"host": "api.x.org", "matches": [{"paths": [{"type": "glob", "value": "/"}]}], "justification": J},
     "exact, prefix or regex"),
    ("route", {"host": "api.x.org", "matches": [{"paths": [{"value": "v1"}]}], "justification": J}, "start with /"),
    ("route", {"host": "api.x.org", "matches": [{"paths": [{"type": "regex", "value": "("}]}], "justification": J},
     "not a valid regex"),
    ("route", {"host": "api.x.org", "matches": [{"paths": [{"value": "/" + "a" * 600}]}], "justification": J},
     "1 to 512"),
    ("block", {"url": "file:///etc/passwd", "reason_seen": "x", "justification": J}, "http or https"),
    ("block", {"url": "https://" + "a" * 2100, "reason_seen": "x", "justification": J}, "at most 2048"),
    ("block", {"url": "https://x.org/", "reason_seen": "", "justification": J}, "reason_seen is required"),
    ("block", {"url": "https://x.org/", "reason_seen": "r" * 1001, "justification": J}, "at most 1000"),
    ("nope", {"justification": J}, "unknown kind"),
])
def test_validation_refuses_with_the_reason(supervise, kind, fields, error):
    with pytest.raises(supervise.InvalidRequest, match=error):
        supervise.validate(kind, fields)


def test_route_normalised(supervise):
    clean = supervise.validate("route", {"host": "API.x.org", "auth_ref": "GITHUB_TOKEN", "justification": J,
                                         "matches": [{"methods": ["get"], "paths": [{"value": "/v1/"}]}]})
    assert clean == {"host": "api.x.org", "auth_ref": "GITHUB_TOKEN", "justification": J,
                     "matches": [{"paths": [{"type": "prefix", "value": "/v1/"}], "methods": ["GET"]}]}


def test_propose_writes_the_proposal_and_the_audit_line(supervise, store):
    proposal, created = store.propose("domain", {"host": "pypi.org", "justification": J}, 5)
    assert created and supervise.ID_RE.match(proposal["id"])
    on_disk = json.loads(open(os.path.join(store.proposals, proposal["id"] + ".json")).read())
    assert on_disk == proposal
    assert {k: on_disk[k] for k in ("kind", "status", "decided", "note", "host", "justification")} == \
        {"kind": "domain", "status": "pending", "decided": None, "note": "", "host": "pypi.org", "justification": J}
    audit = [json.loads(line) for line in open(store.audit_path)]
    assert len(audit) == 1 and audit[0]["event"] == "proposed" and audit[0]["by"] == "agent"
    assert audit[0]["id"] == proposal["id"] and audit[0]["host"] == "pypi.org"
    assert os.listdir(store.proposals) == [proposal["id"] + ".json"]  # no temporary file left


def test_the_same_pending_ask_is_not_duplicated(store):
    first, _created = store.propose("domain", {"host": "pypi.org", "justification": J}, 5)
    again, created = store.propose("domain", {"host": "PyPI.org", "justification": "other words"}, 5)
    assert not created and again["id"] == first["id"]
    assert len(store.all()) == 1


def test_pending_limit(store):
    for index in range(3):
        store.propose("domain", {"host": "h%d.org" % index, "justification": J}, 3)
    with pytest.raises(Exception, match="3 proposals are already waiting"):
        store.propose("domain", {"host": "h9.org", "justification": J}, 3)


def test_an_existing_id_is_never_overwritten(supervise, store, monkeypatch):
    first, _created = store.propose("domain", {"host": "a.org", "justification": J}, 5)
    monkeypatch.setattr(supervise.secrets, "token_hex", lambda n: first["id"] if n == 8 else "0" * (2 * n))
    with pytest.raises(FileExistsError):
        store.propose("domain", {"host": "b.org", "justification": J}, 5)
    assert store.read(first["id"])["host"] == "a.org"


def test_oversized_proposal_refused(supervise, store, monkeypatch):
    monkeypatch.setattr(supervise, "MAX_PROPOSAL_BYTES", 200)
    with pytest.raises(supervise.InvalidRequest, match="bytes; at most 200"):
        store.propose("domain", {"host": "a.org", "justification": "y" * 300}, 5)
    assert store.all() == []


def test_store_ignores_files_that_are_not_proposals(store):
    good, _created = store.propose("domain", {"host": "a.org", "justification": J}, 5)
    with open(os.path.join(store.proposals, "notes.txt"), "w") as handle:
        handle.write("x")
    with open(os.path.join(store.proposals, "0000000000000000.json"), "w") as handle:
        handle.write("{not json")
    with open(os.path.join(store.proposals, "1111111111111111.json"), "w") as handle:
        json.dump({"id": "2222222222222222", "status": "approved"}, handle)  # an id that is not its name
    assert [p["id"] for p in store.all()] == [good["id"]]


def test_request_domain_pending_then_decided(supervise, store, tools):
    answer = tools.request_domain("pypi.org", J)
    assert answer["status"] == "pending" and "proposal_status" in answer["message"]
    proposal = store.read(answer["id"])
    proposal.update(status="approved", decided="2026-01-01T00:00:00Z", note="fine")
    with open(store.path(answer["id"]), "w") as handle:
        json.dump(proposal, handle)
    status = tools.proposal_status(answer["id"])
    assert status["status"] == "approved" and status["note"] == "fine" and "retry" in status["message"]


def test_rejected_answer_carries_the_note(supervise, store, tools):
    answer = tools.request_route("api.x.org", J, auth_ref="X_TOKEN")
    proposal = store.read(answer["id"])
    proposal.update(status="rejected", decided="t", note="use the mirror")
    with open(store.path(answer["id"]), "w") as handle:
        json.dump(proposal, handle)
    status = tools.proposal_status(answer["id"])
    assert (status["status"], status["note"], status["auth_ref"]) == ("rejected", "use the mirror", "X_TOKEN")


def test_bounded_wait_sees_a_decision_made_meanwhile(supervise, store):
    proposal, _created = store.propose("domain", {"host": "a.org", "justification": J}, 5)
    clock = {"t": 0.0}

    def sleep(seconds):
        clock["t"] += seconds
        if clock["t"] >= 2:
            decided = dict(proposal, status="approved", note="ok")
            with open(store.path(proposal["id"]), "w") as handle:
                json.dump(decided, handle)

    result = supervise.wait_for_decision(store, proposal["id"], 10, sleep=sleep, clock=lambda: clock["t"])
    assert result["status"] == "approved" and clock["t"] == 2


def test_bounded_wait_gives_up(supervise, store):
    proposal, _created = store.propose("domain", {"host": "a.org", "justification": J}, 5)
    clock = {"t": 0.0}

    def sleep(seconds):
        clock["t"] += seconds

    result = supervise.wait_for_decision(store, proposal["id"], 3, sleep=sleep, clock=lambda: clock["t"])
    assert result["status"] == "pending" and clock["t"] == 3


def test_already_allowed_domain_makes_no_proposal(store, tools):
    answer = tools.request_domain("B.test", J)
    assert answer["status"] == "allowed" and store.all() == []


@pytest.mark.parametrize("call", [
    lambda t: t.request_domain("https://evil.test", J),
    lambda t: t.request_domain("evil.test", ""),
    lambda t: t.request_route("evil.test", J, auth_ref="a b"),
    lambda t: t.report_block("javascript:alert(1)", "x", J),
    lambda t: t.proposal_status("../../audit"),
])
def test_tools_answer_refused_and_write_nothing(store, tools, call):
    answer = call(tools)
    assert answer["status"] == "refused" and answer["error"]
    assert store.all() == [] and not os.path.exists(store.audit_path)


def test_unknown_id(tools):
    assert tools.proposal_status("0123456789abcdef")["status"] == "unknown"


def test_list_policy_shows_hosts_and_routes_without_secrets(tools):
    assert tools.list_policy() == {"allowed_domains": ["allowed.test", "b.test"],
                                   "routes": [{"host": "api.test", "matches": [{"methods": ["GET"]}],
                                               "auth_ref": "API_TOKEN"}]}


def test_list_policy_without_configuration(supervise, tmp_path):
    assert supervise.current_policy(str(tmp_path / "none")) == {"allowed_domains": [], "routes": []}


def test_config_defaults_and_bounds(supervise, tmp_path):
    assert supervise.load_config(str(tmp_path)) == {"wait_seconds": 20, "max_pending": 20}
    (tmp_path / "supervise.json").write_text('{"wait_seconds": 5, "unknown": 1, "max_pending": "x"}')
    assert supervise.load_config(str(tmp_path)) == {"wait_seconds": 5, "max_pending": 20}
