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
  - Before anything is created it looks at what is there - whether the bottle exists (RV(preexisting)), both
    images (a missing one is reported in RV(missing_images), and nothing is done), the operator's approvals
    (M(botbottle.bottle.bottle_supervise); the bottle's, then with O(approvals_agent) those for every bottle of the
    agent) merged into C(state.policy) as the C(botbottle.bottle.with_approvals) filter does, and the credential of
    every route of the merged policy - a route an approval added whose C(token_ref) is not in C(state.tokens) is
    reported in RV(missing_tokens), and nothing is done, so the caller can resolve it and call again.
  - With O(stamp), when the stamp of the last launch (module_utils/launch_stamp.py) has the same digest - O(stamp),
    the approvals and the credentials - and the same networks and containers still run, healthy, the images they
    run are those their names point at and the state directory's files are unchanged, there is nothing to do
    (RV(current)); anything else takes the full path, which converges.
  - A bad option of a phase fails before anything is created, its message opening with the phase's name
    (V(bundle), V(container), ...). Any other failure opens with the name of the phase that failed too (for
    example V(provision) when update-ca-certificates fails in the agent) and says in RV(preexisting) whether
    the bottle existed before (the role rolls back only what a launch created).
  - In check mode the provisioning of an agent container that does not exist yet is skipped, as there is
    nothing to look into.
  - When every phase succeeded (not in check mode) and O(stamp) is given, it records the stamp of the launch in
    the state directory (module_utils/launch_stamp.py) - the digest and the objects left running - so that a rerun
    with the same inputs finds that nothing is to be done (see RV(current)).
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
        written, a stamp of an earlier launch is removed and the launch always takes its full path.
    type: str
  approvals_agent:
    description: Merge what the operator approved for every bottle of this agent too (C(scope=agent)).
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
  lock_timeout:
    description:
      - The bottle's lock (C(<state_root>/../locks/<slug>.lock), see C(plugins/module_utils/bottle_lock.py)) is held for
        the whole call, so that a launch, a relaunch, a teardown (M(botbottle.bottle.bottle_remove)) and the writes of an
        approval (M(botbottle.bottle.bottle_supervise)) of one bottle never run at once. A second call waits for the
        first at most this many seconds, then finds the bottle as the first left it; past it the module fails naming
        the run that holds the lock, with nothing changed. A killed run holds nothing (the lock goes with its process).
    type: int
    default: 300
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
lock:
  description:
    - The bottle's lock - C(waited), the seconds this call waited for it, and C(waited_for), the run it waited for
      (V(null) when the lock was free).
  returned: when the lock was taken
  type: dict
  sample: {waited: 41.2, waited_for: "launch of bottle demo (pid 4242, since 2026-12-07T05:40:00Z)"}
preexisting:
  description: Whether the bottle (a container, network or state directory of it) existed before this call.
  returned: always, also on failure
  type: bool
current:
  description: Whether the bottle already ran as this launch would leave it (nothing was done).
  returned: with O(stamp), unless RV(missing_images) or RV(missing_tokens)
  type: bool
reason:
  description: Why the launch took its full path (empty when RV(current)).
  returned: with RV(current)
  type: str
missing_images:
  description: The images not in the local image cache; when any, nothing was done.
  returned: always
  type: list
  elements: str
missing_tokens:
  description: >-
    Each route an approval added whose credential is not in C(state.tokens), as C({host, auth: {token_ref}});
    when any, nothing was done.
  returned: unless RV(missing_images)
  type: list
  elements: dict
  sample: [{host: api.github.com, auth: {token_ref: GH_TOKEN}}]
state:
  description: What the state phase returned (M(botbottle.bottle.bottle_state)'s result), with C(config_hash).
  returned: when the launch ran
  type: dict
network:
  description: What the networks phase returned (M(botbottle.bottle.bottle_network)'s result).
  returned: when the launch ran
  type: dict
bundle:
  description: What the bundle phase returned (M(botbottle.bottle.sidecar_bundle)'s result), with C(endpoints).
  returned: when the launch ran
  type: dict
container:
  description: What the agent phase returned (M(botbottle.bottle.bottle_agent)'s result).
  returned: when the launch ran
  type: dict
provision:
  description: What the provisioning phase returned (M(botbottle.bottle.bottle_provision)'s result).
  returned: unless skipped in check mode
  type: dict
seconds:
  description: How long each phase took, in seconds (where a launch's time goes).
  returned: when the launch ran
  type: dict
  sample: {state: 0.01, network: 0.21, bundle and container: 0.45, provision: 1.2, provision_ca_wait: 0.1, provision_files: 0.4,
           provision_health_wait: 0.7}
stamped:
  description: Whether the stamp of this launch was written.
  returned: when the launch ran
  type: bool
"""

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils import bottle_lock, bundle_config, launch_stamp, naming
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise as sv
from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_health import read_health
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, DockerException, find_container, find_image, find_network, get_docker_client)
from ansible_collections.botbottle.bottle.plugins.module_utils.phases import Phase, PhaseFailed, merge_diffs
from ansible_collections.botbottle.bottle.plugins.module_utils.state_write import STATE_SPEC

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
        raise PhaseFailed(name, "%s.%s is set by bottle_launch itself: remove it from %s" % (name, clash[0], name), {})
    given.update(wired)
    # Failures raise (PhaseFailed): the bundle and the agent run side by side, and only main() fails the module.
    return Phase(module, name, spec, given, raise_failures=True)


def look(module, client):
    """Before anything is created: whether the bottle exists, the images, the policy with the operator's
    approvals, the credentials it lacks, and whether the bottle already runs as this launch would leave it."""
    p = module.params
    slug = p["slug"]
    # The state phase's options, checked (and its paths expanded) first: where the state and approvals are.
    state_root = phase(module, "state", STATE_SPEC, dict(slug=slug, state="present")).params["state_root"]
    state_dir = naming.state_dir(slug, state_root)
    containers = [find_container(client, naming.object_name(slug, role)) for role in launch_stamp.CONTAINERS]
    networks = [find_network(client, naming.object_name(slug, suffix)) for suffix in launch_stamp.NETWORKS.values()]
    seen = dict(preexisting=os.path.isdir(state_dir) or any(o is not None for o in containers + networks))
    images = {"bundle": (p["bundle"] or {}).get("image"), "agent": (p["container"] or {}).get("image")}
    found = {role: find_image(client, name) if name else None for role, name in images.items()}
    seen["missing_images"] = sorted(images[role] for role, image in found.items() if image is None and images[role])
    if seen["missing_images"]:
        return seen
    try:
        approved = bundle_config.combine_approved(
            sv.read_approved(state_dir), sv.read_agent_approved(state_root, p["approvals_agent"])
            if p["approvals_agent"] else None)
        seen["policy"] = bundle_config.merge_approved((p["state"] or {}).get("policy") or {}, approved)
    except (sv.SuperviseError, ValueError) as exc:
        raise PhaseFailed("state", "%s (it holds what the operator approved for bottle %s)" % (exc, slug), {})
    tokens = (p["state"] or {}).get("tokens") or {}
    seen["missing_tokens"] = [{"host": route["host"], "auth": {"token_ref": route["auth"]["token_ref"]}}
                              for route in (seen["policy"].get("egress") or {}).get("routes") or []
                              if isinstance(route.get("auth"), dict) and route["auth"].get("token_ref") not in tokens]
    if seen["missing_tokens"] or not p["stamp"]:
        return seen
    # The stamp covers the controller's digest, and what only this host knows: the approvals and the
    # credentials of the routes they add.
    seen["digest"] = hashlib.sha256(json.dumps([p["stamp"], approved, tokens], sort_keys=True)
                                    .encode("utf-8")).hexdigest()

    def healthy(bundle):
        try:
            return read_health(bundle)[0] == 0
        except DockerException:
            return False
    observed = launch_stamp.observe(client, slug, state_dir, healthy)
    seen["current"], seen["reason"] = launch_stamp.is_current(
        observed, seen["digest"], {role: image.id for role, image in found.items()})
    return seen


def launch(module, client, seconds, policy):
    # Imported here: a rerun with nothing to do (look) never loads the phases.
    from ansible_collections.botbottle.bottle.plugins.module_utils import provisioning, state_write
    from ansible_collections.botbottle.bottle.plugins.module_utils.agent_container import AGENT_SPEC, AgentManager
    from ansible_collections.botbottle.bottle.plugins.module_utils.bottle_networks import NETWORK_SPEC, NetworkManager
    from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_container import BUNDLE_SPEC, BundleManager
    from ansible_collections.botbottle.bottle.plugins.module_utils.transport_factory import get_transport
    p = module.params
    done = {}
    clock = [time.monotonic()]
    # Every phase's options are checked before the first phase runs (the state's by look()), what the
    # phases before it give a phase standing in as a placeholder of its type: a bad one creates nothing.
    owner = dict(slug=p["slug"], agent=p["agent"], state="present")
    phase(module, "network", NETWORK_SPEC, owner)
    phase(module, "bundle", BUNDLE_SPEC, dict(owner, internal_network="n", internal_ip="0.0.0.0", egress_network="n",
                                              config_hash="h", wait=False))
    phase(module, "container", AGENT_SPEC, dict(owner, network="n", ip="0.0.0.0", proxy_url="http://0.0.0.0:8888"))
    provisioning.check_params(phase(module, "provision", provisioning.PROVISION_SPEC, dict(
        transport="docker", target="t", bundle="b", gate_host="g")))

    def took(name):
        now = time.monotonic()
        seconds[name] = round(now - clock[0], 3)
        clock[0] = now
    state = phase(module, "state", STATE_SPEC, dict(slug=p["slug"], state="present", policy=policy))
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
        step = phase(module, "provision", provisioning.PROVISION_SPEC, wired)
        waits = {}
        done["provision"] = provisioning.run(step, get_docker_client, get_transport, client=client, timings=waits)
        took("provision")
        seconds.update(("provision_" + k, v) for k, v in waits.items())
    return done, networks, bundle, agent


def stamp(state_dir, digest, networks, bundle, agent):
    """Record the launch (or, without a digest, forget an earlier one)."""
    if not digest:
        try:
            os.unlink(os.path.join(state_dir, launch_stamp.STAMP))
        except FileNotFoundError:
            pass
        return False
    objects = {
        "networks": {role: net["id"] for role, net in networks.result["networks"].items()},
        "containers": {"bundle": {"id": bundle.container.id}, "agent": {"id": agent.container.id}},
        "config_hash": bundle_config.config_hash(state_dir),
    }
    launch_stamp.write(state_dir, digest, objects)
    return True


def main():
    spec = dict(
        slug=dict(type="str", required=True),
        agent=dict(type="str", required=True),
        stamp=dict(type="str"),
        approvals_agent=dict(type="str"),
        state=dict(type="dict", required=True),
        network=dict(type="dict", default={}),
        bundle=dict(type="dict", required=True),
        container=dict(type="dict", required=True),
        provision=dict(type="dict", default={}),
        lock_timeout=dict(type="int", default=bottle_lock.DEFAULT_TIMEOUT),
    )
    spec.update(DOCKER_COMMON_ARGS)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    error = naming.slug_error(module.params["slug"])
    if error:
        module.fail_json(msg="slug: " + error)
    client = get_docker_client(module)
    seen = dict(preexisting=True)
    lock = {}
    try:
        # One change to the bottle at a time (a launch, a relaunch, a teardown, an approval): a second run waits
        # here, then finds the bottle as the first left it.
        state_root = phase(module, "state", STATE_SPEC, dict(slug=module.params["slug"], state="present")
                           ).params["state_root"]
        with bottle_lock.hold(state_root, module.params["slug"], "launch", module.params["lock_timeout"]) as lock:
            seen = look(module, client)
            if seen["missing_images"] or seen["missing_tokens"] or seen.get("current"):
                # Nothing to do, or nothing this call can do: the role says why, or resolves the credentials
                # and calls again.
                seen.pop("policy", None)
                module.exit_json(changed=False, lock=lock, **seen)
            seconds = {}
            done, networks, bundle, agent = launch(module, client, seconds, seen.pop("policy"))
            stamped = False if module.check_mode else stamp(done["state"]["path"], seen.get("digest"), networks,
                                                            bundle, agent)
    except bottle_lock.BottleLocked as exc:
        module.fail_json(msg=str(exc), preexisting=True)
    except PhaseFailed as exc:
        # The message names the phase that failed (a phase's option errors name it already).
        msg = exc.msg if exc.msg.startswith(exc.phase + ":") or exc.msg.startswith(exc.phase + ".") \
            else "%s: %s" % (exc.phase, exc.msg)
        module.fail_json(msg=msg, phase=exc.phase, preexisting=seen["preexisting"], **exc.details)
    except DockerException as exc:
        module.fail_json(msg="docker engine error while launching bottle %s: %s" % (module.params["slug"], exc),
                         preexisting=seen["preexisting"])
    seen.pop("policy", None)
    result = dict(done, stamped=stamped, seconds=seconds, changed=any(r.get("changed") for r in done.values()),
                  lock=lock, **seen)
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
