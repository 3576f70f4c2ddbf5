# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The smolmachines backend's path to its bundle: per-connection relays between Unix sockets and TCP.

A smolmachines VM has no network (docs/architecture.md, "The VM's network"). It reaches the bundle's
three agent-facing ports through three host Unix sockets that smolvm mounts into the guest
(``--mount-socket``):

    guest 127.0.0.1:PORT --(guest relay)--> /run/bottle/NAME.sock --(smolvm, vsock)--> host
    <state>/sockets/NAME.sock --(host relay)--> <bundle's loopback address>:PORT

This file is both ends, and stdlib only: it runs as a script with the managed host's Python (the host
relay, copied into the bottle's state directory by ``bottle_socket_relay``) and with the agent image's
Python (the guest relay, ``images/agent/bottle_relay.py`` is a symlink to this file):

    python3 socket_relay.py host CONFIG.json     listen on each config entry's Unix path, dial its host:port
    python3 socket_relay.py guest NAME [NAME...] listen on 127.0.0.1:<port of NAME>, dial /run/bottle/NAME.sock

API for the module and the role:
- ``SERVICES``: name -> port of the bundle's agent-facing daemons; ``services_for(daemons)``: the names a
  bundle running ``daemons`` serves (egress or pipelock -> proxy).
- ``host_config(state_dir, address, services)``: the host relay's config (what the module compares).
- ``socket_dir(state_dir)``, ``relay_dir(state_dir)``, ``guest_path(name)``, ``mounts(state_dir, services)``:
  paths, and the ``mount_sockets`` of ``smolvm_machine``.
- ``guest_command(services)``: the VM's workload (``machine create -- CMD``), the guest relay.
- ``guest_proxy_env()`` / ``guest_endpoints(services)``: the proxy variables and the URLs as the guest sees them.
- ``serve_host(config)`` / ``serve_guest(names)``: the two relays (never return).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import stat
import sys
import threading
import time

# The bundle's agent-facing daemons and their ports (the bundle publishes each on the same port).
SERVICES = {"proxy": 8888, "git-gate": 9418, "supervise": 9100}
SERVICE_ORDER = ("proxy", "git-gate", "supervise")
DAEMON_SERVICES = {"egress": "proxy", "pipelock": "proxy", "git-gate": "git-gate", "supervise": "supervise"}
GUEST_SOCKET_DIR = "/run/bottle"
GUEST_ADDRESS = "127.0.0.1"
# Where the agent image keeps this file (images/agent/Dockerfile).
GUEST_SCRIPT = "/usr/local/lib/bottle/bottle_relay.py"
SCRIPT_NAME = "socket_relay.py"
# sun_path holds 108 bytes on Linux, 104 on macOS (NUL included).
MAX_SOCKET_PATH = 103
# Connections relayed at once per listener; more are closed at once (a guest cannot exhaust the host's threads).
MAX_CONNECTIONS = 256
BUFFER = 65536
CONNECT_TIMEOUT = 10


# ---------------------------------------------------------------- what the module and the role use

def services_for(daemons):
    """The services (in ``SERVICE_ORDER``) a bundle running ``daemons`` serves to its agent."""
    wanted = {DAEMON_SERVICES[d] for d in daemons or [] if d in DAEMON_SERVICES}
    return [name for name in SERVICE_ORDER if name in wanted]


def socket_dir(state_dir):
    return os.path.join(state_dir, "sockets")


def relay_dir(state_dir):
    return os.path.join(state_dir, "relay")


def host_socket(state_dir, name):
    return os.path.join(socket_dir(state_dir), name + ".sock")


def guest_path(name):
    return "%s/%s.sock" % (GUEST_SOCKET_DIR, name)


def host_config(state_dir, address, services):
    """The host relay's config: one listener per service, each dialling ``address`` on that service's port."""
    return {"listeners": [{"name": name, "path": host_socket(state_dir, name), "host": address,
                           "port": SERVICES[name]} for name in services]}


def mounts(state_dir, services):
    """``smolvm_machine`` ``mount_sockets``: each host socket at ``/run/bottle/NAME.sock`` in the guest."""
    return [{"host": host_socket(state_dir, name), "guest": guest_path(name)} for name in services]


def guest_command(services):
    """The VM's workload: the guest relay for ``services`` (the agent image's Python and copy of this file)."""
    return ["python3", GUEST_SCRIPT, "guest"] + list(services)


def guest_proxy_env():
    """The proxy variables of the guest: the guest relay on its own loopback."""
    url = "http://%s:%d" % (GUEST_ADDRESS, SERVICES["proxy"])
    no_proxy = "localhost,%s" % GUEST_ADDRESS
    return {"HTTPS_PROXY": url, "HTTP_PROXY": url, "https_proxy": url, "http_proxy": url,
            "NO_PROXY": no_proxy, "no_proxy": no_proxy}


def guest_endpoints(services):
    """How the guest reaches the bundle, in ``sidecar_bundle``'s ``endpoints`` shape (only what runs)."""
    out = {"address": GUEST_ADDRESS, "proxy_url": "http://%s:%d" % (GUEST_ADDRESS, SERVICES["proxy"])}
    if "git-gate" in services:
        out["git_gate_url"] = "git://%s:%d" % (GUEST_ADDRESS, SERVICES["git-gate"])
    if "supervise" in services:
        out["supervise_url"] = "http://%s:%d/mcp" % (GUEST_ADDRESS, SERVICES["supervise"])
    return out


# ---------------------------------------------------------------- the relay

def log(message):
    sys.stdout.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), message))
    sys.stdout.flush()


def pump(src, dst):
    """Copy ``src`` to ``dst`` until EOF, then half-close ``dst`` (the other direction keeps flowing)."""
    try:
        while True:
            data = src.recv(BUFFER)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def relay(conn, dial, slots):
    try:
        try:
            upstream = dial()
        except OSError:
            conn.close()
            return
        back = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
        back.start()
        pump(conn, upstream)
        back.join()
        upstream.close()
        conn.close()
    finally:
        slots.release()


def serve(listener, dial, what):
    """Accept forever on ``listener``; relay each connection to a fresh ``dial()`` on its own threads."""
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    last_full = 0.0
    while True:
        try:
            conn, _peer = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EINTR, errno.ECONNABORTED, errno.EMFILE, errno.ENFILE):
                time.sleep(0.05)
                continue
            log("%s: listener stopped: %s" % (what, exc))
            return
        if not slots.acquire(blocking=False):
            conn.close()
            if time.time() - last_full > 10:
                last_full = time.time()
                log("%s: %d connections at once, closing new ones" % (what, MAX_CONNECTIONS))
            continue
        threading.Thread(target=relay, args=(conn, dial, slots), daemon=True).start()


def unix_listener(path):
    """A Unix listener at ``path``, mode 0600 (a stale socket there is replaced; anything else is an error)."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    listener.listen(64)
    return listener


def tcp_dialer(host, port):
    def dial():
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
        sock.settimeout(None)  # the timeout bounds the connect only: a relayed connection may idle for long
        return sock
    return dial


def unix_dialer(path):
    def dial():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        return sock
    return dial


def run_forever(threads):
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1)
    return 1


def serve_host(config):
    """The host relay of one bottle: each Unix listener of ``config`` to its bundle port."""
    made = []

    def stop(_signum, _frame):
        for path in made:
            try:
                os.unlink(path)
            except OSError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threads = []
    for entry in config["listeners"]:
        listener = unix_listener(entry["path"])
        made.append(entry["path"])
        what = "%s %s -> %s:%d" % (entry["name"], entry["path"], entry["host"], entry["port"])
        threads.append(threading.Thread(target=serve, args=(listener, tcp_dialer(entry["host"], entry["port"]), what),
                                        daemon=True))
        log("listening: " + what)
    log("ready pid %d" % os.getpid())
    return run_forever(threads)


def loopback_up():
    """Bring the guest's ``lo`` up (a VM without a network device may boot with it down); needs root."""
    import fcntl  # pylint: disable=import-outside-toplevel
    import struct  # pylint: disable=import-outside-toplevel
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        request = struct.pack("16sH", b"lo", 0) + b"\0" * 22
        flags = struct.unpack("16sH", fcntl.ioctl(sock, siocgifflags, request)[:18])[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up) + b"\0" * 22)
    finally:
        sock.close()


def tcp_listener(port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((GUEST_ADDRESS, port))
    except OSError as exc:
        if exc.errno != errno.EADDRNOTAVAIL:
            raise
        log("127.0.0.1 is not up: bringing lo up")
        loopback_up()
        listener.bind((GUEST_ADDRESS, port))
    listener.listen(64)
    return listener


def serve_guest(names):
    """The guest relay: 127.0.0.1:<port> of each service to ``/run/bottle/<name>.sock``."""
    unknown = [n for n in names if n not in SERVICES]
    if unknown or not names:
        log("usage: guest NAME... with NAME among %s (got %s)" % (", ".join(SERVICE_ORDER), ", ".join(names) or "none"))
        return 2
    threads = []
    for name in names:
        listener = tcp_listener(SERVICES[name])
        what = "%s %s:%d -> %s" % (name, GUEST_ADDRESS, SERVICES[name], guest_path(name))
        threads.append(threading.Thread(target=serve, args=(listener, unix_dialer(guest_path(name)), what),
                                        daemon=True))
        log("listening: " + what)
    log("ready pid %d" % os.getpid())
    return run_forever(threads)


def main(argv):
    if len(argv) == 2 and argv[0] == "host":
        with open(argv[1], "r", encoding="utf-8") as handle:
            return serve_host(json.load(handle))
    if argv and argv[0] == "guest":
        return serve_guest(argv[1:])
    log("usage: socket_relay.py host CONFIG.json | guest NAME...")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
