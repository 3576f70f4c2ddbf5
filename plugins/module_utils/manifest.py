# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Agent and policy definitions: validation and ``extends`` resolution.

Pure Python, no Ansible: the controller-side filter ``resolve_bottle`` calls
``resolve()``; every error is a ``ManifestError`` whose message names the
dotted path of the offending key and the fix.
"""

from __future__ import annotations

import copy
import re

from ansible_collections.botbottle.bottle.plugins.module_utils import agent_kinds, agent_text, naming, resources
from ansible_collections.botbottle.bottle.plugins.module_utils import git_gate_policy as git_gate
from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_format, route_schema

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SKILL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")

AGENT_KEYS = {"policy", "prompt", "skills", "env", "secret_env", "description", "image", "kind", "resources"}
POLICY_KEYS = {"extends", "description", "env", "secret_env", "allowed_domains", "firewall", "pipelock", "egress",
               "git_gate", "supervise", "model", "resources"}
# resources: the agent's limits (memory, cpus, pids), a policy's then an agent's over the defaults
# (plugins/module_utils/resources.py, the one owner of what a limit is).
# firewall: the bundle's firewall (egress). Host lists, the ports the agent may connect to, the
# largest request body it scans, a per-host request rate, and what a DLP hit does: refused (block), or
# held for the operator through supervise for at most dlp_supervise_timeout seconds (defaults:
# plugins/module_utils/bundle_config.py).
# audit_rotate_bytes / audit_keep: the firewall's audit file (audit/egress.jsonl) rotates at that size into
# egress.jsonl.1, .2 ... and keeps that many rotated files (0: every one).
FIREWALL_KEYS = {"passthrough_domains", "trusted_domains", "websocket_hosts", "ports", "max_body_bytes",
                 "requests_per_minute", "dlp_action", "dlp_supervise_timeout", "audit_rotate_bytes", "audit_keep"}
# The bounds are egress's (bundle_format: the format of the files the bundle reads).
AUDIT_MIN_ROTATE_BYTES = bundle_format.AUDIT_MIN_ROTATE_BYTES
DLP_ACTIONS = bundle_format.DLP_ACTIONS
DLP_SUPERVISE_TIMEOUT = bundle_format.SUPERVISE_TIMEOUT_RANGE
# pipelock: the optional pipelock hop (bottle_pipelock). Its host lists are merged into the firewall's;
# the two numbers apply to the pipelock hop only.
PIPELOCK_KEYS = {"passthrough_domains", "trusted_domains", "max_response_bytes", "max_requests_per_minute"}
EGRESS_KEYS = {"routes"}
# supervise: how long a tool waits for the operator before answering "pending", and how many
# proposals may wait at once (bounds, so an agent cannot flood the operator).
SUPERVISE_KEYS = bundle_format.SUPERVISE_BOUNDS
# model: the agent's model API as a route like any other (see model_route): its host, and which
# credential of the controller egress adds. What both mean follows the agent's kind (agent_kinds: one
# adapter per kind): for claude-code an API key (x-api-key) or a Claude subscription's OAuth token
# (Authorization: Bearer), for codex an OpenAI API key (Bearer); auto takes the one the controller holds,
# in the adapter's order.
MODEL_KEYS = {"host", "credential"}
# The default kind's (claude-code's) model host, credentials and placeholder, under their former names.
_DEFAULT_KIND = agent_kinds.get()
MODEL_HOST = _DEFAULT_KIND.MODEL_HOST
MODEL_CREDENTIALS = ("auto",) + agent_kinds.credential_kinds()
MODEL_AUTH = _DEFAULT_KIND.CREDENTIALS
MODEL_PLACEHOLDER = _DEFAULT_KIND.PLACEHOLDER
# Environment names the bottle sets itself: a policy must not override the way out.
RESERVED_ENV = {"HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "NO_PROXY", "no_proxy",
                "NODE_EXTRA_CA_CERTS", "ALL_PROXY", "all_proxy", "SSL_CERT_FILE", "CURL_CA_BUNDLE",
                "REQUESTS_CA_BUNDLE", "PIP_CERT", "GIT_SSL_CAINFO", "CARGO_HTTP_CAINFO"}


class ManifestError(ValueError):
    pass


def type_name(value):
    """What ``value`` is, in the words of the YAML a person wrote (never a Python class name: Ansible hands
    plugins its own subclasses of str, dict and list)."""
    if value is None:
        return "empty (null)"
    for kind, name in ((bool, "true/false"), (str, "a string"), (dict, "a mapping"), (list, "a list"),
                       (tuple, "a list"), ((int, float), "a number")):
        if isinstance(value, kind):
            return name
    return "a value of another kind"


def _expect(value, kind, path, fix):
    if not isinstance(value, kind):
        raise ManifestError("%s must be %s, not %s: %s" % (path, type_name(kind()), type_name(value), fix))


def _unknown(mapping, allowed, path):
    extra = sorted(set(mapping) - allowed)
    if extra:
        raise ManifestError("%s.%s is not a known key: use one of %s" % (path, extra[0], ", ".join(sorted(allowed))))


def _check_env(env, path):
    _expect(env, dict, path, "write NAME: value pairs")
    for name, value in env.items():
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            raise ManifestError("%s.%s is not a valid environment variable name: use letters, digits and '_'"
                                % (path, name))
        if name in RESERVED_ENV:
            raise ManifestError("%s.%s is set by the bottle itself (its only way out): remove it" % (path, name))
        if not isinstance(value, (str, int, float, bool)):
            raise ManifestError("%s.%s must be a string, not %s" % (path, name, type_name(value)))


def host_error(host, wildcard=True):
    """None when ``host`` is a host name (``*.name`` too when ``wildcard``), else why: never an address, in
    any spelling a resolver reads as one (agent_text.host_error, the rule supervise applies in the bundle)."""
    return agent_text.host_error(host, wildcard=wildcard)


def is_host(host, wildcard=True):
    return host_error(host, wildcard) is None


def _check_hosts(hosts, path):
    _expect(hosts, list, path, "write a list of host names")
    for index, host in enumerate(hosts):
        why = host_error(host)
        if why:
            raise ManifestError("%s[%d] %s" % (path, index, why))


def _check_positive(value, path, fix):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ManifestError("%s must be a positive whole number: %s" % (path, fix))


def _check_firewall(firewall, path):
    _expect(firewall, dict, path, "write passthrough_domains, trusted_domains, websocket_hosts, ports, "
                                  "max_body_bytes, requests_per_minute, dlp_action, dlp_supervise_timeout, "
                                  "audit_rotate_bytes or audit_keep")
    _unknown(firewall, FIREWALL_KEYS, path)
    for key in ("passthrough_domains", "trusted_domains", "websocket_hosts"):
        if key in firewall:
            _check_hosts(firewall[key], "%s.%s" % (path, key))
    if "ports" in firewall:
        ports = firewall["ports"]
        _expect(ports, list, path + ".ports", "write the ports the agent may connect to, e.g. [80, 443]")
        if not ports:
            raise ManifestError("%s.ports is empty, which would refuse every connection: list ports such as "
                                "[80, 443], or remove the key for that default" % path)
        for index, port in enumerate(ports):
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                raise ManifestError("%s.ports[%d] %r is not a port: write whole numbers from 1 to 65535, e.g. "
                                    "[80, 443]" % (path, index, port))
    if "max_body_bytes" in firewall:
        _check_positive(firewall["max_body_bytes"], path + ".max_body_bytes",
                        "the largest request body the firewall scans, in bytes (default %d, 16 MiB)"
                        % bundle_format.DEFAULT_DLP["max_body_bytes"])
    if "requests_per_minute" in firewall:
        _check_positive(firewall["requests_per_minute"], path + ".requests_per_minute",
                        "requests a minute the agent may send to one registrable domain (default %(requests_per_minute)d, "
                        "burst %(burst)d)" % bundle_format.DEFAULT_RATE)
    if "dlp_action" in firewall and firewall["dlp_action"] not in DLP_ACTIONS:
        raise ManifestError("%s.dlp_action %r is not block or supervise: block refuses a request in which the "
                            "firewall's DLP finds a secret (the default); supervise holds it and asks the operator "
                            "(bottle_supervise) to send it once" % (path, firewall["dlp_action"]))
    if "audit_rotate_bytes" in firewall:
        value = firewall["audit_rotate_bytes"]
        if not isinstance(value, int) or isinstance(value, bool) or value < AUDIT_MIN_ROTATE_BYTES:
            raise ManifestError("%s.audit_rotate_bytes %r must be a whole number of bytes, at least %d (1 MiB): the "
                                "size at which the firewall's audit file rotates into egress.jsonl.1 (default "
                                "%d, 64 MiB)" % (path, value, AUDIT_MIN_ROTATE_BYTES,
                                                 bundle_format.DEFAULT_AUDIT["rotate_bytes"]))
    if "audit_keep" in firewall:
        value = firewall["audit_keep"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ManifestError("%s.audit_keep %r must be a whole number, 0 or more: how many rotated audit files "
                                "(egress.jsonl.1, .2 ...) are kept (default %d; 0 keeps every one)"
                                % (path, value, bundle_format.DEFAULT_AUDIT["keep"]))
    if "dlp_supervise_timeout" in firewall:
        value, (low, high) = firewall["dlp_supervise_timeout"], DLP_SUPERVISE_TIMEOUT
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ManifestError("%s.dlp_supervise_timeout %r must be a whole number of seconds from %d to %d: how "
                                "long the firewall holds a request with a DLP hit for the operator "
                                "(dlp_action supervise; default %d)"
                                % (path, value, low, high, bundle_format.DEFAULT_DLP["supervise_timeout"]))


def check_policy(policy, path):
    """Validate one policy's own keys (before merging)."""
    _expect(policy, dict, path, "a policy is a mapping of its keys")
    _unknown(policy, POLICY_KEYS, path)
    if "extends" in policy and not isinstance(policy["extends"], str):
        raise ManifestError("%s.extends must name one policy (a string)" % path)
    for key in ("env", "secret_env"):
        if key in policy:
            _check_env(policy[key], "%s.%s" % (path, key))
    if "allowed_domains" in policy:
        _check_hosts(policy["allowed_domains"], path + ".allowed_domains")
    if "firewall" in policy:
        _check_firewall(policy["firewall"], path + ".firewall")
    if "pipelock" in policy:
        _expect(policy["pipelock"], dict, path + ".pipelock", "a mapping")
        _unknown(policy["pipelock"], PIPELOCK_KEYS, path + ".pipelock")
        for key, value in policy["pipelock"].items():
            if key in ("max_response_bytes", "max_requests_per_minute"):
                _check_positive(value, "%s.pipelock.%s" % (path, key),
                                "a limit of the optional pipelock hop (bottle_pipelock); for the firewall use "
                                "firewall.max_body_bytes / firewall.requests_per_minute")
                continue
            _check_hosts(value, "%s.pipelock.%s" % (path, key))
    if "egress" in policy:
        _expect(policy["egress"], dict, path + ".egress", "a mapping")
        _unknown(policy["egress"], EGRESS_KEYS, path + ".egress")
        routes = policy["egress"].get("routes", [])
        _expect(routes, list, path + ".egress.routes", "a list of routes")
        seen = {}
        for index, route in enumerate(routes):
            rpath = "%s.egress.routes[%d]" % (path, index)
            check_route(route, rpath)
            host = route["host"].lower()
            if host in seen:
                raise ManifestError("%s.host %s is already routed by %s: keep one route per host (use matches "
                                    "entries for several request shapes)" % (rpath, host, seen[host]))
            seen[host] = rpath
    if "git_gate" in policy:
        git_gate.check(policy["git_gate"], path + ".git_gate", ManifestError)
    if "model" in policy:
        _check_model(policy["model"], path + ".model")
    if "resources" in policy:
        resources.check(policy["resources"], path + ".resources", ManifestError)
    if "supervise" in policy:
        _expect(policy["supervise"], dict, path + ".supervise", "a mapping")
        _unknown(policy["supervise"], set(SUPERVISE_KEYS), path + ".supervise")
        for key, value in policy["supervise"].items():
            low, high = SUPERVISE_KEYS[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ManifestError("%s.supervise.%s must be a whole number from %d to %d" % (path, key, low, high))


def _check_model(model, path):
    _expect(model, dict, path, "write model: {} for Anthropic's API (a codex agent: OpenAI's) with the credential "
                               "the controller holds, or give host and credential (auto, api_key or oauth)")
    _unknown(model, MODEL_KEYS, path)
    host = model.get("host", MODEL_HOST)
    why = host_error(host, wildcard=False)
    if why:
        raise ManifestError("%s.host %r must be one exact host name, such as %s (no wildcard, scheme, path or "
                            "address): %s" % (path, host, MODEL_HOST, why))
    credential = model.get("credential", "auto")
    if credential not in MODEL_CREDENTIALS:
        raise ManifestError("%s.credential %r: use auto (ANTHROPIC_API_KEY if the controller has it, else "
                            "CLAUDE_CODE_OAUTH_TOKEN), api_key or oauth (a codex agent: auto or api_key, "
                            "OPENAI_API_KEY)" % (path, credential))


# The route schema (keys, schemes, path rules, methods, headers) is route_schema's, shared with supervise and egress.
ROUTE_KEYS = set(route_schema.POLICY_ROUTE_KEYS)
AUTH_KEYS = set(route_schema.AUTH_KEYS)
MATCH_KEYS = set(route_schema.MATCH_KEYS)
PATH_KEYS = set(route_schema.PATH_KEYS)
METHODS = set(route_schema.METHODS)
HEADER_RE = route_schema.HEADER_RE


def _rule(why, where):
    """ManifestError ``<where> <why>`` when a route_schema rule refused something."""
    if why:
        raise ManifestError("%s %s" % (where, why))


def check_route(route, rpath):
    """One egress route: host, optional auth and matches (the rules: route_schema)."""
    _expect(route, dict, rpath, "a route is a mapping with at least host")
    _unknown(route, ROUTE_KEYS, rpath)
    why = host_error(route.get("host"), wildcard=False)
    if why:
        raise ManifestError("%s.host %s" % (rpath, why))
    if "auth" in route:
        auth = route["auth"]
        _expect(auth, dict, rpath + ".auth", "write scheme and token_ref, or drop auth for an unauthenticated route")
        if not auth:
            raise ManifestError("%s.auth is empty: give scheme and token_ref, or remove auth for a route without "
                                "credentials" % rpath)
        _unknown(auth, AUTH_KEYS, rpath + ".auth")
        why = route_schema.auth_error(auth)
        if why:
            raise ManifestError("%s.auth.%s" % (rpath, why))
    if "matches" in route:
        _expect(route["matches"], list, rpath + ".matches", "a list of {paths, methods, headers} entries")
        if not route["matches"]:
            raise ManifestError("%s.matches is empty, which would refuse every request: remove it or add entries" % rpath)
        for m_index, entry in enumerate(route["matches"]):
            mpath = "%s.matches[%d]" % (rpath, m_index)
            _expect(entry, dict, mpath, "an entry of paths, methods and headers")
            _unknown(entry, MATCH_KEYS, mpath)
            _expect(entry.get("paths", []), list, mpath + ".paths", "write a list of {type, value} rules")
            for p_index, rule in enumerate(entry.get("paths", [])):
                ppath = "%s.paths[%d]" % (mpath, p_index)
                _expect(rule, dict, ppath, "write {type: exact|prefix|regex, value: /path}")
                _unknown(rule, PATH_KEYS, ppath)
                kind = rule.get("type", route_schema.DEFAULT_PATH_TYPE)
                _rule(route_schema.path_type_error(kind), ppath + ".type")
                _rule(route_schema.path_value_error(kind, rule.get("value")), ppath + ".value")
            _expect(entry.get("methods", []), list, mpath + ".methods", "write a list of HTTP methods")
            for method in entry.get("methods", []):
                _rule(route_schema.method_error(method), mpath + ".methods:")
            headers = entry.get("headers", {})
            _expect(headers, dict, mpath + ".headers", "write Header-Name: value pairs")
            for name, value in headers.items():
                _rule(route_schema.header_error(name, value), mpath + ".headers:")


def check_agent(agent, path):
    _expect(agent, dict, path, "an agent is a mapping of its keys")
    _unknown(agent, AGENT_KEYS, path)
    if not isinstance(agent.get("policy"), str):
        raise ManifestError("%s.policy is required: name the policy (from bottle_policies) this agent runs under"
                            % path)
    for key in ("prompt", "description", "image"):
        if key in agent and not isinstance(agent[key], str):
            raise ManifestError("%s.%s must be a string" % (path, key))
    if "kind" in agent:
        why = agent_kinds.kind_error(agent["kind"])
        if why:
            raise ManifestError("%s.kind %s: the agent's CLI, whose model API, credential and settings the bottle "
                                "provisions" % (path, why))
    if "skills" in agent:
        _expect(agent["skills"], dict, path + ".skills", "write name: markdown pairs")
        for name, text in agent["skills"].items():
            if not isinstance(name, str) or not SKILL_RE.match(name):
                raise ManifestError("%s.skills.%s is not a valid skill name: letters, digits, '-' and '_'"
                                    % (path, name))
            if not isinstance(text, str):
                raise ManifestError("%s.skills.%s must be Markdown text" % (path, name))
    for key in ("env", "secret_env"):
        if key in agent:
            _check_env(agent[key], "%s.%s" % (path, key))
    if "resources" in agent:
        resources.check(agent["resources"], path + ".resources", ManifestError)


def merge(parent, child):
    """Child keys win; mappings merge recursively; lists and scalars are replaced."""
    out = copy.deepcopy(parent)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_over(shipped, yours):
    """``yours`` deep-merged over ``shipped``: mappings merge key by key, recursively; lists and other values
    replace the shipped ones; a key whose value is null (``~``) removes the shipped key."""
    if not isinstance(shipped, dict) or not isinstance(yours, dict):
        return copy.deepcopy(yours)
    out = copy.deepcopy(shipped)
    for key, value in yours.items():
        if value is None:
            out.pop(key, None)
        elif key in out:
            out[key] = merge_over(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def overlay(shipped, yours):
    """The definitions (agents or policies by name) of ``yours`` over the ``shipped`` ones: a name only one side
    defines is taken as it is; a name both define is ``merge_over`` (a definition set to null removes the
    shipped one). Anything not a mapping is returned as it is, for ``resolve`` to name."""
    if not isinstance(shipped, dict) or not isinstance(yours, dict):
        return yours if yours else shipped
    return merge_over(shipped, yours)


def resolve_policy(policies, name, path="bottle_policies", ref="the agent's policy"):
    """The policy ``name`` merged along its ``extends`` chain (root first).

    ``ref`` is the dotted path of the key naming ``name`` (for the error when it is undefined)."""
    chain, current = [], name
    while current is not None:
        if current in chain:
            cycle = " -> ".join(chain[chain.index(current):] + [current])
            raise ManifestError("%s.%s.extends forms a cycle (%s): break it" % (path, chain[-1], cycle))
        if current not in policies:
            where = "%s.%s.extends" % (path, chain[-1]) if chain else ref
            raise ManifestError("%s names policy %r, which is not defined: known policies are %s "
                                "(define it under bottle_policies or name one of those)"
                                % (where, current, ", ".join(sorted(policies)) or "(none)"))
        check_policy(policies[current], "%s.%s" % (path, current))
        chain.append(current)
        current = policies[current].get("extends")
    merged = {}
    for policy_name in reversed(chain):
        merged = merge(merged, {k: v for k, v in policies[policy_name].items() if k != "extends"})
    return merged


def _credential_state(value, key, name):
    """``set``, ``empty`` or ``unset`` from one entry of ``model_credentials`` (a bool means set/unset)."""
    if value is True:
        return "set"
    if value is False or value is None:
        return "unset"
    if value in ("set", "empty", "unset"):
        return value
    # The value is not echoed: a caller passing the credential itself must not see it in an error.
    raise ManifestError("model_credentials.%s must be set, empty or unset (or a bool): pass whether the controller "
                        "holds %s, never its value" % (key, name))


def choose_model_credential(choice, model_credentials, path, adapter=None):
    """The credential kind (api_key or oauth) for ``choice`` given what the controller holds.

    ``adapter``: the agent kind's (agent_kinds; None: claude-code), whose credentials are looked at.
    ``model_credentials``: whether each of them has a value on the controller (an Ansible variable,
    else an environment variable), by variable name (``{"ANTHROPIC_API_KEY": state, ...}``) or by
    the kind's credential kind (``{"api_key": state, "oauth": state}``), each ``set``, ``empty`` or
    ``unset`` (or a bool); None when unknown (an explicit choice is then taken as it is, and checked
    when the route's credential is resolved)."""
    credentials = (adapter or agent_kinds.get()).CREDENTIALS
    names = [credentials[kind][0] for kind in credentials]
    if model_credentials is None:
        if choice == "auto":
            raise ManifestError("%s.credential is auto, but whether the controller holds %s was not given: pass "
                                "model_credentials to resolve_bottle (the bottle role does), or set credential %s"
                                % (path, " or ".join(names), " or ".join(credentials)))
        return choice
    _expect(model_credentials, dict, "model_credentials", "pass {api_key: set|empty|unset, oauth: ...}")
    state = {}
    for kind, (name, _auth) in credentials.items():
        key = name if name in model_credentials else kind
        state[kind] = _credential_state(model_credentials.get(key), key, name)
    wanted = tuple(credentials) if choice == "auto" else (choice,)
    for kind in wanted:
        if state[kind] == "set":
            return kind
    said = ", ".join("%s is %s" % (credentials[kind][0], "set but empty" if state[kind] == "empty" else "not set")
                     for kind in wanted)
    words = getattr(adapter or agent_kinds.get(), "CREDENTIAL_WORDS", {})
    if choice == "auto":
        hint = ("export %s, or define one as an Ansible variable (ansible-vault encrypt_string into a vars file)"
                % " or ".join("%s (%s)" % (credentials[kind][0], words[kind]) if kind in words else credentials[kind][0]
                              for kind in credentials))
        lead = "%s: the controller holds no model credential (%s)" % (path, said)
    else:
        name = credentials[choice][0]
        hint = "export %s, or define it as an Ansible variable (ansible-vault encrypt_string into a vars file)" % name
        lead = "%s.credential is %s, but %s on the controller" % (path, choice, said)
    raise ManifestError("%s: %s. Only the bottle's firewall gets it; the agent holds a placeholder."
                        % (lead, hint))


def _passes_through(host, patterns):
    for pattern in patterns or []:
        pattern = str(pattern).lower()
        if host == pattern or (pattern.startswith("*.") and (host == pattern[2:] or host.endswith(pattern[1:]))):
            return pattern
    return None


def _kind_mismatch(model, path, kind, adapter, agent_path):
    """Refuse a policy ``model`` that names another agent kind's model host or credential."""
    host = str(model.get("host", adapter.MODEL_HOST)).lower()
    host_kind = agent_kinds.model_host_kind(host)
    if host_kind is not None and host_kind != kind:
        raise ManifestError("%s.host %s is the model API of agent kind %s, but %s is of kind %s (model API %s): write "
                            "model: {} for %s's own, or run this policy with a %s agent"
                            % (path, host, host_kind, agent_path, kind, adapter.MODEL_HOST, kind, host_kind))
    credential = model.get("credential", "auto")
    if credential != "auto" and credential not in adapter.CREDENTIALS:
        owners = ["%s (%s)" % (other, agent_kinds.get(other).CREDENTIALS[credential][0])
                  for other in agent_kinds.KINDS if credential in agent_kinds.get(other).CREDENTIALS]
        raise ManifestError("%s.credential %s is a credential of agent kind %s, but %s is of kind %s: use auto or %s"
                            % (path, credential, ", ".join(owners), agent_path, kind,
                               " or ".join("%s (%s)" % (c, name) for c, (name, _a) in adapter.CREDENTIALS.items())))


def model_route(policy, policy_name, slug, model_credentials, agent, agent_path):
    """The route, agent env and description of the policy's ``model`` (None without one).

    The model credential is a route like any other: egress adds the controller's real value (token_ref:
    the variable of the agent kind's credential - ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN for
    claude-code, OPENAI_API_KEY for codex - resolved with the other routes' credentials), the agent's
    environment holds a placeholder under the same name. What ``model: {}`` means follows the agent's
    kind (agent_kinds); another kind's host or credential is refused."""
    model = policy.get("model")
    if model is None:
        return None
    kind = agent.get("kind") or agent_kinds.DEFAULT
    adapter = agent_kinds.get(kind)
    path = "bottle_policies.%s.model" % policy_name
    _kind_mismatch(model, path, kind, adapter, agent_path)
    host = model.get("host", adapter.MODEL_HOST).lower()
    credential = choose_model_credential(model.get("credential", "auto"), model_credentials, path, adapter)
    for name, _auth in adapter.CREDENTIALS.values():
        for key in ("env", "secret_env"):
            if name in agent.get(key, {}):
                where = "%s.%s.%s" % (agent_path, key, name)
            elif name in policy.get(key, {}):
                where = "bottle_policies.%s.%s.%s" % (policy_name, key, name)
            else:
                continue
            raise ManifestError("%s: the bottle sets the model credential itself (%s): remove it, and keep the real "
                                "value on the controller (an Ansible variable or environment variable %s); the "
                                "agent holds a placeholder" % (where, path, name))
    for index, route in enumerate(policy.get("egress", {}).get("routes") or []):
        if route["host"].lower() == host:
            raise ManifestError("bottle_policies.%s.egress.routes[%d].host %s is the model's host (%s): keep one - "
                                "remove the route and the bottle adds the model credential, or remove model and "
                                "route the host yourself" % (policy_name, index, host, path))
    for key in ("firewall", "pipelock"):
        pattern = _passes_through(host, policy.get(key, {}).get("passthrough_domains"))
        if pattern:
            raise ManifestError("bottle_policies.%s.%s.passthrough_domains: %s covers the model's host %s, which "
                                "the firewall must see into to add the credential: remove it"
                                % (policy_name, key, pattern, host))
    name, auth = adapter.CREDENTIALS[credential]
    route = {"host": host, "auth": dict(auth, token_ref=name)}
    return {"host": host, "credential": credential, "env": name, "placeholder": adapter.PLACEHOLDER % slug,
            "route": route}


def resolve(agents, policies, agent_name, instance="", model_credentials=None, memory_override=""):
    """Everything a launch needs about ``agent_name``, validated.

    ``model_credentials``: whether the controller holds each model credential (see
    ``choose_model_credential``), for a policy with ``model``; never the values. The agent's ``kind``
    (default claude-code) decides what the policy's ``model`` means (``model_route``).
    ``memory_override``: the operator's agent memory limit (the role's ``bottle_agent_memory``), over the
    policy's and the agent's ``resources.memory``."""
    agents = agents or {}
    policies = policies or {}
    _expect(agents, dict, "bottle_agents", "a mapping of agent name to definition")
    _expect(policies, dict, "bottle_policies", "a mapping of policy name to definition")
    if not agent_name:
        raise ManifestError("no agent given: pass -e agent=<name>; known agents are %s"
                            % ", ".join(sorted(agents)))
    if agent_name not in agents:
        raise ManifestError("agent %r is not defined: known agents are %s (define it under bottle_agents)"
                            % (agent_name, ", ".join(sorted(agents)) or "(none)"))
    if not NAME_RE.match(agent_name):
        raise ManifestError("bottle_agents.%s: agent names use a-z, 0-9 and '-' (at most 31)" % agent_name)
    if instance and not NAME_RE.match(str(instance)):
        raise ManifestError("bottle_instance %r: use a-z, 0-9 and '-'" % (instance,))
    path = "bottle_agents.%s" % agent_name
    agent = agents[agent_name]
    check_agent(agent, path)
    policy = resolve_policy(policies, agent["policy"], ref=path + ".policy")
    slug = naming.make_slug(agent_name, instance)
    error = naming.slug_error(slug)
    if error:
        raise ManifestError(error)
    env = dict(policy.get("env", {}))
    env.update(agent.get("env", {}))
    secret_env = dict(policy.get("secret_env", {}))
    secret_env.update(agent.get("secret_env", {}))
    clash = sorted(set(env) & set(secret_env))
    if clash:
        raise ManifestError("%s: %s is both in env and secret_env: keep it in one" % (path, clash[0]))
    if policy.get("git_gate"):
        # Each policy was checked alone; the merged repos must still name each upstream once.
        git_gate.check(policy["git_gate"], "bottle_policies.%s.git_gate (merged along extends)" % agent["policy"],
                       ManifestError)
    kind = agent_kinds.get(agent.get("kind"))
    model = model_route(policy, agent["policy"], slug, model_credentials, agent, path)
    written = dict(policy.pop("resources", None) or {})
    written.update(agent.get("resources") or {})
    if memory_override not in (None, ""):
        resources.memory_bytes(memory_override, "bottle_agent_memory", ManifestError)
        written["memory"] = memory_override
    policy.setdefault("allowed_domains", [])
    policy.setdefault("pipelock", {})
    policy.setdefault("egress", {"routes": []})
    if model is not None:
        policy["egress"]["routes"] = list(policy["egress"].get("routes") or []) + [model.pop("route")]
        policy["model"] = {"host": model["host"], "credential": model["credential"]}
        env[model["env"]] = model["placeholder"]
        # A model host other than the kind's own (a gateway): Claude Code is told by ANTHROPIC_BASE_URL
        # (codex: by the base_url its provisioned config.toml names, nothing in the environment).
        for name, value in kind.base_url_env(model["host"]).items():
            env.setdefault(name, value)
        if "websocket" in kind.TRANSPORTS:
            # The kind opens its model API as a WebSocket (codex: first, before HTTPS): allowed for that
            # host alone, the credential added on the handshake like on every request.
            firewall = policy.setdefault("firewall", {})
            hosts = list(firewall.get("websocket_hosts") or [])
            firewall["websocket_hosts"] = hosts + ([model["host"]] if model["host"] not in hosts else [])
    if not policy["allowed_domains"] and not policy["egress"].get("routes"):
        raise ManifestError("bottle_policies.%s allows no host at all (allowed_domains and egress.routes are empty): "
                            "the bottle's firewall would refuse every request; list the hosts the agent may reach"
                            % agent["policy"])
    return {
        "slug": slug,
        "agent": agent_name,
        # The agent's kind (agent_kinds): its CLI, model API and the files provisioning writes for it.
        "kind": kind.KIND,
        "instance": str(instance or ""),
        "policy_name": agent["policy"],
        "policy": policy,
        "prompt": agent.get("prompt", ""),
        "skills": dict(agent.get("skills", {})),
        "env": {k: str(v) for k, v in env.items()},
        "secret_env": {k: str(v) for k, v in secret_env.items()},
        "image": agent.get("image"),
        # The image of the kind's CLI (the adapter's IMAGE): the role's default for this agent.
        "kind_image": kind.IMAGE,
        "description": agent.get("description", ""),
        # The merged git_gate (a child policy's repos add to its parent's), normalised; None without repos.
        "git_gate": git_gate.normalise(policy.get("git_gate")),
        # The model credential: host, credential (api_key or oauth), env (the variable the agent holds
        # the placeholder in, also the route's token_ref) and placeholder; None without model. What they
        # are follows the kind.
        "model": model,
        # The agent's limits: the defaults with the policy's, the agent's and the operator's keys over them
        # ({memory, cpus, pids}); resources_written holds only the keys written (smolvm sizes its machine by them).
        "resources": resources.effective(written),
        "resources_written": written,
        # smolmachines: the written memory and cpus as smolvm machine options ({memory: MiB, cpus}).
        "resources_smolvm": resources.smolvm_options(written),
    }
