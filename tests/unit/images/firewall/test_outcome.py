# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 21 item 1: a policy refusal, an upstream failure and the upstream's answer are told
apart in the audit; an allowed request has a decision line and an outcome line (one flow id)."""

import copy
import json
import types

from fakes import BASE_CONFIG, ROUTE_TOKEN, Headers, Proxy
from bottle_firewall import addon


def lines(proxy):
    """The audit file (outcome lines are written there only; stdout keeps the decisions)."""
    with open(proxy.fw.audit.path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def respond(proxy, flow, status=200, chunks=(b"hello", b" world"), headers=None):
    """What mitmproxy does with an upstream answer: responseheaders, the stream, response."""
    flow.response = types.SimpleNamespace(status_code=status, headers=Headers(headers or {}), stream=False,
                                          trailers=None)
    proxy.fw.responseheaders(flow)
    out = []
    for chunk in list(chunks) + [b""]:
        result = flow.response.stream(chunk) if callable(flow.response.stream) else chunk
        out.extend([result] if isinstance(result, bytes) else list(result))
    proxy.fw.response(flow)
    return b"".join(out)


def test_an_allowed_request_has_a_decision_and_an_outcome_line_with_one_flow_id(proxy):
    flow = proxy.https("allowed.example.com", method="POST", path="/upload?x=1", body=b"12345",
                       headers={"Host": "allowed.example.com", "Content-Length": "5"})
    assert respond(proxy, flow, 201) == b"hello world"
    decision, outcome = [e for e in lines(proxy) if e["event"] in ("request", "outcome")]
    assert decision["action"] == "allow" and decision["flow"] == flow.id
    assert outcome["event"] == "outcome" and outcome["flow"] == flow.id
    assert outcome["action"] == "complete" and outcome["status"] == 201
    assert outcome["bytes"] == 5 and outcome["down"] == len(b"hello world")
    assert isinstance(outcome["duration"], float) and outcome["duration"] >= 0
    assert outcome["path"] == "/upload?x="


def test_the_outcome_line_is_in_the_file_and_not_on_the_bundle_log(proxy, firewall_factory):
    """stdout (the bundle's log, through bottle-init and Docker's log driver) keeps the decisions;
    the outcome lines, one per allowed request, are in the audit file only. Without a file,
    stdout has them all."""
    flow = proxy.https("allowed.example.com")
    respond(proxy, flow, 200)
    logged = [json.loads(line) for line in proxy.fw.audit.stream.lines]
    assert [e["event"] for e in logged if e.get("flow") == flow.id] == ["request"]
    assert [e["event"] for e in lines(proxy) if e.get("flow") == flow.id] == ["request", "outcome"]
    bare = Proxy(firewall_factory(audit=False))
    flow = bare.https("allowed.example.com")
    respond(bare, flow, 200)
    logged = [json.loads(line) for line in bare.fw.audit.stream.lines]
    assert [e["event"] for e in logged if e.get("flow") == flow.id] == ["request", "outcome"]


def test_an_upstream_500_is_an_upstream_error_with_its_status(proxy):
    flow = proxy.https("allowed.example.com")
    respond(proxy, flow, 500, chunks=(b"oops",))
    outcome = lines(proxy)[-1]
    assert (outcome["event"], outcome["action"], outcome["rule"], outcome["status"], outcome["down"]) == (
        "outcome", "upstream-error", "upstream-status", 500, 4)


def test_the_byte_count_composes_with_the_credential_redactor(proxy):
    flow = proxy.https("api.github.com", path="/repos/x/y")
    assert flow.request.headers.get("Authorization") == "Bearer " + ROUTE_TOKEN
    body = respond(proxy, flow, 200, chunks=(b"echo " + ROUTE_TOKEN.encode(), b" end"))
    assert ROUTE_TOKEN.encode() not in body, "the redactor must still run under the counter"
    assert isinstance(flow.response.stream, addon.ByteCount)
    outcome = lines(proxy)[-1]
    assert outcome["event"] == "outcome" and outcome["down"] == len(b"echo " + ROUTE_TOKEN.encode() + b" end")


def error(proxy, flow, message):
    flow.error = types.SimpleNamespace(msg=message)
    proxy.fw.error(flow)
    return lines(proxy)[-1]


def test_upstream_failures_after_the_decision_get_their_own_rules(proxy):
    cases = {
        "TLS handshake failed: certificate verify failed (unable to get local issuer certificate)": "upstream-tls",
        "[Errno 111] Connect call failed ('93.184.216.34', 443)": "upstream-connect",
        "TimeoutError: connection timed out": "upstream-timeout",
        "[Errno -2] Name or service not known": "upstream-dns",
    }
    for message, rule in cases.items():
        flow = proxy.https("allowed.example.com")
        outcome = error(proxy, flow, message)
        assert (outcome["event"], outcome["action"], outcome["rule"]) == ("outcome", "upstream-error", rule), message


def test_no_outcome_for_what_egress_refused_or_killed_itself(proxy):
    flow = proxy.https("blocked.invalid")
    before = len(lines(proxy))
    error(proxy, flow, "Connection failed")
    assert len(lines(proxy)) == before
    flow = proxy.https("allowed.example.com")
    before = len(lines(proxy))
    flow.error = types.SimpleNamespace(msg="Connection killed.")
    proxy.fw.error(flow)
    assert len(lines(proxy)) == before


def test_one_outcome_only(proxy):
    flow = proxy.https("allowed.example.com")
    respond(proxy, flow, 200)
    error(proxy, flow, "Client disconnected.")
    assert [e["event"] for e in lines(proxy)].count("outcome") == 1


def test_a_route_refusal_is_not_hidden_behind_a_name_that_does_not_resolve(firewall_factory, resolver):
    config = copy.deepcopy(BASE_CONFIG)
    config["routes"].append({"host": "gone.example.net", "auth": {"scheme": "Bearer", "token_ref": "GITHUB_TOKEN"},
                             "matches": [{"paths": [{"type": "prefix", "value": "/ok/"}], "methods": ["GET"]}]})
    proxy = Proxy(firewall_factory(config))
    outside = proxy.https("gone.example.net", path="/admin")
    assert outside.response.status_code == 403
    assert outside.response.text.startswith("blocked by egress: ")
    assert outside.response.headers["X-Bottle-Egress-Rule"] != "upstream-dns"
    inside = proxy.https("gone.example.net", path="/ok/x")
    assert inside.response.status_code == 502
    assert inside.response.headers["X-Bottle-Egress-Rule"] == "upstream-dns"
    assert "Authorization" not in inside.request.headers or not inside.request.headers.get("Authorization")
    plain = proxy.http("gone.example.net", path="/admin")
    assert plain.response.status_code == 403 and plain.response.text.startswith("blocked by egress: ")


def test_a_response_egress_refuses_on_the_way_back_is_a_block_outcome_not_an_upstream_failure(proxy):
    flow = proxy.https("api.github.com", path="/repos/x/y")
    respond(proxy, flow, 200, chunks=(b"(\xb5/\xfd",), headers={"Content-Encoding": "zstd", "Content-Length": "4"})
    outcomes = [e for e in lines(proxy) if e["event"] == "outcome"]
    assert [(e["action"], e["rule"], e["status"], e["flow"]) for e in outcomes] == [
        ("block", "response-encoding", 502, flow.id)]


def test_an_unreachable_upstream_is_answered_in_egress_words_naming_the_rule(proxy):
    """layers.py's third patch asks this for a connect, TLS or timeout failure (instead of mitmproxy's page)."""
    cases = {
        "TLS handshake failed: certificate verify failed (Hostname mismatch)": "upstream-tls",
        "[Errno 111] Connect call failed ('172.28.0.9', 443)": "upstream-connect",
        "TimeoutError: connection timed out": "upstream-timeout",
    }
    for message, rule in cases.items():
        flow = proxy.https("allowed.example.com")
        flow.error = types.SimpleNamespace(msg=message)
        proxy.fw.error(flow)
        response = proxy.fw.upstream_unreachable(flow, message)
        assert response.status_code == 502 and response.headers["X-Bottle-Egress-Rule"] == rule
        text = response.text
        assert text.startswith("egress allowed this; the upstream failed: allowed.example.com:443: "), text
        assert "(rule %s)" % rule in text and "blocked" not in text, text
        assert lines(proxy)[-1]["rule"] == rule


def test_no_egress_wording_for_a_flow_egress_refused(proxy):
    flow = proxy.https("blocked.invalid")
    assert proxy.fw.upstream_unreachable(flow, "Connection failed") is None
