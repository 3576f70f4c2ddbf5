# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_launch's phases, and the one place a docker launch is wired.

Each phase runs the logic of a module (bottle_state, bottle_network, sidecar_bundle, bottle_agent,
bottle_provision) with that module's argument spec, which its module_utils owns. bottle_launch takes
each phase's options as one dict option whose nested ``options`` are that spec less what is wired
here (``argument_spec``): Ansible validates them, fills their defaults and masks their secrets.

API:
- ``PHASES``: the phases in the order they run, each a ``LaunchPhase`` - ``name`` (bottle_launch's
  option), ``module`` (the module whose options it takes), ``spec``, ``wiring`` and ``dropped``.
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
from ansible_collections.botbottle.bottle.plugins.module_utils.phases import nested
from ansible_collections.botbottle.bottle.plugins.module_utils.state_write import STATE_SPEC

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

    def __init__(self, slug, agent, policy=None):
        self.slug, self.agent, self.policy = slug, agent, policy
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
        return run


def _mcp_servers(run, given):
    if "supervise" not in run.daemons:
        return given["mcp_servers"]
    return dict(given["mcp_servers"] or {}, supervise={"type": "http", "url": run.endpoints.get("supervise_url")})


PHASES = (
    LaunchPhase("state", "bottle_state", STATE_SPEC, dict(
        slug=lambda run, given: run.slug,
        state=lambda run, given: "present",
        policy=Adjusted(lambda run, given: run.policy),
    ), dropped=("archive_root", "archive_keep_days", "archive_keep"), required=("policy",)),
    LaunchPhase("network", "bottle_network", NETWORK_SPEC, dict(
        slug=lambda run, given: run.slug,
        agent=lambda run, given: run.agent,
        state=lambda run, given: "present",
    )),
    LaunchPhase("bundle", "sidecar_bundle", BUNDLE_SPEC, dict(
        slug=lambda run, given: run.slug,
        agent=lambda run, given: run.agent,
        state=lambda run, given: "present",
        internal_network=lambda run, given: run.internal["name"],
        internal_ip=lambda run, given: run.internal["bundle_ip"],
        egress_network=lambda run, given: run.egress["name"],
        config_hash=lambda run, given: run.config_hash,
        # The provisioning waits for the bundle's health.
        wait=lambda run, given: False,
    )),
    LaunchPhase("container", "bottle_agent", AGENT_SPEC, dict(
        slug=lambda run, given: run.slug,
        agent=lambda run, given: run.agent,
        state=lambda run, given: "present",
        network=lambda run, given: run.internal["name"],
        ip=lambda run, given: run.internal["agent_ip"],
        proxy_url=lambda run, given: run.endpoints.get("proxy_url"),
    )),
    LaunchPhase("provision", "bottle_provision", provisioning.PROVISION_SPEC, dict(
        transport=lambda run, given: "docker",
        target=lambda run, given: run.agent_name,
        bundle=lambda run, given: run.bundle_name,
        gate_host=lambda run, given: run.endpoints.get("address") if given.get("git_gate") else None,
        mcp_servers=Adjusted(_mcp_servers),
    )),
)
BY_NAME = {phase.name: phase for phase in PHASES}


def argument_spec():
    """bottle_launch's options for its phases (the state, bundle and container ones are required)."""
    spec = {}
    for phase in PHASES:
        if phase.name in ("network", "provision"):
            spec[phase.name] = dict(type="dict", default={}, options=phase.nested_spec())
        else:
            spec[phase.name] = dict(type="dict", required=True, options=phase.nested_spec())
    return spec
