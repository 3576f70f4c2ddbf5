# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the agent holds: CA, prompt, skills, MCP servers (module bottle_provision, phase of bottle_launch).

Where the prompt, skills and settings go, and what the settings file holds, is the agent kind's
(agent_kinds: ``~/.claude/CLAUDE.md`` and ``~/.claude.json`` for claude-code, ``~/.codex/AGENTS.md`` and
``~/.codex/config.toml`` for codex)."""

from __future__ import annotations

import os
import re
import time

from ansible_collections.botbottle.bottle.plugins.module_utils import agent_kind_claude_code, agent_kinds
from ansible_collections.botbottle.bottle.plugins.module_utils.agent_transport import TransportError
from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_health import BundleUnhealthy, wait_healthy
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import DockerException, find_container
from ansible_collections.botbottle.bottle.plugins.module_utils.git_gate_policy import gitconfig
from ansible_collections.botbottle.bottle.plugins.module_utils.transport_factory import TRANSPORTS

CA_TARGET = "/usr/local/share/ca-certificates/bottle-ca.crt"
# update-ca-certificates links every added certificate here: its absence means the trust store
# never saw ours.
CA_LINK = "/etc/ssl/certs/bottle-ca.pem"
GITCONFIG = "/etc/gitconfig"
SKILL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# The variables Claude Code reads a model credential from (resolve_bottle's model.env); only the API
# key is confirmed interactively (customApiKeyResponses), the OAuth token is taken as it is.
MODEL_ENVS = tuple(name for name, _auth in agent_kinds.get().CREDENTIALS.values())
# The claude-code kind's helpers (agent_kind_claude_code), under the names they had here.
APPROVED_KEY_CHARS = agent_kind_claude_code.APPROVED_KEY_CHARS
approved_key = agent_kind_claude_code.approved_key
skill_document = agent_kind_claude_code.skill_document
claude_json = agent_kind_claude_code.settings


def desired_files(params, ca_pem):
    """(path, content bytes, mode, owner) of every file the agent should hold."""
    user, home = params["agent_user"], params["agent_home"].rstrip("/")
    kind = agent_kinds.get(params.get("kind"))
    owner = "%s:%s" % (user, user)
    files = []
    if ca_pem is not None:
        files.append((CA_TARGET, ca_pem, 0o644, None))
    if params["prompt"] is not None:
        files.append(("%s/%s" % (home, kind.PROMPT_FILE), params["prompt"].encode("utf-8"), 0o644, owner))
    for name, text in sorted((params["skills"] or {}).items()):
        files.append(("%s/%s" % (home, kind.SKILL_FILE % name), kind.skill_document(name, text).encode("utf-8"),
                      0o644, owner))
    if params.get("git_gate"):
        files.append((GITCONFIG, gitconfig(params["git_gate"], params["gate_host"]).encode("utf-8"), 0o644, None))
    return files


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
    kind = agent_kinds.get(p.get("kind"))
    # The kind's settings file (mode 0600): Claude Code's only with servers or a model to record; Codex's
    # always (it holds the sandbox setting and switches the start-up calls off).
    needed = p.get("mcp_servers") or p.get("model") or getattr(kind, "SETTINGS_ALWAYS", False)
    settings = "%s/%s" % (p["agent_home"].rstrip("/"), kind.SETTINGS_FILE) if needed else None
    # Every file read in one go (the docker transport: side by side), with the owners' ids.
    found = transport.read_files_info([path for path, _c, _m, _o in wanted] + ([settings] if settings else []))
    if settings:
        current, stat = found[-1]
        # Read once: the new content is built from the current one.
        wanted.append((settings, kind.settings(current, p["mcp_servers"] or {}, p.get("model")), 0o600,
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
    kind=dict(type="str", choices=list(agent_kinds.KINDS), default=agent_kinds.DEFAULT),
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
    kind = agent_kinds.get(p.get("kind"))
    for name, spec in (p["mcp_servers"] or {}).items():
        if not SKILL_NAME.match(name) or not isinstance(spec, dict) or not spec.get("type"):
            module.fail_json(msg="mcp_servers.%s must be a name (letters, digits, '-', '_') mapped to a Claude Code "
                                 "server entry with a type, such as {type: http, url: http://...}" % name)
        if hasattr(kind, "mcp_entry") and kind.mcp_entry(spec) is None:
            module.fail_json(msg="mcp_servers.%s: a %s agent takes {type: http, url: ...} or {type: stdio, command: "
                                 "...} servers" % (name, kind.KIND))
    if p["model"] is not None:
        envs = tuple(name for name, _auth in kind.CREDENTIALS.values())
        env, placeholder = p["model"].get("env"), p["model"].get("placeholder")
        if env not in envs or not isinstance(placeholder, str) or not placeholder.strip():
            module.fail_json(msg="model must hold env (%s) and placeholder (the value the agent holds): pass the model "
                                 "of the botbottle.bottle.resolve_bottle filter's result%s"
                                 % (" or ".join(envs), "" if kind.KIND == agent_kinds.DEFAULT
                                    else " for a %s agent (kind %s)" % (kind.KIND, kind.KIND)))
        if placeholder.strip().startswith(kind.REAL_KEY_PREFIXES):
            module.fail_json(msg="model.placeholder looks like a real %s credential (%s...): the agent "
                                 "gets a placeholder only; the credential stays on the controller and in the firewall"
                                 % (kind.PROVIDER_NAME, kind.REAL_KEY_PREFIXES[0]))
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
