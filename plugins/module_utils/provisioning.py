# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the agent holds: CA, prompt, skills, MCP servers (module bottle_provision, phase of bottle_launch)."""

from __future__ import annotations

import json
import os
import re
import time

from ansible_collections.botbottle.bottle.plugins.module_utils.agent_transport import TransportError
from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_health import BundleUnhealthy, wait_healthy
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import DockerException, find_container
from ansible_collections.botbottle.bottle.plugins.module_utils.git_gate import gitconfig
from ansible_collections.botbottle.bottle.plugins.module_utils.transport_factory import TRANSPORTS

CA_TARGET = "/usr/local/share/ca-certificates/bottle-ca.crt"
# update-ca-certificates links every added certificate here: its absence means the trust store
# never saw ours.
CA_LINK = "/etc/ssl/certs/bottle-ca.pem"
GITCONFIG = "/etc/gitconfig"
SKILL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# The variables Claude Code reads a model credential from (resolve_bottle's model.env); only the API
# key is confirmed interactively (customApiKeyResponses), the OAuth token is taken as it is.
MODEL_ENVS = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN")
# Claude Code 2.1.330 remembers an accepted ANTHROPIC_API_KEY by its last 20 characters (trimmed).
APPROVED_KEY_CHARS = 20


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


def desired_files(params, ca_pem):
    """(path, content bytes, mode, owner) of every file the agent should hold."""
    user, home = params["agent_user"], params["agent_home"].rstrip("/")
    owner = "%s:%s" % (user, user)
    files = []
    if ca_pem is not None:
        files.append((CA_TARGET, ca_pem, 0o644, None))
    if params["prompt"] is not None:
        files.append((home + "/.claude/CLAUDE.md", params["prompt"].encode("utf-8"), 0o644, owner))
    for name, text in sorted((params["skills"] or {}).items()):
        files.append(("%s/.claude/skills/%s/SKILL.md" % (home, name), skill_document(name, text).encode("utf-8"),
                      0o644, owner))
    if params.get("git_gate"):
        files.append((GITCONFIG, gitconfig(params["git_gate"], params["gate_host"]).encode("utf-8"), 0o644, None))
    return files


def approved_key(placeholder):
    """What Claude Code records in customApiKeyResponses for an accepted ANTHROPIC_API_KEY."""
    return placeholder.strip()[-APPROVED_KEY_CHARS:]


def claude_json(current, servers, model=None):
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


def differences(current, stat, content, mode, ids):
    """Why the file in the agent is not what it should be (empty list: it is)."""
    if current is None:
        return ["missing"]
    reasons = []
    if current != content:
        reasons.append("content")
    if stat is not None:
        if stat["mode"] != mode:
            reasons.append("mode")
        if (stat["uid"], stat["gid"]) != ids:
            reasons.append("owner")
    return reasons


def describe(content, stat):
    if content is None:
        return ""
    return content.decode("utf-8", "replace")


def header(path, stat):
    if stat is None:
        return path
    return "%s (mode %04o, owner %d:%d)" % (path, stat["mode"], stat["uid"], stat["gid"])


def find_bundle(module, client):
    """The bundle container O(bundle) names; fails naming it when it does not exist."""
    bundle = find_container(client, module.params["bundle"])
    if bundle is None:
        module.fail_json(msg="bundle %s does not exist: launch it (botbottle.bottle.sidecar_bundle) before "
                             "provisioning" % module.params["bundle"])
    return bundle


def wait_for_ca(module, bundle, path, deadline):
    """Wait until the starting bundle has written the bottle CA to ``path``; fail with its health when it does not."""
    while not os.path.isfile(path):
        if time.monotonic() > deadline:
            break
        bundle.reload()
        if bundle.status not in ("running", "created"):
            break
        time.sleep(0.05)
    if not os.path.isfile(path):
        # Why: the bundle's own report (exited, unhealthy daemons, its log) says more than a missing file.
        try:
            wait_healthy(bundle, 0, module.params["bundle"])
        except BundleUnhealthy as exc:
            module.fail_json(msg="the bundle did not write %s: %s" % (path, exc), **exc.details)


def read_ca(module, path):
    if not os.path.isfile(path):
        module.fail_json(msg="ca_cert_path %s does not exist: the bundle writes it when it first starts; "
                             "launch the bundle before provisioning" % path)
    with open(path, "rb") as handle:
        ca_pem = handle.read()
    if b"PRIVATE KEY" in ca_pem or b"BEGIN CERTIFICATE" not in ca_pem:
        module.fail_json(msg="ca_cert_path %s must hold the CA certificate only (PEM, no private key)" % path)
    return ca_pem


def provision(module, transport, ca_pem):
    p = module.params
    files, diffs, writes = [], [], []
    wanted = desired_files(p, ca_pem)
    settings = p["agent_home"].rstrip("/") + "/.claude.json" if p.get("mcp_servers") or p.get("model") else None
    # Every file read in one go (the docker transport: side by side), with the owners' ids.
    found = transport.read_files_info([path for path, _c, _m, _o in wanted] + ([settings] if settings else []))
    if settings:
        current, stat = found[-1]
        # Read once: the new content is built from the current one.
        wanted.append((settings, claude_json(current, p["mcp_servers"] or {}, p.get("model")), 0o600,
                       "%s:%s" % (p["agent_user"], p["agent_user"])))
    for (path, content, mode, owner), (current, stat) in zip(wanted, found):
        ids = transport.ids(owner)
        reasons = differences(current, stat, content, mode, ids)
        files.append({"path": path, "changed": bool(reasons), "reasons": reasons})
        if not reasons:
            continue
        diffs.append(dict(before_header=header(path, stat), before=describe(current, stat),
                          after_header=header(path, {"mode": mode, "uid": ids[0], "gid": ids[1]}),
                          after=content.decode("utf-8", "replace")))
        writes.append((path, content, mode, owner))
    # Every file that differs in one go (the docker transport: one mkdir per owner, one archive).
    if writes and not module.check_mode:
        transport.write_files(writes)
    ca_changed = any(path == CA_TARGET for path, _c, _m, _o in writes)
    refresh = ca_pem is not None and (ca_changed or transport.stat(CA_LINK) is None)
    if refresh and not module.check_mode:
        rc, out, err = transport.run(["update-ca-certificates"], user="root")
        if rc != 0:
            module.fail_json(msg="update-ca-certificates failed in %s (rc %d): %s; the agent image needs the "
                                 "ca-certificates package" % (p["target"], rc, (out + err).decode("utf-8", "replace")))
    return files, diffs, refresh


# The module's options (also a phase of botbottle.bottle.bottle_launch).
PROVISION_SPEC = dict(
    transport=dict(type="str", choices=list(TRANSPORTS), default="docker"),
    target=dict(type="str", required=True),
    ca_cert_path=dict(type="path"),
    prompt=dict(type="str"),
    skills=dict(type="dict", default={}),
    agent_user=dict(type="str", default="agent"),
    agent_home=dict(type="str", default="/home/agent"),
    git_gate=dict(type="dict"),
    gate_host=dict(type="str"),
    mcp_servers=dict(type="dict", default={}),
    model=dict(type="dict"),
    bundle=dict(type="str"),
    bundle_health_timeout=dict(type="int", default=60),
    smolvm_path=dict(type="path"),
    smolvm_state_dir=dict(type="path"),
)


def check_params(module):
    """Fail on options that do not go together, naming the option and the fix."""
    p = module.params
    for name in p["skills"] or {}:
        if not SKILL_NAME.match(name):
            module.fail_json(msg="skills.%s is not a valid skill name: use letters, digits, '-' and '_' "
                                 "(it becomes a directory name)" % name)
        if not isinstance(p["skills"][name], str):
            module.fail_json(msg="skills.%s must be Markdown text (a string)" % name)
    if p["git_gate"]:
        repos = p["git_gate"].get("repos")
        if not isinstance(repos, list) or not all(isinstance(r, dict) and r.get("name") and
                                                  isinstance(r.get("aliases"), list) for r in repos):
            module.fail_json(msg="git_gate.repos must be a list of {name, aliases}: pass the git_gate of the "
                                 "botbottle.bottle.resolve_bottle filter's result")
        if not p["gate_host"]:
            module.fail_json(msg="gate_host is required with git_gate: the bundle's address as the agent reaches it")
    for name, spec in (p["mcp_servers"] or {}).items():
        if not SKILL_NAME.match(name) or not isinstance(spec, dict) or not spec.get("type"):
            module.fail_json(msg="mcp_servers.%s must be a name (letters, digits, '-', '_') mapped to a Claude Code "
                                 "server entry with a type, such as {type: http, url: http://...}" % name)
    if p["model"] is not None:
        env, placeholder = p["model"].get("env"), p["model"].get("placeholder")
        if env not in MODEL_ENVS or not isinstance(placeholder, str) or not placeholder.strip():
            module.fail_json(msg="model must hold env (%s) and placeholder (the value the agent holds): pass the model "
                                 "of the botbottle.bottle.resolve_bottle filter's result" % " or ".join(MODEL_ENVS))
        if placeholder.strip().startswith("sk-ant-"):
            module.fail_json(msg="model.placeholder looks like a real Anthropic credential (sk-ant-...): the agent "
                                 "gets a placeholder only; the credential stays on the controller and in the firewall")
    if not p["agent_home"].startswith("/"):
        module.fail_json(msg="agent_home %s must be an absolute path inside the agent" % p["agent_home"])


def run(module, get_client, get_transport, client=None, timings=None):
    """Provision as ``module.params`` say (checked by ``check_params``); the result. ``client``: an engine
    connection the caller holds already (bottle_launch), else one comes from ``get_client(module)`` when
    the bundle is waited for. ``timings`` (a dict): filled with the seconds spent waiting for the CA
    (``ca_wait``), writing the files (``files``) and waiting for the bundle's health (``health_wait``)."""
    p = module.params
    timings = {} if timings is None else timings
    started = time.monotonic()
    bundle, deadline = None, time.monotonic() + p["bundle_health_timeout"]
    if p["bundle"] and not module.check_mode:
        client = client or get_client(module)
        bundle = find_bundle(module, client)
        if p["ca_cert_path"]:
            wait_for_ca(module, bundle, p["ca_cert_path"], deadline)
    timings["ca_wait"] = round(time.monotonic() - started, 3)
    ca_pem = read_ca(module, p["ca_cert_path"]) if p["ca_cert_path"] else None

    try:
        # One engine connection for the bundle and a docker agent.
        transport = get_transport(module, p["transport"], p["target"],
                                  **({"client": client} if client is not None and p["transport"] == "docker" else {}))
        files, diffs, refreshed = provision(module, transport, ca_pem)
    except (TransportError, DockerException) as exc:
        module.fail_json(msg="cannot provision %s over %s: %s" % (p["target"], p["transport"], exc))
    result = dict(changed=any(f["changed"] for f in files) or refreshed, files=files, trust_store_updated=refreshed)
    timings["files"] = round(time.monotonic() - started - timings["ca_wait"], 3)
    if bundle is not None:
        try:
            result["health"] = wait_healthy(bundle, max(0, deadline - time.monotonic()), p["bundle"])
        except BundleUnhealthy as exc:
            module.fail_json(msg=str(exc), **exc.details)
        except DockerException as exc:
            module.fail_json(msg="docker engine error while waiting for bundle %s: %s" % (p["bundle"], exc))
        timings["health_wait"] = round(time.monotonic() - started - timings["ca_wait"] - timings["files"], 3)
    if module._diff:
        result["diff"] = diffs
    return result
