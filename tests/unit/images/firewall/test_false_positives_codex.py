# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What Codex 0.171.0 really sent to its model API (tests/unit/images/fixtures/codex_requests/full_bodies.json,
recorded on loopback) passes egress's DLP untouched: its headers, its HTTPS request body and the WebSocket
message of a turn (the system prompt, the tool declarations, the tool output)."""

from __future__ import annotations

import copy
import json
import pathlib

import pytest

from fakes import BASE_CONFIG, Flow, Proxy, Request
from bottle_firewall import layers

FULL = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "codex_requests" / "full_bodies.json"


@pytest.fixture(scope="module")
def codex():
    return json.loads(FULL.read_text(encoding="utf-8"))


def test_the_recorded_codex_requests_are_whole(codex):
    assert codex["observed_with"] == "codex 0.171.0"
    for body in (codex["https_body"], json.loads(codex["websocket_message"])):
        data = body if isinstance(body, dict) else json.loads(body)
        assert any(item.get("type") == "additional_tools" for item in data["input"])
        assert len(json.dumps(data)) > 50_000


def test_codex_headers_and_bodies_pass(engine, codex):
    engine.known.load(["correct-horse-battery-staple-42", "ghp_R0uteTokenValue0123456789abcdefABCD"])
    headers = [tuple(pair) for pair in codex["https_headers"]]
    assert engine.scan_head("/v1/responses", headers) is None
    assert engine.scan_body(codex["https_body"].encode(), "application/json") is None
    assert engine.scan_body(codex["websocket_message"].encode(), "application/json") is None


def test_a_secret_in_a_codex_body_is_still_found(engine, codex):
    engine.known.load(["correct-horse-battery-staple-42"])
    planted = codex["https_body"].replace("write the file", "write the file correct-horse-battery-staple-42")
    assert planted != codex["https_body"]
    assert engine.scan_body(planted.encode(), "application/json") is not None


def test_the_codex_model_route_adds_the_key_on_the_websocket_handshake(firewall_factory, resolver):
    """The policy resolve() makes for a codex agent (model route api.openai.com, Bearer OPENAI_API_KEY; the host a
    WebSocket host): Codex's recorded handshake leaves egress with the real key, the placeholder gone."""
    handshake = json.loads((FULL.parent / "websocket_write.json").read_text(encoding="utf-8"))["handshake"]
    config = copy.deepcopy(BASE_CONFIG)
    config["allowed_hosts"] = sorted(set(config["allowed_hosts"]) | {"api.openai.com"})
    config["websocket_hosts"] = ["api.openai.com"]
    config["routes"] = config["routes"] + [{"host": "api.openai.com",
                                            "auth": {"scheme": "Bearer", "token_ref": "OPENAI_API_KEY"}}]
    resolver.table["api.openai.com"] = ["162.159.140.245"]
    real = "sk-proj-" + "Zq8" * 30
    proxy = Proxy(firewall_factory(config, tokens={"OPENAI_API_KEY": real},
                                   protocol_layers=layers.Status(websocket_control=True, request_cap=True)))
    client, connect = proxy.connect("api.openai.com")
    proxy.hello(client, "api.openai.com")
    headers = {name.title(): value for name, value in handshake["headers"].items()}
    headers["Host"] = "api.openai.com"
    flow = Flow(client, Request("GET", connect.request.data.host, 443, handshake["path"], headers, b""))
    proxy.run(proxy.fw.requestheaders(flow))
    proxy.run(proxy.fw.request(flow))
    assert flow.response is None and flow.metadata["bottle_firewall"].websocket is True
    assert flow.request.headers.get("Authorization") == "Bearer " + real
    assert "bottle-placeholder" not in str(flow.request.headers)
