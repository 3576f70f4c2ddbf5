# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sidecar bundle container of a bottle (module sidecar_bundle, phase of bottle_launch)."""

from __future__ import annotations

import re

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config, loopback, naming, resources
from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_health import BundleUnhealthy, wait_healthy
from ansible_collections.botbottle.bottle.plugins.module_utils.container_manager import (
    ENV, IMAGE, LABELS, NETWORKS, ContainerManager, Option, argument_spec, pinned_ip)
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import exec_in


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
MEMORY = Option("memory", lambda m: m.memory_bytes(),
                lambda m, attrs: (attrs.get("HostConfig") or {}).get("Memory") or 0)
# The bundle's Docker log (egress prints every decision there too, about 380 MB a million requests): bounded
# when the engine logs to json-file, its default; other drivers (local rotates on its own, journald, syslog)
# are the operator's choice and left alone.
LOG_SIZE_RE = re.compile(r"^[1-9][0-9]*[kmg]?$")


def _current_log(manager, attrs):
    config = (attrs.get("HostConfig") or {}).get("LogConfig") or {}
    kept = {k: v for k, v in (config.get("Config") or {}).items() if k in ("max-size", "max-file")}
    return {"type": config.get("Type") or "", "config": kept}


class LogOption(Option):
    """Only a bound the bundle asks for is compared (None: the engine's default driver is not json-file)."""

    def differs(self, have, want):
        return want is not None and have != want


LOG = LogOption("log", lambda m: m.log_config(), _current_log)
RESTART_POLICY = Option(
    "restart_policy", lambda m: m.p["restart_policy"],
    lambda m, attrs: (((attrs.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"))


class BundleManager(ContainerManager):
    kind = "bundle"
    options = (IMAGE, ENV, LABELS, MOUNTS, NETWORKS, pinned_ip("internal_ip", "internal_ip", "internal_network"),
               PORTS, CAP_ADD, RESTART_POLICY, MEMORY, LOG)
    required = ("agent", "image")
    ip_param, network_param = "internal_ip", "internal_network"

    # Each daemon's agent-facing port: the proxy is egress, or pipelock in front of it (egress then
    # listens on the bundle's own loopback only).
    AGENT_PORTS = {"egress": 8888, "pipelock": 8888, "git-gate": 9418, "supervise": 9100}

    def __init__(self, module, client):
        super().__init__(module, client)
        self.result["reloaded"] = False
        self.publish_address = None
        self._log_driver = None

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
    def memory_bytes(self):
        try:
            return resources.memory_bytes(self.p["memory"] or resources.BUNDLE_MEMORY, "memory")
        except ValueError as exc:
            self.module.fail_json(msg=str(exc))

    def log_config(self):
        """``{"type": "json-file", "config": {...}}`` to bound the log, or None to leave the engine's choice."""
        size, files = self.p["log_max_size"], self.p["log_max_files"]
        if not size:
            return None
        if not LOG_SIZE_RE.match(size):
            self.module.fail_json(msg="log_max_size: %r is not a size Docker takes: give a number with k, m or g "
                                      "(for example 10m), or an empty string for the engine's own setting" % size)
        if files < 1:
            self.module.fail_json(msg="log_max_files: %d must be at least 1 (the file being written)" % files)
        if self._log_driver is None:
            self._log_driver = self.client.info().get("LoggingDriver") or ""
        if self._log_driver != "json-file":
            return None
        return {"type": "json-file", "config": {"max-size": size, "max-file": str(files)}}

    # A new memory limit is applied with `docker update`: the daemons, their connections and held requests stay.
    def updatable(self, diffs, want):
        return diffs == ["memory"]

    def update_in_place(self, diffs, want):
        resources.docker_update(self.client.api, self.container.id, memory=want["memory"])

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
            init=False, security_opt=["no-new-privileges"], mem_limit=want["memory"],
            log_config=dict(want["log"]) if want["log"] else None)

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


# The module's options (also a phase of botbottle.bottle.bottle_launch).
BUNDLE_SPEC = argument_spec(
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
    memory=dict(type="str", default=resources.BUNDLE_MEMORY),
    log_max_size=dict(type="str", default="10m"),
    log_max_files=dict(type="int", default=3),
    wait=dict(type="bool", default=True),
)
