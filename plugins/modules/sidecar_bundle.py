#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sidecar_bundle
short_description: The sidecar bundle container of one bottle
version_added: 0.1.0
description:
  - Creates, updates or removes the bundle container of bottle O(slug) - egress (the bottle's firewall),
    git-gate and supervise (and the optional pipelock in front of egress) under one init supervisor, with a pinned address on the bottle's internal
    network and a way out on its egress network.
  - After starting it waits until every selected daemon reports healthy (C(bottle-health --json) in the
    bundle) and fails with the daemon's own log lines when one does not (unless O(wait=false)).
  - With O(publish_address) (the smolmachines backend) the agent-facing ports are published on one
    loopback address of the bottle's own, C(127.0.0.X), each on its own port number, and on no other host
    address. V(auto) chooses the address - the one the bundle already publishes on, else a free address
    of O(publish_pool) picked from a hash of the slug - and never one another bottle's bundle uses.
  - A change of image, environment, mounts, networks, address, daemons, ports, publish address or
    capabilities recreates the container. A change of O(config_hash) alone does not; the bundle is sent C(SIGHUP) and reloads
    its configuration in place.
  - Environment values are passed through the Docker API, never on a command line, and never appear in
    diff output (keys only).
author: botbottle developers (@botbottle)
extends_documentation_fragment:
  - botbottle.bottle.docker
attributes:
  check_mode:
    description: Reports whether it would create, recreate, start or reload the bundle, touching nothing.
    support: full
  diff_mode:
    description: Shows the managed settings before and after; environment as its keys only.
    support: full
  idempotent:
    description: The container is read back and compared; a second run with the same options changes nothing.
    support: full
options:
  slug:
    description: The bottle's slug.
    type: str
    required: true
  agent:
    description: The agent the bottle runs (a label). Required with O(state=present).
    type: str
  name:
    description: Container name; defaults to V(bb-<slug>-bundle).
    type: str
  image:
    description: The bundle image. Required with O(state=present).
    type: str
  daemons:
    description: The daemons the bundle runs (its C(BOTTLE_DAEMONS)).
    type: list
    elements: str
    choices: [pipelock, egress, git-gate, supervise]
    default: [egress]
  env:
    description: Extra environment of the bundle. Values may be secrets.
    type: dict
    default: {}
  mounts:
    description: Bind mounts.
    type: list
    elements: dict
    default: []
    suboptions:
      source:
        description: Path on the managed host.
        type: path
        required: true
      target:
        description: Path in the bundle.
        type: str
        required: true
      read_only:
        description: Mount read-only.
        type: bool
        default: false
  internal_network:
    description:
      - The bottle's internal network, shared with the agent container (the docker backend).
      - With O(state=present) give O(internal_network) or O(egress_network) or both; without an internal
        network (the smolmachines backend, whose agent is a VM) the bundle's first network is
        O(egress_network).
    type: str
  internal_ip:
    description: The bundle's pinned address on O(internal_network).
    type: str
  egress_network:
    description: The bottle's way-out network.
    type: str
  extra_networks:
    description: Existing networks the bundle also joins (the test suite's test internet, for example).
    type: list
    elements: str
    default: []
  published_ports:
    description: Bundle ports to publish on the host; Docker chooses the host port.
    type: list
    elements: dict
    default: []
    suboptions:
      container_port:
        description: The bundle's port.
        type: int
        required: true
      host_ip:
        description: Host address to publish on (a per-bottle loopback address for smolmachines).
        type: str
        default: 127.0.0.1
  publish_address:
    description:
      - Publish O(publish_ports) on this host address, each port on the same port number
        (C(127.0.0.X:8888) -> 8888). A loopback address other than C(127.0.0.1), or V(auto) to choose
        one from O(publish_pool) (see the description). Fails when another bottle's bundle publishes on it.
      - Unset publishes nothing there (the docker backend).
    type: str
  publish_pool:
    description: Where V(auto) takes an address from; a range inside C(127.0.0.0/8).
    type: str
    default: 127.77.0.0/16
  publish_ports:
    description:
      - The bundle ports published on O(publish_address). Default - the agent-facing port of each
        daemon in O(daemons) (the proxy 8888 - egress, or pipelock in front of it -, git-gate 9418,
        supervise 9100).
    type: list
    elements: int
  backend:
    description: The bottle's backend, recorded as the C(io.botbottle.backend) label.
    type: str
    choices: [docker, smolmachines]
    default: docker
  cap_add:
    description: Capabilities of the bundle. C(NET_ADMIN) installs the proxy chain's redirect rule.
    type: list
    elements: str
    default: [NET_ADMIN]
  config_hash:
    description: Hash of the rendered configuration; a change reloads the running bundle (SIGHUP).
    type: str
  restart_policy:
    description: Docker restart policy. The default V(no) keeps a bundle whose daemon died stopped (fail closed).
    type: str
    choices: ['no', on-failure, unless-stopped, always]
    default: 'no'
  health_timeout:
    description: Seconds to wait for every daemon to be healthy.
    type: int
    default: 60
  wait:
    description:
      - Wait until every daemon is healthy before returning (see the description).
      - V(false) returns once the bundle runs, so that the agent is created and provisioned while the daemons
        start; M(botbottle.bottle.bottle_provision)'s O(botbottle.bottle.bottle_provision#module:bundle) then
        does the wait (the role's docker backend does so).
    type: bool
    default: true
  state:
    description: Whether the bundle should exist (and run).
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: The bundle of bottle demo
  botbottle.bottle.sidecar_bundle:
    slug: demo
    agent: demo
    image: botbottle/bundle:latest
    internal_network: bb-demo-net-int
    internal_ip: 172.29.18.34
    egress_network: bb-demo-net-out
    mounts:
      - {source: ~/.bot-bottle/state/demo/bundle, target: /etc/bottle, read_only: true}
      - {source: ~/.bot-bottle/state/demo/ca, target: /var/lib/bottle/ca}
    config_hash: "{{ rendered_hash }}"

- name: The bundle of a smolmachines bottle, its agent-facing ports on a loopback address of its own
  botbottle.bottle.sidecar_bundle:
    slug: vm
    agent: demo
    backend: smolmachines
    image: botbottle/bundle:latest
    egress_network: bb-vm-net-out
    publish_address: auto
    mounts:
      - {source: ~/.bot-bottle/state/vm/bundle, target: /etc/bottle, read_only: true}
      - {source: ~/.bot-bottle/state/vm/ca, target: /var/lib/bottle/ca}
  register: bundle   # bundle.publish_address is the VM's proxy address, e.g. 127.77.0.17

- name: Remove it
  botbottle.bottle.sidecar_bundle:
    slug: demo
    state: absent
"""

RETURN = r"""
container:
  description: The bundle container.
  returned: always
  type: dict
  sample: {id: 6b1f..., name: bb-demo-bundle}
ip:
  description: The bundle's address on the internal network.
  returned: when state=present
  type: str
endpoints:
  description:
    - How the agent reaches the bundle's daemons - at the published address with O(publish_address), else at
      O(internal_ip) - the proxy always, supervise's MCP endpoint and git-gate when they run. Empty when neither
      address is given.
  returned: when state=present
  type: dict
  sample: {address: 172.29.18.34, proxy_url: "http://172.29.18.34:8888", supervise_url: "http://172.29.18.34:9100/mcp",
           git_gate_url: "git://172.29.18.34:9418"}
host_ports:
  description: Host ports Docker chose for O(published_ports), by container port.
  returned: when state=present
  type: dict
  sample: {"8888": 49153}
health:
  description: Health of each daemon as the bundle reports it.
  returned: when state=present, O(wait=true) and not in check mode
  type: dict
  sample: {egress: healthy, supervise: healthy}
publish_address:
  description: The loopback address the agent-facing ports are published on (with O(publish_address)).
  returned: when state=present and O(publish_address) is set
  type: str
  sample: 127.77.0.17
publish_source:
  description: How V(auto) chose it - V(bundle) (kept from the running bundle), V(allocated) (new), or V(given).
  returned: when state=present and O(publish_address) is set
  type: str
reloaded:
  description: Whether the running bundle was told to reload its configuration.
  returned: always
  type: bool
"""

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config, loopback, naming
from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_health import BundleUnhealthy, wait_healthy
from ansible_collections.botbottle.bottle.plugins.module_utils.container_manager import (
    ENV, IMAGE, LABELS, NETWORKS, ContainerManager, Option, argument_spec, pinned_ip)
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    exec_in, get_docker_client, run_manager)


def binding_key(ip, host_port, port):
    """``ip:port`` (Docker picks the host port) or ``ip:host_port:port`` (a fixed one)."""
    return "%s:%s:%d" % (ip, host_port, port) if host_port else "%s:%d" % (ip, port)


def _current_mounts(manager, attrs):
    return sorted("%s:%s:%s" % (m.get("Source"), m.get("Destination"), "rw" if m.get("RW") else "ro")
                  for m in attrs.get("Mounts") or [] if m.get("Type") == "bind")


def _current_ports(manager, attrs):
    ports = []
    for spec, bindings in ((attrs.get("HostConfig") or {}).get("PortBindings") or {}).items():
        for binding in bindings or []:
            ports.append(binding_key(binding.get("HostIp") or "0.0.0.0", binding.get("HostPort") or "",
                                     int(spec.split("/")[0])))
    return sorted(ports)


MOUNTS = Option(
    "mounts",
    lambda m: sorted("%s:%s:%s" % (x["source"], x["target"], "ro" if x["read_only"] else "rw")
                     for x in m.p["mounts"]),
    _current_mounts)
PORTS = Option(
    "ports",
    lambda m: sorted(binding_key(ip, host_port, port)
                     for port, entries in m.port_bindings().items() for ip, host_port in entries),
    _current_ports)
CAP_ADD = Option("cap_add", lambda m: sorted(m.p["cap_add"]),
                 lambda m, attrs: sorted((attrs.get("HostConfig") or {}).get("CapAdd") or []))
RESTART_POLICY = Option(
    "restart_policy", lambda m: m.p["restart_policy"],
    lambda m, attrs: (((attrs.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"))


class BundleManager(ContainerManager):
    kind = "bundle"
    options = (IMAGE, ENV, LABELS, MOUNTS, NETWORKS, pinned_ip("internal_ip", "internal_ip", "internal_network"),
               PORTS, CAP_ADD, RESTART_POLICY)
    required = ("agent", "image")
    ip_param, network_param = "internal_ip", "internal_network"

    # Each daemon's agent-facing port: the proxy is egress, or pipelock in front of it (egress then
    # listens on the bundle's own loopback only).
    AGENT_PORTS = {"egress": 8888, "pipelock": 8888, "git-gate": 9418, "supervise": 9100}

    def __init__(self, module, client):
        super().__init__(module, client)
        self.result["reloaded"] = False
        self.publish_address = None

    def resolve_publish_address(self):
        """The address to publish on (None without publish_address); fails naming the fix."""
        wanted = self.p["publish_address"]
        if not wanted:
            return None
        try:
            if wanted == "auto":
                address, source = loopback.choose(self.p["slug"], self.p["publish_pool"], self.client)
            else:
                address, source = loopback.check_address(wanted), "given"
                owner = loopback.bundle_addresses(self.client).get(address)
                if owner not in (None, self.p["slug"]):
                    raise loopback.LoopbackError(
                        "%s is already published by the bundle of bottle %s: give bottle %s another address, "
                        "or use publish_address=auto" % (address, owner, self.p["slug"]))
        except loopback.LoopbackError as exc:
            self.module.fail_json(msg="publish_address: %s" % exc)
        self.result["publish_address"] = address
        self.result["publish_source"] = source
        return address

    def publish_ports(self):
        ports = self.p["publish_ports"]
        if ports is None:
            ports = [self.AGENT_PORTS[d] for d in self.p["daemons"] if d in self.AGENT_PORTS]
        return sorted(set(ports))

    def port_bindings(self):
        """``{container_port: [(host_ip, host_port or None), ...]}`` for every published port."""
        bindings = {}
        for p in self.p["published_ports"]:
            bindings.setdefault(p["container_port"], []).append((p["host_ip"], None))
        if self.publish_address:
            for port in self.publish_ports():
                bindings.setdefault(port, []).append((self.publish_address, port))
        return bindings

    # -- desired state -------------------------------------------------
    def desired_env(self):
        env = {"BOTTLE_DAEMONS": ",".join(self.p["daemons"])}
        env.update({k: str(v) for k, v in (self.p["env"] or {}).items()})
        return env

    def desired_labels(self):
        return naming.labels(self.p["slug"], self.p["agent"], "bundle", self.p["backend"])

    def desired_networks(self):
        nets = [self.p["internal_network"]] if self.p["internal_network"] else []
        if self.p["egress_network"]:
            nets.append(self.p["egress_network"])
        return nets + list(self.p["extra_networks"] or [])

    def check_present(self):
        if not (self.p["internal_network"] or self.p["egress_network"]):
            self.module.fail_json(msg="internal_network or egress_network is required when state=present: the "
                                      "bundle needs a network (docker backend: both; smolmachines: egress_network)")
        if self.p["internal_ip"] and not self.p["internal_network"]:
            self.module.fail_json(msg="internal_ip needs internal_network: drop internal_ip or name the network")
        self.publish_address = self.resolve_publish_address()
        self.result["endpoints"] = self.endpoints(self.publish_address or self.p["internal_ip"])

    def endpoints(self, address):
        """How the agent reaches this bundle's daemons, at ``address`` (the published loopback address, or
        the pinned internal one): the one place that knows the agent-facing ports."""
        if not address:
            return {}
        daemons = self.p["daemons"]
        out = {"address": address, "proxy_url": "http://%s:%d" % (address, self.AGENT_PORTS["egress"])}
        if "supervise" in daemons:
            out["supervise_url"] = "http://%s:%d/mcp" % (address, self.AGENT_PORTS["supervise"])
        if "git-gate" in daemons:
            out["git_gate_url"] = "git://%s:%d" % (address, self.AGENT_PORTS["git-gate"])
        return out

    # The configuration hash is no container setting: a change reloads the bundle in place.
    def diff_state(self, settings, container=None):
        loaded = self.current_config_hash() if container is not None else (self.p["config_hash"] or "")
        return dict(settings, config_hash=loaded)

    def converge(self, before, after):
        running = self.start_if_stopped()
        if before["config_hash"] != after["config_hash"]:
            self.result["changed"] = True
            if not self.check_mode and running:
                self.container.kill(signal="SIGHUP")
                self.result["reloaded"] = True
        if self.result["changed"] and not self.check_mode:
            self.record_config_hash()

    # Labels are fixed at creation. The hash of the configuration a running bundle has loaded since
    # (a reload, a restart) is kept in the bundle (module_utils/bundle_config.py, the reload protocol).
    def run_as_root(self, argv):
        return exec_in(self.container, argv, user="0")

    def current_config_hash(self):
        if self.container.status == "running":
            loaded = bundle_config.read_loaded_hash(self.run_as_root)
            if loaded:
                return loaded
        return (self.container.labels or {}).get(naming.LABEL_CONFIG_HASH, "")

    def record_config_hash(self):
        self.container.reload()
        if self.container.status == "running":
            try:
                bundle_config.record_loaded_hash(self.run_as_root, self.p["config_hash"] or "")
            except bundle_config.BundleConfigError as exc:
                # The bundle runs the new configuration; without the record the next run reloads it again.
                self.module.warn("%s; the next run reloads bundle %s again" % (exc, self.name))

    # -- creation ------------------------------------------------------
    def creation_labels(self, want):
        return dict(want["labels"], **{naming.LABEL_CONFIG_HASH: self.p["config_hash"] or ""})

    def host_config(self, want):
        from docker.types import Mount
        mounts = [Mount(target=m["target"], source=m["source"], type="bind", read_only=m["read_only"])
                  for m in self.p["mounts"]]
        ports = {"%d/tcp" % port: (entries[0] if len(entries) == 1 else entries)
                 for port, entries in self.port_bindings().items()}
        return dict(
            mounts=mounts, cap_add=self.p["cap_add"], port_bindings=ports or None,
            restart_policy={"Name": self.p["restart_policy"]} if self.p["restart_policy"] != "no" else None,
            init=False, security_opt=["no-new-privileges"])

    def container_args(self, want):
        return dict(ports=sorted(self.port_bindings()) or None)

    def connect_networks(self):
        for net in self.desired_networks()[1:]:
            self.client.networks.get(net).connect(self.container)

    def start_failure_hint(self):
        return " (networks: %s)" % ", ".join(self.desired_networks())

    # -- health and report ---------------------------------------------
    def finish(self):
        if self.p["wait"]:
            try:
                self.result["health"] = wait_healthy(self.container, self.p["health_timeout"], self.name)
            except BundleUnhealthy as exc:
                self.module.fail_json(msg=str(exc), **exc.details)
        self.report()

    def report(self):
        super().report()
        ports = (self.container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
        self.result["host_ports"] = {
            spec.split("/")[0]: int(bindings[0]["HostPort"])
            for spec, bindings in ports.items() if bindings}


def main():
    spec = argument_spec(
        daemons=dict(type="list", elements="str", default=["egress"],
                     choices=["pipelock", "egress", "git-gate", "supervise"]),
        env=dict(type="dict", default={}, no_log=True),
        mounts=dict(type="list", elements="dict", default=[], options=dict(
            source=dict(type="path", required=True),
            target=dict(type="str", required=True),
            read_only=dict(type="bool", default=False))),
        internal_network=dict(type="str"),
        internal_ip=dict(type="str"),
        egress_network=dict(type="str"),
        extra_networks=dict(type="list", elements="str", default=[]),
        published_ports=dict(type="list", elements="dict", default=[], options=dict(
            container_port=dict(type="int", required=True),
            host_ip=dict(type="str", default="127.0.0.1"))),
        publish_address=dict(type="str"),
        publish_pool=dict(type="str", default=loopback.DEFAULT_POOL),
        publish_ports=dict(type="list", elements="int"),
        backend=dict(type="str", default="docker", choices=list(naming.BACKENDS)),
        cap_add=dict(type="list", elements="str", default=["NET_ADMIN"]),
        config_hash=dict(type="str"),
        restart_policy=dict(type="str", default="no", choices=["no", "on-failure", "unless-stopped", "always"]),
        health_timeout=dict(type="int", default=60),
        wait=dict(type="bool", default=True),
    )
    run_manager(spec, BundleManager, "bundle", get_client=get_docker_client)


if __name__ == "__main__":
    main()
