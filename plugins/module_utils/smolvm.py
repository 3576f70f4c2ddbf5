# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way our code talks to the smolvm CLI.

API:
- ``find_smolvm(explicit=None, which=shutil.which)``: path of the binary:
  ``explicit`` > ``smolvm`` on PATH > ``smol/smol-vmm`` of the ``smolmachines``
  wheel installed for this Python. Raises ``SmolvmError`` naming the fix.
- ``SmolvmCLI(runner, binary, state_dir=None, system=None)``: runs
  ``<binary> --error-format json [--state-dir DIR] <words>`` (``--state-dir`` only
  on Linux: smolvm 1.32 documents it as Linux only); ``run()`` raises
  ``SmolvmError(code, message)`` parsed from smolvm's own JSON error.
  ``list_machines()`` / ``get_machine(name)`` read ``machine ls --json``;
  ``machine_env(name)`` reads the env smolvm keeps (``machine ls --verbose``).
- ``module_runner(module)`` / ``subprocess_runner``: runners
  ``(argv, data=None) -> (rc, stdout bytes, stderr bytes)``.
- argv builders, one small function per option: ``create_argv(spec,
  smolfile=None)``, ``update_allowlist_argv``, ``update_resources_argv``,
  ``update_env_argv``, ``start_argv``, ``stop_argv``, ``delete_argv``.
- Secrets by reference: ``secret_host_var(key)`` names the variable of the
  ``machine start`` process that ``--secret-env KEY=<that variable>`` resolves;
  ``secret_environ(secret_env)`` is that process's extra environment. smolvm
  persists only the reference, never the value (``docs/smolvm-1.32``).
- ``create_spec_hash(name, spec)``: the value of ``CREATE_SPEC_LABEL``, a digest
  of what only ``machine create`` can set and ``ls --json`` does not report
  (secret references, mounted sockets, the workload's command and user).
- ``env_smolfile(env)``: a 0600 temporary Smolfile carrying ``env`` (a context
  manager yielding its path), so values never reach argv.
- ``image_ref(path)``: what ``machine ls --json`` reports for a local archive.
- ``select_by_labels(machines, wanted)``: machines whose labels include
  ``wanted`` (teardown / bottle_info find bottle machines this way).
- ``boot_supported(root='/', system=None, machine=None)``: ``(bool, reason)``:
  can a guest boot here? (Linux with hardware KVM; macOS on Apple Silicon only.)
- ``state_dir_supported(system=None)``: whether ``--state-dir`` may be passed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import tempfile

from ansible_collections.botbottle.bottle.plugins.module_utils import naming

WHEEL_BINARY = "smol-vmm"
PATH_BINARY = "smolvm"

# Label that carried a hash of the machine's env before env was read back with
# ``machine ls --verbose``; still reserved, and ignored when labels are compared.
ENV_HASH_LABEL = naming.LABEL_PREFIX + ".env-hash"
# Digest of what only ``machine create`` sets and ``ls --json`` does not report.
CREATE_SPEC_LABEL = naming.LABEL_PREFIX + ".create-spec"
# ``--secret-env GUEST=HOST`` resolves HOST in the environment of ``machine start``.
SECRET_HOST_PREFIX = "BOTBOTTLE_SECRET_"

# The wheel's binary says so on stderr when it runs under its own name.
_NOISE_PREFIXES = ("note: no packed assets found",)


class SmolvmError(Exception):
    """A failed smolvm call: ``code`` is smolvm's stable error code (or None)."""

    def __init__(self, message, code=None, rc=None, words=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.rc = rc
        self.words = words

    def __str__(self):
        where = " (smolvm %s)" % " ".join(self.words[:2]) if self.words else ""
        code = "%s: " % self.code if self.code else ""
        return "%s%s%s" % (code, self.message, where)


# ---------------------------------------------------------------- the binary

def wheel_binary():
    """``smol/smol-vmm`` of the smolmachines wheel importable here, or None."""
    try:
        spec = importlib.util.find_spec("smol")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = os.path.join(location, WHEEL_BINARY)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_smolvm(explicit=None, which=shutil.which):
    """Path of the smolvm binary: ``explicit`` > PATH > the smolmachines wheel."""
    if explicit:
        path = os.path.expanduser(explicit)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise SmolvmError("smolvm_path %s is not an executable file: point smolvm_path at the smolvm "
                              "binary, or leave it unset to search PATH and the smolmachines wheel" % path)
        return path
    found = which(PATH_BINARY)
    if found:
        return found
    found = wheel_binary()
    if found:
        return found
    raise SmolvmError("smolvm not found: install it (pip install 'smolmachines>=1.32' into the Python "
                      "Ansible uses on the managed host), put smolvm on PATH, or set smolvm_path")


# ---------------------------------------------------------------- running it

def module_runner(module):
    """A runner over ``module.run_command`` that keeps bytes as bytes."""
    def run(argv, data=None, environ=None):
        return module.run_command(argv, data=data, binary_data=True, encoding=None,
                                  environ_update=environ or {})
    return run


def subprocess_runner(argv, data=None, environ=None):
    """A runner for code outside a module (tests, scripts)."""
    env = dict(os.environ, **environ) if environ else None
    proc = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def _text(value):
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def clean_stderr(stderr):
    """``stderr`` without the wheel binary's 'no packed assets' notice."""
    lines = _text(stderr).splitlines()
    return "\n".join(line for line in lines if not line.startswith(_NOISE_PREFIXES)).strip()


def parse_error(stderr):
    """``(code, message)`` of smolvm's ``--error-format json`` report in ``stderr``.

    Falls back to ``(None, the cleaned stderr text)`` when no JSON line is found.
    """
    text = clean_stderr(stderr)
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict) and "message" in err:
            return err.get("code"), err.get("message")
    return None, text


class SmolvmCLI:
    """``smolvm --error-format json [--state-dir DIR] <words>`` through ``runner``."""

    def __init__(self, runner, binary, state_dir=None, system=None):
        self.runner = runner
        self.binary = binary
        # smolvm 1.32: "--state-dir ... Linux only" (docs/smolvm-1.32/machine-create.txt).
        self.state_dir = state_dir if state_dir_supported(system) else None
        self.state_dir_ignored = bool(state_dir) and self.state_dir is None

    def argv(self, words):
        argv = [self.binary, "--error-format", "json"]
        if self.state_dir:
            argv += ["--state-dir", self.state_dir]
        return argv + list(words)

    def run(self, words, data=None, check=True, environ=None):
        """Run; return (rc, stdout bytes, stderr bytes), raising SmolvmError when ``check`` and rc != 0.

        ``environ``: extra environment of this one call (the secret values ``--secret-env`` resolves),
        passed only to runners that accept it.
        """
        if environ:
            rc, out, err = self.runner(self.argv(words), data=data, environ=environ)
        else:
            rc, out, err = self.runner(self.argv(words), data=data)
        if check and rc != 0:
            code, message = parse_error(err)
            raise SmolvmError(message or "exited with status %s and no message" % rc, code=code, rc=rc,
                              words=list(words))
        return rc, out, err

    def list_machines(self):
        _rc, out, _err = self.run(["machine", "ls", "--json"])
        text = _text(out).strip()
        if not text:
            return []
        try:
            machines = json.loads(text)
        except ValueError as exc:
            raise SmolvmError("machine ls --json printed no JSON (%s): %r" % (exc, text[:200]))
        if not isinstance(machines, list):
            raise SmolvmError("machine ls --json printed %s, not a list" % type(machines).__name__)
        return machines

    def get_machine(self, name):
        for machine in self.list_machines():
            if machine.get("name") == name:
                return machine
        return None

    def machine_env(self, name):
        """The env smolvm keeps for machine ``name`` (``{}`` when none), from ``machine ls --verbose``."""
        _rc, out, _err = self.run(["machine", "ls", "--verbose"])
        return parse_verbose_env(_text(out), name)


def parse_verbose_env(text, name):
    """``{key: value}`` of the ``  Env: KEY=VALUE`` lines under machine ``name`` in ``ls --verbose`` text.

    smolvm prints one line per variable, indented under the machine's row; values never hold a
    newline (smolvm_machine refuses them), so each line is one variable.
    """
    env = {}
    current = None
    for line in text.splitlines():
        if line and not line[0].isspace():
            words = line.split()
            current = words[0] if words else None
            continue
        if current != name:
            continue
        stripped = line.strip()
        if stripped.startswith("Env: "):
            key, _sep, value = stripped[len("Env: "):].partition("=")
            env[key] = value
    return env


def select_by_labels(machines, wanted):
    """The machines whose labels contain every ``wanted`` key=value."""
    return [m for m in machines
            if all((m.get("labels") or {}).get(k) == v for k, v in wanted.items())]


# ---------------------------------------------------------------- argv, one function per option

def opt_name(spec):
    return ["--name", spec["name"]]


def opt_image(spec):
    return ["--image", spec["image"]] if spec.get("image") else []


def opt_cpus(spec):
    return ["--cpus", str(spec["cpus"])] if spec.get("cpus") is not None else []


def opt_memory(spec):
    return ["--mem", str(spec["memory"])] if spec.get("memory") is not None else []


def opt_allow_cidrs(spec):
    argv = []
    for cidr in spec.get("allow_cidrs") or []:
        argv += ["--allow-cidr", cidr]
    return argv


def opt_labels(spec):
    argv = []
    for key in sorted(spec.get("labels") or {}):
        argv += ["--label", "%s=%s" % (key, spec["labels"][key])]
    return argv


def secret_host_var(key):
    """The variable of the ``machine start`` process that guest variable ``key``'s secret is read from."""
    return SECRET_HOST_PREFIX + key


def secret_environ(secret_env):
    """Extra environment of ``machine start`` carrying the secret values (never argv, never a file)."""
    return {secret_host_var(key): value for key, value in (secret_env or {}).items()}


def opt_secret_env(spec):
    """``--secret-env KEY=BOTBOTTLE_SECRET_KEY``: smolvm persists this reference, never the value."""
    argv = []
    for key in sorted(spec.get("secret_env") or {}):
        argv += ["--secret-env", "%s=%s" % (key, secret_host_var(key))]
    return argv


def opt_secret_files(spec):
    """``--secret-file KEY=/abs/path``: read at each start; only the path is persisted."""
    argv = []
    for key in sorted(spec.get("secret_files") or {}):
        argv += ["--secret-file", "%s=%s" % (key, spec["secret_files"][key])]
    return argv


def opt_mount_sockets(spec):
    """``--mount-socket HOST_PATH:GUEST_PATH``: a host Unix socket the guest reaches at GUEST_PATH."""
    argv = []
    for entry in spec.get("mount_sockets") or []:
        argv += ["--mount-socket", "%s:%s" % (entry["host"], entry["guest"])]
    return argv


def opt_user(spec):
    """``--user``: the user the workload runs as (the image's USER otherwise)."""
    return ["--user", spec["user"]] if spec.get("user") else []


def opt_smolfile(path):
    return ["--smolfile", path] if path else []


def with_smolfile(words, path):
    """``words`` with ``--smolfile PATH`` before the workload command's ``--`` (at the end without one)."""
    if not path:
        return list(words)
    if "--" in words:
        cut = words.index("--")
        return list(words[:cut]) + opt_smolfile(path) + list(words[cut:])
    return list(words) + opt_smolfile(path)


def opt_command(spec):
    """``-- CMD...``: the machine's workload, launched at every start (the image's ENTRYPOINT/CMD otherwise)."""
    return ["--"] + list(spec["command"]) if spec.get("command") else []


CREATE_OPTIONS = (opt_name, opt_image, opt_cpus, opt_memory, opt_allow_cidrs, opt_mount_sockets,
                  opt_secret_env, opt_secret_files, opt_user, opt_labels)


def create_spec_hash(name, spec):
    """Digest of what only ``machine create`` sets and ``ls --json`` does not show: secret references
    (names and files, never values), mounted sockets, the workload's command and user. None when there
    are none. (``command`` and ``user`` count only when set, so machines made without them keep their digest.)"""
    doc = {
        "secret_env": sorted(spec.get("secret_env") or {}),
        "secret_files": dict(sorted((spec.get("secret_files") or {}).items())),
        "mount_sockets": [[e["host"], e["guest"]] for e in spec.get("mount_sockets") or []],
    }
    for key in ("command", "user"):
        if spec.get(key):
            doc[key] = spec[key]
    if not any(doc.values()):
        return None
    canonical = json.dumps({"machine": name, "create": doc}, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def create_argv(spec, smolfile=None):
    """``machine create`` words for ``spec`` (name, image, cpus, memory, allow_cidrs, mount_sockets,
    secret_env, secret_files, user, labels, command last after ``--``). Networking stays off unless
    ``allow_cidrs`` is set: no ``--net``, no ``--dns``, no ``--allow-host``."""
    words = ["machine", "create"]
    for option in CREATE_OPTIONS:
        words += option(spec)
    return with_smolfile(words + opt_command(spec), smolfile)


def update_allowlist_argv(name, allow_cidrs):
    """Replace the allow list by exactly ``allow_cidrs`` (applies live on a running machine)."""
    return ["machine", "update"] + opt_name({"name": name}) + ["--reset-allow-list"] + \
        opt_allow_cidrs({"allow_cidrs": allow_cidrs})


def update_resources_argv(name, cpus=None, memory=None):
    """Set cpus / memory of a stopped machine."""
    spec = {"name": name, "cpus": cpus, "memory": memory}
    return ["machine", "update"] + opt_name(spec) + opt_cpus(spec) + opt_memory(spec)


def update_env_argv(name, set_env, remove_keys):
    """``machine update -e KEY=VALUE ... --remove-env KEY ...`` (a stopped machine; next start applies).

    Values are on argv: env holds no secret (those go by reference, ``opt_secret_env``).
    """
    words = ["machine", "update"] + opt_name({"name": name})
    for key in sorted(set_env or {}):
        words += ["-e", "%s=%s" % (key, set_env[key])]
    for key in sorted(remove_keys or []):
        words += ["--remove-env", key]
    return words


def start_argv(name):
    return ["machine", "start", "--name", name]


def stop_argv(name, timeout=None):
    return ["machine", "stop", "--name", name] + (["--timeout", str(timeout)] if timeout is not None else [])


def delete_argv(name):
    return ["machine", "delete", "--name", name, "--force"]


# ---------------------------------------------------------------- env without argv

def toml_string(value):
    """``value`` as a TOML basic string (JSON escapes are not all valid TOML)."""
    out = ['"']
    for char in value:
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append("\\u%04X" % ord(char))
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def smolfile_text(env):
    items = ["%s=%s" % (key, env[key]) for key in sorted(env)]
    return "env = [%s]\n" % ", ".join(toml_string(item) for item in items)


@contextlib.contextmanager
def env_smolfile(env):
    """Yield the path of a private Smolfile setting ``env`` (None when env is empty); removed after."""
    if not env:
        yield None
        return
    fd, path = tempfile.mkstemp(prefix="bottle-smolfile-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(smolfile_text(env))
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def image_ref(path):
    """What ``machine ls --json`` reports as ``image`` for local archive ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "local:" + digest.hexdigest()


# ---------------------------------------------------------------- can a guest boot here?

def _read(path):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _cpu_virt_flags(cpuinfo):
    flags = set()
    for line in (cpuinfo or "").splitlines():
        key, _sep, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return flags & {"vmx", "svm"}


def _open_kvm(path):
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return exc
    os.close(fd)
    return None


def state_dir_supported(system=None):
    """smolvm 1.32 documents ``--state-dir`` as Linux only."""
    return (system or platform.system()) == "Linux"


def boot_supported(root="/", system=None, machine=None):
    """``(True, reason)`` when a smolvm guest can boot on this host, else ``(False, why not)``.

    Decided from the host, never by trying a boot: Linux needs an openable
    ``/dev/kvm`` backed by hardware virtualisation; a PVM host (``kvm_pvm``
    loaded, no vmx/svm flag) runs no smolvm guest. macOS boots guests on Apple
    Silicon only (smolvm 1.32's platform table: "macOS Apple Silicon | arm64
    Linux | Hypervisor.framework"). ``root`` lets tests point at a fake tree.
    """
    system = system or platform.system()
    if system == "Darwin":
        machine = machine or platform.machine()
        if machine != "arm64":
            return False, ("smolvm boots guests on Apple Silicon Macs only, and this Mac is %s: use an Apple "
                           "Silicon Mac, a Linux host with KVM, or the docker backend" % (machine or "unknown"))
        return True, "macOS on Apple Silicon: smolvm uses Hypervisor.framework"
    if system != "Linux":
        return False, "smolvm guests boot on Linux (KVM) and macOS only, not on %s" % system
    kvm = os.path.join(root, "dev/kvm")
    if not os.path.exists(kvm):
        return False, "no /dev/kvm on this host: enable hardware virtualisation (KVM) to boot smolvm guests"
    if os.path.isdir(os.path.join(root, "sys/module/kvm_pvm")) and \
            not _cpu_virt_flags(_read(os.path.join(root, "proc/cpuinfo"))):
        return False, ("this host's KVM is PVM (/sys/module/kvm_pvm present, no vmx/svm in /proc/cpuinfo): "
                       "smolvm guests do not boot here; use a host with hardware KVM or the docker backend")
    error = _open_kvm(kvm)
    if error is not None:
        return False, "cannot open /dev/kvm (%s): give this user access to /dev/kvm (e.g. the kvm group)" % (
            error.strerror or error)
    return True, "KVM available"


def host_report(module, smolvm_path=None, state_dir=None, look=True):
    """(report, machines): whether the smolvm CLI is here (``available``, ``path``, ``reason``), whether this host
    boots guests (``boot``: ``supported``, ``reason``) and ``machine ls --json``; raises SmolvmError when the CLI
    is here but cannot list. ``module``: an AnsibleModule or a launch phase (``get_bin_path``, ``run_command``)."""
    supported, why = boot_supported()
    report = dict(available=False, path=None, reason=None, boot=dict(supported=supported, reason=why))
    if not look:
        report["reason"] = "not looked for (smolvm=false)"
        return report, []
    try:
        report["path"] = find_smolvm(smolvm_path, which=module.get_bin_path)
    except SmolvmError as exc:
        report["reason"] = str(exc)
        return report, []
    report["available"] = True
    return report, SmolvmCLI(module_runner(module), report["path"], state_dir=state_dir).list_machines()
