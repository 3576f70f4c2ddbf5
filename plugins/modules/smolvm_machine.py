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
    (C(--allow-cidr)). The module never enables unrestricted networking.
  - O(env) travels in a private temporary Smolfile (mode 0600, removed at once), never on argv.
    smolvm does not report env back, so the machine carries the label C(io.botbottle.env-hash), a
    salted SHA-256 of the env, which tells a later run whether the env changed.
  - Updated in place (C(smolvm machine update)) - O(allow_cidrs) when the old and new lists are both
    non-empty (applies live on a running machine), O(cpus) and O(memory) (a running machine is
    stopped for the update and started again).
  - Recreated (deleted and created again) - a different O(image), O(env) or O(labels), and an
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
      - CIDRs the machine may reach (C(--allow-cidr)); for a bottle, the bundle's loopback address
        C(127.0.0.X/32). Empty means no network at all.
    type: list
    elements: str
    default: []
  env:
    description:
      - Environment of the machine's workload. Values never appear on argv (see the description).
    type: dict
    default: {}
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
      - The key C(io.botbottle.env-hash) is reserved.
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
        default ones (Linux only). Tests use it to stay apart.
    type: path
notes:
  - Starting a machine needs hardware KVM on Linux or Hypervisor.framework on macOS;
    C(create), C(ls), C(update) and C(delete) work anywhere the CLI runs.
"""

EXAMPLES = r"""
- name: Agent VM of bottle demo, reaching only its bundle
  botbottle.bottle.smolvm_machine:
    slug: demo
    agent: demo
    image: /home/me/.bot-bottle/state/demo/agent.tar
    allow_cidrs: [127.0.0.17/32]
    env:
      HTTPS_PROXY: http://127.0.0.17:8888
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

import ipaddress
import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils import naming
from ansible_collections.botbottle.bottle.plugins.module_utils import smolvm

ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def normalise_cidrs(module, cidrs):
    out = []
    for cidr in cidrs or []:
        try:
            out.append(str(ipaddress.ip_network(cidr.strip(), strict=False)))
        except ValueError as exc:
            module.fail_json(msg="allow_cidrs: %r is not a CIDR (%s): write it like 127.0.0.17/32" % (cidr, exc))
    return sorted(set(out))


def check_env(module, env):
    clean = {}
    for key, value in (env or {}).items():
        if not ENV_KEY_RE.match(key):
            module.fail_json(msg="env: key %r is not an environment variable name: use letters, digits and '_', "
                                 "not starting with a digit" % key)
        value = "" if value is None else str(value)
        if "\x00" in value:
            module.fail_json(msg="env: the value of %s contains a NUL byte, which no environment can hold" % key)
        clean[key] = value
    return clean


def check_labels(module, labels):
    clean = {}
    for key, value in (labels or {}).items():
        if not key or "=" in key:
            module.fail_json(msg="labels: key %r is invalid: a label key must be non-empty and contain no '='" % key)
        if key == smolvm.ENV_HASH_LABEL:
            module.fail_json(msg="labels: %s is reserved for the env hash: remove it from labels" % key)
        clean[key] = "" if value is None else str(value)
    return clean


def describe(machine):
    """The parts of an ``ls --json`` entry this module manages, normalised for comparison."""
    if not machine:
        return {}
    return {
        "name": machine.get("name"),
        "state": machine.get("state"),
        "image": machine.get("image"),
        "cpus": machine.get("cpus"),
        "memory_mib": machine.get("memory_mib"),
        "allowed_cidrs": sorted(machine.get("allowed_cidrs") or []),
        "labels": dict(machine.get("labels") or {}),
    }


class MachineManager:
    def __init__(self, module, cli):
        self.module = module
        self.cli = cli
        self.p = module.params
        self.check_mode = module.check_mode
        self.name = self.p["name"] or naming.object_name(self.p["slug"], "agent")
        self.actions = []
        self.boot = None
        self.existing = self.call(self.cli.get_machine, self.name)
        self.result = dict(changed=False, name=self.name, actions=self.actions, machine={},
                           smolvm_path=cli.binary, diff=dict(before=describe(self.existing), after={}))

    # -- helpers

    def call(self, func, *args):
        try:
            return func(*args)
        except smolvm.SmolvmError as exc:
            self.module.fail_json(msg="smolvm failed for machine %s: %s" % (self.p["name"] or self.p["slug"], exc),
                                  error_code=exc.code, actions=self.actions)

    def step(self, action, words, smolfile_env=None):
        """Record ``action`` and, unless in check mode, run it."""
        self.actions.append(action)
        self.result["changed"] = True
        if self.check_mode:
            return
        if smolfile_env is None:
            self.call(self.cli.run, words)
            return
        with smolvm.env_smolfile(smolfile_env) as path:
            self.call(self.cli.run, words + smolvm.opt_smolfile(path))

    def boot_check(self):
        if self.boot is None:
            supported, reason = smolvm.boot_supported()
            self.boot = dict(supported=supported, reason=reason)
        return self.boot

    def require_boot(self):
        boot = self.boot_check()
        if not boot["supported"]:
            self.module.fail_json(msg="cannot start smolvm machine %s: %s" % (self.name, boot["reason"]),
                                  boot=boot, actions=self.actions)

    # -- what we want

    def desired(self):
        labels = check_labels(self.module, self.p["labels"])
        if self.p["slug"]:
            labels.update(naming.labels(self.p["slug"], self.p["agent"], "agent", "smolmachines"))
        env = check_env(self.module, self.p["env"])
        digest = smolvm.env_hash(self.name, env)
        if digest:
            labels[smolvm.ENV_HASH_LABEL] = digest
        image = self.p["image"]
        image_ref = None
        if image:
            if not os.path.isfile(image):
                self.module.fail_json(msg="image %s is not a file: write the agent image there with "
                                          "'docker save IMAGE -o %s'" % (image, image))
            image_ref = smolvm.image_ref(image)
        return dict(
            name=self.name, image=image, image_ref=image_ref, env=env, labels=labels,
            allow_cidrs=normalise_cidrs(self.module, self.p["allow_cidrs"]),
            cpus=self.p["cpus"], memory=self.p["memory"],
        )

    def differences(self, want):
        """(reasons to recreate, allow list to set or None, resources to set or {})."""
        have = describe(self.existing)
        recreate = []
        if want["image_ref"] and have["image"] != want["image_ref"]:
            recreate.append("image")
        if have["labels"] != want["labels"]:
            env_changed = have["labels"].get(smolvm.ENV_HASH_LABEL) != want["labels"].get(smolvm.ENV_HASH_LABEL)
            others = {k: v for k, v in have["labels"].items() if k != smolvm.ENV_HASH_LABEL} != \
                {k: v for k, v in want["labels"].items() if k != smolvm.ENV_HASH_LABEL}
            recreate += (["env"] if env_changed else []) + (["labels"] if others else [])
        allowlist = None
        if have["allowed_cidrs"] != want["allow_cidrs"]:
            if not have["allowed_cidrs"] or not want["allow_cidrs"]:
                recreate.append("allow_cidrs (networking turned %s)" % ("on" if want["allow_cidrs"] else "off"))
            else:
                allowlist = want["allow_cidrs"]
        resources = {}
        if want["cpus"] is not None and have["cpus"] != want["cpus"]:
            resources["cpus"] = want["cpus"]
        if want["memory"] is not None and have["memory_mib"] != want["memory"]:
            resources["memory"] = want["memory"]
        return recreate, allowlist, resources

    def predicted(self, want, state):
        have = describe(self.existing) if state != "created" else {}
        return {
            "name": self.name,
            "state": state,
            "image": want["image_ref"] or have.get("image"),
            "cpus": want["cpus"] if want["cpus"] is not None else have.get("cpus", 4),
            "memory_mib": want["memory"] if want["memory"] is not None else have.get("memory_mib", 8192),
            "allowed_cidrs": want["allow_cidrs"],
            "labels": want["labels"],
        }

    # -- states

    def present(self):
        state = self.p["state"]
        if self.p["slug"] and not self.p["agent"]:
            self.module.fail_json(msg="agent is required with slug when state=%s" % state)
        want = self.desired()
        was_running = bool(self.existing) and self.existing.get("state") == "running"
        keep_running = {"started": True, "stopped": False}.get(state, was_running)

        if self.existing:
            recreate, allowlist, resources = self.differences(want)
        else:
            recreate, allowlist, resources = [], None, {}
        needs_stop = bool(recreate) or bool(resources)
        will_start = keep_running and (not was_running or needs_stop)
        if will_start:
            self.require_boot()  # before changing anything: a launch that cannot finish leaves nothing behind
        end_state = self.existing.get("state") if self.existing else "created"
        if recreate:
            self.result["recreate_reasons"] = recreate
            self.step("delete", smolvm.delete_argv(self.name))
        if recreate or not self.existing:
            self.step("create", smolvm.create_argv(want), smolfile_env=want["env"])
            end_state = "created"
        else:
            if allowlist is not None:
                self.step("update allow list", smolvm.update_allowlist_argv(self.name, allowlist))
            if resources:
                if was_running:
                    self.step("stop", smolvm.stop_argv(self.name, self.p["stop_timeout"]))
                    end_state = "stopped"
                self.step("update resources", smolvm.update_resources_argv(self.name, **resources))
        if will_start:
            self.step("start", smolvm.start_argv(self.name))
            end_state = "running"
        elif not keep_running and end_state == "running":
            self.step("stop", smolvm.stop_argv(self.name, self.p["stop_timeout"]))
            end_state = "stopped"
        self.finish(want, end_state)

    def absent(self):
        if self.existing:
            self.step("delete", smolvm.delete_argv(self.name))
        self.result["diff"]["after"] = {}

    def finish(self, want, end_state):
        predicted = self.predicted(want, end_state)
        if self.check_mode:
            self.result["machine"] = predicted
            self.result["diff"]["after"] = predicted
            return
        machine = self.call(self.cli.get_machine, self.name) if self.result["changed"] else self.existing
        if machine is None:
            self.module.fail_json(msg="smolvm machine %s is missing after %s: see 'smolvm machine ls'"
                                      % (self.name, ", ".join(self.actions)), actions=self.actions)
        self.result["machine"] = machine
        self.result["diff"]["after"] = describe(machine)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str"),
            slug=dict(type="str"),
            agent=dict(type="str"),
            state=dict(type="str", choices=["present", "started", "stopped", "absent"], default="present"),
            image=dict(type="path"),
            allow_cidrs=dict(type="list", elements="str", default=[]),
            env=dict(type="dict", default={}, no_log=True),
            cpus=dict(type="int"),
            memory=dict(type="int"),
            labels=dict(type="dict", default={}),
            stop_timeout=dict(type="int"),
            smolvm_path=dict(type="path"),
            state_dir=dict(type="path"),
        ),
        mutually_exclusive=[("name", "slug")],
        required_one_of=[("name", "slug")],
        supports_check_mode=True,
    )
    p = module.params
    if p["slug"]:
        error = naming.slug_error(p["slug"])
        if error:
            module.fail_json(msg="slug: " + error)
    for key in ("cpus", "memory"):
        if p[key] is not None and p[key] < 1:
            module.fail_json(msg="%s must be at least 1 (got %d)" % (key, p[key]))
    try:
        binary = smolvm.find_smolvm(p["smolvm_path"], which=module.get_bin_path)
    except smolvm.SmolvmError as exc:
        module.fail_json(msg=str(exc))
    cli = smolvm.SmolvmCLI(smolvm.module_runner(module), binary, state_dir=p["state_dir"])
    manager = MachineManager(module, cli)
    if p["state"] == "absent":
        manager.absent()
    else:
        manager.present()
    manager.result["boot"] = manager.boot_check()
    if not module._diff:
        manager.result.pop("diff")
    module.exit_json(**manager.result)


if __name__ == "__main__":
    main()
