#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_agent
short_description: The agent container of a docker-backend bottle
version_added: 0.1.0
description:
  - Creates, updates or removes the agent container of bottle O(slug).
  - The hardening is fixed, not optional - every capability dropped, C(no-new-privileges), a non-root
    user, no published ports, no mounts at all (so no docker socket), only the bottle's internal network,
    an init process, and DNS pointed at the container's own loopback.
  - On a user-defined network the container asks Docker's embedded DNS (V(127.0.0.11)), which answers the
    network's container names itself and forwards every other name to the configured servers. A C(dns)
    server in V(127.0.0.0/8) set by the user is asked from inside the container's own network namespace
    (not the host's), where nothing listens, so no external name resolves and no DNS packet leaves the
    container; C(timeout:1 attempts:1) makes the failure take about two seconds instead of twenty.
  - The only way out it is given is O(proxy_url) (C(HTTPS_PROXY)/C(HTTP_PROXY) in both cases); the proxy's
    own host is in C(NO_PROXY), as the bundle's other agent-facing ports (git-gate, supervise) are reached
    directly;
    C(NODE_EXTRA_CA_CERTS) points at the bottle CA that M(botbottle.bottle.bottle_provision) installs.
  - A change of image, environment, address, user or limits recreates the container.
author: botbottle developers (@botbottle)
extends_documentation_fragment:
  - botbottle.bottle.docker
attributes:
  check_mode:
    description: Reports whether it would create, recreate or start the agent, touching nothing.
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
    description: The agent's name (a label). Required with O(state=present).
    type: str
  name:
    description: Container name; defaults to V(bb-<slug>-agent).
    type: str
  image:
    description: The agent image. Required with O(state=present).
    type: str
  network:
    description: The bottle's internal network. Required with O(state=present).
    type: str
  ip:
    description: The agent's pinned address on O(network).
    type: str
  proxy_url:
    description: The bundle's pipelock, for example V(http://172.29.18.34:8888). Required with O(state=present).
    type: str
  env:
    description: Environment of the agent that is not secret (the policy's and the agent's C(env)).
    type: dict
    default: {}
  secret_env:
    description:
      - Environment values the agent may hold but must never send (an API key it uses legitimately).
        Kept out of logs and diff output; pipelock's DLP is told about them separately.
    type: dict
    default: {}
  user:
    description: User (uid:gid) the agent runs as; root (V(0), V(root)) is refused.
    type: str
    default: '1000:1000'
  memory:
    description: Memory limit (Docker syntax, for example V(4g)); none by default.
    type: str
  pids_limit:
    description: Most processes the agent may have.
    type: int
    default: 512
  state:
    description: Whether the agent container should exist (and run).
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Agent of bottle demo
  botbottle.bottle.bottle_agent:
    slug: demo
    agent: demo
    image: botbottle/agent:latest
    network: bb-demo-net-int
    ip: 172.29.18.35
    proxy_url: http://172.29.18.34:8888
"""

RETURN = r"""
container:
  description: The agent container.
  returned: always
  type: dict
  sample: {id: 0c4e..., name: bb-demo-agent}
ip:
  description: The agent's address on its network.
  returned: when state=present and not in check mode
  type: str
"""

from urllib.parse import urlsplit

from ansible_collections.botbottle.bottle.plugins.module_utils import naming
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DockerException, env_list_to_dict, find_container, find_image, get_docker_client, run_manager)

CA_PATH = "/usr/local/share/ca-certificates/bottle-ca.crt"
# Docker's embedded DNS forwards unknown names to these servers; a user-set 127.x server is
# dialled inside the container's own namespace, where nothing listens (see DOCUMENTATION).
DNS = ["127.0.0.1"]
DNS_OPTIONS = ["timeout:1", "attempts:1"]


class AgentManager:
    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.p = module.params
        self.check_mode = module.check_mode
        self.name = self.p["name"] or naming.object_name(self.p["slug"], "agent")
        self.container = find_container(client, self.name)
        self.result = dict(changed=False, container={"id": None, "name": self.name}, diff=dict(before={}, after={}))

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
            "NODE_EXTRA_CA_CERTS": CA_PATH,
        })
        return env

    def memory_bytes(self):
        if not self.p["memory"]:
            return 0
        from docker.utils import parse_bytes
        try:
            return parse_bytes(self.p["memory"])
        except DockerException as exc:
            self.module.fail_json(msg="memory %r is not a size: use Docker syntax such as '4g' or '512m' (%s)"
                                      % (self.p["memory"], exc))

    def desired(self, image_id):
        return {
            "image": image_id,
            "env": self.desired_env(),
            "labels": naming.labels(self.p["slug"], self.p["agent"], "agent"),
            "networks": [self.p["network"]],
            "ip": self.p["ip"] or "",
            "user": self.p["user"],
            "memory": self.memory_bytes(),
            "pids_limit": self.p["pids_limit"],
        }

    def current(self):
        c = self.container.attrs
        cfg, host = c.get("Config") or {}, c.get("HostConfig") or {}
        nets = (c.get("NetworkSettings") or {}).get("Networks") or {}
        image_env = env_list_to_dict((self.client.api.inspect_image(c["Image"]).get("Config") or {}).get("Env"))
        want_env = self.desired_env()
        env = {k: v for k, v in env_list_to_dict(cfg.get("Env")).items() if image_env.get(k) != v or k in want_env}
        ip = ((nets.get(self.p["network"]) or {}).get("IPAMConfig") or {}).get("IPv4Address") or ""
        wanted_labels = naming.labels(self.p["slug"], self.p["agent"], "agent")
        return {
            "image": c.get("Image"),
            "env": env,
            "labels": {k: v for k, v in (cfg.get("Labels") or {}).items() if k in wanted_labels},
            "networks": sorted(nets),
            "ip": ip,
            "user": cfg.get("User") or "",
            "memory": host.get("Memory") or 0,
            "pids_limit": host.get("PidsLimit"),
        }

    @staticmethod
    def redact(state):
        if not state:
            return state
        shown = dict(state)
        shown["env"] = sorted(state.get("env", {}))
        return shown

    def present(self):
        for key in ("agent", "image", "network", "proxy_url"):
            if not self.p[key]:
                self.module.fail_json(msg="%s is required when state=present" % key)
        if self.p["user"].split(":")[0] in ("0", "root", ""):
            self.module.fail_json(msg="user %r runs the agent as root: use a non-root uid:gid such as '1000:1000'"
                                      % self.p["user"])
        image = find_image(self.client, self.p["image"])
        if image is None:
            self.module.fail_json(msg="agent image %s is not in the local image cache: build it with `make images` "
                                      "(playbooks/images.yml)" % self.p["image"])
        want = self.desired(image.id)
        if self.container is None:
            self.result.update(changed=True, diff=dict(before={}, after=self.redact(want)))
            if not self.check_mode:
                self.create(want)
        else:
            have = self.current()
            self.result["diff"] = dict(before=self.redact(have), after=self.redact(want))
            diffs = sorted(k for k in want if have.get(k) != want[k])
            if diffs:
                self.result.update(changed=True, recreated_for=diffs)
                if not self.check_mode:
                    self.container.remove(force=True)
                    self.create(want)
            elif self.container.status != "running":
                self.result.update(changed=True, restarted=True)
                if not self.check_mode:
                    self.container.start()
        if self.container is not None and not self.check_mode:
            self.container.reload()
            nets = (self.container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
            self.result["container"] = {"id": self.container.id, "name": self.name}
            self.result["ip"] = (nets.get(self.p["network"]) or {}).get("IPAddress")

    def create(self, want):
        labels = dict(want["labels"])
        host_config = self.client.api.create_host_config(
            cap_drop=["ALL"], security_opt=["no-new-privileges"], init=True,
            dns=DNS, dns_opt=DNS_OPTIONS, dns_search=["."],
            pids_limit=want["pids_limit"], mem_limit=want["memory"] or None,
            # The one network; without a mode Docker would attach the default bridge as well.
            network_mode=want["networks"][0],
            privileged=False, publish_all_ports=False)
        networking = self.client.api.create_networking_config({
            want["networks"][0]: self.client.api.create_endpoint_config(ipv4_address=want["ip"] or None)})
        created = self.client.api.create_container(
            want["image"], name=self.name, environment=want["env"], labels=labels, user=want["user"],
            host_config=host_config, networking_config=networking, detach=True, hostname=self.name)
        self.container = self.client.containers.get(created["Id"])
        try:
            self.container.start()
        except DockerException as exc:
            self.container.remove(force=True)
            self.container = None
            self.module.fail_json(msg="could not start agent %s: %s" % (self.name, exc))

    def absent(self):
        if self.container is None:
            return
        if (self.container.labels or {}).get(naming.LABEL_BOTTLE) != self.p["slug"]:
            self.module.fail_json(msg="container %s does not carry label %s=%s: not removing what is not the bottle's"
                                      % (self.name, naming.LABEL_BOTTLE, self.p["slug"]))
        self.result.update(changed=True, diff=dict(before={"name": self.name, "status": self.container.status},
                                                   after={}))
        self.result["container"]["id"] = self.container.id
        if not self.check_mode:
            self.container.remove(force=True)


def main():
    argument_spec = dict(
        slug=dict(type="str", required=True),
        agent=dict(type="str"),
        name=dict(type="str"),
        image=dict(type="str"),
        network=dict(type="str"),
        ip=dict(type="str"),
        proxy_url=dict(type="str"),
        env=dict(type="dict", default={}),
        secret_env=dict(type="dict", default={}, no_log=True),
        user=dict(type="str", default="1000:1000"),
        memory=dict(type="str"),
        pids_limit=dict(type="int", default=512),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    run_manager(argument_spec, AgentManager, "agent", get_client=get_docker_client)


if __name__ == "__main__":
    main()
