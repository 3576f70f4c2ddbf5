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
    the launch playbook C(botbottle.bottle.bottle) before an approval.
  - O(decision=approve) of a C(block) report, and O(decision=reject), change no policy; they record the decision and the note.
  - A C(release) proposal is the firewall's, not the agent's - with C(firewall.dlp_action=supervise) in the policy, egress
    holds a request its DLP refused and asks that it be sent once; the proposal names C(host), C(method), C(path) (query
    values removed), the DLP C(rule), C(where) it was found and a redacted C(excerpt). O(decision=approve) changes no
    policy and no file but the proposal - egress sends that one request, once; O(decision=reject) (with O(note), which
    egress may show in its refusal) or no decision within C(firewall.dlp_supervise_timeout) seconds (default 120)
    refuses it with a 403. A release cannot be modified. The agent sees only its status.
  - A change (O(changes)) narrows what the agent asked and never widens it. Each entry of C(matches) is merged
    over the entry the agent asked at the same position - a key the change leaves out keeps the agent's value
    (V({"matches":[{"methods":["GET"]}]}) on a request for paths C(/repos/our-org/) with GET and POST keeps the
    paths and allows GET only), C(null) for a key removes it, C(null) for an entry drops that entry, and the change
    must have as many entries as the request. The result must allow no request the asked entry did not - paths
    inside the asked ones (an exact path or a longer prefix inside an asked prefix, an exact path an asked regex
    matches, a regex only as asked), methods among the asked ones, the asked headers kept. A change that would drop
    or widen a restriction is refused naming each one; to allow more, reject with a note and let the agent ask
    again. Without asked C(matches) (every request allowed), the change's C(matches) are taken as given.
  - C(host) may be changed to another single host (the operator's choice, recorded in the audit log), but to a
    wildcard only inside the wildcard the agent asked for (V(*.api.example.com) for V(*.example.com)); V(*.example.com)
    for V(api.example.com) is refused - a wildcard the operator means belongs in the policy's C(allowed_domains).
  - O(scope=agent) approves a C(domain) or C(route) proposal for every bottle of the proposal's agent (its
    C(meta.json)) under O(state_root) - each is rewritten and reloaded as the proposal's bottle is and gets an
    C(approved) line with C(scope=agent) and C(from) (the proposal id) in its audit log - and records it in
    C(<state_root>/../agents/<agent>/supervise-approved.json) (C(~/.bot-bottle/agents/<agent>/)), which the role merges
    into every later bottle of that agent (after the bottle's own approvals). Teardown keeps it; remove an entry
    there to stop giving it to new bottles. When one of the bottles cannot take the approval (no C(bundle-source.json),
    a credential or a route of its own in the way), nothing is written.
  - A C(route) proposal may name a credential the bottle already holds for another host (the model key, say,
    which serves C(api.anthropic.com)); approving it would send that credential to the host the agent chose. Each
    listed route proposal carries C(credential) and C(credential_serves), the hosts that credential serves in the
    bottle's policy (its C(bundle-source.json) with the approvals merged), computed here from the operator's files
    and never taken from the proposal. Approving a credential for a host it does not serve yet is refused unless
    O(bind_new_host=true); a credential that serves no host yet, or serves that host already, needs no choice. With
    O(scope=agent) this holds in each bottle of the agent. The approval records C(credential), C(credential_serves)
    and C(bound_new_host) in the proposal and its audit line.
  - Every decision and modification is appended to the bottle's audit log C(supervise/audit.jsonl). The supervise
    daemon's uid can write that folder - an C(audit.jsonl) (or a C(proposals/)) that is a symlink, or not a regular file
    with one link, is refused, naming it, and never written through.
  - The decision logic is C(module_utils/supervise_decide) (C(list_all), C(decide)), shared with the operator's
    console.
  - Deciding a C(release) after egress stopped holding its request only records the decision (a warning says so).
  - What an agent wrote is data. RV(shown) gives each proposal (or the decision) as lines for a terminal - control
    characters, terminal escape sequences and bidi overrides escaped, lengths bounded; print those rather than the
    raw fields. An approval whose rendered C(egress.json) the running bundle's egress refuses (its own parser) writes
    nothing; a reload egress did not take fails, puts the files back and leaves the proposal pending.
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
      - A change only narrows - C(matches) entries are merged over the asked ones, a widening is refused (see the
        description).
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
  scope:
    description:
      - V(bottle) decides for the proposal's bottle.
      - V(agent) (with O(decision=approve) of a C(domain) or C(route) proposal) approves it for every bottle of the
        proposal's agent under O(state_root), and for the bottles of that agent launched later.
    type: str
    choices: [bottle, agent]
    default: bottle
  bind_new_host:
    description:
      - With O(decision=approve) of a C(route) proposal whose credential already serves other hosts (C(credential_serves)
        in the listing), send that credential to the proposal's host too. Without it such an approval is refused,
        naming the credential and the hosts it serves.
      - Not needed when the credential serves no host yet or already serves the proposal's host.
    type: bool
    default: false
  lock_timeout:
    description:
      - A decision holds the bottle's lock while it writes (see M(botbottle.bottle.bottle_launch)
        O(botbottle.bottle.bottle_launch#module:lock_timeout)); a launch or teardown of the bottle under way is waited
        for at most this many seconds, after which the module fails naming it, with nothing written.
    type: int
    default: 300
  revoke_agent:
    description:
      - Take back an agent-wide approval (one given with O(scope=agent)) of this agent - the host O(revoke_host) names,
        as a domain, a route or both - from C(~/.bot-bottle/agents/<agent>/supervise-approved.json), so its later
        bottles no longer get it. A running bottle of the agent keeps what it was given until it is relaunched or torn
        down. Refused, naming what the file holds, when it holds no approval of that host.
      - Not with O(decision).
    type: str
  revoke_host:
    description: The host whose agent-wide approval O(revoke_agent) takes back.
    type: str
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

- name: The agent asked GET and POST under /repos/our-org/ - allow GET only, the paths stay as asked
  botbottle.bottle.bottle_supervise:
    slug: demo
    decision: approve
    id: 9a1b2c3d4e5f6072
    changes:
      matches: [{methods: [GET]}]

- name: Allow this host for every bottle of the agent, now and later
  botbottle.bottle.bottle_supervise:
    slug: demo
    decision: approve
    id: 3f9c2a7d41be0c55
    scope: agent

- name: The agent asked for a route with ANTHROPIC_API_KEY (which serves api.anthropic.com) to another host - meant
  botbottle.bottle.bottle_supervise:
    slug: demo
    decision: approve
    id: 9a1b2c3d4e5f6073
    bind_new_host: true

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
    - {slug: demo, id: 9a1b2c3d4e5f6073, kind: route, status: pending, host: llm.example.net,
       auth_ref: ANTHROPIC_API_KEY, credential: ANTHROPIC_API_KEY, credential_serves: [api.anthropic.com],
       justification: "..."}
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
reload:
  description: What became of the reload (V(reloaded), or why the bundle was not reloaded).
  returned: with O(decision)
  type: str
also:
  description: With O(scope=agent), the other bottles of the agent the approval was applied to.
  returned: with O(scope=agent)
  type: list
  elements: dict
  sample:
    - {slug: demo-2, changed: true, reloaded: true, reload: reloaded, config_hash: 5d41402abc4b2a76...}
config_hash:
  description: The bottle's configuration hash after an approval that changed it.
  returned: when an approval changed the configuration
  type: str
shown:
  description:
    - The proposals listed (or the decision recorded), as lines for a terminal. What the agent wrote is escaped
      (control characters, escape sequences and bidi overrides shown as C(\x1b), C(\u202e)) and bounded, so a
      playbook can print them as they are. Proposal files not trusted follow, each as C(untrusted) and why.
  returned: always
  type: list
  elements: str
  sample:
    - 'demo 3f9c2a7d41be0c55 pending domain pypi.org - "need the package index"'
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils import agent_text, bottle_lock, naming
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_decide as sd
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, get_docker_client)
from ansible_collections.botbottle.bottle.plugins.module_utils.supervise_store import SuperviseError


SHOWN_LIMIT = 600


def shown_lines(proposal):
    """A proposal as lines for a terminal: what the agent wrote escaped and bounded (agent_text.terminal)."""
    def t(value, limit=SHOWN_LIMIT):
        return agent_text.terminal(value, limit)
    head = "%s %s %s %s" % (t(proposal.get("slug"), 80), t(proposal.get("id"), 40), t(proposal.get("status"), 20),
                            t(proposal.get("kind"), 20))
    decided = " -> %s" % t(proposal["note"]) if proposal.get("note") else ""
    if proposal.get("kind") == "release":
        return ["%s: %s %s%s" % (head, t(proposal.get("method"), 20), t(proposal.get("host"), 260),
                                 t(proposal.get("path"))),
                "DLP rule %s in %s%s" % (t(proposal.get("rule"), 200), t(proposal.get("where"), 200), decided),
                t(proposal.get("excerpt"))]
    what = t(proposal.get("host") or proposal.get("url") or "", 2100)
    if proposal.get("auth_ref"):
        what += " auth_ref=%s" % t(proposal["auth_ref"], 80)
    if proposal.get("auth"):
        what += " auth=%s" % t(json.dumps(proposal["auth"], sort_keys=True))
    if proposal.get("matches"):
        what += " matches=%s" % t(json.dumps(proposal["matches"], sort_keys=True), 2000)
    if proposal.get("reason_seen"):
        what += " saw \"%s\"" % t(proposal["reason_seen"])
    lines = ["%s %s - \"%s\"%s" % (head, what, t(proposal.get("justification") or ""), decided)]
    serves = proposal.get("credential_serves") or []
    if proposal.get("kind") == "route" and proposal.get("credential") and serves:
        line = "| credential %s already serves: %s" % (t(proposal["credential"], 80), t(", ".join(serves), 2000))
        if str(proposal.get("host", "")).lower() not in serves:
            line += " (approving for %s needs -e bind_new_host=true)" % t(proposal.get("host"), 260)
        lines.append(line)
    return lines


def reload_line(decision, result):
    """What happened to the running bundle, in words (never ``False ()``)."""
    said = agent_text.terminal(result.get("reload") or "", SHOWN_LIMIT).strip()
    if result.get("reloaded"):
        return "bundle: reloaded" + (" (%s)" % said if said and said != "reloaded" else "")
    if said:
        return "bundle: not reloaded (%s)" % said
    if decision == "modify":
        return "bundle: not reloaded (the ask stays pending: nothing changes in the bottle until it is approved)"
    if decision == "reject":
        return "bundle: not reloaded (a rejection changes nothing in the bottle)"
    if not result.get("changed"):
        return "bundle: not reloaded (already decided this way: nothing changed)"
    return "bundle: not reloaded (this approval changes no configuration)"


def main():
    argument_spec = dict(
        slug=dict(type="str"),
        state_root=dict(type="path", default=naming.DEFAULT_STATE_ROOT),
        decision=dict(type="str", choices=["approve", "reject", "modify"]),
        id=dict(type="str"),
        note=dict(type="str", default=""),
        changes=dict(type="dict", default={}),
        tokens=dict(type="dict", default={}, no_log=True),
        status=dict(type="str", choices=list(sd.LIST_STATUSES), default="pending"),
        reload=dict(type="bool", default=True),
        scope=dict(type="str", choices=list(sd.SCOPES), default="bottle"),
        bind_new_host=dict(type="bool", default=False),
        lock_timeout=dict(type="int", default=bottle_lock.DEFAULT_TIMEOUT),
        revoke_agent=dict(type="str"),
        revoke_host=dict(type="str"),
    )
    argument_spec.update(DOCKER_COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_by={"decision": ("slug", "id")}, required_together=[("revoke_agent", "revoke_host")],
                           mutually_exclusive=[("revoke_agent", "decision")])
    p = module.params
    try:
        if p["revoke_agent"]:
            result = sd.revoke_agent_approval(p["state_root"], p["revoke_agent"], p["revoke_host"],
                                              check_mode=module.check_mode)
            module.exit_json(shown=["taken back: %s (%s)" % (", ".join(result["removed"]), result["path"]),
                                    result["note"]], **result)
        if not p["decision"]:
            proposals, problems = sd.list_all(p["state_root"], p["slug"], p["status"])
            shown = [line for proposal in proposals for line in shown_lines(proposal)]
            shown += ["untrusted: %s" % agent_text.terminal(why, SHOWN_LIMIT) for why in problems]
            module.exit_json(changed=False, proposals=proposals, problems=problems, reloaded=False, shown=shown)
        cached = []

        def client():
            # Connected on first use, by the module's own settings (docker_host, timeout).
            if not cached:
                cached.append(get_docker_client(module))
            return cached[0]

        # One change to the bottle at a time: an approval's writes wait for a launch or teardown under way.
        with bottle_lock.hold(p["state_root"], p["slug"], "approval", p["lock_timeout"]):
            result = sd.decide(p["state_root"], p["slug"], p["id"], p["decision"], note=p["note"],
                               changes=p["changes"], tokens=p["tokens"], reload=p["reload"],
                               check_mode=module.check_mode, scope=p["scope"], warn=module.warn,
                               client_factory=client, bind_new_host=p["bind_new_host"])
    except SuperviseError as exc:
        # The message may quote what the agent wrote (a host, a path): escaped for the terminal it is printed on.
        module.fail_json(msg=agent_text.terminal(str(exc), 8000), changed=exc.changed)
    except bottle_lock.BottleLocked as exc:
        module.fail_json(msg=str(exc), changed=False)
    result.pop("warnings", None)  # already given to module.warn
    result["shown"] = shown_lines(dict(result["proposal"], slug=p["slug"])) + [reload_line(p["decision"], result)]
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
