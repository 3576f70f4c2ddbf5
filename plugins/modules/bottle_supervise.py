#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_supervise
short_description: List and decide the proposals an agent made through supervise
version_added: 0.1.0
description:
  - An agent asks for more through the bundle's supervise MCP server (a domain, an egress route, or a
    report of a refusal it believes is wrong); each ask is a proposal in the bottle's store,
    C(<state_root>/<slug>/supervise/proposals/<id>.json). This module, run on the managed host, lists them
    and records the operator's decision (O(decision)), with a note the agent is shown.
  - O(decision=approve) of a C(domain) or C(route) proposal changes the running bottle without a restart - it adds the
    host (and the route) to C(<state_root>/<slug>/supervise-approved.json), which the role merges into the
    policy on every later run; merges it the same way into the policy the bottle's files were rendered from
    (C(bundle-source.json), written by M(botbottle.bottle.bottle_state)), renders and writes the files with the
    same code as M(botbottle.bottle.bottle_state), sends the bundle C(SIGHUP) and records the configuration hash
    (read back from disk) in it, as M(botbottle.bottle.sidecar_bundle) does; a later run of the role then
    changes nothing.
  - A bottle whose state has no C(bundle-source.json) (launched by an older release) must be relaunched with
    C(playbooks/bottle.yml) before an approval.
  - O(decision=approve) of a C(block) report, and O(decision=reject), change no policy; they record the decision and the note.
  - A C(release) proposal is the firewall's, not the agent's - with C(firewall.dlp_action=supervise) in the policy, egress
    holds a request its DLP refused and asks that it be sent once; the proposal names C(host), C(method), C(path) (query
    values removed), the DLP C(rule), C(where) it was found and a redacted C(excerpt). O(decision=approve) changes no
    policy and no file but the proposal - egress sends that one request, once; O(decision=reject) (with O(note), which
    egress may show in its refusal) or no decision within C(firewall.dlp_supervise_timeout) seconds (default 120)
    refuses it with a 403. A release cannot be modified. The agent sees only its status.
  - Every decision and modification is appended to the bottle's audit log C(supervise/audit.jsonl).
  - Deciding a C(release) after egress stopped holding its request only records the decision (a warning says so).
author: botbottle developers (@botbottle)
extends_documentation_fragment:
  - botbottle.bottle.docker
attributes:
  check_mode:
    support: full
    description: Reports what a decision would change, writing nothing and sending no signal.
  diff_mode:
    support: full
    description: Shows the proposal and the rendered configuration files before and after (never credentials).
  idempotent:
    support: full
    description: Deciding a proposal again the same way changes nothing.
options:
  slug:
    description: The bottle. Required with O(decision); without it the module lists every bottle under O(state_root).
    type: str
  state_root:
    description: Where bottles keep their state.
    type: path
    default: ~/.bot-bottle/state
  decision:
    description:
      - V(approve) / V(reject) decide proposal O(id) with O(note); O(changes) edits it first.
      - V(modify) edits a pending proposal (O(changes)) without deciding it.
      - Without a decision the module lists proposals (O(status) filters them) and changes nothing.
    type: str
    choices: [approve, reject, modify]
  id:
    description: The proposal (16 hex characters). Required with O(decision).
    type: str
  note:
    description: The operator's answer, shown to the agent.
    type: str
    default: ""
  changes:
    description:
      - New values for the proposal's fields before it is approved (or with O(decision=modify)) - C(host) for a
        domain; C(host), C(auth) (C(scheme), C(token_ref), and C(header)/C(value) for scheme C(header)) and
        C(matches) for a route, as in a policy's C(egress.routes); nothing for a C(block) report or a C(release).
        Validated like a policy. With O(decision=approve) or O(decision=modify).
    type: dict
    default: {}
  tokens:
    description:
      - Credentials by C(token_ref), needed to approve a route whose credential the bottle does not hold yet.
        Written for egress alone (C(private/egress/tokens.json)); never logged or shown in a diff.
    type: dict
    default: {}
  status:
    description: Without O(decision), the status to list; V(all) lists every proposal.
    type: str
    choices: [pending, approved, rejected, all]
    default: pending
  reload:
    description: Reload a running bundle after an approval that changed its configuration.
    type: bool
    default: true
notes:
  - The agent cannot reach the store (it is mounted into the bundle only); a decision written into a
    proposal file by anything but this module changes no policy, as approvals take effect only through
    C(supervise-approved.json) and the rendered files, which are not mounted anywhere writable.
"""

EXAMPLES = r"""
- name: Pending proposals of every bottle on this host
  botbottle.bottle.bottle_supervise:
  register: pending

- name: Allow the host the agent asked for
  botbottle.bottle.bottle_supervise:
    slug: demo
    decision: approve
    id: 3f9c2a7d41be0c55
    note: ok for this sprint

- name: Approve a route, narrowed to GET, with its credential
  botbottle.bottle.bottle_supervise:
    slug: demo
    decision: approve
    id: 9a1b2c3d4e5f6071
    changes:
      matches: [{methods: [GET]}]
    tokens:
      GITHUB_TOKEN: "{{ vault_github_token }}"

- name: Say no
  botbottle.bottle.bottle_supervise:
    slug: demo
    decision: reject
    id: 3f9c2a7d41be0c55
    note: use the internal mirror instead
"""

RETURN = r"""
proposals:
  description: Without O(decision), the proposals (each with its C(slug)), oldest first.
  returned: when no decision is given
  type: list
  elements: dict
  sample:
    - {slug: demo, id: 3f9c2a7d41be0c55, kind: domain, status: pending, host: pypi.org, justification: "..."}
    - {slug: demo, id: 8e0d6b5a4c3f2e1d, kind: release, status: pending, host: api.example.com, method: POST,
       path: "/v1/upload?key=", rule: github-pat, where: "body json $.token", excerpt: '{"token": "ghp_****"}'}
problems:
  description: Proposal files that could not be trusted (not JSON, wrong id, unknown status), with why.
  returned: always
  type: list
  elements: str
proposal:
  description: The proposal after the decision (or as it would be, in check mode).
  returned: with O(decision)
  type: dict
changed_files:
  description: Files an approval wrote (or would write).
  returned: with O(decision)
  type: list
  elements: str
reloaded:
  description: Whether the running bundle was told to reload its configuration.
  returned: always
  type: bool
config_hash:
  description: The bottle's configuration hash after an approval that changed it.
  returned: when an approval changed the configuration
  type: str
"""

import copy
import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config as bc
from ansible_collections.botbottle.bottle.plugins.module_utils import naming
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise as sv
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, DockerException, exec_in, find_container, get_docker_client)


def slugs_under(root):
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [n for n in names if naming.slug_error(n) is None and os.path.isdir(os.path.join(root, n, sv.STORE))]


def do_list(module):
    p = module.params
    root = p["state_root"]
    slugs = [p["slug"]] if p["slug"] else slugs_under(root)
    status = None if p["status"] == "all" else p["status"]
    proposals, problems = [], []
    for slug in slugs:
        found, bad = sv.list_proposals(naming.state_dir(slug, root), status)
        proposals.extend(dict(proposal, slug=slug) for proposal in found)
        problems.extend("%s: %s" % (slug, why) for why in bad)
    module.exit_json(changed=False, proposals=proposals, problems=problems, reloaded=False)


def reload_bundle(module, slug, new_hash, files):
    """SIGHUP the running bundle and record the hash it loads; wait until ``files`` are re-staged."""
    client = get_docker_client(module)
    container = find_container(client, naming.object_name(slug, "bundle"))
    if container is None or container.status != "running":
        return False, "bundle not running: the next playbooks/bottle.yml run starts it with this configuration"
    if (container.labels or {}).get(naming.LABEL_BOTTLE) != slug:
        module.fail_json(msg="container %s does not carry label %s=%s: not signalling what is not the bottle's"
                             % (container.name, naming.LABEL_BOTTLE, slug))

    def run(argv):
        return exec_in(container, argv, user="0")

    container.kill(signal="SIGHUP")
    bc.record_loaded_hash(run, new_hash)
    # bottle-init re-stages /etc/bottle and /etc/bottle-private for each daemon on SIGHUP; the daemons
    # then re-read their files. Wait until the staged copies are the new ones.
    check = bc.restaged_argv(files)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rc, _out, _err = run(check)
        if rc == 0:
            time.sleep(1)  # a daemon swaps its configuration right after the copy it watches changed
            return True, "reloaded"
        time.sleep(0.25)
    return True, "reload signalled; the staged configuration did not change within 15 s (see docker logs %s)" \
        % container.name


def decide(module):
    p = module.params
    state_dir = naming.state_dir(p["slug"], p["state_root"])
    if not os.path.isdir(sv.store_dir(state_dir)):
        module.fail_json(msg="bottle %s has no supervise store (%s): is the slug right, and does the bottle run "
                             "supervise (bottle_supervise_enabled)?" % (p["slug"], sv.store_dir(state_dir)))
    try:
        proposal = sv.read_proposal(state_dir, p["id"])
    except sv.SuperviseError as exc:
        module.fail_json(msg=str(exc))
    if proposal is None:
        module.fail_json(msg="bottle %s has no proposal %s: list them (no decision)" % (p["slug"], p["id"]))
    want = {"approve": "approved", "reject": "rejected", "modify": "pending"}[p["decision"]]
    result = dict(changed=False, reloaded=False, changed_files=[], proposal=proposal, problems=[])

    if proposal["status"] != "pending":
        if want == proposal["status"] and not p["changes"]:
            module.exit_json(**result)
        module.fail_json(msg="proposal %s was already %s on %s (note: %r); a decision is final - the agent can make "
                             "a new proposal" % (p["id"], proposal["status"], proposal.get("decided"),
                                                 proposal.get("note", "")))
    if p["decision"] == "modify" and not sv.EDITABLE[proposal["kind"]]:
        module.fail_json(msg="a %s proposal cannot be modified: %s; approve or reject it (with a note)" % (
            proposal["kind"], "it asks to send one held request as it is" if proposal["kind"] == "release"
            else "it has no field to change"))
    if p["decision"] == "modify" and not p["changes"]:
        module.fail_json(msg="decision=modify needs changes: the fields to change (%s)"
                             % ", ".join(sv.EDITABLE[proposal["kind"]]))
    try:
        updated, before = sv.apply_changes(proposal, p["changes"])
    except sv.SuperviseError as exc:
        module.fail_json(msg="changes: %s" % exc)
    stamp = sv.now()
    events = []
    if before:
        updated["modified"] = {"at": stamp, "before": before}
        events.append(dict(event="modified", by="operator", id=proposal["id"], kind=proposal["kind"], time=stamp,
                           before=before, after={k: updated.get(k) for k in before}))
    plan = None
    if want != "pending":
        updated.update(status=want, decided=stamp, note=p["note"])
        events.append(dict(event=want, by="operator", id=proposal["id"], kind=proposal["kind"], time=stamp,
                           note=p["note"], **{k: updated[k] for k in ("host", "url") if k in updated}))
        if want == "approved" and proposal["kind"] in sv.POLICY_KINDS:
            try:
                plan = sv.plan_approval(state_dir, updated, p["tokens"])
            except sv.SuperviseError as exc:
                module.fail_json(msg="cannot approve proposal %s: %s" % (p["id"], exc))
        if proposal["kind"] == "release" and sv.release_too_late(state_dir, proposal):
            module.warn("egress holds a request for %d s only (firewall.dlp_supervise_timeout) and proposal %s is "
                        "older: the request was already refused, so this decision is only recorded"
                        % (sv.release_hold(state_dir), proposal["id"]))
    result.update(changed=True, proposal=updated)
    if plan is not None:
        result["changed_files"] = plan.paths
    diffs = [dict(before_header="proposal %s" % proposal["id"], after_header="proposal %s" % proposal["id"],
                  before=proposal, after=updated)]
    if plan is not None:
        diffs.extend(plan.diff())
    if module._diff:
        result["diff"] = diffs
    if module.check_mode:
        module.exit_json(**result)

    # The configuration first, the decision last: when the agent sees "approved", the bottle allows it.
    if plan is not None and plan.changes:
        plan.apply()
    if plan is not None and plan.touches_config():
        # Hashed from disk, as bottle_state does: the role's next run computes the same value.
        result["config_hash"] = bc.config_hash(state_dir)
        if p["reload"]:
            written = [relative for relative, data in plan.changes.items() if data is not None]
            try:
                result["reloaded"], result["reload"] = reload_bundle(module, p["slug"], result["config_hash"], written)
            except (DockerException, bc.BundleConfigError) as exc:
                module.fail_json(msg="the configuration of bottle %s was updated but the bundle could not be "
                                     "reloaded (%s): re-run playbooks/bottle.yml for it; the proposal is still "
                                     "pending" % (p["slug"], exc), changed=True)
    sv.write_proposal(state_dir, updated)
    for event in events:
        sv.append_audit(state_dir, event)
    module.exit_json(**result)


def main():
    argument_spec = dict(
        slug=dict(type="str"),
        state_root=dict(type="path", default=naming.DEFAULT_STATE_ROOT),
        decision=dict(type="str", choices=["approve", "reject", "modify"]),
        id=dict(type="str"),
        note=dict(type="str", default=""),
        changes=dict(type="dict", default={}),
        tokens=dict(type="dict", default={}, no_log=True),
        status=dict(type="str", choices=["pending", "approved", "rejected", "all"], default="pending"),
        reload=dict(type="bool", default=True),
    )
    argument_spec.update(DOCKER_COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_by={"decision": ("slug", "id")})
    p = module.params
    if p["slug"]:
        error = naming.slug_error(p["slug"])
        if error:
            module.fail_json(msg="slug: " + error)
    if not p["decision"]:
        do_list(module)
    error = sv.id_error(p["id"])
    if error:
        module.fail_json(msg=error)
    if len(p["note"]) > 2000:
        module.fail_json(msg="note is %d characters long; keep it under 2000" % len(p["note"]))
    p["changes"] = copy.deepcopy(p["changes"])
    decide(module)


if __name__ == "__main__":
    main()
