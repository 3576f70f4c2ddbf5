#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_info
short_description: The bottles on a host
version_added: 0.1.0
description:
  - Lists the bottles of the managed host from what carries the C(io.botbottle.*) labels (containers,
    networks, smolvm machines) and from the state directories under O(state_root).
  - smolvm machines are read with C(smolvm machine ls --json) when the smolvm CLI is found (see
    O(smolvm_path)); without it RV(smolvm) says so and no machines are listed.
  - Read-only; used by the teardown playbook to decide what goes, and by the role's preflight to check
    that the images a launch needs are in the local image cache (O(images)).
author: botbottle developers (@botbottle)
extends_documentation_fragment:
  - botbottle.bottle.docker
attributes:
  check_mode:
    support: full
    description: Read-only; nothing changes.
  diff_mode:
    support: none
    description: Nothing to show, the module changes nothing.
  idempotent:
    support: full
    description: It only reads.
options:
  slug:
    description: Only this bottle.
    type: str
  agent:
    description: Only bottles of this agent.
    type: str
  state_root:
    description: Where bottles keep their state on the managed host.
    type: path
    default: ~/.bot-bottle/state
  images:
    description:
      - Image references to look up in the local image cache; reported in RV(images).
    type: list
    elements: str
    default: []
  health:
    description:
      - Report each bottle's C(health) from C(bottle-health --json) in its running bundle, and
        the count of its pending supervise proposals (C(<state_dir>/supervise/proposals/<id>.json) whose
        C(status) is C(pending), read as M(botbottle.bottle.bottle_supervise) reads them, so a link, an
        oversized or malformed file is not counted) as C(proposals_pending).
      - Also the OOM kills of its agent as C(agent_oom) - the C(oom_kill) count of the agent container's memory
        cgroup (cgroup v2 C(memory.events), v1 C(memory.oom_control)), read on the host, or inside the container
        when the host's view is not there. The kernel keeps no time, so a kill is dated by the first look that
        finds the count risen, recorded in C(<state_dir>/agent-oom.json) (not in check mode).
    type: bool
    default: false
  audit:
    description:
      - Report each bottle's recent firewall decisions by host as C(firewall), read from the end (at most
        O(audit_bytes), across the rotated C(egress.jsonl.1), C(.2) ... when the live file is shorter) of its audit
        C(<state_dir>/audit/egress.jsonl) - each C(host) with how many requests
        egress C(allowed), C(refused) (a policy rule; by which C(rules)), let go but whose upstream C(failed)
        (name resolution, connect, TLS verify, timeout, a 5xx status; by which C(failures)) and C(held) for the
        operator, and the C(last) decision's time, C(last_action) and C(last_rule), the most recent first. One
        request is one count (the CONNECT of a tunnel is not counted again). C(firewall_lines) has the same as
        printable lines (C(host allowed N, refused N (rules), failed upstream N (rules))), hosts shown as
        plain text.
    type: bool
    default: false
  audit_bytes:
    description: How much of the end of a bottle's firewall audit (its live and rotated files together) O(audit) reads.
    type: int
    default: 1048576
  archived:
    description:
      - Also list the archives of torn-down bottles under O(archive_root) (filtered by O(slug) and O(agent)) in
        RV(archives) - each with its C(meta.json) fields, the supervise C(asks) and C(decisions) and the firewall
        decisions C(allowed), C(refused), C(failed) (upstream) and C(held) (read by the same reader as O(audit), at most O(audit_bytes)
        of the end of its C(egress.jsonl) and rotated files), and C(firewall) by host.
    type: bool
    default: false
  archive_events:
    description:
      - With O(archived), each archive's supervise events too (C(events), oldest first) - the asks (C(proposed))
        and the decisions (C(modified), C(approved), C(rejected)) with their notes, as supervise wrote them.
    type: bool
    default: false
  archive_root:
    description: Where teardown archives bottles' audit (the role's C(bottle_archive_root)).
    type: path
    default: ~/.bot-bottle/archive
  older_than:
    description:
      - Only bottles created at least this long ago (C(created) from C(meta.json), else the oldest of its
        containers), written as a whole number and a unit - V(90m), V(2h), V(3d), V(1w). A bottle whose
        age is unknown never matches.
    type: str
  orphans:
    description:
      - Only orphans - labelled objects without a state directory (V(no-state)), or a state directory with
        no container, network or machine of its bottle (V(no-objects)).
    type: bool
    default: false
  smolvm:
    description: Look for smolvm machines (and report RV(smolvm)). V(false) skips the smolvm CLI entirely.
    type: bool
    default: true
  smolvm_path:
    description: The smolvm binary. Default - C(smolvm) on PATH, else the C(smolmachines) wheel's.
    type: path
  smolvm_state_dir:
    description: smolvm's C(--state-dir); smolvm's own default when unset.
    type: path
  loopback_pool:
    description:
      - With O(slug), report in RV(loopback) the loopback address the bottle's bundle publishes on (the
        smolmachines backend) - the one it has, else the one in its C(meta.json), else a free one of this
        pool chosen from a hash of the slug. Taken (never offered) - an address another bundle publishes on,
        one in any smolvm machine's allow list (a VM that outlived its bundle too), one in another
        bottle's C(meta.json). Read-only; nothing is reserved.
    type: str
  listeners:
    description:
      - With O(loopback_pool) and O(slug), also report in RV(loopback) (key C(listeners)) the host's TCP and UDP
        listeners a VM allowed to reach the bottle's loopback address could reach - on a wildcard address
        (C(0.0.0.0), C(::)), or on that address on a port not in O(bundle_ports). Read from
        C(/proc/net/{tcp,tcp6,udp,udp6}) on Linux, C(lsof -nP -iTCP -sTCP:LISTEN -iUDP) on macOS.
    type: bool
    default: false
  bundle_ports:
    description: The bundle's ports on the loopback address (not counted by O(listeners)).
    type: list
    elements: int
    default: [8888, 9418, 9100]
  agent_approvals:
    description:
      - Report in RV(agent_approvals), for each agent of the listed bottles, what the operator approved for every
        bottle of it (C(scope=agent), kept in C(~/.bot-bottle/agents/<agent>/supervise-approved.json)) and which of
        its bottles are not listed (C(left)) - what a teardown of the listed bottles leaves behind.
    type: bool
    default: false
  approvals_agent:
    description:
      - With O(slug), also report in RV(agent_approved) what the operator approved for every bottle of this agent
        (M(botbottle.bottle.bottle_supervise) with C(scope=agent)).
    type: str
"""

EXAMPLES = r"""
- name: Every bottle of agent demo
  botbottle.bottle.bottle_info:
    agent: demo
  register: found

- name: Their slugs
  ansible.builtin.debug:
    msg: "{{ found.bottles | map(attribute='slug') | list }}"
"""

RETURN = r"""
bottles:
  description: One entry per bottle, sorted by slug.
  returned: always
  type: list
  elements: dict
  sample:
    - slug: demo
      agent: demo
      backend: docker
      containers: [{name: bb-demo-bundle, component: bundle, status: running, health: healthy}]
      networks: [{name: bb-demo-net-int, component: net-int}]
      machines: []
      state_dir: /root/.bot-bottle/state/demo
      created: "2026-11-22T18:00:00Z"
      age_seconds: 7200
      orphan: null
      health: {pipelock: healthy, egress: healthy}
      proposals_pending: 0
      agent_oom: {kills: 1, last: "2026-12-07T08:12:40Z", count: 1, source: cgroup v1}
      firewall: [{host: pypi.org, allowed: 12, refused: 0, held: 0, last: 1764650000.5, last_action: allow,
                  last_rule: null, rules: {}}]
images:
  description: One entry per O(images) reference, in the order given.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: "botbottle/bundle:latest", present: true, id: "sha256:0123abcd"}
    - {name: "botbottle/agent:latest", present: false, id: null}
smolvm:
  description: Whether the smolvm CLI was found, and whether this host can boot its guests (and why not).
  returned: always
  type: dict
  sample: {available: true, path: /usr/local/bin/smolvm, reason: null,
           boot: {supported: false, reason: "this host's KVM is PVM ..."}}
archives:
  description: With O(archived), the archives of torn-down bottles, the newest first.
  returned: when O(archived)
  type: list
  elements: dict
  sample:
    - {slug: demo, agent: demo, policy: demo, backend: docker, created: "2026-12-01T09:00:00Z",
       archived: "2026-12-02T10:15:00Z", host: laptop, path: /home/me/.bot-bottle/archive/demo-20261202T101500Z,
       asks: 2, decisions: 1, allowed: 40, refused: 3, held: 0,
       firewall: [{host: pypi.org, allowed: 40, refused: 0, held: 0, last: 1764650000.5, last_action: allow,
                   last_rule: null, rules: {}}], problems: [],
       events: [{event: proposed, by: agent, id: 3f9c2a7d41be0c55, kind: domain, host: pypi.org,
                 time: "2026-12-01T09:30:00Z", justification: "pip install"}]}
approved:
  description:
    - With O(slug), what the operator approved through supervise for that bottle (C(supervise-approved.json) in
      its state directory, as M(botbottle.bottle.bottle_supervise) records it, for the C(with_approvals) filter);
      C({}) when nothing was approved.
  returned: when O(slug) is set
  type: dict
  sample: {domains: [registry.npmjs.org], routes: []}
agent_approved:
  description:
    - With O(approvals_agent), what the operator approved for every bottle of that agent (C(scope=agent) of
      M(botbottle.bottle.bottle_supervise), kept in C(<state_root>/../agents/<agent>/supervise-approved.json)).
  returned: when O(approvals_agent) is set
  type: dict
  sample: {domains: [pypi.org], routes: []}
agent_approvals:
  description: With O(agent_approvals), each agent of the listed bottles, its agent-wide approvals and its other bottles.
  returned: when O(agent_approvals) is true
  type: list
  elements: dict
  sample:
    - {agent: demo, path: /root/.bot-bottle/agents/demo/supervise-approved.json, entries: [domain pypi.org], left: []}
loopback:
  description: The loopback address for O(slug) and where it comes from (C(bundle), C(meta) or C(allocated)).
  returned: when O(loopback_pool) and O(slug) are set
  type: dict
  sample: {address: 127.77.0.17, source: allocated, listeners: ["tcp 0.0.0.0:5432 (postgres pid 501)"],
           refusal: "bottle demo: the VM may reach 127.77.0.17, and these host services answer there: ..."}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils import (
    agent_text, audit_archive, audit_log, fleet_view, host_listeners, loopback, naming, smolvm)
# collect and archived: what bottle_info lists (bottle_listing, which the operator's console reads too).
from ansible_collections.botbottle.bottle.plugins.module_utils.bottle_listing import archived, collect
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as sv
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_decide as sd
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, DockerException, find_image, get_docker_client)


def _by_rule(counts):
    return " (%s)" % ", ".join("%s %d" % item for item in sorted(counts.items())) if counts else ""


def firewall_line(row):
    """One host's counts as a line for the playbook's output; the host is agent-reached text, shown plain."""
    return "%s allowed %d, refused %d%s, failed upstream %d%s, held %d" % (
        agent_text.terminal(row.get("host"), 120), row.get("allowed", 0), row.get("refused", 0),
        _by_rule(row.get("rules")), row.get("failed", 0), _by_rule(row.get("failures")), row.get("held", 0))


def agent_approvals(module, client, bottles, machines):
    """For each agent of ``bottles``: its agent-wide approvals (``path``, ``entries``) and its bottles that are not
    in ``bottles`` (``left``): what a teardown of ``bottles`` leaves behind."""
    out = []
    listed = {b.get("slug") for b in bottles}
    for agent in sorted({b.get("agent") for b in bottles if b.get("agent")}):
        try:
            path, entries = sd.agent_approvals_text(module.params["state_root"], agent)
        except sv.SuperviseError as exc:
            module.fail_json(msg="agent %s: %s" % (agent, exc))
        others = collect(client, module.params["state_root"], None, agent, machines=machines)
        out.append(dict(agent=agent, path=path, entries=[agent_text.terminal(e, 300) for e in entries],
                        left=sorted(b["slug"] for b in others if b.get("slug") not in listed)))
    return out


def look_up_images(client, names):
    found = []
    for name in names:
        image = find_image(client, name)
        found.append({"name": name, "present": image is not None, "id": image.id if image is not None else None})
    return found


def smolvm_machines(module):
    """(report, machines): the smolvm CLI's availability and boot support, and ``machine ls --json``."""
    p = module.params
    try:
        return smolvm.host_report(module, p["smolvm_path"], p["smolvm_state_dir"], look=p["smolvm"])
    except smolvm.SmolvmError as exc:
        module.fail_json(msg="smolvm machine ls failed: %s (fix smolvm, or pass smolvm=false to list "
                             "containers only)" % exc)


def read_approvals(module):
    """What the operator approved for bottle ``slug`` and, with ``approvals_agent``, for every bottle of that agent."""
    p = module.params
    try:
        found = dict(approved=sv.read_approved(naming.state_dir(p["slug"], p["state_root"])))
        if p["approvals_agent"]:
            found["agent_approved"] = sv.read_agent_approved(p["state_root"], p["approvals_agent"])
    except sv.SuperviseError as exc:
        module.fail_json(msg="%s (it holds what the operator approved for bottle %s)" % (exc, p["slug"]))
    return found


def choose_loopback(module, client, machines=()):
    p = module.params
    try:
        address, source = loopback.for_bottle(client, p["slug"], p["state_root"], p["loopback_pool"], machines)
    except loopback.LoopbackError as exc:
        module.fail_json(msg="loopback_pool: %s" % exc)
    found = dict(address=address, source=source)
    if p["listeners"]:
        reach = host_listeners.reachable(host_listeners.here(module), address, p["bundle_ports"])
        found["listeners"] = [host_listeners.describe(item) for item in reach]
        found["refusal"] = host_listeners.refusal(p["slug"], address, reach) if reach else ""
    return found


def main():
    argument_spec = dict(
        slug=dict(type="str"),
        agent=dict(type="str"),
        state_root=dict(type="path", default=naming.DEFAULT_STATE_ROOT),
        images=dict(type="list", elements="str", default=[]),
        health=dict(type="bool", default=False),
        audit=dict(type="bool", default=False),
        audit_bytes=dict(type="int", default=1048576),
        archived=dict(type="bool", default=False),
        archive_events=dict(type="bool", default=False),
        archive_root=dict(type="path", default=audit_archive.DEFAULT_ROOT),
        older_than=dict(type="str"),
        orphans=dict(type="bool", default=False),
        smolvm=dict(type="bool", default=True),
        smolvm_path=dict(type="path"),
        smolvm_state_dir=dict(type="path"),
        loopback_pool=dict(type="str"),
        listeners=dict(type="bool", default=False),
        bundle_ports=dict(type="list", elements="int", default=[8888, 9418, 9100]),
        approvals_agent=dict(type="str"),
        agent_approvals=dict(type="bool", default=False),
    )
    argument_spec.update(DOCKER_COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        older_than = fleet_view.parse_duration(module.params["older_than"]) if module.params["older_than"] else None
    except ValueError as exc:
        module.fail_json(msg="older_than: %s" % exc)
    client = get_docker_client(module)
    smolvm_report, machines = smolvm_machines(module)
    extra = {}
    try:
        bottles = collect(client, module.params["state_root"], module.params["slug"], module.params["agent"],
                          machines=machines)
        images = look_up_images(client, module.params["images"])
        if module.params["slug"] and not naming.slug_error(module.params["slug"]):
            extra.update(read_approvals(module))
        if module.params["loopback_pool"] and module.params["slug"]:
            extra["loopback"] = choose_loopback(module, client, machines)
        bottles = fleet_view.select(fleet_view.add_orphan(fleet_view.add_age(client, bottles)),
                                    older_than=older_than, orphans=module.params["orphans"])
        if module.params["health"]:
            bottles = fleet_view.add_proposals(fleet_view.add_health(client, bottles))
            bottles = fleet_view.add_agent_oom(client, bottles, record=not module.check_mode)
        if module.params["audit"]:
            for b in bottles:
                b["firewall"] = audit_log.firewall_by_host(b["state_dir"], module.params["audit_bytes"]) \
                    if b.get("state_dir") else []
                b["firewall_lines"] = [firewall_line(row) for row in b["firewall"]]
    except DockerException as exc:
        module.fail_json(msg="docker engine error while listing bottles: %s" % exc)
    if module.params["archived"]:
        extra["archives"] = archived(module.params["archive_root"], module.params["slug"], module.params["agent"],
                                     module.params["audit_bytes"], module.params["archive_events"])
    if module.params["agent_approvals"]:
        extra["agent_approvals"] = agent_approvals(module, client, bottles, machines)
    module.exit_json(changed=False, bottles=bottles, images=images, smolvm=smolvm_report, **extra)


if __name__ == "__main__":
    main()
