# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The testnet's scripted OpenAI Responses API (images/testnet/openai_model.py), fed the requests the real
Codex 0.171.0 sent on loopback (fixtures/codex_requests/), and served for real on 127.0.0.1: server-sent
events over HTTP and the WebSocket transport, alone and behind the testnet server as api.openai.com."""

from __future__ import annotations

import base64
import copy
import hashlib
import http.client
import importlib.util
import json
import os
import pathlib
import socket
import struct
import threading
from http.server import ThreadingHTTPServer

import pytest

TESTNET = pathlib.Path(__file__).resolve().parents[3] / "images" / "testnet"
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures" / "codex_requests"
SCENARIO = TESTNET / "scenarios" / "codex-write.json"
WS_FIXTURE = json.loads((FIXTURES / "websocket_write.json").read_text(encoding="utf-8"))
SSE_FIXTURE = json.loads((FIXTURES / "sse_write.json").read_text(encoding="utf-8"))
STARTUP = json.loads((FIXTURES / "startup_requests.json").read_text(encoding="utf-8"))


def load(name, filename):
    spec = importlib.util.spec_from_file_location(name, TESTNET / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def oai():
    return load("testnet_openai_model_under_test", "openai_model.py")


def types(events):
    return [event["type"] for event in events]


def completed(events):
    assert events[-1]["type"] == "response.completed"
    return events[-1]["response"]


# --- the recorded requests -----------------------------------------------------------------

def test_fixtures_hold_no_real_key_and_the_shapes_codex_sent():
    handshake = WS_FIXTURE["handshake"]["headers"]
    assert handshake["upgrade"] == "websocket"
    assert handshake["openai-beta"].startswith("responses_websockets=")
    assert handshake["authorization"] == "Bearer bottle-placeholder-codex"
    for request in SSE_FIXTURE["requests"]:
        assert request["headers"]["authorization"].startswith("Bearer bottle-placeholder-")
        assert request["headers"]["accept"] == "text/event-stream"
        assert "content-encoding" not in request["headers"]  # API-key auth: the body went uncompressed
    text = json.dumps([WS_FIXTURE, SSE_FIXTURE, STARTUP])
    assert "sk-proj-" not in text and "sk-ant-" not in text
    assert {(r["host"], r["path"].split("?")[0]) for r in STARTUP["requests"]} >= {
        ("chatgpt.com", "/backend-api/codex/models"), ("api.github.com", "/repos/openai/plugins"),
        ("ab.chatgpt.com", "/otlp/v1/metrics")}


def test_the_recorded_websocket_conversation_runs_the_scenario(oai):
    conversations = oai.Conversations()
    prewarm, first, second = copy.deepcopy(WS_FIXTURE["messages"])
    assert prewarm["generate"] is False and prewarm["input"] == []
    events, label = oai.answer(prewarm, 100, str(SCENARIO), conversations)
    assert label.startswith("prewarm") and types(events) == ["response.created", "response.in_progress",
                                                             "response.completed"]
    assert completed(events)["output"] == []
    # Codex sends only the new items, naming the response before: the stand-in keeps the rest.
    first["previous_response_id"] = completed(events)["id"]
    events, label = oai.answer(first, 1000, str(SCENARIO), conversations)
    assert label == "turn 0 (write)"
    call = completed(events)["output"][1]
    assert call["type"] == "custom_tool_call" and call["name"] == "exec"
    assert "tools.exec_command" in call["input"]
    second["previous_response_id"] = completed(events)["id"]
    second["input"][0]["call_id"] = call["call_id"]
    events, label = oai.answer(second, 1000, str(SCENARIO), conversations)
    assert label == "turn 1 (report)"
    text = completed(events)["output"][0]["content"][0]["text"]
    assert "written-by-codex" in text


def test_the_recorded_https_requests_run_the_scenario(oai):
    first, second = copy.deepcopy(SSE_FIXTURE["requests"])
    items = oai.items_of(first["body"])
    assert oai.latest_user_text(items) == "write the file"
    assert oai.latest_tool_results(items) == (None, None)
    assert oai.choose(first["body"], items, str(SCENARIO))[1] == "turn 0 (write)"
    items = oai.items_of(second["body"])
    results, calls = oai.latest_tool_results(items)
    assert "written-by-codex" in results and calls.startswith("exec const r = await tools.exec_command(")
    blocks, label = oai.choose(second["body"], items, str(SCENARIO))
    assert label == "turn 1 (report)" and "written-by-codex" in blocks[0]["text"]


def test_harness_text_is_not_the_users(oai):
    content = [{"type": "input_text", "text": "# AGENTS.md instructions\n\n<INSTRUCTIONS>\nbe careful\n</INSTRUCTIONS>"},
               {"type": "input_text", "text": "<environment_context>\n  <cwd>/w</cwd>\n</environment_context>"}]
    items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "do it"}]},
             {"type": "message", "role": "user", "content": content}]
    assert oai.own_text(content) == ""
    assert oai.latest_user_text(items) == "do it"


# --- the streamed shapes ---------------------------------------------------------------------

def test_events_stream_a_message_a_function_call_and_a_custom_tool_call(oai):
    blocks = [{"type": "text", "text": "x" * 60},
              {"type": "tool_use", "id": "t1", "name": "exec_command", "input": {"cmd": "ls -la /tmp"}},
              {"type": "tool_use", "id": "t2", "name": "exec", "input": "await tools.exec_command({cmd: 'ls'})"}]
    response = oai.response_object({"model": "gpt-5-codex"}, oai.output_items(blocks), 10)
    events = oai.stream_events(response)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert types(events)[:2] == ["response.created", "response.in_progress"]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    by_item = {}
    for event in events:
        if "output_index" in event:
            by_item.setdefault(event["output_index"], []).append(event)
    assert types(by_item[0]) == (["response.output_item.added", "response.content_part.added"]
                                 + ["response.output_text.delta"] * 3
                                 + ["response.output_text.done", "response.content_part.done",
                                    "response.output_item.done"])
    assert "".join(e["delta"] for e in by_item[0] if e["type"].endswith(".delta")) == "x" * 60
    fc = by_item[1]
    assert fc[0]["item"]["arguments"] == "" and fc[0]["item"]["status"] == "in_progress"
    deltas = [e["delta"] for e in fc if e["type"] == "response.function_call_arguments.delta"]
    assert len(deltas) >= 3 and json.loads("".join(deltas)) == {"cmd": "ls -la /tmp"}
    assert fc[-2]["type"] == "response.function_call_arguments.done"
    assert fc[-1]["item"]["call_id"].startswith("call_") and fc[-1]["item"]["status"] == "completed"
    custom = by_item[2]
    assert custom[0]["item"]["type"] == "custom_tool_call" and custom[0]["item"]["input"] == ""
    assert "".join(e["delta"] for e in custom if e["type"] == "response.custom_tool_call_input.delta") == \
        "await tools.exec_command({cmd: 'ls'})"
    done = completed(events)
    assert done["status"] == "completed" and len(done["output"]) == 3
    assert done["usage"]["total_tokens"] == done["usage"]["input_tokens"] + done["usage"]["output_tokens"]


def test_function_call_results_match_by_call_id(oai, tmp_path):
    scenario = tmp_path / "s.json"
    scenario.write_text(json.dumps([
        {"user": "go", "reply": [{"type": "tool_use", "name": "exec_command", "input": {"cmd": "uname"}}]},
        {"tool_input": "exec_command {\"cmd\": \"uname\"}", "tool_result": "Linux", "reply": "It is {{tool_result}}."},
    ]))
    tools = [{"type": "function", "name": "exec_command"}]
    request = {"tools": tools, "input": "go"}
    call = completed(oai.answer(request, 10, str(scenario))[0])["output"][0]
    assert call["type"] == "function_call" and json.loads(call["arguments"]) == {"cmd": "uname"}
    request = {"tools": tools, "input": [{"type": "message", "role": "user", "content": "go"}, call,
                                         {"type": "function_call_output", "call_id": call["call_id"], "output": "Linux"}]}
    events, label = oai.answer(request, 10, str(scenario))
    assert label == "turn 1" and completed(events)["output"][0]["content"][0]["text"] == "It is Linux."


def test_side_calls_unmatched_requests_and_unknown_paths(oai, tmp_path):
    events, label = oai.answer({"input": "title this"}, 10, str(SCENARIO))
    assert label.startswith("side call") and completed(events)["output"][0]["content"][0]["text"] == "OK."
    events, label = oai.answer({"tools": [{"type": "function", "name": "x"}], "input": "something else"}, 10,
                               str(SCENARIO))
    assert label == "unmatched" and "has no answer" in completed(events)["output"][0]["content"][0]["text"]
    events, label = oai.answer({"tools": [{"type": "function", "name": "x"}], "input": "hi"}, 10,
                               str(tmp_path / "missing.json"))
    assert label == "no-scenario"
    response = oai.respond("GET", "/v1/nothing", {}, b"")
    assert response.status == 404 and json.loads(response.body)["error"]["type"] == "not_found"
    assert dict(response.headers)["x-request-id"].startswith("req_testnet_")
    assert oai.respond("POST", "/v1/responses", {}, b"[1]").status == 400


# --- served for real on loopback ----------------------------------------------------------------

def ws_frame(payload, opcode=1):
    mask = os.urandom(4)
    size = len(payload)
    head = bytes([0x80 | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_ws(sock_file):
    first, second = sock_file.read(2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", sock_file.read(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", sock_file.read(8))[0]
    assert not second & 0x80, "server frames are never masked"
    return first & 0x0F, sock_file.read(size)


def handshake(port, host="127.0.0.1"):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET /v1/responses HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                  "Authorization: Bearer bottle-placeholder-t\r\n"
                  "OpenAI-Beta: responses_websockets=2026-02-06\r\n\r\n" % (host, key)).encode())
    reader = sock.makefile("rb")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += reader.read(1)
    expected = base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    assert head.startswith(b"HTTP/1.1 101")
    assert b"Sec-WebSocket-Accept: " + expected in head
    assert b"permessage-deflate" not in head  # frames stay uncompressed
    return sock, reader


def ws_turn(sock, reader, request):
    sock.sendall(ws_frame(json.dumps(dict({"type": "response.create"}, **request)).encode()))
    events = []
    while not events or events[-1]["type"] not in ("response.completed", "error"):
        opcode, payload = read_ws(reader)
        assert opcode == 1
        events.append(json.loads(payload))
    return events


@pytest.fixture
def standalone(oai):
    oai.StandaloneHandler.scenario = str(SCENARIO)
    server = ThreadingHTTPServer(("127.0.0.1", 0), oai.StandaloneHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_websocket_transport_on_loopback(standalone):
    sock, reader = handshake(standalone)
    try:
        sock.sendall(ws_frame(b"are you there", 9))
        assert read_ws(reader) == (10, b"are you there")
        events = ws_turn(sock, reader, {"generate": False, "input": []})
        assert types(events)[-1] == "response.completed"
        tools = [{"type": "additional_tools", "tools": []}]
        events = ws_turn(sock, reader, {"previous_response_id": events[-1]["response"]["id"],
                                        "input": tools + [{"type": "message", "role": "user",
                                                           "content": [{"type": "input_text",
                                                                        "text": "write the file"}]}]})
        call = events[-1]["response"]["output"][1]
        events = ws_turn(sock, reader, {"previous_response_id": events[-1]["response"]["id"],
                                        "input": [{"type": "custom_tool_call_output", "call_id": call["call_id"],
                                                   "output": "written-by-codex"}]})
        assert "written-by-codex" in events[-1]["response"]["output"][0]["content"][0]["text"]
        assert ws_turn(sock, reader, {"type": "other"})[-1]["type"] == "error"
        sock.sendall(ws_frame(b"\x03\xe8", 8))
        assert read_ws(reader)[0] == 8
    finally:
        sock.close()


def test_sse_over_http_on_loopback(standalone):
    conn = http.client.HTTPConnection("127.0.0.1", standalone, timeout=10)
    body = json.dumps({"stream": True, "tools": [{"type": "function", "name": "x"}], "input": "write the file"})
    conn.request("POST", "/v1/responses", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
    assert response.getheader("Transfer-Encoding") == "chunked"
    frames = response.read().decode().strip().split("\n\n")
    events = []
    for frame in frames:
        name, data = frame.split("\n")
        event = json.loads(data[len("data: "):])
        assert name == "event: " + event["type"]
        events.append(event)
    assert completed(events)["output"][1]["name"] == "exec"


def test_the_testnet_server_answers_as_api_openai_com(tmp_path, monkeypatch):
    monkeypatch.setenv("TESTNET_SCENARIO", str(SCENARIO))
    server_mod = load("testnet_server_with_openai_under_test", "server.py")
    log = tmp_path / "requests.jsonl"
    monkeypatch.setattr(server_mod, "LOG_PATH", str(log))
    server = server_mod.ThreadingHTTPServer(("127.0.0.1", 0), server_mod.Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        sock, reader = handshake(port, host="api.openai.com")
        events = ws_turn(sock, reader, {"tools": [{"type": "function", "name": "x"}], "input": "write the file"})
        sock.close()
        assert completed(events)["output"][1]["type"] == "custom_tool_call"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v1/models", headers={"Host": "api.openai.com"})
        assert json.loads(conn.getresponse().read())["object"] == "list"
        conn.request("GET", "/v1/models", headers={"Host": "allowed.bottle.test"})
        assert json.loads(conn.getresponse().read())["ok"] is True  # other hosts: the echo, as before
    finally:
        server.shutdown()
        server.server_close()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    upgrade = records[0]
    assert upgrade["host"] == "api.openai.com" and upgrade["headers"]["authorization"] == "Bearer bottle-placeholder-t"
    assert records[1]["websocket_message"] is True and json.loads(records[1]["body"])["input"] == "write the file"


def test_standalone_logs_and_refuses_tunnels_without_certificates(oai, tmp_path):
    oai.StandaloneHandler.scenario = str(SCENARIO)
    oai.StandaloneHandler.log_path = str(tmp_path / "log.jsonl")
    server = ThreadingHTTPServer(("127.0.0.1", 0), oai.StandaloneHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        conn.request("CONNECT", "chatgpt.com:443")
        response = conn.getresponse()
        assert response.status == 502 and b"--tls-certs" in response.read()
    finally:
        server.shutdown()
        server.server_close()
        oai.StandaloneHandler.log_path = None
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(e["method"], e["path"]) for e in logged] == [("CONNECT", "chatgpt.com:443")]


def test_main_serves_through_model_serve_standalone(oai, monkeypatch):
    """One standalone command line for both stand-ins (model.serve_standalone), each with its handler."""
    seen = {}

    def fake(handler, name, description, argv=None, **helps):
        seen.update(handler=handler, name=name, argv=argv, helps=helps)
    monkeypatch.setattr(oai.MODEL, "serve_standalone", fake)
    oai.main(["--serve", "127.0.0.1:0"])
    assert seen["handler"] is oai.StandaloneHandler and seen["name"] == "openai model"
    assert seen["argv"] == ["--serve", "127.0.0.1:0"] and "WebSocket" in seen["helps"]["log_help"]
