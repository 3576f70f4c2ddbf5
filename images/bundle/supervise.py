#!/usr/bin/env python
"""supervise: the bundle's MCP server that turns an agent's asks into proposals.

The agent reaches it at http://<bundle>:9100/mcp (Streamable HTTP, the official
``mcp`` SDK). Each tool validates its input, writes a proposal into the store
(``/var/lib/bottle/supervise``, a directory of the managed host that is mounted
into the bundle only) and waits a bounded time for a human operator's decision
(the ``botbottle.bottle.bottle_supervise`` module on the managed host), answering
``approved``/``rejected`` with the operator's note, or ``pending`` with the id to
ask again with ``proposal_status``.

It also listens on 127.0.0.1:9101 (bundle-local: the agent cannot reach the
bundle's loopback) for egress alone: when a policy says ``firewall.dlp_action:
supervise``, egress holds a request its DLP refused and asks for a ``release``
proposal ("send this request once"), then polls its status:

  POST /release       {"host", "method", "path", "rule", "where", "excerpt"}
                      -> 201 {"id", "status": "pending"}; 400 {"error"} naming the field;
                      429 {"error"} over max_pending; 413 over 8 KiB
  GET /release/<id>   -> 200 {"id", "status": pending|approved|rejected, "note"}; 404 otherwise

The agent never sees a release proposal beyond its status (not the excerpt). A
release proposal still pending after egress stopped holding its request
(``dlp.supervise_timeout`` of egress.json, plus a grace) is rejected by supervise
with a note saying so: it released nothing and no longer counts against max_pending.

Store layout (a contract with bottle_supervise and bottle_info):
  proposals/<id>.json  one JSON object per proposal: id, kind (domain|route|block|release),
                       status (pending|approved|rejected), created, decided, note,
                       the request fields and (but for release) the justification
  audit.jsonl          append-only, one JSON line per proposal and per decision

Everything but ``main()`` is plain Python (no SDK import), so the validation and the
store are unit-tested without the server.
"""

import json
import os
import re
import secrets
import sys
import threading
import time
import unicodedata
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# The rules for what an agent writes (host names, text fields, log lines): beside this file in the
# bundle (/opt/supervise), the collection's plugins/module_utils/agent_text.py (the build context's
# agent_text.py is a symlink to it; a test that mounts this folder puts the file on PYTHONPATH).
# The store's format (kinds, statuses, ids, a release's fields, time stamps) and a route's schema are the
# collection's plugins/module_utils/proposal_format.py and route_schema.py, beside it the same way.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent_text  # noqa: E402  pylint: disable=wrong-import-position
import proposal_format  # noqa: E402  pylint: disable=wrong-import-position
# What a route may hold (path rules, methods): route_schema, the rules of the manifest and of egress too.
import route_schema  # noqa: E402  pylint: disable=wrong-import-position
# supervise.json's defaults and what egress.json says of a held request: bundle_format, the renderer's too.
import bundle_format  # noqa: E402  pylint: disable=wrong-import-position

STORE = os.environ.get("BOTTLE_SUPERVISE_STORE", "/var/lib/bottle/supervise")
CONFIG_DIR = os.environ.get("BOTTLE_SUPERVISE_CONFIG", "/run/bottle/supervise")
PORT = 9100
# egress's endpoint: bundle-local, plain HTTP.
INTERNAL_HOST = "127.0.0.1"
INTERNAL_PORT = 9101
KINDS = proposal_format.KINDS
# Kinds the agent asks for through the MCP tools; a release is egress's alone.
AGENT_KINDS = proposal_format.AGENT_KINDS
STATUSES = proposal_format.STATUSES

ID_RE = proposal_format.ID_RE
MAX_TOKEN_REF = 64
METHODS = route_schema.METHODS
PATH_TYPES = route_schema.PATH_TYPES

MAX_JUSTIFICATION = 2000
MAX_REASON = 1000
MAX_URL = 2048
MAX_MATCHES = 8
MAX_PATHS = 16
MAX_PATH_VALUE = 512
MAX_PROPOSAL_BYTES = 16384
DEFAULTS = bundle_format.SUPERVISE_DEFAULTS
# A release proposal: what egress held (it redacts the excerpt; supervise bounds it all the same).
RELEASE_FIELDS = proposal_format.RELEASE_FIELDS
MAX_METHOD = 16
MAX_PATH = 2048
MAX_RULE = 200
MAX_EXCERPT = 400
MAX_INTERNAL_BODY = 8192
# How long egress holds a request (egress.json dlp.supervise_timeout, bundle_format's default), and
# how much longer a pending release proposal is kept before supervise rejects it as timed out.
DEFAULT_RELEASE_TIMEOUT = bundle_format.DEFAULT_DLP["supervise_timeout"]
RELEASE_GRACE = 30
TCHAR_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


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
    why = agent_text.text_error(value)
    if why:
        raise InvalidRequest("%s %s: write plain text" % (name, why))
    return value


def check_host(value, name="host"):
    """One exact host name, lower-cased: no scheme, port, path or wildcard, and no spelling of an address
    (agent_text.host_error: hex, octal, integer and short IPv4 forms, IPv6, brackets, zone ids)."""
    why = agent_text.host_error(value)
    if why:
        raise InvalidRequest("%s %s" % (name, why))
    return agent_text.normalize_host(value)


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
                kind = rule.get("type", route_schema.DEFAULT_PATH_TYPE)
                why = route_schema.path_type_error(kind)
                if why:
                    raise InvalidRequest("%s.type %s" % (rwhere, why))
                value = rule.get("value")
                if not isinstance(value, str) or not value or len(value) > MAX_PATH_VALUE:
                    raise InvalidRequest("%s.value must be a path of 1 to %d characters" % (rwhere, MAX_PATH_VALUE))
                why = agent_text.text_error(value, multiline=False)
                if why:
                    raise InvalidRequest("%s.value %s: write the path as one line of text" % (rwhere, why))
                why = route_schema.path_value_error(kind, value)
                if why:
                    raise InvalidRequest("%s.value %s" % (rwhere, why))
                clean["paths"].append({"type": kind, "value": value})
        if "methods" in entry:
            methods = entry["methods"]
            if not isinstance(methods, list) or not methods:
                raise InvalidRequest("%s.methods must be a non-empty list of HTTP methods" % where)
            clean["methods"] = []
            for method in methods:
                why = route_schema.method_error(method)
                if why:
                    raise InvalidRequest("%s.methods: %s" % (where, why))
                clean["methods"].append(method.upper())
        out.append(clean)
    return out


def _printable(value, name, limit):
    """A non-empty one-line string of at most ``limit`` printable characters, as given (not stripped)."""
    if not isinstance(value, str):
        raise InvalidRequest("%s must be a string" % name)
    if not value:
        raise InvalidRequest("%s is required" % name)
    if len(value) > limit:
        raise InvalidRequest("%s is %d characters long; at most %d" % (name, len(value), limit))
    if not value.isprintable():
        raise InvalidRequest("%s contains characters that are not printable" % name)
    return value


def check_excerpt(value):
    """The redacted excerpt egress shows the operator: at most 400 characters, no control character
    but newline and tab (empty is fine)."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidRequest("excerpt must be a string")
    if len(value) > MAX_EXCERPT:
        raise InvalidRequest("excerpt is %d characters long; at most %d" % (len(value), MAX_EXCERPT))
    for char in value:
        if char in "\n\t":
            continue
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise InvalidRequest("excerpt contains control characters (only newline and tab are kept)")
    return value


def check_release(fields):
    """The fields of a release proposal (what egress held), normalised; InvalidRequest naming the field."""
    if not isinstance(fields, dict):
        raise InvalidRequest("the body must be a JSON object with %s" % ", ".join(RELEASE_FIELDS))
    unknown = sorted(str(k) for k in set(fields) - set(RELEASE_FIELDS))
    if unknown:
        raise InvalidRequest("%s is not a field of a release: send %s" % (unknown[0][:40], ", ".join(RELEASE_FIELDS)))
    method = fields.get("method")
    if not isinstance(method, str) or not method or len(method) > MAX_METHOD or not TCHAR_RE.match(method):
        raise InvalidRequest("method %r is not an HTTP method (a token of at most %d characters)"
                             % (str(method)[:40], MAX_METHOD))
    return {
        "host": check_host(fields.get("host")),
        "method": method,
        "path": _printable(fields.get("path"), "path", MAX_PATH),
        "rule": _printable(fields.get("rule"), "rule", MAX_RULE),
        "where": _printable(fields.get("where"), "where", MAX_RULE),
        "excerpt": check_excerpt(fields.get("excerpt")),
    }


def check_url(value):
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        raise InvalidRequest("url must be the URL that was refused (at most %d characters)" % MAX_URL)
    why = agent_text.text_error(value.strip(), multiline=False)
    if why:
        raise InvalidRequest("url %s: give the URL as one line of text" % why)
    try:
        parts = urlsplit(value.strip())
        hostname = parts.hostname
    except ValueError:  # an unbalanced or invalid bracketed host
        hostname = None
    if hostname is None or parts.scheme not in ("http", "https"):
        raise InvalidRequest("url %r must be an http or https URL with a host name" % value[:80])
    check_host(hostname, "url's host")
    return value.strip()


def validate(kind, fields):
    """The request fields of a ``kind`` proposal, normalised; InvalidRequest when not acceptable."""
    if kind == "release":
        return check_release(fields)
    justification = _text(fields.get("justification"), "justification", MAX_JUSTIFICATION)
    if kind == "domain":
        clean = {"host": check_host(fields.get("host"))}
    elif kind == "route":
        clean = {"host": check_host(fields.get("host"))}
        ref = fields.get("auth_ref")
        if ref not in (None, ""):
            if route_schema.token_ref_error(ref) or len(ref) > MAX_TOKEN_REF:
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


now = proposal_format.now
# Seconds since the epoch of a ``now()`` stamp; None when it is not one.
epoch = proposal_format.epoch


class TooManyPending(InvalidRequest):
    """max_pending proposals are waiting already."""

    def __init__(self, message, count):
        super().__init__(message)
        self.count = count


class Store:
    """The proposal store; supervise is its only writer on the bottle's side."""

    def __init__(self, root=STORE):
        self.root = root
        self.proposals = os.path.join(root, proposal_format.PROPOSALS)
        self.audit_path = os.path.join(root, proposal_format.AUDIT)
        # The MCP tools and egress's endpoint run in threads of one process: count and write at once.
        self.lock = threading.Lock()

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

    def propose(self, kind, fields, max_pending, by="agent", extra=None):
        """Validate and record a proposal (or return the same pending one); (proposal, created).

        A release is never merged with another: each held request is released, or not, on its own.
        ``extra``: fields supervise adds itself (not the agent's), recorded but not compared.
        """
        clean = validate(kind, fields)
        with self.lock:
            pending = self.pending()
            for proposal in pending if kind != "release" else ():
                same = {k: proposal.get(k) for k in clean if k != "justification"}
                if proposal.get("kind") == kind and same == {k: v for k, v in clean.items() if k != "justification"}:
                    return proposal, False
            if len(pending) >= max_pending:
                raise TooManyPending("%d proposals are already waiting for the operator (the limit): ask about them "
                                     "with proposal_status instead of making new ones" % len(pending), len(pending))
            proposal = dict(dict(extra or {}, **clean), id=secrets.token_hex(8), kind=kind, status="pending",
                            created=now(), decided=None, note="")
            self._write(proposal)
            self.audit(dict({k: v for k, v in proposal.items() if k not in ("status", "decided", "note")},
                            time=proposal["created"], event="proposed", by=by))
        return proposal, True

    def expire_releases(self, timeout, clock=time.time):
        """Reject the release proposals still pending after egress stopped holding their request; their ids."""
        expired = []
        with self.lock:
            for proposal in self.pending():
                created = epoch(proposal.get("created"))
                if proposal.get("kind") != "release" or created is None or clock() < created + timeout + RELEASE_GRACE:
                    continue
                # Read again just before writing: a decision the operator made meanwhile stands.
                current = self.read(proposal["id"])
                if current is None or current.get("status") != "pending":
                    continue
                stamp = now()
                note = ("timed out: egress held the request for %d s and refused it; nothing was sent" % timeout)
                self._replace(dict(current, status="rejected", decided=stamp, note=note))
                self.audit({"event": "rejected", "by": "supervise", "id": current["id"], "kind": "release",
                            "time": stamp, "note": note, "host": current.get("host")})
                expired.append(current["id"])
        return expired

    def _replace(self, proposal):
        """Rewrite an existing proposal (supervise's own timeout rejection of a release)."""
        data = (json.dumps(proposal, indent=2, sort_keys=True) + "\n").encode("utf-8")
        tmp = os.path.join(self.proposals, ".tmp-%s" % secrets.token_hex(8))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o664)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, self.path(proposal["id"]))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


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


def credential_serves(ref, config_dir=CONFIG_DIR):
    """The hosts whose route in the staged configuration carries credential ``ref``, sorted. Recorded in a
    route proposal for the operator, who is shown, at decision time, the same list computed again from the
    policy on the managed host (this copy is only what the bottle saw when it asked)."""
    return sorted({str(route.get("host")).lower() for route in current_policy(config_dir)["routes"]
                   if route.get("auth_ref") == ref and route.get("host")})


def release_timeout(config_dir=CONFIG_DIR):
    """How long egress holds a request for the operator (egress.json dlp.supervise_timeout)."""
    try:
        with open(os.path.join(config_dir, "egress.json"), encoding="utf-8") as handle:
            return bundle_format.release_hold(json.load(handle))
    except (OSError, ValueError):
        return DEFAULT_RELEASE_TIMEOUT


def answer(proposal, created=None):
    """What a tool returns about ``proposal``."""
    status = proposal.get("status")
    if proposal.get("kind") == "release":
        # egress's, not the agent's: its status only (never the excerpt, the rule or the note).
        return {"id": proposal["id"], "kind": "release", "status": status,
                "message": "a request the firewall holds for the operator; egress sends it once if approved, "
                           "else refuses it"}
    out = {"id": proposal["id"], "kind": proposal.get("kind"), "status": status}
    if status == "pending":
        out["message"] = ("waiting for the operator; ask again with proposal_status(id=%r). Do not try another "
                          "way around the block meanwhile." % proposal["id"])
        if created is False:
            out["message"] = "an identical proposal is already waiting; " + out["message"]
        failed = proposal.get("not_applied")
        if isinstance(failed, dict):
            # The operator approved, and the bottle's firewall refused the configuration: nothing changed.
            out["message"] = ("the operator's approval could NOT be applied - the bottle's firewall refused the "
                              "configuration it made (%s), so nothing is allowed yet; the proposal is still "
                              "pending: ask again with proposal_status(id=%r) later, or ask for something else"
                              % (str(failed.get("why", ""))[:400], proposal["id"]))
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

    def _ask(self, kind, fields, extra=None):
        if kind not in AGENT_KINDS:
            return {"status": "refused", "error": "unknown kind %r" % (kind,)}
        config = self._config()
        try:
            self.store.expire_releases(release_timeout(self.config_dir))
        except OSError as exc:
            say("could not expire held releases: %s" % exc)
        try:
            proposal, created = self.store.propose(kind, fields, config["max_pending"], extra=extra)
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
        extra = None
        if not route_schema.token_ref_error(auth_ref) and len(auth_ref) <= MAX_TOKEN_REF:
            # The operator is shown where this credential is already sent: binding it to another host is
            # their explicit choice.
            extra = {"credential_serves": credential_serves(auth_ref, self.config_dir)}
        return self._ask("route", {"host": host, "auth_ref": auth_ref, "matches": matches,
                                   "justification": justification}, extra)

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


class Releases:
    """egress's side: create a release proposal for a held request, and tell its status."""

    def __init__(self, store, config_dir=CONFIG_DIR):
        self.store = store
        self.config_dir = config_dir

    def create(self, fields):
        """(HTTP status, JSON body) for POST /release."""
        try:
            clean = check_release(fields)
        except InvalidRequest as exc:
            return 400, {"error": str(exc)}
        try:
            self.store.expire_releases(release_timeout(self.config_dir))
        except OSError as exc:
            say("could not expire held releases: %s" % exc)
        try:
            proposal, _created = self.store.propose("release", clean, load_config(self.config_dir)["max_pending"],
                                                    by="egress")
        except TooManyPending as exc:
            return 429, {"error": "%d proposals are already waiting for the operator (supervise.max_pending): "
                                  "not holding this request" % exc.count}
        except InvalidRequest as exc:
            return 400, {"error": str(exc)}
        say("proposal %s (release) %s %s %s: %s in %s" % (proposal["id"], clean["method"], clean["host"],
                                                          clean["path"][:200], clean["rule"], clean["where"]))
        return 201, {"id": proposal["id"], "status": "pending"}

    def status(self, proposal_id):
        """(HTTP status, JSON body) for GET /release/<id>."""
        if not isinstance(proposal_id, str) or not ID_RE.match(proposal_id):
            return 404, {"error": "no release proposal %s" % str(proposal_id)[:40]}
        proposal = self.store.read(proposal_id)
        if proposal is None or proposal.get("kind") != "release":
            return 404, {"error": "no release proposal %s" % proposal_id}
        status, note = proposal.get("status"), proposal.get("note")
        if status not in STATUSES:
            # Not what the operator's module writes: never a release.
            status, note = "rejected", "the proposal's status %r is not one supervise knows" % (str(status)[:40],)
        return 200, {"id": proposal_id, "status": status, "note": note if isinstance(note, str) else ""}


class InternalHandler(BaseHTTPRequestHandler):
    """POST /release and GET /release/<id> on 127.0.0.1:9101 (egress only; JSON, small bodies)."""

    protocol_version = "HTTP/1.1"
    server_version = "supervise"
    sys_version = ""
    timeout = 10  # a client that stalls mid-request loses its thread after this many seconds

    def _send(self, code, body):
        data = (json.dumps(body, sort_keys=True) + "\n").encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, code, error):
        # What was not read stays unread: never reuse this connection.
        self.close_connection = True
        self._send(code, {"error": error})

    def do_POST(self):  # noqa: N802 - http.server's name
        if self.path != "/release":
            return self._refuse(404, "no such endpoint: POST /release")
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._refuse(411, "send the body with a Content-Length, not chunked")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._refuse(411, "Content-Length is required")
        if length < 0:
            return self._refuse(400, "Content-Length is negative")
        if length > MAX_INTERNAL_BODY:
            return self._refuse(413, "the body is %d bytes; at most %d" % (length, MAX_INTERNAL_BODY))
        raw = self.rfile.read(length)
        if len(raw) != length:
            return self._refuse(400, "the body ended after %d of %d bytes" % (len(raw), length))
        try:
            fields = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._send(400, {"error": "the body is not JSON (UTF-8)"})
        code, body = self.server.releases.create(fields)
        return self._send(code, body)

    def do_GET(self):  # noqa: N802
        if self.headers.get("Content-Length", "0").strip() not in ("", "0") or self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # a body nobody reads: never parse it as the next request
        prefix = "/release/"
        if not self.path.startswith(prefix):
            return self._send(404, {"error": "no such endpoint: GET /release/<id>"})
        code, body = self.server.releases.status(self.path[len(prefix):])
        return self._send(code, body)

    def _not_allowed(self):
        self._refuse(405, "only POST /release and GET /release/<id>")

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed  # noqa: N815

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass  # egress polls: a line per request would drown the log (proposals are logged when made)


class InternalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, releases):
        self.releases = releases
        super().__init__(address, InternalHandler)

    def handle_error(self, request, client_address):
        say("internal endpoint: error handling a request from %s:%s: %s" % (
            client_address[0], client_address[1], sys.exc_info()[1]))


def start_internal(releases, host=INTERNAL_HOST, port=INTERNAL_PORT, on_exit=None, poll_interval=0.5):
    """Bind egress's endpoint (raises OSError when it cannot) and serve it in a thread.

    ``on_exit`` runs if the serving thread ever ends (main() ends the whole process then).
    """
    server = InternalServer((host, port), releases)

    def serve():
        try:
            server.serve_forever(poll_interval=poll_interval)
        except BaseException as exc:  # noqa: BLE001 - any end of the listener ends the daemon
            say("internal endpoint %s:%d died: %r" % (host, port, exc))
        finally:
            if on_exit is not None and not getattr(server, "stopping", False):
                on_exit()

    thread = threading.Thread(target=serve, name="supervise-internal", daemon=True)
    thread.start()
    return server, thread


def stop_internal(server):
    server.stopping = True
    server.shutdown()
    server.server_close()


def die():
    """End the whole daemon: bottle-init fails the bundle closed when supervise is gone."""
    say("a listener ended: supervise exits")
    sys.stdout.flush()
    os._exit(1)


MAX_LOG_LINE = 4000


def say(line):
    """One line of supervise's log (docker logs): what an agent wrote in it is shown escaped, never sent to the
    terminal as it is (agent_text.terminal: no control character or escape sequence, bidi neutralised)."""
    sys.stdout.write(agent_text.terminal(line.rstrip("\n"), MAX_LOG_LINE) + "\n")
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
        (e.g. GITHUB_TOKEN); never pass a secret value. A credential that already serves another host is sent to
        this one only if the operator explicitly agrees. matches: optional [{paths: [{type: prefix, value: /v1/}],
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
    try:
        start_internal(Releases(store), on_exit=die)
    except OSError as exc:
        say("cannot listen on %s:%d for egress: %s" % (INTERNAL_HOST, INTERNAL_PORT, exc))
        return 1
    say("serving egress's release endpoint on %s:%d" % (INTERNAL_HOST, INTERNAL_PORT))
    from mcp.server.transport_security import TransportSecuritySettings
    server = build_server(Supervise(store))
    say("serving MCP on 0.0.0.0:%d/mcp, store %s" % (PORT, STORE))
    server.run(
        "streamable-http", host="0.0.0.0", port=PORT, streamable_http_path="/mcp",
        stateless_http=True, json_response=True, max_request_body_size=65536,
        # Host-header checks guard browsers against DNS rebinding; the agent has no resolver and
        # reaches this server by address, so there is nothing to rebind.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    # The MCP server returned: the process ends, and the internal endpoint (a daemon thread) with it.
    return 0


if __name__ == "__main__":
    sys.exit(main())
