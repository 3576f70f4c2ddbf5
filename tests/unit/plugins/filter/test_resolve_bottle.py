# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.botbottle.bottle.plugins.filter.resolve_bottle import FilterModule


def test_filter_resolves_and_wraps_errors():
    resolve_bottle = FilterModule().filters()["resolve_bottle"]
    agents = {"a": {"policy": "p"}}
    policies = {"p": {"allowed_domains": ["api.anthropic.com"]}}
    assert resolve_bottle("a", agents, policies, suffix="x")["slug"] == "a-x"
    with pytest.raises(AnsibleFilterError, match="known agents are a"):
        resolve_bottle("b", agents, policies)


def test_filter_passes_which_model_credentials_the_controller_holds():
    resolve_bottle = FilterModule().filters()["resolve_bottle"]
    agents, policies = {"a": {"policy": "p"}}, {"p": {"model": {}}}
    r = resolve_bottle("a", agents, policies, model_credentials={"api_key": "empty", "oauth": "set"})
    assert r["model"]["credential"] == "oauth" and r["env"] == {"CLAUDE_CODE_OAUTH_TOKEN": "bottle-placeholder-a"}
    assert r["policy"]["egress"]["routes"] == [
        {"host": "api.anthropic.com", "auth": {"scheme": "Bearer", "token_ref": "CLAUDE_CODE_OAUTH_TOKEN"}}]
    with pytest.raises(AnsibleFilterError, match="ANTHROPIC_API_KEY is not set, CLAUDE_CODE_OAUTH_TOKEN is set but empty"):
        resolve_bottle("a", agents, policies, model_credentials={"api_key": "unset", "oauth": "empty"})
    with pytest.raises(AnsibleFilterError, match="pass model_credentials to resolve_bottle"):
        resolve_bottle("a", agents, policies)
    # Without model, model_credentials changes nothing.
    plain = resolve_bottle("a", agents, {"p": {"allowed_domains": ["x.example"]}}, model_credentials={"api_key": True})
    assert plain["model"] is None and plain["env"] == {}
