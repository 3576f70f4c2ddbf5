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


def test_report_mode_returns_the_error_instead_of_failing():
    resolve_bottle = FilterModule().filters()["resolve_bottle"]
    policies = {"p": {"allowed_domains": ["x.example"]}}
    good = resolve_bottle("a", {"a": {"policy": "p"}}, policies, errors="report")
    assert good["error"] == "" and good["bottle"]["slug"] == "a"
    bad = resolve_bottle("a", {"a": {"policy": "p"}}, {"p": {"allowed_domains": "x.example"}}, errors="report")
    assert bad == {"error": "bottle_policies.p.allowed_domains must be a list, not a string: write a list of host "
                            "names", "bottle": None}
    with pytest.raises(AnsibleFilterError, match="errors='loud': use raise or report"):
        resolve_bottle("a", {"a": {"policy": "p"}}, policies, errors="loud")


class _TaggedStr(str):
    """Stands for the str subclass Ansible hands a filter (its class name must never reach a message)."""


def test_a_tagged_string_where_a_list_goes_is_called_a_string():
    resolve_bottle = FilterModule().filters()["resolve_bottle"]
    bad = resolve_bottle("a", {"a": {"policy": "p"}}, {"p": {"allowed_domains": _TaggedStr("x.example")}},
                         errors="report")
    assert "must be a list, not a string" in bad["error"] and "Tagged" not in bad["error"]


SHIPPED_AGENTS = {"demo": {"policy": "demo", "prompt": "shipped prompt"}}
SHIPPED_POLICIES = {"demo": {"description": "shipped", "env": {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"},
                             "allowed_domains": ["a.example"]}}


def test_a_redefined_shipped_policy_is_deep_merged_over_it():
    resolve_bottle = FilterModule().filters()["resolve_bottle"]
    yours = {"demo": {"env": {"EDITOR": "vi"}, "allowed_domains": ["b.example"]}}
    bottle = resolve_bottle("demo", {}, yours, shipped_agents=SHIPPED_AGENTS, shipped_policies=SHIPPED_POLICIES)
    # Mappings merge: the shipped env stays beside yours; lists are replaced.
    assert bottle["env"] == {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "EDITOR": "vi"}
    assert bottle["policy"]["allowed_domains"] == ["b.example"]
    assert bottle["prompt"] == "shipped prompt"
    # The shipped definitions are not changed by the merge.
    assert SHIPPED_POLICIES["demo"]["env"] == {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}


def test_null_removes_a_shipped_key():
    resolve_bottle = FilterModule().filters()["resolve_bottle"]
    yours = {"demo": {"env": {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": None}}}
    bottle = resolve_bottle("demo", {"demo": {"prompt": None}}, yours, shipped_agents=SHIPPED_AGENTS,
                            shipped_policies=SHIPPED_POLICIES)
    assert bottle["env"] == {} and bottle["prompt"] == ""
    # A whole definition set to null removes the shipped one.
    gone = resolve_bottle("demo", {"demo": None}, {}, shipped_agents=SHIPPED_AGENTS,
                          shipped_policies=SHIPPED_POLICIES, errors="report")
    assert gone["error"].startswith("agent 'demo' is not defined")
