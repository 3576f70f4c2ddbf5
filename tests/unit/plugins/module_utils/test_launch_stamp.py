# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""launch_stamp: the stamp of a finished launch (docker, and smolmachines: its VM, relay and agent image) (write/read), what is there now (observe) and
whether a rerun may take the shortcut (is_current). No engine: the fake of docker_fakes."""
from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config, launch_stamp, naming
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import FakeContainer, FakeEngine

SLUG = "demo-rr1"


def add_container(engine, role, image, status="running", labels=None):
    name = naming.object_name(SLUG, role)
    attrs = {"Image": image, "Config": {"Labels": naming.labels(SLUG, "demo", role) if labels is None else labels},
             "State": {"Status": status}}
    engine.containers[name] = FakeContainer(engine, name, attrs)
    return engine.containers[name]


@pytest.fixture
def bottle(tmp_path):
    """A fake engine with the bottle's networks and containers, and a state dir with real bundle files."""
    engine = FakeEngine()
    nets = {role: engine.add_network(naming.object_name(SLUG, suffix), labels=naming.labels(SLUG, "demo", suffix))
            for role, suffix in launch_stamp.NETWORKS.items()}
    images = {"bundle": engine.add_image("botbottle/bundle:latest"), "agent": engine.add_image("botbottle/agent:latest")}
    conts = {role: add_container(engine, role, images[role].id) for role in launch_stamp.CONTAINERS}
    state = tmp_path / SLUG
    (state / "bundle").mkdir(parents=True)
    (state / "private" / "egress").mkdir(parents=True)
    (state / "bundle" / "egress.json").write_text('{"allowed_domains": ["api.anthropic.com"]}\n')
    (state / "bundle" / "supervise.json").write_text("{}\n")
    (state / "private" / "egress" / "tokens.json").write_text('{"T": "secret"}\n')
    objects = {"networks": {role: net.id for role, net in nets.items()},
               "containers": {role: {"id": c.id, "running": True, "image": c.attrs["Image"]} for role, c in conts.items()},
               "config_hash": bundle_config.config_hash(str(state))}
    launch_stamp.write(str(state), "d1", objects)
    return {"engine": engine, "nets": nets, "images": images, "conts": conts, "state": state, "objects": objects,
            "image_ids": {role: image.id for role, image in images.items()}}


class Health:
    def __init__(self, answer=True):
        self.answer, self.calls = answer, []

    def __call__(self, container):
        self.calls.append(container)
        return self.answer


def observe(b, health=None):
    return launch_stamp.observe(b["engine"].client, SLUG, str(b["state"]), health or Health())


# --- write / read ----------------------------------------------------------------------------------

def test_write_read_round_trip_and_mode(tmp_path):
    objects = {"networks": {"internal": "n1", "egress": "n2"},
               "containers": {"bundle": {"id": "c1", "running": True, "image": "sha256:i1"}}, "config_hash": "h"}
    launch_stamp.write(str(tmp_path), "abc", objects)
    path = tmp_path / launch_stamp.STAMP
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert launch_stamp.read(str(tmp_path)) == dict(objects, digest="abc")
    # Rewritten in place (atomically): the new one wins, still 0600, no temporary file left behind.
    launch_stamp.write(str(tmp_path), "def", {})
    assert launch_stamp.read(str(tmp_path)) == {"digest": "def"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(tmp_path) == [launch_stamp.STAMP]


@pytest.mark.parametrize("content", [None, "{not json", "", '["a list"]', '"a string"', "42", "null"])
def test_read_gives_none_for_missing_invalid_or_non_object(tmp_path, content):
    if content is not None:
        (tmp_path / launch_stamp.STAMP).write_text(content)
    assert launch_stamp.read(str(tmp_path)) is None


def test_read_gives_none_for_a_missing_state_dir(tmp_path):
    assert launch_stamp.read(str(tmp_path / "nowhere")) is None


# --- observe ---------------------------------------------------------------------------------------

def test_observe_reports_the_objects_as_they_are(bottle):
    health = Health()
    seen = observe(bottle, health)
    assert seen["stamp"] == dict(bottle["objects"], digest="d1")
    assert seen["networks"] == {role: net.id for role, net in bottle["nets"].items()}
    assert seen["containers"] == {role: {"id": c.id, "running": True, "image": bottle["images"][role].id}
                                  for role, c in bottle["conts"].items()}
    assert seen["config_hash"] == bundle_config.config_hash(str(bottle["state"]))
    assert seen["health"] is True
    assert health.calls == [bottle["conts"]["bundle"]]  # the bundle container itself, once
    json.dumps(seen)  # the module returns it: plain data, no SDK object


def test_observe_config_hash_follows_the_files(bottle):
    before = observe(bottle)["config_hash"]
    (bottle["state"] / "bundle" / "egress.json").write_text('{"allowed_domains": ["example.org"]}\n')
    after = observe(bottle)
    assert after["config_hash"] == bundle_config.config_hash(str(bottle["state"])) != before
    (bottle["state"] / "private" / "egress" / "tokens.json").write_text('{"T": "other"}\n')
    assert observe(bottle)["config_hash"] not in (before, after["config_hash"])


def test_observe_reports_a_stopped_container(bottle):
    bottle["conts"]["agent"].attrs["State"]["Status"] = "exited"
    seen = observe(bottle)
    assert seen["containers"]["agent"] == {"id": bottle["conts"]["agent"].id, "running": False,
                                           "image": bottle["images"]["agent"].id}


def test_observe_without_a_stamp_looks_at_nothing(bottle):
    os.unlink(bottle["state"] / launch_stamp.STAMP)
    health = Health()
    seen = observe(bottle, health)
    assert seen == {"stamp": None, "networks": {}, "containers": {}, "config_hash": None, "extra": None,
                    "health": None}
    assert health.calls == []


def _recreate_network(b):
    old = b["nets"]["egress"]
    del b["engine"].networks[old.name]
    b["engine"].add_network(old.name)


def _remove_agent(b):
    del b["engine"].containers[naming.object_name(SLUG, "agent")]


def _recreate_agent(b):
    _remove_agent(b)
    add_container(b["engine"], "agent", b["images"]["agent"].id)


def _stop_bundle(b):
    b["conts"]["bundle"].attrs["State"]["Status"] = "exited"


def _edit_file(b):
    with open(b["state"] / "bundle" / "egress.json", "a") as handle:
        handle.write(" ")


def _add_private_file(b):
    (b["state"] / "private" / "egress" / "secrets.json").write_text("[]")


@pytest.mark.parametrize("change", [_recreate_network, _remove_agent, _recreate_agent, _stop_bundle, _edit_file,
                                    _add_private_file])
def test_observe_asks_no_health_when_anything_else_differs(bottle, change):
    change(bottle)
    health = Health()
    seen = observe(bottle, health)
    assert health.calls == [] and seen["health"] is None


def test_observe_asks_health_even_when_an_image_was_rebuilt(bottle):
    # The image is not part of what observe compares (is_current does, against the image cache).
    bottle["engine"].add_image("botbottle/agent:latest")
    health = Health(False)
    assert observe(bottle, health)["health"] is False and len(health.calls) == 1


@pytest.mark.parametrize("labels", [{}, {naming.LABEL_BOTTLE: "someone-else"}, None])
def test_observe_ignores_a_container_not_labelled_as_the_bottles(bottle, labels):
    name = naming.object_name(SLUG, "agent")
    del bottle["engine"].containers[name]
    add_container(bottle["engine"], "agent", bottle["images"]["agent"].id, labels={} if labels is None else labels)
    if labels is None:  # labels: null, as a container created without any reports them
        bottle["engine"].containers[name].attrs["Config"]["Labels"] = None
    health = Health()
    seen = observe(bottle, health)
    assert seen["containers"]["agent"] is None
    assert seen["containers"]["bundle"]["id"] == bottle["conts"]["bundle"].id
    assert health.calls == []


def test_observe_reports_missing_objects_as_none(bottle):
    _remove_agent(bottle)
    del bottle["engine"].networks[bottle["nets"]["internal"].name]
    seen = observe(bottle)
    assert seen["containers"]["agent"] is None and seen["networks"]["internal"] is None
    assert seen["networks"]["egress"] == bottle["nets"]["egress"].id


# --- is_current ------------------------------------------------------------------------------------

def current(b, digest="d1", images=None):
    return launch_stamp.is_current(observe(b), digest, b["image_ids"] if images is None else images)


def test_is_current_when_everything_matches(bottle):
    assert current(bottle) == (True, "")


def test_not_current_without_a_stamp(bottle):
    os.unlink(bottle["state"] / launch_stamp.STAMP)
    assert current(bottle) == (False, "no stamp of an earlier launch")
    assert launch_stamp.is_current(None, "d1", {}) == (False, "no stamp of an earlier launch")
    assert launch_stamp.is_current({}, "d1", {})[0] is False


def test_not_current_with_an_unreadable_stamp(bottle):
    (bottle["state"] / launch_stamp.STAMP).write_text("{")
    assert current(bottle) == (False, "no stamp of an earlier launch")


def test_not_current_with_another_digest(bottle):
    ok, why = current(bottle, digest="d2")
    assert not ok and "inputs" in why and "changed" in why


def test_not_current_when_a_network_was_recreated(bottle):
    _recreate_network(bottle)
    ok, why = current(bottle)
    assert not ok and "network" in why and "recreated" in why


def test_not_current_when_a_network_is_gone(bottle):
    del bottle["engine"].networks[bottle["nets"]["internal"].name]
    ok, why = current(bottle)
    assert not ok and "network" in why and "removed" in why


def test_not_current_when_a_container_is_gone(bottle):
    _remove_agent(bottle)
    ok, why = current(bottle)
    assert not ok and "agent container" in why and "removed" in why


def test_not_current_when_a_container_was_recreated(bottle):
    _recreate_agent(bottle)
    ok, why = current(bottle)
    assert not ok and "agent container" in why and "recreated" in why


def test_not_current_when_a_container_is_not_the_bottles(bottle):
    bottle["conts"]["bundle"].attrs["Config"]["Labels"] = {}
    ok, why = current(bottle)
    assert not ok and "bundle container" in why


@pytest.mark.parametrize("role", ["bundle", "agent"])
def test_not_current_when_a_container_is_stopped(bottle, role):
    bottle["conts"][role].attrs["State"]["Status"] = "exited"
    ok, why = current(bottle)
    assert not ok and why == "the %s container is not running" % role


@pytest.mark.parametrize("role", ["bundle", "agent"])
def test_not_current_when_an_image_was_rebuilt(bottle, role):
    rebuilt = bottle["engine"].add_image(bottle["images"][role].tags[0])
    ok, why = current(bottle, images=dict(bottle["image_ids"], **{role: rebuilt.id}))
    assert not ok and why == "the %s image was rebuilt" % role


def test_not_current_when_a_file_of_the_state_dir_changed(bottle):
    _edit_file(bottle)
    ok, why = current(bottle)
    assert not ok and "file of the state directory changed" in why


def test_not_current_when_a_private_file_was_removed(bottle):
    os.unlink(bottle["state"] / "private" / "egress" / "tokens.json")
    ok, why = current(bottle)
    assert not ok and "file of the state directory changed" in why


@pytest.mark.parametrize("answer", [False, None, "healthy"])
def test_not_current_when_the_bundle_is_unhealthy(bottle, answer):
    observed = launch_stamp.observe(bottle["engine"].client, SLUG, str(bottle["state"]), Health(answer))
    ok, why = launch_stamp.is_current(observed, "d1", bottle["image_ids"])
    assert not ok and "not healthy" in why


def test_is_current_checks_in_order_the_first_cause_is_named(bottle):
    # Another digest and a stopped agent: the digest is named (the inputs come first).
    bottle["conts"]["agent"].attrs["State"]["Status"] = "exited"
    assert "inputs" in current(bottle, digest="d2")[1]


# --- smolmachines: the egress network, the bundle, and what else it records (extra) ------------------

VM_EXTRA = {"machine": {"name": "bb-demo-rr1-agent", "state": "running", "image": "local:ab", "cpus": 2,
                        "memory_mib": 1024, "allowed_cidrs": [], "labels": {"io.botbottle.bottle": SLUG}},
            "relay": {"pid": 4242, "current": True}, "agent_image": "sha256:agent"}


@pytest.fixture
def vm_bottle(bottle):
    """The docker bottle's fixture as a smolmachines bottle: no internal network, no agent container."""
    del bottle["engine"].containers[naming.object_name(SLUG, "agent")]
    objects = {"networks": {"egress": bottle["nets"]["egress"].id},
               "containers": {"bundle": {"id": bottle["conts"]["bundle"].id}},
               "config_hash": bundle_config.config_hash(str(bottle["state"])),
               "extra": json.loads(json.dumps(VM_EXTRA))}
    launch_stamp.write(str(bottle["state"]), "d1", objects)
    return bottle


def vm_current(b, extra):
    observed = launch_stamp.observe(b["engine"].client, SLUG, str(b["state"]), Health(), launch_stamp.VM_NETWORKS,
                                    launch_stamp.VM_CONTAINERS, extra=lambda: extra)
    return launch_stamp.is_current(observed, "d1", {"bundle": b["image_ids"]["bundle"]})


def test_a_vm_bottle_as_it_was_left_is_current(vm_bottle):
    assert vm_current(vm_bottle, json.loads(json.dumps(VM_EXTRA))) == (True, "")


@pytest.mark.parametrize("key, change, why", [
    ("machine", {"state": "stopped"}, "the VM was removed, recreated, resized or stopped"),
    ("machine", {"memory_mib": 2048}, "the VM was removed, recreated, resized or stopped"),
    ("relay", {"current": False}, "the socket relay does not run as the launch left it"),
    ("relay", {"pid": 4243}, "the socket relay does not run as the launch left it"),
])
def test_a_vm_bottle_is_not_current_when_its_vm_or_relay_changed(vm_bottle, key, change, why):
    extra = json.loads(json.dumps(VM_EXTRA))
    extra[key].update(change)
    assert vm_current(vm_bottle, extra) == (False, why)


def test_a_vm_bottle_is_not_current_when_its_vm_is_gone_or_its_image_rebuilt(vm_bottle):
    assert vm_current(vm_bottle, dict(VM_EXTRA, machine={})) == (False, "the VM was removed, recreated, resized or stopped")
    assert vm_current(vm_bottle, dict(VM_EXTRA, agent_image="sha256:new")) == (False, "the agent image was rebuilt")


def test_the_extra_is_only_looked_at_with_a_stamp(vm_bottle):
    os.unlink(vm_bottle["state"] / launch_stamp.STAMP)
    calls = []
    launch_stamp.observe(vm_bottle["engine"].client, SLUG, str(vm_bottle["state"]), Health(), launch_stamp.VM_NETWORKS,
                         launch_stamp.VM_CONTAINERS, extra=lambda: calls.append(1))
    assert calls == []
