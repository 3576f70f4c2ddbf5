# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-bottle loopback address: validation, allocation, read-back."""

from __future__ import annotations

import ipaddress
import json

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import loopback, naming
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import FakeEngine


@pytest.mark.parametrize("text,expected", [
    ("127.77.0.17", "127.77.0.17"),
    (" 127.0.0.2 ", "127.0.0.2"),
    ("127.255.255.254", "127.255.255.254"),
])
def test_check_address_accepts(text, expected):
    assert loopback.check_address(text) == expected


@pytest.mark.parametrize("text,message", [
    ("127.0.0.1", "shared by every service"),
    ("127.0.0.0", "network or broadcast"),
    ("127.255.255.255", "network or broadcast"),
    ("10.0.0.1", "not a loopback address"),
    ("0.0.0.0", "not a loopback address"),
    ("::1", "not a loopback address"),
    ("", "not an IP address"),
    ("localhost", "not an IP address"),
])
def test_check_address_refuses(text, message):
    with pytest.raises(loopback.LoopbackError, match=message):
        loopback.check_address(text)


@pytest.mark.parametrize("text,message", [
    ("10.0.0.0/8", "not inside 127.0.0.0/8"),
    ("127.77.0.0/31", "too small"),
    ("nope", "not a CIDR"),
    ("::1/128", "not inside 127.0.0.0/8"),
])
def test_parse_pool_refuses(text, message):
    with pytest.raises(loopback.LoopbackError, match=message):
        loopback.parse_pool(text)


def test_pool_never_offers_127_0_0_1():
    assert "127.0.0.1" not in loopback.candidates(loopback.parse_pool("127.0.0.0/30"))
    assert loopback.candidates(loopback.parse_pool("127.0.0.0/30")) == ["127.0.0.2"]


def test_allocate_is_deterministic_and_skips_used():
    pool = loopback.parse_pool(loopback.DEFAULT_POOL)
    first = loopback.allocate("sm-a", pool, set())
    assert first == loopback.allocate("sm-a", pool, set())
    assert ipaddress.ip_address(first) in pool
    assert loopback.allocate("sm-a", pool, {first}) != first
    assert loopback.allocate("sm-a", pool, set()) != loopback.allocate("sm-b", pool, set())


def test_allocate_full_pool_names_the_fix():
    pool = loopback.parse_pool("127.77.0.0/30")
    with pytest.raises(loopback.LoopbackError, match="bottle_smolvm_loopback_pool"):
        loopback.allocate("x", pool, {"127.77.0.1", "127.77.0.2"})


def test_published_addresses_reads_bindings_and_ignores_others():
    attrs = {"HostConfig": {"PortBindings": {
        "8888/tcp": [{"HostIp": "127.77.0.9", "HostPort": "8888"}, {"HostIp": "127.0.0.1", "HostPort": ""}],
        "9418/tcp": [{"HostIp": "", "HostPort": "9418"}]}},
        "NetworkSettings": {"Ports": {"9100/tcp": [{"HostIp": "127.77.0.9", "HostPort": "9100"}]}}}
    assert loopback.published_addresses(attrs) == {"127.77.0.9"}
    assert loopback.published_addresses({}) == set()


def bundle(engine, slug, address, component="bundle"):
    labels = naming.labels(slug, "smol", component, "smolmachines")
    engine.add_image("img")
    engine.client.api.create_container(
        engine.images[-1].id, name="bb-%s-%s" % (slug, component), labels=labels,
        host_config={"network_mode": "bridge", "port_bindings": {"8888/tcp": (address, 8888)}})


@pytest.mark.parametrize("own,meta,others,expected_source", [
    ("127.77.0.5", None, {}, "bundle"),
    (None, "127.77.0.6", {}, "meta"),
    (None, "127.77.0.6", {"sm-b": "127.77.0.6"}, "allocated"),
    (None, "127.0.0.1", {}, "allocated"),
    (None, None, {}, "allocated"),
])
def test_choose(own, meta, others, expected_source):
    engine = FakeEngine()
    if own:
        bundle(engine, "sm-a", own)
    for slug, address in others.items():
        bundle(engine, slug, address)
    address, source = loopback.choose("sm-a", loopback.DEFAULT_POOL, engine.client, meta_address=meta)
    assert source == expected_source
    assert address not in others.values()
    if expected_source == "bundle":
        assert address == own
    if expected_source == "meta":
        assert address == meta


def test_only_bundles_count_as_taken():
    engine = FakeEngine()
    bundle(engine, "sm-b", "127.77.0.7", component="agent")
    assert loopback.bundle_addresses(engine.client) == {}
    bundle(engine, "sm-b", "127.77.0.7")
    assert loopback.bundle_addresses(engine.client) == {"127.77.0.7": "sm-b"}


def vm(name, cidrs, bottle=None):
    labels = {naming.LABEL_BOTTLE: bottle} if bottle else {}
    return {"name": name, "allowed_cidrs": list(cidrs), "labels": labels}


def test_every_vm_allow_list_is_taken_even_without_a_bundle():
    """A VM that outlived its bundle still reaches its address: no other bottle may get it."""
    engine = FakeEngine()
    first, _source = loopback.choose("sm-a", loopback.DEFAULT_POOL, engine.client)
    machines = [vm("bb-sm-z-agent", [first + "/32"], bottle="sm-z")]
    second, source = loopback.choose("sm-a", loopback.DEFAULT_POOL, engine.client, machines=machines)
    assert source == "allocated" and second != first
    # its meta.json names the address a VM of another bottle holds: not handed out again
    third, source = loopback.choose("sm-a", loopback.DEFAULT_POOL, engine.client, meta_address=first,
                                    machines=machines)
    assert source == "allocated" and third != first
    # the bottle's own VM does not block it
    own = [vm("bb-sm-a-agent", [first + "/32"], bottle="sm-a")]
    assert loopback.choose("sm-a", loopback.DEFAULT_POOL, engine.client, meta_address=first,
                           machines=own) == (first, "meta")
    # an unlabelled machine, and a wider loopback range, block what they cover
    wide = [vm("scratch", ["127.77.0.0/16"])]
    with pytest.raises(loopback.LoopbackError, match="no free address"):
        loopback.choose("sm-a", "127.77.0.0/16", engine.client, machines=wide)
    assert loopback.choose("sm-a", "127.78.0.0/30", engine.client, machines=wide)[1] == "allocated"


def test_every_bottles_meta_json_is_taken(tmp_path):
    engine = FakeEngine()
    address, _source = loopback.choose("sm-a", loopback.DEFAULT_POOL, engine.client)
    for slug, text in (("sm-z", json.dumps({"loopback_address": address})), ("sm-bad", "{not json"),
                       ("sm-none", json.dumps({"slug": "sm-none"}))):
        (tmp_path / slug).mkdir()
        (tmp_path / slug / "meta.json").write_text(text)
    metas = loopback.meta_addresses(str(tmp_path))
    assert metas == {address: ["sm-z"]}
    other, source = loopback.choose("sm-a", loopback.DEFAULT_POOL, engine.client, metas=metas)
    assert source == "allocated" and other != address
    assert loopback.choose("sm-z", loopback.DEFAULT_POOL, engine.client, meta_address=address,
                           metas=metas) == (address, "meta")
    assert loopback.meta_addresses(str(tmp_path / "missing")) == {}
