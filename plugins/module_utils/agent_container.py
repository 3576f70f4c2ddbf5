# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent container of a docker-backend bottle (module bottle_agent, phase of bottle_launch)."""

from __future__ import annotations

import os
import shutil
import tempfile
from urllib.parse import urlsplit

from ansible_collections.botbottle.bottle.plugins.module_utils import agent_work, audit_archive, naming, resources
from ansible_collections.botbottle.bottle.plugins.module_utils.container_manager import (
    ENV, IMAGE, LABELS, NETWORKS, ContainerManager, Option, argument_spec, pinned_ip)
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import DockerException

CA_PATH = "/usr/local/share/ca-certificates/bottle-ca.crt"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Where each TLS client of the agent looks for its trust anchors, in every backend. The system store
# holds the public roots plus the bottle CA once bottle_provision has run update-ca-certificates
# (passthrough hosts keep their real certificates, so the public roots stay); the variables point
# the clients that would use a bundle of their own (pip's and requests' certifi, cargo) or read one
# variable only at it. Node keeps its built-in roots and adds the bottle CA. The agent image sets
# the same values (images/agent/Dockerfile) for `docker exec` sessions.
CA_ENV = {
    "SSL_CERT_FILE": SYSTEM_CA_BUNDLE,       # OpenSSL: Python's ssl, uv, Ruby, Go's crypto/x509
    "CURL_CA_BUNDLE": SYSTEM_CA_BUNDLE,      # curl
    "REQUESTS_CA_BUNDLE": SYSTEM_CA_BUNDLE,  # requests (certifi otherwise)
    "PIP_CERT": SYSTEM_CA_BUNDLE,            # pip (its vendored certifi otherwise)
    "GIT_SSL_CAINFO": SYSTEM_CA_BUNDLE,      # git over HTTPS
    "CARGO_HTTP_CAINFO": SYSTEM_CA_BUNDLE,   # cargo
    "NODE_EXTRA_CA_CERTS": CA_PATH,          # node, npm, Claude Code: added to node's own roots
}
# Docker's embedded DNS forwards unknown names to these servers; a user-set 127.x server is
# dialled inside the container's own namespace, where nothing listens (see DOCUMENTATION).
DNS = ["127.0.0.1"]
DNS_OPTIONS = ["timeout:1", "attempts:1"]
OOM_SCORE_ADJ = 500

USER = Option("user", lambda m: m.p["user"], lambda m, attrs: (attrs.get("Config") or {}).get("User") or "")
MEMORY = Option("memory", lambda m: m.memory_bytes(),
                lambda m, attrs: (attrs.get("HostConfig") or {}).get("Memory") or 0)
CPUS = Option("cpus", lambda m: m.cpus(),
              lambda m, attrs: ((attrs.get("HostConfig") or {}).get("NanoCpus") or 0) / 1e9)
PIDS_LIMIT = Option("pids_limit", lambda m: m.p["pids_limit"],
                    lambda m, attrs: (attrs.get("HostConfig") or {}).get("PidsLimit"))
# The limits `docker update` changes on a running container (its processes and files stay).
LIMITS = ("memory", "cpus", "pids_limit")


class AgentManager(ContainerManager):
    kind = "agent"
    options = (IMAGE, ENV, LABELS, NETWORKS, pinned_ip("ip", "ip", "network"), USER, MEMORY, CPUS, PIDS_LIMIT)
    required = ("agent", "image", "network", "proxy_url")
    ip_param, network_param = "ip", "network"

    def desired_env(self):
        env = {k: str(v) for k, v in (self.p["env"] or {}).items()}
        env.update({k: str(v) for k, v in (self.p["secret_env"] or {}).items()})
        proxy = self.p["proxy_url"]
        # The bundle itself is reached directly (supervise's MCP endpoint, git-gate): through pipelock
        # it would be an internal address, refused by its SSRF protection.
        bundle = urlsplit(proxy).hostname if proxy else None
        no_proxy = ",".join(["localhost", "127.0.0.1"]
                            + ([bundle] if bundle and bundle not in ("localhost", "127.0.0.1") else []))
        env.update({
            "HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "https_proxy": proxy, "http_proxy": proxy,
            "NO_PROXY": no_proxy, "no_proxy": no_proxy,
        })
        env.update(CA_ENV)
        return env

    def desired_labels(self):
        return naming.labels(self.p["slug"], self.p["agent"], "agent")

    def desired_networks(self):
        return [self.p["network"]]

    def memory_bytes(self):
        """The memory limit in bytes; 0 (V(0) or empty) for none."""
        if str(self.p["memory"] or "0").strip() == "0":
            return 0
        try:
            return resources.memory_bytes(self.p["memory"], "memory")
        except ValueError as exc:
            self.module.fail_json(msg=str(exc))

    def cpus(self):
        """The CPU limit (0 for none), at most the engine's CPUs: Docker refuses more, and a policy written
        for a larger host still launches on a smaller one (with a warning)."""
        wanted = float(self.p["cpus"] or 0)
        if wanted and wanted < 0.01:
            self.module.fail_json(msg="cpus %r is not a number of CPUs: write how many CPUs the agent may use, "
                                      "such as 2 or 0.5 (at least 0.01), or 0 for no limit" % self.p["cpus"])
        if not hasattr(self, "_engine_cpus"):
            try:
                self._engine_cpus = int(self.client.info().get("NCPU") or 0)
            except (DockerException, AttributeError, TypeError, ValueError):
                self._engine_cpus = 0
        if wanted and self._engine_cpus and wanted > self._engine_cpus:
            self.module.warn("cpus %g is more than the %d CPUs of this host's engine: the agent gets %d"
                             % (wanted, self._engine_cpus, self._engine_cpus))
            wanted = float(self._engine_cpus)
        return wanted

    def check_present(self):
        if self.p["user"].split(":")[0] in ("0", "root", ""):
            self.module.fail_json(msg="user %r runs the agent as root: use a non-root uid:gid such as '1000:1000'"
                                      % self.p["user"])

    # New limits (memory, cpus, pids) are applied with `docker update` (the agent and its work stay);
    # removing a limit (0) cannot be done in place and recreates, keeping the work first (before_recreate).
    def updatable(self, diffs, want):
        return set(diffs) <= set(LIMITS) and all(want[name] for name in diffs)

    def update_in_place(self, diffs, want):
        resources.docker_update(self.client.api, self.container.id,
                                memory=want["memory"] if "memory" in diffs else None,
                                cpus=want["cpus"] if "cpus" in diffs else None,
                                pids=want["pids_limit"] if "pids_limit" in diffs else None)

    def before_recreate(self, diffs):
        """The agent's work goes into an archive before its container is made again (``work_archive_root``):
        ``<root>/<slug>-<UTC time>/work/``, as a teardown keeps it. Work that cannot be kept fails the module with
        the container as it was. The result's ``work`` says what was kept (in check mode, what would be)."""
        root = self.p.get("work_archive_root")
        if not root:
            return
        root = os.path.abspath(os.path.expanduser(root))
        staging = None
        try:
            os.makedirs(root, mode=0o700, exist_ok=True)
            staging = tempfile.mkdtemp(prefix=".%s-work-" % self.p["slug"], dir=root)
            work = agent_work.snapshot_container(self.container, staging, self.p["work_max_bytes"])
            made = None
            if work["lines"] and not self.check_mode:
                # No state directory is copied: the bottle's audit stays with the bottle.
                made = audit_archive.create(os.path.join(staging, "no-state"), root, self.p["slug"],
                                            work=staging)["path"]
                agent_work.relocate(made)
        except (agent_work.WorkError, audit_archive.ArchiveError, OSError) as exc:
            self.module.fail_json(msg="the agent container %s must be recreated (%s differ) but its work could not be "
                                      "kept first: %s. The container was left as it was. Fix the cause, take the work "
                                      "out (the playbook botbottle.bottle.snapshot), or discard it explicitly with "
                                      "-e bottle_archive_work=false" % (self.name, ", ".join(diffs), exc))
        finally:
            if staging:
                shutil.rmtree(staging, ignore_errors=True)
        where = made or "<archive>"
        self.result["work"] = dict(work, restore=os.path.join(made, "work", "RESTORE.txt") if made else None, lines=[
            "%s%s" % ("would keep " if self.check_mode else "kept ", line.replace("-> work/", "-> %s/work/" % where, 1))
            for line in work["lines"]])

    # The hardening: fixed, no option weakens it (see DOCUMENTATION).
    def host_config(self, want):
        return dict(
            cap_drop=["ALL"], security_opt=["no-new-privileges"], init=True,
            dns=DNS, dns_opt=DNS_OPTIONS, dns_search=["."],
            pids_limit=want["pids_limit"], mem_limit=want["memory"] or None,
            nano_cpus=resources.nano_cpus(want["cpus"]) or None,
            # The kernel's OOM killer picks agent processes long before a bundle daemon (whose score stays 0:
            # lowering it needs CAP_SYS_RESOURCE). Not compared: an agent made before keeps its score until
            # it is recreated, rather than being recreated for it.
            oom_score_adj=OOM_SCORE_ADJ,
            privileged=False, publish_all_ports=False)

    def container_args(self, want):
        return dict(user=want["user"], hostname=self.name)


# The module's options (also a phase of botbottle.bottle.bottle_launch).
AGENT_SPEC = argument_spec(
    network=dict(type="str"),
    ip=dict(type="str"),
    proxy_url=dict(type="str"),
    env=dict(type="dict", default={}),
    secret_env=dict(type="dict", default={}, no_log=True),
    user=dict(type="str", default="1000:1000"),
    memory=dict(type="str", default=resources.AGENT_DEFAULTS["memory"]),
    cpus=dict(type="float", default=resources.AGENT_DEFAULTS["cpus"]),
    pids_limit=dict(type="int", default=resources.AGENT_DEFAULTS["pids"]),
    work_archive_root=dict(type="path"),
    work_max_bytes=dict(type="int", default=agent_work.DEFAULT_MAX_BYTES),
)
