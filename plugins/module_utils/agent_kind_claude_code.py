# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent kind ``claude-code``: Anthropic's Claude Code CLI, as the bottle runs it.

One adapter per agent kind (``agent_kinds`` lists them): what the kind's CLI is, where its model
credential goes and how it is sent, what it reads its prompt, skills and MCP servers from. Facts
observed with Claude Code 2.1.330 on loopback (images/testnet/model.py, /work/shared/design/agents.md).
Pure Python; no Ansible.
"""

from __future__ import annotations

import json

from ansible_collections.botbottle.bottle.plugins.module_utils.agent_transport import TransportError

KIND = "claude-code"
# The CLI and the version the agent image pins (images/agent/Dockerfile).
CLI = {"npm": "@anthropic-ai/claude-code", "version": "2.1.330", "command": "claude"}
# The agent image with that CLI (images/agent, built by playbooks/images.yml): the role's default for an
# agent of this kind (bottle_agent_image, bottle_agent_images; an agent's own ``image`` wins).
IMAGE = "botbottle/agent:latest"
# The model API: its host, and per credential kind (in the order ``auto`` tries them) the variable the
# agent holds the placeholder in (on the controller: the real value, the route's token_ref) and the
# route auth egress adds it with.
MODEL_HOST = "api.anthropic.com"
CREDENTIALS = {
    "api_key": ("ANTHROPIC_API_KEY", {"scheme": "header", "header": "x-api-key", "value": "{token}"}),
    "oauth": ("CLAUDE_CODE_OAUTH_TOKEN", {"scheme": "Bearer"}),
}
# What each credential kind is, for errors.
CREDENTIAL_WORDS = {"api_key": "an API key", "oauth": "a Claude subscription's token, from `claude setup-token`"}
# Transports to the model: HTTPS with server-sent events only (no WebSocket host needed).
TRANSPORTS = ("https",)
# Other hosts it calls at start-up: with ANTHROPIC_BASE_URL unset, only api.anthropic.com itself
# (model.py's STATIC answers them); nothing else.
STARTUP_HOSTS = {}
# The agent's placeholder for the model credential: nothing a secret scanner takes for an Anthropic key
# (egress's DLP scans the agent's headers before the credential goes in; an sk-ant-... shape would be
# refused), which Claude Code sends as it is.
PLACEHOLDER = "bottle-placeholder-%s"
REAL_KEY_PREFIXES = ("sk-ant-",)
PROVIDER_NAME = "Anthropic"
# Files in the agent user's home.
PROMPT_FILE = ".claude/CLAUDE.md"
SKILL_FILE = ".claude/skills/%s/SKILL.md"
SETTINGS_FILE = ".claude.json"
# The proxy and CA the bottle sets for every agent (agent_container.CA_ENV): Claude Code honours
# HTTPS_PROXY and adds NODE_EXTRA_CA_CERTS to node's roots.
CA_ENV = ("NODE_EXTRA_CA_CERTS",)
# Claude Code runs commands itself (no sandbox of its own to switch off in a bottle).
SANDBOX = None
# Non-interactive: one prompt, streamed JSON events; interactive: `claude` in the agent's terminal.
EXEC = ("claude", "-p", "{prompt}", "--output-format", "stream-json", "--verbose")
ATTACH = ("claude",)
# Claude Code 2.1.330 remembers an accepted ANTHROPIC_API_KEY by its last 20 characters (trimmed).
APPROVED_KEY_CHARS = 20


def base_url_env(host):
    """Environment that points the CLI at a model host other than MODEL_HOST (a gateway)."""
    return {} if host == MODEL_HOST else {"ANTHROPIC_BASE_URL": "https://%s" % host}


def skill_document(name, text):
    """``text`` as Claude Code reads a skill: YAML front matter (name, description), then the body.

    Text that opens with its own front matter is kept as it is; otherwise the front matter is
    added, the description being the first paragraph of prose (headings skipped), so the skill is
    listed with something meaningful.
    """
    text = str(text)
    if text.startswith("---\n"):
        return text
    paragraph = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            paragraph.append(line)
        elif paragraph:
            break
    description = " ".join(paragraph) or "Skill %s" % name
    # A JSON string is a valid YAML double-quoted scalar: quotes and colons in the prose are safe.
    return "---\nname: %s\ndescription: %s\n---\n\n%s" % (name, json.dumps(description), text)


def approved_key(placeholder):
    """What Claude Code records in customApiKeyResponses for an accepted ANTHROPIC_API_KEY."""
    return placeholder.strip()[-APPROVED_KEY_CHARS:]


def settings(current, servers, model=None):
    """Claude Code's ~/.claude.json (bytes) with ``servers`` set under mcpServers and, with ``model``
    (``{env, placeholder}``), onboarding done and an API-key placeholder approved; the rest kept as it is."""
    try:
        data = json.loads(current) if current and current.strip() else {}
    except ValueError as exc:
        raise TransportError("~/.claude.json in the agent is not valid JSON (%s): fix or remove it" % exc)
    if not isinstance(data, dict):
        raise TransportError("~/.claude.json in the agent is not a JSON object: fix or remove it")
    changed = current is None
    registered = dict(data.get("mcpServers") or {})
    if servers and not all(registered.get(name) == spec for name, spec in servers.items()):
        registered.update(servers)
        data["mcpServers"] = registered
        changed = True
    if model:
        if data.get("hasCompletedOnboarding") is not True:
            data["hasCompletedOnboarding"] = True
            changed = True
        if model["env"] == "ANTHROPIC_API_KEY":
            key = approved_key(model["placeholder"])
            responses = data.get("customApiKeyResponses")
            responses = dict(responses) if isinstance(responses, dict) else {}
            approved = [k for k in responses.get("approved") or [] if isinstance(k, str)]
            rejected = [k for k in responses.get("rejected") or [] if isinstance(k, str)]
            if key not in approved or key in rejected:
                responses["approved"] = approved if key in approved else approved + [key]
                responses["rejected"] = [k for k in rejected if k != key]
                data["customApiKeyResponses"] = responses
                changed = True
    if not changed:
        return current
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")
