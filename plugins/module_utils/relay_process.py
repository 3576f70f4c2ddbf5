# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lifecycle of a bottle's host socket relay (``socket_relay.py host``), for ``bottle_socket_relay``.

The relay is a detached process of the user who runs the launch (its own session, no terminal, no
pipe back to Ansible), recorded in the bottle's state directory:

    <state>/relay/socket_relay.py   the relay's code (a copy of module_utils/socket_relay.py)
    <state>/relay/relay.json        its config (which sockets, which address and ports)
    <state>/relay/relay.pid         its pid
    <state>/relay/relay.log         what it printed
    <state>/sockets/NAME.sock       its listeners (directory 0700, sockets 0600)

API:
- ``Relay(state_dir)``: ``.status(config, source)`` -> ``{running, pid, current, reason}``;
  ``.start(config, source, python, timeout)`` -> pid; ``.stop()`` -> whether a process was stopped;
  ``.remove_files()`` -> the paths removed. Raises ``RelayError`` naming the fix.
- ``RELAY_SPEC``, ``run(module)`` -> result: bottle_socket_relay's logic, and the smolmachines launch's ``relay``
  phase (bottle_launch); ``module`` is an AnsibleModule or a launch phase.
- ``process_args(pid)``: the argv of process ``pid`` (``/proc`` on Linux, ``ps`` elsewhere), or None.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

from ansible_collections.botbottle.bottle.plugins.module_utils import loopback, naming, socket_relay

RELAY_SPEC = dict(
    slug=dict(type="str", required=True),
    state_root=dict(type="path", default=naming.DEFAULT_STATE_ROOT),
    address=dict(type="str"),
    daemons=dict(type="list", elements="str"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    python=dict(type="path"),
    timeout=dict(type="float", default=10),
)


class RelayError(Exception):
    pass


def process_args(pid):
    """argv of process ``pid``, or None when it does not run (or is a zombie)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            if handle.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                return None
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return [a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a]
    except FileNotFoundError:
        return None
    except OSError:
        pass
    try:
        out = subprocess.run(["ps", "-o", "stat=,command=", "-p", str(pid)], capture_output=True, text=True,
                             check=False).stdout.strip()
    except OSError:
        return None
    if not out or out.split()[0].startswith("Z"):
        return None
    return out.split()[1:]


def config_text(config):
    return json.dumps(config, indent=1, sort_keys=True) + "\n"


def _read(path):
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_private(path, text):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


class Relay:
    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.dir = socket_relay.relay_dir(state_dir)
        self.sockets = socket_relay.socket_dir(state_dir)
        self.script = os.path.join(self.dir, socket_relay.SCRIPT_NAME)
        self.config_path = os.path.join(self.dir, "relay.json")
        self.pidfile = os.path.join(self.dir, "relay.pid")
        self.logfile = os.path.join(self.dir, "relay.log")

    def pid(self):
        """The pid of this bottle's relay when it runs (the pidfile's, running our script with our config)."""
        text = _read(self.pidfile)
        try:
            pid = int((text or "").strip())
        except ValueError:
            return None
        args = process_args(pid)
        if args and self.script in args and self.config_path in args:
            return pid
        return None

    def status(self, config, source):
        """Whether the relay runs, and runs this ``config`` with this ``source`` and all its sockets."""
        pid = self.pid()
        if pid is None:
            reason = "not running" if _read(self.pidfile) is None else "not running (its pid file is stale)"
            return dict(running=False, pid=None, current=False, reason=reason)
        if _read(self.config_path) != config_text(config):
            return dict(running=True, pid=pid, current=False, reason="its sockets or their targets changed")
        if _read(self.script) != source:
            return dict(running=True, pid=pid, current=False, reason="its code changed (a collection upgrade)")
        for entry in config["listeners"]:
            if not self.is_socket(entry["path"]):
                return dict(running=True, pid=pid, current=False, reason="socket %s is missing" % entry["path"])
        return dict(running=True, pid=pid, current=True, reason="running")

    @staticmethod
    def is_socket(path):
        try:
            return stat.S_ISSOCK(os.lstat(path).st_mode)
        except OSError:
            return False

    def check_paths(self, config):
        for entry in config["listeners"]:
            if len(entry["path"].encode("utf-8")) > socket_relay.MAX_SOCKET_PATH:
                raise RelayError(
                    "socket path %s is %d bytes, more than a Unix socket path holds (%d): use a shorter "
                    "bottle_state_root (state_root)" % (entry["path"], len(entry["path"].encode("utf-8")),
                                                        socket_relay.MAX_SOCKET_PATH))

    def start(self, config, source, python, timeout=10.0):
        """Write the script and config, start the relay detached, wait until every socket listens; its pid."""
        self.check_paths(config)
        for path in (self.dir, self.sockets):
            os.makedirs(path, mode=0o700, exist_ok=True)
            os.chmod(path, 0o700)
        _write_private(self.script, source)
        _write_private(self.config_path, config_text(config))
        with open(self.logfile, "ab") as log:
            os.chmod(self.logfile, 0o600)
            proc = subprocess.Popen(  # pylint: disable=consider-using-with
                [python, self.script, "host", self.config_path], cwd=self.dir, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, close_fds=True, start_new_session=True)
        _write_private(self.pidfile, "%d\n" % proc.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RelayError("the socket relay exited with status %s at start: %s" % (proc.returncode, self.log_tail()))
            if all(self.is_socket(e["path"]) for e in config["listeners"]) and "ready pid %d" % proc.pid in (
                    _read(self.logfile) or ""):
                return proc.pid
            time.sleep(0.05)
        self.stop()
        raise RelayError("the socket relay did not listen within %ss: %s" % (timeout, self.log_tail()))

    def log_tail(self, lines=10):
        text = _read(self.logfile) or ""
        return " | ".join(text.strip().splitlines()[-lines:]) or "(its log %s is empty)" % self.logfile

    def stop(self, timeout=5.0):
        """Stop this bottle's relay if it runs (SIGTERM, then SIGKILL); whether one was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process_args(pid) is not None:
            time.sleep(0.05)
        if process_args(pid) is not None:
            os.kill(pid, signal.SIGKILL)
        return True

    def remove_files(self):
        """Remove this bottle's sockets and relay files (only those this module makes); the paths removed."""
        removed = []
        for name in socket_relay.SERVICE_ORDER:
            path = socket_relay.host_socket(self.state_dir, name)
            if self.is_socket(path):
                os.unlink(path)
                removed.append(path)
        if os.path.isdir(self.sockets) and _rmdir_if_empty(self.sockets):
            removed.append(self.sockets)
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir)
            removed.append(self.dir)
        return removed

    def existing_files(self):
        return [p for p in (self.sockets, self.dir) if os.path.exists(p)]


def _rmdir_if_empty(path):
    try:
        os.rmdir(path)
    except OSError:
        return False
    return True


def relay_source():
    """The text of module_utils/socket_relay.py (inside AnsiballZ's zip too: its loader gives the source)."""
    return inspect.getsource(socket_relay)


def present(module, relay, result):
    p = module.params
    for key in ("address", "daemons"):
        if not p[key]:
            module.fail_json(msg="%s is required with state=present: give the bundle's %s" % (
                key, "loopback address (127.77.0.X)" if key == "address" else "daemons (as sidecar_bundle's daemons)"))
    try:
        address = loopback.check_address(p["address"])
    except loopback.LoopbackError as exc:
        module.fail_json(msg="address: %s" % exc)
    services = socket_relay.services_for(p["daemons"])
    if "proxy" not in services:
        module.fail_json(msg="daemons: %s has no proxy (egress or pipelock): the agent's only way out is the proxy; "
                             "list the daemons the bundle runs" % ", ".join(p["daemons"]))
    config = socket_relay.host_config(relay.state_dir, address, services)
    try:
        relay.check_paths(config)
    except RelayError as exc:
        module.fail_json(msg=str(exc))
    source = relay_source()
    status = relay.status(config, source)
    result.update(
        reason=status["reason"], pid=status["pid"],
        sockets={e["name"]: e["path"] for e in config["listeners"]},
        mounts=socket_relay.mounts(relay.state_dir, services),
        guest_command=socket_relay.guest_command(services),
        guest_env=socket_relay.guest_proxy_env(),
        guest_endpoints=socket_relay.guest_endpoints(services))
    if status["current"]:
        return
    result["action"] = "restart" if status["running"] else "start"
    result["changed"] = True
    if module.check_mode:
        return
    try:
        relay.stop()
        result["pid"] = relay.start(config, source, p["python"] or sys.executable, p["timeout"])
    except (RelayError, OSError) as exc:
        module.fail_json(msg="bottle %s: %s" % (p["slug"], exc), log=relay.logfile)


def absent(module, relay, result):
    pid = relay.pid()
    files = relay.existing_files()
    result.update(pid=pid, reason="running" if pid else "not running")
    if pid is None and not files:
        return
    result["action"] = "stop" if pid else "remove files"
    result["changed"] = True
    if module.check_mode:
        return
    try:
        relay.stop()
        result["removed"] = relay.remove_files()
    except OSError as exc:
        module.fail_json(msg="bottle %s: cannot stop its socket relay: %s" % (module.params["slug"], exc))
    result["pid"] = None


def run(module):
    p = module.params
    error = naming.slug_error(p["slug"])
    if error:
        module.fail_json(msg="slug: " + error)
    relay = Relay(naming.state_dir(p["slug"], p["state_root"]))
    result = dict(changed=False, action="none", pid=None, log=relay.logfile)
    if p["state"] == "present":
        present(module, relay, result)
    else:
        absent(module, relay, result)
    return result
