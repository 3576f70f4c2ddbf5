#!/usr/bin/env python
"""supervise: the bundle's MCP server that turns an agent's asks into proposals.

The agent reaches it at http://<bundle>:9100/mcp (Streamable HTTP, the official
``mcp`` SDK). Each tool validates its input, writes a proposal into the store
(``/var/lib/bottle/supervise``, a directory of the managed host that is mounted
into the bundle only) and waits a bounded time for a human operator's decision
(the ``botbottle.bottle.bottle_supervise`` module on the managed host), answering
``approved``/``rejected`` with the operator's note, or ``pending`` with the id to
ask again with ``proposal_status``.

Store layout (a contract with bottle_supervise and bottle_info):
  proposals/<id>.json  one JSON object per proposal: id, kind (domain|route|block),
                       status (pending|approved|rejected), created, decided, note,
                       the request fields and the justification
  audit.jsonl          append-only, one JSON line per proposal and per decision

Everything but ``main()`` is plain Python (no SDK import), so the validation and the
store are unit-tested without the server.
"""

import json
import os
import re
import secrets
import sys
import time
from urllib.parse import urlsplit

STORE = os.environ.get("BOTTLE_SUPERVISE_STORE", "/var/lib/bottle/supervise")
CONFIG_DIR = os.environ.get("BOTTLE_SUPERVISE_CONFIG", "/run/bottle/supervise")
PORT = 9100
KINDS = ("domain", "route", "block")
STATUSES = ("pending", "approved", "rejected")

ID_RE = re.compile(r"^[0-9a-f]{16}$")
HOST_RE = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
TOKEN_REF_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
PATH_TYPES = ("exact", "prefix", "regex")

MAX_HOST = 253
MAX_JUSTIFICATION = 2000
MAX_REASON = 1000
MAX_URL = 2048
MAX_MATCHES = 8
MAX_PATHS = 16
MAX_PATH_VALUE = 512
MAX_PROPOSAL_BYTES = 16384
DEFAULTS = {"wait_seconds": 20, "max_pending": 20}


class InvalidRequest(ValueError):
    """An ask supervise refuses; the message says what to fix."""


def _text(value, name, limit, required=True):
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidRequest("%s must be a string" % name)
    value = value.strip()
    if required and not value:
        raise InvalidRequest("%s is required: say what you need and why" % name)
    if len(value) > limit:
        raise InvalidRequest("%s is %d characters long; at most %d" % (name, len(value), limit))
    if any(ord(c) < 32 and c not in "\n\t" for c in value) or "\x7f" in value:
        raise InvalidRequest("%s contains control characters" % name)
    return value


def check_host(value, name="host"):
    """One exact host name, lower-cased (no scheme, port, path, wildcard or IP literal)."""
    if not isinstance(value, str):
        raise InvalidRequest("%s must be a string" % name)
    host = value.strip().lower().rstrip(".")
    if not host or len(host) > MAX_HOST or not HOST_RE.match(host):
        raise InvalidRequest("%s %r is not a host name: write one exact name such as api.example.com "
                             "(no scheme, port, path or wildcard)" % (name, value[:80]))
    if re.match(r"^[0-9.]+$", host):
        raise InvalidRequest("%s %r is an IP address: ask for the host name" % (name, host))
    return host


def check_id(value):
    if not isinstance(value, str) or not ID_RE.match(value):
        raise InvalidRequest("id %r is not a proposal id (16 hex characters, as a request tool returned it)"
                             % (str(value)[:40],))
    return value


def check_matches(matches):
    """Route matches as egress understands them, bounded: [{paths: [{type, value}], methods: [...]}]."""
    if matches is None:
        return None
    if not isinstance(matches, list) or not matches:
        raise InvalidRequest("matches must be a non-empty list of {paths, methods} entries, or left out")
    if len(matches) > MAX_MATCHES:
        raise InvalidRequest("matches has %d entries; at most %d" % (len(matches), MAX_MATCHES))
    out = []
    for index, entry in enumerate(matches):
        where = "matches[%d]" % index
        if not isinstance(entry, dict) or set(entry) - {"paths", "methods"} or not entry:
            raise InvalidRequest("%s must be a mapping of paths and/or methods" % where)
        clean = {}
        if "paths" in entry:
            paths = entry["paths"]
            if not isinstance(paths, list) or not paths or len(paths) > MAX_PATHS:
                raise InvalidRequest("%s.paths must be a list of 1 to %d {type, value} rules" % (where, MAX_PATHS))
            clean["paths"] = []
            for p_index, rule in enumerate(paths):
                rwhere = "%s.paths[%d]" % (where, p_index)
                if not isinstance(rule, dict) or set(rule) - {"type", "value"}:
                    raise InvalidRequest("%s must be {type: exact|prefix|regex, value: /path}" % rwhere)
                kind = rule.get("type", "prefix")
                if kind not in PATH_TYPES:
                    raise InvalidRequest("%s.type must be exact, prefix or regex" % rwhere)
                value = rule.get("value")
                if not isinstance(value, str) or not value or len(value) > MAX_PATH_VALUE:
                    raise InvalidRequest("%s.value must be a path of 1 to %d characters" % (rwhere, MAX_PATH_VALUE))
                if kind != "regex" and not value.startswith("/"):
                    raise InvalidRequest("%s.value must start with /" % rwhere)
                if kind == "regex":
                    try:
                        re.compile(value)
                    except re.error as exc:
                        raise InvalidRequest("%s.value is not a valid regex: %s" % (rwhere, exc))
                clean["paths"].append({"type": kind, "value": value})
        if "methods" in entry:
            methods = entry["methods"]
            if not isinstance(methods, list) or not methods:
                raise InvalidRequest("%s.methods must be a non-empty list of HTTP methods" % where)
            clean["methods"] = []
            for method in methods:
                if not isinstance(method, str) or method.upper() not in METHODS:
                    raise InvalidRequest("%s.methods: %r is not one of %s" % (where, str(method)[:20], ", ".join(METHODS)))
                clean["methods"].append(method.upper())
        out.append(clean)
    return out


def check_url(value):
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        raise InvalidRequest("url must be the URL that was refused (at most %d characters)" % MAX_URL)
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("url %r must be an http or https URL" % value[:80])
    check_host(parts.hostname, "url's host")
    return value.strip()


def validate(kind, fields):
    """The request fields of a ``kind`` proposal, normalised; InvalidRequest when not acceptable."""
    justification = _text(fields.get("justification"), "justification", MAX_JUSTIFICATION)
    if kind == "domain":
        clean = {"host": check_host(fields.get("host"))}
    elif kind == "route":
        clean = {"host": check_host(fields.get("host"))}
        ref = fields.get("auth_ref")
        if ref not in (None, ""):
            if not isinstance(ref, str) or not TOKEN_REF_RE.match(ref):
                raise InvalidRequest("auth_ref must name a credential (letters, digits, '_'; at most 64), never "
                                     "hold its value")
            clean["auth_ref"] = ref
        matches = check_matches(fields.get("matches"))
        if matches is not None:
            clean["matches"] = matches
    elif kind == "block":
        clean = {"url": check_url(fields.get("url")),
                 "reason_seen": _text(fields.get("reason_seen"), "reason_seen", MAX_REASON)}
    else:
        raise InvalidRequest("unknown kind %r" % (kind,))
    clean["justification"] = justification
    return clean


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Store:
    """The proposal store; supervise is its only writer on the bottle's side."""

    def __init__(self, root=STORE):
        self.root = root
        self.proposals = os.path.join(root, "proposals")
        self.audit_path = os.path.join(root, "audit.jsonl")

    def ensure(self):
        os.makedirs(self.proposals, exist_ok=True)

    def path(self, proposal_id):
        return os.path.join(self.proposals, check_id(proposal_id) + ".json")

    def read(self, proposal_id):
        try:
            with open(self.path(proposal_id), "rb") as handle:
                data = handle.read(MAX_PROPOSAL_BYTES * 4 + 1)
        except FileNotFoundError:
            return None
        try:
            proposal = json.loads(data)
        except ValueError:
            return None
        if not isinstance(proposal, dict) or proposal.get("id") != proposal_id:
            return None
        return proposal

    def all(self):
        out = []
        try:
            names = sorted(os.listdir(self.proposals))
        except FileNotFoundError:
            return out
        for name in names:
            if name.endswith(".json") and ID_RE.match(name[:-5]):
                proposal = self.read(name[:-5])
                if proposal is not None:
                    out.append(proposal)
        return out

    def pending(self):
        return [p for p in self.all() if p.get("status") == "pending"]

    def _write(self, proposal):
        data = (json.dumps(proposal, indent=2, sort_keys=True) + "\n").encode("utf-8")
        if len(data) > MAX_PROPOSAL_BYTES:
            raise InvalidRequest("the proposal is %d bytes; at most %d: shorten it" % (len(data), MAX_PROPOSAL_BYTES))
        dest = self.path(proposal["id"])
        tmp = os.path.join(self.proposals, ".tmp-%s" % secrets.token_hex(8))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o664)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            # O_EXCL on the final name as well: an id is never reused, never overwritten.
            os.link(tmp, dest)
        finally:
            os.unlink(tmp)

    def audit(self, event):
        line = (json.dumps(event, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.audit_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o664)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def propose(self, kind, fields, max_pending):
        """Validate and record a proposal (or return the same pending one); (proposal, created)."""
        clean = validate(kind, fields)
        pending = self.pending()
        for proposal in pending:
            same = {k: proposal.get(k) for k in clean if k != "justification"}
            if proposal.get("kind") == kind and same == {k: v for k, v in clean.items() if k != "justification"}:
                return proposal, False
        if len(pending) >= max_pending:
            raise InvalidRequest("%d proposals are already waiting for the operator (the limit): ask about them "
                                 "with proposal_status instead of making new ones" % len(pending))
        proposal = dict(clean, id=secrets.token_hex(8), kind=kind, status="pending", created=now(),
                        decided=None, note="")
        self._write(proposal)
        self.audit(dict({k: v for k, v in proposal.items() if k not in ("status", "decided", "note")},
                        time=proposal["created"], event="proposed", by="agent"))
        return proposal, True


def load_config(config_dir=CONFIG_DIR):
    config = dict(DEFAULTS)
    try:
        with open(os.path.join(config_dir, "supervise.json"), encoding="utf-8") as handle:
            loaded = json.load(handle)
        if isinstance(loaded, dict):
            config.update({k: v for k, v in loaded.items() if k in DEFAULTS and isinstance(v, int)})
    except (OSError, ValueError):
        pass
    return config


def current_policy(config_dir=CONFIG_DIR):
    """What the bottle allows now, as its staged configuration says: hosts and routes, no secrets."""
    allowed, routes = [], []
    try:
        # egress.json is the firewall's configuration (botbottle.bottle's bundle_config renders it):
        # allowed_hosts already holds the route hosts.
        with open(os.path.join(config_dir, "egress.json"), encoding="utf-8") as handle:
            config = json.load(handle) or {}
        allowed = [h for h in config.get("allowed_hosts") or [] if isinstance(h, str)]
        for route in config.get("routes") or []:
            shown = {"host": route.get("host")}
            if route.get("matches"):
                shown["matches"] = route["matches"]
            if route.get("auth"):
                shown["auth_ref"] = route["auth"].get("token_ref")
            routes.append(shown)
    except (OSError, ValueError, AttributeError):
        pass
    return {"allowed_domains": sorted(allowed), "routes": routes}


def answer(proposal, created=None):
    """What a tool returns about ``proposal``."""
    status = proposal.get("status")
    out = {"id": proposal["id"], "kind": proposal.get("kind"), "status": status}
    if status == "pending":
        out["message"] = ("waiting for the operator; ask again with proposal_status(id=%r). Do not try another "
                          "way around the block meanwhile." % proposal["id"])
        if created is False:
            out["message"] = "an identical proposal is already waiting; " + out["message"]
    else:
        out["note"] = proposal.get("note", "")
        out["decided"] = proposal.get("decided")
        if status == "approved" and proposal.get("kind") in ("domain", "route"):
            out["message"] = "approved: the bottle now allows %s; retry your request" % proposal.get("host")
        elif status == "approved":
            out["message"] = "the operator acknowledged your report; see the note"
        else:
            out["message"] = "rejected by the operator; see the note and do not try to get around it"
    for key in ("host", "auth_ref", "matches", "url"):
        if key in proposal:
            out[key] = proposal[key]
    return out


def wait_for_decision(store, proposal_id, seconds, sleep=time.sleep, clock=time.monotonic):
    """Poll the store until the proposal is decided or ``seconds`` have passed; the last state read."""
    deadline = clock() + max(0, seconds)
    proposal = store.read(proposal_id)
    while proposal is not None and proposal.get("status") == "pending" and clock() < deadline:
        sleep(0.5)
        proposal = store.read(proposal_id)
    return proposal


class Supervise:
    """The tools, independent of the transport."""

    def __init__(self, store, config_dir=CONFIG_DIR, sleep=time.sleep):
        self.store = store
        self.config_dir = config_dir
        self.sleep = sleep

    def _config(self):
        return load_config(self.config_dir)

    def _ask(self, kind, fields):
        config = self._config()
        try:
            proposal, created = self.store.propose(kind, fields, config["max_pending"])
        except InvalidRequest as exc:
            return {"status": "refused", "error": str(exc)}
        if created:
            say("proposal %s (%s) %s" % (proposal["id"], kind, proposal.get("host") or proposal.get("url")))
        decided = wait_for_decision(self.store, proposal["id"], config["wait_seconds"], sleep=self.sleep)
        return answer(decided or proposal, created)

    def request_domain(self, host, justification):
        try:
            wanted = check_host(host)
        except InvalidRequest as exc:
            return {"status": "refused", "error": str(exc)}
        if wanted in current_policy(self.config_dir)["allowed_domains"]:
            return {"status": "allowed", "host": wanted,
                    "message": "%s is already allowed; if a request to it is refused, use report_block" % wanted}
        return self._ask("domain", {"host": host, "justification": justification})

    def request_route(self, host, justification, auth_ref=None, matches=None):
        return self._ask("route", {"host": host, "auth_ref": auth_ref, "matches": matches,
                                   "justification": justification})

    def report_block(self, url, reason_seen, justification):
        return self._ask("block", {"url": url, "reason_seen": reason_seen, "justification": justification})

    def list_policy(self):
        return current_policy(self.config_dir)

    def proposal_status(self, id):  # noqa: A002 - the tool's argument name as the agent sees it
        try:
            proposal = self.store.read(check_id(id))
        except InvalidRequest as exc:
            return {"status": "refused", "error": str(exc)}
        if proposal is None:
            return {"status": "unknown", "error": "no proposal %s" % id}
        return answer(wait_for_decision(self.store, id, min(self._config()["wait_seconds"], 10),
                                        sleep=self.sleep) or proposal)


def say(line):
    sys.stdout.write(line.rstrip("\n") + "\n")
    sys.stdout.flush()


INSTRUCTIONS = (
    "supervise is how you ask the human operator of this bottle for more access. When the bottle's proxy "
    "answers 403 'blocked by egress: ...' for a host you need, call request_domain (or request_route for an API that "
    "needs a credential: name the credential with auth_ref, never send its value). If you believe a refusal "
    "is wrong, call report_block. Each call waits a little for the decision and returns approved, rejected "
    "(with the operator's note) or pending with an id for proposal_status. Never try to get around a block."
)


def build_server(tools):
    """The MCP server (official SDK), Streamable HTTP on /mcp."""
    import anyio
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("supervise", instructions=INSTRUCTIONS, version="1")

    async def run(fn, *args, **kwargs):
        # The tools block while they wait for a decision: keep the event loop free.
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    @server.tool()
    async def request_domain(host: str, justification: str) -> dict:
        """Ask the operator to allow one more host through the bottle's proxy (exact host name, no scheme or path)."""
        return await run(tools.request_domain, host, justification)

    @server.tool()
    async def request_route(host: str, justification: str, auth_ref: str | None = None,
                            matches: list[dict] | None = None) -> dict:
        """Ask for an egress route: the bottle adds a credential to requests to host. auth_ref NAMES the credential
        (e.g. GITHUB_TOKEN); never pass a secret value. matches: optional [{paths: [{type: prefix, value: /v1/}],
        methods: [GET]}]."""
        return await run(tools.request_route, host, justification, auth_ref, matches)

    @server.tool()
    async def report_block(url: str, reason_seen: str, justification: str) -> dict:
        """Report a refusal of the bottle's proxy that you believe is wrong (the URL, the 403 text you saw, why)."""
        return await run(tools.report_block, url, reason_seen, justification)

    @server.tool()
    async def list_policy() -> dict:
        """What the bottle allows now: allowed domains and routes (no secrets)."""
        return await run(tools.list_policy)

    @server.tool()
    async def proposal_status(id: str) -> dict:  # noqa: A002
        """The state of a proposal (approved, rejected with the operator's note, or pending)."""
        return await run(tools.proposal_status, id)

    return server


def main():
    # Files this process creates are group-writable so the operator's group on the managed host
    # may record decisions (the store's directory is setgid, see bottle-init); nothing for others.
    os.umask(0o002)
    store = Store(STORE)
    try:
        store.ensure()
    except OSError as exc:
        say("cannot use the proposal store %s: %s" % (STORE, exc))
        return 1
    from mcp.server.transport_security import TransportSecuritySettings
    server = build_server(Supervise(store))
    say("serving MCP on 0.0.0.0:%d/mcp, store %s" % (PORT, STORE))
    server.run(
        "streamable-http", host="0.0.0.0", port=PORT, streamable_http_path="/mcp",
        stateless_http=True, json_response=True, max_request_body_size=65536,
        # Host-header checks guard browsers against DNS rebinding; the agent has no resolver and
        # reaches this server by address, so there is nothing to rebind.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
