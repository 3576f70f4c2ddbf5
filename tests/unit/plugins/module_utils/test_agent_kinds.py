# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent kind seam: one adapter per kind (agent_kinds), the agent definition's ``kind``, and what the
policy's ``model`` means under each kind (manifest.resolve)."""

from __future__ import annotations

import pathlib
import re
import tomllib

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import (
    agent_kind_claude_code, agent_kind_codex, agent_kinds)
from ansible_collections.botbottle.bottle.plugins.module_utils.manifest import ManifestError, resolve

ROOT = pathlib.Path(__file__).resolve().parents[4]
DECLARED = ("KIND", "CLI", "IMAGE", "MODEL_HOST", "CREDENTIALS", "CREDENTIAL_WORDS", "TRANSPORTS", "STARTUP_HOSTS",
            "PLACEHOLDER", "REAL_KEY_PREFIXES", "PROVIDER_NAME", "PROMPT_FILE", "SKILL_FILE", "SETTINGS_FILE", "CA_ENV", "SANDBOX",
            "EXEC", "ATTACH", "settings", "skill_document", "base_url_env")


def codex_agent(**extra):
    return {"coder": dict({"policy": "ai", "kind": "codex"}, **extra)}


def run(agents, policy=None, held=None, name="coder"):
    policy = {"model": {}} if policy is None else policy
    return resolve(agents, {"ai": policy}, name, model_credentials=held)


# --- the adapters ------------------------------------------------------------------------------

# Each kind's image: its Dockerfile pins the adapter's CLI version, and playbooks/images.yml builds it
# under the adapter's IMAGE.
IMAGE_CONTEXTS = {"claude-code": ("agent", "CLAUDE_CODE_VERSION"), "codex": ("agent-codex", "CODEX_VERSION")}


@pytest.mark.parametrize("kind", agent_kinds.KINDS)
def test_each_kind_s_image_pins_its_cli_and_is_built(kind):
    adapter = agent_kinds.get(kind)
    context, arg = IMAGE_CONTEXTS[kind]
    dockerfile = (ROOT / "images" / context / "Dockerfile").read_text(encoding="utf-8")
    assert "ARG %s=%s\n" % (arg, adapter.CLI["version"]) in dockerfile
    assert '"%s@${%s}"' % (adapter.CLI["npm"], arg) in dockerfile
    images = (ROOT / "playbooks" / "images.yml").read_text(encoding="utf-8")
    assert "default('%s')" % adapter.IMAGE in images and "context: %s\n" % context in images


def test_resolve_names_the_kind_s_image():
    assert run(codex_agent(), held={"OPENAI_API_KEY": "set"})["kind_image"] == "botbottle/agent-codex:latest"
    assert run({"coder": {"policy": "ai"}}, held={"ANTHROPIC_API_KEY": "set"})["kind_image"] == "botbottle/agent:latest"


def test_the_kinds_and_the_default():
    assert agent_kinds.KINDS == ("claude-code", "codex")
    assert agent_kinds.DEFAULT == "claude-code"
    assert agent_kinds.get() is agent_kind_claude_code and agent_kinds.get("codex") is agent_kind_codex
    with pytest.raises(KeyError):
        agent_kinds.get("gemini")


@pytest.mark.parametrize("kind", agent_kinds.KINDS)
def test_every_adapter_declares_the_whole_seam(kind):
    adapter = agent_kinds.get(kind)
    missing = [name for name in DECLARED if not hasattr(adapter, name)]
    assert not missing
    assert adapter.KIND == kind
    assert re.match(r"^\d+\.\d+\.\d+$", adapter.CLI["version"]) and adapter.CLI["npm"].startswith("@")
    assert set(adapter.CREDENTIALS) == set(adapter.CREDENTIAL_WORDS)
    placeholder = adapter.PLACEHOLDER % "demo"
    assert not placeholder.startswith(adapter.REAL_KEY_PREFIXES) and "{prompt}" in adapter.EXEC
    assert set(adapter.TRANSPORTS) <= {"https", "websocket"}


def test_the_preflight_asks_about_every_kinds_credential():
    text = (ROOT / "roles" / "bottle" / "tasks" / "preflight.yml").read_text(encoding="utf-8")
    listed = re.search(r"for name in (\[[^\]]*\])", text).group(1)
    assert sorted(eval(listed)) == sorted(name for name, _kind in agent_kinds.model_envs())  # noqa: S307


def test_model_hosts_and_credential_kinds():
    assert agent_kinds.model_host_kind("API.OpenAI.com") == "codex"
    assert agent_kinds.model_host_kind("api.anthropic.com") == "claude-code"
    assert agent_kinds.model_host_kind("llm.example.com") is None
    assert agent_kinds.credential_kinds() == ("api_key", "oauth")
    assert agent_kinds.kind_error("codex") is None
    assert "'gemini' is not an agent kind: use one of claude-code, codex (default claude-code)" == \
        agent_kinds.kind_error("gemini")


# --- the agent definition's kind ---------------------------------------------------------------

@pytest.mark.parametrize("kind", ["gemini", "Codex", "", 3, None, ["codex"]])
def test_an_unknown_kind_fails_naming_the_kinds(kind):
    with pytest.raises(ManifestError) as err:
        run(codex_agent(kind=kind), {"allowed_domains": ["x.example"]})
    assert "bottle_agents.coder.kind" in str(err.value)
    assert "is not an agent kind: use one of claude-code, codex" in str(err.value)


def test_the_kind_is_in_the_result_and_defaults_to_claude_code():
    assert run({"coder": {"policy": "ai"}}, {"allowed_domains": ["x.example"]})["kind"] == "claude-code"
    assert run(codex_agent(), {"allowed_domains": ["x.example"]})["kind"] == "codex"


# --- model: {} follows the kind -----------------------------------------------------------------

def test_codex_model_is_openais_api_with_the_controllers_key_as_bearer():
    r = run(codex_agent(), held={"OPENAI_API_KEY": "set", "ANTHROPIC_API_KEY": "set"})
    assert r["model"] == {"host": "api.openai.com", "credential": "api_key", "env": "OPENAI_API_KEY",
                          "placeholder": "bottle-placeholder-coder"}
    assert r["policy"]["egress"]["routes"] == [
        {"host": "api.openai.com", "auth": {"scheme": "Bearer", "token_ref": "OPENAI_API_KEY"}}]
    assert r["env"]["OPENAI_API_KEY"] == "bottle-placeholder-coder"
    assert "ANTHROPIC_API_KEY" not in r["env"] and "ANTHROPIC_BASE_URL" not in r["env"]
    # Codex opens the model API as a WebSocket first: allowed for that host, the credential on the handshake.
    assert r["policy"]["firewall"]["websocket_hosts"] == ["api.openai.com"]


def test_codex_keeps_the_policys_own_websocket_hosts():
    policy = {"model": {}, "firewall": {"websocket_hosts": ["ws.example.com", "api.openai.com"]}}
    r = run(codex_agent(), policy, {"OPENAI_API_KEY": True})
    assert r["policy"]["firewall"]["websocket_hosts"] == ["ws.example.com", "api.openai.com"]


def test_claude_code_adds_no_websocket_host():
    r = run({"coder": {"policy": "ai"}}, held={"ANTHROPIC_API_KEY": "set"})
    assert "firewall" not in r["policy"]
    assert r["model"]["env"] == "ANTHROPIC_API_KEY" and r["kind"] == "claude-code"


@pytest.mark.parametrize("held, said", [
    ({"OPENAI_API_KEY": "unset", "ANTHROPIC_API_KEY": "set"}, "OPENAI_API_KEY is not set"),
    ({"OPENAI_API_KEY": "empty"}, "OPENAI_API_KEY is set but empty"),
    ({}, "OPENAI_API_KEY is not set"),
])
def test_codex_without_the_key_fails_naming_the_variable_and_the_fix(held, said):
    with pytest.raises(ManifestError) as err:
        run(codex_agent(), held=held)
    text = str(err.value)
    assert text.startswith("bottle_policies.ai.model: the controller holds no model credential (%s)" % said)
    assert "export OPENAI_API_KEY (an OpenAI API key), or define one as an Ansible variable (ansible-vault" in text
    assert "the agent holds a placeholder" in text


def test_codex_auto_without_model_credentials_names_openai_api_key():
    with pytest.raises(ManifestError, match="whether the controller holds OPENAI_API_KEY was not given.*"
                                            "or set credential api_key$"):
        run(codex_agent())


def test_codex_with_a_gateway_host_keeps_the_key_and_the_websocket_there():
    r = run(codex_agent(), {"model": {"host": "llm.example.com"}}, {"OPENAI_API_KEY": True})
    assert r["policy"]["egress"]["routes"][0]["host"] == "llm.example.com"
    assert r["policy"]["firewall"]["websocket_hosts"] == ["llm.example.com"]
    assert "ANTHROPIC_BASE_URL" not in r["env"]  # codex: the base URL is in its config.toml


@pytest.mark.parametrize("agents, policy, needle", [
    (codex_agent(), {"model": {"host": "api.anthropic.com"}},
     "bottle_policies.ai.model.host api.anthropic.com is the model API of agent kind claude-code, but "
     "bottle_agents.coder is of kind codex (model API api.openai.com): write model: {} for codex's own, or run "
     "this policy with a claude-code agent"),
    ({"coder": {"policy": "ai"}}, {"model": {"host": "API.openai.com"}},
     "bottle_policies.ai.model.host api.openai.com is the model API of agent kind codex, but bottle_agents.coder is "
     "of kind claude-code (model API api.anthropic.com)"),
    (codex_agent(), {"model": {"credential": "oauth"}},
     "bottle_policies.ai.model.credential oauth is a credential of agent kind claude-code (CLAUDE_CODE_OAUTH_TOKEN), "
     "but bottle_agents.coder is of kind codex: use auto or api_key (OPENAI_API_KEY)"),
])
def test_a_model_of_another_kind_fails_naming_the_mismatch(agents, policy, needle):
    with pytest.raises(ManifestError) as err:
        run(agents, policy, {"OPENAI_API_KEY": True, "ANTHROPIC_API_KEY": True, "CLAUDE_CODE_OAUTH_TOKEN": True})
    assert needle in str(err.value)


@pytest.mark.parametrize("where", ["env", "secret_env"])
def test_codex_agent_may_not_set_its_own_model_key(where):
    with pytest.raises(ManifestError, match=r"bottle_agents.coder.%s.OPENAI_API_KEY: the bottle sets the model "
                                            r"credential itself" % where):
        run(codex_agent(**{where: {"OPENAI_API_KEY": "sk-proj-x"}}), held={"OPENAI_API_KEY": True})


def test_model_credentials_by_variable_name_for_claude_code_too():
    r = run({"coder": {"policy": "ai"}}, held={"ANTHROPIC_API_KEY": "unset", "CLAUDE_CODE_OAUTH_TOKEN": "set",
                                               "OPENAI_API_KEY": "set"})
    assert r["model"]["credential"] == "oauth" and r["model"]["env"] == "CLAUDE_CODE_OAUTH_TOKEN"
    with pytest.raises(ManifestError, match="model_credentials.OPENAI_API_KEY must be set, empty or unset"):
        run(codex_agent(), held={"OPENAI_API_KEY": "sk-proj-real"})


# --- codex's config.toml -------------------------------------------------------------------------

MODEL = {"env": "OPENAI_API_KEY", "placeholder": "bottle-placeholder-coder", "host": "api.openai.com"}
SUPERVISE = {"supervise": {"type": "http", "url": "http://172.29.0.2:9100/mcp"}}


def test_codex_settings_make_the_bottle_the_sandbox_and_route_the_model():
    text = agent_kind_codex.settings(b"old = 1\n", SUPERVISE, MODEL).decode()
    assert text.startswith("# ~/.codex/config.toml - written by botbottle.bottle")
    data = tomllib.loads(text)
    assert "old" not in data  # the file is the bottle's
    assert data["sandbox_mode"] == "danger-full-access" and data["approval_policy"] == "never"
    assert data["model_provider"] == "bottle"
    assert data["model_providers"]["bottle"] == {
        "name": "OpenAI through the bottle's egress", "base_url": "https://api.openai.com/v1",
        "env_key": "OPENAI_API_KEY", "wire_api": "responses", "supports_websockets": True}
    assert data["features"] == {"api_key_model_discovery": False, "apps": False, "enable_request_compression": False,
                                "plugins": False, "remote_plugin": False}
    assert data["analytics"] == {"enabled": False}
    assert data["mcp_servers"] == {"supervise": {"url": "http://172.29.0.2:9100/mcp"}}
    assert "bottle-placeholder" not in text  # the placeholder is in the environment, never in the file


def test_codex_settings_without_model_keep_the_default_provider():
    data = tomllib.loads(agent_kind_codex.settings(None, {}, None).decode())
    assert "model_provider" not in data and "model_providers" not in data and "mcp_servers" not in data
    assert data["sandbox_mode"] == "danger-full-access"


def test_codex_settings_quote_what_they_are_given():
    servers = {"a.b": {"type": "stdio", "command": "/bin/mcp \"x\"", "args": ["--é", "\\n"], "env": {"K-1": "v"}},
               "web": {"type": "http", "url": "http://h/mcp", "headers": {"X-Token": "t"}},
               "old": {"type": "sse", "url": "http://h/sse"}}
    data = tomllib.loads(agent_kind_codex.settings(None, servers, dict(MODEL, host="llm.example.com")).decode())
    assert data["mcp_servers"] == {"a.b": {"command": "/bin/mcp \"x\"", "args": ["--é", "\\n"], "env": {"K-1": "v"}},
                                   "web": {"url": "http://h/mcp", "http_headers": {"X-Token": "t"}}}
    assert data["model_providers"]["bottle"]["base_url"] == "https://llm.example.com/v1"


def test_claude_code_adapter_is_what_provisioning_used():
    assert agent_kind_claude_code.base_url_env("api.anthropic.com") == {}
    assert agent_kind_claude_code.base_url_env("llm.example.com") == {"ANTHROPIC_BASE_URL": "https://llm.example.com"}
    assert agent_kind_codex.skill_document("x", "# x\n\nDo it.").startswith('---\nname: x\ndescription: "Do it."')
