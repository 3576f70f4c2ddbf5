# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_launch's phases, and the one place a launch is wired, for each backend.

Each phase runs the logic of a module (bottle_state, bottle_network, sidecar_bundle, bottle_agent,
bottle_provision; on smolmachines bottle_socket_relay, bottle_image_archive and smolvm_machine in
place of bottle_agent) with that module's argument spec, which its module_utils owns. bottle_launch
takes each phase's options as one dict option whose nested ``options`` are that spec less what is
wired here (``argument_spec``): Ansible validates them, fills their defaults and masks their secrets.
A phase of the same name in both plans (state, network, bundle, provision) wires the same options,
so the caller gives the same ones whatever the backend.

The plans (``PLANS``):
    docker        state, network (internal + egress), bundle, container, provision (docker exec)
    smolmachines  state (+ the loopback address in meta), network (egress only), bundle (publishing on
                  the bottle's loopback address), relay (the host ends of the VM's sockets), archive (the
                  agent image as a file smolvm boots), machine (the VM: no network, the sockets mounted,
                  the guest relay its workload), provision (smolvm exec; only when the VM boots)

API:
- ``PLANS``: {backend: the phases in the order they run}, each a ``LaunchPhase`` - ``name``
  (bottle_launch's option), ``module`` (the module whose options it takes), ``spec``, ``wiring`` and
  ``dropped``. ``PHASES``/``BY_NAME``: the docker plan's (as before); ``phase_of(backend, name)``.
- ``OPTIONS``: every phase option of bottle_launch, in order; ``BACKEND_OPTIONS``: {backend: those it
  requires}.
- ``LaunchPhase.wiring``: {option: function(run, given) -> value}, ``run`` being what the launch knows when
  the phase runs (``Run``: slug, the results of the phases before) and ``given`` the caller's options of
  the phase. An option wired so is not one of bottle_launch's, unless it is an ``Adjusted`` one (the
  caller's value is its input: the state's policy gets the operator's approvals, the provisioning's MCP
  servers get supervise's).
- ``LaunchPhase.dropped``: options of the module a launch does not take (left at their defaults).
- ``LaunchPhase.options(run, given)``: the phase's options - the caller's with the wiring applied.
- ``argument_spec()``: bottle_launch's options for the phases ({name: dict option with nested options}).
- ``Run``: what a launch knows, filled phase by phase; ``Run.preview(...)`` stands for a launch before any
  phase ran (what the phases before will give is ``WIRED_LATER``), to check the options that need more
  than their spec (the provisioning's ``check_params``) before anything is created.
"""

from __future__ import annotations

from ansible_collections.botbottle.bottle.plugins.module_utils import provisioning
from ansible_collections.botbottle.bottle.plugins.module_utils.agent_container import AGENT_SPEC
from ansible_collections.botbottle.bottle.plugins.module_utils.bottle_networks import NETWORK_SPEC
from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_container import BUNDLE_SPEC
from ansible_collections.botbottle.bottle.plugins.module_utils.image_archive import ARCHIVE_SPEC
from ansible_collections.botbottle.bottle.plugins.module_utils.phases import nested
from ansible_collections.botbottle.bottle.plugins.module_utils.relay_process import RELAY_SPEC
from ansible_collections.botbottle.bottle.plugins.module_utils.state_write import STATE_SPEC
from ansible_collections.botbottle.bottle.plugins.module_utils.vm_machine import MACHINE_SPEC

# What a wired value stands for before the phase it comes from ran (Run.preview).
WIRED_LATER = "(wired by bottle_launch)"


class Adjusted:
    """A wired option that stays the caller's: ``function(run, given)`` adjusts the caller's value."""

    def __init__(self, function):
        self.function = function

    def __call__(self, run, given):
        return self.function(run, given)


class LaunchPhase:
    def __init__(self, name, module, spec, wiring, dropped=(), required=()):
        self.name, self.module, self.spec, self.wiring, self.dropped = name, module, spec, wiring, tuple(dropped)
        self.required = tuple(required)

    @property
    def wired(self):
        """The options bottle_launch's caller does not give (set here, or not taken at all)."""
        return tuple(k for k, v in self.wiring.items() if not isinstance(v, Adjusted)) + self.dropped

    def nested_spec(self):
        return nested(self.spec, self.wired, **{name: {"required": True} for name in self.required})

    def options(self, run, given):
        params = dict(given)
        params.update((option, value(run, given)) for option, value in self.wiring.items())
        return params


class Run:
    """What the launch knows, phase by phase (the wiring reads it)."""

    def __init__(self, slug, agent, policy=None, address=None, boot=True):
        self.slug, self.agent, self.policy = slug, agent, policy
        # smolmachines: the bottle's loopback address (look), whether the VM boots; the relay's and the
        # archive's results, the VM's name and the smolvm CLI the provisioning runs.
        self.address, self.boot = address, boot
        self.state_root = None
        self.relay = self.archive = {}
        self.machine_name = self.smolvm_path = self.smolvm_state_dir = None
        self.internal = self.egress = None      # the networks phase's networks
        self.config_hash = None                 # the state phase's
        self.endpoints = {}                     # the bundle's, as the agent reaches it
        self.daemons = ()                       # the bundle's
        self.bundle_name = self.agent_name = None

    @classmethod
    def preview(cls, slug, agent, daemons):
        run = cls(slug, agent, policy=WIRED_LATER)
        run.internal = run.egress = {"name": WIRED_LATER, "bundle_ip": WIRED_LATER, "agent_ip": WIRED_LATER}
        run.config_hash = run.bundle_name = run.agent_name = WIRED_LATER
        run.endpoints = {"address": WIRED_LATER, "proxy_url": WIRED_LATER, "supervise_url": WIRED_LATER}
        run.daemons = daemons
        run.machine_name = WIRED_LATER
        return run


def _mcp_servers(run, given):
    if "supervise" not in run.daemons:
        return given["mcp_servers"]
    return dict(given["mcp_servers"] or {}, supervise={"type": "http", "url": run.endpoints.get("supervise_url")})


def _meta(run, given):
    """smolmachines: the bottle's loopback address in its meta.json, so a relaunch keeps it."""
    if not run.address:
        return given["meta"]
    return dict(given["meta"] or {}, loopback_address=run.address)


def _state():
    return LaunchPhase("state", "bottle_state", STATE_SPEC, dict(
        slug=lambda run, given: run.slug,
        state=lambda run, given: "present",
        policy=Adjusted(lambda run, given: run.policy),
        meta=Adjusted(_meta),
    ), dropped=("archive_root", "archive_keep_days", "archive_keep"), required=("policy",))


def _network(backend, internal):
    return LaunchPhase("network", "bottle_network", NETWORK_SPEC, dict(
        slug=lambda run, given: run.slug,
        agent=lambda run, given: run.agent,
        state=lambda run, given: "present",
        internal=lambda run, given: internal,
        backend=lambda run, given: backend,
    ))


def _bundle(backend, **wiring):
    """The bundle: on the way-out network, with the state's configuration hash; ``wiring`` is the backend's."""
    return LaunchPhase("bundle", "sidecar_bundle", BUNDLE_SPEC, dict(
        slug=lambda run, given: run.slug,
        agent=lambda run, given: run.agent,
        state=lambda run, given: "present",
        backend=lambda run, given: backend,
        egress_network=lambda run, given: run.egress["name"],
        config_hash=lambda run, given: run.config_hash,
        **wiring))


def _provision(transport, target, bundle):
    return LaunchPhase("provision", "bottle_provision", provisioning.PROVISION_SPEC, dict(
        transport=lambda run, given: transport,
        target=target,
        bundle=bundle,
        gate_host=lambda run, given: run.endpoints.get("address") if given.get("git_gate") else None,
        mcp_servers=Adjusted(_mcp_servers),
        smolvm_path=lambda run, given: run.smolvm_path,
        smolvm_state_dir=lambda run, given: run.smolvm_state_dir,
    ))


DOCKER = (
    _state(),
    _network("docker", True),
    _bundle("docker",
            internal_network=lambda run, given: run.internal["name"],
            internal_ip=lambda run, given: run.internal["bundle_ip"],
            publish_address=lambda run, given: None,
            # The provisioning waits for the bundle's health.
            wait=lambda run, given: False),
    LaunchPhase("container", "bottle_agent", AGENT_SPEC, dict(
        slug=lambda run, given: run.slug,
        agent=lambda run, given: run.agent,
        state=lambda run, given: "present",
        network=lambda run, given: run.internal["name"],
        ip=lambda run, given: run.internal["agent_ip"],
        proxy_url=lambda run, given: run.endpoints.get("proxy_url"),
    )),
    _provision("docker", lambda run, given: run.agent_name, lambda run, given: run.bundle_name),
)

SMOLMACHINES = (
    _state(),
    # No internal network: the agent is a VM without one.
    _network("smolmachines", False),
    _bundle("smolmachines",
            internal_network=lambda run, given: None,
            internal_ip=lambda run, given: None,
            # The proxy, git-gate and supervise on the bottle's own loopback address only.
            publish_address=lambda run, given: run.address,
            # Waited healthy here: the VM's provisioning (smolvm exec) does not look into the bundle.
            wait=lambda run, given: True),
    LaunchPhase("relay", "bottle_socket_relay", RELAY_SPEC, dict(
        slug=lambda run, given: run.slug,
        state_root=lambda run, given: run.state_root,
        address=lambda run, given: run.address,
        daemons=lambda run, given: list(run.daemons),
        state=lambda run, given: "present",
    )),
    LaunchPhase("archive", "bottle_image_archive", ARCHIVE_SPEC, {}),
    LaunchPhase("machine", "smolvm_machine", MACHINE_SPEC, dict(
        name=lambda run, given: None,
        slug=lambda run, given: run.slug,
        agent=lambda run, given: run.agent,
        state=lambda run, given: "started" if run.boot else "present",
        image=lambda run, given: run.archive.get("path"),
        # No network at all: the bundle's ports are the guest's own 127.0.0.1, relayed through these sockets.
        allow_cidrs=lambda run, given: [],
        mount_sockets=lambda run, given: run.relay.get("mounts"),
        command=lambda run, given: run.relay.get("guest_command"),
        # The guest relay brings lo up: root; the agent's own commands run as the agent (provisioning, exec -u).
        user=lambda run, given: "root",
        env=Adjusted(lambda run, given: dict(given["env"] or {}, **(run.relay.get("guest_env") or {}))),
    )),
    _provision("smolvm", lambda run, given: run.machine_name, lambda run, given: None),
)

PLANS = {"docker": DOCKER, "smolmachines": SMOLMACHINES}
PHASES = DOCKER
BY_NAME = {phase.name: phase for phase in DOCKER}
OPTIONS = ("state", "network", "bundle", "container", "provision", "relay", "archive", "machine")
# The phase options each backend requires (the others take their defaults, or are not the backend's).
BACKEND_OPTIONS = {"docker": ("container",), "smolmachines": ("archive",)}


def phase_of(backend, name):
    for phase in PLANS[backend]:
        if phase.name == name:
            return phase
    raise KeyError("%s has no phase %s" % (backend, name))


def argument_spec():
    """bottle_launch's options for its phases: state and bundle required; container (docker) and archive
    (smolmachines) required by backend (``BACKEND_OPTIONS``, bottle_launch's required_if)."""
    spec = {}
    for name in OPTIONS:
        phase = next(phase for plan in PLANS.values() for phase in plan if phase.name == name)
        if name in ("state", "bundle"):
            spec[name] = dict(type="dict", required=True, options=phase.nested_spec())
        else:
            spec[name] = dict(type="dict", default=None if name in ("container", "archive") else {},
                              options=phase.nested_spec())
    return spec
