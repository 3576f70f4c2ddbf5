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
"""

import re


class Decision:
    """What a route does with one request: refuse it (status, message), or strip and inject."""

    __slots__ = ("status", "message", "inject", "strip")

    def __init__(self, status=None, message=None, inject=(), strip=()):
        self.status, self.message = status, message
        self.inject, self.strip = list(inject), list(strip)

    @property
    def refused(self):
        return self.status is not None

    def __repr__(self):
        # Never the injected value: it is the credential.
        return "Decision(status=%r, message=%r, inject=%r, strip=%r)" % (
            self.status, self.message, [name for name, _value in self.inject], self.strip)


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
    """The route's ``Decision`` for one request (path without query)."""
    host = route["host"]
    if not request_matches(route, method, path, headers):
        return Decision(403, "blocked by egress: route %s does not allow %s %s" % (host, method, path))
    auth = route.get("auth")
    if not auth:
        return Decision()
    if scheme != "https":
        return Decision(403, "blocked by egress: route %s sends its credential over https only" % host)
    token = tokens.get(auth.get("token_ref"))
    if not token:
        return Decision(503, "egress: no credential loaded for route %s" % host)
    header, strip = credential_headers(auth, token)
    return Decision(inject=[header], strip=strip)
