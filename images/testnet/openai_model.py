"""A scripted stand-in for the OpenAI Responses API (tests and the keyless demo only).

The testnet server (server.py) hands every request whose Host is api.openai.com (any port) to
this module, so the real Codex CLI runs against a "model" that answers from the same scenario
files as model.py (the Anthropic stand-in) instead of calling one. Nothing here ever contacts
OpenAI. Python 3 standard library.

Endpoints
---------
  POST /v1/responses          the scripted answer, streamed as server-sent events the way the API
                              streams them (below), chunked, content-type text/event-stream
  GET  /v1/responses          with Upgrade: websocket - the Responses WebSocket transport Codex
                              opens first: each client text frame {"type": "response.create",
                              ...request...} is answered by the same events, one JSON text frame
                              each; "generate": false (Codex's prewarm) gets created + completed
                              with no output. Frames are never compressed (permessage-deflate is
                              not accepted).
  GET  /v1/models             a short model list
  anything else               a 404 with the API's error body ({"error": {"type", "message"}})
Every response carries an x-request-id header.

Streamed events (sequence_number counts up from 0)
--------------------------------------------------
  response.created, response.in_progress
  per output item, in order:
    a message: response.output_item.added, response.content_part.added,
               response.output_text.delta (the text in pieces), response.output_text.done,
               response.content_part.done, response.output_item.done
    a function call (tool_use whose input is an object): output_item.added,
               response.function_call_arguments.delta (the arguments' JSON in pieces),
               response.function_call_arguments.done, output_item.done
    a custom (freeform) tool call (tool_use whose input is a string - Codex 0.171.0's `exec`,
               JavaScript that calls `tools.exec_command(...)`): output_item.added,
               response.custom_tool_call_input.delta (in pieces), ..._input.done,
               output_item.done
  response.completed, with the whole response (output items and usage)

What Codex 0.171.0 sends (observed on loopback, docs/agents-codex.md; request shapes in
tests/unit/images/fixtures/codex_requests/): the tools travel as an input item of type
"additional_tools" (namespace "functions": the custom tool "exec", wait, ...), the prompt as a
user message after a user message holding <environment_context>; a tool's result comes back as a
custom_tool_call_output (or function_call_output) item with the call's call_id, after the call.

Scenarios
---------
The scenario files of model.py, read the same way (env TESTNET_SCENARIO): turns match on the
latest user text, the latest tool results and the tool calls they answer ("NAME INPUT": the
input's JSON with keys sorted for a function call, the raw input for a custom tool call). A reply
block {"type": "tool_use", "name": ..., "input": {...}} becomes a function_call item;
with "input" a string it becomes a custom_tool_call (Codex's exec). A request that offers no
tools (no "tools", no additional_tools item) is a side call: it gets model.SIDE_REPLY.

Running it alone (plain HTTP and WebSocket, for a local check against the real Codex)
------------------------------------------------------------------------------------
  python3 images/testnet/openai_model.py --serve 127.0.0.1:8766 \\
      --scenario images/testnet/scenarios/codex-write.json --log /tmp/openai-requests.jsonl &
  CODEX_API_KEY=bottle-placeholder-x HOME=$(mktemp -d) codex exec --json --skip-git-repo-check \\
      -c openai_base_url=http://127.0.0.1:8766/v1 -c sandbox_mode='"danger-full-access"' "write the file"
Run both inside `unshare -rn sh -c 'ip link set lo up; ...'` to be sure nothing leaves loopback.
"""

import base64
import hashlib
import importlib.util
import json
import os
import re
import struct
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

API_HOSTS = frozenset({"api.openai.com"})
MODELS = ["gpt-5-codex", "gpt-5", "gpt-5-mini"]
TEXT_CHUNK = 24
JSON_PARTS = 3
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_FRAME = 64 * 1024 * 1024
# Sections Codex adds to user messages of its own (not what the human typed).
_HARNESS = re.compile(r"<(environment_context|user_instructions|turn_aborted|user_shell_command)>.*?</\1>", re.S)
_AGENTS_MD = re.compile(r"# AGENTS\.md instructions[^\n]*\s*<INSTRUCTIONS>.*?</INSTRUCTIONS>", re.S)
OUTPUT_TYPES = ("function_call_output", "custom_tool_call_output")
CALL_TYPES = ("function_call", "custom_tool_call")


def _load_model():
    """model.py, next to this file (the scenario machinery): loaded by path, no package needed."""
    spec = importlib.util.spec_from_file_location(
        "testnet_model_for_openai", os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODEL = _load_model()


# --- the conversation ---------------------------------------------------------------------

def content_text(content):
    """The text of a message's content (a string, or parts of input_text/output_text/text)."""
    if isinstance(content, str):
        return content
    parts = []
    for part in content or []:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return "\n".join(parts)


def own_text(content):
    """The user's own text: Codex's harness sections (<environment_context>, the AGENTS.md text) removed."""
    return _AGENTS_MD.sub("", _HARNESS.sub("", content_text(content))).strip()


def items_of(request):
    """The request's input as a list of items (a plain string is one user message)."""
    value = request.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    return [item for item in value or [] if isinstance(item, dict)]


def latest_user_text(items):
    for item in reversed(items):
        if item.get("type", "message") == "message" and item.get("role") == "user":
            text = own_text(item.get("content"))
            if text:
                return text
    return ""


def call_text(item):
    """"NAME INPUT" of a function or custom tool call (a function's arguments as JSON, keys sorted)."""
    if item.get("type") == "function_call":
        try:
            value = json.dumps(json.loads(item.get("arguments") or "{}"), sort_keys=True)
        except ValueError:
            value = str(item.get("arguments"))
        return "%s %s" % (item.get("name"), value)
    return "%s %s" % (item.get("name"), item.get("input", ""))


def latest_tool_results(items):
    """(results, calls) of the tool outputs at the end of the conversation (items that are neither
    messages nor outputs - reasoning, configuration updates - skipped); (None, None) when the
    conversation ends with a user message instead."""
    outputs = []
    for item in reversed(items):
        kind = item.get("type", "message")
        if kind in OUTPUT_TYPES:
            outputs.append(item)
        elif kind == "message" and item.get("role") in ("user", "assistant"):
            if item.get("role") == "user" and not own_text(item.get("content")):
                continue  # Codex's own context (<environment_context>...), not a turn
            break
    if not outputs:
        return None, None
    outputs.reverse()
    calls_by_id = {item.get("call_id"): item for item in items if item.get("type") in CALL_TYPES}
    results, calls = [], []
    for output in outputs:
        value = output.get("output")
        results.append(value if isinstance(value, str) else content_text(value))
        call = calls_by_id.get(output.get("call_id"))
        if call is not None:
            calls.append(call_text(call))
    return "\n".join(results), "\n".join(calls)


def offers_tools(request, items):
    return bool(request.get("tools")) or any(item.get("type") == "additional_tools" for item in items)


def choose(request, items, path):
    """(content blocks as model.render gives them, label) for one request."""
    if not offers_tools(request, items):
        return [{"type": "text", "text": MODEL.SIDE_REPLY}], "side call (%s)" % request.get("model")
    user = latest_user_text(items)
    results, calls = latest_tool_results(items)
    steps = sum(1 for item in items if item.get("type") in CALL_TYPES
                or (item.get("type") == "message" and item.get("role") == "assistant"))
    if steps >= MODEL.MAX_STEPS:
        return [{"type": "text", "text": "[testnet model] stopped: %d assistant items, more than the scenario %s "
                 "should need" % (steps, path)}], "max-steps"
    try:
        turns = MODEL.load_scenario(path)
    except MODEL.ScenarioError as exc:
        return [{"type": "text", "text": "[testnet model] %s" % exc}], "no-scenario"
    for n, turn in enumerate(turns):
        if MODEL.turn_matches(turn, user, results, calls):
            return MODEL.render(turn["reply"], user, results), "turn %d%s" % (
                n, " (%s)" % turn["name"] if "name" in turn else "")
    what = "user text %s" % MODEL._clip(user) if results is None else "tool result %s after %s" % (
        MODEL._clip(results), MODEL._clip(calls or "an unknown tool call"))
    return [{"type": "text", "text": "[testnet model] the scenario %s has no answer for this request (%s)"
             % (path, what)}], "unmatched"


# --- the answer ---------------------------------------------------------------------------

def new_id(prefix):
    return prefix + uuid.uuid4().hex[:24]


def output_items(blocks):
    """Responses API output items for model.render's content blocks (completed)."""
    items = []
    for block in blocks:
        if block["type"] == "text":
            items.append({"id": new_id("msg_"), "type": "message", "status": "completed", "role": "assistant",
                          "content": [{"type": "output_text", "text": block["text"], "annotations": []}]})
        elif isinstance(block["input"], str):
            items.append({"id": new_id("ctc_"), "type": "custom_tool_call", "status": "completed",
                          "call_id": new_id("call_"), "name": block["name"], "input": block["input"]})
        else:
            items.append({"id": new_id("fc_"), "type": "function_call", "status": "completed",
                          "call_id": new_id("call_"), "name": block["name"],
                          "arguments": json.dumps(block["input"])})
    return items


def response_object(request, output, input_tokens, status="completed"):
    output_tokens = MODEL.estimate_tokens(output) if output else 0
    return {
        "id": new_id("resp_"), "object": "response", "created_at": int(time.time()), "status": status,
        "model": request.get("model") or MODELS[0], "output": output,
        "parallel_tool_calls": bool(request.get("parallel_tool_calls")),
        "previous_response_id": request.get("previous_response_id"),
        "usage": {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": input_tokens + output_tokens},
    }


def _pending(item):
    """``item`` as output_item.added shows it: in progress, its text / arguments / input empty."""
    if item["type"] == "message":
        return dict(item, status="in_progress", content=[])
    return dict(item, status="in_progress", **({"arguments": ""} if item["type"] == "function_call" else {"input": ""}))


def stream_events(response):
    """The event mappings (each with type, sequence_number) the API streams for ``response``."""
    events = []

    def add(kind, **fields):
        events.append(dict({"type": kind, "sequence_number": len(events)}, **fields))
    started = dict(response, status="in_progress", output=[], usage=None)
    add("response.created", response=started)
    add("response.in_progress", response=started)
    for index, item in enumerate(response["output"]):
        add("response.output_item.added", output_index=index, item=_pending(item))
        ref = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            text = item["content"][0]["text"]
            part = {"type": "output_text", "text": "", "annotations": []}
            add("response.content_part.added", content_index=0, part=part, **ref)
            for piece in MODEL.split_text(text, TEXT_CHUNK):
                add("response.output_text.delta", content_index=0, delta=piece, logprobs=[], **ref)
            add("response.output_text.done", content_index=0, text=text, logprobs=[], **ref)
            add("response.content_part.done", content_index=0, part=dict(part, text=text), **ref)
        elif item["type"] == "function_call":
            for piece in MODEL.split_json(item["arguments"], JSON_PARTS):
                add("response.function_call_arguments.delta", delta=piece, **ref)
            add("response.function_call_arguments.done", arguments=item["arguments"], **ref)
        else:
            for piece in MODEL.split_json(item["input"], JSON_PARTS):
                add("response.custom_tool_call_input.delta", delta=piece, **ref)
            add("response.custom_tool_call_input.done", input=item["input"], **ref)
        add("response.output_item.done", output_index=index, item=item)
    add("response.completed", response=response)
    return events


def sse(event):
    return ("event: %s\ndata: %s\n\n" % (event["type"], json.dumps(event, separators=(",", ":")))).encode()


class Conversations:
    """The input and output of each response, by id, so that a request naming previous_response_id
    (Codex sends only the new items on a WebSocket it keeps open) is read as the whole conversation."""

    def __init__(self, keep=256):
        self.keep = keep
        self._items = {}
        self._lock = threading.Lock()

    def full_input(self, request):
        items = items_of(request)
        previous = request.get("previous_response_id")
        with self._lock:
            return list(self._items.get(previous, [])) + items if previous else items

    def remember(self, response_id, items):
        with self._lock:
            self._items[response_id] = items
            while len(self._items) > self.keep:
                self._items.pop(next(iter(self._items)))


CONVERSATIONS = Conversations()


def answer(request, body_size, path=None, conversations=None):
    """(events, label) answering one response.create (HTTP body or WebSocket message)."""
    conversations = conversations or CONVERSATIONS
    scenario = path or MODEL.scenario_path()
    items = conversations.full_input(request)
    input_tokens = max(1, body_size // 4)
    if request.get("generate") is False:
        response = response_object(request, [], input_tokens)
        label = "prewarm (generate: false)"
    else:
        blocks, label = choose(request, items, scenario)
        response = response_object(request, output_items(blocks), input_tokens)
    conversations.remember(response["id"], items + response["output"])
    return stream_events(response), label


class Response(MODEL.Response):
    """model.Response with the OpenAI request-id header; ``events`` are event mappings."""

    def __init__(self, status, payload=None, events=None):
        super().__init__(status, payload, events)
        self.headers[0] = ("x-request-id", self.headers[0][1])


def error(status, kind, text):
    return Response(status, {"error": {"type": kind, "code": None, "param": None, "message": text}})


def respond(method, target, headers, body, path=None):
    """The Response for one plain HTTP request to the API (WebSocket upgrades: ``websocket``)."""
    del headers
    url_path = urlsplit(target).path.rstrip("/") or "/"
    if url_path == "/v1/responses" and method == "POST":
        request = MODEL.decode_json(body)
        if request is None:
            return error(400, "invalid_request_error", "a JSON object body is required")
        events, label = answer(request, len(body or b""), path)
        response = Response(200, events=events)
        response.label = label
        return response
    if (method, url_path) == ("GET", "/v1/models"):
        return Response(200, {"object": "list", "data": [{"id": m, "object": "model", "created": 1735689600,
                                                          "owned_by": "testnet"} for m in MODELS]})
    return error(404, "not_found", "%s %s is not served by the testnet model" % (method, url_path))


def write(handler, response):
    """Send ``response`` through a BaseHTTPRequestHandler; events go out chunked, each flushed."""
    if response.events is None:
        return MODEL.write(handler, response)
    handler.send_response(response.status)
    for name, value in response.headers:
        handler.send_header(name, value)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for event in response.events:
        chunk = sse(event)
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.flush()
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()
    return None


def is_api_host(host):
    return host.lower().rstrip(".") in API_HOSTS


# --- the WebSocket transport --------------------------------------------------------------

def is_websocket(method, headers):
    """Whether a request (headers: lower-case names) asks to become a WebSocket."""
    return (method == "GET" and "websocket" in headers.get("upgrade", "").lower()
            and bool(headers.get("sec-websocket-key")))


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key.strip().encode("ascii") + WS_GUID).digest()).decode("ascii")


def encode_frame(payload, opcode=1):
    """One unmasked, unfragmented server frame."""
    head = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([size])
    elif size < 65536:
        head += bytes([126]) + struct.pack("!H", size)
    else:
        head += bytes([127]) + struct.pack("!Q", size)
    return head + payload


def _read_exact(rfile, size):
    data = rfile.read(size)
    if data is None or len(data) < size:
        raise EOFError("the client closed the WebSocket")
    return data


def read_frame(rfile):
    """(fin, opcode, payload) of the next client frame (unmasked)."""
    first, second = _read_exact(rfile, 2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", _read_exact(rfile, 2))[0]
    elif size == 127:
        size = struct.unpack("!Q", _read_exact(rfile, 8))[0]
    if size > MAX_FRAME:
        raise EOFError("a WebSocket frame of %d bytes is too large" % size)
    mask = _read_exact(rfile, 4) if second & 0x80 else b"\0\0\0\0"
    payload = _read_exact(rfile, size)
    if second & 0x80:
        payload = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bool(first & 0x80), first & 0x0F, payload


def read_message(rfile, wfile):
    """The next complete text/binary message (pings answered, pongs skipped); None on close."""
    parts, kind = [], None
    while True:
        fin, opcode, payload = read_frame(rfile)
        if opcode == 8:
            wfile.write(encode_frame(payload[:2], 8))
            wfile.flush()
            return None
        if opcode == 9:
            wfile.write(encode_frame(payload, 10))
            wfile.flush()
            continue
        if opcode == 10:
            continue
        if opcode in (1, 2):
            kind = opcode
        parts.append(payload)
        if fin and kind is not None:
            return b"".join(parts)


def websocket(handler, headers, path=None, record=None):
    """Take over ``handler``'s connection as the Responses WebSocket: answer the upgrade, then each
    response.create message with its events. ``record(entry)`` sees each client message."""
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept_key(headers["sec-websocket-key"]))
    handler.send_header("x-request-id", new_id("req_testnet_"))
    handler.end_headers()
    handler.wfile.flush()
    handler.close_connection = True
    conversations = Conversations()
    while True:
        try:
            message = read_message(handler.rfile, handler.wfile)
        except (EOFError, ConnectionError, ValueError):
            return
        if message is None:
            return
        request = MODEL.decode_json(message)
        if record is not None:
            record({"ts": time.time(), "websocket_message": True, "path": handler.path,
                    "body": message.decode("utf-8", "replace")})
        if request is None or request.get("type") != "response.create":
            events = [{"type": "error", "sequence_number": 0,
                       "error": {"type": "invalid_request_error",
                                 "message": "send {\"type\": \"response.create\", ...} messages"}}]
            label = "not response.create"
        else:
            events, label = answer(request, len(message), path, conversations)
        sys.stderr.write("model websocket %s -> %s\n" % (handler.path, label))
        for event in events:
            handler.wfile.write(encode_frame(json.dumps(event, separators=(",", ":")).encode()))
        handler.wfile.flush()


# --- running it alone ---------------------------------------------------------------------

class StandaloneHandler(MODEL.StandaloneHandler):
    """model.py's standalone handler, answering as the OpenAI API (WebSocket too)."""

    def handle_any(self):
        headers = {name.lower(): value for name, value in self.headers.items()}
        if is_websocket(self.command, headers):
            self._log({"method": self.command, "path": self.path, "headers": headers, "body": ""})
            return websocket(self, headers, self.scenario, self._log if self.log_path else None)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._log({"method": self.command, "path": self.path, "headers": headers,
                   "body": body.decode("utf-8", "replace")})
        response = respond(self.command, self.path, headers, body, self.scenario)
        MODEL.log_line(self.command, self.path, response)
        return write(self, response)

    def _log(self, entry):
        if self.log_path:
            with self._lock, open(self.log_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(dict({"ts": time.time()}, **entry)) + "\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any

    def do_CONNECT(self):
        """With HTTPS_PROXY pointing here every host Codex calls shows up: logged, and with --tls-certs the
        tunnel's TLS terminated (model.py's StandaloneHandler) and its requests answered as the API's."""
        self._log({"method": "CONNECT", "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                   "body": ""})
        if self.tls_context is None:
            self.close_connection = True
            return write(self, error(502, "tunnel_refused", "CONNECT %s: run with --tls-certs to answer tunnels"
                                     % self.path))
        return MODEL.StandaloneHandler.do_CONNECT(self)


def main(argv=None):
    MODEL.serve_standalone(
        StandaloneHandler, "openai model",
        "Serve the testnet's scripted OpenAI Responses API alone (plain HTTP and WebSocket).", argv,
        log_help="append every request and WebSocket message as a JSON line here",
        tls_help="terminate CONNECT tunnels with DIR/server.pem and DIR/server.key (gen-certs.sh): "
                 "HTTPS_PROXY pointing here then shows every host Codex calls")


if __name__ == "__main__":
    main()
