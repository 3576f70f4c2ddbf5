# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The smolmachines relays (socket_relay) and the host relay's lifecycle (relay_process), with real
processes and sockets under tmp_path; the TCP "bundle" is an echo server on 127.0.0.1 of this process."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_container
from ansible_collections.botbottle.bottle.plugins.module_utils import relay_process
from ansible_collections.botbottle.bottle.plugins.module_utils import socket_relay

SOURCE = open(socket_relay.__file__, encoding="utf-8").read()


def echo_server():
    """A TCP server on 127.0.0.1 answering b'echo:' + what it read until EOF; (port, close)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def handle(conn):
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        conn.sendall(b"echo:" + data)
        conn.close()

    def loop():
        while True:
            try:
                conn, _peer = srv.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1], srv.close


def through_unix(path, payload):
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(5)
    sock.connect(path)
    sock.sendall(payload)
    sock.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return None  # closed with our bytes unread
        if not chunk:
            break
        out += chunk
    sock.close()
    return out


def test_services_and_ports_agree_with_the_bundle():
    assert socket_relay.services_for(["egress", "git-gate", "supervise"]) == ["proxy", "git-gate", "supervise"]
    assert socket_relay.services_for(["pipelock", "egress"]) == ["proxy"]
    assert socket_relay.services_for(["supervise", "egress"]) == ["proxy", "supervise"]
    ports = bundle_container.BundleManager.AGENT_PORTS
    for daemon, service in socket_relay.DAEMON_SERVICES.items():
        assert socket_relay.SERVICES[service] == ports[daemon], daemon


def test_guest_view_is_its_own_loopback():
    env = socket_relay.guest_proxy_env()
    assert env == {"HTTPS_PROXY": "http://127.0.0.1:8888", "HTTP_PROXY": "http://127.0.0.1:8888",
                   "https_proxy": "http://127.0.0.1:8888", "http_proxy": "http://127.0.0.1:8888",
                   "NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1"}
    assert socket_relay.guest_endpoints(["proxy"]) == {"address": "127.0.0.1", "proxy_url": "http://127.0.0.1:8888"}
    assert socket_relay.guest_endpoints(["proxy", "git-gate", "supervise"]) == {
        "address": "127.0.0.1", "proxy_url": "http://127.0.0.1:8888", "git_gate_url": "git://127.0.0.1:9418",
        "supervise_url": "http://127.0.0.1:9100/mcp"}
    assert socket_relay.guest_command(["proxy", "supervise"]) == [
        "python3", "/usr/local/lib/bottle/bottle_relay.py", "guest", "proxy", "supervise"]
    assert socket_relay.mounts("/s/b", ["proxy"]) == [{"host": "/s/b/sockets/proxy.sock",
                                                      "guest": "/run/bottle/proxy.sock"}]


def test_host_relay_lifecycle(tmp_path):
    """Start: sockets 0600 in a 0700 directory, each connection relayed both ways with half-close; the
    status says current; a killed relay is reported dead; stop and remove leave nothing."""
    port, close = echo_server()
    state = str(tmp_path / "b")
    relay = relay_process.Relay(state)
    config = socket_relay.host_config(state, "127.0.0.1", ["proxy"])
    config["listeners"][0]["port"] = port
    assert relay.status(config, SOURCE) == dict(running=False, pid=None, current=False, reason="not running")
    pid = relay.start(config, SOURCE, python=os.environ.get("PYTHON", "python3"))
    try:
        path = config["listeners"][0]["path"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(relay.dir).st_mode) == 0o700
        assert through_unix(path, b"x" * 200000) == b"echo:" + b"x" * 200000
        assert relay.status(config, SOURCE)["current"] and relay.pid() == pid
        other = socket_relay.host_config(state, "127.0.0.2", ["proxy"])
        assert relay.status(other, SOURCE)["reason"] == "its sockets or their targets changed"
        assert relay.status(config, SOURCE + "#\n")["reason"] == "its code changed (a collection upgrade)"
        os.kill(pid, 9)
        deadline = time.time() + 5
        while relay.pid() is not None and time.time() < deadline:
            time.sleep(0.05)
        assert relay.status(config, SOURCE)["reason"] == "not running (its pid file is stale)"
        pid = relay.start(config, SOURCE, python=os.environ.get("PYTHON", "python3"))
        assert through_unix(path, b"again") == b"echo:again"
    finally:
        assert relay.stop()
        close()
    assert relay.pid() is None
    relay.remove_files()
    assert not os.path.exists(os.path.join(state, "sockets")) and not os.path.exists(relay.dir)


def test_a_pid_file_naming_another_process_is_not_the_relay(tmp_path):
    relay = relay_process.Relay(str(tmp_path / "b"))
    os.makedirs(relay.dir)
    with open(relay.pidfile, "w", encoding="utf-8") as handle:
        handle.write("%d\n" % os.getpid())
    assert relay.pid() is None and not relay.stop()


def test_upstream_down_closes_the_connection_and_the_relay_stays(tmp_path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    srv.close()  # nothing listens there now
    state = str(tmp_path / "b")
    relay = relay_process.Relay(state)
    config = socket_relay.host_config(state, "127.0.0.1", ["proxy"])
    config["listeners"][0]["port"] = port
    relay.start(config, SOURCE, python=os.environ.get("PYTHON", "python3"))
    try:
        assert through_unix(config["listeners"][0]["path"], b"hello") in (b"", None)
        assert relay.status(config, SOURCE)["current"]
    finally:
        relay.stop()
        relay.remove_files()


def test_a_dialled_connection_may_idle():
    """The connect timeout does not stay on the relayed socket (a quiet stream would be cut after it)."""
    port, close = echo_server()
    try:
        sock = socket_relay.tcp_dialer("127.0.0.1", port)()
        assert sock.gettimeout() is None
        sock.close()
    finally:
        close()


def test_a_socket_path_too_long_is_refused_naming_the_fix(tmp_path):
    state = str(tmp_path / ("x" * 120))
    relay = relay_process.Relay(state)
    with pytest.raises(relay_process.RelayError, match="bottle_state_root"):
        relay.start(socket_relay.host_config(state, "127.77.0.5", ["proxy"]), SOURCE, "python3")
