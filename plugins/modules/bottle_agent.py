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
  - A change of image, environment, address or user recreates the container (its work kept first with
    O(work_archive_root)); new limits (O(memory), O(cpus), O(pids_limit)) are applied in place with C(docker update).
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
    description:
      - Memory limit (Docker syntax, for example V(4g)); V(0) for none. Past it the kernel kills a process of the
        agent inside the agent's own cgroup (counted as an OOM kill by M(botbottle.bottle.bottle_info)).
      - A new limit on a running agent is applied in place (C(docker update)), without recreating the container;
        removing the limit recreates it (its work kept first, with O(work_archive_root)).
    type: str
    default: 4g
  cpus:
    description:
      - How many CPUs the agent may use (Docker's C(--cpus)); V(0) for no limit. More than the engine has is
        lowered to what it has, with a warning. Applied in place like O(memory).
    type: float
    default: 2
  pids_limit:
    description: Most processes and threads the agent may have. Applied in place like O(memory).
    type: int
    default: 512
  work_archive_root:
    description:
      - Before a container that differs from these options is recreated, keep the agent's work (unpushed commits and
        stash, uncommitted and untracked files, the loose files of C(~/work); see M(botbottle.bottle.bottle_remove))
        in an archive under this folder, C(<work_archive_root>/<slug>-<UTC time>/work/). Work that cannot be kept
        fails the module with the container left as it was.
      - Unset, a recreate keeps nothing.
    type: path
  work_max_bytes:
    description: The most the work kept before a recreate may take; what would pass it is skipped and listed.
    type: int
    default: 268435456
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
created:
  description: Whether the container was created (in check mode - would be) because there was none.
  returned: always
  type: bool
container:
  description: The agent container.
  returned: always
  type: dict
  sample: {id: 0c4e..., name: bb-demo-agent}
updated_in_place:
  description: The limits (memory, cpus, pids_limit) applied to the existing container with C(docker update) instead of
    recreating it.
  returned: when limits alone changed
  type: list
  elements: str
work:
  description:
    - With O(work_archive_root), when the container was recreated (in check mode, would be) - the agent's work kept
      first, as M(botbottle.bottle.bottle_remove) returns RV(botbottle.bottle.bottle_remove#module:work).
  returned: when the container was recreated with work_archive_root set
  type: dict
ip:
  description: The agent's address on its network.
  returned: when state=present and not in check mode
  type: str
"""

from ansible_collections.botbottle.bottle.plugins.module_utils.agent_container import AGENT_SPEC, AgentManager
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import get_docker_client, run_manager


def main():
    spec = dict(AGENT_SPEC)
    run_manager(spec, AgentManager, "agent", get_client=get_docker_client)


if __name__ == "__main__":
    main()
