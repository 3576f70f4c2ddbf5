# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_launch's phases (module_utils/launch_phases.py): every option of each phase's module is either the
caller's (a nested option of bottle_launch, validated by Ansible) or wired, never both; the wiring fills what
the module needs; the argument spec is one Ansible accepts and masks the secrets of."""

from __future__ import annotations

import pytest
from ansible.module_utils.common.arg_spec import ModuleArgumentSpecValidator

from ansible_collections.botbottle.bottle.plugins.module_utils import launch_phases
from ansible_collections.botbottle.bottle.plugins.module_utils.phases import nested, with_defaults

EXPECTED_WIRED = {
    "state": {"slug", "state", "archive_root", "archive_keep_days", "archive_keep"},
    "network": {"slug", "agent", "state", "internal", "backend"},
    "bundle": {"slug", "agent", "state", "backend", "internal_network", "internal_ip", "egress_network",
               "publish_address", "config_hash", "wait"},
    "container": {"slug", "agent", "state", "network", "ip", "proxy_url"},
    "provision": {"transport", "target", "bundle", "gate_host", "smolvm_path", "smolvm_state_dir"},
    "relay": {"slug", "state_root", "address", "daemons", "state"},
    "archive": set(),
    "machine": {"name", "slug", "agent", "state", "image", "allow_cidrs", "mount_sockets", "command", "user"},
}


def test_each_option_of_a_phase_is_the_callers_or_wired_never_both():
    assert [phase.name for phase in launch_phases.PLANS["docker"]] == [
        "state", "network", "bundle", "container", "provision"]
    assert [phase.name for phase in launch_phases.PLANS["smolmachines"]] == [
        "state", "network", "bundle", "relay", "archive", "machine", "provision"]
    for plan in launch_phases.PLANS.values():
        for phase in plan:
            given = set(phase.nested_spec())
            assert set(phase.wired) == EXPECTED_WIRED[phase.name], phase.name
            assert not given & set(phase.wired)
            assert given | set(phase.wired) == set(phase.spec), phase.name
    assert set(launch_phases.OPTIONS) == set(EXPECTED_WIRED)


def test_a_phase_of_both_plans_takes_the_same_options_from_the_caller():
    # One nested spec per option of bottle_launch, whatever the backend: the same options wired in both plans.
    for name in ("state", "network", "bundle", "provision"):
        docker, vm = launch_phases.phase_of("docker", name), launch_phases.phase_of("smolmachines", name)
        assert set(docker.wired) == set(vm.wired), name
        assert docker.nested_spec() == vm.nested_spec(), name


def test_the_smolmachines_wiring():
    run = launch_phases.Run("vm1", "a1", policy={}, address="127.77.0.9", boot=False)
    run.state_root = "/s"
    run.egress = {"name": "bb-vm1-net-out"}
    run.config_hash, run.daemons = "h", ["egress", "git-gate", "supervise"]
    state = launch_phases.phase_of("smolmachines", "state").options(run, {"policy": {}, "meta": {"agent": "a1"}})
    assert state["meta"] == {"agent": "a1", "loopback_address": "127.77.0.9"}
    network = launch_phases.phase_of("smolmachines", "network").options(run, {})
    assert network["internal"] is False and network["backend"] == "smolmachines"
    bundle = launch_phases.phase_of("smolmachines", "bundle").options(run, {"image": "b"})
    assert bundle["publish_address"] == "127.77.0.9" and bundle["internal_network"] is None
    assert bundle["backend"] == "smolmachines" and bundle["wait"] is True
    relay = launch_phases.phase_of("smolmachines", "relay").options(run, {"python": None})
    assert relay["address"] == "127.77.0.9" and relay["daemons"] == run.daemons and relay["state_root"] == "/s"
    run.relay = {"mounts": [{"host": "/s/vm1/sockets/proxy.sock", "guest": "/run/bottle/proxy.sock"}],
                 "guest_command": ["python3", "relay"], "guest_env": {"HTTP_PROXY": "http://127.0.0.1:8888"}}
    run.archive = {"path": "/c/abc.tar"}
    machine = launch_phases.phase_of("smolmachines", "machine").options(run, {"env": {"A": "1"}})
    assert machine["state"] == "present" and machine["image"] == "/c/abc.tar" and machine["allow_cidrs"] == []
    assert machine["env"] == {"A": "1", "HTTP_PROXY": "http://127.0.0.1:8888"} and machine["user"] == "root"
    assert machine["mount_sockets"] == run.relay["mounts"] and machine["command"] == ["python3", "relay"]
    run.boot = True
    assert launch_phases.phase_of("smolmachines", "machine").options(run, {"env": {}})["state"] == "started"
    run.machine_name, run.smolvm_path = "bb-vm1-agent", "/usr/bin/smolvm"
    run.endpoints = {"address": "127.0.0.1", "supervise_url": "http://127.0.0.1:9100/mcp"}
    provision = launch_phases.phase_of("smolmachines", "provision").options(
        run, {"mcp_servers": {}, "git_gate": {"repos": []}})
    assert provision["transport"] == "smolvm" and provision["target"] == "bb-vm1-agent"
    assert provision["bundle"] is None and provision["gate_host"] == "127.0.0.1"
    assert provision["smolvm_path"] == "/usr/bin/smolvm"
    assert provision["mcp_servers"] == {"supervise": {"type": "http", "url": "http://127.0.0.1:9100/mcp"}}


def test_adjusted_options_stay_the_callers():
    assert "policy" in launch_phases.BY_NAME["state"].nested_spec()
    assert launch_phases.BY_NAME["state"].nested_spec()["policy"]["required"] is True
    assert "mcp_servers" in launch_phases.BY_NAME["provision"].nested_spec()


def test_nested_refuses_a_name_the_spec_does_not_have():
    with pytest.raises(ValueError, match="not options of this phase: nope"):
        nested({"a": {"type": "str"}}, ("nope",))


def test_the_wiring_fills_what_the_phase_needs_from_the_run():
    run = launch_phases.Run("demo", "demo", policy={"allowed_domains": ["x.org"]})
    run.internal = {"name": "bb-demo-net-int", "bundle_ip": "10.0.0.2", "agent_ip": "10.0.0.3"}
    run.egress = {"name": "bb-demo-net-out"}
    run.config_hash = "h1"
    run.endpoints = {"address": "10.0.0.2", "proxy_url": "http://10.0.0.2:8888",
                     "supervise_url": "http://10.0.0.2:9100/mcp"}
    run.daemons, run.bundle_name, run.agent_name = ["egress", "supervise"], "bb-demo-bundle", "bb-demo-agent"
    bundle = launch_phases.BY_NAME["bundle"].options(run, {"image": "b"})
    assert bundle == dict(image="b", slug="demo", agent="demo", state="present", internal_network="bb-demo-net-int",
                          internal_ip="10.0.0.2", egress_network="bb-demo-net-out", config_hash="h1", wait=False,
                          backend="docker", publish_address=None)
    state = launch_phases.BY_NAME["state"].options(run, {"policy": {"allowed_domains": []}, "meta": {"agent": "demo"}})
    assert state["meta"] == {"agent": "demo"}  # docker: no loopback address
    assert state["policy"] == {"allowed_domains": ["x.org"]} and state["slug"] == "demo"
    provision = launch_phases.BY_NAME["provision"].options(run, {"mcp_servers": {"x": {"type": "http", "url": "u"}}})
    assert provision["target"] == "bb-demo-agent" and provision["bundle"] == "bb-demo-bundle"
    assert provision["gate_host"] is None  # no git_gate given
    assert provision["mcp_servers"] == {"x": {"type": "http", "url": "u"},
                                        "supervise": {"type": "http", "url": "http://10.0.0.2:9100/mcp"}}
    gated = launch_phases.BY_NAME["provision"].options(run, {"mcp_servers": {}, "git_gate": {"repos": []}})
    assert gated["gate_host"] == "10.0.0.2"
    run.daemons = ["egress"]
    assert launch_phases.BY_NAME["provision"].options(run, {"mcp_servers": {}})["mcp_servers"] == {}


def test_the_preview_stands_for_what_the_phases_before_give():
    preview = launch_phases.Run.preview("demo", "demo", ["egress"])
    wired = launch_phases.BY_NAME["provision"].options(preview, {"mcp_servers": {}, "git_gate": {"repos": []}})
    assert wired["gate_host"] == launch_phases.WIRED_LATER


def test_ansible_validates_the_nested_options_and_masks_the_secrets():
    spec = launch_phases.argument_spec()
    params = {"state": {"policy": {}, "tokens": {"GH": "tok-123456"}}, "bundle": {"image": "b", "env": {"K": "v-99"}},
              "container": {"image": "a", "secret_env": {"DB": "pw-123456"}}}
    result = ModuleArgumentSpecValidator(spec).validate(params)
    assert not result.error_messages
    values = result.validated_parameters
    assert values["network"]["prefix"] == 28 and values["provision"]["agent_user"] == "agent"
    assert values["state"]["options"]["supervise_enabled"] is True
    assert {"tok-123456", "v-99", "pw-123456"} <= result._no_log_values  # what AnsibleModule masks
    bad = ModuleArgumentSpecValidator(spec).validate(dict(params, container={"image": "a", "ip": "10.0.0.3"}))
    assert "container.ip" in bad.error_messages[0]


def test_with_defaults_fills_a_wired_phases_defaults():
    from ansible_collections.botbottle.bottle.plugins.module_utils.bottle_networks import NETWORK_SPEC
    assert with_defaults(NETWORK_SPEC, {"slug": "demo", "state": "absent"})["prefix"] == 28
    with pytest.raises(ValueError, match="slug"):
        with_defaults(NETWORK_SPEC, {"state": "absent"})
