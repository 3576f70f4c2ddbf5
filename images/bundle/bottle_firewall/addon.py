# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mitmproxy 12 hooks of the bottle's egress firewall.

egress runs ``mitmdump --mode regular --set connection_strategy=lazy`` and the agent uses it
as HTTPS_PROXY/HTTP_PROXY. What mitmproxy 12's source says, and what this addon does with it:

- A CONNECT runs ``http_connect`` before TLS and, with the lazy strategy, before any upstream
  connection; then ``tls_clienthello`` (the SNI), then per request ``requestheaders``,
  ``request`` and only then ``server_connect``. The allowlist and the SSRF check are decided
  at CONNECT. A refused host still gets its CONNECT answered 200: mitmproxy terminates TLS with
  the bottle's CA and every request in the tunnel is answered 403 with a readable text, while
  ``server_connect`` refuses any upstream connection for it (a second wall).
- The checked address is dialled: ``http_connect`` writes it into the CONNECT request's host,
  which mitmproxy copies into the tunnel's server address, so every upstream connection of the
  tunnel goes to that address (and keep-alive reuse still matches), while the upstream SNI
  stays the client's (checked) SNI. Plain-HTTP proxy requests are pinned in ``server_connect``.
- With ``stream_large_bodies`` unset the request body is buffered: nothing goes upstream before
  the ``request`` hook returns. Route matches are decided in ``requestheaders`` (so a request
  outside them never starts); the body is scanned in ``request``; the credential is injected
  last. ``body_size_limit`` would also cut large downloads, so the request cap lives here.
- A response set in ``requestheaders`` still lets mitmproxy read the body and call ``request``
  (which then leaves the flow alone), and no server connection is made for it.
- ``responseheaders`` sets ``flow.response.stream = True``: downloads and server-sent events
  pass through as they arrive. When the request carried an injected credential (it then asked
  for ``Accept-Encoding: identity``), the stream is ``redact.StreamRedactor`` instead: every
  form of the credential is masked in the response headers, the body as it streams (decoded
  if the upstream encoded it anyway; a coding egress cannot decode becomes a 502) and, in the
  ``response`` hook, the trailers.
- The head and body are scanned as the agent sent them too (issue 20): ``scan_head`` gets the
  request line and every header field as bytes (``raw_head``), ``scan_body`` the body's
  encoded layers; a body that does not parse as its declared type, or whose Content-Encoding
  has bytes after its end, is refused 400 (``body-parse``, ``body-decode``).
- Upstream redirects: a GitHub release download answers 302 with a Location carrying a JWT in
  its query; S3/GCS presigned URLs carry a key id and a signature. DLP would refuse the agent's
  follow-up request, so ``responseheaders`` remembers the absolute URL of every 3xx Location it
  passes to the agent (``Redirects``: 256 entries, LRU, 5 minutes). A later request whose
  absolute URL is exactly a remembered one skips the *pattern* (kingfisher) and *entropy*
  checks on its URL only, because that value came from upstream, not from the agent: the agent
  could only have put data into it through the request that earned the redirect, whose URL,
  headers and body were scanned in full. Everything else still applies: the known-secret check
  on the URL (the agent's own secrets and route tokens: an upstream that echoes them back must
  not become a way out), headers and body scanned in full, the target host through the
  allowlist, SSRF, routes, rate limit. The memory is global, not per client connection: the
  redirect target is usually another host (github.com -> objects.githubusercontent.com), so
  the follow-up comes in another CONNECT tunnel, on another connection; egress serves one
  bottle, so every remembered URL was handed to this agent. The audit line of such a request
  says ``"exempt": "upstream-redirect"``.
- An exception in a hook is only logged by mitmproxy and the flow continues, so every hook is
  wrapped by ``guarded``: any error refuses the flow, the connection or the message.
- ``tcp_start``: killing the flow alone does not stop mitmproxy from opening the server
  connection, so the refusal also sets ``server_conn.error``.
- WebSocket: mitmproxy has no kill for a WebSocket flow (websocket.py ignores flow.kill), so a
  message with a secret is dropped, every later agent message of the flow too, and the client
  connection is closed through the proxyserver's connection handler.
- ``dlp.action: supervise`` (release.py): a DLP hit on a request (URL, headers, body, trailers;
  not a WebSocket message, not a host at CONNECT, not a refusal of another kind) is held
  rather than refused. ``requestheaders`` notes a hit in the head and goes on deciding (body
  limit, route, rate limit: those still refuse); ``request`` scans the body, then asks the
  operator about each noted hit in turn (a release proposal at supervise's bundle-local
  endpoint) and waits, polling, while the hook awaits: mitmproxy holds the request (buffered,
  no server connection yet, lazy strategy) until the hook returns. All released: the request
  goes on exactly as an allowed one (credential injection included), once; anything else is
  a 403 naming the rule, the place and why (rejected with the operator's note, no decision
  within ``dlp.supervise_timeout``, supervise not asked: down, 429, ...). An error while
  holding refuses 403; ``done`` (egress stops), the agent disconnecting, or the hook's task
  being cancelled kill the flow. The audit has ``"action": "hold"`` with the proposal id,
  then ``allow`` or ``block`` with the same rule and id.

mitmproxy is imported lazily (responses, the proxyserver): the module imports on the
controller's Python 3.11, where the unit tests drive these hooks with fake flows.
"""

import asyncio
import collections
import contextlib
import functools
import inspect
import logging
import math
import os
import time
import traceback
from urllib.parse import urljoin, urlsplit

from . import layers, policy, protocol, redact, release, routes, scan_service, ssrf
from .audit import Audit
from .bodies import BodyError, decode_content
from .dlp import Engine
from .ratelimit import RateLimiter
from .ssrf import SsrfGuard

LOG = logging.getLogger("bottle_firewall")
META = "bottle_firewall"
THREAD_THRESHOLD = 64 * 1024
REQUEST_DOMAIN_HINT = ("If the task needs this host, ask the operator with the supervise MCP tool "
                       "request_domain(host, justification).")


def mitmproxy_response(status, text, headers):
    """An ``http.Response`` (imported here: mitmproxy only exists in the bundle)."""
    from mitmproxy import http
    return http.Response.make(status, text.encode("utf-8"), headers)


def close_client_connection(flow):
    """Close the agent's connection of ``flow`` (mitmproxy 12 has no API to kill a WebSocket)."""
    from mitmproxy import ctx
    proxyserver = ctx.master.addons.get("proxyserver")
    handler = proxyserver.connections.get(flow.client_conn.id) if proxyserver else None
    if handler is not None:
        handler.close_connection(flow.client_conn)


UPSTREAM_FAILED = "egress allowed this; the upstream failed: "
# bottle-health's probe (images/bundle/bottle_health.py): a plain request for this name (.invalid never
# resolves) from the bundle's own loopback is answered with the firewall's 403 and written to no audit.
HEALTH_HOST = "bottle-health.invalid"
HEALTH_TEXT = "blocked by egress: a bottle-health probe (egress answers; nothing was sent)"
LOOPBACK_PEERS = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


class Refusal:
    """Why a connection or request is refused: HTTP status, audit rule, readable message; the
    audit ``action`` is "block" (a policy refusal) or "upstream-error" (egress allowed it, the
    upstream failed: ``upstream_failure``)."""

    __slots__ = ("status", "rule", "message", "hint", "retry_after", "action")

    def __init__(self, status, rule, message, hint=False, retry_after=None, action="block"):
        self.status, self.rule, self.message = status, rule, message
        self.hint, self.retry_after = hint, retry_after
        self.action = action

    @property
    def upstream(self):
        return self.action == "upstream-error"

    def text(self):
        return self.message + "\n" + (REQUEST_DOMAIN_HINT + "\n" if self.hint else "")

    def __repr__(self):
        return "Refusal(%r, %r, %r)" % (self.status, self.rule, self.message)


def upstream_failure(rule, reason, status=502):
    """egress allowed the request; reaching the upstream failed (``upstream-dns`` ...): the text names the rule."""
    return Refusal(status, rule, "%s%s (rule %s)" % (UPSTREAM_FAILED, reason, rule), action="upstream-error")


def upstream_rule(message):
    """The audit rule of an upstream failure mitmproxy reports (``flow.error.msg``)."""
    text = (message or "").lower()
    if "certificate" in text or "tls" in text or "ssl" in text:
        return "upstream-tls"
    if "timed out" in text or "timeout" in text:
        return "upstream-timeout"
    if "name or service" in text or "nodename" in text or "getaddrinfo" in text or "resolve" in text:
        return "upstream-dns"
    return "upstream-connect"


class ByteCount:
    """A response stream callable that counts the upstream's body bytes and hands each chunk to
    ``inner`` (another stream callable, e.g. ``redact.StreamRedactor``) or passes it on."""

    __slots__ = ("inner", "count")

    def __init__(self, inner=None):
        self.inner = inner if callable(inner) else None
        self.count = 0

    def __call__(self, chunk):
        self.count += len(chunk)
        return self.inner(chunk) if self.inner is not None else chunk


class Tunnel:
    """What egress knows about one client connection that sent a CONNECT."""

    __slots__ = ("host", "port", "ip", "refusal", "passthrough")

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.ip = None
        self.refusal = None
        self.passthrough = False


class FlowState:
    """Per-request decisions taken in ``requestheaders`` and carried out in ``request``."""

    __slots__ = ("host", "port", "route", "inject", "strip", "decided", "ws_blocked", "refused", "exempt", "held",
                 "credentials", "injected", "websocket", "started", "counter", "outcome", "up")

    def __init__(self):
        self.host = self.port = self.route = None
        self.inject, self.strip = [], []
        self.credentials = []  # the route's credential values (to mask in the response)
        self.injected = False  # set once the credential went into the request
        self.decided = False
        self.ws_blocked = False
        self.refused = False  # egress answered it (its response is egress's own)
        self.exempt = None    # "upstream-redirect": the URL skipped the pattern and entropy checks
        self.held = []        # DLP hits to put to the operator before it may go (dlp.action: supervise)
        self.websocket = False  # an accepted RFC 6455 handshake: only then may a 101 follow
        self.started = None   # when the request was allowed (monotonic): the outcome's duration
        self.counter = None   # ByteCount of the streamed response
        self.outcome = False  # the outcome line was written
        self.up = 0           # request body bytes sent upstream


DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_REDIRECT_URL = 16 * 1024


def absolute_url(scheme, host, port, path):
    """The URL a request is for, in one spelling: ``https://host[:port]/path?query``."""
    scheme = (scheme or "").lower()
    host = policy.normalize_host(host) or ""
    if ":" in host:
        host = "[%s]" % host
    authority = host if port == DEFAULT_PORTS.get(scheme) else "%s:%s" % (host, port)
    return "%s://%s%s" % (scheme, authority, path or "/")


def redirect_target(base, location):
    """The absolute URL a Location header sends the client to, in ``absolute_url``'s spelling,
    or None (not http(s), unparsable, too long)."""
    if not location or len(location) > MAX_REDIRECT_URL:
        return None
    try:
        parts = urlsplit(urljoin(base, location.strip()))
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return absolute_url(scheme, parts.hostname, port or DEFAULT_PORTS[scheme], path)


class Redirects:
    """The absolute URLs upstream handed to the agent in a 3xx Location: an LRU of ``size``
    entries, each valid ``ttl`` seconds after it was last handed out."""

    def __init__(self, clock, size=256, ttl=300.0):
        self.clock, self.size, self.ttl = clock, size, ttl
        self.entries = collections.OrderedDict()

    def remember(self, url):
        self.entries[url] = self.clock() + self.ttl
        self.entries.move_to_end(url)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)

    def holds(self, url):
        expiry = self.entries.get(url)
        if expiry is None:
            return False
        if self.clock() >= expiry:
            del self.entries[url]
            return False
        self.entries.move_to_end(url)
        return True

    def __len__(self):
        return len(self.entries)


def _raw(value):
    return value if isinstance(value, bytes) else (value or "").encode("utf-8", "surrogateescape")


def raw_fields(headers, kind="header"):
    """(where, ``name: value`` bytes) of each header field as received (mitmproxy keeps the bytes)."""
    fields = getattr(headers, "fields", None)
    if fields is None:
        fields = headers.items(multi=True)
    return [("%s %s" % (kind, _raw(name).decode("latin-1")), _raw(name) + b": " + _raw(value))
            for name, value in fields]


def raw_head(request):
    """The request line (the method; the target: authority when sent in absolute form, then the
    path) and each header field, as the agent sent them, for the scan of every byte of the head."""
    data = request.data
    parts = {}
    for name in ("method", "authority", "path"):
        value = getattr(data, name, None)
        parts[name] = value if isinstance(value, bytes) else _raw(getattr(request, name, ""))
    target = b" ".join(part for part in (parts["authority"], parts["path"]) if part)
    return [("request method", parts["method"]), ("request target", target)] + raw_fields(request.headers)


def header_values(headers, name):
    """Every value of header ``name`` (each field on its own)."""
    get_all = getattr(headers, "get_all", None)
    if get_all is not None:
        return list(get_all(name))
    return [value for key, value in headers.items(multi=True) if key.lower() == name]


def single_header(headers, name):
    """The one value of ``name`` ('' if absent); BodyError (body-parse) if it is sent twice: an
    upstream may read the other one."""
    values = header_values(headers, name)
    if len(values) > 1:
        raise BodyError("request has %d %s headers (one is allowed)" % (len(values), name), "body-parse")
    return values[0] if values else ""


def _error_text(exc):
    return "blocked by egress: internal error (%s)" % type(exc).__name__


def guarded(refuse):
    """Wrap a hook so that any exception refuses what it guards (``refuse(self, hook, data, exc)``).

    The exception's message is not logged (it may quote request data); its type and the frames
    are."""
    def decorate(method):
        name = method.__name__

        def failed(self, data, exc):
            frames = "; ".join("%s:%d %s" % (os.path.basename(f.filename), f.lineno, f.name)
                               for f in traceback.extract_tb(exc.__traceback__))
            LOG.error("egress: %s failed with %s (%s); refusing", name, type(exc).__name__, frames)
            try:
                refuse(self, name, data, exc)
            except Exception as inner:  # the last resort: whatever can still be killed
                LOG.error("egress: refusing after %s failed too (%s)", name, type(inner).__name__)
                _kill_anything(data)

        if inspect.iscoroutinefunction(method):
            @functools.wraps(method)
            async def wrapper(self, data):
                try:
                    return await method(self, data)
                except Exception as exc:
                    failed(self, data, exc)
        else:
            @functools.wraps(method)
            def wrapper(self, data):
                try:
                    return method(self, data)
                except Exception as exc:
                    failed(self, data, exc)
        return wrapper
    return decorate


def _kill_anything(data):
    # Each step on its own: whatever ``data`` lacks (or raises) must not stop the next one.
    with contextlib.suppress(Exception):
        data.server.error = "blocked by egress: internal error"
    with contextlib.suppress(Exception):
        data.ignore_connection = False
    with contextlib.suppress(Exception):
        data.kill()


def _refuse_http(self, hook, flow, exc):
    state = flow.metadata.get(META) if isinstance(getattr(flow, "metadata", None), dict) else None
    if state is not None:
        state.inject = []
    if hook in ("requestheaders", "request", "http_connect"):
        self._respond(flow, Refusal(502, "error", _error_text(exc)), "request" if hook != "http_connect" else "connect")
        if hook == "http_connect":
            tunnel = self.tunnels.setdefault(flow.client_conn.id, Tunnel(None, None))
            tunnel.refusal = Refusal(502, "error", _error_text(exc))
        return
    if getattr(flow, "killable", True):
        flow.kill()
    self._audit_flow("request", flow, Refusal(502, "error", _error_text(exc)))


def _refuse_response(self, hook, flow, exc):
    """A response the addon could not check for an injected credential: not sent on."""
    state = flow.metadata.get(META) if isinstance(getattr(flow, "metadata", None), dict) else None
    if getattr(flow, "killable", True):
        flow.kill()
    self.audit.record("response", state.host if state else None, state.port if state else None, rule="error",
                      action="block", route=state.route if state else None, status=502)


def _refuse_tls(self, hook, data, exc):
    data.ignore_connection = False
    data.establish_server_tls_first = False
    client_id = data.context.client.id
    tunnel = self.tunnels.setdefault(client_id, Tunnel(None, None))
    tunnel.refusal = Refusal(502, "error", _error_text(exc))
    self.audit.record("connect", tunnel.host, tunnel.port, rule="error", action="block", status=502)


def _refuse_server(self, hook, data, exc):
    data.server.error = _error_text(exc)
    self.audit.record("connect", None, None, rule="error", action="block", status=502)


def _refuse_tcp(self, hook, flow, exc):
    flow.server_conn.error = _error_text(exc)
    if getattr(flow, "killable", True):
        flow.kill()
    flow.metadata[META + ".tcp_refused"] = True
    if getattr(flow, "messages", None):
        flow.messages[-1].content = b""
    self.audit.record("tcp", None, None, rule="error", action="block")
    self.close_client(flow)
    self.close_server(flow)


def _refuse_websocket(self, hook, flow, exc):
    state = flow.metadata.setdefault(META, FlowState())
    state.ws_blocked = True
    flow.websocket.messages[-1].drop()
    self.audit.record("websocket", None, None, rule="error", action="block")
    self.close_client(flow)


def _refuse_dns(self, hook, flow, exc):
    # mitmproxy's DNS layer answers SERVFAIL (and sends nothing upstream) when flow.error is set.
    from mitmproxy import flow as mflow
    flow.response = None
    flow.error = mflow.Error(_error_text(exc))
    self.audit.record("dns", None, None, rule="error", action="block")


def _log_only(self, hook, data, exc):
    """The refusal of a hook with nothing left to refuse (``error``: the flow has failed already):
    ``guarded`` has logged the failure, and that is all."""


HTTP_ALPNS = (b"h2", b"http/1.1", b"http/1.0", b"http/0.9")


def _http_alpn_only(data):
    """The upstream ClientHello offers only the HTTP protocols of the agent's ALPN offers.
    mitmproxy copies the agent's offers (any bytes, up to 255 per name) into it otherwise, and
    falls back to that copy when the server's offers are empty."""
    client_offers = tuple(getattr(data.client, "alpn_offers", None) or ())
    if not client_offers:
        return
    data.server.alpn_offers = tuple(offer for offer in client_offers if offer in HTTP_ALPNS) or (b"http/1.1",)


class Firewall:
    """The addon. Paths default to the BOTTLE_EGRESS_* environment (see the package docs);
    ``engine``, ``resolver``, ``respond``, ``close_client`` and ``clock`` are injectable."""

    def __init__(self, config_path=None, tokens_path=None, secrets_path=None, audit_path=None,
                 rules_cache=None, engine=None, resolver=None, respond=None, close_client=None,
                 clock=time.monotonic, audit_stream=None, protocol_layers=None):
        env = os.environ
        self.config_path = config_path or env.get("BOTTLE_EGRESS_CONFIG", "/run/bottle/egress/egress.json")
        self.tokens_path = tokens_path or env.get("BOTTLE_EGRESS_TOKENS", "/run/bottle/egress/tokens.json")
        self.secrets_path = secrets_path or env.get("BOTTLE_EGRESS_SECRETS", "/run/bottle/egress/secrets.json")
        self.audit = Audit(audit_path if audit_path is not None else env.get("BOTTLE_EGRESS_AUDIT"), audit_stream)
        self.engine = engine or Engine.start(rules_cache or env.get("BOTTLE_EGRESS_RULES_CACHE"))
        self.resolver = resolver
        self.respond = respond or mitmproxy_response
        self.close_client = close_client or close_client_connection
        self.limiter = RateLimiter(policy.DEFAULT_RATE["requests_per_minute"], policy.DEFAULT_RATE["burst"], clock)
        self.redirects = Redirects(clock)
        self.config = None
        self.guard = None
        self.tokens, self.secrets = {}, []
        self.mtimes = {}
        self.tunnels = {}
        self.pinned = {}
        self.waits = {}        # id(flow) -> release.Wait of each request held for the operator
        self.scan_service = None  # git-gate's scans (scan_service.ScanService), started by `running`
        self.stopping = False
        self.hold_clock = time.monotonic
        self.hold_interval = 0.5
        # layers.py's patches (WebSocket control frames, the per-chunk request cap): what is not
        # in force is refused (WebSocket; request bodies of unknown length).
        self.layers = protocol_layers if protocol_layers is not None else layers.install(self)
        self.refresh()

    # --- configuration -------------------------------------------------------------------

    def _changed(self, path):
        mtime = policy.mtime(path)
        if self.mtimes.get(path, "unread") == mtime:
            return False
        self.mtimes[path] = mtime
        return True

    def refresh(self):
        """Re-read a file whose mtime changed; a broken file keeps the previous one in force."""
        if self._changed(self.config_path):
            try:
                config = policy.load_config(self.config_path)
            except (policy.ConfigError, OSError) as exc:
                kept = "the previous configuration stays in force" if self.config else "EVERYTHING IS REFUSED"
                LOG.error("egress: ignoring invalid %s: %s (%s)", self.config_path, exc, kept)
            else:
                self.config = config
                self.guard = SsrfGuard(config.trusted, config.ssrf_networks, self.resolver)
                self.engine.configure(config.dlp["entropy_min_length"], config.dlp["entropy_bits"])
                self.limiter.configure(config.rate_limit["requests_per_minute"], config.rate_limit["burst"])
                self.audit.configure(config.audit["rotate_bytes"], config.audit["keep"])
                LOG.info("egress: %s loaded (mode %s, %d allowlist pattern(s), %d route(s))", self.config_path,
                         config.mode, len(config.allowed.patterns), len(config.routes))
        secrets_changed = False
        if self._changed(self.tokens_path):
            try:
                self.tokens = policy.load_tokens(self.tokens_path)
                secrets_changed = True
            except (policy.ConfigError, OSError) as exc:
                LOG.error("egress: ignoring invalid token file: %s", exc)
        if self._changed(self.secrets_path):
            try:
                self.secrets = policy.load_secrets(self.secrets_path)
                secrets_changed = True
            except (policy.ConfigError, OSError) as exc:
                LOG.error("egress: ignoring invalid secrets file: %s", exc)
        if secrets_changed:
            self.engine.known.load(list(self.secrets) + list(self.tokens.values()))
            LOG.info("egress: %d known secret(s) protected", self.engine.known.count)

    # --- helpers -----------------------------------------------------------------------------

    def _no_config(self):
        return Refusal(503, "error", "blocked by egress: no valid firewall configuration is loaded (see egress's log)")

    async def _admit(self, host, port):
        """(Refusal or None, address to dial) for a connection to host:port."""
        config = self.config
        if config is None:
            return self._no_config(), None
        if not config.allows(host, port):
            if port not in config.ports and (config.allowed.matches(host) or host in config.routes):
                return Refusal(403, "allowlist", "blocked by egress: port %s of host %s is not allowed (ports: %s)"
                               % (port, host, ", ".join(str(p) for p in sorted(config.ports))), hint=True), None
            return Refusal(403, "allowlist", "blocked by egress: host %s is not on this bottle's allowlist" % host,
                           hint=True), None
        hit = self.engine.scan_host(host)
        if hit is not None:
            return Refusal(403, hit.rule, hit.message()), None
        resolution = await self.guard.resolve(host, port)
        if not resolution.allowed:
            if resolution.ip is None and resolution.status == 502:
                # The name does not resolve: not a refusal, the upstream is unreachable.
                return upstream_failure("upstream-dns", resolution.reason), None
            return Refusal(resolution.status, "ssrf", "blocked by egress: " + resolution.reason), None
        return None, resolution.ip

    def _audit_host(self, host):
        """The host as the audit may show it (a refused name can carry data: withheld if it does)."""
        if host and self.engine.scan_host(host) is not None:
            return "(withheld: dlp)"
        return host

    def _audit_flow(self, event, flow, refusal=None, state=None, rule=None, action=None, proposal=None, tunnel=None):
        state = state or flow.metadata.get(META) or FlowState()
        request = flow.request
        body = request.raw_content if event == "request" else None
        self.audit.record(event, self._audit_host(state.host or policy.normalize_host(request.host)),
                          state.port or request.port, request.method, request.path,
                          rule=refusal.rule if refusal else rule,
                          action=action or (refusal.action if refusal else "allow"),
                          route=state.route, nbytes=len(body) if body else 0,
                          status=refusal.status if refusal else None, exempt=state.exempt, proposal=proposal,
                          flow=getattr(flow, "id", None), tunnel=tunnel)

    def _audit_outcome(self, flow, state, action, rule=None, status=None):
        """The outcome line of an allowed request (once): the upstream's status, the bytes each
        way, the duration; ``flow`` ties it to the decision line."""
        if state.outcome:
            return
        state.outcome = True
        request = flow.request
        duration = round(time.monotonic() - state.started, 3) if state.started is not None else None
        self.audit.record("outcome", self._audit_host(state.host or policy.normalize_host(request.host)),
                          state.port or request.port, request.method, request.path, rule=rule, action=action,
                          route=state.route, nbytes=state.up, status=status, flow=getattr(flow, "id", None),
                          down=state.counter.count if state.counter is not None else None, duration=duration,
                          log=False)

    def _respond(self, flow, refusal, event="request", proposal=None, tunnel=None):
        headers = {"Content-Type": "text/plain; charset=utf-8", "X-Bottle-Egress-Rule": refusal.rule}
        if refusal.retry_after is not None:
            headers["Retry-After"] = str(refusal.retry_after)
        flow.response = self.respond(refusal.status, refusal.text(), headers)
        state = flow.metadata.get(META) if isinstance(getattr(flow, "metadata", None), dict) else None
        if state is not None:
            state.refused = True
        LOG.warning("egress: %s", refusal.message)
        self._audit_flow(event, flow, refusal, proposal=proposal, tunnel=tunnel)

    def _health_probe(self, flow, state, config):
        """bottle-health's request: answered here with the firewall's 403 (rule ``health``), never audited nor
        logged (it is not the agent's). Only from the bundle's loopback, where no agent connection comes from
        in firewall mode (behind pipelock every request comes from there: no probe is taken)."""
        peer = getattr(flow.client_conn, "peername", None)
        if config is None or config.mode != "firewall" or not peer or peer[0] not in LOOPBACK_PEERS:
            return False
        state.refused = True
        flow.response = self.respond(403, HEALTH_TEXT + "\n", {"Content-Type": "text/plain; charset=utf-8",
                                                               "X-Bottle-Egress-Rule": "health"})
        return True

    # --- hooks: connections --------------------------------------------------------------------

    @guarded(_refuse_http)
    async def http_connect(self, flow):
        self.refresh()
        config = self.config
        host, port = policy.normalize_host(flow.request.host), flow.request.port
        if flow.client_conn.id in self.tunnels:
            # A CONNECT inside a tunnel would re-target it: mitmproxy hands it to this hook again.
            self._respond(flow, Refusal(403, "request-target", "blocked by egress: CONNECT inside a CONNECT tunnel "
                                        "is refused"), "connect")
            return
        tunnel = Tunnel(host, port)
        self.tunnels[flow.client_conn.id] = tunnel
        if config is not None and config.mode == "behind-pipelock":
            return
        state = FlowState()
        state.host, state.port = host, port
        flow.metadata[META] = state
        tunnel.refusal, tunnel.ip = await self._admit(host, port)
        if tunnel.refusal is not None:
            # The CONNECT itself succeeds: the refusal is answered, readable, inside the tunnel.
            LOG.warning("egress: %s", tunnel.refusal.message)
            self.audit.record("connect", self._audit_host(host), port, "CONNECT", rule=tunnel.refusal.rule,
                              action=tunnel.refusal.action, status=tunnel.refusal.status)
            return
        # mitmproxy copies this into the tunnel's server address: the checked address is dialled.
        flow.request.data.host = tunnel.ip
        self.audit.record("connect", host, port, "CONNECT")

    @guarded(_refuse_tls)
    def tls_clienthello(self, data):
        self.refresh()
        config = self.config
        sni = policy.normalize_host(data.client_hello.sni)
        if config is not None and config.mode == "behind-pipelock":
            if config.route_for(sni) is None:
                data.ignore_connection = True
            return
        tunnel = self.tunnels.get(data.context.client.id)
        if tunnel is None:
            tunnel = self.tunnels[data.context.client.id] = Tunnel(None, None)
            tunnel.refusal = Refusal(403, "sni", "blocked by egress: TLS to egress itself (no CONNECT) is refused")
            self.audit.record("connect", None, None, rule="sni", action="block", status=403)
        data.ignore_connection = False
        if tunnel.refusal is not None:
            data.establish_server_tls_first = False
            return
        if sni != tunnel.host and not (not sni and ssrf.parse_ip_literal(tunnel.host) is not None):
            tunnel.refusal = Refusal(403, "sni", "blocked by egress: the TLS name (SNI) %s does not match the "
                                     "CONNECT host %s" % (sni or "(none)", tunnel.host))
            data.establish_server_tls_first = False
            self.audit.record("connect", tunnel.host, tunnel.port, "CONNECT", rule="sni", action="block", status=403)
            return
        if config is not None and config.passthrough.matches(tunnel.host):
            tunnel.passthrough = True
            data.ignore_connection = True
            self.audit.record("connect", tunnel.host, tunnel.port, "CONNECT", rule="passthrough")

    @guarded(_refuse_server)
    async def server_connect(self, data):
        config = self.config
        if config is None:
            data.server.error = self._no_config().message
            return
        if config.mode == "behind-pipelock":
            return
        client_id = data.client.id
        host, port = data.server.address[0], data.server.address[1]
        tunnel = self.tunnels.get(client_id)
        if tunnel is not None:
            if tunnel.refusal is not None or tunnel.ip is None:
                message = tunnel.refusal.message if tunnel.refusal else "blocked by egress: unchecked tunnel"
                data.server.error = message
                return
            if port != tunnel.port or host not in (tunnel.ip, tunnel.host) or not config.allows(tunnel.host, port):
                data.server.error = "blocked by egress: server %s:%s is not this tunnel's checked address" % (
                    tunnel.host, port)
                self.audit.record("connect", tunnel.host, port, rule="allowlist", action="block")
                return
            data.server.address = (tunnel.ip, port)
            _http_alpn_only(data)
            return
        name = policy.normalize_host(host)
        ip = self.pinned.get(client_id, {}).get((name, port))
        if ip is None:
            refusal, ip = await self._admit(name, port)
            if refusal is not None:
                data.server.error = refusal.message
                self.audit.record("connect", self._audit_host(name), port, rule=refusal.rule, action=refusal.action,
                                  status=refusal.status)
                return
        data.server.address = (ip, port)

    @guarded(_refuse_tcp)
    def tcp_start(self, flow):
        config = self.config
        if config is not None and config.mode == "behind-pipelock":
            return
        tunnel = self.tunnels.get(flow.client_conn.id)
        allowed = (config is not None and tunnel is not None and tunnel.refusal is None and tunnel.ip is not None
                   and config.passthrough.matches(tunnel.host) and config.allows(tunnel.host, tunnel.port))
        host = tunnel.host if tunnel else None
        if allowed:
            self.audit.record("tcp", host, tunnel.port, rule="passthrough")
            return
        self._close_tcp(flow)
        LOG.warning("egress: raw TCP to %s refused", host)
        self.audit.record("tcp", self._audit_host(host), tunnel.port if tunnel else None, rule="raw-tcp",
                          action="block")

    def _close_tcp(self, flow):
        """Refuse a TCP flow on both sides: mitmproxy's TCP layer checks no kill, and after a 101
        the server connection is already open."""
        flow.metadata[META + ".tcp_refused"] = True
        flow.server_conn.error = "blocked by egress: raw TCP is refused (only passthrough_domains may carry it)"
        if getattr(flow, "killable", True):
            flow.kill()
        self.close_client(flow)
        self.close_server(flow)

    def close_server(self, flow):
        """Close ``flow``'s server connection through the proxyserver's handler (if it is open)."""
        try:
            from mitmproxy import ctx
        except ImportError:
            return
        proxyserver = ctx.master.addons.get("proxyserver")
        handler = proxyserver.connections.get(flow.client_conn.id) if proxyserver else None
        if handler is not None and flow.server_conn in getattr(handler, "transports", {}):
            handler.close_connection(flow.server_conn)

    @guarded(_refuse_tcp)
    def tcp_message(self, flow):
        """The second wall: no byte of a refused TCP flow is relayed, whichever way it goes."""
        if flow.metadata.get(META + ".tcp_refused"):
            message = flow.messages[-1]
            message.content = b""
            self._close_tcp(flow)

    @guarded(_refuse_tcp)
    def udp_start(self, flow):
        """UDP is unreachable (TCP listeners, http3 off, no udp_hosts); were it to start, it is
        refused on both sides like raw TCP, and ``udp_message`` relays nothing of it."""
        self._close_tcp(flow)
        LOG.warning("egress: UDP refused")
        self.audit.record("udp", None, None, rule="udp", action="block")

    @guarded(_refuse_tcp)
    def udp_message(self, flow):
        flow.messages[-1].content = b""
        self._close_tcp(flow)

    @guarded(_refuse_dns)
    def dns_request(self, flow):
        """DNS never leaves through egress: mitmproxy's DNS layer takes over a tunnel to port 53
        or 5353 and relays each query (a name can carry data) unless a hook answers it."""
        from mitmproxy.net.dns import response_codes
        flow.response = flow.request.fail(response_codes.REFUSED)
        tunnel = self.tunnels.get(flow.client_conn.id)
        host = tunnel.host if tunnel else None
        LOG.warning("egress: a DNS query to %s refused", host)
        self.audit.record("dns", self._audit_host(host), tunnel.port if tunnel else None, rule="dns", action="block")

    def client_disconnected(self, client):
        self.tunnels.pop(client.id, None)
        self.pinned.pop(client.id, None)
        for wait in list(self.waits.values()):
            if wait.client_id == client.id:
                wait.stop("disconnected")

    def running(self):
        """egress is up: serve git-gate's scans with this engine (scan_service), when bottle-init
        made the socket's directory (git-gate runs in this bundle). Failing to start is loud; git-gate
        then refuses every push (it cannot reach a scanner). Synchronous (mitmproxy calls ``running``
        synchronously when it reloads a script): the server starts in a task of the running loop,
        which is returned."""
        path = os.environ.get("BOTTLE_EGRESS_SCAN_SOCKET", scan_service.DEFAULT_SOCKET)
        if self.scan_service is not None or not os.path.isdir(os.path.dirname(path)):
            return None
        self.scan_service = scan_service.ScanService(self.engine, path, self.refresh)

        async def start(service):
            try:
                await service.start()
            except Exception as exc:
                LOG.error("egress: git-gate's scan service did not start (%s: %s); every push is refused",
                          type(exc).__name__, exc)
        return asyncio.get_running_loop().create_task(start(self.scan_service))

    def done(self):
        """egress stops: every request held for the operator is killed, never sent."""
        self.stopping = True
        if self.scan_service is not None:
            self.scan_service.close()
            self.scan_service = None
        for wait in list(self.waits.values()):
            wait.stop("stopped")
            try:
                if getattr(wait.flow, "killable", True):
                    wait.flow.kill()
            except Exception as exc:
                LOG.error("egress: could not kill a held request at shutdown (%s)", type(exc).__name__)

    # --- hooks: HTTP -------------------------------------------------------------------------

    @guarded(_refuse_http)
    async def requestheaders(self, flow):
        self.refresh()
        flow.request.stream = False  # buffered: nothing goes upstream before `request` returns
        state = FlowState()
        flow.metadata[META] = state
        config = self.config
        if flow.request.host == HEALTH_HOST and self._health_probe(flow, state, config):
            return
        if config is None:
            self._respond(flow, self._no_config())
            return
        if config.mode == "behind-pipelock":
            self._pipelock_requestheaders(flow, state, config)
            return
        request = flow.request
        tunnel = self.tunnels.get(flow.client_conn.id)
        host_header = request.host_header
        upstream = None  # an upstream failure (the name does not resolve): answered once the policy decided
        if tunnel is not None:
            state.host, state.port = tunnel.host, tunnel.port
            if tunnel.refusal is not None and tunnel.refusal.upstream:
                upstream = tunnel.refusal
            elif tunnel.refusal is not None:
                # Answered with its tunnel's refusal: the CONNECT's line counts it (one request, one count).
                self._respond(flow, tunnel.refusal, tunnel="refused")
                return
            if host_header:
                name, port = policy.split_host_port(host_header, tunnel.port)
                if name != tunnel.host or port != tunnel.port:
                    self._respond(flow, Refusal(403, "host-mismatch", "blocked by egress: Host %s does not match the "
                                                "CONNECT host %s (domain fronting)" % (host_header, tunnel.host)))
                    return
            if not config.allows(tunnel.host, tunnel.port):
                self._respond(flow, Refusal(403, "allowlist", "blocked by egress: host %s is not on this bottle's "
                                            "allowlist" % tunnel.host, hint=True))
                return
        else:
            state.host, state.port = policy.normalize_host(request.host), request.port
            if host_header:
                name, port = policy.split_host_port(host_header, request.port)
                if name != state.host or port != request.port:
                    self._respond(flow, Refusal(403, "host-mismatch", "blocked by egress: Host %s does not match the "
                                                "request's URL host %s" % (host_header, state.host)))
                    return
            refusal, ip = await self._admit(state.host, state.port)
            if refusal is not None and refusal.upstream:
                upstream = refusal
            elif refusal is not None:
                self._respond(flow, refusal)
                return
            else:
                self.pinned.setdefault(flow.client_conn.id, {})[(state.host, state.port)] = ip
        refusal = self._protocol_refusal(flow, state, config)
        if refusal is not None:
            self._respond(flow, refusal)
            return
        if self.redirects.holds(absolute_url(request.scheme, state.host, state.port, request.path)):
            state.exempt = "upstream-redirect"
        hit = self.engine.scan_head(request.path, list(request.headers.items(multi=True)),
                                    url_from_upstream=state.exempt is not None, raw=raw_head(request))
        if hit is not None:
            if not self._holds(config, hit):
                self._respond(flow, Refusal(403, hit.rule, hit.message()))
                return
            state.held.append(hit)  # put to the operator in `request`, once the body is scanned too
        limit = config.dlp["max_body_bytes"]
        length = request.headers.get("content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > limit):
            self._respond(flow, Refusal(413, "body-limit", "blocked by egress: request body of %s bytes exceeds the "
                                        "scan limit of %d bytes" % (length.strip()[:20], limit)))
            return
        route = config.route_for(state.host)
        if route is not None:
            state.route = route["host"]
            if not self._route_decision(flow, state, route, request.scheme):
                return
        retry = self.limiter.check(state.host)
        if retry is not None:
            self._respond(flow, Refusal(429, "rate-limit", "blocked by egress: rate limit for %s reached (%s requests "
                                        "a minute); retry in %d s" % (state.host, config.rate_limit["requests_per_minute"],
                                                                      math.ceil(retry)),
                                        retry_after=max(1, math.ceil(retry))))
            return
        if upstream is not None:
            # Every check of the policy passed (a route refusal is not hidden behind it): the
            # request would go, but its upstream cannot be reached.
            state.inject = []
            self._respond(flow, upstream)
            return
        state.decided = True

    def _route_decision(self, flow, state, route, scheme):
        """Strip the agent's own credential headers now, decide the route; False if refused."""
        request = flow.request
        for name in routes.strip_names(route):
            request.headers.pop(name, None)
        decision = routes.decide(route, self.tokens, request.method, request.path.split("?", 1)[0],
                                 request.headers, scheme)
        if decision.refused:
            self._respond(flow, Refusal(decision.status, decision.rule, decision.message))
            return False
        state.inject, state.strip = decision.inject, decision.strip
        token = self.tokens.get((route.get("auth") or {}).get("token_ref")) if decision.inject else None
        state.credentials = [token] if token else []
        return True

    # --- the request's shape, the protocol switches, the per-chunk body cap (protocol.py, layers.py) ------

    def _protocol_refusal(self, flow, state, config):
        """A Refusal for a request whose method, target or Upgrade is not one egress relays, or None.
        Sets ``state.websocket`` for an accepted WebSocket handshake."""
        request = flow.request
        problem = protocol.method_problem(request.method)
        if problem is not None:
            return Refusal(405, "method", "blocked by egress: " + problem)
        problem = protocol.target_problem(getattr(request, "authority", "") or "", request.path, state.host,
                                          state.port)
        if problem is not None:
            return Refusal(403, "request-target", "blocked by egress: " + problem)
        headers = list(request.headers.items(multi=True))
        if protocol.upgrade_requested(headers):
            problem = protocol.websocket_problem(request.method, getattr(request, "http_version", "HTTP/1.1"),
                                                 headers)
            if problem is not None:
                # The Upgrade value is not quoted: it is the agent's data, and this text reaches the log.
                return Refusal(403, "upgrade", "blocked by egress: this Upgrade is refused: only a WebSocket "
                               "handshake may switch protocols (%s)" % problem)
            if not config.websocket.matches(state.host):
                return Refusal(403, "websocket", "blocked by egress: WebSocket to %s is not allowed (the policy's "
                               "firewall.websocket_hosts)" % state.host)
            if not self.layers.websocket_control:
                return Refusal(403, "websocket", "blocked by egress: WebSocket is refused: its control frames could "
                               "not be scanned (%s)" % self.layers.reason)
            state.websocket = True
        elif not self.layers.request_cap and request.headers.get("content-length") is None and (
                request.headers.get("transfer-encoding") is not None
                or (getattr(request, "is_http2", False) and request.method in ("POST", "PUT", "PATCH"))):
            return Refusal(411, "body-limit", "blocked by egress: a request body of unknown length is refused (the "
                           "per-chunk cap is not in force: %s); send a Content-Length" % self.layers.reason)
        return None

    def request_body_cap(self, flow):
        """The most request body bytes egress holds for ``flow`` (layers.py); None: no cap."""
        config = self.config
        if config is None:
            return 0
        if config.mode == "behind-pipelock":
            return None
        return config.dlp["max_body_bytes"]

    def request_over_cap(self, flow, size, cap):
        """``flow``'s body grew past ``cap`` (layers.py answers 413 with this text, nothing went upstream)."""
        state = flow.metadata.get(META) or FlowState()
        state.inject = []
        text = "blocked by egress: request body exceeds the scan limit of %d bytes (%d bytes read so far)" % (cap, size)
        LOG.warning("egress: %s", text)
        request = flow.request
        self.audit.record("request", self._audit_host(state.host or policy.normalize_host(request.host)),
                          state.port or request.port, request.method, request.path, rule="body-limit",
                          action="block", route=state.route, nbytes=size, status=413)
        return text

    def websocket_control(self, flow, kind, payload):
        """Whether a ping/pong/close frame from the agent must not go (layers.py closes the
        WebSocket with 1008 then): a finding in its payload, or a flow egress did not accept."""
        state = flow.metadata.get(META)
        if state is None or not state.websocket:
            hit_rule = "websocket"
        elif state.ws_blocked:
            return True  # already refused and audited: nothing more of it goes
        else:
            hit = self.engine.scan_message(payload) if payload else None
            if hit is None:
                return False
            hit_rule = hit.rule
        if state is not None:
            state.ws_blocked = True
        LOG.warning("egress: WebSocket %s frame refused (%s); closing", kind, hit_rule)
        self.audit.record("websocket", self._audit_host(policy.normalize_host(flow.request.host) if state is None
                                                        else state.host), flow.request.port, flow.request.method,
                          "(%s frame)" % kind, rule=hit_rule, action="block",
                          route=state.route if state is not None else None)
        return True

    def _refuse_switch(self, flow):
        """A 101 from upstream to a request egress did not accept as a WebSocket handshake never
        becomes a relay: the flow is killed (True) before mitmproxy switches protocols."""
        state = flow.metadata.get(META)
        if state is not None and state.websocket and flow.response.headers.get("upgrade", "").lower() == "websocket":
            return False
        if getattr(flow, "killable", True):
            flow.kill()
        host = state.host if state is not None else policy.normalize_host(flow.request.host)
        LOG.warning("egress: upstream %s switched protocols for a request that was no accepted WebSocket handshake; "
                    "closed", host)
        self.audit.record("response", self._audit_host(host), flow.request.port, flow.request.method, flow.request.path,
                          rule="switch-protocols", action="block", status=101)
        return True

    def _pipelock_requestheaders(self, flow, state, config):
        """behind-pipelock: pipelock did allowlist/DLP/SSRF; only routes apply (today's egress)."""
        request = flow.request
        sni = policy.normalize_host(flow.client_conn.sni)
        host_header = request.host_header
        state.host = sni or policy.split_host_port(host_header)[0]
        state.port = request.port
        refusal = self._protocol_refusal(flow, state, config)
        if refusal is not None:
            self._respond(flow, refusal)
            return
        route = config.route_for(state.host)
        if route is None:
            state.decided = True
            return
        state.route = route["host"]
        name = policy.split_host_port(host_header)[0]
        if sni and name and name != sni:
            self._respond(flow, Refusal(403, "host-mismatch", "blocked by egress: Host %s does not match the TLS name "
                                        "%s" % (name, sni)))
            return
        if self._route_decision(flow, state, route, request.scheme):
            state.decided = True

    @guarded(_refuse_http)
    async def request(self, flow):
        if flow.response is not None:
            return  # refused in requestheaders: mitmproxy answers it, nothing goes upstream
        state = flow.metadata.get(META)
        config = self.config
        if state is None or not state.decided or config is None:
            self._respond(flow, Refusal(502, "error", "blocked by egress: request was not checked"))
            return
        request = flow.request
        if config.mode != "behind-pipelock":
            limit = config.dlp["max_body_bytes"]
            raw = request.raw_content or b""
            if len(raw) > limit:
                self._respond(flow, Refusal(413, "body-limit", "blocked by egress: request body of %d bytes exceeds "
                                            "the scan limit of %d bytes" % (len(raw), limit)))
                return
            layers = []
            try:
                content_type = single_header(request.headers, "content-type")
                body = decode_content(raw, ", ".join(header_values(request.headers, "content-encoding")), limit,
                                      layers)
                if len(body) > THREAD_THRESHOLD:
                    hit = await asyncio.to_thread(self.engine.scan_body, body, content_type, layers, True)
                else:
                    hit = self.engine.scan_body(body, content_type, layers, True)
            except BodyError as exc:
                status = 413 if exc.rule == "body-limit" else 400
                self._respond(flow, Refusal(status, exc.rule, "blocked by egress: %s" % exc))
                return
            trailers = getattr(request, "trailers", None)
            if hit is not None and not self._holds(config, hit):
                self._respond(flow, Refusal(403, hit.rule, hit.message()))
                return
            if hit is not None:
                state.held.append(hit)
            hit = self.engine.scan_head("", list(trailers.items(multi=True)), raw=raw_fields(trailers, "trailer")) \
                if trailers else None
            if hit is not None and not self._holds(config, hit):
                self._respond(flow, Refusal(403, hit.rule, hit.message()))
                return
            if hit is not None:
                state.held.append(hit)
        released = []
        if state.held:
            released = await self._hold(flow, state, config)
            if released is None:
                return  # refused (or killed): nothing goes upstream
        # Only now, after the scan of what the agent sent, the credential goes in.
        for name in state.strip:
            request.headers.pop(name, None)
        for name, value in state.inject:
            request.headers[name] = value
        if state.inject:
            # What comes back is searched for the credential (responseheaders): ask for it unencoded.
            request.headers["Accept-Encoding"] = "identity"
            state.injected = True
        state.started = time.monotonic()
        state.up = len(request.raw_content or b"")
        if not released:
            self._audit_flow("request", flow, None, state)
        for hit, proposal in released:
            self._audit_flow("request", flow, None, state, rule=hit.rule, proposal=proposal)

    # --- holding a DLP hit for the operator (release.py) ---------------------------------------

    def _holds(self, config, hit):
        """Whether ``hit`` is put to the operator rather than refused (dlp.action: supervise);
        a scanner that did not load is not a finding anyone could judge."""
        return config.dlp.get("action") == "supervise" and hit.rule != "dlp:unavailable"

    async def _hold(self, flow, state, config):
        """Ask the operator about each held hit in turn; [(hit, proposal id)] when every one was
        released, None when the flow was refused (answered 403) or killed.

        Fail closed: an error refuses the request 403; egress stopping or the agent leaving
        kills it; a cancellation (egress's shutdown) kills it and goes on."""
        wait = release.Wait(flow)
        self.waits[id(flow)] = wait
        if self.stopping:
            wait.stop("stopped")
        released, hit, proposal = [], state.held[0], None
        try:
            for hit in state.held:
                proposal = None
                decision = await self._ask(flow, state, config, hit, wait)
                proposal = decision.proposal
                if decision.outcome == "approved":
                    released.append((hit, proposal))
                    continue
                if decision.outcome in ("stopped", "disconnected"):
                    self._kill_held(flow, state, hit, proposal, decision.outcome)
                    return None
                self._respond(flow, self._held_refusal(config, hit, decision), proposal=proposal)
                return None
            return released
        except asyncio.CancelledError:
            try:
                self._kill_held(flow, state, hit, proposal, "cancelled")
            except Exception:
                pass  # the cancellation goes on: the hook never returns, nothing is sent
            raise
        except Exception as exc:
            LOG.error("egress: holding a request for the operator failed with %s; refusing", type(exc).__name__)
            self._respond(flow, Refusal(403, hit.rule, "%s; holding it for the operator failed (internal error %s)"
                                        % (hit.message(), type(exc).__name__)), proposal=proposal)
            return None
        finally:
            self.waits.pop(id(flow), None)

    async def _ask(self, flow, state, config, hit, wait):
        """One release proposal for ``hit``: a ``release.Decision``."""
        timeout = config.dlp["supervise_timeout"]
        client = release.Supervise(policy.supervise_address(config.dlp["supervise_url"]))
        body = release.Redactor(self.engine).fields(state.host, flow.request.method, flow.request.path, hit)
        try:
            proposal = await client.propose(body, timeout)
        except release.AskError as exc:
            LOG.warning("egress: could not ask the operator about a held request: %s%s", exc.reason,
                        " (%s)" % exc.detail if exc.detail else "")
            return release.Decision("unasked", reason=exc.reason)
        self._audit_flow("request", flow, None, state, rule=hit.rule, action="hold", proposal=proposal)
        LOG.warning("egress: %s found in %s; held for the operator (release proposal %s, up to %d s)", hit.rule,
                    hit.where, proposal, timeout)
        return await release.wait_for_decision(client, proposal, timeout, wait, self.hold_clock, self.hold_interval)

    @staticmethod
    def _held_refusal(config, hit, decision):
        message = hit.message()
        if decision.outcome == "rejected":
            message += "; the operator did not release it"
            if decision.note:
                message += " (the operator's note: %s)" % decision.note
        elif decision.outcome == "timeout":
            message += "; no decision from the operator came within %d s" % config.dlp["supervise_timeout"]
        elif decision.outcome == "unasked":
            message += "; the operator could not be asked (%s)" % decision.reason
        else:
            message += "; the operator's decision could not be read (%s)" % (decision.reason or decision.outcome)
        return Refusal(403, hit.rule, message)

    def _kill_held(self, flow, state, hit, proposal, why):
        """A held request that must never go: egress stops, or the agent left."""
        state.inject = []
        if getattr(flow, "killable", True):
            flow.kill()
        LOG.warning("egress: %s; killed while held for the operator (%s)", hit.message(), why)
        self._audit_flow("request", flow, None, state, rule=hit.rule, action="block", proposal=proposal)

    @guarded(_refuse_response)
    def responseheaders(self, flow):
        response = flow.response
        if response is None:
            return
        if getattr(response, "status_code", None) == 101 and self._refuse_switch(flow):
            return
        response.stream = True
        state = flow.metadata.get(META)
        if state is not None and state.injected and state.credentials and not state.refused:
            self._redact_response(flow, state)
        if 300 <= response.status_code < 400 and state is not None and state.decided and not state.refused:
            request = flow.request
            base = absolute_url(request.scheme, state.host or request.host, state.port or request.port,
                                request.path)
            target = redirect_target(base, response.headers.get("location"))
            if target is not None:
                self.redirects.remember(target)
        if state is not None and state.started is not None and response.status_code != 101:
            # Counts what the upstream sends, around whatever stream callable is set (StreamRedactor).
            state.counter = ByteCount(response.stream)
            response.stream = state.counter

    def _redact_response(self, flow, state):
        """The response to a request that carried an injected credential: every form of it masked
        in the headers and, streamed, in the body (redact.py); an encoding egress cannot undo
        replaces the response with a 502."""
        response = flow.response
        forms = redact.credential_forms(state.credentials)
        noted = []

        def note(where):
            if not noted:
                noted.append(where)
                LOG.warning("egress: the response of %s carried the credential egress added (%s); masked",
                            state.route, where)
                self.audit.record("response", state.host, state.port, flow.request.method, flow.request.path,
                                  rule="credential-echo", action="redact", route=state.route,
                                  status=response.status_code)
        fields, changed = redact.redact_fields(list(response.headers.fields), forms)
        if changed:
            response.headers.fields = type(response.headers.fields)(fields)
            note("headers")
        decoder, refusal = redact.decoder_for(", ".join(header_values(response.headers, "content-encoding")))
        if refusal is not None:
            self._replace_response(flow, Refusal(502, "response-encoding", "blocked by egress: " + refusal))
            return
        if decoder is not None:
            response.headers.pop("content-encoding", None)
            response.headers.pop("content-length", None)
        response.stream = redact.StreamRedactor(forms, decoder, lambda: note("body"))

    def _redact_message(self, flow, message):
        """A WebSocket message from upstream on a handshake that carried an injected credential:
        every form of the credential masked before the agent sees it (redact.py). A message is
        whole here (mitmproxy assembles fragments), so no tail is held back."""
        state = flow.metadata.get(META)
        if state is None or not state.injected or not state.credentials:
            return
        content = message.content
        masked = redact.redact_message(content, redact.credential_forms(state.credentials))
        if masked == content:
            return
        message.content = masked
        LOG.warning("egress: a WebSocket message of %s carried the credential egress added; masked", state.route)
        self.audit.record("websocket", state.host, state.port, flow.request.method, flow.request.path,
                          rule="credential-echo", action="redact", route=state.route)

    def _replace_response(self, flow, refusal):
        """Turn an upstream response whose headers arrived into egress's refusal: its body is
        swallowed as it streams and the refusal's text sent at the end."""
        response = flow.response
        text = refusal.text().encode("utf-8")
        response.status_code = refusal.status
        with contextlib.suppress(Exception):
            response.reason = "Bad Gateway"
        for name in [name for name, _value in response.headers.items(multi=True)]:
            response.headers.pop(name, None)
        response.headers["Content-Type"] = "text/plain; charset=utf-8"
        response.headers["X-Bottle-Egress-Rule"] = refusal.rule
        response.headers["Content-Length"] = str(len(text))
        response.stream = lambda chunk: [text] if chunk == b"" else []
        LOG.warning("egress: %s", refusal.message)
        state = flow.metadata.get(META)
        self.audit.record("response", state.host if state else None, state.port if state else None,
                          flow.request.method, flow.request.path, rule=refusal.rule, action="block",
                          route=state.route if state else None, status=refusal.status)
        if state is not None and state.started is not None:
            # The request's outcome: refused by egress on the way back (not the upstream's failure).
            self._audit_outcome(flow, state, "block", rule=refusal.rule, status=refusal.status)

    @guarded(_refuse_response)
    def response(self, flow):
        """Trailers arrive after the streamed body: the credential is masked in them too. The
        outcome line of an allowed request is written here (its response ended)."""
        response = flow.response
        state = flow.metadata.get(META)
        if state is not None and state.started is not None and not state.refused and response is not None:
            status = getattr(response, "status_code", None)
            upstream_error = isinstance(status, int) and status >= 500
            self._audit_outcome(flow, state, "upstream-error" if upstream_error else "complete",
                                rule="upstream-status" if upstream_error else None, status=status)
        trailers = getattr(response, "trailers", None) if response is not None else None
        if not trailers or state is None or not state.injected or not state.credentials or state.refused:
            return
        fields, changed = redact.redact_fields(list(trailers.fields), redact.credential_forms(state.credentials))
        if changed:
            trailers.fields = type(trailers.fields)(fields)

    def upstream_unreachable(self, flow, message):
        """egress's own answer (layers.py) for an allowed request whose upstream could not be reached (connect,
        TLS verify, timeout; mitmproxy's ``message``), instead of mitmproxy's 502 page: egress allowed it, the
        upstream failed, with the rule. None for a flow egress did not allow (mitmproxy's page stays)."""
        state = flow.metadata.get(META) if isinstance(getattr(flow, "metadata", None), dict) else None
        if state is None or state.started is None or state.refused:
            return None
        rule = upstream_rule(message)
        failure = upstream_failure(rule, "%s:%s: %s" % (state.host, state.port, " ".join(str(message).split())[:300]))
        return self.respond(failure.status, failure.text(),
                            {"Content-Type": "text/plain; charset=utf-8", "X-Bottle-Egress-Rule": rule})

    @guarded(_log_only)
    def error(self, flow):
        """An allowed request that failed after egress let it go: the upstream could not be
        reached (connect, TLS verify, timeout), or a side hung up mid-response. Its outcome line
        says which (``upstream-*`` rules); what egress refused or killed itself has its line already."""
        state = flow.metadata.get(META) if isinstance(getattr(flow, "metadata", None), dict) else None
        if state is None or state.started is None or state.refused or state.outcome:
            return
        message = getattr(getattr(flow, "error", None), "msg", None) or str(getattr(flow, "error", "") or "")
        if "killed" in message.lower():
            return  # egress's own kill: audited where it was decided
        status = getattr(flow.response, "status_code", None) if flow.response is not None else None
        if "client" in message.lower() and "disconnect" in message.lower():
            self._audit_outcome(flow, state, "aborted", rule="client-disconnect", status=status)
            return
        rule = upstream_rule(message)
        LOG.warning("egress: %s:%s was allowed; the upstream failed (%s)", state.host, state.port, rule)
        self._audit_outcome(flow, state, "upstream-error", rule=rule, status=status)

    @guarded(_refuse_websocket)
    async def websocket_message(self, flow):
        config = self.config
        if config is not None and config.mode == "behind-pipelock":
            return
        message = flow.websocket.messages[-1]
        if not message.from_client:
            self._redact_message(flow, message)
            return
        state = flow.metadata.setdefault(META, FlowState())
        if state.ws_blocked:
            message.drop()
            return
        content = message.content
        if len(content) > THREAD_THRESHOLD:
            hit = await asyncio.to_thread(self.engine.scan_message, content)
        else:
            hit = self.engine.scan_message(content)
        if hit is None:
            return
        message.drop()
        state.ws_blocked = True
        LOG.warning("egress: %s; closing the WebSocket", hit.message())
        self.audit.record("websocket", self._audit_host(state.host or policy.normalize_host(flow.request.host)),
                          flow.request.port, flow.request.method, flow.request.path, rule=hit.rule, action="block",
                          route=state.route)
        self.close_client(flow)
