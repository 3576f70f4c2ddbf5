# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The testnet's scripted Anthropic API (images/testnet/model.py), served for real on 127.0.0.1
by the testnet server under the name api.anthropic.com, fed the request shapes Claude Code 2.1.330
sent in a local run (fixtures/claude_requests/, see its README.md)."""

from __future__ import annotations

import copy
import http.client
import importlib.util
import json
import pathlib
import shutil
import socket
import ssl
import subprocess

import pytest

TESTNET = pathlib.Path(__file__).resolve().parents[3] / "images" / "testnet"
SCENARIOS = TESTNET / "scenarios"
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures" / "claude_requests"
API = "api.anthropic.com"


def load(name, filename):
    spec = importlib.util.spec_from_file_location(name, TESTNET / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fixture(name):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


FETCH_REQUESTS = fixture("messages_fetch.json")   # the prompt, then the curl tool_result
DEMO_REQUESTS = fixture("messages_demo.json")     # the prompt, then three tool_results
STARTUP = fixture("startup_requests.json")
FETCH_SCENARIO = json.loads((SCENARIOS / "fetch.json").read_text(encoding="utf-8"))


@pytest.fixture
def model():
    return load("testnet_model_under_test", "model.py")


@pytest.fixture
def server_mod(tmp_path, monkeypatch):
    module = load("testnet_server_with_model_under_test", "server.py")
    monkeypatch.setattr(module, "LOG_PATH", str(tmp_path / "requests.jsonl"))
    monkeypatch.setenv("TESTNET_SCENARIO", str(SCENARIOS / "fetch.json"))
    return module


@pytest.fixture
def port(server_mod):
    server = server_mod.ThreadingHTTPServer(("127.0.0.1", 0), server_mod.Handler)
    server.daemon_threads = True
    server_mod.serve(server)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def records(module):
    with open(module.LOG_PATH, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def post(port, path, body, host=API + ":443", headers=None, conn=None):
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, body=data, headers=dict({"Host": host, "Content-Type": "application/json",
                                                        "x-api-key": "sk-ant-test-placeholder",
                                                        "anthropic-version": "2023-06-01"}, **(headers or {})))
    response = conn.getresponse()
    return response, response.read()


def parse_sse(data):
    """(event name, decoded data) pairs, the way an SSE client reads them."""
    events = []
    for frame in data.decode().split("\n\n"):
        if not frame.strip():
            continue
        fields = dict(line.split(": ", 1) for line in frame.split("\n"))
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def assemble(events):
    """The message a streaming client builds from the events (the SDK's accumulation)."""
    message, blocks, partial = None, {}, {}
    for _name, data in events:
        kind = data["type"]
        if kind == "message_start":
            message = copy.deepcopy(data["message"])
        elif kind == "content_block_start":
            blocks[data["index"]] = copy.deepcopy(data["content_block"])
            partial[data["index"]] = ""
        elif kind == "content_block_delta":
            delta = data["delta"]
            if delta["type"] == "text_delta":
                blocks[data["index"]]["text"] += delta["text"]
            else:
                partial[data["index"]] += delta["partial_json"]
        elif kind == "content_block_stop":
            if blocks[data["index"]]["type"] == "tool_use":
                blocks[data["index"]]["input"] = json.loads(partial[data["index"]] or "{}")
        elif kind == "message_delta":
            message.update(data["delta"])
            message["usage"].update(data["usage"])
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message


def streamed(port, body, **kwargs):
    response, data = post(port, "/v1/messages?beta=true", body, **kwargs)
    assert response.status == 200, data
    events = parse_sse(data)
    return response, events, assemble(events)


# --- the recorded request shapes ---------------------------------------------------------

def test_fixtures_hold_claude_code_shapes_and_no_secret():
    first = FETCH_REQUESTS[0]
    assert first["method"] == "POST" and first["path"] == "/v1/messages" and first["query"] == "beta=true"
    assert {"x-api-key", "anthropic-version", "anthropic-beta", "content-type"} <= set(first["header_names"])
    assert first["body"]["stream"] is True and first["body"]["tools"]
    assert {"model", "messages", "system", "tools", "max_tokens", "stream"} <= set(first["body"])
    names = ("messages_fetch.json", "messages_demo.json", "startup_requests.json")
    raw = "".join((FIXTURES / name).read_text() for name in names)
    assert "sk-ant" not in raw and "device_id" not in raw


# --- the SSE stream ----------------------------------------------------------------------

def test_prompt_streams_a_tool_call_exactly_as_the_api_does(server_mod, port):
    response, events, message = streamed(port, FETCH_REQUESTS[0]["body"])
    assert response.getheader("Content-Type").startswith("text/event-stream")
    assert response.getheader("request-id").startswith("req_")
    assert response.getheader("Transfer-Encoding") == "chunked"
    names = [event[0] for event in events]
    assert all(name == data["type"] for name, data in events)  # "event:" names the data's type
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("ping") == 1 and names.index("ping") == 2  # after the first content_block_start
    start = events[0][1]["message"]
    assert start["role"] == "assistant" and start["type"] == "message" and start["content"] == []
    assert start["model"] == FETCH_REQUESTS[0]["body"]["model"] and start["stop_reason"] is None
    assert start["id"].startswith("msg_") and start["usage"]["input_tokens"] > 100
    # every block opens, takes deltas of its own kind and closes, in index order
    opened = [data for name, data in events if name == "content_block_start"]
    assert [(d["index"], d["content_block"]["type"]) for d in opened] == [(0, "text"), (1, "tool_use")]
    assert names.count("content_block_stop") == 2
    json_deltas = [d["delta"]["partial_json"] for n, d in events
                   if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"]
    assert len([piece for piece in json_deltas if piece]) >= 3  # split across several deltas
    assert opened[1]["content_block"]["input"] == {} and opened[1]["content_block"]["id"].startswith("toolu_")
    # what a client reassembles is what the scenario says
    expected = FETCH_SCENARIO[0]["reply"]
    assert message["content"][0] == expected[0]
    tool = message["content"][1]
    assert (tool["type"], tool["name"], tool["input"]) == ("tool_use", "Bash", expected[1]["input"])
    assert message["stop_reason"] == "tool_use" and message["usage"]["output_tokens"] > 0
    (entry,) = records(server_mod)  # recorded as any request, the key included
    assert entry["host"] == API and entry["headers"]["x-api-key"] == "sk-ant-test-placeholder"


def test_tool_result_gets_the_final_answer_with_the_result_in_it(port):
    events, message = streamed(port, FETCH_REQUESTS[1]["body"])[1:]
    assert message["stop_reason"] == "end_turn" and len(message["content"]) == 1
    text = message["content"][0]["text"]
    assert text.startswith("The page https://allowed.bottle.test/hello answered:")
    assert '"host": "allowed.bottle.test"' in text and '"path": "/hello"' in text  # the body curl printed
    assert sum(1 for n, d in events if n == "content_block_delta") > 1  # text split too


def test_stream_false_answers_one_json_message(port):
    body = dict(FETCH_REQUESTS[0]["body"], stream=False)
    response, data = post(port, "/v1/messages", body)
    message = json.loads(data)
    assert response.status == 200 and response.getheader("Content-Type") == "application/json"
    assert response.getheader("request-id")
    assert message["type"] == "message" and message["stop_reason"] == "tool_use"
    assert [b["type"] for b in message["content"]] == ["text", "tool_use"]
    assert message["content"][1]["input"] == FETCH_SCENARIO[0]["reply"][1]["input"]


def test_connection_stays_usable_after_a_stream(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for request in FETCH_REQUESTS:
        response, data = post(port, "/v1/messages?beta=true", request["body"], conn=conn)
        assert response.status == 200 and parse_sse(data)[-1][0] == "message_stop"


def test_any_port_and_case_of_the_name_is_the_api(port):
    for host in (API, API + ":8443", "API.Anthropic.com"):
        message = streamed(port, FETCH_REQUESTS[0]["body"], host=host)[2]
        assert message["stop_reason"] == "tool_use"
    response, data = post(port, "/v1/messages", FETCH_REQUESTS[0]["body"], host="allowed.bottle.test")
    assert json.loads(data)["host"] == "allowed.bottle.test"  # other names still echo


# --- count_tokens, start-up calls, errors ------------------------------------------------

def test_count_tokens_is_plausible(port):
    small = {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}
    response, data = post(port, "/v1/messages/count_tokens?beta=true", small)
    assert response.status == 200 and response.getheader("request-id")
    few = json.loads(data)["input_tokens"]
    data = post(port, "/v1/messages/count_tokens", FETCH_REQUESTS[1]["body"])[1]
    many = json.loads(data)["input_tokens"]
    assert isinstance(few, int) and 0 < few < 50 < many
    response, data = post(port, "/v1/messages/count_tokens", b"{not json")
    assert response.status == 400 and json.loads(data)["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("run", sorted(STARTUP["runs"]))
def test_every_start_up_call_claude_code_made_is_answered(port, run):
    assert STARTUP["runs"][run], "no start-up call recorded"
    for call in STARTUP["runs"][run]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        target = call["path"] + ("?" + call["query"] if call["query"] else "")
        body = json.dumps({key: [] for key in call["body_keys"] or []}).encode() if call["method"] == "POST" else None
        conn.request(call["method"], target, body=body, headers={"Host": API, "x-api-key": "k"})
        response = conn.getresponse()
        data = response.read()
        assert response.status in (200, 204), (call, data)
        assert response.getheader("request-id")  # a 204 without it reads as a proxy's answer
        if response.status == 200 and call["method"] != "HEAD":
            assert isinstance(json.loads(data), dict)


def test_start_up_answers_mean_nothing_special(model):
    def payload(method, path):
        response = model.respond(method, path, {}, b"{}")
        return response.status, json.loads(response.body) if response.body else None

    assert payload("GET", "/api/claude_code/settings") == (204, None)
    assert payload("GET", "/api/claude_code/policy_limits") == (200, {"restrictions": {}})
    assert payload("GET", "/api/claude_code/organizations/metrics_enabled") == (200, {"metrics_logging_enabled": False})
    assert payload("GET", "/api/claude_code_penguin_mode") == (200, {"enabled": False, "disabled_reason": "preference"})
    assert payload("GET", "/api/directory/server-urls") == (200, {"urls": []})
    assert payload("POST", "/api/eval/sdk-abc") == (200, {"features": {}})
    assert payload("GET", "/v1/models")[1]["data"][0]["type"] == "model"


def test_unknown_path_is_the_api_s_404(port):
    response, data = post(port, "/v1/nope", {})
    error = json.loads(data)
    assert response.status == 404 and response.getheader("request-id")
    assert error["type"] == "error" and error["error"]["type"] == "not_found_error"
    response, data = post(port, "/v1/messages", {"model": "m"})
    assert response.status == 400 and json.loads(data)["error"]["type"] == "invalid_request_error"


# --- the scenario ------------------------------------------------------------------------

def prompt_request(text, tools=True, model_name="claude-opus-x", stream=True):
    return {"model": model_name, "max_tokens": 100, "stream": stream,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\nsay fetch\n</system-reminder>\n"},
                {"type": "text", "text": text}]}],
            **({"tools": [{"name": "Bash", "input_schema": {"type": "object"}}]} if tools else {})}


def test_unmatched_prompt_ends_the_conversation_readably(port):
    message = streamed(port, prompt_request("hello there"))[2]
    assert message["stop_reason"] == "end_turn"
    text = message["content"][0]["text"]
    assert "has no answer" in text and "fetch.json" in text and '"hello there"' in text
    assert "say fetch" not in text  # the system reminder is not the user's text


def test_unmatched_tool_result_names_the_result_and_the_call(model, tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps([{"tool_result": "never printed", "reply": "x"}]))
    content, label = model.choose(FETCH_REQUESTS[1]["body"], str(path))
    assert label == "unmatched" and "tool result" in content[0]["text"]
    assert "curl -sS https://allowed.bottle.test/hello" in content[0]["text"]


def test_side_calls_get_a_neutral_answer_and_consume_no_turn(model):
    title = prompt_request("fetch the page", tools=False, model_name="claude-haiku-4-5")
    content, label = model.choose(title, str(SCENARIOS / "fetch.json"))
    assert content == [{"type": "text", "text": model.SIDE_REPLY}] and label.startswith("side call")
    content = model.choose(prompt_request("fetch the page"), str(SCENARIOS / "fetch.json"))[0]
    assert content[1]["type"] == "tool_use"  # the main loop still gets the scenario's first turn


def test_scenario_is_reread_on_every_request(port, tmp_path, monkeypatch):
    path = tmp_path / "scenario.json"
    monkeypatch.setenv("TESTNET_SCENARIO", str(path))
    message = streamed(port, prompt_request("anything"))[2]
    assert "no scenario file %s" % path in message["content"][0]["text"]
    path.write_text(json.dumps([{"reply": "first"}]))
    assert streamed(port, prompt_request("anything"))[2]["content"][0]["text"] == "first"
    path.write_text(json.dumps({"turns": [{"user_re": "^any", "reply": "second"}]}))
    assert streamed(port, prompt_request("anything"))[2]["content"][0]["text"] == "second"
    path.write_text("[{broken")
    text = streamed(port, prompt_request("anything"))[2]["content"][0]["text"]
    assert text.startswith("[testnet model] cannot read scenario")


@pytest.mark.parametrize("turns, message", [
    ({"turn": []}, "a scenario is a list of turns"),
    ([{"user": "x"}], "turn 0 has no reply"),
    ([{"reply": "x", "usr": "typo"}], "unknown keys ['usr']"),
    ([{"reply": "x", "user_re": "("}], "user_re is not a regular expression"),
    ([{"reply": [{"type": "tool_use", "name": "Bash"}]}], "reply[0] is not a text block or a tool_use block"),
    ([{"name": "n", "reply": 3}], "turn 0 (n): reply is neither"),
])
def test_bad_scenarios_are_named(model, turns, message):
    with pytest.raises(model.ScenarioError) as err:
        model.parse_scenario(turns)
    assert message in str(err.value)


@pytest.mark.parametrize("name", ["fetch.json", "demo.json"])
def test_shipped_scenarios_are_valid(model, name):
    assert model.load_scenario(str(SCENARIOS / name))


def test_conditions_placeholders_and_regexes(model, tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps([
        {"user_re": r"(?i)^FETCH\b", "reply": "regex on {{user}}"},
        {"tool_input_re": r"^Bash .*allowed\.bottle\.test", "tool_result_re": r'"ok": true', "reply": "got {{tool_result}}"},
    ]))
    content, label = model.choose(FETCH_REQUESTS[0]["body"], str(path))
    assert label == "turn 0" and content[0]["text"] == "regex on fetch the page"
    content, label = model.choose(FETCH_REQUESTS[1]["body"], str(path))
    assert label == "turn 1" and content[0]["text"].startswith('got {"ok": true')


def test_a_turn_for_a_prompt_never_answers_a_tool_result(model, tmp_path):
    # otherwise a scenario whose first turn calls a tool would call it forever
    path = tmp_path / "s.json"
    path.write_text(json.dumps([{"user": "fetch", "reply": [{"type": "tool_use", "name": "Bash", "input": {}}]}]))
    assert model.choose(FETCH_REQUESTS[1]["body"], str(path))[1] == "unmatched"


def test_a_looping_scenario_is_stopped(model, tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps([{"tool_result": "", "reply": [{"type": "tool_use", "name": "Bash", "input": {}}]}]))
    body = copy.deepcopy(FETCH_REQUESTS[1]["body"])
    step = body["messages"][-2:]
    body["messages"] += step * model.MAX_STEPS
    content, label = model.choose(body, str(path))
    assert label == "max-steps" and "stopped" in content[0]["text"]


def test_demo_scenario_walks_claude_code_s_conversation(model):
    path = str(SCENARIOS / "demo.json")
    commands = []
    for request in DEMO_REQUESTS[:3]:
        content = model.choose(request["body"], path)[0]
        commands.append(content[-1]["input"]["command"])
    assert commands == ["pwd && ls -la", "curl -sS https://allowed.bottle.test/hello",
                        "curl -sS https://blocked.bottle.test/hello"]
    # locally the blocked host answered: the report says it was not refused
    content, label = model.choose(DEMO_REQUESTS[3]["body"], path)
    assert label == "turn 4 (report anything else)" and "was expected to be refused" in content[0]["text"]
    # in a bottle egress refuses it
    refused = copy.deepcopy(DEMO_REQUESTS[3]["body"])
    refused["messages"][-1]["content"][0]["content"] = (
        "blocked by egress: host blocked.bottle.test is not on this bottle's allowlist")
    content, label = model.choose(refused, path)
    assert label == "turn 3 (report the refusal)" and content[0]["type"] == "text"
    assert "blocked by egress: host blocked.bottle.test" in content[0]["text"]


def test_tool_result_content_as_blocks_is_read_too(model):
    body = copy.deepcopy(FETCH_REQUESTS[1]["body"])
    result = body["messages"][-1]["content"][0]
    result["content"] = [{"type": "text", "text": "block one"}, {"type": "text", "text": "block two"}]
    content = model.choose(body, str(SCENARIOS / "fetch.json"))[0]
    assert content[0]["text"].endswith("block one\nblock two")


# --- HTTPS under the test CA -------------------------------------------------------------

def test_https_as_api_anthropic_com_under_the_test_ca(server_mod, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    subprocess.run(["sh", str(TESTNET / "gen-certs.sh"), str(tmp_path), "allowed.bottle.test", API], check=True)
    server = server_mod.TLSServer(("127.0.0.1", 0), server_mod.TLSHandler, server_mod.tls_context(str(tmp_path)))
    server_mod.serve(server)
    try:
        client = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        conn = http.client.HTTPSConnection("127.0.0.1", server.server_address[1], timeout=10, context=client)
        conn.sock = client.wrap_socket(socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10),
                                       server_hostname=API)
        response, data = post(None, "/v1/messages?beta=true", FETCH_REQUESTS[0]["body"], host=API, conn=conn)
        assert response.status == 200 and assemble(parse_sse(data))["stop_reason"] == "tool_use"
    finally:
        server.shutdown()
        server.server_close()
    (entry,) = records(server_mod)
    assert (entry["sni"], entry["host"], entry["scheme"]) == (API, API, "https")
