# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle-health: healthy only when every selected daemon really serves."""

from __future__ import annotations

import json
import socket

import pytest


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    yield sock.getsockname()[1]
    sock.close()


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
                                                     "git-gate": str(tmp_path / "absent")})
    monkeypatch.setattr(bottle_health, "EXTRA_PORTS", {})
    return bottle_health


def test_all_listening_is_healthy(health, listener, monkeypatch, capsys):
    monkeypatch.setattr(health, "PORTS", {"egress": listener, "supervise": listener})
    monkeypatch.setenv("BOTTLE_DAEMONS", "egress,supervise")
    assert health.main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"egress": "healthy", "supervise": "healthy"}


def test_a_silent_port_is_unhealthy_and_says_where(health, listener, free_port, monkeypatch, capsys):
    monkeypatch.setattr(health, "PORTS", {"egress": free_port, "supervise": listener})
    monkeypatch.setenv("BOTTLE_DAEMONS", "egress,supervise")
    assert health.main([]) == 1
    out = capsys.readouterr().out
    assert "egress: unhealthy: nothing listens on 127.0.0.1:%d" % free_port in out
    assert "supervise: healthy" in out


def test_a_selected_daemon_missing_from_the_image_is_not_installed(health, listener, monkeypatch, capsys):
    monkeypatch.setattr(health, "PORTS", {"egress": listener, "git-gate": listener})
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


def test_egress_is_checked_on_the_agent_port_alone_and_behind_pipelock_on_9099(health, listener, free_port,
                                                                               monkeypatch):
    assert health.PORTS["egress"] == 8888 and health.EGRESS_CHAIN_PORT == 9099
    monkeypatch.setattr(health, "PORTS", {"egress": listener})
    monkeypatch.setattr(health, "EGRESS_CHAIN_PORT", free_port)
    assert health.check("egress", ["egress"]) == "healthy"
    assert health.check("egress", ["pipelock", "egress"]) == "unhealthy: nothing listens on 127.0.0.1:%d" % free_port


def test_supervise_is_healthy_only_when_its_loopback_listener_for_egress_answers_too(health, listener, free_port,
                                                                                     monkeypatch):
    monkeypatch.setattr(health, "PORTS", {"supervise": listener})
    monkeypatch.setattr(health, "EXTRA_PORTS", {"supervise": (free_port,)})
    assert health.check("supervise", ["egress", "supervise"]) == "unhealthy: nothing listens on 127.0.0.1:%d" % free_port
    monkeypatch.setattr(health, "EXTRA_PORTS", {"supervise": (listener,)})
    assert health.check("supervise", ["egress", "supervise"]) == "healthy"
