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
  memory:
    description:
      - Memory limit of the bundle (Docker syntax, for example V(1g)). The default is sized from a measurement of
        its daemons under load (docs/architecture.md, "Limits"), with headroom; empty is that default too.
      - A new limit on a running bundle is applied in place (C(docker update)); nothing is recreated or restarted.
    type: str
    default: 1g
  log_max_size:
    description:
      - Size at which Docker rotates the bundle's log (Docker syntax, for example V(10m)), when the engine logs
        to C(json-file), its default. Egress writes each decision there as well as to its audit file (about 380 MB
        a million requests unbounded); the audit file is the record, kept and archived, the log a view for
        C(docker logs).
      - Another default driver of the engine (C(local), which rotates on its own, C(journald), C(syslog), ...) is
        left alone. An empty string leaves the engine's setting.
      - Docker cannot change a container's log settings, so a new bound recreates the bundle (it holds no agent
        work; its state is on the host). A bundle made before this option existed is recreated once, at its next
        launch.
    type: str
    default: 10m
  log_max_files:
    description: How many log files Docker keeps with O(log_max_size) (the one being written included).
    type: int
    default: 3
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
created:
  description: Whether the container was created (in check mode - would be) because there was none.
  returned: always
  type: bool
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

from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_container import BUNDLE_SPEC, BundleManager
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import get_docker_client, run_manager


def main():
    spec = dict(BUNDLE_SPEC)
    run_manager(spec, BundleManager, "bundle", get_client=get_docker_client)


if __name__ == "__main__":
    main()
