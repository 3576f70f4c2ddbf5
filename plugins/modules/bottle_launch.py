#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_launch
short_description: A launch in one step, on either backend - state directory, networks, bundle, agent, provisioning
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
  - With O(backend=smolmachines) the same call runs the smolmachines plan (module_utils/launch_phases.py
    C(SMOLMACHINES), module_utils/vm_launch.py) - the state directory (the bottle's loopback address kept in its
    meta.json), the way-out network only, the bundle publishing its agent-facing ports on that address, the bottle's
    host socket relay (M(botbottle.bottle.bottle_socket_relay)), the agent image as an archive
    (M(botbottle.bottle.bottle_image_archive)), the VM (M(botbottle.bottle.smolvm_machine) - no network, the relay's
    sockets mounted, the guest relay its workload) and, when O(boot), the agent's files over C(smolvm machine exec).
    Before anything is created it also looks at the smolvm CLI, whether this host boots guests (with O(boot)),
    the bottle's loopback address (O(loopback_pool); a relaunch keeps its address) and host services on a
    wildcard address (unless O(allow_wildcard_listeners)); a problem is reported in RV(host_errors). The stamp
    covers the VM, the relay and the agent image too.
  - What needs root is never done here (the call runs as the launching user). On macOS, lo0 needs an alias for the
    bottle's loopback address before Docker can publish on it; when it lacks one, RV(root_steps) says so and
    nothing is done, so the caller can add it (as root) and call again.
  - Each module on its own is still what custom plays use.
author: botbottle developers (@botbottle)
extends_documentation_fragment:
  - botbottle.bottle.docker
  - botbottle.bottle.launch_phases.state
  - botbottle.bottle.launch_phases.network
  - botbottle.bottle.launch_phases.bundle
  - botbottle.bottle.launch_phases.container
  - botbottle.bottle.launch_phases.provision
  - botbottle.bottle.launch_phases.relay
  - botbottle.bottle.launch_phases.archive
  - botbottle.bottle.launch_phases.machine
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
  backend:
    description: Which plan runs - the agent in a docker container, or in a smolvm VM.
    type: str
    choices: [docker, smolmachines]
    default: docker
  boot:
    description:
      - smolmachines - start the VM and provision its agent. V(false) creates the bundle, the relay and the VM
        without starting it (a host that cannot boot guests); no agent runs then.
    type: bool
    default: true
  loopback_pool:
    description: smolmachines - where the bottle's own loopback address is chosen (never 127.0.0.1).
    type: str
    default: 127.77.0.0/16
  allow_wildcard_listeners:
    description:
      - smolmachines - launch even when host services listen on a wildcard address, so that they answer at the
        bottle's loopback address too (the operator acknowledged them, or a firewall rule limits the address to the
        bundle's ports). V(false) reports them in RV(host_errors) and does nothing.
    type: bool
    default: false
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
  returned: when a docker launch ran
  type: dict
provision:
  description: What the provisioning phase returned (M(botbottle.bottle.bottle_provision)'s result).
  returned: unless skipped in check mode (or, on smolmachines, without O(boot))
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
attach:
  description:
    - How to reach the agent's CLI (its kind's command - C(claude), C(codex)) in this bottle, as one shell line.
  returned: always, unless the module failed
  type: str
  sample: docker exec -it -u agent bb-demo-agent claude
root_steps:
  description:
    - smolmachines - what must be done as root before the launch can go on (C({step, address}); V(lo0_alias) on
      macOS); when any, nothing was done.
  returned: with O(backend=smolmachines), unless RV(missing_images)
  type: list
  elements: dict
  sample: [{step: lo0_alias, address: 127.77.0.9}]
notes:
  description: smolmachines - what the caller should tell the operator (a VM that will only be created).
  returned: with O(backend=smolmachines), unless RV(missing_images)
  type: list
  elements: str
loopback_address:
  description: smolmachines - the bottle's loopback address, where its bundle publishes.
  returned: with O(backend=smolmachines), unless RV(missing_images)
  type: str
smolvm:
  description: smolmachines - the smolvm CLI (C(available), C(path), C(reason)) and whether this host boots guests (C(boot)).
  returned: with O(backend=smolmachines), unless RV(missing_images)
  type: dict
relay:
  description: smolmachines - what the relay phase returned (M(botbottle.bottle.bottle_socket_relay)'s result).
  returned: when a smolmachines launch ran
  type: dict
archive:
  description: smolmachines - what the archive phase returned (M(botbottle.bottle.bottle_image_archive)'s result).
  returned: when a smolmachines launch ran
  type: dict
machine:
  description:
    - smolmachines - what the machine phase returned (M(botbottle.bottle.smolvm_machine)'s result); in check mode
      with an archive still to write, C({skipped, name, msg}).
  returned: when a smolmachines launch ran
  type: dict
"""

import hashlib
import json
import os
import platform
import shlex
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils import bottle_lock, bundle_config, bundle_format, host_files
from ansible_collections.botbottle.bottle.plugins.module_utils import launch_stamp, loopback, naming, vm_launch
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as sv
from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_health import read_health
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, DockerException, find_container, find_image, find_network, get_docker_client)
from ansible_collections.botbottle.bottle.plugins.module_utils.launch_phases import (
    BACKEND_OPTIONS, PLANS, Run, phase_of)
from ansible_collections.botbottle.bottle.plugins.module_utils.launch_phases import argument_spec as phases_spec
from ansible_collections.botbottle.bottle.plugins.module_utils.phases import Phase, PhaseFailed, merge_diffs


def phase(module, run, name):
    """The phase's options - the caller's (validated by Ansible with this module's), with the wiring applied."""
    return Phase(module, name, phase_of(module.params["backend"], name).options(run, module.params[name] or {}))


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
    vm = p["backend"] == "smolmachines"
    state_root = p["state"]["state_root"]
    state_dir = naming.state_dir(slug, state_root)
    stamp_networks = launch_stamp.VM_NETWORKS if vm else launch_stamp.NETWORKS
    stamp_containers = launch_stamp.VM_CONTAINERS if vm else launch_stamp.CONTAINERS
    containers = [find_container(client, naming.object_name(slug, role)) for role in stamp_containers]
    networks = [find_network(client, naming.object_name(slug, suffix)) for suffix in stamp_networks.values()]
    seen = dict(preexisting=os.path.isdir(state_dir) or any(o is not None for o in containers + networks))
    images = {"bundle": p["bundle"].get("image"), "agent": (p["archive"] if vm else p["container"]).get("image")}
    found = {role: find_image(client, name) if name else None for role, name in images.items()}
    seen["missing_images"] = sorted(images[role] for role, image in found.items() if image is None and images[role])
    if seen["missing_images"]:
        return seen
    seen["host_errors"], seen["upstream_ca"] = read_host_files(module)
    # A bundle image older than the egress.json this collection writes would refuse it at start.
    problem = bundle_format.bundle_image_problem(getattr(found["bundle"], "labels", None), images["bundle"])
    if problem:
        seen["host_errors"].append(problem)
    vm_found = None
    if vm:
        # smolvm, the VM, the bottle's loopback address, the host's wildcard listeners, what needs root.
        vm_found = vm_launch.look(module, client, slug, state_root)
        seen["preexisting"] = seen["preexisting"] or vm_found["machine"] is not None
        seen["host_errors"] += vm_found["host_errors"]
        seen.update(notes=vm_found["notes"], root_steps=vm_found["root_steps"], loopback_address=vm_found["address"],
                    smolvm=vm_found["smolvm"])
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
    # What the caller must do first (credentials, a step as root) is reported together: one call again does.
    if seen["missing_tokens"] or seen.get("root_steps") or not p["digest"]:
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
    if vm:
        observed = launch_stamp.observe(
            client, slug, state_dir, healthy, launch_stamp.VM_NETWORKS, launch_stamp.VM_CONTAINERS,
            extra=lambda: vm_launch.extra_now(client, state_dir, vm_found["address"], p["bundle"]["daemons"],
                                              images["agent"], vm_found["machine"]))
    else:
        observed = launch_stamp.observe(client, slug, state_dir, healthy)
    seen["current"], seen["reason"] = launch_stamp.is_current(
        observed, seen["digest"], {role: image.id for role, image in found.items()})
    return seen


def launch(module, client, seconds, policy, upstream_ca, address=None):
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
    run = Run(p["slug"], p["agent"], policy, address=address, boot=p["boot"])
    run.state_root = p["state"]["state_root"]
    state = phase(module, run, "state")
    if upstream_ca is not None:
        state.params["options"] = dict(state.params["options"], upstream_ca=upstream_ca)
    done["state"] = state_write.present(state)
    run.config_hash = done["state"]["config_hash"]
    took("state")
    if p["backend"] == "smolmachines":
        run.daemons = p["bundle"]["daemons"]
        vm_launch.launch(module, client, run, lambda each, name: phase(module, each, name), seconds, done, took)
        return done

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
    return done


def stamp(state_dir, digest, done):
    """Record the launch (or, without a digest, forget an earlier one)."""
    if not digest:
        try:
            os.unlink(os.path.join(state_dir, launch_stamp.STAMP))
        except FileNotFoundError:
            pass
        return False
    objects = {
        "networks": {role: net["id"] for role, net in done["network"]["networks"].items()
                     if net and net.get("id")},
        "containers": {role: {"id": done[phase]["container"]["id"]}
                       for role, phase in (("bundle", "bundle"), ("agent", "container")) if phase in done},
        "config_hash": bundle_config.config_hash(state_dir),
    }
    if "machine" in done:
        objects["extra"] = vm_launch.extra_done(done)
    launch_stamp.write(state_dir, digest, objects)
    return True


def attach_command(module, smolvm_path=None):
    """How the operator reaches the agent's CLI (its kind's command) in this bottle, as one shell line."""
    p = module.params
    from ansible_collections.botbottle.bottle.plugins.module_utils import agent_kinds
    cli = agent_kinds.get((p["provision"] or {}).get("kind")).CLI["command"]
    name = naming.object_name(p["slug"], "agent")
    if p["backend"] == "docker":
        return "docker exec -it -u agent %s %s" % (name, cli)
    machine = p["machine"] or {}
    words = [smolvm_path or machine.get("smolvm_path") or "smolvm"]
    # smolvm's --state-dir is Linux only.
    if machine.get("state_dir") and platform.system() == "Linux":
        words += ["--state-dir", machine["state_dir"]]
    return " ".join(shlex.quote(w) for w in words + ["machine", "exec", "--name", name, "-u", "agent", "-it", "--", cli])


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
        backend=dict(type="str", choices=sorted(PLANS), default="docker"),
        boot=dict(type="bool", default=True),
        loopback_pool=dict(type="str", default=loopback.DEFAULT_POOL),
        allow_wildcard_listeners=dict(type="bool", default=False),
    )
    spec.update(phases_spec())
    spec.update(DOCKER_COMMON_ARGS)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[("backend", backend, list(options)) for backend, options in BACKEND_OPTIONS.items()])
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
            if seen["missing_images"] or seen["host_errors"] or seen.get("root_steps") or seen["missing_tokens"] \
                    or seen.get("current"):
                # Nothing to do, or nothing this call can do: the role says why, or resolves the credentials
                # and calls again.
                seen.pop("policy", None)
                module.exit_json(changed=False, lock=lock, attach=attach_command(module), **seen)
            seconds = {}
            done = launch(module, client, seconds, seen.pop("policy"), upstream_ca, seen.get("loopback_address"))
            stamped = False if module.check_mode else stamp(done["state"]["path"], seen.get("digest"), done)
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
                  lock=lock, attach=attach_command(module, (done.get("machine") or {}).get("smolvm_path")), **seen)
    order = [each.name for each in PLANS[module.params["backend"]]]
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
