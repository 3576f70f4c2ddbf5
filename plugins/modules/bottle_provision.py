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
        variable the agent holds the placeholder in (V(ANTHROPIC_API_KEY) or V(CLAUDE_CODE_OAUTH_TOKEN); for
        O(kind=codex) V(OPENAI_API_KEY)), C(placeholder), its value, and C(host), the model API's host (used by
        O(kind=codex)); other keys are ignored. Only the placeholder reaches the agent (the real
        credential stays with the firewall); a value shaped like an Anthropic key (C(sk-ant-...)) is refused.
      - Omitted - C(~/.claude.json) gets no onboarding or API-key state (the user logs in inside the agent).
    type: dict
  kind:
    description:
      - The agent's kind (the agent definition's C(kind), the C(resolve_bottle) filter's C(kind)) - which CLI's
        files are written (plugins/module_utils/agent_kinds.py, one adapter per kind).
      - V(claude-code) - the prompt in C(~/.claude/CLAUDE.md), skills in C(~/.claude/skills/<name>/SKILL.md),
        O(mcp_servers) and O(model) in C(~/.claude.json).
      - V(codex) - the prompt in C(~/.codex/AGENTS.md), skills in C(~/.codex/skills/<name>/SKILL.md), and
        C(~/.codex/config.toml) (mode 0600, the bottle's, rewritten whole) - C(sandbox_mode = "danger-full-access")
        (the bottle is the sandbox), the start-up calls to chatgpt.com and api.github.com off, O(mcp_servers) as
        C([mcp_servers.<name>]), and with O(model) a model provider that sends the placeholder in C(OPENAI_API_KEY)
        as a Bearer C(Authorization) header to C(https://<model host>/v1).
    type: str
    choices: [claude-code, codex]
    default: claude-code
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils import provisioning
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import DOCKER_COMMON_ARGS, get_docker_client
from ansible_collections.botbottle.bottle.plugins.module_utils.provisioning import PROVISION_SPEC
from ansible_collections.botbottle.bottle.plugins.module_utils.transport_factory import get_transport


def main():
    argument_spec = dict(PROVISION_SPEC)
    argument_spec.update(DOCKER_COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    provisioning.check_params(module)
    result = provisioning.run(module, get_docker_client, get_transport)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
