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
