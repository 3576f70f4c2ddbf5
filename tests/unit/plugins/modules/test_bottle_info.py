# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_info against the in-memory engine: labels and state dirs, filtered."""

from __future__ import annotations

import json

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import host_listeners, naming, smolvm
from ansible_collections.botbottle.bottle.plugins.modules import bottle_info, bottle_network, sidecar_bundle
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import FakeEngine, run_module


class FakeSmolvm:
    """What the module sees of the smolvm CLI: found or not, and its machine list."""

    def __init__(self):
        self.found = False
        self.machines = []
        self.error = None


@pytest.fixture(autouse=True)
def fake_smolvm(monkeypatch):
    fake = FakeSmolvm()

    def find(explicit=None, which=None):
        if not fake.found:
            raise smolvm.SmolvmError("smolvm not found: install it")
        return "/opt/smolvm"

    def list_machines(self):
        if fake.error:
            raise smolvm.SmolvmError(fake.error, code="IO")
        return fake.machines

    monkeypatch.setattr(smolvm, "find_smolvm", find)
    monkeypatch.setattr(smolvm.SmolvmCLI, "list_machines", list_machines)
    monkeypatch.setattr(smolvm, "boot_supported", lambda: (False, "this host's KVM is PVM"))
    return fake


def machine(slug, agent, name=None, state="created"):
    labels = naming.labels(slug, agent, "agent", "smolmachines")
    return {"name": name or "bb-%s-agent" % slug, "state": state, "allowed_cidrs": ["127.77.0.5/32"],
            "image": "local:ab", "labels": labels}


def launch(engine, slug, agent):
    run_module(bottle_network, engine.client, {"slug": slug, "agent": agent, "pool": "10.9.0.0/16"})


def test_lists_by_labels_and_state_dirs_with_filters(tmp_path):
    engine = FakeEngine()
    engine.add_network("unrelated", subnet="10.8.0.0/24")
    launch(engine, "demo", "demo")
    launch(engine, "demo-two", "demo")
    launch(engine, "other", "other")
    (tmp_path / "demo").mkdir()
    meta = {"agent": "demo", "backend": "docker", "created": "2026-11-22T00:00:00Z"}
    (tmp_path / "demo" / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "orphan").mkdir()  # a state dir with nothing running
    (tmp_path / "Not A Slug").mkdir()

    everything = run_module(bottle_info, engine.client, {"state_root": str(tmp_path)})["bottles"]
    assert [b["slug"] for b in everything] == ["demo", "demo-two", "orphan", "other"]
    demo = everything[0]
    assert demo["created"] == "2026-11-22T00:00:00Z" and demo["state_dir"] == str(tmp_path / "demo")
    assert [n["name"] for n in demo["networks"]] == ["bb-demo-net-int", "bb-demo-net-out"]

    by_agent = run_module(bottle_info, engine.client, {"state_root": str(tmp_path), "agent": "demo"})["bottles"]
    assert [b["slug"] for b in by_agent] == ["demo", "demo-two"]
    one = run_module(bottle_info, engine.client, {"state_root": str(tmp_path), "slug": "demo-two"})["bottles"]
    assert [b["slug"] for b in one] == ["demo-two"] and one[0]["state_dir"] is None


def test_images_are_looked_up_in_order(tmp_path):
    engine = FakeEngine()
    bundle = engine.add_image("botbottle/bundle:latest")
    result = run_module(bottle_info, engine.client, {"state_root": str(tmp_path),
                                                     "images": ["botbottle/bundle:latest", "botbottle/agent:latest"]})
    assert result["images"] == [{"name": "botbottle/bundle:latest", "present": True, "id": bundle.id},
                                {"name": "botbottle/agent:latest", "present": False, "id": None}]
    assert not result["changed"]


def test_no_images_asked_none_reported(tmp_path):
    result = run_module(bottle_info, FakeEngine().client, {"state_root": str(tmp_path / "absent")})
    assert result["images"] == [] and result["bottles"] == []


def test_fleet_view_health_proposals_age_orphans_and_filters(tmp_path):
    import pytest
    from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import Failed

    engine = FakeEngine()
    launch(engine, "demo", "demo")
    launch(engine, "ghost", "demo")  # labelled objects, no state dir
    (tmp_path / "demo" / "supervise" / "proposals").mkdir(parents=True)
    (tmp_path / "demo" / "meta.json").write_text(json.dumps({"agent": "demo", "created": "2020-01-01T00:00:00Z"}))
    (tmp_path / "demo" / "supervise" / "proposals" / "00000000000000a1.json").write_text(
        '{"id": "00000000000000a1", "kind": "domain", "status": "pending"}')
    (tmp_path / "husk").mkdir()
    (tmp_path / "husk" / "meta.json").write_text(json.dumps({"agent": "demo", "created": "2099-01-01T00:00:00Z"}))

    found = {b["slug"]: b for b in run_module(bottle_info, engine.client,
                                              {"state_root": str(tmp_path), "health": True})["bottles"]}
    assert {s: b["orphan"] for s, b in found.items()} == {"demo": None, "ghost": "no-state", "husk": "no-objects"}
    assert found["demo"]["proposals_pending"] == 1 and found["demo"]["health"] == {}  # no bundle runs
    assert found["demo"]["age_seconds"] > 86400 and found["ghost"]["age_seconds"] is None

    def slugs(**args):
        return [b["slug"] for b in run_module(bottle_info, engine.client, dict(state_root=str(tmp_path), **args))["bottles"]]

    assert slugs(orphans=True) == ["ghost", "husk"]
    assert slugs(older_than="1d") == ["demo"]
    assert slugs(older_than="1d", orphans=True) == []
    assert "health" not in run_module(bottle_info, engine.client, {"state_root": str(tmp_path)})["bottles"][0]
    with pytest.raises(Failed, match="older_than: '2 days' is not a duration"):
        slugs(older_than="2 days")


def test_machines_join_their_bottles_and_follow_filters(tmp_path, fake_smolvm):
    engine = FakeEngine()
    launch(engine, "sm-a", "smol")
    fake_smolvm.found = True
    fake_smolvm.machines = [machine("sm-a", "smol"), machine("sm-b", "smol"), machine("x", "other"),
                            {"name": "unlabelled", "state": "running", "labels": {}}]
    result = run_module(bottle_info, engine.client, {"state_root": str(tmp_path)})
    assert result["smolvm"] == {"available": True, "path": "/opt/smolvm", "reason": None,
                                "boot": {"supported": False, "reason": "this host's KVM is PVM"}}
    assert [b["slug"] for b in result["bottles"]] == ["sm-a", "sm-b", "x"]
    sm_a = result["bottles"][0]
    assert sm_a["machines"] == [{"name": "bb-sm-a-agent", "component": "agent", "state": "created",
                                 "allowed_cidrs": ["127.77.0.5/32"], "image": "local:ab"}]
    assert [n["name"] for n in sm_a["networks"]] == ["bb-sm-a-net-int", "bb-sm-a-net-out"]
    assert result["bottles"][1]["backend"] == "smolmachines"  # known from the machine alone
    only_b = run_module(bottle_info, engine.client, {"state_root": str(tmp_path), "slug": "sm-b"})["bottles"]
    assert [b["slug"] for b in only_b] == ["sm-b"]
    by_agent = run_module(bottle_info, engine.client, {"state_root": str(tmp_path), "agent": "other"})["bottles"]
    assert [b["slug"] for b in by_agent] == ["x"]


def test_without_smolvm_no_machines_and_the_reason(tmp_path, fake_smolvm):
    result = run_module(bottle_info, FakeEngine().client, {"state_root": str(tmp_path)})
    assert result["smolvm"]["available"] is False and "not found" in result["smolvm"]["reason"]
    skipped = run_module(bottle_info, FakeEngine().client, {"state_root": str(tmp_path), "smolvm": False})
    assert skipped["smolvm"]["reason"] == "not looked for (smolvm=false)"


def test_a_failing_smolvm_fails_naming_the_way_out(tmp_path, fake_smolvm):
    from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import Failed
    fake_smolvm.found, fake_smolvm.error = True, "state dir unreadable"
    with pytest.raises(Failed) as failure:
        run_module(bottle_info, FakeEngine().client, {"state_root": str(tmp_path)})
    assert "smolvm machine ls failed: IO: state dir unreadable" in failure.value.result["msg"]
    assert "smolvm=false" in failure.value.result["msg"]


def smol_bundle(engine, slug, address):
    if "bb-%s-net-out" % slug not in engine.networks:
        run_module(bottle_network, engine.client, {"slug": slug, "agent": "smol", "pool": "10.9.0.0/16",
                                                   "internal": False})
    engine.add_image("botbottle/bundle:latest")
    run_module(sidecar_bundle, engine.client, {
        "slug": slug, "agent": "smol", "image": "botbottle/bundle:latest", "egress_network": "bb-%s-net-out" % slug,
        "publish_address": address, "backend": "smolmachines", "health_timeout": 1})


@pytest.mark.parametrize("setup,expected", [
    ({}, "allocated"),
    ({"bundle": "127.77.3.3"}, "bundle"),
    ({"meta": "127.77.4.4"}, "meta"),
    ({"meta": "127.77.4.4", "other": "127.77.4.4"}, "allocated"),
])
def test_loopback_choice(tmp_path, setup, expected):
    engine = FakeEngine()
    if "bundle" in setup:
        smol_bundle(engine, "sm-a", setup["bundle"])
    if "other" in setup:
        smol_bundle(engine, "sm-b", setup["other"])
    if "meta" in setup:
        (tmp_path / "sm-a").mkdir()
        (tmp_path / "sm-a" / "meta.json").write_text(json.dumps({"loopback_address": setup["meta"]}))
    result = run_module(bottle_info, engine.client, {"state_root": str(tmp_path), "slug": "sm-a",
                                                     "loopback_pool": "127.77.0.0/16"})
    assert result["loopback"]["source"] == expected
    assert result["loopback"]["address"] != setup.get("other")
    if expected == "bundle":
        assert result["loopback"]["address"] == setup["bundle"]
    if expected == "meta":
        assert result["loopback"]["address"] == setup["meta"]
    assert not result["changed"]


def test_audit_reports_firewall_decisions_by_host(tmp_path):
    state = tmp_path / "demo"
    (state / "audit").mkdir(parents=True)
    lines = [{"ts": 0.5, "event": "connect", "host": "pypi.org", "action": "allow", "rule": None},
             {"ts": 1.0, "event": "request", "host": "pypi.org", "action": "allow", "rule": None},
             {"ts": 2.0, "event": "connect", "host": "evil.example", "action": "block", "rule": "allowlist"}]
    (state / "audit" / "egress.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    bottles = run_module(bottle_info, FakeEngine().client, {"state_root": str(tmp_path), "audit": True})["bottles"]
    rows = bottles[0]["firewall"]
    assert [(r["host"], r["allowed"], r["refused"], r["rules"]) for r in rows] == [
        ("evil.example", 0, 1, {"allowlist": 1}), ("pypi.org", 1, 0, {})]
    assert bottles[0]["firewall_lines"] == ["evil.example allowed 0, refused 1 (allowlist 1), failed upstream 0, held 0",
                                            "pypi.org allowed 1, refused 0, failed upstream 0, held 0"]
    assert "firewall" not in run_module(bottle_info, FakeEngine().client, {"state_root": str(tmp_path)})["bottles"][0]


def test_approved_read_for_one_slug(tmp_path):
    engine = FakeEngine()
    assert run_module(bottle_info, engine.client, {"state_root": str(tmp_path), "slug": "demo"})["approved"] == {
        "domains": [], "routes": []}
    (tmp_path / "demo").mkdir()
    approved = {"domains": ["registry.npmjs.org"], "routes": []}
    (tmp_path / "demo" / "supervise-approved.json").write_text(json.dumps(approved))
    assert run_module(bottle_info, engine.client, {"state_root": str(tmp_path), "slug": "demo"})["approved"] == approved
    assert "approved" not in run_module(bottle_info, engine.client, {"state_root": str(tmp_path)})


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_unreadable_approvals_fail_naming_the_file(tmp_path, content):
    from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import Failed
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "supervise-approved.json").write_text(content)
    with pytest.raises(Failed) as failed:
        run_module(bottle_info, FakeEngine().client, {"state_root": str(tmp_path), "slug": "demo"})
    assert "supervise-approved.json" in str(failed.value) and "remove it" in str(failed.value)


def test_agent_approvals_read_with_approvals_agent(tmp_path):
    state_root = tmp_path / "state"
    state_root.mkdir()
    agent_dir = tmp_path / "agents" / "web"
    agent_dir.mkdir(parents=True)
    (agent_dir / "supervise-approved.json").write_text(json.dumps({"domains": ["pypi.org"], "routes": []}))
    args = {"state_root": str(state_root), "slug": "web"}
    assert "agent_approved" not in run_module(bottle_info, FakeEngine().client, args)
    result = run_module(bottle_info, FakeEngine().client, dict(args, approvals_agent="web"))
    assert result["agent_approved"] == {"domains": ["pypi.org"], "routes": []}
    assert result["approved"] == {"domains": [], "routes": []}


def test_agent_approvals_say_what_a_teardown_leaves(tmp_path):
    """Issue 21 item 6: the agent-wide approvals of each listed bottle's agent, and its bottles not listed."""
    for slug in ("demo", "demo-2"):
        (tmp_path / "state" / slug).mkdir(parents=True)
        (tmp_path / "state" / slug / "meta.json").write_text(json.dumps({"agent": "demo", "created": "2020-01-01T00:00:00Z"}))
    agents = tmp_path / "agents" / "demo"
    agents.mkdir(parents=True)
    (agents / "supervise-approved.json").write_text(json.dumps({"domains": ["pypi.org"], "routes": [
        {"host": "api.github.com", "auth": {"scheme": "Bearer", "token_ref": "GH"}}]}))
    state_root = str(tmp_path / "state")
    one = run_module(bottle_info, FakeEngine().client, {"state_root": state_root, "slug": "demo", "agent_approvals": True})
    assert one["agent_approvals"] == [{"agent": "demo", "path": str(agents / "supervise-approved.json"),
                                       "entries": ["domain pypi.org", "route api.github.com"], "left": ["demo-2"]}]
    every = run_module(bottle_info, FakeEngine().client, {"state_root": state_root, "agent": "demo",
                                                          "agent_approvals": True})
    assert every["agent_approvals"][0]["left"] == []
    assert "agent_approvals" not in run_module(bottle_info, FakeEngine().client, {"state_root": state_root})


def test_loopback_takes_vm_allow_lists_and_other_meta_json(tmp_path, fake_smolvm):
    """Through the module: a VM of another bottle holding the meta address, and another bottle's meta.json."""
    engine = FakeEngine()
    fake_smolvm.found = True
    (tmp_path / "sm-a").mkdir()
    (tmp_path / "sm-a" / "meta.json").write_text(json.dumps({"loopback_address": "127.77.4.4"}))
    fake_smolvm.machines = [dict(machine("sm-z", "smol"), allowed_cidrs=["127.77.4.4/32"])]
    result = run_module(bottle_info, engine.client, {"state_root": str(tmp_path), "slug": "sm-a",
                                                     "loopback_pool": "127.77.0.0/16"})
    assert result["loopback"]["source"] == "allocated" and result["loopback"]["address"] != "127.77.4.4"
    fake_smolvm.machines = []
    (tmp_path / "sm-y").mkdir()
    (tmp_path / "sm-y" / "meta.json").write_text(json.dumps({"loopback_address": "127.77.4.4"}))
    result = run_module(bottle_info, engine.client, {"state_root": str(tmp_path), "slug": "sm-a",
                                                     "loopback_pool": "127.77.0.0/16"})
    assert result["loopback"]["source"] == "allocated" and result["loopback"]["address"] != "127.77.4.4"


def test_listeners_name_what_the_vm_would_reach(tmp_path, monkeypatch):
    engine = FakeEngine()
    found = [host_listeners.Listener("tcp", "0.0.0.0", 5432, "inode 1"),
             host_listeners.Listener("udp", "::", 5353, "inode 2"),
             host_listeners.Listener("tcp", "127.0.0.1", 631, "inode 3")]
    monkeypatch.setattr(host_listeners, "linux_listeners", lambda root="/": found)
    monkeypatch.setattr(host_listeners.os.path, "isfile", lambda path: True)
    result = run_module(bottle_info, engine.client, {"state_root": str(tmp_path), "slug": "sm-a",
                                                     "loopback_pool": "127.77.0.0/16", "listeners": True})
    assert result["loopback"]["listeners"] == ["tcp 0.0.0.0:5432 (inode 1)", "udp [::]:5353 (inode 2)"]
    assert "bottle sm-a" in result["loopback"]["refusal"] and "bottle_smolvm_wildcard_ack" in result["loopback"]["refusal"]
    monkeypatch.setattr(host_listeners, "linux_listeners", lambda root="/": found[2:])
    result = run_module(bottle_info, engine.client, {"state_root": str(tmp_path), "slug": "sm-a",
                                                     "loopback_pool": "127.77.0.0/16", "listeners": True})
    assert result["loopback"]["listeners"] == [] and result["loopback"]["refusal"] == ""
