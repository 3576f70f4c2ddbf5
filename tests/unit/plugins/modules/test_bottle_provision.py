# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_provision against a fake agent transport."""

from __future__ import annotations

from unittest import mock

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils.agent_transport import AgentTransport
from ansible_collections.botbottle.bottle.plugins.modules import bottle_provision
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import Failed, run_module

CERT = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class FakeAgent(AgentTransport):
    def __init__(self):
        self.files, self.runs = {}, []

    def run(self, argv, user=None, data=None):
        self.runs.append((tuple(argv), user))
        return 0, b"", b""

    def read_file(self, path, user=None):
        return self.files.get(path, (None,))[0]

    def write_file(self, path, content, mode=0o644, owner=None):
        self.files[path] = (content, mode, owner)


@pytest.fixture
def agent():
    return FakeAgent()


@pytest.fixture
def ca(tmp_path):
    path = tmp_path / "bottle-ca.pem"
    path.write_bytes(CERT)
    return str(path)


def run(agent, ca, check=False, **overrides):
    args = {"target": "bb-demo-agent", "ca_cert_path": ca, "prompt": "Be careful.",
            "skills": {"lint": "# lint"}}
    args.update(overrides)
    # run_module swaps the module's docker client; bottle_provision reaches the agent through a
    # transport instead, which is what this fake replaces.
    with mock.patch.object(bottle_provision, "get_transport", lambda module, kind, target: agent), \
            mock.patch.object(bottle_provision, "get_docker_client", None, create=True):
        return run_module(bottle_provision, None, args, check=check, diff=True)


def test_first_run_writes_everything_and_refreshes_the_trust_store(agent, ca):
    result = run(agent, ca)
    assert result["changed"]
    assert agent.files[bottle_provision.CA_TARGET] == (CERT, 0o644, None)
    assert agent.files["/home/agent/.claude/CLAUDE.md"] == (b"Be careful.", 0o644, "agent:agent")
    assert agent.files["/home/agent/.claude/skills/lint/SKILL.md"][0] == b"# lint"
    assert (("update-ca-certificates",), "root") in agent.runs
    assert {d["after_header"] for d in result["diff"]} == set(agent.files)


def test_second_run_changes_nothing(agent, ca):
    run(agent, ca)
    agent.runs.clear()
    result = run(agent, ca)
    assert not result["changed"]
    assert agent.runs == []


def test_check_mode_writes_nothing(agent, ca):
    result = run(agent, ca, check=True)
    assert result["changed"] and agent.files == {} and agent.runs == []


def test_changed_prompt_only_rewrites_the_prompt(agent, ca):
    run(agent, ca)
    agent.runs.clear()
    result = run(agent, ca, prompt="New prompt.")
    assert [f["path"] for f in result["files"] if f["changed"]] == ["/home/agent/.claude/CLAUDE.md"]
    assert agent.runs == []  # the CA did not change: no trust store refresh


def test_a_key_in_the_ca_file_is_refused(agent, tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_bytes(CERT + b"-----BEGIN EC PRIVATE KEY-----\nx\n")
    with pytest.raises(Failed, match="CA certificate only"):
        run(agent, str(bad))


def test_missing_ca_file_names_the_fix(agent, tmp_path):
    with pytest.raises(Failed, match="launch the bundle before provisioning"):
        run(agent, str(tmp_path / "absent.pem"))


def test_path_like_skill_name_refused(agent, ca):
    with pytest.raises(Failed, match="not a valid skill name"):
        run(agent, ca, skills={"../../etc": "x"})
