#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: smolvm_machine
short_description: A smolvm microVM (the smolmachines backend's agent)
version_added: 0.1.0
description:
  - Creates, starts, stops, updates or deletes a named smolvm machine by wrapping the C(smolvm) CLI
    (1.32 or later; the PyPI wheel C(smolmachines) ships it as C(smol/smol-vmm)).
  - The machine is read back with C(smolvm machine ls --json) and compared with the options; the module
    acts only on a difference. Every call uses C(--error-format json), and a failure carries smolvm's
    own error code and message.
  - Networking is off unless O(allow_cidrs) lists CIDRs; then the machine may reach exactly those
    (C(--allow-cidr), which smolvm 1.32 enforces on its virtio-net backend). The module never passes
    C(--net), C(--dns) or C(--allow-host), and never enables unrestricted networking. For a bottle
    (O(slug)) O(allow_cidrs) is at most one loopback C(/32) other than C(127.0.0.1).
  - O(mount_sockets) mount host Unix sockets into the guest (C(--mount-socket)), the path to the
    bundle that needs no guest network (see docs/architecture.md, "The VM's network").
  - O(secret_env) and O(secret_files) reach the guest by reference (C(--secret-env),
    C(--secret-file)) - smolvm persists the reference, never the value. A O(secret_env) value is
    handed to C(smolvm machine start) in its environment (never argv, never a file) each time the
    module starts the machine; a changed value takes effect at the next start.
  - O(env) holds no secret. At create it travels in a private temporary Smolfile (mode 0600, removed
    at once); smolvm keeps it in its database and shows it in C(machine ls --verbose), which is how a
    later run compares it. A change is applied with C(smolvm machine update -e/--remove-env) (a
    running machine is stopped for it and started again), keeping the machine and the agent's work.
  - Updated in place (C(smolvm machine update)) - O(env), O(allow_cidrs) when the old and new lists
    are both non-empty (applies live on a running machine), O(cpus) and O(memory) (a running machine
    is stopped for the update and started again).
  - Recreated (deleted and created again) - a different O(image), O(labels), secret references,
    O(mount_sockets), O(command) or O(user) (the label C(io.botbottle.create-spec) carries their digest), and an
    O(allow_cidrs) change from or to an empty list (turning networking on or off needs a new
    machine). A machine that was running is started again after a recreate.
  - With O(state=started) on a host that cannot boot guests (no C(/dev/kvm), a PVM-only KVM as in
    some cloud sandboxes, or C(/dev/kvm) not openable) the module fails at once with the reason and
    before changing anything, instead of waiting for a guest that never comes up.
author: botbottle developers (@botbottle)
attributes:
  check_mode:
    description: Reports the actions it would take and the predicted machine, running no changing smolvm command.
    support: full
  diff_mode:
    description: Shows the managed settings before and after (env only as its hash label).
    support: full
  idempotent:
    description: A second run with the same options reads the machine back and changes nothing.
    support: full
options:
  name:
    description:
      - The machine's name. Give either O(name) or O(slug).
    type: str
  slug:
    description:
      - The bottle's slug. The machine is then named C(bb-<slug>-agent) and carries the bottle labels
        (C(io.botbottle.bottle), C(io.botbottle.agent), C(io.botbottle.component=agent),
        C(io.botbottle.backend=smolmachines)), which win over O(labels).
    type: str
  agent:
    description: The agent the bottle runs; recorded as a label. Required with O(slug) unless O(state=absent).
    type: str
  state:
    description:
      - V(present) - the machine exists, running or not.
      - V(started) - it exists and runs. V(stopped) - it exists and does not run.
      - V(absent) - it does not exist (C(smolvm machine delete --force)).
    type: str
    choices: [present, started, stopped, absent]
    default: present
  image:
    description:
      - Path on the managed host of a C(docker save) (or OCI layout) archive the machine boots
        (C(docker save IMAGE -o PATH)). Compared by the archive's SHA-256, which smolvm reports as
        C(local:<sha256>).
      - Without it a new machine is a bare smolvm VM and an existing machine's image is not compared.
    type: path
  allow_cidrs:
    description:
      - CIDRs the machine may reach (C(--allow-cidr)). Empty means no network at all.
      - With O(slug) (a bottle) at most one, a loopback C(/32) (C(127.0.0.X/32), never
        C(127.0.0.1)); any other list is refused. C(0.0.0.0/0) and C(::/0) are always refused.
    type: list
    elements: str
    default: []
  env:
    description:
      - Environment of the machine's workload; no secret (use O(secret_env)). Keys are variable
        names; values hold no NUL and no line break. Applied with C(machine update -e) when it changes.
    type: dict
    default: {}
  secret_env:
    description:
      - Secret environment variables of the workload, by reference (C(--secret-env
        KEY=BOTBOTTLE_SECRET_KEY)). The values live only in the environment of the
        C(smolvm machine start) the module runs; smolvm persists the reference, never the value.
    type: dict
    default: {}
  secret_files:
    description:
      - Secret environment variables read from absolute host file paths at each start
        (C(--secret-file KEY=PATH)); only the path is persisted.
    type: dict
    default: {}
  command:
    description:
      - The machine's workload (C(machine create ... -- COMMAND)), launched at every start; without it smolvm
        launches the image's own ENTRYPOINT/CMD. A bottle's VM runs the agent image's guest relay
        (M(botbottle.bottle.bottle_socket_relay) returns it as C(guest_command)). A change recreates the machine.
    type: list
    elements: str
    default: []
  user:
    description:
      - The user the workload runs as (C(--user), a name from the image or C(uid[:gid])); the image's USER
        otherwise. A change recreates the machine.
    type: str
  mount_sockets:
    description:
      - Host Unix sockets mounted into the guest (C(--mount-socket HOST:GUEST)); both paths absolute.
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description: Absolute path of the socket on the host.
        type: path
        required: true
      guest:
        description: Absolute path the guest reaches it at.
        type: str
        required: true
  cpus:
    description: Maximum vCPUs. Unset leaves smolvm's default (4) at create and the current value after.
    type: int
  memory:
    description: Maximum memory in MiB. Unset leaves smolvm's default (8192) at create and the current value after.
    type: int
  labels:
    description:
      - Labels of the machine (C(--label KEY=VALUE), read back with C(machine ls --json)). smolvm has
        no way to change labels, so a change recreates the machine.
      - The keys C(io.botbottle.env-hash) and C(io.botbottle.create-spec) are reserved.
    type: dict
    default: {}
  stop_timeout:
    description: Seconds the workload gets after its stop signal when the module stops the machine (C(--timeout)).
    type: int
  smolvm_path:
    description:
      - The smolvm binary. Default - C(smolvm) on PATH, else C(smol/smol-vmm) of the C(smolmachines)
        wheel installed for the Python that runs this module.
    type: path
  state_dir:
    description:
      - smolvm's C(--state-dir) - keep all smolvm state under this directory instead of the user's
        default ones. Linux only (smolvm 1.32 says so) - ignored, with a warning, elsewhere. Tests use it
        to stay apart.
    type: path
notes:
  - Starting a machine needs hardware KVM on Linux or Hypervisor.framework on an Apple Silicon Mac;
    C(create), C(ls), C(update) and C(delete) work anywhere the CLI runs.
"""

EXAMPLES = r"""
- name: Agent VM of bottle demo, no network, its bundle through a mounted socket
  botbottle.bottle.smolvm_machine:
    slug: demo
    agent: demo
    image: /home/me/.bot-bottle/images/0123abcd.tar
    mount_sockets:
      - {host: /home/me/.bot-bottle/state/demo/sockets/proxy.sock, guest: /run/bottle/proxy.sock}
    command: [python3, /usr/local/lib/bottle/bottle_relay.py, guest, proxy]
    user: root
    env:
      HTTPS_PROXY: http://127.0.0.1:8888
    secret_env:
      GITHUB_TOKEN: "{{ token }}"
    cpus: 2
    memory: 4096
    state: started

- name: A named machine, created but not started
  botbottle.bottle.smolvm_machine:
    name: scratch
    image: /tmp/debian.tar
    labels:
      owner: me

- name: Remove it
  botbottle.bottle.smolvm_machine:
    name: scratch
    state: absent
"""

RETURN = r"""
machine:
  description:
    - The machine as C(smolvm machine ls --json) reports it after the run (empty when absent).
    - In check mode, the predicted values of the keys this module manages.
  returned: always
  type: dict
  sample: {name: bb-demo-agent, state: created, image: "local:a3e2...", cpus: 2, memory_mib: 4096,
           allowed_cidrs: [127.0.0.17/32], network: true, labels: {io.botbottle.bottle: demo}}
actions:
  description: What was done (or would be, in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [create, start]
name:
  description: The machine's name.
  returned: always
  type: str
  sample: bb-demo-agent
smolvm_path:
  description: The smolvm binary used.
  returned: always
  type: str
boot:
  description: Whether this host can boot guests, and why (see O(state=started)).
  returned: always
  type: dict
  sample: {supported: false, reason: "this host's KVM is PVM ..."}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils.vm_machine import MACHINE_EXCLUSIVE, MACHINE_SPEC, run


def main():
    module = AnsibleModule(argument_spec=MACHINE_SPEC, mutually_exclusive=MACHINE_EXCLUSIVE,
                           required_one_of=MACHINE_EXCLUSIVE, supports_check_mode=True)
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
