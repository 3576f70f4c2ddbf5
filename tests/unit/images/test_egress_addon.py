# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""egress addon: which connections are relayed untouched and how egress.json is read."""

from __future__ import annotations

import json
import os
import types

import pytest


def write(path, data):
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


def hello(sni):
    return types.SimpleNamespace(client_hello=types.SimpleNamespace(sni=sni), ignore_connection=False)


@pytest.mark.parametrize("content", [None, "", "  \n", {"routes": []}, {"routes": None}, {}])
def test_no_routes_means_an_empty_table(egress_addon, tmp_path, content):
    path = tmp_path / "egress.json"
    if content is not None:
        write(path, content)
    assert egress_addon.load_routes(str(path)) == {}


def test_routes_are_keyed_by_normalised_host(egress_addon, tmp_path):
    path = write(tmp_path / "egress.json", {"routes": [{"host": "API.Example.COM."}, {"host": "b.test", "x": 1}]})
    table = egress_addon.load_routes(path)
    assert sorted(table) == ["api.example.com", "b.test"]
    assert table["b.test"] == {"host": "b.test", "x": 1}


@pytest.mark.parametrize("content, message", [
    ({"routes": {"host": "a"}}, "'routes' must be a list"),
    ({"routes": [{"host": "a"}, {"name": "no host"}]}, "routes[1] has no host"),
    ({"routes": [{"host": ""}]}, "routes[0] has no host"),
    ({"routes": ["api.bottle.test"]}, "routes[0] must be an object with a host"),
])
def test_malformed_routes_name_the_bad_key(egress_addon, tmp_path, content, message):
    path = write(tmp_path / "egress.json", content)
    with pytest.raises(ValueError) as err:
        egress_addon.load_routes(path)
    assert message in str(err.value)
    assert path in str(err.value)


def test_unrouted_hosts_are_passed_through_and_routed_hosts_are_not(egress_addon, tmp_path):
    egress = egress_addon.Egress(write(tmp_path / "egress.json", {"routes": [{"host": "api.bottle.test"}]}))
    other, routed, no_sni = hello("allowed.bottle.test"), hello("API.bottle.test"), hello(None)
    for data in (other, routed, no_sni):
        egress.tls_clienthello(data)
    assert other.ignore_connection is True, "a host without a route must be relayed as opaque TLS"
    assert no_sni.ignore_connection is True, "a ClientHello without SNI cannot match a route"
    assert routed.ignore_connection is False, "a routed host is intercepted so the route can act"


def test_a_changed_file_is_picked_up_without_restart(egress_addon, tmp_path):
    path = tmp_path / "egress.json"
    egress = egress_addon.Egress(write(path, {"routes": []}))
    assert egress.route_for("api.bottle.test") is None
    write(path, {"routes": [{"host": "api.bottle.test"}]})
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert egress.route_for("api.bottle.test") == {"host": "api.bottle.test"}


def test_an_invalid_update_keeps_the_previous_table(egress_addon, tmp_path, caplog):
    path = tmp_path / "egress.json"
    egress = egress_addon.Egress(write(path, {"routes": [{"host": "api.bottle.test"}]}))
    write(path, "{not json")
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert egress.route_for("api.bottle.test") == {"host": "api.bottle.test"}
    assert "ignoring invalid" in caplog.text


ROUTES = {"routes": [
    {"host": "api.bottle.test", "auth": {"scheme": "Bearer", "token_ref": "API"},
     "matches": [{"paths": [{"type": "prefix", "value": "/v1/"}], "methods": ["GET", "POST"]},
                 {"paths": [{"type": "exact", "value": "/health"}]}]},
    {"host": "hdr.bottle.test", "auth": {"scheme": "header", "header": "X-Api-Key", "value": "Key {token}",
                                         "token_ref": "HDR"}},
    {"host": "open.bottle.test"},
]}


@pytest.fixture
def routed(egress_addon, tmp_path):
    config = write(tmp_path / "egress.json", ROUTES)
    tokens = write(tmp_path / "tokens.json", {"API": "real-api-token", "HDR": "real-hdr-token"})
    return egress_addon.Egress(config, tokens)


def test_bearer_route_strips_and_injects(routed):
    refusal, inject, strip = routed.decide("api.bottle.test", "api.bottle.test", "GET", "/v1/models", {})
    assert refusal is None and inject == [("Authorization", "Bearer real-api-token")] and "Authorization" in strip


def test_custom_header_route(routed):
    _refusal, inject, strip = routed.decide("hdr.bottle.test", "hdr.bottle.test", "POST", "/x", {})
    assert inject == [("X-Api-Key", "Key real-hdr-token")] and set(strip) == {"Authorization", "X-Api-Key"}


@pytest.mark.parametrize("method,path", [("DELETE", "/v1/x"), ("GET", "/v2/x"), ("POST", "/health/x")])
def test_requests_outside_matches_are_refused_naming_the_route(routed, method, path):
    refusal, inject, _strip = routed.decide("api.bottle.test", "api.bottle.test", method, path, {})
    assert refusal[0] == 403 and "route api.bottle.test" in refusal[1] and inject == []


def test_exact_and_header_conditions(egress_addon, tmp_path):
    config = write(tmp_path / "e.json", {"routes": [{"host": "h.test", "matches": [
        {"paths": [{"type": "regex", "value": "/items/[0-9]+"}], "headers": {"X-Team": "a"}}]}]})
    egress = egress_addon.Egress(config, str(tmp_path / "none.json"))
    assert egress.decide("h.test", "h.test", "GET", "/items/12", {"X-Team": "a"})[0] is None
    assert egress.decide("h.test", "h.test", "GET", "/items/12", {"X-Team": "b"})[0][0] == 403
    assert egress.decide("h.test", "h.test", "GET", "/items/x", {"X-Team": "a"})[0][0] == 403


def test_host_header_must_match_the_tls_name(routed):
    refusal, _inject, _strip = routed.decide("api.bottle.test", "other.bottle.test", "GET", "/v1/x", {})
    assert refusal[0] == 403 and "does not match" in refusal[1]


def test_credentials_only_over_https(routed):
    refusal, inject, _strip = routed.decide(None, "api.bottle.test", "GET", "/v1/x", {}, scheme="http")
    assert refusal[0] == 403 and inject == []


def test_unrouted_and_unauthenticated_hosts_are_left_alone(routed):
    assert routed.decide("x.test", "x.test", "GET", "/", {}) == (None, [], [])
    assert routed.decide("open.bottle.test", "open.bottle.test", "GET", "/", {}) == (None, [], [])


def test_missing_token_fails_closed(egress_addon, tmp_path):
    egress = egress_addon.Egress(write(tmp_path / "e.json", ROUTES), str(tmp_path / "absent.json"))
    refusal, inject, _strip = egress.decide("api.bottle.test", "api.bottle.test", "GET", "/v1/x", {})
    assert refusal[0] == 503 and inject == []
