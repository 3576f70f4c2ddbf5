# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_launch on the smolmachines backend: what it looks at on this host, its phases, its stamp.

The plan (module_utils/launch_phases.py ``SMOLMACHINES``) runs, in one module call: the state
directory (with the bottle's loopback address in its meta.json), the way-out network, the bundle
publishing on that address, the bottle's host socket relay, the agent image as an archive, the VM
(no network; the relay's sockets mounted; the guest relay its workload) and, when the VM boots, the
agent's files over ``smolvm machine exec``. What the role did in YAML before (launch_smolmachines.yml,
preflight_smolmachines.yml) is here, with the same checks and messages.

What needs root is not done here (a module call runs as the launching user): on macOS, lo0 needs an
alias for the loopback address before Docker can publish on it. ``look`` reports it in
``root_steps`` and nothing is created; the role adds the alias (become) and calls again.

API:
- ``BUNDLE_PORTS``: the agent-facing ports (proxy, git-gate, supervise) the VM reaches.
- ``look(module, client, slug, state_root)``: before anything is created - ``{smolvm, machine,
  address, host_errors, notes, root_steps}`` (``machine``: the VM as ``machine ls`` lists it, or None).
- ``launch(module, client, run, phase, seconds, done)``: the phases after the state directory
  (``phase(run, name)`` gives a phase's options); fills ``done`` ({phase: result}).
- ``extra_now(module, client, state_dir, address, found)``: what the stamp records of the VM, the
  relay and the agent image, as they are now; ``extra_done(done)``: the same, from a launch's results.
"""

from __future__ import annotations

import platform

from ansible_collections.botbottle.bottle.plugins.module_utils import (
    host_listeners, image_archive, loopback, naming, provisioning, relay_process, smolvm, socket_relay, vm_machine)
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import DockerException, find_image
from ansible_collections.botbottle.bottle.plugins.module_utils.phases import PhaseFailed

BUNDLE_PORTS = (8888, 9418, 9100)


def lo0_has(module, address):
    """Whether macOS's lo0 already carries ``address`` (``ifconfig lo0`` needs no root to read)."""
    rc, out, err = module.run_command(["ifconfig", "lo0"])
    if rc != 0:
        raise PhaseFailed("state", "ifconfig lo0 failed (rc %d): %s" % (rc, err.strip()), {})
    return ("inet %s " % address) in out


def look(module, client, slug, state_root):
    p = module.params
    machine = p["machine"] or {}
    found = dict(smolvm=None, machine=None, address=None, host_errors=[], notes=[], root_steps=[])
    try:
        report, machines = smolvm.host_report(module, machine.get("smolvm_path"), machine.get("state_dir"))
    except smolvm.SmolvmError as exc:
        found["host_errors"].append("smolvm machine ls failed on this host: %s (fix smolvm, or use the docker "
                                    "backend)" % exc)
        return found
    found["smolvm"] = report
    if not report["available"]:
        found["host_errors"].append("the smolmachines backend needs the smolvm CLI on this host: %s"
                                    % report["reason"])
        return found
    name = naming.object_name(slug, "agent")
    found["machine"] = next((m for m in machines if m.get("name") == name), None)
    # Decided from the host (no /dev/kvm, a PVM-only KVM, /dev/kvm not openable), never by waiting for a guest.
    if p["boot"] and not report["boot"]["supported"]:
        found["host_errors"].append(
            "bottle %s: this host cannot boot smolvm guests: %s. Launch it where guests boot, use the docker "
            "backend (-e bottle_backend=docker), or set boot=false (-e bottle_smolvm_boot=false) to create the "
            "bundle and the VM without starting it (no agent runs then)" % (slug, report["boot"]["reason"]))
    elif not p["boot"]:
        found["notes"].append("boot is false: bottle %s's VM is created but not started (%s); it is neither "
                              "booted nor provisioned" % (slug, report["boot"]["reason"] or "not asked to"))
    try:
        found["address"], _source = loopback.for_bottle(
            client, slug, state_root, p["loopback_pool"], machines)
    except loopback.LoopbackError as exc:
        found["host_errors"].append("loopback_pool: %s" % exc)
        return found
    # Host services on a wildcard address answer at the bottle's address too.
    if not p["allow_wildcard_listeners"]:
        reach = host_listeners.reachable(host_listeners.here(module), found["address"], list(BUNDLE_PORTS))
        if reach:
            found["host_errors"].append(host_listeners.refusal(slug, found["address"], reach))
    # macOS routes only 127.0.0.1 to lo0: any other 127/8 address needs an alias (root) before Docker publishes.
    if not found["host_errors"] and platform.system() == "Darwin" and not lo0_has(module, found["address"]):
        found["root_steps"].append({"step": "lo0_alias", "address": found["address"]})
    return found


def _relay_status(state_dir, address, daemons):
    relay = relay_process.Relay(state_dir)
    config = socket_relay.host_config(relay.state_dir, address, socket_relay.services_for(daemons))
    status = relay.status(config, relay_process.relay_source())
    return {"pid": status["pid"], "current": bool(status["current"])}


def extra_now(client, state_dir, address, daemons, agent_image, machine):
    """The VM as ``machine ls`` lists it, the relay as it runs and the agent image's id, now."""
    image = find_image(client, agent_image) if agent_image else None
    return {"machine": vm_machine.describe(machine),
            "relay": _relay_status(state_dir, address, daemons),
            "agent_image": image.id if image is not None else None}


def extra_done(done):
    """What ``extra_now`` finds right after a launch that left ``done``."""
    return {"machine": vm_machine.describe(done["machine"]["machine"]),
            "relay": {"pid": done["relay"]["pid"], "current": True},
            "agent_image": done["archive"]["image_id"]}


def launch(module, client, run, phase, seconds, done, took):
    """The phases after the state directory (``done["state"]``), in order."""
    from ansible_collections.botbottle.bottle.plugins.module_utils.bottle_networks import NetworkManager
    from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_container import BundleManager
    from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import get_docker_client
    from ansible_collections.botbottle.bottle.plugins.module_utils.transport_factory import get_transport

    networks = NetworkManager(phase(run, "network"), client)
    networks.present()
    done["network"] = networks.result
    run.egress = networks.result["networks"]["egress"]
    took("network")

    bundle = BundleManager(phase(run, "bundle"), client)
    run.daemons, run.bundle_name = bundle.p["daemons"], bundle.name
    bundle.present()
    done["bundle"] = bundle.result
    took("bundle")

    done["relay"] = relay_process.run(phase(run, "relay"))
    run.relay = done["relay"]
    # As the guest sees them: its own loopback, where its relay listens.
    run.endpoints = dict(done["relay"]["guest_endpoints"])
    took("relay")

    archive = phase(run, "archive")
    try:
        done["archive"] = image_archive.run(archive, client)
    except (DockerException, OSError) as exc:
        raise PhaseFailed("archive", image_archive.failure_message(archive.params, exc), {})
    run.archive = done["archive"]
    took("archive")

    # In check mode a new image has no archive yet for smolvm_machine to hash: it would be written.
    if module.check_mode and not done["archive"]["cached"]:
        done["machine"] = dict(changed=True, skipped=True, name=naming.object_name(run.slug, "agent"),
                               msg="the agent image's archive would be written first")
        return
    machine = phase(run, "machine")
    done["machine"] = vm_machine.run(machine)
    run.machine_name = done["machine"]["name"]
    run.smolvm_path, run.smolvm_state_dir = done["machine"]["smolvm_path"], machine.params["state_dir"]
    took("machine")

    # A VM only created (boot=false) runs no agent; in check mode a new one has nothing to look into.
    if run.boot and not (module.check_mode and done["machine"]["changed"]):
        waits = {}
        done["provision"] = provisioning.run(phase(run, "provision"), get_docker_client, get_transport,
                                             client=client, timings=waits)
        took("provision")
        seconds.update(("provision_" + k, v) for k, v in waits.items())
