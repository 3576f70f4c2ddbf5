# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_network against the in-memory engine of docker_fakes."""

from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import bottle_networks, naming
from ansible_collections.botbottle.bottle.plugins.modules import bottle_network

from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import FakeEngine, Failed, run_module

ARGS = {"slug": "demo", "agent": "demo"}


@pytest.fixture
def engine():
    return FakeEngine()


def run(engine, check=False, diff=False, **overrides):
    return run_module(bottle_network, engine.client, dict(ARGS, **overrides), check=check, diff=diff)


def first_slot(slug, pool="172.29.0.0/16", prefix=28):
    return bottle_networks.slot_order(slug, ipaddress.ip_network(pool), prefix)[0]


def test_creates_internal_and_egress_with_labels_and_pinned_addresses(engine):
    result = run(engine, diff=True, labels={"team": "x"})
    assert result["changed"]
    internal, egress = engine.networks["bb-demo-net-int"], engine.networks["bb-demo-net-out"]
    assert internal.attrs["Internal"] is True
    # the host must own no address on the internal bridge (no route to host services via the gateway)
    assert internal.attrs["Options"] == {bottle_networks.INHIBIT_IPV4: "true"}
    assert egress.attrs["Internal"] is False and egress.attrs["Options"] == {}
    for net, component in ((internal, "net-int"), (egress, "net-out")):
        assert net.attrs["Labels"] == dict(naming.labels("demo", "demo", component), team="x")
    subnet = first_slot("demo")
    hosts = list(subnet.hosts())
    assert result["networks"]["internal"] == {
        "name": "bb-demo-net-int", "id": internal.id, "subnet": str(subnet), "gateway": str(hosts[0]),
        "bundle_ip": str(hosts[1]), "agent_ip": str(hosts[2])}
    assert result["networks"]["egress"]["subnet"] != str(subnet)
    assert result["diff"]["before"] == {"internal": None, "egress": None}
    assert result["diff"]["after"] == result["networks"]
    assert result["skipped_subnets"] == []


def test_existing_networks_keep_their_subnets(engine):
    engine.add_network("bb-demo-net-int", subnet="10.1.0.0/28", internal=True,
                       options={bottle_networks.INHIBIT_IPV4: "true"}, labels=naming.labels("demo", "demo", "net-int"))
    engine.add_network("bb-demo-net-out", subnet="10.1.0.16/28", labels=naming.labels("demo", "demo", "net-out"))
    result = run(engine)
    assert not result["changed"]
    assert result["networks"]["internal"]["subnet"] == "10.1.0.0/28"
    assert result["networks"]["internal"]["bundle_ip"] == "10.1.0.2"
    assert result["networks"]["internal"]["agent_ip"] == "10.1.0.3"
    assert result["networks"]["egress"]["subnet"] == "10.1.0.16/28"


def test_only_the_missing_network_is_created(engine):
    first = run(engine)
    engine.networks["bb-demo-net-out"].remove()
    second = run(engine)
    assert second["changed"]
    assert second["networks"]["internal"] == first["networks"]["internal"]
    assert second["networks"]["egress"]["name"] == "bb-demo-net-out"
    assert ("network", "bb-demo-net-int") in engine.created and engine.created.count(("network", "bb-demo-net-int")) == 1


def test_unchanged_when_both_exist(engine):
    first = run(engine)
    again = run(engine)
    assert not again["changed"]
    assert again["networks"] == first["networks"]


def test_check_mode_creates_nothing_and_reports_plan(engine):
    result = run(engine, check=True)
    assert result["changed"]
    assert set(engine.networks) == {"bridge"}
    assert result["networks"]["internal"]["subnet"] == str(first_slot("demo"))
    assert result["networks"]["internal"]["id"] is None


def test_subnet_choice_is_deterministic_from_the_slug():
    pool = ipaddress.ip_network("172.29.0.0/16")
    assert bottle_networks.slot_order("a", pool, 28) == bottle_networks.slot_order("a", pool, 28)
    assert bottle_networks.slot_order("a", pool, 28)[0] != bottle_networks.slot_order("b", pool, 28)[0]


def test_skips_subnets_overlapping_any_network_and_says_which(engine):
    blocked = first_slot("demo")
    engine.add_network("someone-elses", subnet=str(blocked.supernet(new_prefix=24)))
    result = run(engine)
    internal = ipaddress.ip_network(result["networks"]["internal"]["subnet"])
    assert not internal.overlaps(blocked.supernet(new_prefix=24))
    assert result["skipped_subnets"][0] == "%s (overlaps someone-elses)" % blocked


def test_pool_exhausted_names_pool(engine):
    engine.add_network("full", subnet="10.9.0.0/27")
    with pytest.raises(Failed) as failure:
        run(engine, pool="10.9.0.0/27", prefix=28)
    assert "pool 10.9.0.0/27 has no free /28" in failure.value.result["msg"]
    assert "widen pool" in failure.value.result["msg"]
    assert set(engine.networks) == {"bridge", "full"}


@pytest.mark.parametrize("pool,prefix,needle", [
    ("not-a-cidr", 28, "pool 'not-a-cidr' is not an IPv4 CIDR"),
    ("10.0.0.0/24", 16, "prefix 16 does not fit pool 10.0.0.0/24"),
    ("10.0.0.0/24", 30, "prefix 30 does not fit"),
])
def test_bad_pool_or_prefix_is_refused_before_creating(engine, pool, prefix, needle):
    with pytest.raises(Failed) as failure:
        run(engine, pool=pool, prefix=prefix)
    assert needle in failure.value.result["msg"]
    assert set(engine.networks) == {"bridge"}


def test_bad_slug_names_slug(engine):
    with pytest.raises(Failed) as failure:
        run(engine, slug="Bad_Slug")
    assert failure.value.result["msg"].startswith("slug: bottle slug 'Bad_Slug' is invalid")


def test_foreign_network_with_our_name_is_not_taken_over(engine):
    engine.add_network("bb-demo-net-int", subnet="10.1.0.0/28", labels={naming.LABEL_BOTTLE: "other"})
    with pytest.raises(Failed) as failure:
        run(engine)
    assert "does not belong to bottle demo" in failure.value.result["msg"]


def test_internal_network_without_host_isolation_is_recreated(engine):
    old = engine.add_network("bb-demo-net-int", subnet="10.1.0.0/28", internal=True,
                             labels=naming.labels("demo", "demo", "net-int"))
    result = run(engine)
    assert result["changed"]
    new = engine.networks["bb-demo-net-int"]
    assert old.removed and new is not old
    assert new.attrs["Options"][bottle_networks.INHIBIT_IPV4] == "true"


def test_absent_removes_only_the_bottles_networks(engine):
    run(engine)
    engine.add_network("bystander", subnet="10.2.0.0/28")
    check = run(engine, check=True, state="absent")
    assert check["changed"] and "bb-demo-net-int" in engine.networks
    result = run(engine, state="absent", diff=True)
    assert result["changed"]
    assert set(engine.networks) == {"bridge", "bystander"}
    assert result["diff"]["after"] == {"internal": None, "egress": None}
    assert not run(engine, state="absent")["changed"]


def test_agent_required_for_present(engine):
    with pytest.raises(Failed) as failure:
        run_module(bottle_network, engine.client, {"slug": "demo"})
    assert failure.value.result["msg"] == "agent is required when state=present"


def test_without_internal_only_the_way_out_exists(engine):
    result = run(engine, diff=True, internal=False, backend="smolmachines")
    assert result["changed"]
    assert sorted(n for n in engine.networks if n.startswith("bb-")) == ["bb-demo-net-out"]
    assert sorted(result["networks"]) == ["egress"]
    assert engine.networks["bb-demo-net-out"].attrs["Labels"][naming.LABEL_BACKEND] == "smolmachines"
    assert not run(engine, internal=False, backend="smolmachines")["changed"]
    check = run(engine, check=True, internal=False)
    assert not check["changed"]


def test_absent_removes_both_whatever_internal_says(engine):
    run(engine)
    assert run(engine, state="absent", internal=False)["changed"]
    assert not [n for n in engine.networks if n.startswith("bb-")]


def test_recreate_shows_each_difference_in_the_diff(engine):
    engine.add_network("bb-demo-net-int", subnet="10.1.0.0/28", internal=False,
                       labels=naming.labels("demo", "demo", "net-int"))
    result = run(engine, check=True, diff=True)
    assert result["changed"]
    before, after = result["diff"]["before"]["internal"], result["diff"]["after"]["internal"]
    assert before["internal"] is False and after["internal"] is True
    assert before["options"] == {bottle_networks.INHIBIT_IPV4: None}
    assert after["options"] == {bottle_networks.INHIBIT_IPV4: "true"}
    assert "internal" not in result["networks"]["internal"]  # the return value keeps its shape
    assert result["diff"]["after"]["egress"] == result["networks"]["egress"]


def test_has_different_config_compares_only_what_the_bottle_sets(engine):
    net = engine.add_network("bb-demo-net-int", subnet="10.1.0.0/28", internal=True,
                             options={bottle_networks.INHIBIT_IPV4: "true", "com.docker.network.mtu": "1400"},
                             labels=naming.labels("demo", "demo", "net-int"))
    manager = bottle_networks.NetworkManager.__new__(bottle_networks.NetworkManager)
    assert manager.has_different_config("internal", net) == (False, {})
    assert manager.has_different_config("egress", net) == (False, {})
    net.attrs["Options"] = {}
    assert manager.has_different_config("internal", net) == (
        True, {"options": ({bottle_networks.INHIBIT_IPV4: None}, {bottle_networks.INHIBIT_IPV4: "true"})})
