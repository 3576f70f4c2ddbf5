"""A scripted stand-in for the Anthropic Messages API (tests and the keyless demo only).

The testnet server (server.py) hands every request whose Host is api.anthropic.com (any port)
to this module, so the real Claude Code runs against a "model" that answers from a scenario
file instead of calling one. Nothing here ever contacts Anthropic. Python 3 standard library.

Endpoints
---------
  POST /v1/messages               the scripted answer (any query, e.g. ?beta=true): server-sent
                                  events when the body says "stream": true, as the API streams
                                  them (message_start, ping, then per block content_block_start,
                                  content_block_delta - text_delta, or input_json_delta with the
                                  tool input's JSON split across several deltas -,
                                  content_block_stop; message_delta with stop_reason end_turn /
                                  tool_use and usage; message_stop), sent chunked with
                                  content-type text/event-stream; else one JSON message
  POST /v1/messages/count_tokens  {"input_tokens": N}, N estimated from the body's size
  and the start-up calls listed in STATIC below, each with the answer meaning "nothing
  special"; /v1/models; anything else is a 404 with the API's error body
  ({"type": "error", "error": {"type": "not_found_error", ...}}).
Every response carries a request-id header (req_testnet_...; Claude Code takes a 204/404
without one for a proxy's answer). The server records every request, headers included, in its
request log before it gets here, so a test asserts which x-api-key arrived.

What Claude Code 2.1.330 calls
------------------------------
Seen on loopback with `claude -p ... --output-format stream-json --verbose --allowedTools Bash`
and ANTHROPIC_API_KEY (request shapes kept in tests/unit/images/fixtures/claude_requests/):
  POST /v1/messages?beta=true   the main loop, streamed: the session's model (claude-opus-...),
                                the SDK/Claude Code system prompt, a dozen "tools" (Agent, Bash,
                                Edit, Read, Write, ...), adaptive thinking; one request per step:
                                the prompt, then one per tool_result. The first user message
                                holds <system-reminder> text blocks before the prompt, and a
                                role "system" message (the environment) follows it.
                                Headers: x-api-key, anthropic-version, anthropic-beta, x-app,
                                x-stainless-*, x-claude-code-session-id, ...
  with ANTHROPIC_BASE_URL pointing elsewhere, that is all (the calls below go to the real
  api.anthropic.com, which in a bottle is this server). Without ANTHROPIC_BASE_URL, once at
  start-up: GET /api/claude_code/settings (204: none managed), GET /api/claude_code/policy_limits;
  and unless CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 also HEAD /api/hello (only without a
  proxy), POST /api/eval/sdk-... (feature flags), GET /api/claude_cli/bootstrap,
  GET /api/claude_code_penguin_mode, GET /api/directory/server-urls,
  GET /api/claude_code/organizations/metrics_enabled, POST /api/event_logging/v2/batch.
  No side call with the small model was made in print mode; Claude Code's side calls (session
  titles, summaries, quota checks) offer no tools, which is how they are told apart from the
  main loop: they never consume a scenario turn and get SIDE_REPLY, a short neutral text.

Scenario files
--------------
The active scenario is read on every request (no restart, no image rebuild) from the file named
by env TESTNET_SCENARIO, default /srv/testnet/scenario.json: a test `docker cp`s one in. It is
a JSON list of turns (or {"turns": [...]}). For a main-loop request the first turn whose
conditions all hold gives the answer:

  user / user_re              the latest user text (the prompt the human typed: the most recent
                              user message that has text of its own, <system-reminder> sections
                              removed), substring (case-insensitive) / regular expression
  tool_result / tool_result_re
                              the tool results of the last turn (the last user message, role
                              "system" messages skipped; their text joined). A turn with a
                              tool_* key only answers tool results; a turn without one only
                              answers a fresh user prompt. "" matches any tool result.
  tool_input / tool_input_re  the tool call(s) those results answer, as the text
                              "NAME {input as JSON, keys sorted}", e.g. "Bash" or "curl -sS"
                              (a double quote in the input reads \" here)
  reply                       what the model answers: a string (one text block) or a list of
                              content blocks {"type": "text", "text": ...} and
                              {"type": "tool_use", "name": ..., "input": {...}} (the id is made
                              up; an "input" that is a string is for the OpenAI stand-in's
                              custom tools, openai_model.py). In text, {{tool_result}} becomes
                              the latest tool result and {{user}} the latest user text. A tool_use makes stop_reason
                              "tool_use", else "end_turn".
  name                        optional, shown in the log line and in the unmatched answer

Example (the agent runs a command with its Bash tool, then reports what it printed):

  [
    {"name": "run", "user": "fetch the page",
     "reply": [{"type": "text", "text": "Fetching it."},
               {"type": "tool_use", "name": "Bash",
                "input": {"command": "curl -sS https://allowed.bottle.test/hello",
                          "description": "Fetch the page"}}]},
    {"name": "report", "tool_input": "allowed.bottle.test/hello", "tool_result": "",
     "reply": "The page says: {{tool_result}}"}
  ]

A main-loop request no turn matches (or a missing / broken scenario file) ends the conversation
with a text naming the scenario and the unmatched user text / tool result, so a test fails
readably instead of hanging; so does a conversation past MAX_STEPS assistant turns.
Substrings match case-insensitively; regular expressions use re.search (add (?i) for case).
Shipped scenarios (in the image under /srv/testnet/scenarios/): fetch.json (curl
https://allowed.bottle.test/hello with Bash, report the body), demo.json (list the work dir,
fetch allowed.bottle.test, try blocked.bottle.test, report the refusal).

Running it alone (plain HTTP, for a local check against the real Claude Code)
------------------------------------------------------------------------------
  python3 images/testnet/model.py --serve 127.0.0.1:8765 \\
      --scenario images/testnet/scenarios/fetch.json --log /tmp/model-requests.jsonl &
  ANTHROPIC_BASE_URL=http://127.0.0.1:8765 ANTHROPIC_API_KEY=sk-ant-test-placeholder \\
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 HOME=$(mktemp -d) \\
      timeout 120 claude -p "fetch the page" --output-format stream-json --verbose --allowedTools Bash
Run both inside `unshare -rn sh -c 'ip link set lo up; ...'` to be sure nothing leaves loopback.
(--dangerously-skip-permissions is refused as root unless IS_SANDBOX=1; --allowedTools Bash
is enough.) --log records each request as one JSON line (method, path, tls, headers, body).
To see the calls Claude Code sends to api.anthropic.com itself, add HTTPS_PROXY=http://127.0.0.1:8765
and --tls-certs DIR (a certificate for api.anthropic.com from gen-certs.sh, its CA in
NODE_EXTRA_CA_CERTS): CONNECT tunnels are then terminated here and logged like the rest.
"""

import argparse
import json
import os
import re
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

API_HOSTS = frozenset({"api.anthropic.com"})
DEFAULT_SCENARIO = "/srv/testnet/scenario.json"
SIDE_REPLY = "OK."
MAX_STEPS = 40
TEXT_CHUNK = 24     # characters per text_delta
JSON_PARTS = 3      # a tool input's JSON goes out in at least this many input_json_delta events
MODELS = ["claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5"]
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)


class ScenarioError(Exception):
    """The scenario file cannot be used; the message says why."""


# --- the scenario -------------------------------------------------------------------------

def scenario_path():
    return os.environ.get("TESTNET_SCENARIO") or DEFAULT_SCENARIO


CONDITIONS = ("user", "user_re", "tool_result", "tool_result_re", "tool_input", "tool_input_re")


def check_turn(turn, where):
    """Raise ScenarioError unless ``turn`` is a well-formed turn."""
    if not isinstance(turn, dict):
        raise ScenarioError("%s is not an object" % where)
    unknown = set(turn) - set(CONDITIONS) - {"reply", "name"}
    if unknown:
        raise ScenarioError("%s has unknown keys %s" % (where, sorted(unknown)))
    for key in CONDITIONS:
        if key in turn:
            if not isinstance(turn[key], str):
                raise ScenarioError("%s: %s is not a string" % (where, key))
            if key.endswith("_re"):
                try:
                    re.compile(turn[key])
                except re.error as exc:
                    raise ScenarioError("%s: %s is not a regular expression: %s" % (where, key, exc)) from None
    if "reply" not in turn:
        raise ScenarioError("%s has no reply" % where)
    reply = turn["reply"]
    if isinstance(reply, str):
        return
    if not isinstance(reply, list) or not reply:
        raise ScenarioError("%s: reply is neither a string nor a list of content blocks" % where)
    for n, block in enumerate(reply):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            continue
        if kind == "tool_use" and isinstance(block.get("name"), str) and isinstance(block.get("input"), (dict, str)):
            continue
        raise ScenarioError("%s: reply[%d] is not a text block or a tool_use block with name and input (an "
                            "object, or a string for an OpenAI custom tool such as Codex's exec)"
                            % (where, n))


def parse_scenario(data):
    """The list of turns in a decoded scenario (a list, or {"turns": [...]}), checked."""
    turns = data.get("turns") if isinstance(data, dict) else data
    if not isinstance(turns, list):
        raise ScenarioError("a scenario is a list of turns (or {\"turns\": [...]})")
    for n, turn in enumerate(turns):
        check_turn(turn, "turn %d%s" % (n, " (%s)" % turn.get("name") if isinstance(turn, dict) and "name" in turn else ""))
    return turns


def load_scenario(path):
    """The turns of the scenario file at ``path`` (read now: a test may replace it any time)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise ScenarioError("no scenario file %s" % path) from None
    except (OSError, ValueError) as exc:
        raise ScenarioError("cannot read scenario %s: %s" % (path, exc)) from None
    return parse_scenario(data)


# --- the conversation ---------------------------------------------------------------------

def blocks_of(content):
    """A message's content as a list of blocks (a plain string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content or [] if isinstance(block, dict)]


def text_of(content):
    """The text in a message content or tool_result content (blocks joined by newlines)."""
    return "\n".join(block.get("text", "") for block in blocks_of(content) if block.get("type") == "text")


def own_text(content):
    """The user's own text in a user message: text blocks minus <system-reminder> sections."""
    parts = [_REMINDER.sub("", block.get("text", "")).strip()
             for block in blocks_of(content) if block.get("type") == "text"]
    return "\n".join(part for part in parts if part)


def latest_user_text(messages):
    """The most recent user message text that is not only tool results or system reminders."""
    for message in reversed(messages):
        if message.get("role") == "user":
            text = own_text(message.get("content"))
            if text:
                return text
    return ""


def last_turn(messages):
    """The last user or assistant message (Claude Code appends role "system" messages too)."""
    for message in reversed(messages):
        if message.get("role") in ("user", "assistant"):
            return message
    return None


def latest_tool_results(messages):
    """(results, calls) for the last turn: the text of its tool_result blocks, and the
    "NAME {input json}" of the tool_use blocks they answer. (None, None) when it has none."""
    last = last_turn(messages)
    if last is None or last.get("role") != "user":
        return None, None
    results = [block for block in blocks_of(last.get("content")) if block.get("type") == "tool_result"]
    if not results:
        return None, None
    uses = {}
    for message in messages:
        if message.get("role") == "assistant":
            for block in blocks_of(message.get("content")):
                if block.get("type") == "tool_use":
                    uses[block.get("id")] = block
    calls = []
    for result in results:
        use = uses.get(result.get("tool_use_id"))
        if use is not None:
            calls.append("%s %s" % (use.get("name"), json.dumps(use.get("input"), sort_keys=True)))
    return "\n".join(text_of(result.get("content")) for result in results), "\n".join(calls)


def is_side_request(request):
    """A call Claude Code makes for itself with its small model (a session title, a summary, a
    quota check...), not the agent's main loop: it offers the model no tools."""
    return not request.get("tools")


def _matches(turn, key, value):
    if key in turn and (value is None or turn[key].lower() not in value.lower()):
        return False
    if key + "_re" in turn and (value is None or not re.search(turn[key + "_re"], value, re.S)):
        return False
    return True


def turn_matches(turn, user, results, calls):
    wants_result = any(key in turn for key in ("tool_result", "tool_result_re", "tool_input", "tool_input_re"))
    if wants_result != (results is not None):
        return False
    return (_matches(turn, "user", user) and _matches(turn, "tool_result", results)
            and _matches(turn, "tool_input", calls))


def _clip(text, limit=300):
    text = text if len(text) <= limit else text[:limit] + "..."
    return json.dumps(text, ensure_ascii=False)


def choose(request, path):
    """(content blocks, label) answering a /v1/messages request under the scenario at ``path``."""
    if is_side_request(request):
        return [{"type": "text", "text": SIDE_REPLY}], "side call (%s)" % request.get("model")
    messages = request.get("messages") or []
    user = latest_user_text(messages)
    results, calls = latest_tool_results(messages)
    steps = sum(1 for message in messages if message.get("role") == "assistant")
    if steps >= MAX_STEPS:
        return [{"type": "text", "text": "[testnet model] stopped: %d assistant turns, more than the "
                 "scenario %s should need (a turn that keeps matching?)" % (steps, path)}], "max-steps"
    try:
        turns = load_scenario(path)
    except ScenarioError as exc:
        return [{"type": "text", "text": "[testnet model] %s" % exc}], "no-scenario"
    for n, turn in enumerate(turns):
        if turn_matches(turn, user, results, calls):
            return render(turn["reply"], user, results), "turn %d%s" % (
                n, " (%s)" % turn["name"] if "name" in turn else "")
    what = "user text %s" % _clip(user) if results is None else "tool result %s after %s" % (
        _clip(results), _clip(calls or "an unknown tool call"))
    return [{"type": "text", "text": "[testnet model] the scenario %s has no answer for this request "
             "(%s)" % (path, what)}], "unmatched"


def render(reply, user, results):
    """The reply's content blocks, placeholders filled in, each tool_use given a fresh id."""
    blocks = [{"type": "text", "text": reply}] if isinstance(reply, str) else reply
    out = []
    for block in blocks:
        if block["type"] == "text":
            text = block["text"].replace("{{tool_result}}", (results or "").strip()).replace("{{user}}", user)
            out.append({"type": "text", "text": text})
        else:
            out.append({"type": "tool_use", "id": "toolu_testnet_" + uuid.uuid4().hex[:20],
                        "name": block["name"], "input": block["input"]})
    return out


# --- the answer ---------------------------------------------------------------------------

def estimate_tokens(data):
    """A plausible token count: about four bytes a token, at least one."""
    if not isinstance(data, (bytes, str)):
        data = json.dumps(data)
    return max(1, len(data) // 4)


def new_id(prefix):
    return prefix + uuid.uuid4().hex[:24]


def message(request, content, input_tokens):
    """The complete Messages API response object."""
    return {
        "id": new_id("msg_testnet_"), "type": "message", "role": "assistant",
        "model": request.get("model") or MODELS[0], "content": content,
        "stop_reason": "tool_use" if any(block["type"] == "tool_use" for block in content) else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": estimate_tokens(content),
                  "service_tier": "standard"},
    }


def split_text(text, size):
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def split_json(data, parts):
    """``data`` cut into ``parts`` pieces or more (the API streams partial JSON that way)."""
    size = max(1, -(-len(data) // parts))
    return [data[i:i + size] for i in range(0, len(data), size)]


def stream_events(msg):
    """The (event, data) sequence the API streams for the message ``msg``."""
    start = dict(msg, content=[], stop_reason=None, stop_sequence=None,
                 usage=dict(msg["usage"], output_tokens=1))
    events = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(msg["content"]):
        if block["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "text", "text": ""}}))
            if index == 0:
                events.append(("ping", {"type": "ping"}))
            for piece in split_text(block["text"], TEXT_CHUNK):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": {"type": "text_delta", "text": piece}}))
        else:
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "tool_use", "id": block["id"],
                                                                     "name": block["name"], "input": {}}}))
            if index == 0:
                events.append(("ping", {"type": "ping"}))
            pieces = [""] + split_json(json.dumps(block["input"]), JSON_PARTS)
            for piece in pieces:
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": {"type": "input_json_delta",
                                                                 "partial_json": piece}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    usage = dict(msg["usage"])
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
                                     "usage": usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def sse(event, data):
    return ("event: %s\ndata: %s\n\n" % (event, json.dumps(data, separators=(",", ":")))).encode()


class Response:
    """What to send: status, headers, and either ``body`` (bytes) or ``events`` (streamed)."""

    def __init__(self, status, payload=None, events=None, headers=None):
        self.status = status
        self.headers = [("request-id", new_id("req_testnet_"))] + list(headers or [])
        self.events = events
        self.body = b""
        if events is not None:
            self.headers += [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache")]
        elif payload is not None:
            self.body = json.dumps(payload).encode()
            self.headers.append(("Content-Type", "application/json"))
        self.label = ""


def error(status, kind, text):
    return Response(status, {"type": "error", "error": {"type": kind, "message": text}})


def decode_json(body):
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def model_info(model_id):
    return {"type": "model", "id": model_id, "display_name": model_id, "created_at": "2025-01-01T00:00:00Z"}


# What Claude Code asks api.anthropic.com for besides the model (seen from 2.1.330 when its
# non-essential traffic is not switched off), answered the way that means "nothing special":
# no feature flags, no org policy, no managed settings, fast mode off, no MCP directory.
# A status of 204 answers with no body.
STATIC = {
    ("GET", "/api/claude_code/policy_limits"): (200, {"restrictions": {}}),
    ("GET", "/api/claude_code/settings"): (204, None),
    ("GET", "/api/claude_code_penguin_mode"): (200, {"enabled": False, "disabled_reason": "preference"}),
    ("GET", "/api/claude_cli/bootstrap"): (200, {"client_data": None, "additional_model_options": []}),
    ("GET", "/api/directory/server-urls"): (200, {"urls": []}),
    ("GET", "/api/claude_code/organizations/metrics_enabled"): (200, {"metrics_logging_enabled": False}),
    ("GET", "/api/hello"): (200, {"message": "hello"}),
    ("POST", "/api/event_logging/v2/batch"): (200, {}),
    ("POST", "/api/event_logging/batch"): (200, {}),
}


def respond(method, target, headers, body, path=None):
    """The Response for one request to the API. ``headers``: a dict with lower-case names
    (unused today: kept so a scripted answer may depend on them)."""
    del headers
    url_path = urlsplit(target).path.rstrip("/") or "/"
    scenario = path or scenario_path()
    if url_path == "/v1/messages" and method == "POST":
        request = decode_json(body)
        if request is None or not isinstance(request.get("messages"), list):
            return error(400, "invalid_request_error", "messages: a JSON body with a messages list is required")
        content, label = choose(request, scenario)
        msg = message(request, content, estimate_tokens(body))
        response = Response(200, events=stream_events(msg)) if request.get("stream") else Response(200, msg)
        response.label = label
        return response
    if url_path == "/v1/messages/count_tokens" and method == "POST":
        request = decode_json(body)
        if request is None or not isinstance(request.get("messages"), list):
            return error(400, "invalid_request_error", "messages: a JSON body with a messages list is required")
        return Response(200, {"input_tokens": estimate_tokens(json.dumps(
            {key: request.get(key) for key in ("system", "messages", "tools")}))})
    key = ("GET" if method == "HEAD" else method, url_path)
    if key in STATIC:
        status, payload = STATIC[key]
        return Response(status, payload)
    if method == "POST" and url_path.startswith("/api/eval/"):
        return Response(200, {"features": {}})  # GrowthBook remote evaluation: no flags set
    if key == ("GET", "/v1/models"):
        return Response(200, {"data": [model_info(m) for m in MODELS], "has_more": False,
                              "first_id": MODELS[0], "last_id": MODELS[-1]})
    if key[0] == "GET" and url_path.startswith("/v1/models/"):
        return Response(200, model_info(url_path.rsplit("/", 1)[1]))
    return error(404, "not_found_error", "%s %s is not served by the testnet model" % (method, url_path))


def write(handler, response):
    """Send ``response`` through a BaseHTTPRequestHandler; events go out chunked, each flushed."""
    handler.send_response(response.status)
    for name, value in response.headers:
        handler.send_header(name, value)
    if response.events is None:
        if response.status != 204:
            handler.send_header("Content-Length", str(len(response.body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(response.body)
        return
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for event, data in response.events:
        chunk = sse(event, data)
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.flush()
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()


def is_api_host(host):
    """Whether a Host (port already stripped) is one this module answers for."""
    return host.lower().rstrip(".") in API_HOSTS


def log_line(method, target, response):
    sys.stderr.write("model %s %s -> %d %s\n" % (method, target, response.status, response.label))


# --- running it alone ---------------------------------------------------------------------

class StandaloneHandler(BaseHTTPRequestHandler):
    """Plain HTTP, every request to the model whatever its Host (for local checks)."""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "bottle-testnet-model/1"
    scenario = None
    log_path = None
    tls_context = None
    _lock = threading.Lock()

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass

    def handle_any(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = bytearray()
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline(8)
            body = bytes(body)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        if self.log_path:
            entry = {"ts": time.time(), "method": self.command, "path": self.path,
                     "tls": isinstance(self.connection, ssl.SSLSocket),
                     "header_names": [name.lower() for name in self.headers.keys()],
                     "headers": headers, "body": body.decode("utf-8", "replace")}
            with self._lock, open(self.log_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
        response = respond(self.command, self.path, headers, body, self.scenario)
        log_line(self.command, self.path, response)
        write(self, response)

    def do_CONNECT(self):
        """With HTTPS_PROXY pointing here, a call to a host Claude Code does not take from
        ANTHROPIC_BASE_URL shows up too: with --tls-certs the tunnel is answered and its TLS
        terminated with the testnet's certificate (the client must trust its CA, e.g. with
        NODE_EXTRA_CA_CERTS); without, it is logged and refused."""
        if self.tls_context is None:
            return self.handle_any()
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self.connection = self.tls_context.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb")
        self.wfile = self.connection.makefile("wb", buffering=0)
        self.close_connection = False
        return None

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any


def serve_standalone(handler, name, description, argv=None, log_help="append every request as a JSON line here",
                     tls_help="terminate CONNECT tunnels with DIR/server.pem and DIR/server.key (gen-certs.sh)"):
    """Serve ``handler`` (a StandaloneHandler) alone: the command line of model.py and openai_model.py."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--serve", metavar="HOST:PORT", required=True)
    parser.add_argument("--scenario", help="scenario file (default: $TESTNET_SCENARIO or %s)" % DEFAULT_SCENARIO)
    parser.add_argument("--log", help=log_help)
    parser.add_argument("--tls-certs", metavar="DIR", help=tls_help)
    args = parser.parse_args(argv)
    host, port = args.serve.rsplit(":", 1) if ":" in args.serve else ("127.0.0.1", args.serve)
    handler.scenario = args.scenario
    handler.log_path = args.log
    if args.tls_certs:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(os.path.join(args.tls_certs, "server.pem"), os.path.join(args.tls_certs, "server.key"))
        handler.tls_context = context
    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), handler)
    server.daemon_threads = True
    sys.stderr.write("%s: serving http://%s:%d, scenario %s\n" % (name, host, server.server_address[1],
                                                                  args.scenario or scenario_path()))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def main(argv=None):
    serve_standalone(StandaloneHandler, "model", "Serve the testnet's scripted Anthropic API alone (plain HTTP).", argv)


if __name__ == "__main__":
    main()
