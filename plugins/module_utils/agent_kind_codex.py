# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent kind ``codex``: OpenAI's Codex CLI, as the bottle runs it.

One adapter per agent kind (``agent_kinds`` lists them). Every fact below was observed with codex
0.171.0 on loopback against the testnet's scripted OpenAI API (images/testnet/openai_model.py);
docs/agents-codex.md has the runs. Pure Python; no Ansible.

What the bottle does with them: the model route (api.openai.com, the controller's OPENAI_API_KEY
added as ``Authorization: Bearer`` by egress, on HTTPS requests and on the WebSocket handshake), a
WebSocket host for the model, and ``~/.codex/config.toml`` (``settings``): a model provider that
reads the placeholder from OPENAI_API_KEY, the bottle as the sandbox, start-up calls off, the MCP
servers (supervise).
"""

from __future__ import annotations

import json
import re

from ansible_collections.botbottle.bottle.plugins.module_utils import agent_kind_claude_code as claude_code

KIND = "codex"
# The npm package brings the platform binary as an optional dependency (@openai/codex-linux-x64, an
# alias of @openai/codex@<version>-linux-x64: 444 MB unpacked for 0.171.0).
CLI = {"npm": "@openai/codex", "version": "0.171.0", "command": "codex"}
# One image per kind, layered (docs/agents-codex.md has the figures): images/agent-codex is the agent
# image plus this CLI, built by playbooks/images.yml; the role's default for a codex agent.
IMAGE = "botbottle/agent-codex:latest"
MODEL_HOST = "api.openai.com"
# codex 0.171.0 with its built-in provider sends no Authorization with only OPENAI_API_KEY set (it
# reads CODEX_API_KEY, or ~/.codex/auth.json); the provider written by ``settings`` reads
# OPENAI_API_KEY (env_key) and sends it as Authorization: Bearer - the variable the agent holds
# the placeholder in, and the controller's name for the real key.
CREDENTIALS = {"api_key": ("OPENAI_API_KEY", {"scheme": "Bearer"})}
CREDENTIAL_WORDS = {"api_key": "an OpenAI API key"}
# It opens GET /v1/responses as a WebSocket first (Upgrade: websocket, OpenAI-Beta:
# responses_websockets=2026-02-06, the credential on the handshake) and falls back to HTTPS with
# server-sent events after five failed reconnects (about 7 s).
TRANSPORTS = ("websocket", "https")
# Called at start-up with the default configuration, each turned off by ``settings``:
STARTUP_HOSTS = {
    "chatgpt.com": "GET /backend-api/codex/models (with the model credential as Bearer!), GET "
                   "/backend-api/plugins/export/curated: off with a provider of our own and features "
                   "api_key_model_discovery, plugins, remote_plugin, apps = false",
    "api.github.com": "GET /repos/openai/plugins: off with features plugins, remote_plugin = false",
    "ab.chatgpt.com": "POST /otlp/v1/metrics: off with [analytics] enabled = false",
}
PLACEHOLDER = "bottle-placeholder-%s"
REAL_KEY_PREFIXES = ("sk-proj-", "sk-svcacct-", "sk-admin-")
PROVIDER_NAME = "OpenAI"
# Codex reads ~/.codex/AGENTS.md into every conversation ("# AGENTS.md instructions"), and lists
# skills from ~/.codex/skills/<name>/SKILL.md (front matter as Claude Code's).
PROMPT_FILE = ".codex/AGENTS.md"
SKILL_FILE = ".codex/skills/%s/SKILL.md"
SETTINGS_FILE = ".codex/config.toml"
# Written at every launch, with or without model and MCP servers: it holds the sandbox setting.
SETTINGS_ALWAYS = True
# Proxy and CA: HTTPS_PROXY is honoured; the CA is read from CODEX_CA_CERTIFICATE, else SSL_CERT_FILE
# (both verified with a CA of our own) - the bottle sets SSL_CERT_FILE to the system bundle, which
# holds the bottle's CA once provisioned.
CA_ENV = ("SSL_CERT_FILE",)
# `codex exec` defaults to a read-only sandbox (bubblewrap/seccomp; a write failed "Read-only file
# system"): inside a bottle the bottle is the sandbox.
SANDBOX = {"sandbox_mode": "danger-full-access", "approval_policy": "never"}
EXEC = ("codex", "exec", "--json", "--skip-git-repo-check", "{prompt}")
ATTACH = ("codex",)
PROVIDER = "bottle"
HEADER = ("# ~/.codex/config.toml - written by botbottle.bottle (the codex agent kind) at each launch: "
          "edits here are replaced.\n")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def base_url_env(host):
    """Codex takes its base URL from config.toml (``settings``), never from the environment."""
    del host
    return {}


def _key(name):
    return name if _BARE_KEY.match(name) else json.dumps(name)


def _value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[%s]" % ", ".join(_value(item) for item in value)
    if isinstance(value, dict):
        return "{ %s }" % ", ".join("%s = %s" % (_key(k), _value(v)) for k, v in sorted(value.items()))
    # A JSON string with every non-ASCII character escaped is a TOML basic string.
    return json.dumps(str(value), ensure_ascii=True)


def toml(tables):
    """TOML text of ``tables``: ``[(header or None, {key: value})]`` in order (None: the top level)."""
    out = []
    for header, values in tables:
        if header is not None:
            out.append("\n[%s]" % ".".join(_key(part) for part in header))
        out.extend("%s = %s" % (_key(key), _value(value)) for key, value in values.items())
    return "\n".join(out) + "\n"


def mcp_entry(spec):
    """Codex's [mcp_servers.<name>] table for a Claude-style server entry ({type: http, url, headers}
    or {type: stdio, command, args, env}); None for a type Codex does not take."""
    kind = spec.get("type")
    if kind == "http" and isinstance(spec.get("url"), str):
        entry = {"url": spec["url"]}
        if spec.get("headers"):
            entry["http_headers"] = dict(spec["headers"])
        return entry
    if kind == "stdio" and isinstance(spec.get("command"), str):
        entry = {"command": spec["command"]}
        for key in ("args", "env"):
            if spec.get(key):
                entry[key] = spec[key]
        return entry
    return None


def settings(current, servers, model=None):
    """~/.codex/config.toml (bytes): the bottle as the sandbox, the start-up calls off, ``servers`` under
    [mcp_servers], and with ``model`` (``{env, placeholder, host}``) a provider of the bottle's that sends
    the placeholder the agent holds in ``env`` as Bearer to https://<host>/v1 (WebSocket first). The file
    is the bottle's: ``current`` is replaced."""
    del current
    top = dict(SANDBOX, check_for_update_on_startup=False)
    if model:
        top = dict({"model_provider": PROVIDER}, **top)
    tables = [(None, top),
              (("features",), {"api_key_model_discovery": False, "apps": False, "enable_request_compression": False,
                               "plugins": False, "remote_plugin": False}),
              (("analytics",), {"enabled": False})]
    if model:
        tables.append((("model_providers", PROVIDER), {
            "name": "OpenAI through the bottle's egress", "base_url": "https://%s/v1" % model.get("host", MODEL_HOST),
            "env_key": model["env"], "wire_api": "responses", "supports_websockets": True}))
    for name in sorted(servers or {}):
        entry = mcp_entry(servers[name])
        if entry is not None:
            tables.append((("mcp_servers", name), entry))
    return (HEADER + toml(tables)).encode("utf-8")


def skill_document(name, text):
    """A skill as Codex reads it: the SKILL.md format Claude Code reads (front matter: name, description)."""
    return claude_code.skill_document(name, text)
