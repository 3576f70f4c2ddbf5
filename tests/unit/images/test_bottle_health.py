# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle-health: healthy only when every selected daemon really answers through its own path, in time.

Stand-ins answer as each daemon does (the firewall's 403 to the probe, git daemon's ERR
line, the MCP SDK's ping result); a "hung" one listens (the kernel accepts) and never answers, as a
SIGSTOPped daemon does."""

from __future__ import annotations

import json
import socket
import threading

import pytest

EGRESS = (b"HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain; charset=utf-8\r\nX-Bottle-Egress-Rule: health\r\n"
          b"content-length: 75\r\nConnection: close\r\n\r\n"
          b"blocked by egress: a bottle-health probe (egress answers; nothing was sent)\n")
# What mitmproxy itself answers before any hook of the firewall runs: not proof that the firewall's hooks run.
MITMPROXY_400 = (b"HTTP/1.1 400 Bad Request\r\nServer: mitmproxy 12.1.2\r\nConnection: close\r\n\r\n"
                 b"<p>HTTP request has no host header, destination unknown.</p>")
GIT = b"0033ERR access denied or repository not exported: /x"
MCP = (b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nConnection: close\r\n\r\n'
       b'{"jsonrpc":"2.0","id":"bottle-health","result":{}}')
RELEASE = b'HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n{"error": "no release proposal"}'


class Server:
    """Answers every connection with ``reply`` once it has read a request (or, hung, never accepts)."""

    def __init__(self, reply=None, hung=False):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.requests = []
        if not hung:
            threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            with conn:
                self.requests.append(conn.recv(4096))
                conn.sendall(self.reply)

    def close(self):
        self.sock.close()


@pytest.fixture
def servers():
    made = []

    def make(reply=None, hung=False):
        made.append(Server(reply, hung))
        return made[-1]
    yield make
    for server in made:
        server.close()


@pytest.fixture
def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def health(bottle_health, tmp_path, monkeypatch):
    installed = tmp_path / "installed"
    installed.write_text("")
    monkeypatch.setattr(bottle_health, "INSTALLED", {"egress": str(installed), "supervise": str(installed),
                                                     "git-gate": str(installed)})
    monkeypatch.setattr(bottle_health, "EXTRA_PORTS", {})
    monkeypatch.setattr(bottle_health, "DEADLINE", 0.5)
    return bottle_health


def test_every_daemon_answering_on_its_path_is_healthy(health, servers, monkeypatch, capsys):
    egress, gate, supervise = servers(EGRESS), servers(GIT), servers(MCP)
    monkeypatch.setattr(health, "PORTS", {"egress": egress.port, "git-gate": gate.port, "supervise": supervise.port})
    monkeypatch.setenv("BOTTLE_DAEMONS", "egress,git-gate,supervise")
    assert health.main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"egress": "healthy", "git-gate": "healthy", "supervise": "healthy"}
    # What each was asked: a proxy request for the firewall's health name, a repository git-gate does
    # not serve, an MCP ping.
    assert egress.requests[0].startswith(b"GET http://bottle-health.invalid/ HTTP/1.1\r\n")
    assert b"git-upload-pack /bottle-health-probe.git\0" in gate.requests[0]
    assert b'"method":"ping"' in supervise.requests[0] and supervise.requests[0].startswith(b"POST /mcp ")


def test_a_hung_daemon_is_unhealthy_within_the_deadline(health, servers, monkeypatch, capsys):
    egress, supervise = servers(hung=True), servers(MCP)
    monkeypatch.setattr(health, "PORTS", {"egress": egress.port, "supervise": supervise.port})
    monkeypatch.setenv("BOTTLE_DAEMONS", "egress,supervise")
    assert health.main([]) == 1
    out = capsys.readouterr().out
    assert "egress: unhealthy: 127.0.0.1:%d accepted but did not answer within 0.5s (hung?)" % egress.port in out
    assert "supervise: healthy" in out


def test_nothing_listening_says_where(health, free_port, monkeypatch):
    monkeypatch.setattr(health, "PORTS", {"egress": free_port})
    assert health.check("egress", ["egress"]) == "unhealthy: nothing listens on 127.0.0.1:%d" % free_port


@pytest.mark.parametrize("daemon,reply,why", [
    ("egress", b"HTTP/1.1 200 OK\r\n\r\nhello", "answered 'HTTP/1.1 200 OK', not the firewall's 403 to a health probe"),
    ("egress", MITMPROXY_400, "answered 'HTTP/1.1 400 Bad Request', not the firewall's 403"),
    ("egress", b"HTTP/1.1 403 Forbidden\r\nX-Bottle-Egress-Rule: allowlist\r\n\r\n", "not the firewall's 403"),
    ("git-gate", b"0010something", "not a git protocol ERR line"),
    ("supervise", b"HTTP/1.1 500 Internal Server Error\r\n\r\n", "did not answer the MCP ping"),
])
def test_a_wrong_answer_is_unhealthy(health, servers, monkeypatch, daemon, reply, why):
    server = servers(reply)
    monkeypatch.setattr(health, "PORTS", {daemon: server.port})
    assert why in health.check(daemon, [daemon])


def test_a_selected_daemon_missing_from_the_image_is_not_installed(health, servers, tmp_path, monkeypatch, capsys):
    egress = servers(EGRESS)
    monkeypatch.setattr(health, "PORTS", {"egress": egress.port})
    monkeypatch.setattr(health, "INSTALLED", dict(health.INSTALLED, **{"git-gate": str(tmp_path / "absent")}))
    monkeypatch.setenv("BOTTLE_DAEMONS", "egress,git-gate")
    assert health.main(["--json"]) == 1
    assert json.loads(capsys.readouterr().out) == {"egress": "healthy", "git-gate": "not installed"}


def test_pipelock_failure_reports_the_healthcheck_output(health, tmp_path, monkeypatch, capsys):
    fake = tmp_path / "pipelock"
    fake.write_text("#!/bin/sh\necho 'connection refused'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(health, "INSTALLED", {"pipelock": str(fake)})
    monkeypatch.setattr(health, "PIPELOCK_BIN", str(fake))
    monkeypatch.setenv("BOTTLE_DAEMONS", "pipelock")
    assert health.main(["--json"]) == 1
    assert json.loads(capsys.readouterr().out) == {"pipelock": "unhealthy: connection refused"}


def test_egress_behind_pipelock_is_asked_on_9099_and_may_just_close(health, servers, free_port, monkeypatch):
    assert health.PORTS["egress"] == 8888 and health.EGRESS_CHAIN_PORT == 9099
    closes = servers(b"")
    monkeypatch.setattr(health, "EGRESS_CHAIN_PORT", closes.port)
    assert health.check("egress", ["pipelock", "egress"]) == "healthy"
    monkeypatch.setattr(health, "EGRESS_CHAIN_PORT", free_port)
    assert health.check("egress", ["pipelock", "egress"]) == "unhealthy: nothing listens on 127.0.0.1:%d" % free_port
    hung = servers(hung=True)
    monkeypatch.setattr(health, "EGRESS_CHAIN_PORT", hung.port)
    assert "did not answer within" in health.check("egress", ["pipelock", "egress"])


def test_supervise_is_healthy_only_when_its_loopback_listener_for_egress_answers_too(health, servers, free_port,
                                                                                     monkeypatch):
    mcp, release = servers(MCP), servers(RELEASE)
    monkeypatch.setattr(health, "PORTS", {"supervise": mcp.port})
    monkeypatch.setattr(health, "EXTRA_PORTS", {"supervise": (free_port,)})
    assert health.check("supervise", ["egress", "supervise"]) == "unhealthy: nothing listens on 127.0.0.1:%d" % free_port
    monkeypatch.setattr(health, "EXTRA_PORTS", {"supervise": (release.port,)})
    assert health.check("supervise", ["egress", "supervise"]) == "healthy"


def test_the_real_ports_and_the_image_healthcheck_report_a_hang_within_10_seconds(bottle_health):
    """Docker runs a check ``interval`` after the previous one ended; a hung daemon makes each check last
    ``DEADLINE``. From the hang to the third failed check in a row, at worst: an interval, then three checks
    and two intervals."""
    import pathlib
    import re
    dockerfile = (pathlib.Path(bottle_health.__file__).parent / "Dockerfile").read_text()
    # the image's HEALTHCHECK is the table's
    assert re.findall(r"^HEALTHCHECK (.*) CMD", dockerfile, re.M) == [bottle_health.docker_healthcheck()]
    names = ("docker_interval", "docker_timeout", "docker_retries")
    interval, timeout, retries = (bottle_health.timing(n) for n in names)
    deadline = bottle_health.DEADLINE
    assert deadline + 1 <= timeout  # a hung daemon fails the check, it does not time the whole check out
    assert interval + retries * deadline + (retries - 1) * interval <= 10
    assert bottle_health.PORTS == {"egress": 8888, "git-gate": 9418, "supervise": 9100}
