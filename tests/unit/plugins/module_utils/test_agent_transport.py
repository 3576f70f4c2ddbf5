# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DockerTransport against an in-memory container; get_transport's choices."""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import transport_factory
from ansible_collections.botbottle.bottle.plugins.module_utils.agent_transport import AgentTransport, TransportError
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_transport import DockerTransport
from ansible_collections.botbottle.bottle.plugins.module_utils.transport_factory import get_transport
from ansible_collections.botbottle.bottle.tests.unit.plugins.module_utils.agent_fakes import (
    FakeClient, FakeContainer)


@pytest.fixture
def box():
    return FakeContainer()


@pytest.fixture
def transport(box):
    return DockerTransport(FakeClient(box), box.name)


def test_missing_container_names_it():
    with pytest.raises(TransportError, match="agent container bb-x-agent not found"):
        DockerTransport(FakeClient(), "bb-x-agent")


def test_stopped_container_is_refused():
    box = FakeContainer(status="exited")
    with pytest.raises(TransportError, match="is exited, not running"):
        DockerTransport(FakeClient(box), box.name)


def test_run_returns_rc_and_split_streams(transport):
    assert transport.run(["id", "-u", "agent"]) == (0, b"1000\n", b"")
    rc, out, err = transport.run(["id", "-u", "nobody-here"])
    assert rc == 1 and out == b"" and b"no such user" in err


def test_run_data_goes_through_a_staged_file_not_argv(transport, box):
    rc, out, _err = transport.run(["id", "-u", "agent"], data=b"s3cret")
    assert rc == 0 and out.endswith(b"<stdin:s3cret>")
    argv, _user = box.execs[0]
    assert b"s3cret" not in repr(argv).encode()
    assert not [p for p in box.fs if p.startswith("/tmp/.bottle-stdin")]  # removed afterwards


def test_write_then_read_into_the_agents_private_home(transport, box):
    # root in the agent cannot enter /home/agent (0700, no capabilities): the engine can.
    transport.write_file("/home/agent/.claude/skills/x/SKILL.md", b"# x", owner="agent:agent")
    node = box.fs["/home/agent/.claude/skills/x/SKILL.md"]
    assert (node["content"], node["mode"], node["uid"], node["gid"]) == (b"# x", 0o644, 1000, 1000)
    assert box.fs["/home/agent/.claude/skills"]["uid"] == 1000  # parents made by the owner
    assert transport.read_file("/home/agent/.claude/skills/x/SKILL.md") == b"# x"
    assert transport.stat("/home/agent/.claude/skills/x/SKILL.md") == {"mode": 0o644, "uid": 1000, "gid": 1000}
    assert transport.read_file_info("/home/agent/.claude/skills/x/SKILL.md")[1]["uid"] == 1000


def test_root_owned_file(transport, box):
    transport.write_file("/usr/local/share/ca-certificates/bottle-ca.crt", "pem", mode=0o600)
    node = box.fs["/usr/local/share/ca-certificates/bottle-ca.crt"]
    assert (node["content"], node["mode"], node["uid"]) == (b"pem", 0o600, 0)


def test_absent_file_reads_as_none(transport):
    assert transport.read_file("/home/agent/nothing") is None
    assert transport.stat("/home/agent/nothing") is None
    assert transport.read_file_info("/home/agent/nothing") == (None, None)


def test_a_link_or_directory_is_not_the_file(transport, box):
    box.fs["/home/agent/.claude"] = {"type": "dir", "mode": 0o755, "uid": 1000, "gid": 1000}
    box.fs["/home/agent/.claude/CLAUDE.md"] = {"type": "link", "mode": 0o777, "uid": 1000, "gid": 1000,
                                               "target": "/etc/passwd"}
    assert transport.read_file("/home/agent/.claude/CLAUDE.md") is None
    assert transport.read_file("/home/agent/.claude") is None


def test_unknown_owner_names_the_user(transport):
    with pytest.raises(TransportError, match="no user ghost"):
        transport.write_file("/home/agent/x", b"", owner="ghost")


def test_ids_accept_numbers_and_groups_and_are_cached(transport, box):
    assert transport.ids("1000") == (1000, 1000)
    assert transport.ids("agent:root") == (1000, 0)
    box.execs.clear()
    assert transport.ids("agent:root") == (1000, 0)
    assert box.execs == []
    with pytest.raises(TransportError, match="no group nogroup"):
        transport.ids("agent:nogroup")


def test_mkdir_failure_is_reported(transport, box):
    box.fs["/srv"] = {"type": "dir", "mode": 0o755, "uid": 0, "gid": 0}
    with pytest.raises(TransportError, match="cannot create /srv/x"):
        transport.write_file("/srv/x/f", b"", owner="agent")


def test_engine_error_other_than_not_found_is_raised(transport, box):
    def broken(path):
        raise RuntimeError("engine on fire")
    box.get_archive = broken
    with pytest.raises(TransportError, match="engine on fire"):
        transport.read_file("/etc/hostname")


def test_base_class_defaults_use_run():
    class Shell(AgentTransport):
        def run(self, argv, user=None, data=None):
            if argv[0] == "cat":
                return (0, b"hello", b"") if argv[-1] == "/f" else (1, b"", b"no")
            return (0, b"640 1000 1000\n", b"") if argv[-1] == "/f" else (1, b"", b"no")
    shell = Shell()
    assert shell.read_file_info("/f") == (b"hello", {"mode": 0o640, "uid": 1000, "gid": 1000})
    assert shell.read_file_info("/g") == (None, None)


def test_get_transport_docker_uses_the_given_client(box):
    result = get_transport(None, "docker", box.name, client=FakeClient(box))
    assert isinstance(result, DockerTransport) and result.container is box


def test_get_transport_smolvm_builds_the_cli_from_module_params(tmp_path):
    binary = tmp_path / "smolvm"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    module = SimpleNamespace(params={"smolvm_path": str(binary), "smolvm_state_dir": "/var/smol"},
                             get_bin_path=lambda name, required=False: None,
                             run_command=mock.Mock())
    with mock.patch("ansible_collections.botbottle.bottle.plugins.module_utils.smolvm_transport.SmolvmTransport",
                    lambda cli, name: ("smolvm", cli, name)):
        kind, cli, name = get_transport(module, "smolvm", "bb-demo-agent")
    assert (kind, name, cli.state_dir) == ("smolvm", "bb-demo-agent", "/var/smol")
    assert cli.binary == str(binary)


def test_get_transport_smolvm_without_binary_names_the_fix(tmp_path):
    module = SimpleNamespace(params={"smolvm_path": str(tmp_path / "absent")},
                             get_bin_path=lambda name, required=False: None)
    with pytest.raises(TransportError, match="smolvm_path"):
        get_transport(module, "smolvm", "bb-demo-agent")


def test_get_transport_unknown_kind():
    with pytest.raises(TransportError, match="use one of docker, smolvm"):
        get_transport(None, "ssh", "x")


def test_transports_constant_lists_what_the_factory_accepts():
    assert transport_factory.TRANSPORTS == ("docker", "smolvm")


def test_ids_read_from_the_agents_account_files_without_an_exec(transport, box):
    box.fs["/etc/passwd"] = {"type": "file", "mode": 0o644, "uid": 0, "gid": 0,
                             "content": b"root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1001::/home/agent:/bin/sh\n"}
    box.fs["/etc/group"] = {"type": "file", "mode": 0o644, "uid": 0, "gid": 0,
                            "content": b"root:x:0:\nagent:x:1001:\nstaff:x:50:agent\n"}
    box.execs.clear()
    assert transport.ids("agent") == (1000, 1001)
    assert transport.ids("agent:staff") == (1000, 50)
    assert transport.ids("1000:0") == (1000, 0)
    assert box.execs == []
    # a name the files do not know is asked of the agent's name service
    with pytest.raises(TransportError, match="no user ghost"):
        transport.ids("ghost")
