# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SmolvmTransport from a table of expected smolvm calls; ``cp`` is simulated on a dict."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils.agent_transport import AgentTransport, TransportError
from ansible_collections.botbottle.bottle.plugins.module_utils.smolvm import SmolvmCLI
from ansible_collections.botbottle.bottle.plugins.module_utils.smolvm_transport import SmolvmTransport

NOT_FOUND = b'{"error":{"code":"NOT_FOUND","message":"file not found"}}'


class FakeMachine:
    """Answers smolvm argv like a running machine ``vm`` whose files live in a dict."""

    def __init__(self, state="running", exec_table=None):
        self.state = state
        self.files = {}
        self.calls = []
        self.exec_table = exec_table or {}
        self.dirs = []

    def __call__(self, argv, data=None):
        assert argv[:3] == ["smolvm", "--error-format", "json"]
        words = argv[3:]
        self.calls.append(words)
        if words == ["machine", "ls", "--json"]:
            return 0, json.dumps([{"name": "vm", "state": self.state}]).encode(), b""
        if words[:2] == ["machine", "cp"]:
            return self.cp(words[2:])
        if words[:4] == ["machine", "exec", "--name", "vm"]:
            cmd = words[words.index("--") + 1:]
            if cmd[:3] == ["sh", "-c", 'exec "$@" < "$0"']:
                staged = self.files[cmd[3]]["content"]
                return 0, b"stdin was: " + staged, b""
            if cmd[:2] == ["rm", "-f"]:
                self.files.pop(cmd[2], None)
                return 0, b"", b""
            if cmd[:2] == ["test", "-d"]:
                return (0 if cmd[2] in ("/", "/etc", "/tmp") else 1), b"", b""
            if cmd[0] in ("install", "mkdir"):  # AgentTransport.ensure_dir, however it spells it
                self.dirs.append(cmd[-1])
                return 0, b"", b""
            key = tuple(cmd)
            assert key in self.exec_table, "unexpected exec %r" % (cmd,)
            return self.exec_table[key]
        raise AssertionError("unexpected smolvm call %r" % (words,))

    def cp(self, args):
        opts = {}
        while args[0].startswith("--"):
            opts[args[0]] = args[1]
            args = args[2:]
        src, dst = args
        if dst.startswith("vm:"):
            assert stat.S_IMODE(os.stat(src).st_mode) == 0o600, "staged content must be private"
            with open(src, "rb") as handle:
                self.files[dst[3:]] = dict(content=handle.read(), **opts)
            return 0, b"", b""
        path = src[3:]
        if path not in self.files:
            return 1, b"", b"note: no packed assets found\n" + NOT_FOUND
        with open(dst, "wb") as handle:
            handle.write(self.files[path]["content"])
        return 0, b"", b""


def transport(fake):
    return SmolvmTransport(SmolvmCLI(fake, "smolvm"), "vm")


def test_is_an_agent_transport():
    assert issubclass(SmolvmTransport, AgentTransport)


def test_run_maps_user_and_returns_bytes():
    fake = FakeMachine(exec_table={("id", "-un"): (0, b"agent\n", b"note: no packed assets found x\n")})
    rc, out, err = transport(fake).run(["id", "-un"], user="agent")
    assert (rc, out, err) == (0, b"agent\n", b"")
    assert fake.calls[-1] == ["machine", "exec", "--name", "vm", "--user", "agent", "--", "id", "-un"]


def test_run_returns_a_failing_command_as_a_result():
    fake = FakeMachine(exec_table={("false",): (1, b"", b"")})
    assert transport(fake).run(["false"]) == (1, b"", b"")


def test_run_raises_on_smolvm_failure():
    fake = FakeMachine(exec_table={("true",): (1, b"", b'{"error":{"code":"INVALID_STATE","message":"stopped"}}')})
    with pytest.raises(TransportError, match="INVALID_STATE: stopped"):
        transport(fake).run(["true"])


def test_run_with_data_stages_it_and_cleans_up():
    fake = FakeMachine()
    rc, out, _err = transport(fake).run(["cat"], data=b"secret input")
    assert rc == 0 and out == b"stdin was: secret input"
    assert fake.files == {}, "staging file left behind"
    assert not any("secret input" in " ".join(words) for words in fake.calls)


def test_write_then_read_round_trip_with_owner():
    fake = FakeMachine(exec_table={("id", "-u", "agent"): (0, b"1000\n", b""),
                                   ("id", "-g", "agent"): (0, b"1000\n", b"")})
    t = transport(fake)
    t.write_file("/etc/bottle-ca.pem", b"PEM", mode=0o640, owner="agent")
    assert fake.files["/etc/bottle-ca.pem"] == {"content": b"PEM", "--mode": "640", "--uid": "1000", "--gid": "1000"}
    assert t.read_file("/etc/bottle-ca.pem") == b"PEM"
    assert t.read_file("/etc/missing") is None


def test_write_creates_missing_parent():
    fake = FakeMachine()
    transport(fake).write_file("/home/agent/.claude/CLAUDE.md", "hello")
    assert fake.dirs == ["/home/agent/.claude"]
    assert fake.files["/home/agent/.claude/CLAUDE.md"]["content"] == b"hello"
    assert fake.files["/home/agent/.claude/CLAUDE.md"]["--uid"] == "0"


def test_numeric_owner_without_passwd_entry():
    fake = FakeMachine(exec_table={("id", "-g", "4242"): (1, b"", b"id: no such user")})
    transport(fake).write_file("/tmp/x", b"1", owner="4242")
    assert fake.files["/tmp/x"]["--uid"] == "4242" and fake.files["/tmp/x"]["--gid"] == "4242"


def test_unknown_owner_fails():
    fake = FakeMachine(exec_table={("id", "-u", "nobody2"): (1, b"", b"no such user")})
    with pytest.raises(TransportError, match="no user nobody2"):
        transport(fake).write_file("/tmp/x", b"1", owner="nobody2")


def test_machine_must_run():
    with pytest.raises(TransportError, match="is created, not running"):
        transport(FakeMachine(state="created"))
    with pytest.raises(TransportError, match="not found"):
        SmolvmTransport(SmolvmCLI(FakeMachine(), "smolvm"), "other")
