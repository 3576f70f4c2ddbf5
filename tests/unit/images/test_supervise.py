# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""supervise (the bundle's MCP server): input validation, the proposal store, the tools' answers, and
egress's release endpoint (served on a real socket of 127.0.0.1 here).

The MCP transport itself (the official SDK) is exercised end to end by extensions/molecule/supervise."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time

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
    ("domain", {"host": "pypi.org", "justification": "bell\x07"}, "control character"),
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


def test_a_route_ask_records_the_hosts_its_credential_serves(store, tools):
    answer = tools.request_route("llm.example.net", J, auth_ref="API_TOKEN")
    proposal = store.read(answer["id"])
    assert (proposal["auth_ref"], proposal["credential_serves"]) == ("API_TOKEN", ["api.test"])
    proposed = [json.loads(line) for line in open(store.audit_path)]
    assert proposed[-1]["credential_serves"] == ["api.test"]
    fresh = store.read(tools.request_route("other.test", J, auth_ref="NEW_TOKEN")["id"])
    assert fresh["credential_serves"] == []
    none = store.read(tools.request_route("open.test", J)["id"])
    assert "credential_serves" not in none
    # the same ask again is the same proposal: the added field is not part of what is compared
    assert tools.request_route("llm.example.net", J, auth_ref="API_TOKEN")["id"] == answer["id"]


def test_supervise_cannot_be_told_what_the_credential_serves(store, tools):
    """An agent-supplied field of that name is not taken: only the fields validate() keeps, and supervise's own."""
    proposal, _created = store.propose("route", {"host": "x.test", "auth_ref": "API_TOKEN", "justification": J,
                                                 "credential_serves": ["nothing"]}, 5)
    assert "credential_serves" not in proposal


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


# -- release: egress holds a request with a DLP hit and asks the operator (127.0.0.1:9101) -----------

RELEASE = {"host": "API.Example.org", "method": "POST", "path": "/v1/upload?token=", "rule": "github-pat",
           "where": "body json $.config.token", "excerpt": "{\"token\": \"ghp_****\",\n\t\"x\": 1}"}


@pytest.fixture
def releases(supervise, store, config):
    return supervise.Releases(store, str(config))


@pytest.fixture
def endpoint(supervise, releases):
    """The internal endpoint on a free port of 127.0.0.1, served by a thread as in main()."""
    ended = []
    server, thread = supervise.start_internal(releases, port=0, on_exit=lambda: ended.append(True),
                                              poll_interval=0.05)
    yield server
    supervise.stop_internal(server)
    thread.join(5)
    assert not ended  # a deliberate stop is not a dead listener


def call(server, method, path, body=None, raw=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers=dict({"Content-Type": "application/json"}, **(headers or {})))
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, (json.loads(payload) if payload else None)


def decide(store, proposal_id, status, note=""):
    proposal = store.read(proposal_id)
    proposal.update(status=status, decided="2026-01-01T00:00:00Z", note=note)
    with open(store.path(proposal_id), "w") as handle:
        json.dump(proposal, handle)


def test_release_created_stored_and_audited_like_the_others(supervise, store, endpoint):
    code, body = call(endpoint, "POST", "/release", RELEASE)
    assert code == 201 and body["status"] == "pending" and supervise.ID_RE.match(body["id"])
    proposal = store.read(body["id"])
    assert {k: proposal[k] for k in ("kind", "status", "decided", "note")} == \
        {"kind": "release", "status": "pending", "decided": None, "note": ""}
    assert {k: proposal[k] for k in supervise.RELEASE_FIELDS} == dict(RELEASE, host="api.example.org")
    assert "justification" not in proposal
    audit = [json.loads(line) for line in open(store.audit_path)]
    assert len(audit) == 1 and audit[0]["event"] == "proposed" and audit[0]["by"] == "egress"
    assert audit[0]["id"] == body["id"] and audit[0]["kind"] == "release" and audit[0]["rule"] == "github-pat"


def test_release_status_follows_the_operators_decision(store, endpoint):
    _code, created = call(endpoint, "POST", "/release", RELEASE)
    assert call(endpoint, "GET", "/release/" + created["id"]) == \
        (200, {"id": created["id"], "status": "pending", "note": ""})
    decide(store, created["id"], "approved", "once is fine")
    assert call(endpoint, "GET", "/release/" + created["id"]) == \
        (200, {"id": created["id"], "status": "approved", "note": "once is fine"})


def test_rejected_release(store, endpoint):
    _code, created = call(endpoint, "POST", "/release", RELEASE)
    decide(store, created["id"], "rejected", "that is the production token")
    assert call(endpoint, "GET", "/release/" + created["id"])[1]["status"] == "rejected"


def test_identical_held_requests_are_separate_proposals(store, endpoint):
    first = call(endpoint, "POST", "/release", RELEASE)[1]
    second = call(endpoint, "POST", "/release", RELEASE)[1]
    assert first["id"] != second["id"] and len(store.pending()) == 2


@pytest.mark.parametrize("path", [
    "/release/0123456789abcdef",        # no such proposal
    "/release/../audit.jsonl",          # not an id
    "/release/0123456789ABCDEF",
    "/release/",
    "/releases/0123456789abcdef",
    "/",
])
def test_unknown_release_is_404(endpoint, path):
    code, body = call(endpoint, "GET", path)
    assert code == 404 and body["error"]


def test_only_release_ids_are_served(store, tools, endpoint):
    domain = tools.request_domain("pypi.org", J)
    assert call(endpoint, "GET", "/release/" + domain["id"])[0] == 404


def test_a_status_supervise_never_writes_is_never_a_release(store, endpoint):
    _code, created = call(endpoint, "POST", "/release", RELEASE)
    decide(store, created["id"], "granted")
    code, body = call(endpoint, "GET", "/release/" + created["id"])
    assert code == 200 and body["status"] == "rejected" and "granted" in body["note"]


@pytest.mark.parametrize("change, field", [
    ({"host": "https://x.org"}, "host"),
    ({"host": "10.0.0.1"}, "host"),
    ({"host": None}, "host"),
    ({"method": ""}, "method"),
    ({"method": "GET POST"}, "method"),
    ({"method": "G" * 17}, "method"),
    ({"method": ["GET"]}, "method"),
    ({"path": ""}, "path"),
    ({"path": "/" + "a" * 2048}, "path"),
    ({"path": "/a\nb"}, "path"),
    ({"path": "/a\x7f"}, "path"),
    ({"path": "/a\u202eb"}, "path"),  # a bidi override reorders what the operator reads
    ({"path": 3}, "path"),
    ({"rule": ""}, "rule"),
    ({"rule": "r" * 201}, "rule"),
    ({"rule": "r\tx"}, "rule"),
    ({"where": "w" * 201}, "where"),
    ({"where": "\x1b[2Jclear"}, "where"),
    ({"where": None}, "where"),
    ({"excerpt": "e" * 401}, "excerpt"),
    ({"excerpt": "a\rb"}, "excerpt"),
    ({"excerpt": "a\x1b[31mb"}, "excerpt"),
    ({"excerpt": "a\x00b"}, "excerpt"),
    ({"excerpt": "a\x85b"}, "excerpt"),  # a C1 control
    ({"excerpt": {"x": 1}}, "excerpt"),
    ({"justification": "x"}, "justification"),
])
def test_release_validation_names_the_field(store, endpoint, change, field):
    code, body = call(endpoint, "POST", "/release", dict(RELEASE, **change))
    assert code == 400 and body["error"].startswith(field), body
    assert store.all() == [] and not os.path.exists(store.audit_path)


@pytest.mark.parametrize("change", [
    {"excerpt": ""}, {"excerpt": "e" * 400}, {"excerpt": "line\n\tnext"}, {"excerpt": "ünïcödé ✓"},
    {"method": "PROPFIND"}, {"method": "M-SEARCH"}, {"path": "/" + "a" * 2047}, {"path": "*"},
    {"rule": "r" * 200}, {"where": "header Authorization"}, {"host": "pypi.org."},
])
def test_release_accepted_at_the_bounds(endpoint, change):
    assert call(endpoint, "POST", "/release", dict(RELEASE, **change))[0] == 201


def test_a_missing_excerpt_is_an_empty_one(store, endpoint):
    fields = {k: v for k, v in RELEASE.items() if k != "excerpt"}
    _code, body = call(endpoint, "POST", "/release", fields)
    assert store.read(body["id"])["excerpt"] == ""


@pytest.mark.parametrize("raw, code", [
    (b"{not json", 400),
    (b"\xff\xfe", 400),
    (b"[1, 2]", 400),
    (b"null", 400),
])
def test_bodies_that_are_not_a_release(store, endpoint, raw, code):
    assert call(endpoint, "POST", "/release", raw=raw)[0] == code
    assert store.all() == []


def test_a_body_over_8_kib_is_413_without_reading_it(supervise, store, endpoint):
    big = dict(RELEASE, excerpt="x" * (supervise.MAX_INTERNAL_BODY + 1))
    code, body = call(endpoint, "POST", "/release", big)
    assert code == 413 and "at most 8192" in body["error"] and store.all() == []
    # announced only: refused before a byte of the body is read
    with socket.create_connection(endpoint.server_address, timeout=5) as sock:
        sock.sendall(b"POST /release HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")


def test_chunked_or_unsized_bodies_are_refused(store, endpoint):
    with socket.create_connection(endpoint.server_address, timeout=5) as sock:
        sock.sendall(b"POST /release HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 411")
    with socket.create_connection(endpoint.server_address, timeout=5) as sock:
        sock.sendall(b"POST /release HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 411")
    assert store.all() == []


def test_other_methods_and_paths(endpoint):
    assert call(endpoint, "DELETE", "/release/0123456789abcdef")[0] == 405
    assert call(endpoint, "PUT", "/release", RELEASE)[0] == 405
    assert call(endpoint, "POST", "/release/0123456789abcdef", RELEASE)[0] == 404
    assert call(endpoint, "POST", "/mcp", RELEASE)[0] == 404


def test_keep_alive_serves_several_requests_on_one_connection(endpoint):
    conn = http.client.HTTPConnection("127.0.0.1", endpoint.server_address[1], timeout=5)
    conn.request("POST", "/release", body=json.dumps(RELEASE), headers={"Content-Type": "application/json"})
    created = json.loads(conn.getresponse().read())
    for _round in range(3):
        conn.request("GET", "/release/" + created["id"])
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["status"] == "pending"
    conn.close()


def test_release_counts_against_max_pending(store, tools, endpoint):
    tools.request_domain("pypi.org", J)          # max_pending is 3 in this configuration
    assert call(endpoint, "POST", "/release", RELEASE)[0] == 201
    assert call(endpoint, "POST", "/release", RELEASE)[0] == 201
    code, body = call(endpoint, "POST", "/release", RELEASE)
    assert code == 429 and "3 proposals are already waiting" in body["error"]
    assert len(store.pending()) == 3
    # and the agent's asks meet the same limit
    assert "already waiting" in tools.request_domain("other.org", J)["error"]


def test_concurrent_releases_never_exceed_max_pending(store, endpoint):
    codes = []

    def post():
        codes.append(call(endpoint, "POST", "/release", RELEASE)[0])

    threads = [threading.Thread(target=post) for _index in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(codes) == [201] * 3 + [429] * 9 and len(store.pending()) == 3


def test_the_agent_sees_only_the_status_of_a_release(supervise, store, tools, releases):
    _code, created = releases.create(RELEASE)
    decide(store, created["id"], "rejected", "the excerpt showed ghp_****")
    seen = tools.proposal_status(created["id"])
    assert seen["status"] == "rejected" and seen["kind"] == "release"
    assert set(seen) == {"id", "kind", "status", "message"}
    text = json.dumps(seen)
    for secret in ("ghp_", "github-pat", "body json", "api.example.org", "/v1/upload", "excerpt"):
        assert secret not in text


def test_the_agent_cannot_make_a_release(tools, store):
    assert tools._ask("release", RELEASE)["status"] == "refused" and store.all() == []


def test_list_policy_unchanged_by_releases(tools, releases):
    before = tools.list_policy()
    releases.create(RELEASE)
    assert tools.list_policy() == before


def test_release_timeout_read_from_egress_json(supervise, config, tmp_path):
    assert supervise.release_timeout(str(config)) == supervise.DEFAULT_RELEASE_TIMEOUT
    (config / "egress.json").write_text(json.dumps({"dlp": {"action": "supervise", "supervise_timeout": 45}}))
    assert supervise.release_timeout(str(config)) == 45
    (config / "egress.json").write_text(json.dumps({"dlp": {"supervise_timeout": True}}))
    assert supervise.release_timeout(str(config)) == supervise.DEFAULT_RELEASE_TIMEOUT
    assert supervise.release_timeout(str(tmp_path / "none")) == supervise.DEFAULT_RELEASE_TIMEOUT


def test_a_release_egress_no_longer_holds_is_rejected_and_frees_its_place(supervise, store, releases):
    _code, old = releases.create(RELEASE)
    _code, fresh = releases.create(RELEASE)
    created = supervise.epoch(store.read(old["id"])["created"])
    limit = 120 + supervise.RELEASE_GRACE
    assert store.expire_releases(120, clock=lambda: created + limit - 1) == []
    expired = store.expire_releases(120, clock=lambda: created + limit)
    assert sorted(expired) == sorted([old["id"], fresh["id"]])
    assert releases.status(old["id"])[1]["status"] == "rejected"
    assert "timed out" in releases.status(old["id"])[1]["note"]
    audit = [json.loads(line) for line in open(store.audit_path)]
    assert audit[-1]["event"] == "rejected" and audit[-1]["by"] == "supervise"
    assert store.pending() == []


def test_expiry_leaves_decided_and_other_kinds_alone(supervise, store, releases, tools):
    domain = tools.request_domain("pypi.org", J)
    _code, approved = releases.create(RELEASE)
    decide(store, approved["id"], "approved", "ok")
    assert store.expire_releases(1, clock=lambda: time.time() + 3600) == []
    assert store.read(approved["id"])["status"] == "approved"
    assert store.read(domain["id"])["status"] == "pending"


def test_an_expired_release_is_swept_before_counting(supervise, store, config, releases):
    (config / "supervise.json").write_text(json.dumps({"wait_seconds": 0, "max_pending": 1}))
    _code, old = releases.create(RELEASE)
    proposal = store.read(old["id"])
    proposal["created"] = "2000-01-01T00:00:00Z"
    with open(store.path(old["id"]), "w") as handle:
        json.dump(proposal, handle)
    code, _body = releases.create(RELEASE)
    assert code == 201 and store.read(old["id"])["status"] == "rejected"


def test_a_dead_listener_ends_the_daemon(supervise, releases, monkeypatch):
    def broken(self, poll_interval=0.5):
        raise RuntimeError("selector gone")

    monkeypatch.setattr(supervise.InternalServer, "serve_forever", broken)
    ended = threading.Event()
    server, thread = supervise.start_internal(releases, port=0, on_exit=ended.set)
    thread.join(5)
    server.server_close()
    assert ended.is_set()  # main() passes die(): the whole process ends


def test_a_listener_that_stops_by_itself_ends_the_daemon(supervise, releases):
    ended = threading.Event()
    server, thread = supervise.start_internal(releases, port=0, on_exit=ended.set, poll_interval=0.05)
    server.shutdown()  # not stop_internal: nobody meant it to stop
    thread.join(5)
    server.server_close()
    assert ended.is_set()


def test_the_port_in_use_fails_start_up(supervise, releases, endpoint):
    with pytest.raises(OSError):
        supervise.start_internal(releases, port=endpoint.server_address[1])


def test_the_endpoint_listens_on_loopback_only(supervise):
    assert (supervise.INTERNAL_HOST, supervise.INTERNAL_PORT) == ("127.0.0.1", 9101)
