# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A smolvm machine, converged: smolvm_machine's logic, and the smolmachines launch's ``machine`` phase
(bottle_launch).

API: ``MACHINE_SPEC`` (the options; ``name`` and ``slug`` are mutually exclusive, one required),
``run(module)`` -> result (``module``: an AnsibleModule or a launch phase, with ``run_command`` and
``get_bin_path``), ``MachineManager``, ``describe(machine)`` and the option checks.
"""

from __future__ import annotations

import ipaddress
import os
import re

from ansible_collections.botbottle.bottle.plugins.module_utils import loopback
from ansible_collections.botbottle.bottle.plugins.module_utils import naming
from ansible_collections.botbottle.bottle.plugins.module_utils import smolvm

MACHINE_SPEC = dict(
    name=dict(type="str"),
    slug=dict(type="str"),
    agent=dict(type="str"),
    state=dict(type="str", choices=["present", "started", "stopped", "absent"], default="present"),
    image=dict(type="path"),
    allow_cidrs=dict(type="list", elements="str", default=[]),
    env=dict(type="dict", default={}),
    secret_env=dict(type="dict", default={}, no_log=True),
    secret_files=dict(type="dict", default={}, no_log=False),
    command=dict(type="list", elements="str", default=[]),
    user=dict(type="str"),
    mount_sockets=dict(type="list", elements="dict", default=[],
                       options=dict(host=dict(type="path", required=True),
                                    guest=dict(type="str", required=True))),
    cpus=dict(type="int"),
    memory=dict(type="int"),
    labels=dict(type="dict", default={}),
    stop_timeout=dict(type="int"),
    smolvm_path=dict(type="path"),
    state_dir=dict(type="path"),
)
MACHINE_EXCLUSIVE = [("name", "slug")]

ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_LABELS = (smolvm.ENV_HASH_LABEL, smolvm.CREATE_SPEC_LABEL)


def cidr_errors(cidrs, bottle):
    """``(normalised sorted list, error or None)`` for ``allow_cidrs``; ``bottle``: the slug form's rules."""
    out = []
    for cidr in cidrs or []:
        try:
            net = ipaddress.ip_network(str(cidr).strip(), strict=False)
        except ValueError as exc:
            return [], "allow_cidrs: %r is not a CIDR (%s): write it like 127.0.0.17/32" % (cidr, exc)
        if net.prefixlen == 0:
            return [], ("allow_cidrs: %s is every address: the module never enables unrestricted networking; "
                        "list the one address the machine needs" % net)
        out.append(net)
    out = sorted(set(out), key=lambda n: (n.version, n))
    if bottle and out:
        if len(out) > 1:
            return [], ("allow_cidrs: a bottle's VM reaches one address, its bundle's loopback /32, not %s: "
                        "leave one entry such as 127.77.0.17/32" % ", ".join(str(n) for n in out))
        net = out[0]
        if net.version != 4 or net.prefixlen != 32:
            return [], ("allow_cidrs: %s is not a single address: a bottle's VM may reach only its bundle's "
                        "loopback address, written as 127.77.0.17/32" % net)
        try:
            loopback.check_address(str(net.network_address))
        except loopback.LoopbackError as exc:
            return [], "allow_cidrs: %s" % exc
    return [str(n) for n in out], None


def normalise_cidrs(module, cidrs, bottle=False):
    out, error = cidr_errors(cidrs, bottle)
    if error:
        module.fail_json(msg=error)
    return out


def check_env(module, env, key_name="env"):
    clean = {}
    for key, value in (env or {}).items():
        if not ENV_KEY_RE.match(key):
            module.fail_json(msg="%s: key %r is not an environment variable name: use letters, digits and '_', "
                                 "not starting with a digit" % (key_name, key))
        value = "" if value is None else str(value)
        if "\x00" in value:
            module.fail_json(msg="%s: the value of %s contains a NUL byte, which no environment can hold"
                                 % (key_name, key))
        if key_name == "env" and ("\n" in value or "\r" in value):
            module.fail_json(msg="env: the value of %s contains a line break: smolvm reports env one line per "
                                 "variable; put multi-line values in secret_env or secret_files" % key)
        clean[key] = value
    return clean


def check_secret_files(module, files):
    clean = check_env(module, {k: "" for k in files or {}}, key_name="secret_files")
    for key in clean:
        path = str(files[key])
        if not os.path.isabs(path):
            module.fail_json(msg="secret_files: the path of %s is %r, not absolute: smolvm reads it at each start "
                                 "from the host, write it as /abs/path" % (key, path))
        clean[key] = path
    return clean


def check_mount_sockets(module, sockets):
    clean = []
    guests = set()
    for entry in sockets or []:
        host, guest = str(entry.get("host") or ""), str(entry.get("guest") or "")
        for side, path in (("host", host), ("guest", guest)):
            if not path.startswith("/") or any(c in path for c in ":;|\n"):
                module.fail_json(msg="mount_sockets: %s path %r must be absolute and hold no ':', ';', '|' or line "
                                     "break (smolvm's HOST:GUEST form)" % (side, path))
        if guest in guests:
            module.fail_json(msg="mount_sockets: guest path %s is listed twice: give each socket its own path" % guest)
        guests.add(guest)
        clean.append({"host": host, "guest": guest})
    return clean


def check_command(module, command):
    clean = [str(word) for word in command or []]
    for word in clean:
        if "\x00" in word:
            module.fail_json(msg="command: a word holds a NUL byte, which no argv can carry: remove it")
    return clean


def check_labels(module, labels):
    clean = {}
    for key, value in (labels or {}).items():
        if not key or "=" in key:
            module.fail_json(msg="labels: key %r is invalid: a label key must be non-empty and contain no '='" % key)
        if key in RESERVED_LABELS:
            module.fail_json(msg="labels: %s is reserved for the module: remove it from labels" % key)
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

    def step(self, action, words, smolfile_env=None, environ=None):
        """Record ``action`` and, unless in check mode, run it."""
        self.actions.append(action)
        self.result["changed"] = True
        if self.check_mode:
            return
        if smolfile_env is None:
            if environ:
                self.call(lambda w: self.cli.run(w, environ=environ), words)
            else:
                self.call(self.cli.run, words)
            return
        with smolvm.env_smolfile(smolfile_env) as path:
            self.call(self.cli.run, smolvm.with_smolfile(words, path))

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
        secret_env = check_env(self.module, self.p["secret_env"], key_name="secret_env")
        secret_files = check_secret_files(self.module, self.p["secret_files"])
        for key in set(env) & (set(secret_env) | set(secret_files)):
            self.module.fail_json(msg="%s is in env and in secret_env/secret_files: keep it in one" % key)
        mount_sockets = check_mount_sockets(self.module, self.p["mount_sockets"])
        command = check_command(self.module, self.p["command"])
        user = self.p["user"] or None
        spec = dict(secret_env=secret_env, secret_files=secret_files, mount_sockets=mount_sockets, command=command,
                    user=user)
        digest = smolvm.create_spec_hash(self.name, spec)
        if digest:
            labels[smolvm.CREATE_SPEC_LABEL] = digest
        image = self.p["image"]
        image_ref = None
        if image:
            if not os.path.isfile(image):
                self.module.fail_json(msg="image %s is not a file: write the agent image there with "
                                          "'docker save IMAGE -o %s'" % (image, image))
            image_ref = smolvm.image_ref(image)
        return dict(
            name=self.name, image=image, image_ref=image_ref, env=env, labels=labels,
            allow_cidrs=normalise_cidrs(self.module, self.p["allow_cidrs"], bottle=bool(self.p["slug"])),
            cpus=self.p["cpus"], memory=self.p["memory"], secret_env=secret_env,
            secret_files=secret_files, mount_sockets=mount_sockets, command=command, user=user,
        )

    def env_changes(self, want):
        """``(set, remove)``: what ``machine update -e/--remove-env`` must change, or ``({}, [])``."""
        have = self.call(self.cli.machine_env, self.name)
        changed = {k: v for k, v in want["env"].items() if have.get(k) != v}
        removed = sorted(k for k in have if k not in want["env"])
        return changed, removed

    def differences(self, want):
        """(reasons to recreate, allow list to set or None, resources to set or {})."""
        have = describe(self.existing)
        recreate = []
        if want["image_ref"] and have["image"] != want["image_ref"]:
            recreate.append("image")
        if have["labels"].get(smolvm.CREATE_SPEC_LABEL) != want["labels"].get(smolvm.CREATE_SPEC_LABEL):
            recreate.append("secret references, mounted sockets, command or user")
        if {k: v for k, v in have["labels"].items() if k not in RESERVED_LABELS} != \
                {k: v for k, v in want["labels"].items() if k not in RESERVED_LABELS}:
            recreate.append("labels")
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

        env_set, env_remove = {}, []
        if self.existing:
            recreate, allowlist, resources = self.differences(want)
            if not recreate:
                env_set, env_remove = self.env_changes(want)
        else:
            recreate, allowlist, resources = [], None, {}
        needs_stop = bool(recreate) or bool(resources) or bool(env_set) or bool(env_remove)
        environ = smolvm.secret_environ(want["secret_env"])
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
            if (resources or env_set or env_remove) and was_running:
                self.step("stop", smolvm.stop_argv(self.name, self.p["stop_timeout"]))
                end_state = "stopped"
            if env_set or env_remove:
                self.result["env_changed"] = sorted(set(env_set) | set(env_remove))
                self.step("update env", smolvm.update_env_argv(self.name, env_set, env_remove))
            if resources:
                self.step("update resources", smolvm.update_resources_argv(self.name, **resources))
        if will_start:
            self.step("start", smolvm.start_argv(self.name), environ=environ)
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


def run(module):
    """Converge the machine ``module.params`` describe; the result (as smolvm_machine returns it)."""
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
    if cli.state_dir_ignored:
        module.warn("state_dir is ignored: smolvm's --state-dir is Linux only, and this host is not Linux")
    manager = MachineManager(module, cli)
    if p["state"] == "absent":
        manager.absent()
    else:
        manager.present()
    manager.result["boot"] = manager.boot_check()
    if not module._diff:
        manager.result.pop("diff")
    return manager.result
