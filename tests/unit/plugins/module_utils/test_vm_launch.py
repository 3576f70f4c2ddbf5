# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_launch.look: what the smolmachines launch finds on this host before anything is created - the smolvm CLI,
guest boot, the bottle's loopback address, wildcard listeners, and what needs root (macOS's lo0 alias) - each
reported with the fix, nothing created. The host is faked at the seams (smolvm.host_report, loopback.for_bottle,
host_listeners.here, platform.system, ifconfig)."""

from __future__ import annotations

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import (
    host_listeners, loopback, smolvm, vm_launch, vm_machine)
from ansible_collections.botbottle.bottle.plugins.module_utils.phases import PhaseFailed

MACHINE = {"name": "bb-vm1-agent", "state": "created", "image": "local:ab", "cpus": 2, "memory_mib": 1024,
           "allowed_cidrs": [], "labels": {"io.botbottle.bottle": "vm1"}}


class Module:
    def __init__(self, boot=True, allow=False, ifconfig=(0, "lo0: flags\n\tinet 127.0.0.1 netmask 0xff000000 \n", "")):
        self.params = {"boot": boot, "allow_wildcard_listeners": allow, "loopback_pool": "127.77.0.0/16",
                       "machine": {"smolvm_path": None, "state_dir": None}}
        self.ifconfig, self.commands = ifconfig, []

    def run_command(self, argv, **kwargs):
        self.commands.append(argv)
        return self.ifconfig

    def get_bin_path(self, name):
        return None


@pytest.fixture
def host(monkeypatch):
    state = {"report": {"available": True, "path": "/usr/bin/smolvm", "reason": None,
                        "boot": {"supported": True, "reason": "KVM"}},
             "machines": [MACHINE], "system": "Linux", "listeners": [], "error": None}

    def host_report(module, path=None, state_dir=None, look=True):
        if state["error"]:
            raise smolvm.SmolvmError(state["error"])
        return state["report"], state["machines"]
    monkeypatch.setattr(smolvm, "host_report", host_report)
    monkeypatch.setattr(loopback, "for_bottle", lambda client, slug, root, pool, machines: ("127.77.0.9", "allocated"))
    monkeypatch.setattr(host_listeners, "here", lambda module: state["listeners"])
    monkeypatch.setattr(vm_launch.platform, "system", lambda: state["system"])
    return state


def look(module):
    return vm_launch.look(module, None, "vm1", "/state")


def test_a_host_that_can_launch(host):
    found = look(Module())
    assert found["host_errors"] == [] and found["root_steps"] == [] and found["notes"] == []
    assert found["address"] == "127.77.0.9" and found["machine"] == MACHINE


def test_no_smolvm_names_the_fix(host):
    host["report"] = dict(host["report"], available=False, reason="smolvm is not on PATH: install it")
    found = look(Module())
    assert found["host_errors"] == ["the smolmachines backend needs the smolvm CLI on this host: smolvm is not on "
                                    "PATH: install it"]
    assert found["address"] is None


def test_a_smolvm_that_cannot_list(host):
    host["error"] = "machine ls exited 2"
    assert "smolvm machine ls failed on this host: machine ls exited 2" in look(Module())["host_errors"][0]


def test_a_host_that_cannot_boot_refuses_a_boot_and_says_how_to_create_only(host):
    host["report"] = dict(host["report"], boot={"supported": False, "reason": "this host's KVM is PVM"})
    error, = look(Module())["host_errors"]
    assert "cannot boot smolvm guests: this host's KVM is PVM" in error
    assert "bottle_backend=docker" in error and "bottle_smolvm_boot=false" in error
    found = look(Module(boot=False))
    assert found["host_errors"] == []
    assert found["notes"] == ["boot is false: bottle vm1's VM is created but not started (this host's KVM is PVM); "
                              "it is neither booted nor provisioned"]


def test_wildcard_listeners_are_refused_unless_allowed(host):
    host["listeners"] = [host_listeners.Listener("tcp", "0.0.0.0", 5432, "inode 1")]
    error, = look(Module())["host_errors"]
    assert "0.0.0.0:5432" in error and "bottle_smolvm_wildcard_ack" in error
    assert look(Module(allow=True))["host_errors"] == []


def test_macos_without_the_alias_asks_for_root_and_does_nothing_else(host):
    host["system"] = "Darwin"
    module = Module()
    found = look(module)
    assert found["root_steps"] == [{"step": "lo0_alias", "address": "127.77.0.9"}]
    assert module.commands == [["ifconfig", "lo0"]]
    with_alias = Module(ifconfig=(0, "lo0:\n\tinet 127.0.0.1 netmask 0xff000000 \n\tinet 127.77.0.9 netmask 0xff000000 \n", ""))
    assert look(with_alias)["root_steps"] == []
    # Linux: no ifconfig at all.
    host["system"] = "Linux"
    linux = Module()
    assert look(linux)["root_steps"] == [] and linux.commands == []


def test_an_ifconfig_that_fails_fails_the_launch(host):
    host["system"] = "Darwin"
    with pytest.raises(PhaseFailed, match="ifconfig lo0 failed"):
        look(Module(ifconfig=(1, "", "no such interface")))


def test_what_the_stamp_records_right_after_a_launch_is_what_a_rerun_finds(monkeypatch):
    done = {"machine": {"machine": MACHINE, "name": "bb-vm1-agent"}, "relay": {"pid": 77},
            "archive": {"image_id": "sha256:agent"}}
    monkeypatch.setattr(vm_launch, "_relay_status", lambda state_dir, address, daemons: {"pid": 77, "current": True})

    class Image:
        id = "sha256:agent"
    monkeypatch.setattr(vm_launch, "find_image", lambda client, name: Image())
    now = vm_launch.extra_now(None, "/state/vm1", "127.77.0.9", ["egress"], "botbottle/agent:latest", MACHINE)
    assert now == vm_launch.extra_done(done)
    assert now["machine"] == vm_machine.describe(MACHINE)
