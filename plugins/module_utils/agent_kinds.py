# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent kinds a bottle runs (an agent definition's ``kind``), one adapter module each.

A kind's adapter (``agent_kind_<name>.py``) declares its CLI and pinned version, model host, credentials
(variable, route auth), transports, start-up hosts, placeholder, prompt/skill/settings files and the
settings writer, CA variables, sandbox setting and commands. A third kind is one more adapter file and
one more entry in ``ADAPTERS``. Pure Python; no Ansible.
"""

from __future__ import annotations

from ansible_collections.botbottle.bottle.plugins.module_utils import agent_kind_claude_code, agent_kind_codex

ADAPTERS = {adapter.KIND: adapter for adapter in (agent_kind_claude_code, agent_kind_codex)}
KINDS = tuple(ADAPTERS)
DEFAULT = agent_kind_claude_code.KIND


def get(kind=None):
    """The adapter of ``kind`` (None: the default kind); KeyError for an unknown one (``kind_error`` says why)."""
    return ADAPTERS[kind or DEFAULT]


def kind_error(kind):
    """None when ``kind`` is a known kind, else why and the fix."""
    if isinstance(kind, str) and kind in ADAPTERS:
        return None
    return "%r is not an agent kind: use one of %s (default %s)" % (kind, ", ".join(KINDS), DEFAULT)


def model_host_kind(host):
    """The kind whose model API ``host`` is (None: no kind's)."""
    host = str(host or "").lower()
    for kind, adapter in ADAPTERS.items():
        if adapter.MODEL_HOST == host:
            return kind
    return None


def credential_kinds():
    """Every credential kind some agent kind takes (for a policy, which names no agent kind)."""
    return tuple(sorted({credential for adapter in ADAPTERS.values() for credential in adapter.CREDENTIALS}))


def model_envs():
    """(variable, kind) of every model credential variable of every kind."""
    return tuple((env, kind) for kind, adapter in ADAPTERS.items() for env, _auth in adapter.CREDENTIALS.values())


def agent_image(own, kind, kind_images=None, default_image=None):
    """The agent image of an agent: its definition's own ``image``, else ``kind_images[kind]`` (the role's
    ``bottle_agent_images``), else ``default_image`` (``bottle_agent_image``) for the default kind and the
    kind's adapter's ``IMAGE`` for another (each kind's CLI is its own image layer: docs/agents-codex.md)."""
    if own:
        return own
    kind = kind or DEFAULT
    if (kind_images or {}).get(kind):
        return kind_images[kind]
    if kind == DEFAULT and default_image:
        return default_image
    return get(kind).IMAGE
