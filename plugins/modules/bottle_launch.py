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
    target, bundle and git-gate host from the agent and the bundle (module_utils/launch_phases.py, the one
    place the launch is wired). Ansible validates each phase's options as the nested options of this module's
    option of that name, and masks their secrets.
    When the bundle runs supervise, the agent gets supervise's MCP server too.
  - Before anything is created it looks at what is there - whether the bottle exists (RV(preexisting)), both
    images (a missing one is reported in RV(missing_images), and nothing is done), the operator's files it reads
    on this host (O(upstream_ca_file), and the git-gate identity of each repo of O(provision.git_gate), which must
    be a regular file others cannot read; a problem is reported in RV(host_errors), and nothing is done), the
    operator's approvals
    (M(botbottle.bottle.bottle_supervise); the bottle's, then with O(approvals_agent) those for every bottle of the
    agent) merged into O(state.policy) as the C(botbottle.bottle.with_approvals) filter does, and the credential of
    every route of the merged policy - a route an approval added whose C(token_ref) is not in O(state.tokens) is
    reported in RV(missing_tokens), and nothing is done, so the caller can resolve it and call again.
  - With O(digest), when the stamp of the last launch (module_utils/launch_stamp.py) has the same digest - O(digest),
    the approvals, the credentials and the text of O(upstream_ca_file) - and the same networks and containers
    still run, healthy, the images they run are those their names point at and the state directory's files are
    unchanged, there is nothing to do (RV(current)); anything else takes the full path, which converges.
  - A bad option of a phase fails before anything is created, its message naming the phase and the option
    (Ansible's own check, for example C(bundle.config_hash) for an option this module sets itself). Any other
    failure opens with the name of the phase that failed (for example V(provision) when update-ca-certificates
    fails in the agent, or when an option fails a check beyond its spec) and says in RV(preexisting) whether
    the bottle existed before (the role rolls back only what a launch created).
  - In check mode the provisioning of an agent container that does not exist yet is skipped, as there is
    nothing to look into.
  - When every phase succeeded (not in check mode) and O(digest) is given, it records the stamp of the launch in
    the state directory (module_utils/launch_stamp.py) - the digest and the objects left running - so that a rerun
    with the same inputs finds that nothing is to be done (see RV(current)).
  - Each module on its own is still what the smolmachines backend and custom plays use.
author: botbottle developers (@botbottle)
extends_documentation_fragment:
  - botbottle.bottle.docker
  - botbottle.bottle.launch_phases.state
  - botbottle.bottle.launch_phases.network
  - botbottle.bottle.launch_phases.bundle
  - botbottle.bottle.launch_phases.container
  - botbottle.bottle.launch_phases.provision
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
  digest:
    description:
      - The digest of the launch's inputs (the C(botbottle.bottle.launch_digest) filter). Omitted, no stamp is
        written, a stamp of an earlier launch is removed and the launch always takes its full path.
      - The alias C(stamp) is the name of earlier releases, deprecated (it is a digest; the stamp is what the
        launch records).
    type: str
    aliases: [stamp]
  approvals_agent:
    description: Merge what the operator approved for every bottle of this agent too (C(scope=agent)).
    type: str
  upstream_ca_file:
    description:
      - A PEM file on this host of extra CAs the bundle trusts for upstream TLS. bottle_launch reads it (the
        role's C(bottle_upstream_ca_file)) and writes its text as the state's C(upstream_ca), which
        O(state.options.upstream_ca) must then leave empty; the stamp covers its text. A missing file is reported
        in RV(host_errors), and nothing is done.
    type: path
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
    digest: "{{ bottle_launch_digest }}"
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
  returned: with O(digest), unless RV(missing_images), RV(host_errors) or RV(missing_tokens)
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
host_errors:
  description:
    - Each problem with a file of the operator's on this host (O(upstream_ca_file), a git-gate identity), naming
      its key and the fix; when any, nothing was done.
  returned: unless RV(missing_images)
  type: list
  elements: str
  sample: ["bottle_policies.demo.git_gate.repos.project.identity /home/me/.ssh/gate on this host: has mode 0644,
            readable by others: chmod 600 /home/me/.ssh/gate"]
missing_tokens:
  description: >-
    Each route an approval added whose credential is not in C(state.tokens), as C({host, auth: {token_ref}});
    when any, nothing was done.
  returned: unless RV(missing_images) or RV(host_errors)
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

from ansible_collections.botbottle.bottle.plugins.module_utils import bottle_lock, bundle_config, host_files
from ansible_collections.botbottle.bottle.plugins.module_utils import launch_stamp, naming
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise as sv
from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_health import read_health
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, DockerException, find_container, find_image, find_network, get_docker_client)
from ansible_collections.botbottle.bottle.plugins.module_utils.launch_phases import BY_NAME, PHASES, Run
from ansible_collections.botbottle.bottle.plugins.module_utils.launch_phases import argument_spec as phases_spec
from ansible_collections.botbottle.bottle.plugins.module_utils.phases import Phase, PhaseFailed, merge_diffs


def phase(module, run, name):
    """The phase's options - the caller's (validated by Ansible with this module's), with the wiring applied."""
    return Phase(module, name, BY_NAME[name].options(run, module.params[name]))


def read_host_files(module):
    """The files on this host the launch reads: the upstream CAs and the git-gate identities (checked, not read).
    (problems, upstream CA text or None); nothing is created when there are problems."""
    p = module.params
    meta_policy = (p["state"]["meta"] or {}).get("policy")
    problems = host_files.identity_problems((p["provision"].get("git_gate") or {}).get("repos") or [], meta_policy)
    ca = None
    if p["upstream_ca_file"]:
        if (p["state"]["options"] or {}).get("upstream_ca"):
            problems.append("state.options.upstream_ca and upstream_ca_file are both set: give the CAs once (the "
                            "file on this host, upstream_ca_file, which bottle_launch reads)")
        else:
            ca, problem = host_files.read_upstream_ca(p["upstream_ca_file"])
            if problem:
                problems.append(problem)
    return problems, ca


def look(module, client):
    """Before anything is created: whether the bottle exists, the images, the files on this host it reads, the
    policy with the operator's approvals, the credentials it lacks, and whether the bottle already runs as this
    launch would leave it."""
    p = module.params
    slug = p["slug"]
    state_root = p["state"]["state_root"]
    state_dir = naming.state_dir(slug, state_root)
    containers = [find_container(client, naming.object_name(slug, role)) for role in launch_stamp.CONTAINERS]
    networks = [find_network(client, naming.object_name(slug, suffix)) for suffix in launch_stamp.NETWORKS.values()]
    seen = dict(preexisting=os.path.isdir(state_dir) or any(o is not None for o in containers + networks))
    images = {"bundle": p["bundle"].get("image"), "agent": p["container"].get("image")}
    found = {role: find_image(client, name) if name else None for role, name in images.items()}
    seen["missing_images"] = sorted(images[role] for role, image in found.items() if image is None and images[role])
    if seen["missing_images"]:
        return seen
    seen["host_errors"], seen["upstream_ca"] = read_host_files(module)
    if seen["host_errors"]:
        return seen
    try:
        approved = bundle_config.combine_approved(
            sv.read_approved(state_dir), sv.read_agent_approved(state_root, p["approvals_agent"])
            if p["approvals_agent"] else None)
        seen["policy"] = bundle_config.merge_approved(p["state"]["policy"] or {}, approved)
    except (sv.SuperviseError, ValueError) as exc:
        raise PhaseFailed("state", "%s (it holds what the operator approved for bottle %s)" % (exc, slug), {})
    tokens = p["state"]["tokens"] or {}
    seen["missing_tokens"] = [{"host": route["host"], "auth": {"token_ref": route["auth"]["token_ref"]}}
                              for route in (seen["policy"].get("egress") or {}).get("routes") or []
                              if isinstance(route.get("auth"), dict) and route["auth"].get("token_ref") not in tokens]
    if seen["missing_tokens"] or not p["digest"]:
        return seen
    # The stamp covers the controller's digest, and what only this host knows: the approvals, the credentials
    # of the routes they add and the upstream CAs read here.
    inputs = [p["digest"], approved, tokens] + ([seen["upstream_ca"]] if p["upstream_ca_file"] else [])
    seen["digest"] = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()

    def healthy(bundle):
        try:
            return read_health(bundle)[0] == 0
        except DockerException:
            return False
    observed = launch_stamp.observe(client, slug, state_dir, healthy)
    seen["current"], seen["reason"] = launch_stamp.is_current(
        observed, seen["digest"], {role: image.id for role, image in found.items()})
    return seen


def launch(module, client, seconds, policy, upstream_ca):
    # Imported here: a rerun with nothing to do (look) never loads the phases' logic.
    from ansible_collections.botbottle.bottle.plugins.module_utils import provisioning, state_write
    from ansible_collections.botbottle.bottle.plugins.module_utils.agent_container import AgentManager
    from ansible_collections.botbottle.bottle.plugins.module_utils.bottle_networks import NetworkManager
    from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_container import BundleManager
    from ansible_collections.botbottle.bottle.plugins.module_utils.transport_factory import get_transport
    p = module.params
    done = {}
    clock = [time.monotonic()]
    # Ansible checked every phase's options against its spec; what the provisioning checks beyond its spec is
    # checked too before the first phase runs (what the phases before it give standing as Run.preview's).
    preview = Run.preview(p["slug"], p["agent"], p["bundle"]["daemons"])
    provisioning.check_params(phase(module, preview, "provision"))

    def took(name):
        now = time.monotonic()
        seconds[name] = round(now - clock[0], 3)
        clock[0] = now
    run = Run(p["slug"], p["agent"], policy)
    state = phase(module, run, "state")
    if upstream_ca is not None:
        state.params["options"] = dict(state.params["options"], upstream_ca=upstream_ca)
    done["state"] = state_write.present(state)
    run.config_hash = done["state"]["config_hash"]
    took("state")

    networks = NetworkManager(phase(module, run, "network"), client)
    networks.present()
    done["network"] = networks.result
    run.internal, run.egress = networks.result["networks"]["internal"], networks.result["networks"]["egress"]
    took("network")

    bundle = BundleManager(phase(module, run, "bundle"), client)
    # The agent reaches the bundle at its pinned address: known before the bundle exists.
    run.endpoints = bundle.endpoints(run.internal["bundle_ip"])
    run.daemons, run.bundle_name = bundle.p["daemons"], bundle.name
    agent = AgentManager(phase(module, run, "container"), client)
    run.agent_name = agent.name
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
        waits = {}
        done["provision"] = provisioning.run(phase(module, run, "provision"), get_docker_client, get_transport,
                                             client=client, timings=waits)
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


def argument_spec():
    """This module's options: its own, each phase's (the nested options of one dict option), Docker's."""
    spec = dict(
        slug=dict(type="str", required=True),
        agent=dict(type="str", required=True),
        digest=dict(type="str", aliases=["stamp"],
                    deprecated_aliases=[dict(name="stamp", version="1.0.0", collection_name="botbottle.bottle")]),
        approvals_agent=dict(type="str"),
        upstream_ca_file=dict(type="path"),
        lock_timeout=dict(type="int", default=bottle_lock.DEFAULT_TIMEOUT),
    )
    spec.update(phases_spec())
    spec.update(DOCKER_COMMON_ARGS)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    error = naming.slug_error(module.params["slug"])
    if error:
        module.fail_json(msg="slug: " + error)
    client = get_docker_client(module)
    seen = dict(preexisting=True)
    lock = {}
    try:
        # One change to the bottle at a time (a launch, a relaunch, a teardown, an approval): a second run waits
        # here, then finds the bottle as the first left it.
        with bottle_lock.hold(module.params["state"]["state_root"], module.params["slug"], "launch",
                              module.params["lock_timeout"]) as lock:
            seen = look(module, client)
            upstream_ca = seen.pop("upstream_ca", None)
            if seen["missing_images"] or seen["host_errors"] or seen["missing_tokens"] or seen.get("current"):
                # Nothing to do, or nothing this call can do: the role says why, or resolves the credentials
                # and calls again.
                seen.pop("policy", None)
                module.exit_json(changed=False, lock=lock, **seen)
            seconds = {}
            done, networks, bundle, agent = launch(module, client, seconds, seen.pop("policy"), upstream_ca)
            stamped = False if module.check_mode else stamp(done["state"]["path"], seen.get("digest"), networks,
                                                            bundle, agent)
    except bottle_lock.BottleLocked as exc:
        module.fail_json(msg=str(exc), preexisting=True)
    except PhaseFailed as exc:
        # The message names the phase that failed.
        msg = exc.msg if exc.msg.startswith(exc.phase + ":") or exc.msg.startswith(exc.phase + ".") \
            else "%s: %s" % (exc.phase, exc.msg)
        module.fail_json(msg=msg, phase=exc.phase, preexisting=seen["preexisting"], **exc.details)
    except DockerException as exc:
        module.fail_json(msg="docker engine error while launching bottle %s: %s" % (module.params["slug"], exc),
                         preexisting=seen["preexisting"])
    seen.pop("policy", None)
    result = dict(done, stamped=stamped, seconds=seconds, changed=any(r.get("changed") for r in done.values()),
                  lock=lock, **seen)
    order = [each.name for each in PHASES]
    diffs = merge_diffs(sorted(done.items(), key=lambda item: order.index(item[0])))
    # Each phase's result is its module's: with its diff only when asked for (run_manager does the same).
    if module._diff:
        result["diff"] = diffs
    else:
        for step in done.values():
            step.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
