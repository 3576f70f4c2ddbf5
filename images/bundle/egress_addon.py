"""egress: the last hop of the bottle, a mitmproxy addon in transparent mode.

pipelock's every upstream TCP connection is redirected here (iptables, by uid).
For hosts with a declared route egress terminates TLS (pipelock trusts egress's
CA) so that a route can act on the request; every other connection is relayed
untouched (TLS passthrough): pipelock already scanned it in plaintext.

Routes come from the JSON file named by BOTTLE_EGRESS_CONFIG (bottle-init stages the
role's bundle/egress.json at /run/bottle/egress/egress.json). Minimal format:

    {"routes": [{"host": "api.example.com"}, ...]}

- the file may be absent or empty, and "routes" may be empty or null: no routes, every
  connection is relayed untouched;
- each route is an object with a required "host" (a DNS name, compared case-insensitively,
  trailing dot ignored), and optionally:
    "auth": {"scheme": "Bearer" | "token" | "header", "header": "X-Api-Key",
             "value": "Key {token}", "token_ref": "NAME"}
        egress strips any Authorization (and the custom header) the agent sent and sets
        the credential named token_ref, read from BOTTLE_EGRESS_TOKENS (a JSON object
        {"NAME": "value"} that only egress can read). Bearer -> "Authorization: Bearer T",
        token -> "Authorization: token T", header -> "<header>: <value with {token}>".
    "matches": [{"paths": [{"type": "exact"|"prefix"|"regex", "value": "/v1/"}],
                 "methods": ["GET"], "headers": {"X-Foo": "bar"}}, ...]
        entries are ORed, conditions within one entry ANDed; a request matching none is
        answered 403 naming the route, and nothing is sent upstream;
- a malformed file (not JSON, "routes" not a list, a route without "host") is logged and
  ignored: the previous table stays in force.

The file is re-read when its mtime changes, so a reload of the bundle's configuration
(SIGHUP to bottle-init re-stages it) needs no restart of egress.
"""

import json
import logging
import os
import re

CONFIG_PATH = os.environ.get("BOTTLE_EGRESS_CONFIG", "/run/bottle/egress/egress.json")
TOKENS_PATH = os.environ.get("BOTTLE_EGRESS_TOKENS", "/run/bottle/egress/tokens.json")


def path_matches(rule, path):
    kind, value = rule.get("type", "prefix"), rule.get("value", "")
    if kind == "exact":
        return path == value
    if kind == "regex":
        return re.fullmatch(value, path) is not None
    return path.startswith(value)


def request_matches(route, method, path, headers):
    """Whether a request (method, path without query, headers mapping) is allowed by the route."""
    entries = route.get("matches")
    if not entries:
        return True
    for entry in entries:
        rules = entry.get("paths") or []
        if rules and not any(path_matches(rule, path) for rule in rules):
            continue
        methods = [m.upper() for m in entry.get("methods") or []]
        if methods and method.upper() not in methods:
            continue
        wanted = entry.get("headers") or {}
        if any(headers.get(name) != value for name, value in wanted.items()):
            continue
        return True
    return False


def credential_headers(auth, token):
    """(header name, value) the route injects, and the header names to strip first."""
    scheme = auth.get("scheme", "Bearer")
    if scheme == "Bearer":
        return ("Authorization", "Bearer " + token), ["Authorization"]
    if scheme == "token":
        return ("Authorization", "token " + token), ["Authorization"]
    name = auth.get("header") or "Authorization"
    return (name, auth.get("value", "{token}").replace("{token}", token)), ["Authorization", name]


def load_tokens(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise ValueError("%s: expected an object of token_ref -> value" % path)
    return data


def load_routes(path):
    """The declared routes of ``path`` by lower-cased host; {} when absent or empty."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}
    if not text.strip():
        return {}
    data = json.loads(text)
    routes = data.get("routes") or []
    if not isinstance(routes, list):
        raise ValueError("%s: 'routes' must be a list" % path)
    table = {}
    for index, route in enumerate(routes):
        if not isinstance(route, dict):
            raise ValueError("%s: routes[%d] must be an object with a host" % (path, index))
        host = route.get("host")
        if not isinstance(host, str) or not host:
            raise ValueError("%s: routes[%d] has no host" % (path, index))
        table[host.lower().rstrip(".")] = route
    return table


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


class Egress:
    def __init__(self, path=CONFIG_PATH, tokens_path=TOKENS_PATH):
        self.path = path
        self.tokens_path = tokens_path
        self.mtime = self.tokens_mtime = "unread"
        self.routes = {}
        self.tokens = {}
        self.refresh()

    def refresh(self):
        mtime = _mtime(self.path)
        if mtime != self.mtime:
            self.mtime = mtime
            try:
                self.routes = load_routes(self.path)
                logging.info("egress: %d route(s) loaded", len(self.routes))
            except (ValueError, json.JSONDecodeError) as exc:
                # Keep the previous table: a broken file must not open or close anything new.
                logging.error("egress: ignoring invalid %s: %s", self.path, exc)
        mtime = _mtime(self.tokens_path)
        if mtime != self.tokens_mtime:
            self.tokens_mtime = mtime
            try:
                self.tokens = load_tokens(self.tokens_path)
            except (ValueError, json.JSONDecodeError) as exc:
                logging.error("egress: ignoring invalid token file: %s", exc)

    def decide(self, sni, host_header, method, path, headers, scheme="https"):
        """What to do with one intercepted request: (status, message) to refuse it, or
        (None, [(name, value) to set], [names to strip])."""
        route = self.route_for(sni or host_header)
        if route is None:
            return None, [], []
        host = (host_header or "").split(":")[0].lower().rstrip(".")
        if sni and host and host != sni.lower().rstrip("."):
            return (403, "blocked by egress: Host %s does not match the TLS name %s" % (host, sni)), [], []
        if not request_matches(route, method, path, headers):
            return (403, "blocked by egress: route %s does not allow %s %s" % (route["host"], method, path)), [], []
        auth = route.get("auth")
        if not auth:
            return None, [], []
        if scheme != "https":
            return (403, "blocked by egress: route %s sends its credential over https only" % route["host"]), [], []
        token = self.tokens.get(auth.get("token_ref"))
        if not token:
            return (503, "egress: no credential loaded for route %s" % route["host"]), [], []
        header, strip = credential_headers(auth, token)
        return None, [header], strip

    def route_for(self, host):
        self.refresh()
        return self.routes.get((host or "").lower().rstrip("."))

    # mitmproxy hooks
    def tls_clienthello(self, data):
        sni = data.client_hello.sni
        if self.route_for(sni) is None:
            data.ignore_connection = True

    def request(self, flow):
        from mitmproxy import http  # only inside mitmproxy

        headers = dict(flow.request.headers.items())
        refusal, inject, strip = self.decide(flow.client_conn.sni, flow.request.host_header,
                                             flow.request.method, flow.request.path.split("?")[0], headers,
                                             flow.request.scheme)
        if refusal:
            status, message = refusal
            logging.warning("egress: %s", message)
            flow.response = http.Response.make(status, message + "\n", {"Content-Type": "text/plain"})
            return
        for name in strip:
            flow.request.headers.pop(name, None)
        for name, value in inject:
            flow.request.headers[name] = value


addons = [Egress()]
