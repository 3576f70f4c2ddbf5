# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent image rule, one for the launch (agent_image) and the fleet's shipping (fleet_images)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.botbottle.bottle.plugins.filter.agent_image import agent_image
from ansible_collections.botbottle.bottle.plugins.filter.fleet_images import fleet_images

DEFINITIONS = {
    "coder": {"policy": "ai"},
    "cx": {"policy": "ai", "kind": "codex"},
    "own": {"policy": "ai", "kind": "codex", "image": "corp/agent:1"},
}


@pytest.mark.parametrize("name,kind_images,want", [
    ("coder", {}, "botbottle/agent:latest"),
    ("cx", {}, "botbottle/agent-codex:latest"),
    ("cx", {"codex": "corp/codex:2"}, "corp/codex:2"),
    ("coder", {"codex": "corp/codex:2"}, "botbottle/agent:latest"),
    ("coder", {"claude-code": "corp/claude:3"}, "corp/claude:3"),
    ("own", {"codex": "corp/codex:2"}, "corp/agent:1"),
])
def test_the_agent_own_image_then_its_kinds(name, kind_images, want):
    assert agent_image(DEFINITIONS[name], kind_images, "botbottle/agent:latest") == want


def test_bottle_agent_image_is_the_default_kinds_only():
    assert agent_image(DEFINITIONS["coder"], {}, "corp/agent:9") == "corp/agent:9"
    assert agent_image(DEFINITIONS["cx"], {}, "corp/agent:9") == "botbottle/agent-codex:latest"


def test_an_unknown_kind_names_the_kinds():
    with pytest.raises(AnsibleFilterError, match="claude-code, codex"):
        agent_image({"kind": "gemini"})


def test_a_fleet_host_gets_its_bundle_and_each_of_its_agents_image_once():
    args = (DEFINITIONS, {}, "botbottle/agent:latest", "botbottle/bundle:latest")
    assert fleet_images(["coder"], *args) == ["botbottle/bundle:latest", "botbottle/agent:latest"]
    assert fleet_images(["cx", "coder", "cx"], *args) == [
        "botbottle/bundle:latest", "botbottle/agent-codex:latest", "botbottle/agent:latest"]
    assert fleet_images(["own"], *args) == ["botbottle/bundle:latest", "corp/agent:1"]
    assert fleet_images([], *args) == ["botbottle/bundle:latest"]
