# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Route ``matches`` decided on the normalised path; paths that an upstream could resolve to
another one are refused (``route-path``); TRACE on a credential route (``route-trace``)."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes import Proxy
from bottle_firewall import bodies, routes

TOKENS = {"T": "route-token-value-0123456789"}
AUTH = {"scheme": "Bearer", "token_ref": "T"}
PREFIX = {"host": "api.example.com", "auth": AUTH, "matches": [{"paths": [{"type": "prefix", "value": "/repos/"}]}]}
REGEX = {"host": "api.example.com", "auth": AUTH,
         "matches": [{"paths": [{"type": "regex", "value": r"/repos/[^/]+/[^/]+/issues"}]}]}
EXACT = {"host": "api.example.com", "auth": AUTH, "matches": [{"paths": [{"type": "exact", "value": "/v1/messages"}]}]}
NPM = {"host": "registry.npmjs.org", "auth": AUTH, "matches": [{"paths": [{"type": "prefix", "value": "/@myorg"}]}]}
OPEN = {"host": "api.example.com", "auth": AUTH}
GENERATED = settings(max_examples=400, derandomize=bool(os.environ.get("CI")), deadline=None)


@pytest.mark.parametrize("path, expected", [
    ("/a/b/c/./../../g", "/a/g"),          # RFC 3986 5.2.4's own example
    ("mid/content=5/../6", "mid/6"),       # and its second one
    ("/%72epos/x", "/repos/x"),            # unreserved characters decoded
    ("/repos/a%2fb", "/repos/a%2Fb"),      # reserved ones stay encoded (upper-cased)
    ("/a/%7euser", "/a/~user"),
    ("/a/..", "/"),
    ("/a/.", "/a/"),
    ("/../../x", "/x"),
    ("", ""),
])
def test_normalize_path(path, expected):
    assert routes.normalize_path(path) == expected


@pytest.mark.parametrize("route, path, problem", [
    (PREFIX, "/repos/../user/keys", "a dot segment"),
    (PREFIX, "/repos/./x", "a dot segment"),
    (PREFIX, "/repos/..;/user/keys", "a dot segment"),            # Tomcat reads ..;x as ..
    (PREFIX, "/repos/%2e%2e/user/keys", "an encoded dot"),
    (PREFIX, "/repos/%2E%2E/user/keys", "an encoded dot"),
    (PREFIX, "/repos/.%2e/user", "an encoded dot"),
    (PREFIX, "/repos/a.%2Ejson", "an encoded dot"),
    (PREFIX, "/repos\\..\\user", "a backslash"),
    (PREFIX, "/repos/%5c..%5cuser", "a backslash"),
    (PREFIX, "/repos/%5Cx", "a backslash"),
    (PREFIX, "/repos/%252e%252e/user", "once percent-decoded"),   # an upstream that decodes twice
    (PREFIX, "/repos/x%2f..%2fuser", "once percent-decoded"),     # ..%2f: a dot segment once decoded
    (OPEN, "/anything/../else", "a dot segment"),                  # no matches: still a route host
])
def test_paths_an_upstream_may_resolve_elsewhere_are_refused(route, path, problem):
    decision = routes.decide(route, TOKENS, "GET", path, {})
    assert decision.refused and decision.status == 403 and decision.rule == "route-path", decision
    assert problem in decision.message and decision.inject == []


@pytest.mark.parametrize("route, path", [
    (PREFIX, "/%72epos/x"),                      # normalised it matches, raw it does not
    (REGEX, "/repos/o%2fx/r/issues"),            # raw it matches; with %2F decoded it does not
    (EXACT, "/v1/messag%65s"),
])
def test_paths_decided_differently_once_normalised_are_refused(route, path):
    decision = routes.decide(route, TOKENS, "POST", path, {})
    assert decision.refused and decision.rule == "route-path", decision
    assert "decided differently" in decision.message


@pytest.mark.parametrize("route, path", [
    (NPM, "/@myorg%2fpkg"),
    (NPM, "/@myorg%2Fpkg/-/pkg-1.0.0.tgz"),
    (NPM, "/@myorg/pkg"),
    (PREFIX, "/repos/o/r/contents/docs/a.json"),
    (PREFIX, "/repos/o/r/git/refs/heads/feature%2Fx"),   # an encoded slash that changes nothing
    (PREFIX, "/repos/o/r/issues/1/comments"),
    (REGEX, "/repos/o/r/issues"),
    (EXACT, "/v1/messages"),
    (OPEN, "/a%20b/c"),
])
def test_plain_and_encoded_slash_paths_still_pass(route, path):
    decision = routes.decide(route, TOKENS, "GET", path, {})
    assert not decision.refused, decision
    assert decision.inject == [("Authorization", "Bearer " + TOKENS["T"])]


def test_outside_the_matches_is_still_route_matches():
    decision = routes.decide(PREFIX, TOKENS, "GET", "/user/keys", {})
    assert decision.rule == "route-matches" and decision.status == 403


def test_trace_is_refused_on_a_credential_route_only():
    decision = routes.decide(PREFIX, TOKENS, "TRACE", "/repos/x", {})
    assert decision.rule == "route-trace" and "echo" in decision.message
    assert not routes.decide({"host": "x.example.com"}, TOKENS, "TRACE", "/", {}).refused


@pytest.mark.parametrize("method, path, rule", [
    ("GET", "/repos/../user/keys", "route-path"),
    ("GET", "/repos/%2e%2e/user/keys", "route-path"),
    ("TRACE", "/repos/o/r", "route-trace"),
])
def test_the_addon_refuses_them_before_any_credential(firewall_factory, method, path, rule):
    proxy = Proxy(firewall_factory())
    flow = proxy.https("api.github.com", method, path, {"Host": "api.github.com", "Authorization": "Bearer agent"})
    assert flow.response is not None and flow.response.status_code == 403
    assert flow.response.headers["X-Bottle-Egress-Rule"] == rule
    assert flow.response.text.startswith("blocked by egress: ")
    assert "authorization" not in [name.lower() for name, _value in flow.request.headers.items()]
    assert proxy.opened == []
    assert proxy.fw.audit.stream.lines and rule in proxy.fw.audit.stream.lines[-1]


# --- generated ---------------------------------------------------------------------------------

PIECES = ["/", "/", "repos", "o", "r", "x", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "\\", ";", "%25",
          "%72", "%65", "a", "-", "~", "%7e", "%20", "issues"]


def fully_resolved(path):
    """The path as the most decoding upstream could serve it."""
    return routes.remove_dot_segments(bodies.percent_decode(path))


@GENERATED
@given(st.lists(st.sampled_from(PIECES), max_size=12).map(lambda parts: "/repos/" + "".join(parts)))
def test_generated_an_allowed_path_is_inside_the_prefix_however_it_is_read(path):
    decision = routes.decide(PREFIX, TOKENS, "GET", path, {})
    if decision.refused:
        assert decision.rule in ("route-path", "route-matches"), decision
        return
    for reading in (path, routes.normalize_path(path), fully_resolved(path)):
        assert reading.startswith("/repos/"), (path, reading)
    assert ".." not in fully_resolved(path).split("/")


@GENERATED
@given(st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
def test_generated_regex_routes_never_allow_what_a_decoding_upstream_would_not(tail):
    path = "/repos/" + tail
    decision = routes.decide(REGEX, TOKENS, "GET", path, {})
    if not decision.refused:
        assert re.fullmatch(r"/repos/[^/]+/[^/]+/issues", fully_resolved(path)), path
        assert re.fullmatch(r"/repos/[^/]+/[^/]+/issues", routes.normalize_path(path)), path


@GENERATED
@given(st.lists(st.from_regex(r"[A-Za-z0-9_~-]{1,8}", fullmatch=True), min_size=1, max_size=6))
def test_generated_plain_paths_are_never_refused(segments):
    """No false refusal: a path of plain segments (what clients send) inside the prefix passes."""
    path = "/repos/" + "/".join(segments)
    assert not routes.decide(PREFIX, TOKENS, "GET", path, {}).refused


@GENERATED
@given(st.text(alphabet="/.%2eEfF5cC7a~-", max_size=20))
def test_generated_normalisation_is_idempotent(path):
    once = routes.normalize_path(path)
    assert routes.normalize_path(once) == once


@GENERATED
@given(st.lists(st.sampled_from([piece for piece in PIECES if "%" not in piece] + ["", "b", ".a", "a."]),
                max_size=12).map("".join))
def test_generated_a_path_without_an_escape_that_passes_is_its_own_normal_form(tail):
    """What ``decide``'s short way for a path without ``%`` rests on: once ``path_problem``
    accepts it, the normalised and the fully decoded reading are the path itself."""
    for path in ("/repos/" + tail, tail):
        if routes.path_problem(path) is None:
            assert routes.normalize_path(path) == path and fully_resolved(path) == path, path
