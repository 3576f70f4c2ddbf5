# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_provision for a codex agent (kind codex): Codex's prompt, skills and ~/.codex/config.toml, through the
real DockerTransport against an in-memory agent container (the harness of test_bottle_provision)."""

from __future__ import annotations

import tomllib

import pytest

from ansible_collections.botbottle.bottle.tests.unit.plugins.module_utils.agent_fakes import FakeContainer
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import Failed
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.test_bottle_provision import CERT, node, run

AGENTS_MD = "/home/agent/.codex/AGENTS.md"
SKILL = "/home/agent/.codex/skills/lint/SKILL.md"
CONFIG = "/home/agent/.codex/config.toml"
CLAUDE = ("/home/agent/.claude.json", "/home/agent/.claude/CLAUDE.md", "/home/agent/.claude/skills/lint/SKILL.md")
MODEL = {"env": "OPENAI_API_KEY", "placeholder": "bottle-placeholder-coder", "host": "api.openai.com",
         "credential": "api_key"}
SERVERS = {"supervise": {"type": "http", "url": "http://172.29.0.2:9100/mcp"}}


@pytest.fixture
def box():
    return FakeContainer()


@pytest.fixture
def ca(tmp_path):
    path = tmp_path / "bottle-ca.pem"
    path.write_bytes(CERT)
    return str(path)


def test_codex_files_go_where_codex_reads_them(box, ca):
    result = run(box, ca, kind="codex", model=MODEL, mcp_servers=SERVERS)
    assert result["changed"]
    assert node(box, AGENTS_MD) == (b"Be careful.", 0o644, 1000, 1000)
    assert node(box, SKILL)[0].startswith(b"---\nname: lint\n")
    content, mode, uid, gid = node(box, CONFIG)
    assert (mode, uid, gid) == (0o600, 1000, 1000)
    data = tomllib.loads(content.decode())
    assert data["sandbox_mode"] == "danger-full-access"
    assert data["model_providers"]["bottle"]["env_key"] == "OPENAI_API_KEY"
    assert data["mcp_servers"]["supervise"]["url"] == "http://172.29.0.2:9100/mcp"
    assert not any(path in box.fs for path in CLAUDE)
    assert not run(box, ca, kind="codex", model=MODEL, mcp_servers=SERVERS)["changed"]


def test_codex_gets_its_config_even_without_model_or_servers(box, ca):
    run(box, ca, kind="codex")
    data = tomllib.loads(node(box, CONFIG)[0].decode())
    assert data["sandbox_mode"] == "danger-full-access" and "model_provider" not in data


def test_an_edited_codex_config_is_put_back(box, ca):
    run(box, ca, kind="codex", model=MODEL)
    box.fs[CONFIG]["content"] = b'sandbox_mode = "read-only"\n'
    result = run(box, ca, kind="codex", model=MODEL)
    assert result["changed"] and [f["reasons"] for f in result["files"] if f["path"] == CONFIG] == [["content"]]
    assert b'sandbox_mode = "danger-full-access"' in node(box, CONFIG)[0]


@pytest.mark.parametrize("overrides, needle", [
    ({"model": dict(MODEL, env="ANTHROPIC_API_KEY")},
     "model must hold env (OPENAI_API_KEY) and placeholder (the value the agent holds): pass the model of the "
     "botbottle.bottle.resolve_bottle filter's result for a codex agent"),
    ({"model": dict(MODEL, placeholder="sk-proj-realLookingKey")},
     "model.placeholder looks like a real OpenAI credential (sk-proj-...)"),
    ({"mcp_servers": {"old": {"type": "sse", "url": "http://h/sse"}}},
     "mcp_servers.old: a codex agent takes {type: http, url: ...} or {type: stdio, command: ...} servers"),
    ({"kind": "gemini"}, "value of kind must be one of: claude-code, codex"),
])
def test_bad_codex_options_are_refused_before_anything_is_written(box, ca, overrides, needle):
    with pytest.raises(Failed) as err:
        run(box, ca, **dict({"kind": "codex"}, **overrides))
    assert needle in str(err.value) and "realLookingKey" not in str(err.value)
    assert CONFIG not in box.fs and AGENTS_MD not in box.fs
