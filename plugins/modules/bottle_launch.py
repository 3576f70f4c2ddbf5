#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_launch
short_description: A docker launch in one step - state directory, networks, bundle, agent, provisioning
version_added: 0.4.0
description:
  - Runs, in one module call, what M(botbottle.bottle.bottle_state), M(botbottle.bottle.bottle_network),
    M(botbottle.bottle.sidecar_bundle), M(botbottle.bottle.bottle_agent) and M(botbottle.bottle.bottle_provision)
    do for a docker-backend bottle, with the same code (their logic lives in module_utils) and the same checks,
    in this order - the state directory; the networks; the bundle, started without waiting for its health; the
    agent container; the agent's files, which wait for the bundle's CA and then for every daemon to answer healthy.
  - Each phase takes the options of its module, less those this module wires from the phases before it - the
    bundle's networks and address come from the networks, the agent's network, address and proxy from the
    networks and the bundle, the bundle's configuration hash from the state directory, the provisioning's
    target, bundle and git-gate host from the agent and the bundle.
    When the bundle runs supervise, the agent gets supervise's MCP server too.
  - A bad option of a phase fails naming it as V(<phase>: <what is wrong>), before anything is created.
  - In check mode the provisioning of an agent container that does not exist yet is skipped, as there is
    nothing to look into.
  - When every phase succeeded (not in check mode) and O(stamp) is given, it records the stamp of the launch in
    the state directory (module_utils/launch_stamp.py) - the digest and the objects left running - so that a rerun
    with the same inputs can see from M(botbottle.bottle.bottle_info) alone that nothing is to be done.
  - Each module on its own is still what the smolmachines backend and custom plays use.
author: botbottle developers (@botbottle)
extends_documentation_fragment:
  - botbottle.bottle.docker
attributes:
  check_mode:
    description: Each phase reports what it would do and touches nothing; no stamp is written.
    support: full
  diff_mode:
    description: The phases' own diffs, one after the other, each headed by its phase.
    support: full
  idempotent:
    description: Each phase reads back and compares; a second run with the same options changes nothing.
    support: full
options:
  slug:
    description: The bottle's slug.
    type: str
    required: true
  agent:
    description: The agent's name (a label of every object).
    type: str
    required: true
  stamp:
    description:
      - The digest of the launch's inputs (the C(botbottle.bottle.launch_digest) filter). Omitted, no stamp is
        written and a stamp of an earlier launch is removed.
    type: str
  state:
    description:
      - The options of M(botbottle.bottle.bottle_state) but O(slug) and C(state) (and its archive options, which
        are for removal); C(policy) is required.
    type: dict
    required: true
  network:
    description: The options of M(botbottle.bottle.bottle_network) but O(slug), O(agent) and C(state).
    type: dict
    default: {}
  bundle:
    description:
      - The options of M(botbottle.bottle.sidecar_bundle) but O(slug), O(agent), C(state), C(internal_network),
        C(internal_ip), C(egress_network), C(config_hash) and C(wait) (the provisioning waits).
    type: dict
    required: true
  container:
    description:
      - The options of M(botbottle.bottle.bottle_agent) but O(slug), O(agent), C(state), C(network), C(ip) and
        C(proxy_url).
    type: dict
    required: true
  provision:
    description:
      - The options of M(botbottle.bottle.bottle_provision) but C(transport), C(target), C(bundle) and
        C(gate_host).
    type: dict
    default: {}
notes:
  - Values of the phases' secret options (the agent's C(secret_env), the bundle's C(env)) are masked in
    everything the module returns.
seealso:
  - module: botbottle.bottle.bottle_state
  - module: botbottle.bottle.bottle_network
  - module: botbottle.bottle.sidecar_bundle
  - module: botbottle.bottle.bottle_agent
  - module: botbottle.bottle.bottle_provision
"""

EXAMPLES = r"""
- name: Launch bottle demo
  botbottle.bottle.bottle_launch:
    slug: demo
    agent: demo
    stamp: "{{ bottle_launch_digest }}"
    state:
      policy: {allowed_domains: [pypi.org]}
      meta: {agent: demo}
    bundle:
      image: botbottle/bundle:latest
      daemons: [egress, supervise]
      mounts:
        - {source: ~/.bot-bottle/state/demo/bundle, target: /etc/bottle, read_only: true}
    container:
      image: botbottle/agent:latest
    provision:
      ca_cert_path: ~/.bot-bottle/state/demo/ca/bottle-ca.pem
      prompt: Work in /workspace.
  register: launched
"""

RETURN = r"""
state:
  description: What the state phase returned (M(botbottle.bottle.bottle_state)'s result), with C(config_hash).
  returned: always
  type: dict
network:
  description: What the networks phase returned (M(botbottle.bottle.bottle_network)'s result).
  returned: always
  type: dict
bundle:
  description: What the bundle phase returned (M(botbottle.bottle.sidecar_bundle)'s result), with C(endpoints).
  returned: always
  type: dict
container:
  description: What the agent phase returned (M(botbottle.bottle.bottle_agent)'s result).
  returned: always
  type: dict
provision:
  description: What the provisioning phase returned (M(botbottle.bottle.bottle_provision)'s result).
  returned: unless skipped in check mode
  type: dict
seconds:
  description: How long each phase took, in seconds (where a launch's time goes).
  returned: always
  type: dict
  sample: {state: 0.01, network: 0.21, bundle and container: 0.45, provision: 1.2, provision_ca_wait: 0.1, provision_files: 0.4,
           provision_health_wait: 0.7}
stamped:
  description: Whether the stamp of this launch was written.
  returned: always
  type: bool
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils import launch_stamp, naming, provisioning, state_write
from ansible_collections.botbottle.bottle.plugins.module_utils.agent_container import AGENT_SPEC, AgentManager
from ansible_collections.botbottle.bottle.plugins.module_utils.bottle_networks import NETWORK_SPEC, NetworkManager
from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_container import BUNDLE_SPEC, BundleManager
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, DockerException, get_docker_client)
from ansible_collections.botbottle.bottle.plugins.module_utils.phases import Phase, PhaseFailed, merge_diffs
from ansible_collections.botbottle.bottle.plugins.module_utils.provisioning import PROVISION_SPEC
from ansible_collections.botbottle.bottle.plugins.module_utils.state_write import STATE_SPEC
from ansible_collections.botbottle.bottle.plugins.module_utils.transport_factory import get_transport

# The options each phase gets from this module or the phases before it, never from the caller.
WIRED = {
    "state": ("slug", "state", "archive_root", "archive_keep_days", "archive_keep"),
    "network": ("slug", "agent", "state"),
    "bundle": ("slug", "agent", "state", "internal_network", "internal_ip", "egress_network", "config_hash", "wait"),
    "container": ("slug", "agent", "state", "network", "ip", "proxy_url"),
    "provision": ("transport", "target", "bundle", "gate_host"),
}


def phase(module, name, spec, wired):
    given = dict(module.params[name] or {})
    clash = sorted(set(given) & set(WIRED[name]))
    if clash:
        module.fail_json(msg="%s.%s is set by bottle_launch itself: remove it from %s" % (name, clash[0], name))
    given.update(wired)
    # Failures raise (PhaseFailed): the bundle and the agent run side by side, and only main() fails the module.
    return Phase(module, name, spec, given, raise_failures=True)


def launch(module, client, seconds):
    p = module.params
    done = {}
    clock = [time.monotonic()]

    def took(name):
        now = time.monotonic()
        seconds[name] = round(now - clock[0], 3)
        clock[0] = now
    owner = dict(slug=p["slug"], agent=p["agent"], state="present")

    state = phase(module, "state", STATE_SPEC, dict(slug=p["slug"], state="present"))
    if not state.params["policy"]:
        module.fail_json(msg="state.policy is required: pass the bottle's resolved policy")
    done["state"] = state_write.present(state)
    took("state")

    networks = NetworkManager(phase(module, "network", NETWORK_SPEC, owner), client)
    networks.present()
    done["network"] = networks.result
    took("network")
    internal, egress = networks.result["networks"]["internal"], networks.result["networks"]["egress"]

    bundle = BundleManager(phase(module, "bundle", BUNDLE_SPEC, dict(
        owner, internal_network=internal["name"], internal_ip=internal["bundle_ip"], egress_network=egress["name"],
        config_hash=done["state"]["config_hash"], wait=False)), client)
    # The agent reaches the bundle at its pinned address: known before the bundle exists.
    endpoints = bundle.endpoints(internal["bundle_ip"])
    agent = AgentManager(phase(module, "container", AGENT_SPEC, dict(
        owner, network=internal["name"], ip=internal["agent_ip"], proxy_url=endpoints.get("proxy_url"))), client)
    # Both containers are made side by side (each only needs the networks); a failure of either is raised
    # once both are done.
    with ThreadPoolExecutor(max_workers=1) as pool:
        making_agent = pool.submit(agent.present)
        bundle.present()
        making_agent.result()
    done["bundle"], done["container"] = bundle.result, agent.result
    took("bundle and container")

    # In check mode an agent that is not there yet has nothing to look into.
    if not (module.check_mode and agent.result["changed"]):
        given = module.params["provision"] or {}
        wired = dict(transport="docker", target=agent.name, bundle=bundle.name)
        if given.get("git_gate"):
            wired["gate_host"] = endpoints.get("address")
        if "supervise" in bundle.p["daemons"]:
            wired["mcp_servers"] = dict(given.get("mcp_servers") or {},
                                        supervise={"type": "http", "url": endpoints.get("supervise_url")})
        step = Phase(module, "provision", PROVISION_SPEC, dict(given, **wired), raise_failures=True)
        provisioning.check_params(step)
        waits = {}
        done["provision"] = provisioning.run(step, get_docker_client, get_transport, client=client, timings=waits)
        took("provision")
        seconds.update(("provision_" + k, v) for k, v in waits.items())
    return done, networks, bundle, agent


def stamp(module, state_dir, networks, bundle, agent):
    """Record the launch (or, without a digest, forget an earlier one)."""
    p = module.params
    if not p["stamp"]:
        try:
            os.unlink(os.path.join(state_dir, launch_stamp.STAMP))
        except FileNotFoundError:
            pass
        return False
    from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config
    objects = {
        "networks": {role: net["id"] for role, net in networks.result["networks"].items()},
        "containers": {"bundle": {"id": bundle.container.id}, "agent": {"id": agent.container.id}},
        "config_hash": bundle_config.config_hash(state_dir),
    }
    launch_stamp.write(state_dir, p["stamp"], objects)
    return True


def main():
    spec = dict(
        slug=dict(type="str", required=True),
        agent=dict(type="str", required=True),
        stamp=dict(type="str"),
        state=dict(type="dict", required=True),
        network=dict(type="dict", default={}),
        bundle=dict(type="dict", required=True),
        container=dict(type="dict", required=True),
        provision=dict(type="dict", default={}),
    )
    spec.update(DOCKER_COMMON_ARGS)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    error = naming.slug_error(module.params["slug"])
    if error:
        module.fail_json(msg="slug: " + error)
    client = get_docker_client(module)
    try:
        seconds = {}
        done, networks, bundle, agent = launch(module, client, seconds)
        stamped = False if module.check_mode else stamp(module, done["state"]["path"], networks, bundle, agent)
    except PhaseFailed as exc:
        exc.fail(module)
    except DockerException as exc:
        module.fail_json(msg="docker engine error while launching bottle %s: %s" % (module.params["slug"], exc))
    result = dict(done, stamped=stamped, seconds=seconds, changed=any(r.get("changed") for r in done.values()))
    diffs = merge_diffs(sorted(done.items(), key=lambda item: list(WIRED).index(item[0])))
    # Each phase's result is its module's: with its diff only when asked for (run_manager does the same).
    if module._diff:
        result["diff"] = diffs
    else:
        for step in done.values():
            step.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
