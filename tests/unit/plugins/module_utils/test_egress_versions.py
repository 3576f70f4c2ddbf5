# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""egress.json's versions across the bundle boundary: what bundle_config writes (version 3, every key) and what
egress's parser reads (version 3 with every key in the file; version 2 through ``bundle_format.fill_v2``)."""

from __future__ import annotations

import copy
import json
import os
import pathlib
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config, bundle_format

BUNDLE = pathlib.Path(__file__).resolve().parents[4] / "images" / "bundle"
if str(BUNDLE) not in sys.path:
    sys.path.insert(0, str(BUNDLE))
from bottle_firewall import policy as egress_policy  # noqa: E402  pylint: disable=wrong-import-position

GENERATED = settings(max_examples=200, derandomize=bool(os.environ.get("CI")), deadline=None)

POLICY = {"allowed_domains": ["a.example", "*.cdn.example"],
          "firewall": {"websocket_hosts": ["ws.example"], "dlp_action": "supervise"},
          "egress": {"routes": [{"host": "api.example", "auth": {"token_ref": "API_TOKEN"},
                                 "matches": [{"paths": [{"type": "exact", "value": "/v1/items"}], "methods": ["GET"]}]}]}}
OPTIONS = {"supervise_enabled": True, "ssrf_ip_allowlist": ["10.9.0.0/24"]}

# Every key a version 3 file carries: the top-level keys, then each key of each section.
EVERY_KEY = list(bundle_format.EGRESS_KEYS) + ["%s.%s" % (section, key) for section, keys in bundle_format.SECTIONS.items()
                                               for key in keys]


def written(policy=None, options=None):
    """egress.json as bundle_config writes it, decoded."""
    return json.loads(bundle_config.render(POLICY if policy is None else policy,
                                           OPTIONS if options is None else options)["bundle/egress.json"])


def without(data, key):
    """``data`` less ``key`` (``section.key`` for a key of a section)."""
    data = copy.deepcopy(data)
    section, _dot, name = key.partition(".")
    del (data[section] if name else data)[name or section]
    return data


def test_every_key_is_listed():
    assert len(EVERY_KEY) == len(bundle_format.EGRESS_KEYS) + sum(len(keys) for keys in bundle_format.SECTIONS.values())
    assert set(written()) == set(bundle_format.EGRESS_KEYS)
    for section, keys in bundle_format.SECTIONS.items():
        assert set(written()[section]) == set(keys), section
    assert bundle_format.EGRESS_VERSION == 3 and bundle_format.EGRESS_VERSIONS == (2, 3)


@pytest.mark.parametrize("key", EVERY_KEY)
def test_a_version_3_file_without_a_key_is_refused_naming_it(key):
    data = without(written(), key)
    with pytest.raises(egress_policy.ConfigError) as err:
        egress_policy.parse_config(data, "egress.json")
    message = str(err.value)
    assert message.startswith("egress.json: %s is missing" % key), message
    assert "writer must write it" in message


@pytest.mark.parametrize("key", [key for key in bundle_format.EGRESS_KEYS if key != "version"])
def test_a_version_3_file_with_a_null_key_is_refused_naming_it(key):
    with pytest.raises(egress_policy.ConfigError, match=r"^egress.json: %s is missing: a version 3 file must carry "
                                                        r"every key \(null is not a value\)" % key):
        egress_policy.parse_config(dict(written(), **{key: None}), "egress.json")


@pytest.mark.parametrize("key", [key for key in EVERY_KEY if key != "version"])
def test_a_version_2_file_without_a_key_still_loads_with_the_default(key):
    """Files of earlier releases (version 2) stay readable: a key left out is bundle_format.V2_DEFAULTS's."""
    full = dict(written(), version=2)
    data = without(full, key)
    assert bundle_format.missing_keys(bundle_format.fill_v2(data)) == []
    config = egress_policy.parse_config(data, "egress.json")
    section, _dot, name = key.partition(".")
    default = bundle_format.V2_DEFAULTS[section]
    if name:
        assert getattr(config, section)[name] == default[name]
    elif section in bundle_format.SECTIONS:
        assert getattr(config, section) == default
    else:
        attribute = {"mode": "mode", "allowed_hosts": "allowed", "ports": "ports", "passthrough_domains": "passthrough",
                     "trusted_domains": "trusted", "ssrf_ip_allowlist": "ssrf_networks", "routes": "routes",
                     "websocket_hosts": "websocket"}[section]
        value = getattr(config, attribute)
        expected = {"mode": "firewall", "ports": frozenset(bundle_format.DEFAULT_PORTS)}.get(section)
        assert value == expected if expected is not None else not value, (section, value)


def test_a_version_2_file_with_only_its_version_loads_with_every_default():
    config = egress_policy.parse_config({"version": 2})
    assert (config.dlp, config.rate_limit, config.audit) == (bundle_format.DEFAULT_DLP, bundle_format.DEFAULT_RATE,
                                                             bundle_format.DEFAULT_AUDIT)
    with pytest.raises(egress_policy.ConfigError, match="egress.json: mode is missing"):
        egress_policy.parse_config({"version": 3})


def test_egress_keys_fills_version_2_only():
    filled, missing = bundle_format.egress_keys({"version": 2, "audit": {"keep": 0}})
    assert missing == [] and filled["audit"] == dict(bundle_format.DEFAULT_AUDIT, keep=0)
    filled, missing = bundle_format.egress_keys({"version": 3, "audit": {"keep": 0}})
    assert missing[0] == "mode" and "audit.rotate_bytes" in missing and "dlp" not in filled


# -- the round trip: what bundle_config writes, egress reads as it is -------------------------------------

HOSTS = ["a.example", "b.example", "api.example", "git.example", "pypi.example.org", "ws.example"]
hosts = st.lists(st.sampled_from(HOSTS), unique=True, max_size=4)
paths = st.fixed_dictionaries({"value": st.from_regex(r"/[a-z0-9/._-]{0,12}", fullmatch=True)},
                              optional={"type": st.sampled_from(["exact", "prefix"])})
matches = st.fixed_dictionaries({}, optional={"paths": st.lists(paths, min_size=1, max_size=2),
                                              "methods": st.lists(st.sampled_from(["GET", "POST", "put"]), min_size=1,
                                                                  max_size=2, unique=True),
                                              "headers": st.dictionaries(st.sampled_from(["X-Org", "Accept"]),
                                                                         st.sampled_from(["ours", "json"]), max_size=2)})
auth = st.one_of(st.fixed_dictionaries({"token_ref": st.sampled_from(["T", "API_TOKEN"])},
                                       optional={"scheme": st.sampled_from(["Bearer", "token"])}),
                 st.fixed_dictionaries({"scheme": st.just("header"), "token_ref": st.just("K"),
                                        "header": st.just("X-Api-Key"), "value": st.just("Key {token}")}))
routes = st.lists(st.fixed_dictionaries({"host": st.sampled_from(HOSTS)},
                                        optional={"auth": auth, "matches": st.lists(matches, min_size=1, max_size=2),
                                                  "description": st.just("what it is for")}),
                  unique_by=lambda route: route["host"], max_size=3)
firewall = st.fixed_dictionaries({}, optional={
    "passthrough_domains": hosts, "trusted_domains": hosts, "websocket_hosts": hosts,
    "ports": st.lists(st.integers(1, 65535), min_size=1, max_size=3),
    "max_body_bytes": st.integers(1, 2 ** 31), "requests_per_minute": st.integers(1, 100000),
    "dlp_action": st.sampled_from(bundle_format.DLP_ACTIONS),
    "dlp_supervise_timeout": st.integers(*bundle_format.SUPERVISE_TIMEOUT_RANGE),
    "audit_rotate_bytes": st.integers(bundle_format.AUDIT_MIN_ROTATE_BYTES, 2 ** 34),
    "audit_keep": st.integers(0, 100)})
policies = st.fixed_dictionaries({}, optional={"allowed_domains": hosts, "firewall": firewall,
                                               "egress": st.fixed_dictionaries({"routes": routes}),
                                               "pipelock": st.fixed_dictionaries({}, optional={"trusted_domains": hosts})})
options = st.fixed_dictionaries({"supervise_enabled": st.just(True)}, optional={
    "pipelock": st.booleans(), "ssrf_ip_allowlist": st.lists(st.sampled_from(["10.9.0.0/24", "172.30.0.0/16", "fd00::/8"]),
                                                             unique=True, max_size=2)})


@GENERATED
@given(policies, options)
def test_what_bundle_config_writes_egress_reads_unchanged(policy, opts):
    data = written(policy, opts)
    assert data["version"] == bundle_format.EGRESS_VERSION and bundle_format.missing_keys(data) == []
    assert not [key for key, value in data.items() if value is None]
    before = copy.deepcopy(data)
    config = egress_policy.parse_config(data, "egress.json")
    assert data == before, "the parser changed the file it read"
    # Each value egress holds is the file's: no key of it was replaced by a default.
    assert config.mode == data["mode"] and config.ports == frozenset(data["ports"])
    assert (config.dlp, config.rate_limit, config.audit) == (data["dlp"], data["rate_limit"], data["audit"])
    assert sorted(config.allowed.patterns) == sorted(data["allowed_hosts"])
    for key, attribute in (("passthrough_domains", "passthrough"), ("trusted_domains", "trusted"),
                           ("websocket_hosts", "websocket")):
        assert getattr(config, attribute).patterns == data[key]
    assert [str(network) for network in config.ssrf_networks] == [
        str(egress_policy.ipaddress.ip_network(cidr, strict=False)) for cidr in data["ssrf_ip_allowlist"]]
    assert list(config.routes.values()) == data["routes"]
    # The policy's own values reached the file.
    set_by_policy = policy.get("firewall") or {}
    for key, (section, name) in (("audit_keep", ("audit", "keep")), ("audit_rotate_bytes", ("audit", "rotate_bytes")),
                                 ("max_body_bytes", ("dlp", "max_body_bytes")), ("dlp_action", ("dlp", "action")),
                                 ("dlp_supervise_timeout", ("dlp", "supervise_timeout")),
                                 ("requests_per_minute", ("rate_limit", "requests_per_minute"))):
        assert data[section][name] == set_by_policy.get(key, bundle_format.SECTIONS[section][name]), key
