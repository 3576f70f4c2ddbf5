# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Written by scripts/launch_doc_fragments.py from the phases' modules' documentation: do not edit, rerun it.

from __future__ import annotations


class ModuleDocFragment:
    """bottle_launch's phase options (module_utils/launch_phases.py), each documented as its module documents it."""

    STATE = r"""
options:
  state:
    description: 'The state directory: the options of M(botbottle.bottle.bottle_state) but those bottle_launch sets
      (C(slug), C(state)) and its archive options (which are for removal).'
    type: dict
    suboptions:
      state_root:
        description:
        - Where bottles keep their state.
        type: path
        default: ~/.bot-bottle/state
      policy:
        description:
        - The bottle's resolved policy with the operator's approvals merged (filters C(botbottle.bottle.resolve_bottle)
          and C(botbottle.bottle.with_approvals)). Validated like a policy.
        - Only C(allowed_domains), C(egress), C(firewall) and C(pipelock) are read and kept in C(bundle-source.json);
          other keys (C(env), C(secret_env) ...) are ignored. Required with O(botbottle.bottle.bottle_state#module:state=present).
        type: dict
        required: true
      options:
        description:
        - How the bundle runs, beside the policy.
        type: dict
        default: {}
        suboptions:
          pipelock:
            description:
            - The optional pipelock hop runs in front of egress - render C(pipelock.yaml) and its DLP file.
            type: bool
            default: false
          ssrf_ip_allowlist:
            description:
            - CIDRs the bundle may reach despite its SSRF protection (test networks only).
            type: list
            elements: str
            default: []
          upstream_ca:
            description:
            - PEM text of extra CAs the bundle trusts for upstream TLS (empty for none).
            type: str
            default: ''
          git_gate:
            description:
            - git-gate's configuration (C(resolve_bottle)'s C(git_gate.bundle_config)); empty for no repos.
            type: dict
            default: {}
          supervise:
            description:
            - supervise's bounds (the policy's C(supervise), over the defaults C(wait_seconds=20), C(max_pending=20)).
            type: dict
            default: {}
          supervise_enabled:
            description:
            - Whether the bundle runs supervise. A policy whose C(firewall.dlp_action) is V(supervise) (hold a DLP
              hit for the operator) needs it, and is refused without it.
            type: bool
            default: true
      secrets:
        description:
        - The agent's secret values (its C(secret_env) values), which the firewall's DLP refuses to let out. Never
          logged.
        type: list
        elements: str
        default: []
      tokens:
        description:
        - Route credentials by C(token_ref), for egress alone. Never logged or shown in a diff.
        type: dict
        default: {}
      meta:
        description:
        - Written to C(meta.json) when that file does not exist yet.
        type: dict
        default: {}
    required: true
"""

    NETWORK = r"""
options:
  network:
    description: 'The networks: the options of M(botbottle.bottle.bottle_network) but those bottle_launch sets.'
    type: dict
    suboptions:
      pool:
        description:
        - Where subnets are taken from (an IPv4 CIDR).
        type: str
        default: 172.29.0.0/16
      prefix:
        description:
        - Prefix length of each network's subnet; a /28 holds the gateway, bundle and agent.
        type: int
        default: 28
      labels:
        description:
        - Extra labels for both networks (the bottle's own labels always win).
        type: dict
        default: {}
    default: {}
"""

    BUNDLE = r"""
options:
  bundle:
    description: 'The bundle: the options of M(botbottle.bottle.sidecar_bundle) but those bottle_launch sets (its
      networks and address from the networks, its configuration hash from the state directory, and C(wait): the
      provisioning waits).'
    type: dict
    suboptions:
      name:
        description:
        - Container name; defaults to V(bb-<slug>-bundle).
        type: str
      image:
        description:
        - The bundle image. Required with O(botbottle.bottle.sidecar_bundle#module:state=present).
        type: str
      daemons:
        description:
        - The daemons the bundle runs (its C(BOTTLE_DAEMONS)).
        type: list
        elements: str
        choices:
        - pipelock
        - egress
        - git-gate
        - supervise
        default:
        - egress
      env:
        description:
        - Extra environment of the bundle. Values may be secrets.
        type: dict
        default: {}
      mounts:
        description:
        - Bind mounts.
        type: list
        elements: dict
        default: []
        suboptions:
          source:
            description:
            - Path on the managed host.
            type: path
            required: true
          target:
            description:
            - Path in the bundle.
            type: str
            required: true
          read_only:
            description:
            - Mount read-only.
            type: bool
            default: false
      extra_networks:
        description:
        - Existing networks the bundle also joins (the test suite's test internet, for example).
        type: list
        elements: str
        default: []
      published_ports:
        description:
        - Bundle ports to publish on the host; Docker chooses the host port.
        type: list
        elements: dict
        default: []
        suboptions:
          container_port:
            description:
            - The bundle's port.
            type: int
            required: true
          host_ip:
            description:
            - Host address to publish on (a per-bottle loopback address for smolmachines).
            type: str
            default: 127.0.0.1
      publish_pool:
        description:
        - Where V(auto) takes an address from; a range inside C(127.0.0.0/8).
        type: str
        default: 127.77.0.0/16
      publish_ports:
        description:
        - The bundle ports published on O(botbottle.bottle.sidecar_bundle#module:publish_address). Default - the
          agent-facing port of each daemon in O(bundle.daemons) (the proxy 8888 - egress, or pipelock in front of
          it -, git-gate 9418, supervise 9100).
        type: list
        elements: int
      cap_add:
        description:
        - Capabilities of the bundle. C(NET_ADMIN) installs the proxy chain's redirect rule.
        type: list
        elements: str
        default:
        - NET_ADMIN
      restart_policy:
        description:
        - Docker restart policy. The default V(no) keeps a bundle whose daemon died stopped (fail closed).
        type: str
        choices:
        - 'no'
        - on-failure
        - unless-stopped
        - always
        default: 'no'
      health_timeout:
        description:
        - Seconds to wait for every daemon to be healthy.
        type: int
        default: 60
      memory:
        description:
        - Memory limit of the bundle (Docker syntax, for example V(1g)). The default is sized from a measurement
          of its daemons under load (docs/architecture.md, "Limits"), with headroom; empty is that default too.
        - A new limit on a running bundle is applied in place (C(docker update)); nothing is recreated or restarted.
        type: str
        default: 1g
      log_max_size:
        description:
        - Size at which Docker rotates the bundle's log (Docker syntax, for example V(10m)), when the engine logs
          to C(json-file), its default. Egress writes each decision there as well as to its audit file (about 380
          MB a million requests unbounded); the audit file is the record, kept and archived, the log a view for
          C(docker logs).
        - Another default driver of the engine (C(local), which rotates on its own, C(journald), C(syslog), ...)
          is left alone. An empty string leaves the engine's setting.
        - Docker cannot change a container's log settings, so a new bound recreates the bundle (it holds no agent
          work; its state is on the host). A bundle made before this option existed is recreated once, at its next
          launch.
        type: str
        default: 10m
      log_max_files:
        description:
        - How many log files Docker keeps with O(bundle.log_max_size) (the one being written included).
        type: int
        default: 3
    required: true
"""

    CONTAINER = r"""
options:
  container:
    description: 'The agent container (docker, required there): the options of M(botbottle.bottle.bottle_agent)
      but those bottle_launch sets (its network, address and proxy from the networks and the bundle).'
    type: dict
    suboptions:
      name:
        description:
        - Container name; defaults to V(bb-<slug>-agent).
        type: str
      image:
        description:
        - The agent image. Required with O(botbottle.bottle.bottle_agent#module:state=present).
        type: str
      env:
        description:
        - Environment of the agent that is not secret (the policy's and the agent's C(env)).
        type: dict
        default: {}
      secret_env:
        description:
        - Environment values the agent may hold but must never send (an API key it uses legitimately). Kept out
          of logs and diff output; pipelock's DLP is told about them separately.
        type: dict
        default: {}
      user:
        description:
        - User (uid:gid) the agent runs as; root (V(0), V(root)) is refused.
        type: str
        default: 1000:1000
      memory:
        description:
        - Memory limit (Docker syntax, for example V(4g)); V(0) for none. Past it the kernel kills a process of
          the agent inside the agent's own cgroup (counted as an OOM kill by M(botbottle.bottle.bottle_info)).
        - A new limit on a running agent is applied in place (C(docker update)), without recreating the container;
          removing the limit recreates it (its work kept first, with O(container.work_archive_root)).
        type: str
        default: 4g
      cpus:
        description:
        - How many CPUs the agent may use (Docker's C(--cpus)); V(0) for no limit. More than the engine has is lowered
          to what it has, with a warning. Applied in place like O(container.memory).
        type: float
        default: 2
      pids_limit:
        description:
        - Most processes and threads the agent may have. Applied in place like O(container.memory).
        type: int
        default: 512
      work_archive_root:
        description:
        - Before a container that differs from these options is recreated, keep the agent's work (unpushed commits
          and stash, uncommitted and untracked files, the loose files of C(~/work); see M(botbottle.bottle.bottle_remove))
          in an archive under this folder, C(<work_archive_root>/<slug>-<UTC time>/work/). Work that cannot be kept
          fails the module with the container left as it was.
        - Unset, a recreate keeps nothing.
        type: path
      work_max_bytes:
        description:
        - The most the work kept before a recreate may take; what would pass it is skipped and listed.
        type: int
        default: 268435456
"""

    PROVISION = r"""
options:
  provision:
    description: 'The agent''s files: the options of M(botbottle.bottle.bottle_provision) but those bottle_launch
      sets (the target and bundle, and the git-gate host from the bundle). When the bundle runs supervise, supervise''s
      MCP server joins O(provision.mcp_servers). On smolmachines it runs only when O(boot), over C(smolvm machine
      exec).'
    type: dict
    suboptions:
      ca_cert_path:
        description:
        - Path on the managed host of the bottle CA certificate (the bundle writes C(<state>/ca/bottle-ca.pem)).
        type: path
      prompt:
        description:
        - The agent's prompt (Markdown), written as Claude Code's user memory.
        type: str
      skills:
        description:
        - Skills by name (letters, digits, C(-), C(_)) to Markdown.
        type: dict
        default: {}
      agent_user:
        description:
        - The agent's user in the agent image.
        type: str
        default: agent
      agent_home:
        description:
        - The agent user's home directory.
        type: str
        default: /home/agent
      git_gate:
        description:
        - The bottle's git-gate as the C(resolve_bottle) filter returns it (C(user), C(repos) with their C(name)
          and C(aliases)). Written as the agent's system git config (C(/etc/gitconfig), owned by root) - the user,
          and C(url.<gate>.insteadOf) rewrites that send every spelling of each declared upstream (ssh, scp-style,
          https) to C(git://<gate_host>:9418/<name>.git) for fetch and push; no credential helper.
        type: dict
      mcp_servers:
        description:
        - 'MCP servers by name, each as Claude Code''s C(mcpServers) entry (for example C({type: http, url: http://172.29.0.2:9100/mcp})
          for the bundle''s supervise). Set in C(~/.claude.json) of O(provision.agent_user) (mode 0600); other servers
          and keys there are left alone.'
        type: dict
        default: {}
      model:
        description:
        - The agent's model credential as the C(resolve_bottle) filter returns it (its C(model)) - C(env), the variable
          the agent holds the placeholder in (V(ANTHROPIC_API_KEY) or V(CLAUDE_CODE_OAUTH_TOKEN); for O(provision.kind=codex)
          V(OPENAI_API_KEY)), C(placeholder), its value, and C(host), the model API's host (used by O(provision.kind=codex));
          other keys are ignored. Only the placeholder reaches the agent (the real credential stays with the firewall);
          a value shaped like an Anthropic key (C(sk-ant-...)) is refused.
        - Omitted - C(~/.claude.json) gets no onboarding or API-key state (the user logs in inside the agent).
        type: dict
      kind:
        description:
        - The agent's kind (the agent definition's C(kind), the C(resolve_bottle) filter's C(kind)) - which CLI's
          files are written (plugins/module_utils/agent_kinds.py, one adapter per kind).
        - V(claude-code) - the prompt in C(~/.claude/CLAUDE.md), skills in C(~/.claude/skills/<name>/SKILL.md),
          O(provision.mcp_servers) and O(provision.model) in C(~/.claude.json).
        - V(codex) - the prompt in C(~/.codex/AGENTS.md), skills in C(~/.codex/skills/<name>/SKILL.md), and C(~/.codex/config.toml)
          (mode 0600, the bottle's, rewritten whole) - C(sandbox_mode = "danger-full-access") (the bottle is the
          sandbox), the start-up calls to chatgpt.com and api.github.com off, O(provision.mcp_servers) as C([mcp_servers.<name>]),
          and with O(provision.model) a model provider that sends the placeholder in C(OPENAI_API_KEY) as a Bearer
          C(Authorization) header to C(https://<model host>/v1).
        type: str
        choices:
        - claude-code
        - codex
        default: claude-code
      bundle_health_timeout:
        description:
        - Seconds to wait for O(botbottle.bottle.bottle_provision#module:bundle) (its CA, then its health).
        type: int
        default: 60
    default: {}
"""

    RELAY = r"""
options:
  relay:
    description: 'smolmachines: the host ends of the VM''s sockets - the options of M(botbottle.bottle.bottle_socket_relay)
      but those bottle_launch sets (the bottle, the address and the daemons).'
    type: dict
    suboptions:
      python:
        description:
        - The Python that runs the relay. Default - the one running this module.
        type: path
      timeout:
        description:
        - Seconds a new relay has to listen on every socket before the module fails with its log.
        type: float
        default: 10
    default: {}
"""

    ARCHIVE = r"""
options:
  archive:
    description: 'smolmachines (required there): the agent image as a file smolvm boots - the options of M(botbottle.bottle.bottle_image_archive).'
    type: dict
    suboptions:
      image:
        description:
        - The image reference (or id) in the local image cache.
        type: str
        required: true
      cache_dir:
        description:
        - Where archives are kept on the managed host (created with mode 0700).
        type: path
        default: ~/.bot-bottle/images
      prune:
        description:
        - Remove archives of images that have no tag any more, and stale temporary files.
        type: bool
        default: true
"""

    MACHINE = r"""
options:
  machine:
    description: 'smolmachines: the agent VM - the options of M(botbottle.bottle.smolvm_machine) but those bottle_launch
      sets (no network; the relay''s sockets mounted and its guest end the workload, as root; the image from O(archive);
      started when O(boot)). The relay''s guest env joins O(machine.env).'
    type: dict
    suboptions:
      env:
        description:
        - Environment of the machine's workload; no secret (use O(machine.secret_env)). Keys are variable names;
          values hold no NUL and no line break. Applied with C(machine update -e) when it changes.
        type: dict
        default: {}
      secret_env:
        description:
        - Secret environment variables of the workload, by reference (C(--secret-env KEY=BOTBOTTLE_SECRET_KEY)).
          The values live only in the environment of the C(smolvm machine start) the module runs; smolvm persists
          the reference, never the value.
        type: dict
        default: {}
      secret_files:
        description:
        - Secret environment variables read from absolute host file paths at each start (C(--secret-file KEY=PATH));
          only the path is persisted.
        type: dict
        default: {}
      cpus:
        description:
        - Maximum vCPUs. Unset leaves smolvm's default (4) at create and the current value after.
        type: int
      memory:
        description:
        - Maximum memory in MiB. Unset leaves smolvm's default (8192) at create and the current value after.
        type: int
      labels:
        description:
        - Labels of the machine (C(--label KEY=VALUE), read back with C(machine ls --json)). smolvm has no way to
          change labels, so a change recreates the machine.
        - The keys C(io.botbottle.env-hash) and C(io.botbottle.create-spec) are reserved.
        type: dict
        default: {}
      stop_timeout:
        description:
        - Seconds the workload gets after its stop signal when the module stops the machine (C(--timeout)).
        type: int
      smolvm_path:
        description:
        - The smolvm binary. Default - C(smolvm) on PATH, else C(smol/smol-vmm) of the C(smolmachines) wheel installed
          for the Python that runs this module.
        type: path
      state_dir:
        description:
        - smolvm's C(--state-dir) - keep all smolvm state under this directory instead of the user's default ones.
          Linux only (smolvm 1.32 says so) - ignored, with a warning, elsewhere. Tests use it to stay apart.
        type: path
    default: {}
"""
