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
                                "audit_keep, audit_rotate_bytes, dlp_action, dlp_supervise_timeout, max_body_bytes, passthrough_domains, ports, "
                                "requests_per_minute, trusted_domains, websocket_hosts"),
    ({"websocket_hosts": "ws.example"}, "bottle_policies.child.firewall.websocket_hosts must be a list"),
    ({"websocket_hosts": ["wss://ws.example/"]}, "firewall.websocket_hosts[0] 'wss://ws.example/' is not a host name"),
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
    ({"audit_rotate_bytes": 1000}, "bottle_policies.child.firewall.audit_rotate_bytes 1000 must be a whole number of "
                                   "bytes, at least 1048576 (1 MiB): the size at which the firewall's audit file rotates"),
    ({"audit_rotate_bytes": "64M"}, "firewall.audit_rotate_bytes '64M' must be a whole number of bytes"),
    ({"audit_keep": -1}, "bottle_policies.child.firewall.audit_keep -1 must be a whole number, 0 or more: how many "
                         "rotated audit files (egress.jsonl.1, .2 ...) are kept (default 16; 0 keeps every one)"),
    ({"audit_keep": True}, "firewall.audit_keep True must be a whole number"),
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


# --- model: the model API as a route, the agent holding a placeholder -------------------------------

MODEL_AGENTS = {"coder": {"policy": "ai", "env": {"X": "1"}}}
API_KEY_ROUTE = {"host": "api.anthropic.com", "auth": {"scheme": "header", "header": "x-api-key", "value": "{token}",
                                                       "token_ref": "ANTHROPIC_API_KEY"}}
OAUTH_ROUTE = {"host": "api.anthropic.com", "auth": {"scheme": "Bearer", "token_ref": "CLAUDE_CODE_OAUTH_TOKEN"}}


def _model(model=None, held=None, agents=None, **policy):
    policy.setdefault("model", {} if model is None else model)
    return resolve(agents or MODEL_AGENTS, {"ai": policy}, "coder", model_credentials=held)


@pytest.mark.parametrize("model, needle", [
    ([], "bottle_policies.ai.model must be a mapping, not a list: write model: {} for Anthropic's API"),
    ("api.anthropic.com", "bottle_policies.ai.model must be a mapping, not a string"),
    ({"hots": "x.example"}, "bottle_policies.ai.model.hots is not a known key: use one of credential, host"),
    ({"host": "https://api.anthropic.com/"}, "bottle_policies.ai.model.host 'https://api.anthropic.com/' must be one "
                                             "exact host name, such as api.anthropic.com"),
    ({"host": "*.anthropic.com"}, "model.host '*.anthropic.com' must be one exact host name"),
    ({"host": 443}, "model.host 443 must be one exact host name"),
    ({"credential": "key"}, "bottle_policies.ai.model.credential 'key': use auto (ANTHROPIC_API_KEY if the "
                            "controller has it, else CLAUDE_CODE_OAUTH_TOKEN), api_key or oauth"),
    ({"credential": None}, "model.credential None: use auto"),
    ({"credential": "OAuth"}, "model.credential 'OAuth': use auto"),
])
def test_model_settings_are_checked(model, needle):
    with pytest.raises(ManifestError) as err:
        _model(model, {"api_key": True})
    assert needle in str(err.value)


def test_a_null_model_is_refused_naming_the_fix():
    with pytest.raises(ManifestError, match=r"bottle_policies\.ai\.model must be a mapping, not empty \(null\): write "
                                            r"model: \{\}"):
        resolve(MODEL_AGENTS, {"ai": {"model": None}}, "coder", model_credentials={"api_key": True})


@pytest.mark.parametrize("held, kind", [
    ({"api_key": "set", "oauth": "set"}, "api_key"),
    ({"api_key": "set", "oauth": "unset"}, "api_key"),
    ({"api_key": "set", "oauth": "empty"}, "api_key"),
    ({"api_key": "empty", "oauth": "set"}, "oauth"),
    ({"api_key": "unset", "oauth": "set"}, "oauth"),
    ({"api_key": True}, "api_key"),
    ({"api_key": False, "oauth": True}, "oauth"),
    ({"oauth": True}, "oauth"),
])
def test_auto_takes_the_api_key_first_then_the_oauth_token(held, kind):
    r = _model({}, held, allowed_domains=["registry.npmjs.org"])
    name, route, other = (("ANTHROPIC_API_KEY", API_KEY_ROUTE, "CLAUDE_CODE_OAUTH_TOKEN") if kind == "api_key"
                          else ("CLAUDE_CODE_OAUTH_TOKEN", OAUTH_ROUTE, "ANTHROPIC_API_KEY"))
    assert r["policy"]["egress"]["routes"] == [route]
    assert r["policy"]["allowed_domains"] == ["registry.npmjs.org"]
    assert r["policy"]["model"] == {"host": "api.anthropic.com", "credential": kind}
    assert r["env"] == {"X": "1", name: "bottle-placeholder-coder"} and other not in r["env"]
    assert r["model"] == {"host": "api.anthropic.com", "credential": kind, "env": name,
                          "placeholder": "bottle-placeholder-coder"}
    # The placeholder is no secret of the bottle (egress's DLP must let the agent send it).
    assert r["secret_env"] == {}


@pytest.mark.parametrize("credential, route, name", [
    ("api_key", API_KEY_ROUTE, "ANTHROPIC_API_KEY"),
    ("oauth", OAUTH_ROUTE, "CLAUDE_CODE_OAUTH_TOKEN"),
])
def test_an_explicit_credential_is_taken_even_when_the_other_is_held_too(credential, route, name):
    for held in ({"api_key": True, "oauth": True}, None):
        r = _model({"credential": credential}, held)
        assert r["policy"]["egress"]["routes"] == [route] and r["env"][name] == "bottle-placeholder-coder"


@pytest.mark.parametrize("held, said", [
    ({"api_key": "unset", "oauth": "unset"}, "ANTHROPIC_API_KEY is not set, CLAUDE_CODE_OAUTH_TOKEN is not set"),
    ({"api_key": "empty", "oauth": "empty"}, "ANTHROPIC_API_KEY is set but empty, CLAUDE_CODE_OAUTH_TOKEN is set but empty"),
    ({"api_key": "empty", "oauth": False}, "ANTHROPIC_API_KEY is set but empty, CLAUDE_CODE_OAUTH_TOKEN is not set"),
    ({}, "ANTHROPIC_API_KEY is not set, CLAUDE_CODE_OAUTH_TOKEN is not set"),
])
def test_without_a_model_credential_the_error_names_both_variables_and_how_to_set_them(held, said):
    with pytest.raises(ManifestError) as err:
        _model({}, held)
    assert str(err.value) == (
        "bottle_policies.ai.model: the controller holds no model credential (%s): export ANTHROPIC_API_KEY (an API "
        "key) or CLAUDE_CODE_OAUTH_TOKEN (a Claude subscription's token, from `claude setup-token`), or define one "
        "as an Ansible variable (ansible-vault encrypt_string into a vars file). Only the bottle's firewall gets it; "
        "the agent holds a placeholder." % said)


@pytest.mark.parametrize("credential, held, needle", [
    ("api_key", {"api_key": "empty", "oauth": "set"},
     "bottle_policies.ai.model.credential is api_key, but ANTHROPIC_API_KEY is set but empty on the controller: export "
     "ANTHROPIC_API_KEY, or define it as an Ansible variable (ansible-vault encrypt_string into a vars file). Only "
     "the bottle's firewall gets it; the agent holds a placeholder."),
    ("oauth", {"api_key": "set"}, "model.credential is oauth, but CLAUDE_CODE_OAUTH_TOKEN is not set on the controller"),
])
def test_an_explicit_credential_without_a_value_is_named(credential, held, needle):
    with pytest.raises(ManifestError) as err:
        _model({"credential": credential}, held)
    assert needle in str(err.value)


def test_auto_needs_to_know_what_the_controller_holds():
    with pytest.raises(ManifestError, match=r"bottle_policies\.ai\.model\.credential is auto, but whether the "
                                            r"controller holds .* pass model_credentials to resolve_bottle"):
        _model({}, None)


@pytest.mark.parametrize("held, needle", [
    ({"api_key": "yes"}, "model_credentials.api_key must be set, empty or unset (or a bool): pass whether the "
                         "controller holds ANTHROPIC_API_KEY, never its value"),
    ({"oauth": "sk-ant-oat01-xyz"}, "model_credentials.oauth must be set, empty or unset"),
    (["api_key"], "model_credentials must be a mapping"),
])
def test_model_credentials_carry_states_never_values(held, needle):
    with pytest.raises(ManifestError) as err:
        _model({}, held)
    assert needle in str(err.value) and "sk-ant-oat01-xyz" not in str(err.value)


def test_a_policy_route_for_the_model_host_is_an_error_saying_which_to_keep():
    with pytest.raises(ManifestError) as err:
        _model({}, {"api_key": True}, egress={"routes": [{"host": "api.x.com"},
                                                         {"host": "API.anthropic.com", "auth": {"token_ref": "K"}}]})
    assert str(err.value) == (
        "bottle_policies.ai.egress.routes[1].host api.anthropic.com is the model's host (bottle_policies.ai.model): "
        "keep one - remove the route and the bottle adds the model credential, or remove model and route the host "
        "yourself")


def test_other_routes_are_kept_next_to_the_model_route():
    r = _model({}, {"oauth": True}, egress={"routes": [{"host": "api.github.com", "auth": {"token_ref": "GH"}}]})
    assert r["policy"]["egress"]["routes"] == [{"host": "api.github.com", "auth": {"token_ref": "GH"}}, OAUTH_ROUTE]


@pytest.mark.parametrize("agent_keys, policy_keys, needle", [
    ({"secret_env": {"ANTHROPIC_API_KEY": "sk-ant-api03-x"}}, {}, "bottle_agents.coder.secret_env.ANTHROPIC_API_KEY: "
     "the bottle sets the model credential itself (bottle_policies.ai.model): remove it, and keep the real value on "
     "the controller (an Ansible variable or environment variable ANTHROPIC_API_KEY); the agent holds a placeholder"),
    ({"env": {"CLAUDE_CODE_OAUTH_TOKEN": "x"}}, {}, "bottle_agents.coder.env.CLAUDE_CODE_OAUTH_TOKEN: the bottle sets"),
    ({}, {"env": {"ANTHROPIC_API_KEY": "x"}}, "bottle_policies.ai.env.ANTHROPIC_API_KEY: the bottle sets"),
    # The other variable too: Claude Code would read it instead of the placeholder.
    ({}, {"secret_env": {"CLAUDE_CODE_OAUTH_TOKEN": "x"}}, "bottle_policies.ai.secret_env.CLAUDE_CODE_OAUTH_TOKEN"),
])
def test_the_agent_may_not_hold_a_model_credential_of_its_own(agent_keys, policy_keys, needle):
    agents = {"coder": dict({"policy": "ai"}, **agent_keys)}
    with pytest.raises(ManifestError) as err:
        _model({}, {"api_key": True}, agents=agents, **policy_keys)
    assert str(err.value).startswith(needle) and "sk-ant-api03-x" not in str(err.value)


def test_without_model_the_agent_may_keep_its_own_key():
    r = resolve({"a": {"policy": "p", "secret_env": {"ANTHROPIC_API_KEY": "k"}}},
                {"p": {"allowed_domains": ["api.anthropic.com"]}}, "a", model_credentials={"api_key": True})
    assert r["model"] is None and r["secret_env"] == {"ANTHROPIC_API_KEY": "k"} and r["env"] == {}
    assert r["policy"]["egress"] == {"routes": []} and "model" not in r["policy"]


@pytest.mark.parametrize("key, patterns", [
    ("firewall", ["api.anthropic.com"]), ("firewall", ["*.anthropic.com"]), ("pipelock", ["*.ANTHROPIC.com"]),
])
def test_the_model_host_cannot_pass_through_unscanned(key, patterns):
    with pytest.raises(ManifestError, match=r"bottle_policies\.ai\.%s\.passthrough_domains: .* covers the model's host "
                                            r"api\.anthropic\.com, which the firewall must see into" % key):
        _model({}, {"api_key": True}, **{key: {"passthrough_domains": patterns}})


def test_a_model_alone_allows_its_host():
    r = _model({}, {"api_key": True})
    assert r["policy"]["allowed_domains"] == [] and r["policy"]["egress"]["routes"] == [API_KEY_ROUTE]


def test_another_model_host_is_routed_and_claude_code_pointed_at_it():
    r = _model({"host": "LLM.example.com", "credential": "api_key"}, {"api_key": True})
    assert r["policy"]["egress"]["routes"] == [dict(API_KEY_ROUTE, host="llm.example.com")]
    assert r["env"]["ANTHROPIC_BASE_URL"] == "https://llm.example.com"
    mine = _model({"host": "llm.example.com"}, {"api_key": True}, env={"ANTHROPIC_BASE_URL": "https://llm.example.com/v2"})
    assert mine["env"]["ANTHROPIC_BASE_URL"] == "https://llm.example.com/v2"
    assert "ANTHROPIC_BASE_URL" not in _model({}, {"api_key": True})["env"]


def test_model_merges_along_extends_and_the_placeholder_follows_the_slug():
    policies = {"base": {"model": {"credential": "oauth"}, "allowed_domains": ["a.example"]},
                "ai": {"extends": "base", "model": {"host": "llm.example.com"}}}
    r = resolve(MODEL_AGENTS, policies, "coder", "two", model_credentials={"api_key": True, "oauth": True})
    assert r["policy"]["model"] == {"host": "llm.example.com", "credential": "oauth"}
    assert r["model"]["placeholder"] == "bottle-placeholder-coder-two"
    assert r["env"]["CLAUDE_CODE_OAUTH_TOKEN"] == "bottle-placeholder-coder-two"


def test_the_resolved_policy_still_validates_and_inputs_are_not_mutated():
    from ansible_collections.botbottle.bottle.plugins.module_utils.manifest import check_policy
    policies = {"ai": {"model": {}, "egress": {"routes": [{"host": "api.x.com"}]}}}
    before = repr(policies)
    r = resolve(MODEL_AGENTS, policies, "coder", model_credentials={"api_key": True})
    check_policy(r["policy"], "resolved")
    assert repr(policies) == before


def test_the_shipped_demo_policy_routes_the_model():
    import pathlib
    import yaml
    defaults = yaml.safe_load((pathlib.Path(__file__).resolve().parents[4] / "roles/bottle/defaults/main.yml")
                              .read_text(encoding="utf-8"))
    agents, policies = defaults["bottle_builtin_agents"], defaults["bottle_builtin_policies"]
    assert policies["demo"]["model"] == {} and "allowed_domains" not in policies["demo"]
    r = resolve(agents, policies, "demo", model_credentials={"api_key": "unset", "oauth": "set"})
    assert r["policy"]["egress"]["routes"] == [OAUTH_ROUTE]
    assert r["env"] == {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "CLAUDE_CODE_OAUTH_TOKEN": "bottle-placeholder-demo"}
    with pytest.raises(ManifestError, match="ANTHROPIC_API_KEY is set but empty, CLAUDE_CODE_OAUTH_TOKEN is not set"):
        resolve(agents, policies, "demo", model_credentials={"api_key": "empty", "oauth": "unset"})


# The placeholder against the firewall's real DLP engine (images/bundle/bottle_firewall/dlp.py with
# kingfisher's rules): egress scans the agent's headers before it swaps the credential in, so a
# placeholder a scanner takes for an Anthropic key would have every model request refused.

@pytest.fixture(scope="module")
def dlp_engine(tmp_path_factory):
    import sys
    import pathlib
    bundle = str(pathlib.Path(__file__).resolve().parents[4] / "images" / "bundle")
    if bundle not in sys.path:
        sys.path.insert(0, bundle)
    from bottle_firewall import dlp
    cache = tmp_path_factory.mktemp("kingfisher-rules")
    cache.chmod(0o700)
    return dlp.Engine(dlp.load_kingfisher(str(cache)))


@pytest.mark.parametrize("agent, instance", [("demo", ""), ("coder", "two"), ("webdev", "a1b2c3d4e5f6a7b8c9d0e1f2"),
                                             ("x" * 20, "9" * 10)])
def test_the_placeholder_passes_the_firewalls_dlp(dlp_engine, agent, instance):
    policies = {"ai": {"model": {}}}
    for held in ({"api_key": True}, {"oauth": True}):
        r = resolve({agent: {"policy": "ai"}}, policies, agent, instance, model_credentials=held)
        placeholder = r["model"]["placeholder"]
        assert not placeholder.startswith("sk-")
        # As Claude Code sends it: x-api-key (API key) or Authorization: Bearer (OAuth token).
        headers = [("x-api-key", placeholder)] if r["model"]["credential"] == "api_key" \
            else [("authorization", "Bearer " + placeholder), ("anthropic-beta", "oauth-2025-04-20")]
        headers += [("anthropic-version", "2023-06-01"), ("content-type", "application/json")]
        assert dlp_engine.scan_head("/v1/messages?beta=true", headers) is None
        assert dlp_engine.scan_body(('{"env": "%s=%s"}' % (r["model"]["env"], placeholder)).encode(),
                                    "application/json") is None


def test_a_key_shaped_placeholder_would_be_refused(dlp_engine):
    """The control: what the placeholder must not look like is what the engine refuses."""
    shaped = "sk-ant-api03-" + ("bottlePlaceholder0demo" * 5)[:93] + "AA"
    hit = dlp_engine.scan_head("/v1/messages", [("x-api-key", shaped)])
    assert hit is not None and hit.rule == "dlp:betterleaks.anthropic-api-key"


class _Tagged(str):
    pass


class _TaggedList(list):
    pass


@pytest.mark.parametrize("value, name", [
    (_Tagged("x"), "a string"), ("x", "a string"), (_TaggedList(), "a list"), ({}, "a mapping"), (3, "a number"),
    (1.5, "a number"), (True, "true/false"), (None, "empty (null)"), (object(), "a value of another kind"),
])
def test_type_names_are_the_yaml_words_never_python_class_names(value, name):
    from ansible_collections.botbottle.bottle.plugins.module_utils.manifest import type_name
    assert type_name(value) == name


def test_merge_over_merges_mappings_replaces_lists_and_null_removes():
    from ansible_collections.botbottle.bottle.plugins.module_utils.manifest import merge_over, overlay
    shipped = {"demo": {"env": {"A": "1", "B": "2"}, "allowed_domains": ["a.example"], "model": {}},
               "other": {"allowed_domains": ["o.example"]}}
    yours = {"demo": {"env": {"B": None, "C": "3"}, "allowed_domains": ["b.example"], "model": None},
             "mine": {"allowed_domains": ["m.example"]}}
    assert overlay(shipped, yours) == {
        "demo": {"env": {"A": "1", "C": "3"}, "allowed_domains": ["b.example"]},
        "other": {"allowed_domains": ["o.example"]},
        "mine": {"allowed_domains": ["m.example"]},
    }
    assert merge_over({"a": {"b": 1}}, {"a": "x"}) == {"a": "x"}
    assert overlay({"demo": {}}, "not a mapping") == "not a mapping"
