# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""egress.json: allowlist matching, strict loading, and the route semantics kept from the previous
egress_addon.py (matches, credential headers). The tables are version 2 files (a key left out is
bundle_format's default); tests/unit/plugins/module_utils/test_egress_versions.py has
what version 3 adds."""

from __future__ import annotations

import pytest

from bottle_firewall import audit, policy, routes


def config(**data):
    """A version 2 file of ``data`` (the keys it leaves out: bundle_format.V2_DEFAULTS)."""
    return policy.parse_config(dict({"version": 2}, **data))


@pytest.mark.parametrize("host, port, allowed", [
    ("api.anthropic.com", 443, True),
    ("API.Anthropic.COM.", 443, True),
    ("api.anthropic.com", 80, True),
    ("api.anthropic.com", 8443, False),
    ("x.api.anthropic.com", 443, False),
    ("anthropic.com", 443, False),
    ("example.com", 443, True),
    ("www.example.com", 443, True),
    ("a.b.c.example.com", 443, True),
    ("WWW.EXAMPLE.COM.", 443, True),
    ("notexample.com", 443, False),
    ("example.com.evil.net", 443, False),
    ("192.0.2.7", 443, True),
    ("[192.0.2.7]", 443, True),
    ("0xc0000207", 443, True),          # the same address in another spelling
    ("192.0.2.8", 443, False),
    ("3221225991", 443, True),
    ("api.github.com", 443, True),      # route hosts are allowed implicitly
    ("", 443, False),
])
def test_allowlist_table(host, port, allowed):
    cfg = config(allowed_hosts=["api.anthropic.com", "*.example.com", "192.0.2.7"],
                 routes=[{"host": "api.github.com"}])
    assert cfg.allows(host, port) is allowed


def test_a_wildcard_never_matches_an_address():
    cfg = config(allowed_hosts=["*.216.34", "*.example.com"])
    assert not cfg.allows("93.184.216.34", 443)


def test_defaults_when_keys_are_absent():
    cfg = config()
    assert cfg.mode == "firewall" and cfg.ports == {80, 443}
    assert cfg.dlp == policy.DEFAULT_DLP and cfg.rate_limit == policy.DEFAULT_RATE
    assert cfg.audit == policy.DEFAULT_AUDIT == {"rotate_bytes": audit.ROTATE_BYTES, "keep": audit.KEEP}
    assert config(audit={"keep": 0}).audit == {"rotate_bytes": audit.ROTATE_BYTES, "keep": 0}
    assert not cfg.allows("example.com", 443), "an empty allowlist allows nothing"


@pytest.mark.parametrize("data, message", [
    ({"allowed_host": ["a"]}, "unknown key 'allowed_host'"),
    ({"allowed_hosts": "a.example"}, "allowed_hosts must be a list"),
    ({"allowed_hosts": [1]}, "allowed_hosts[0] must be a string"),
    ({"allowed_hosts": ["*"]}, "allowed_hosts[0]"),
    ({"allowed_hosts": ["a.*.example"]}, "allowed_hosts[0]"),
    ({"ports": [443, "80"]}, "ports[1] must be an integer"),
    ({"ports": [True]}, "ports[0] must be an integer, not a boolean"),
    ({"ports": [70000]}, "ports[0] must be 1..65535"),
    ({"version": 1}, "version 1 is not supported"),
    ({"version": None}, "version is missing: the file must say its version (2 or 3), so its writer must write it"),
    ({"version": "3"}, "version must be an integer"),
    ({"mode": "open"}, "mode must be one of"),
    ({"ssrf_ip_allowlist": ["10.0.0.0/33"]}, "ssrf_ip_allowlist[0]"),
    ({"dlp": {"max_body_bytes": "1M"}}, "dlp.max_body_bytes must be an integer"),
    ({"dlp": {"entropy": 4}}, "unknown key 'entropy'"),
    ({"rate_limit": {"burst": 0}}, "rate_limit.burst must be >= 1"),
    ({"audit": {"rotate_bytes": 1000}}, "audit.rotate_bytes must be >= 1048576"),
    ({"audit": {"keep": -1}}, "audit.keep must be >= 0"),
    ({"audit": {"keep": 2.5}}, "audit.keep must be an integer"),
    ({"audit": {"files": 2}}, "unknown key 'files'"),
    ({"routes": {"host": "a"}}, "routes must be a list"),
    ({"routes": [{"host": "a.test"}, {"name": "no host"}]}, "routes[1]: unknown key 'name'"),
    ({"routes": [{"host": ""}]}, "routes[0] has no host"),
    ({"routes": ["api.bottle.test"]}, "routes[0] must be an object with a host"),
    ({"routes": [{"host": "a.test", "x": 1}]}, "unknown key 'x'"),
    ({"routes": [{"host": "a.test", "auth": {"scheme": "Basic", "token_ref": "T"}}]}, "auth.scheme must be one of"),
    ({"routes": [{"host": "a.test", "auth": {"scheme": "Bearer"}}]}, "auth.token_ref is required"),
    ({"routes": [{"host": "a.test", "matches": [{"paths": [{"type": "glob", "value": "/"}]}]}]},
     "paths[0].type must be one of"),
    ({"routes": [{"host": "a.test", "matches": [{"paths": [{"type": "regex", "value": "("}]}]}]},
     "is not a valid regex"),
    ({"routes": [{"host": "a.test", "matches": [{"methods": "GET"}]}]}, "methods must be a list"),
    ({"routes": [{"host": "*.a.test"}]}, "must be one DNS name"),
    ({"routes": [{"host": "a.test"}, {"host": "A.test."}]}, "has a route already"),
])
def test_bad_files_are_refused_naming_the_key(data, message):
    with pytest.raises(policy.ConfigError) as err:
        policy.parse_config(dict({"version": 2}, **data), "egress.json")
    assert message in str(err.value)


def test_a_file_without_a_version_is_refused():
    """Every release wrote ``version``; a file without it is no file of bundle_config's."""
    with pytest.raises(policy.ConfigError, match="egress.json: version is missing"):
        policy.parse_config({"allowed_hosts": ["a.example"]}, "egress.json")


def test_a_file_that_is_not_json_names_the_file_but_not_its_content(write_config):
    path = write_config('{"allowed_hosts": ["secret-looking-thing"')
    with pytest.raises(policy.ConfigError) as err:
        policy.load_config(path)
    assert path in str(err.value) and "secret-looking-thing" not in str(err.value)


def test_routes_are_keyed_by_normalised_host():
    cfg = config(routes=[{"host": "API.Example.COM."}, {"host": "b.test", "auth": {"token_ref": "B"}}])
    assert sorted(cfg.routes) == ["api.example.com", "b.test"]
    assert cfg.route_for("B.TEST.")["auth"] == {"token_ref": "B"}


@pytest.mark.parametrize("value, expected", [
    ("example.com", ("example.com", None)),
    ("Example.COM:8443", ("example.com", 8443)),
    ("[::1]:443", ("::1", 443)),
    ("[2001:db8::1]", ("2001:db8::1", None)),
    ("example.com:x", ("example.com", None)),
])
def test_split_host_port(value, expected):
    assert policy.split_host_port(value) == expected


def test_tokens_and_secrets_files(write_config):
    assert policy.load_tokens("/nonexistent/tokens.json") == {}
    assert policy.load_secrets("/nonexistent/secrets.json") == []
    assert policy.load_tokens(write_config({"A": "v"}, "t.json")) == {"A": "v"}
    with pytest.raises(policy.ConfigError):
        policy.load_tokens(write_config({"A": 1}, "t.json"))
    with pytest.raises(policy.ConfigError):
        policy.load_secrets(write_config({"A": "v"}, "s.json"))


# --- routes: the semantics of the previous egress_addon.py --------------------------------

ROUTE = {"host": "api.bottle.test", "auth": {"scheme": "Bearer", "token_ref": "API"},
         "matches": [{"paths": [{"type": "prefix", "value": "/v1/"}], "methods": ["GET", "POST"]},
                     {"paths": [{"type": "exact", "value": "/health"}]}]}
TOKENS = {"API": "real-api-token", "HDR": "real-hdr-token"}


def test_bearer_route_strips_and_injects():
    decision = routes.decide(ROUTE, TOKENS, "GET", "/v1/models", {})
    assert not decision.refused
    assert decision.inject == [("Authorization", "Bearer real-api-token")] and "Authorization" in decision.strip
    assert "real-api-token" not in repr(decision)


def test_token_and_custom_header_schemes():
    assert routes.credential_headers({"scheme": "token"}, "T") == (("Authorization", "token T"), ["Authorization"])
    header, strip = routes.credential_headers({"scheme": "header", "header": "X-Api-Key", "value": "Key {token}"}, "T")
    assert header == ("X-Api-Key", "Key T") and set(strip) == {"Authorization", "X-Api-Key"}
    assert routes.strip_names({"auth": {"scheme": "header", "header": "X-Api-Key"}}) == ["Authorization", "X-Api-Key"]
    assert routes.strip_names({"host": "open"}) == []


@pytest.mark.parametrize("method, path", [("DELETE", "/v1/x"), ("GET", "/v2/x"), ("POST", "/health/x")])
def test_requests_outside_matches_are_refused_naming_the_route(method, path):
    decision = routes.decide(ROUTE, TOKENS, method, path, {})
    assert decision.status == 403 and decision.inject == []
    assert decision.message == "blocked by egress: route api.bottle.test does not allow %s %s" % (method, path)


def test_exact_regex_and_header_conditions():
    from fakes import Headers
    route = {"host": "h.test", "matches": [{"paths": [{"type": "regex", "value": "/items/[0-9]+"}],
                                            "headers": {"X-Team": "a"}}]}
    assert not routes.decide(route, {}, "GET", "/items/12", Headers({"x-team": "a"})).refused
    assert routes.decide(route, {}, "GET", "/items/12", Headers({"X-Team": "b"})).status == 403
    assert routes.decide(route, {}, "GET", "/items/x", Headers({"X-Team": "a"})).status == 403


def test_credentials_only_over_https_and_missing_token_fails_closed():
    decision = routes.decide(ROUTE, TOKENS, "GET", "/v1/x", {}, scheme="http")
    assert decision.status == 403 and "sends its credential over https only" in decision.message
    decision = routes.decide(ROUTE, {}, "GET", "/v1/x", {})
    assert decision.status == 503 and decision.inject == []


def test_unauthenticated_route_is_left_alone():
    decision = routes.decide({"host": "open.test"}, TOKENS, "GET", "/", {})
    assert not decision.refused and decision.inject == [] and decision.strip == []
