#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_socket_relay
short_description: The host end of a smolmachines bottle's path to its bundle (Unix sockets to the bundle's ports)
version_added: 0.1.0
description:
  - A smolmachines VM has no network. It reaches the bundle's agent-facing ports through host Unix sockets
    that smolvm mounts into the guest (C(--mount-socket)); this module runs the host end - one detached
    process per bottle that listens on C(<state dir>/sockets/NAME.sock) and relays each connection to the
    bundle's published C(ADDRESS:PORT) - the proxy C(8888), git-gate C(9418), supervise C(9100), only
    those the bundle runs (O(daemons)). See docs/architecture.md, "The VM's network".
  - The process belongs to the user the module runs as, in a session of its own (it outlives the play), and
    is recorded in C(<state dir>/relay/) - its code (a copy of the collection's C(socket_relay.py), run by
    the managed host's Python), config, pid file and log. The sockets are mode 0600 in a 0700 directory.
  - With O(state=present) a relay that runs the same config and code is left alone; a dead one (a host
    reboot, a kill) is started again, and one with another config or code is stopped and started.
  - With O(state=absent) the relay of this bottle (its pid file's process, checked to run this bottle's
    script and config) is stopped, and its sockets and relay directory removed. Nothing of another bottle
    is touched.
author: botbottle developers (@botbottle)
attributes:
  check_mode:
    description: Reports whether the relay would be started, restarted or stopped, and changes nothing.
    support: full
  diff_mode:
    description: Not supported.
    support: none
  idempotent:
    description: A rerun finds the relay running with the same config and code and changes nothing.
    support: full
options:
  slug:
    description: The bottle's slug.
    type: str
    required: true
  state_root:
    description: The root of the bottles' state directories; the bottle's is C(<state_root>/<slug>).
    type: path
    default: ~/.bot-bottle/state
  address:
    description:
      - The loopback address the bundle publishes its ports on (C(127.0.0.X), never C(127.0.0.1)).
        Required with O(state=present).
    type: str
  daemons:
    description:
      - The daemons the bundle runs (as given to M(botbottle.bottle.sidecar_bundle)). C(egress) or C(pipelock)
        make the C(proxy) socket, C(git-gate) and C(supervise) their own. Required with O(state=present).
    type: list
    elements: str
  state:
    description: V(present) - the relay runs; V(absent) - it is stopped and its files are gone.
    type: str
    choices: [present, absent]
    default: present
  python:
    description: The Python that runs the relay. Default - the one running this module.
    type: path
  timeout:
    description: Seconds a new relay has to listen on every socket before the module fails with its log.
    type: float
    default: 10
notes:
  - A host reboot ends the relay, as it ends the VM; relaunching the bottle starts both again.
"""

EXAMPLES = r"""
- name: Host sockets of bottle demo, relaying to its bundle at 127.77.0.17
  botbottle.bottle.bottle_socket_relay:
    slug: demo
    address: 127.77.0.17
    daemons: [egress, git-gate, supervise]
  register: relay

- name: The VM mounts them
  botbottle.bottle.smolvm_machine:
    slug: demo
    agent: demo
    mount_sockets: "{{ relay.mounts }}"
    command: "{{ relay.guest_command }}"

- name: Stop it and remove its sockets
  botbottle.bottle.bottle_socket_relay:
    slug: demo
    state: absent
"""

RETURN = r"""
pid:
  description: The relay's pid (none when absent, or in check mode before a start).
  returned: always
  type: int
  sample: 41234
action:
  description: What was done (or would be in check mode) - V(none), V(start), V(restart), V(stop) or V(remove files) (a relay already gone).
  returned: always
  type: str
  sample: start
reason:
  description: Why, in words (for example V(not running (its pid file is stale))).
  returned: always
  type: str
sockets:
  description: The host sockets by service name.
  returned: when state=present
  type: dict
  sample: {proxy: /home/me/.bot-bottle/state/demo/sockets/proxy.sock}
mounts:
  description: The O(botbottle.bottle.smolvm_machine#module:mount_sockets) of the bottle's VM.
  returned: when state=present
  type: list
  elements: dict
  sample: [{host: /home/me/.bot-bottle/state/demo/sockets/proxy.sock, guest: /run/bottle/proxy.sock}]
guest_command:
  description: The VM's workload - the guest relay of the agent image, for these services.
  returned: when state=present
  type: list
  elements: str
  sample: [python3, /usr/local/lib/bottle/bottle_relay.py, guest, proxy, git-gate, supervise]
guest_env:
  description: The proxy variables of the guest (its relay on its own loopback).
  returned: when state=present
  type: dict
  sample: {HTTPS_PROXY: "http://127.0.0.1:8888", NO_PROXY: "localhost,127.0.0.1"}
guest_endpoints:
  description: How the guest reaches the bundle, in the shape of M(botbottle.bottle.sidecar_bundle)'s C(endpoints).
  returned: when state=present
  type: dict
  sample: {address: 127.0.0.1, proxy_url: "http://127.0.0.1:8888", git_gate_url: "git://127.0.0.1:9418",
           supervise_url: "http://127.0.0.1:9100/mcp"}
log:
  description: The relay's log file.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils.relay_process import RELAY_SPEC, run


def main():
    module = AnsibleModule(argument_spec=RELAY_SPEC, supports_check_mode=True)
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
