#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_provision
short_description: Put the bottle CA, prompt, skills and git config into a running agent
version_added: 0.1.0
description:
  - Installs the bottle's CA certificate into the agent's trust store
    (C(/usr/local/share/ca-certificates/bottle-ca.crt), then C(update-ca-certificates)); the agent
    container's C(NODE_EXTRA_CA_CERTS) points at the same file for Claude Code.
  - Writes the agent's prompt as Claude Code's user memory (C(~/.claude/CLAUDE.md)) and each skill as
    C(~/.claude/skills/<name>/SKILL.md), owned by the agent user. A skill without YAML front matter gets
    one (C(name) = the skill's name, C(description) = its first paragraph of prose), as Claude Code lists
    skills by it.
  - Registers MCP servers (O(mcp_servers)) in Claude Code's user configuration C(~/.claude.json)
    (C(mcpServers), user scope), keeping every other key of that file, which Claude Code itself maintains.
  - With O(model) (the agent's model credential is a placeholder the bottle's firewall replaces), marks Claude
    Code's onboarding done in the same file (C(hasCompletedOnboarding)) and, for an API key, approves the
    placeholder (C(customApiKeyResponses.approved) holds its last 20 characters, as Claude Code records a key
    the user accepted), so that C(claude) starts without a login or an API-key question.
  - Compares every file first and changes nothing that is already right.
  - Reaches the agent over a transport; V(docker) uses C(docker exec) and the archive API.
author: botbottle developers (@botbottle)
extends_documentation_fragment:
  - botbottle.bottle.docker
attributes:
  check_mode:
    support: full
    description: Reports which files would change.
  diff_mode:
    support: full
    description: Shows each file's content before and after.
  idempotent:
    support: full
    description: Files already right are left alone.
options:
  transport:
    description:
      - How to reach the agent - V(docker) (C(docker exec) and the archive API; the docker connection
        options apply) or V(smolvm) (C(smolvm machine exec) and C(cp); O(smolvm_path) and
        O(smolvm_state_dir) apply).
    type: str
    choices: [docker, smolvm]
    default: docker
  target:
    description: The agent's container name (V(docker)) or machine name (V(smolvm)), for example V(bb-demo-agent).
    type: str
    required: true
  ca_cert_path:
    description: Path on the managed host of the bottle CA certificate (the bundle writes C(<state>/ca/bottle-ca.pem)).
    type: path
  prompt:
    description: The agent's prompt (Markdown), written as Claude Code's user memory.
    type: str
  skills:
    description: Skills by name (letters, digits, C(-), C(_)) to Markdown.
    type: dict
    default: {}
  agent_user:
    description: The agent's user in the agent image.
    type: str
    default: agent
  agent_home:
    description: The agent user's home directory.
    type: str
    default: /home/agent
  git_gate:
    description:
      - The bottle's git-gate as the C(resolve_bottle) filter returns it (C(user), C(repos) with their
        C(name) and C(aliases)). Written as the agent's system git config (C(/etc/gitconfig), owned by
        root) - the user, and C(url.<gate>.insteadOf) rewrites that send every spelling of each declared
        upstream (ssh, scp-style, https) to C(git://<gate_host>:9418/<name>.git) for fetch and push; no
        credential helper.
    type: dict
  gate_host:
    description: The address at which the agent reaches the bundle (its IP on the internal network). Required with O(git_gate).
    type: str
  mcp_servers:
    description:
      - "MCP servers by name, each as Claude Code's C(mcpServers) entry (for example C({type: http, url:
        http://172.29.0.2:9100/mcp}) for the bundle's supervise). Set in C(~/.claude.json) of O(agent_user)
        (mode 0600); other servers and keys there are left alone."
    type: dict
    default: {}
  model:
    description:
      - The agent's model credential as the C(resolve_bottle) filter returns it (its C(model)) - C(env), the
        variable the agent holds the placeholder in (V(ANTHROPIC_API_KEY) or V(CLAUDE_CODE_OAUTH_TOKEN)), and
        C(placeholder), its value; other keys are ignored. Only the placeholder reaches the agent (the real
        credential stays with the firewall); a value shaped like an Anthropic key (C(sk-ant-...)) is refused.
      - Omitted - C(~/.claude.json) gets no onboarding or API-key state (the user logs in inside the agent).
    type: dict
  bundle:
    description:
      - The bottle's bundle container (on the docker engine of the docker connection options), started by
        M(botbottle.bottle.sidecar_bundle) with O(botbottle.bottle.sidecar_bundle#module:wait=false) so that the
        agent is provisioned while the bundle's daemons start.
      - The module then waits, up to O(bundle_health_timeout) seconds, for the bundle to write O(ca_cert_path)
        (it creates the bottle CA when it first starts), and after provisioning for every daemon of the bundle
        to report healthy, failing with the unhealthy daemons' own log lines as M(botbottle.bottle.sidecar_bundle)
        does. Not in check mode.
    type: str
  bundle_health_timeout:
    description: Seconds to wait for O(bundle) (its CA, then its health).
    type: int
    default: 60
  smolvm_path:
    description: The smolvm binary (O(transport=smolvm)). Default - C(smolvm) on PATH, else the C(smolmachines) wheel's.
    type: path
  smolvm_state_dir:
    description: smolvm's state directory (O(transport=smolvm)); smolvm's own default when unset.
    type: path
notes:
  - Files are compared by content, mode and owner; a file already right is not touched. The prompt and
    skills are owned by O(agent_user) with mode 0644 (directories 0755); the CA is owned by root; C(~/.claude.json) has mode 0600.
  - C(update-ca-certificates) runs when the CA file changed, or when the trust store lacks it (an earlier
    run was interrupted).
"""

EXAMPLES = r"""
- name: Provision bottle demo's agent
  botbottle.bottle.bottle_provision:
    target: bb-demo-agent
    ca_cert_path: ~/.bot-bottle/state/demo/ca/bottle-ca.pem
    prompt: You maintain the frontend.
    skills:
      lint: "# lint\nRun npm run lint."

- name: Send the agent's git traffic for a declared upstream through the bottle's git-gate
  botbottle.bottle.bottle_provision:
    target: bb-demo-agent
    gate_host: 172.29.0.2
    git_gate:
      user: {name: Demo Agent, email: demo@example.com}
      repos:
        - name: app
          aliases: [ssh://git@git.example.com/team/app.git, git@git.example.com:team/app.git]
"""

RETURN = r"""
files:
  description:
    - Every file the module manages, with whether it changed and why (V(content), V(mode), V(owner),
      empty when unchanged).
  returned: always
  type: list
  elements: dict
  sample: [{path: /usr/local/share/ca-certificates/bottle-ca.crt, changed: false, reasons: []}]
trust_store_updated:
  description: Whether C(update-ca-certificates) ran (or would run, in check mode).
  returned: always
  type: bool
health:
  description: Health of each daemon of O(bundle) as it reports it.
  returned: with O(bundle), not in check mode
  type: dict
  sample: {egress: healthy, supervise: healthy}
"""

import json
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils.agent_transport import TransportError
from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_health import BundleUnhealthy, wait_healthy
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, DockerException, find_container, get_docker_client)
from ansible_collections.botbottle.bottle.plugins.module_utils.git_gate import gitconfig
from ansible_collections.botbottle.bottle.plugins.module_utils.transport_factory import TRANSPORTS, get_transport

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
    wanted = [entry + (None,) for entry in desired_files(p, ca_pem)]
    if p.get("mcp_servers") or p.get("model"):
        path = p["agent_home"].rstrip("/") + "/.claude.json"
        current, stat = transport.read_file_info(path)
        # Read once: the new content is built from the current one.
        wanted.append((path, claude_json(current, p["mcp_servers"] or {}, p.get("model")), 0o600,
                       "%s:%s" % (p["agent_user"], p["agent_user"]), (current, stat)))
    for path, content, mode, owner, known in wanted:
        current, stat = known if known is not None else transport.read_file_info(path)
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


def main():
    argument_spec = dict(
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
    argument_spec.update(DOCKER_COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
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
    bundle, client, deadline = None, None, time.monotonic() + p["bundle_health_timeout"]
    if p["bundle"] and not module.check_mode:
        client = get_docker_client(module)
        bundle = find_bundle(module, client)
        if p["ca_cert_path"]:
            wait_for_ca(module, bundle, p["ca_cert_path"], deadline)
    ca_pem = read_ca(module, p["ca_cert_path"]) if p["ca_cert_path"] else None

    try:
        # One engine connection for the bundle and a docker agent.
        transport = get_transport(module, p["transport"], p["target"],
                                  **({"client": client} if client is not None and p["transport"] == "docker" else {}))
        files, diffs, refreshed = provision(module, transport, ca_pem)
    except (TransportError, DockerException) as exc:
        module.fail_json(msg="cannot provision %s over %s: %s" % (p["target"], p["transport"], exc))
    result = dict(changed=any(f["changed"] for f in files) or refreshed, files=files, trust_store_updated=refreshed)
    if bundle is not None:
        try:
            result["health"] = wait_healthy(bundle, max(0, deadline - time.monotonic()), p["bundle"])
        except BundleUnhealthy as exc:
            module.fail_json(msg=str(exc), **exc.details)
        except DockerException as exc:
            module.fail_json(msg="docker engine error while waiting for bundle %s: %s" % (p["bundle"], exc))
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
