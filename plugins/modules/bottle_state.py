#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_state
short_description: A bottle's state directory and the bundle's configuration, in one step
version_added: 0.1.0
description:
  - Creates (or removes) C(<state_root>/<slug>/) on the managed host, mode 0700, with C(bundle/) (mounted
    read-only into the bundle at C(/etc/bottle)), C(private/<daemon>/) (mounted at C(/etc/bottle-private);
    the bundle's init stages each folder for its daemon alone), C(ca/) (where the bundle keeps the bottle CA)
    and C(audit/) (where egress keeps its decisions as JSON lines; its owner is then egress's uid).
  - With O(options.supervise_enabled), also C(supervise/), supervise's proposal store (mounted into the bundle only),
    mode 2770 (setgid, group-writable for the directory's group, so the operator records decisions there); the
    bundle hands it to supervise's uid, keeping that mode.
  - Renders the bundle's configuration from O(policy) and O(options) (C(plugins/module_utils/bundle_config.py),
    the same code M(botbottle.bottle.bottle_supervise) re-renders with after an approval) -
    C(bundle/egress.json) (the firewall), C(bundle/pipelock.yaml) (only with O(options.pipelock)),
    C(bundle/git-gate.json), C(bundle/upstream-ca.pem), C(bundle/supervise.json), and the private files
    C(private/egress/tokens.json), C(private/egress/secrets.json) and, with pipelock,
    C(private/pipelock/dlp-secrets.txt).
  - Writes only the files whose content differs (mode 0600, atomically), removes every other file under
    C(bundle/) and C(private/<daemon>/) (for example a C(pipelock.yaml) once pipelock is switched off), keeps
    what the files were rendered from in C(bundle-source.json) (no secret, not mounted), and writes
    C(meta.json) once (its creation time is kept on later runs).
  - Returns the configuration hash, computed from the files on disk once written, which
    M(botbottle.bottle.sidecar_bundle) takes as C(config_hash) to reload a running bundle when, and only when,
    its configuration changed.
author: botbottle developers (@botbottle)
extends_documentation_fragment:
  - botbottle.bottle.audit_archive
attributes:
  check_mode:
    support: full
    description:
      - Reports which files would change and the hash they would have; with O(state=absent) and O(archive_root),
        the archive that would be made (and fails as the real run would when an audit file cannot be read).
  diff_mode:
    support: full
    description:
      - First the hosts and routes the agent may reach, one a line, before and after (a host or route added or
        removed reads as one line of the diff; routes show the credential's name, never its value), then the
        changed non-secret files (C(bundle/*), C(bundle-source.json)) before and after.
  idempotent:
    support: full
    description: Files already right are left alone.
options:
  slug:
    description: The bottle's slug.
    type: str
    required: true
  state_root:
    description: Where bottles keep their state.
    type: path
    default: ~/.bot-bottle/state
  policy:
    description:
      - The bottle's resolved policy with the operator's approvals merged (filters C(botbottle.bottle.resolve_bottle)
        and C(botbottle.bottle.with_approvals)). Validated like a policy.
      - Only C(allowed_domains), C(egress), C(firewall) and C(pipelock) are read and kept in C(bundle-source.json);
        other keys (C(env), C(secret_env) ...) are ignored. Required with O(state=present).
    type: dict
  options:
    description: How the bundle runs, beside the policy.
    type: dict
    default: {}
    suboptions:
      pipelock:
        description: The optional pipelock hop runs in front of egress - render C(pipelock.yaml) and its DLP file.
        type: bool
        default: false
      ssrf_ip_allowlist:
        description: CIDRs the bundle may reach despite its SSRF protection (test networks only).
        type: list
        elements: str
        default: []
      upstream_ca:
        description: PEM text of extra CAs the bundle trusts for upstream TLS (empty for none).
        type: str
        default: ""
      git_gate:
        description: git-gate's configuration (C(resolve_bottle)'s C(git_gate.bundle_config)); empty for no repos.
        type: dict
        default: {}
      supervise:
        description: supervise's bounds (the policy's C(supervise), over the defaults C(wait_seconds=20), C(max_pending=20)).
        type: dict
        default: {}
      supervise_enabled:
        description:
          - Whether the bundle runs supervise. A policy whose C(firewall.dlp_action) is V(supervise) (hold a DLP hit
            for the operator) needs it, and is refused without it.
        type: bool
        default: true
  secrets:
    description: The agent's secret values (its C(secret_env) values), which the firewall's DLP refuses to let out. Never logged.
    type: list
    elements: str
    default: []
  tokens:
    description: Route credentials by C(token_ref), for egress alone. Never logged or shown in a diff.
    type: dict
    default: {}
  meta:
    description: Written to C(meta.json) when that file does not exist yet.
    type: dict
    default: {}
  state:
    description:
      - V(absent) removes the whole state directory - with O(archive_root), after archiving the bottle's audit.
    type: str
    choices: [present, absent]
    default: present
  archive_root:
    description:
      - With O(state=absent), first copy the bottle's audit (C(supervise/audit.jsonl), C(supervise/proposals/*.json),
        C(audit/egress.jsonl) and every rotated C(.1), C(.2) ..., C(supervise-approved.json)) to
        C(<archive_root>/<slug>-<YYYYMMDDTHHMMSSZ>/), in the state directory's layout, with a C(meta.json) (the
        bottle's, plus C(archived), C(host), C(files), C(skipped)); see C(plugins/module_utils/audit_archive.py).
      - A file that cannot be read, or an archive that cannot be written, fails the module and removes nothing.
        A state directory without any audit file gets no archive.
      - Unset, nothing is archived.
    type: path
"""

EXAMPLES = r"""
- name: State of bottle demo
  botbottle.bottle.bottle_state:
    slug: demo
    policy:
      allowed_domains: [api.anthropic.com]
      egress:
        routes:
          - {host: api.github.com, auth: {scheme: Bearer, token_ref: GITHUB_TOKEN}}
    options:
      pipelock: false
      supervise: {wait_seconds: 30}
    secrets: ["{{ vault_npm_token }}"]
    tokens:
      GITHUB_TOKEN: "{{ vault_github_token }}"
    meta: {slug: demo, agent: demo}
  register: state

- name: Remove it, keeping its audit (and archives of the last 30 days)
  botbottle.bottle.bottle_state:
    slug: demo
    state: absent
    archive_root: ~/.bot-bottle/archive
    archive_keep_days: 30
"""

RETURN = r"""
path:
  description: The bottle's state directory.
  returned: always
  type: str
config_hash:
  description:
    - SHA-256 over the names and contents of the files under C(bundle/) and C(private/<daemon>/), read back from
      disk after writing (in check mode, of the files that would be written).
  returned: when state=present
  type: str
changed_files:
  description: Files and folders written or removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
archive:
  description:
    - With O(archive_root) - where the audit was archived (C(path), V(null) when there was no audit to keep), the
      files copied (relative paths), those C(skipped) (a link or other non-regular file, with why), and the archives
      C(pruned) by the retention settings (in check mode, what would be).
  returned: when state=absent and archive_root is set
  type: dict
  sample: {path: /home/me/.bot-bottle/archive/demo-20261202T101500Z,
           files: [supervise/audit.jsonl, audit/egress.jsonl], skipped: [], pruned: []}
policy_changes:
  description:
    - What the agent may reach that changes with this run (in check mode, would change), against what the state
      directory was last rendered from (nothing for a new bottle). Host names, and routes as one line each
      (host, C(auth <scheme> <token_ref>), C(match [...])) - never a credential value.
  returned: when state=present
  type: dict
  contains:
    hosts_added:
      description: Hosts the agent may reach from now on (allowed_domains and route hosts).
      type: list
      elements: str
    hosts_removed:
      description: Hosts it may no longer reach.
      type: list
      elements: str
    routes_added:
      description: Routes added or changed (their new line).
      type: list
      elements: str
    routes_removed:
      description: Routes removed or changed (their old line).
      type: list
      elements: str
    other_added:
      description: Firewall host lists (C(passthrough <host>), C(trusted <host>)) and C(ports ...) added.
      type: list
      elements: str
    other_removed:
      description: The same, removed.
      type: list
      elements: str
  sample: {hosts_added: [pypi.org], hosts_removed: [], routes_added: ["api.github.com auth Bearer GH_TOKEN"],
           routes_removed: [], other_added: [], other_removed: []}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils import audit_archive, naming, state_write


def main():
    module = AnsibleModule(argument_spec=dict(state_write.STATE_SPEC), required_if=[("state", "present", ("policy",))],
                           supports_check_mode=True)
    p = module.params
    error = naming.slug_error(p["slug"])
    if error:
        module.fail_json(msg="slug: " + error)
    root = naming.state_dir(p["slug"], p["state_root"])

    if p["state"] == "absent":
        error = audit_archive.retention_error(p["archive_keep_days"], p["archive_keep"]) if p["archive_root"] else None
        if error:
            module.fail_json(msg=error)
        try:
            result = audit_archive.remove_state(root, p["slug"], p["archive_root"], p["archive_keep_days"],
                                                p["archive_keep"], dry_run=module.check_mode, warn=module.warn)
        except audit_archive.ArchiveError as exc:
            module.fail_json(msg="bottle %s: %s" % (p["slug"], exc), path=root)
        module.exit_json(**result)

    module.exit_json(**state_write.present(module))


if __name__ == "__main__":
    main()
