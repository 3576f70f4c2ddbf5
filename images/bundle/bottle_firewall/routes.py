# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routes: per-host request matches and the credential egress adds for the agent.

A route names a host; its ``matches`` (entries ORed, conditions within one entry ANDed) say
which requests may reach it, and its ``auth`` says which credential egress sets. The agent
never holds that credential: egress strips whatever Authorization (and custom header) the
agent sent and sets the real one, after the request passed the DLP scan.

The decision is taken on the request *headers* (mitmproxy's ``requestheaders``), so a request
with a body is refused before any byte of it could travel; the injection happens once the
body has been buffered and scanned. Semantics and refusal texts are those of the previous
egress_addon.py.

Paths are decided as an upstream that normalises them would see them (issue 20): the
``matches`` are compared with the path after RFC 3986 normalisation (unreserved characters
percent-decoded, section 6.2.2.2; dot segments removed, section 5.2.4). A path on a route host is
refused (``route-path``) when it has a dot segment (``.``/``..``, also as ``..;params``), an
encoded dot (``%2e``), a backslash (raw or ``%5c``), or any of these once every percent-escape
is decoded (``%252e``, ``%2f..%2f``); and wherever the raw path, the normalised path and the
fully decoded path (``%2F`` as ``/``) would not all be decided alike. An encoded slash that
changes nothing stays allowed: npm's ``/@scope%2fname``. ``TRACE`` is refused on a route that
adds a credential (``route-trace``): it asks the upstream to echo the request back.
"""

import re

from .bodies import percent_decode

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


class Decision:
    """What a route does with one request: refuse it (status, message, audit rule), or strip
    and inject."""

    __slots__ = ("status", "message", "inject", "strip", "rule")

    def __init__(self, status=None, message=None, inject=(), strip=(), rule=None):
        self.status, self.message = status, message
        self.inject, self.strip = list(inject), list(strip)
        self.rule = rule or (None if status is None else "route-token" if status == 503 else "route-matches")

    @property
    def refused(self):
        return self.status is not None

    def __repr__(self):
        # Never the injected value: it is the credential.
        return "Decision(status=%r, message=%r, inject=%r, strip=%r)" % (
            self.status, self.message, [name for name, _value in self.inject], self.strip)


def _unreserved(match):
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def remove_dot_segments(path):
    """RFC 3986 section 5.2.4."""
    output = []
    while path:
        if path.startswith("../"):
            path = path[3:]
        elif path.startswith("./"):
            path = path[2:]
        elif path.startswith("/./"):
            path = path[2:]
        elif path == "/.":
            path = "/"
        elif path.startswith("/../"):
            path = path[3:]
            if output:
                output.pop()
        elif path == "/..":
            path = "/"
            if output:
                output.pop()
        elif path in (".", ".."):
            path = ""
        else:
            start = 1 if path.startswith("/") else 0
            cut = path.find("/", start)
            cut = len(path) if cut < 0 else cut
            output.append(path[:cut])
            path = path[cut:]
    return "".join(output)


def normalize_path(path):
    """The path as RFC 3986 normalises it: unreserved characters percent-decoded (other escapes
    upper-cased), then dot segments removed."""
    return remove_dot_segments(_ESCAPE.sub(_unreserved, path))


def _has_dot_segment(path):
    return any(segment.split(";", 1)[0] in (".", "..") for segment in path.split("/"))


def path_problem(path):
    """Why ``path`` (without its query) is refused on a route host, or None."""
    lowered = path.lower()
    if "\\" in path or "%5c" in lowered:
        return "a backslash"
    if "%2e" in lowered:
        return "an encoded dot"
    if _has_dot_segment(path):
        return "a dot segment"
    decoded = percent_decode(path)
    if "\\" in decoded or _has_dot_segment(decoded):
        return "a dot segment or a backslash once percent-decoded"
    return None


def path_matches(rule, path):
    kind, value = rule.get("type", "prefix"), rule.get("value", "")
    if kind == "exact":
        return path == value
    if kind == "regex":
        return re.fullmatch(value, path) is not None
    return path.startswith(value)


def request_matches(route, method, path, headers):
    """Whether a request (method, path without query, headers) is allowed by the route.

    ``headers`` is a mapping whose ``get`` is case-insensitive (mitmproxy's Headers is; HTTP/2
    sends lower-case names), compared with the route's exact values."""
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


def strip_names(route):
    """The headers the agent may not set for this route (its own credential attempts)."""
    auth = route.get("auth")
    if not auth:
        return []
    if auth.get("scheme", "Bearer") == "header":
        return ["Authorization", auth.get("header") or "Authorization"]
    return ["Authorization"]


def decide(route, tokens, method, path, headers, scheme="https"):
    """The route's ``Decision`` for one request (path without query, as the agent sent it)."""
    host = route["host"]
    auth = route.get("auth")
    shown = path[:200]
    problem = path_problem(path)
    if problem is not None:
        return Decision(403, "blocked by egress: the path %s on route %s has %s (an upstream may resolve it to "
                        "another path; send the path it stands for)" % (shown, host, problem), rule="route-path")
    if auth and method.upper() == "TRACE":
        return Decision(403, "blocked by egress: TRACE is refused on route %s (the upstream would echo the "
                        "credential egress adds)" % host, rule="route-trace")
    if "%" in path:
        normalized = normalize_path(path)
        candidates = (path, normalized, remove_dot_segments(percent_decode(path)))
    else:
        # No escape and (path_problem) no dot segment: both normalised forms are the path itself.
        normalized = path
        candidates = (path,)
    verdicts = {request_matches(route, method, candidate, headers) for candidate in candidates}
    if len(verdicts) > 1:
        return Decision(403, "blocked by egress: the path %s on route %s is decided differently once normalised "
                        "or percent-decoded (%s); send it in its plain form" % (shown, host, normalized[:200]),
                        rule="route-path")
    if not verdicts.pop():
        return Decision(403, "blocked by egress: route %s does not allow %s %s" % (host, method, path))
    if not auth:
        return Decision()
    if scheme != "https":
        return Decision(403, "blocked by egress: route %s sends its credential over https only" % host)
    token = tokens.get(auth.get("token_ref"))
    if not token:
        return Decision(503, "egress: no credential loaded for route %s" % host)
    header, strip = credential_headers(auth, token)
    return Decision(inject=[header], strip=strip)
