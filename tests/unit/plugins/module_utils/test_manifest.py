# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils.manifest import ManifestError, merge, resolve

AGENTS = {"demo": {"policy": "child", "prompt": "p", "skills": {"lint": "# lint"}, "env": {"A": "agent"}}}
POLICIES = {
    "base": {"allowed_domains": ["api.anthropic.com"], "env": {"A": "base", "B": "base"},
             "pipelock": {"passthrough_domains": ["x.example.com"]}},
    "child": {"extends": "base", "allowed_domains": ["registry.npmjs.org"], "env": {"B": "child"},
              "secret_env": {"TOKEN": "ghp_x"}},
}


def test_resolve_merges_extends_child_wins_lists_replaced():
    r = resolve(AGENTS, POLICIES, "demo")
    assert r["slug"] == "demo"
    assert r["policy"]["allowed_domains"] == ["registry.npmjs.org"]
    assert r["policy"]["pipelock"] == {"passthrough_domains": ["x.example.com"]}
    assert "extends" not in r["policy"]
    # agent env wins over policy env, child policy over parent
    assert r["env"] == {"A": "agent", "B": "child"}
    assert r["secret_env"] == {"TOKEN": "ghp_x"}
    assert r["skills"] == {"lint": "# lint"}


def test_instance_makes_the_slug():
    assert resolve(AGENTS, POLICIES, "demo", "two")["slug"] == "demo-two"


def test_merge_is_recursive_for_mappings_only():
    assert merge({"a": {"x": 1, "y": 2}, "l": [1]}, {"a": {"y": 3}, "l": [2]}) == {"a": {"x": 1, "y": 3}, "l": [2]}


@pytest.mark.parametrize("agents,policies,agent,needle", [
    (AGENTS, POLICIES, "nope", "known agents are demo"),
    (AGENTS, POLICIES, "", "pass -e agent=<name>"),
    ({"demo": {"policy": "child", "promt": "x"}}, POLICIES, "demo", "bottle_agents.demo.promt is not a known key"),
    ({"demo": {"prompt": "x"}}, POLICIES, "demo", "bottle_agents.demo.policy is required"),
    ({"demo": {"policy": "missing"}}, POLICIES, "demo",
     "bottle_agents.demo.policy names policy 'missing', which is not defined: known policies are base, child"),
    ({"demo": {"policy": "child", "prompt": ["x"]}}, POLICIES, "demo", "bottle_agents.demo.prompt must be a string"),
    ({"demo": {"policy": "child", "skills": ["x"]}}, POLICIES, "demo", "bottle_agents.demo.skills must be a mapping"),
    ({"demo": {"policy": "child", "skills": {"x": 1}}}, POLICIES, "demo", "bottle_agents.demo.skills.x must be Markdown"),
    ({"demo": "child"}, POLICIES, "demo", "bottle_agents.demo must be a mapping"),
    (["demo"], POLICIES, "demo", "bottle_agents must be a mapping"),
    (AGENTS, {"child": {"extends": ["base"]}}, "demo", "bottle_policies.child.extends must name one policy"),
    (AGENTS, {"child": {"git_gate": []}}, "demo", "bottle_policies.child.git_gate must be a mapping"),
    (AGENTS, {"child": {"env": {"A": {"b": 1}}}}, "demo", "bottle_policies.child.env.A must be a string"),
    (AGENTS, {"child": {"allowed_domains": ["x.com"], "pipelock": {"max_response_bytes": True}}}, "demo",
     "bottle_policies.child.pipelock.max_response_bytes must be a positive whole number"),
    (AGENTS, {"child": {"extends": "a"}, "a": {"extends": "b"}, "b": {"extends": "a"}}, "demo",
     "bottle_policies.b.extends forms a cycle (a -> b -> a)"),
    (AGENTS, {"base": {"extends": "child"}, "child": {"extends": "base"}}, "demo", "forms a cycle"),
    (AGENTS, {"child": {"extends": "ghost"}}, "demo", "bottle_policies.child.extends names policy 'ghost'"),
    (AGENTS, {"child": {"allowed_domain": ["x"]}}, "demo", "bottle_policies.child.allowed_domain is not a known key"),
    (AGENTS, {"child": {"allowed_domains": ["https://x.com/"]}}, "demo", "allowed_domains[0]"),
    (AGENTS, {"child": {"allowed_domains": "x.com"}}, "demo", "allowed_domains must be a list"),
    (AGENTS, {"child": {"env": {"HTTPS_PROXY": "x"}}}, "demo", "set by the bottle itself"),
    (AGENTS, {"child": {"env": {"1BAD": "x"}}}, "demo", "not a valid environment variable name"),
    (AGENTS, {"child": {"pipelock": {"unknown": []}}}, "demo", "bottle_policies.child.pipelock.unknown"),
    (AGENTS, {"child": {"egress": {"routes": [{"auth": {}}]}}}, "demo", "egress.routes[0].host"),
    ({"demo": {"policy": "child", "skills": {"../x": "y"}}}, POLICIES, "demo", "not a valid skill name"),
    ({"demo": {"policy": "child", "env": {"T": "1"}, "secret_env": {"T": "2"}}}, POLICIES, "demo",
     "both in env and secret_env"),
])
def test_errors_name_the_key_and_the_fix(agents, policies, agent, needle):
    with pytest.raises(ManifestError) as err:
        resolve(agents, policies, agent)
    assert needle in str(err.value)


def test_a_policy_allowing_nothing_is_rejected():
    with pytest.raises(ManifestError, match="allows no host at all"):
        resolve({"a": {"policy": "p"}}, {"p": {"env": {}}}, "a")


def test_bad_instance_rejected():
    with pytest.raises(ManifestError, match="bottle_instance"):
        resolve(AGENTS, POLICIES, "demo", "Bad_Instance")


def test_inputs_are_not_mutated():
    before = repr(POLICIES)
    resolve(AGENTS, POLICIES, "demo")
    assert repr(POLICIES) == before


def _route_policy(route):
    return {"p": {"allowed_domains": ["a.example.com"], "egress": {"routes": [route]}}}


@pytest.mark.parametrize("route,needle", [
    ({"host": "api.x.com", "auth": {}}, "auth is empty"),
    ({"host": "api.x.com", "auth": {"scheme": "Bearer"}}, "auth.token_ref is required"),
    ({"host": "api.x.com", "auth": {"scheme": "Basic", "token_ref": "T"}}, "use Bearer, token, or header"),
    ({"host": "api.x.com", "auth": {"scheme": "header", "token_ref": "T"}}, "auth.header must name"),
    ({"host": "api.x.com", "auth": {"token_ref": "T", "tokn": 1}}, "auth.tokn is not a known key"),
    ({"host": "api.x.com", "matches": [{"paths": [{"type": "regex", "value": "(["}]}]}, "not a valid regex"),
    ({"host": "api.x.com", "matches": [{"methods": ["FETCH"]}]}, "not an HTTP method"),
    ({"host": "api.x.com", "matches": []}, "would refuse every request"),
    ({"host": "*.x.com"}, "one exact host name"),
    ({"host": "api.x.com", "verb": "GET"}, "routes[0].verb is not a known key"),
])
def test_route_errors_name_agent_route_and_fix(route, needle):
    with pytest.raises(ManifestError) as err:
        resolve({"a": {"policy": "p"}}, _route_policy(route), "a")
    assert needle in str(err.value) and "egress.routes[0]" in str(err.value)


def test_duplicate_route_host():
    policies = {"p": {"egress": {"routes": [{"host": "API.x.com"}, {"host": "api.x.com"}]}}}
    with pytest.raises(ManifestError, match="already routed"):
        resolve({"a": {"policy": "p"}}, policies, "a")


def test_a_route_alone_is_enough_to_allow_its_host():
    policies = {"p": {"egress": {"routes": [{"host": "api.x.com", "auth": {"token_ref": "T"}}]}}}
    assert resolve({"a": {"policy": "p"}}, policies, "a")["policy"]["egress"]["routes"][0]["host"] == "api.x.com"


@pytest.mark.parametrize("supervise, needle", [
    ({"wait_seconds": 500}, "supervise.wait_seconds must be a whole number from 0 to 120"),
    ({"max_pending": 0}, "supervise.max_pending must be a whole number from 1 to 200"),
    ({"max_pending": True}, "supervise.max_pending"),
    ({"wait": 5}, "supervise.wait is not a known key"),
    ([], "supervise must be a mapping"),
])
def test_supervise_settings_are_bounded(supervise, needle):
    policies = dict(POLICIES, child=dict(POLICIES["child"], supervise=supervise))
    with pytest.raises(ManifestError, match=needle):
        resolve(AGENTS, policies, "demo")


def test_supervise_settings_accepted():
    policies = dict(POLICIES, child=dict(POLICIES["child"], supervise={"wait_seconds": 0, "max_pending": 5}))
    assert resolve(AGENTS, policies, "demo")["policy"]["supervise"] == {"wait_seconds": 0, "max_pending": 5}


@pytest.mark.parametrize("firewall, needle", [
    ({"ports": [0]}, "bottle_policies.child.firewall.ports[0] 0 is not a port: write whole numbers from 1 to 65535"),
    ({"ports": [65536]}, "firewall.ports[0] 65536 is not a port"),
    ({"ports": [True]}, "firewall.ports[0] True is not a port"),
    ({"ports": ["443"]}, "firewall.ports[0] '443' is not a port"),
    ({"ports": []}, "firewall.ports is empty, which would refuse every connection"),
    ({"ports": 443}, "firewall.ports must be a list"),
    ({"max_body_bytes": 0}, "firewall.max_body_bytes must be a positive whole number: the largest request body"),
    ({"requests_per_minute": 1.5}, "firewall.requests_per_minute must be a positive whole number: requests a minute"),
    ({"passthrough_domains": ["https://x/"]}, "firewall.passthrough_domains[0]"),
    ({"trusted_domains": "x.example"}, "firewall.trusted_domains must be a list"),
    ({"max_response_bytes": 5}, "bottle_policies.child.firewall.max_response_bytes is not a known key: use one of "
                                "dlp_action, dlp_supervise_timeout, max_body_bytes, passthrough_domains, ports, "
                                "requests_per_minute, trusted_domains"),
    ([], "bottle_policies.child.firewall must be a mapping"),
    ({"dlp_action": "allow"}, "bottle_policies.child.firewall.dlp_action 'allow' is not block or supervise: block "
                              "refuses"),
    ({"dlp_action": "Supervise"}, "firewall.dlp_action 'Supervise' is not block or supervise"),
    ({"dlp_action": True}, "firewall.dlp_action True is not block or supervise"),
    ({"dlp_action": None}, "firewall.dlp_action None is not block or supervise"),
    ({"dlp_supervise_timeout": 4}, "bottle_policies.child.firewall.dlp_supervise_timeout 4 must be a whole number of "
                                   "seconds from 5 to 600: how long the firewall holds a request"),
    ({"dlp_supervise_timeout": 601}, "firewall.dlp_supervise_timeout 601 must be a whole number of seconds from 5 to 600"),
    ({"dlp_supervise_timeout": "120"}, "firewall.dlp_supervise_timeout '120' must be a whole number"),
    ({"dlp_supervise_timeout": 30.5}, "firewall.dlp_supervise_timeout 30.5 must be a whole number"),
    ({"dlp_supervise_timeout": True}, "firewall.dlp_supervise_timeout True must be a whole number"),
])
def test_firewall_settings_are_checked(firewall, needle):
    policies = dict(POLICIES, child=dict(POLICIES["child"], firewall=firewall))
    with pytest.raises(ManifestError) as err:
        resolve(AGENTS, policies, "demo")
    assert needle in str(err.value)


def test_firewall_settings_accepted_and_merged_along_extends():
    policies = dict(POLICIES, base=dict(POLICIES["base"], firewall={"ports": [443], "trusted_domains": ["t.example"]}),
                    child=dict(POLICIES["child"], firewall={"requests_per_minute": 100, "max_body_bytes": 1024}))
    assert resolve(AGENTS, policies, "demo")["policy"]["firewall"] == {
        "ports": [443], "trusted_domains": ["t.example"], "requests_per_minute": 100, "max_body_bytes": 1024}


@pytest.mark.parametrize("firewall", [
    {"dlp_action": "block"}, {"dlp_action": "supervise"}, {"dlp_action": "supervise", "dlp_supervise_timeout": 5},
    {"dlp_supervise_timeout": 600}, {"dlp_action": "block", "dlp_supervise_timeout": 60},
])
def test_dlp_action_and_timeout_accepted(firewall):
    policies = dict(POLICIES, child=dict(POLICIES["child"], firewall=firewall))
    assert resolve(AGENTS, policies, "demo")["policy"]["firewall"] == firewall


def test_dlp_action_merged_along_extends():
    policies = dict(POLICIES, base=dict(POLICIES["base"], firewall={"dlp_action": "supervise",
                                                                    "dlp_supervise_timeout": 300}),
                    child=dict(POLICIES["child"], firewall={"dlp_action": "block"}))
    assert resolve(AGENTS, policies, "demo")["policy"]["firewall"] == {"dlp_action": "block",
                                                                       "dlp_supervise_timeout": 300}


def test_pipelock_settings_still_accepted_and_their_limits_point_at_the_firewall():
    policies = dict(POLICIES, child=dict(POLICIES["child"], pipelock={"max_requests_per_minute": 0}))
    with pytest.raises(ManifestError, match="pipelock.max_requests_per_minute must be a positive whole number: .*"
                                            "firewall.requests_per_minute"):
        resolve(AGENTS, policies, "demo")


def test_a_policy_allowing_nothing_names_the_firewall_not_pipelock():
    with pytest.raises(ManifestError) as err:
        resolve({"a": {"policy": "p"}}, {"p": {"env": {}}}, "a")
    assert "firewall would refuse every request" in str(err.value) and "pipelock" not in str(err.value)
