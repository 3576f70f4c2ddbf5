# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operator's side of supervise: list the proposals, decide one, reload the bottles it changes.

One implementation for every front end: the module ``bottle_supervise`` (and so
``playbooks/supervise.yml``) and the operator's console call these functions; neither holds a
second copy of the store or of the reload.

API:
- ``list_all(state_root, slug=None, status="pending") -> (proposals, problems)``: the proposals
  of one bottle or of every bottle under ``state_root`` (each with its ``slug``), oldest first per
  bottle; ``status`` ``pending``/``approved``/``rejected``/``all``. ``problems``: proposal files
  not trusted, with why.
- ``decide(state_root, slug, proposal_id, decision, note="", changes=None, tokens=None, reload=True,
  check_mode=False, scope="bottle", warn=None, docker_host=None, timeout=60, client_factory=None,
  bind_new_host=False) -> dict``: records the operator's ``decision`` (``approve``/``reject``/``modify``)
  with ``changes`` merged as ``supervise.apply_changes`` does (a change only narrows), rewrites and reloads the
  bottle an approval of a domain or route changes. ``scope="agent"`` (an approval of a domain or
  route) does the same for every other bottle of the proposal's agent under ``state_root`` and
  records it for that agent's later bottles (``supervise.agent_approved_path``). Returns changed,
  proposal, reloaded, reload (a message), changed_files, config_hash (when the configuration
  changed), diff (before/after dicts), warnings, problems and, with scope agent, ``also`` (per other
  bottle: slug, changed, reloaded, reload, config_hash). ``warn(text)`` is called for each warning
  too. Raises ``SuperviseError`` (its ``changed`` says whether something was written already).
  Approving a route whose credential already serves other hosts (``credential_serves``) for a host
  it does not serve yet is refused unless ``bind_new_host`` is true (``check_binding``).
- ``credential_serves(state_root, slug, proposal)``: (credential, hosts it serves in the bottle's
  real policy) for a route proposal; ``list_all`` puts both in each route proposal it lists
  (``credential``, ``credential_serves``), replacing whatever the proposal file said.
- ``reload_bundle(client_factory, slug, new_hash, files)``: SIGHUP a running bundle, record the
  hash it loads, wait for the re-staged files; ``(reloaded, message)``.
- ``egress_refusal(run, source)``: what egress's own parser (``bottle_firewall.policy``, run in the bundle)
  says of an egress.json (its bytes, or the path of the staged copy); None when it loads it.
- ``slugs_under(state_root)``: the bottles with a supervise store; ``agent_slugs(state_root, agent)``:
  the bottles of an agent (their meta.json).

An approval egress refuses (``EgressRefusal``: before anything is written, or after the reload, the files then
put back) leaves the proposal pending with ``not_applied`` ({at, why}), which supervise tells the agent.
"""

from __future__ import annotations

import copy
import os
import time

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config as bc
from ansible_collections.botbottle.bottle.plugins.module_utils import docker_client as dc
from ansible_collections.botbottle.bottle.plugins.module_utils import naming
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise as sv
from ansible_collections.botbottle.bottle.plugins.module_utils.supervise import SuperviseError

DECISIONS = {"approve": "approved", "reject": "rejected", "modify": "pending"}
SCOPES = ("bottle", "agent")
LIST_STATUSES = ("pending", "approved", "rejected", "all")
MAX_NOTE = 2000
RELOAD_WAIT = 15
EGRESS_JSON = "bundle/egress.json"
# Where bottle-init stages egress.json for egress (bundle_config.restaged_argv's layout).
EGRESS_STAGED = "%s/egress/egress.json" % bc.RUN_DIR
EGRESS_PYTHON = "/opt/egress/bin/python"
# egress's own parser on an egress.json (argv[1]: the JSON text, or @path): exit 3 with its message when it
# refuses the file, as egress would (egress then keeps its previous configuration in force).
EGRESS_CHECK = """import json, sys
sys.path.insert(0, "/opt/egress")
from bottle_firewall import policy
source = sys.argv[1]
try:
    if source.startswith("@"):
        policy.load_config(source[1:])
    else:
        policy.parse_config(json.loads(source))
except (policy.ConfigError, ValueError) as exc:
    print(exc)
    sys.exit(3)
"""


class EgressRefusal(SuperviseError):
    """egress's own parser refuses the configuration an approval renders."""


def _bottle_dirs(state_root):
    root = os.path.abspath(os.path.expanduser(state_root))
    try:
        names = sorted(os.listdir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [n for n in names if naming.slug_error(n) is None and os.path.isdir(os.path.join(root, n))]


def slugs_under(state_root):
    """The bottles under ``state_root`` that have a supervise store."""
    return [n for n in _bottle_dirs(state_root) if os.path.isdir(sv.store_dir(naming.state_dir(n, state_root)))]


def agent_slugs(state_root, agent):
    """The bottles under ``state_root`` whose meta.json names ``agent``."""
    return [n for n in _bottle_dirs(state_root) if sv.bottle_agent(naming.state_dir(n, state_root)) == agent]


def _check_slug(slug):
    error = naming.slug_error(slug)
    if error:
        raise SuperviseError("slug: " + error)


def list_all(state_root, slug=None, status="pending"):
    """(proposals, problems) of bottle ``slug``, or of every bottle under ``state_root``."""
    if status not in LIST_STATUSES:
        raise SuperviseError("status %r: use %s" % (status, ", ".join(LIST_STATUSES)))
    if slug:
        _check_slug(slug)
    wanted = None if status == "all" else status
    proposals, problems = [], []
    for name in ([slug] if slug else slugs_under(state_root)):
        found, bad = sv.list_proposals(naming.state_dir(name, state_root), wanted)
        proposals.extend(_with_serves(state_root, name, dict(proposal, slug=name)) for proposal in found)
        problems.extend("%s: %s" % (name, why) for why in bad)
    return proposals, problems


BIND_FLAG = "bind_new_host"


def _agent_approved_of(state_root, state_dir):
    agent = sv.bottle_agent(state_dir)
    return sv.read_agent_approved(state_root, agent) if agent is not None else None


def credential_serves(state_root, slug, proposal, agent_approved=None):
    """(credential, the hosts it serves in bottle ``slug``'s real policy) of a route ``proposal``; (None, [])
    when it names no credential. Computed from the operator's files (``supervise.credential_serves``), never
    taken from the proposal, which the bottle's side wrote."""
    ref = sv.route_credential(proposal)
    if ref is None:
        return None, []
    state_dir = naming.state_dir(slug, state_root)
    if agent_approved is None:
        agent_approved = _agent_approved_of(state_root, state_dir)
    return ref, sv.credential_serves(state_dir, ref, agent_approved)


def _with_serves(state_root, slug, proposal):
    """A listed proposal with ``credential`` and ``credential_serves`` as the bottle's real policy says."""
    proposal.pop("credential_serves", None)  # what the bottle's side wrote is not shown as the truth
    if proposal.get("kind") != "route" or proposal.get("status") != "pending":
        return proposal
    try:
        ref, serves = credential_serves(state_root, slug, proposal)
    except SuperviseError:
        return proposal  # deciding says why (an older bottle without bundle-source.json)
    if ref is not None:
        proposal.update(credential=ref, credential_serves=serves)
    return proposal


def check_binding(ref, serves, host, bind_new_host, where=""):
    """Refuse (SuperviseError) binding credential ``ref``, which serves ``serves``, to a new ``host`` unless
    ``bind_new_host``. A credential that serves no host yet, or serves ``host`` already, needs no choice."""
    if ref is None or not serves or host.lower() in serves or bind_new_host:
        return
    raise SuperviseError(
        "route %s names credential %s, which already serves %s%s: approving would send it to %s too. If that is "
        "meant, approve with %s: true (playbook: -e %s=true; console: key b); else reject with a note, or modify "
        "the route's auth to a credential of its own" % (host, ref, ", ".join(serves), where, host, BIND_FLAG,
                                                         BIND_FLAG))


def default_client_factory(docker_host=None, timeout=60):
    """A factory connecting once, on first use (a decision that reloads nothing needs no engine)."""
    cached = []

    def factory():
        if not cached:
            cached.append(dc.connect(docker_host, timeout))
        return cached[0]
    return factory


def egress_refusal(run, source):
    """egress's own parser (in the bundle) on ``source`` (egress.json's bytes, or "@" and a path in the bundle):
    None when it loads it; else why it refuses it. ``run(argv)`` runs argv in the bundle -> (rc, out, err)."""
    argument = source.decode("utf-8") if isinstance(source, bytes) else source
    rc, out, err = run([EGRESS_PYTHON, "-c", EGRESS_CHECK, argument])
    if rc == 0:
        return None
    if rc == 3:
        return (out or err).strip() or "refused (no message)"
    return "egress's parser could not be run in the bundle (rc %s): %s" % (rc, (err or out).strip()[:400])


def running_bundle(client_factory, slug):
    """The bottle's bundle container when it runs (checked to be the bottle's), else None."""
    container = dc.find_container(client_factory(), naming.object_name(slug, "bundle"))
    if container is None or container.status != "running":
        return None
    if (container.labels or {}).get(naming.LABEL_BOTTLE) != slug:
        raise SuperviseError("container %s does not carry label %s=%s: not signalling what is not the bottle's"
                             % (container.name, naming.LABEL_BOTTLE, slug))
    return container


def _runner(container):
    def run(argv):
        return dc.exec_in(container, argv, user="0")
    return run


def reload_bundle(client_factory, slug, new_hash, files):
    """SIGHUP the running bundle and record the hash it loads; wait until ``files`` are re-staged; then check that
    egress's own parser loads the staged egress.json (else egress kept its previous configuration: raise
    ``EgressRefusal``)."""
    container = running_bundle(client_factory, slug)
    if container is None:
        return False, "bundle not running: the next playbooks/bottle.yml run starts it with this configuration"
    run = _runner(container)

    container.kill(signal="SIGHUP")
    bc.record_loaded_hash(run, new_hash)
    # bottle-init re-stages /etc/bottle and /etc/bottle-private for each daemon on SIGHUP; the daemons
    # then re-read their files. Wait until the staged copies are the new ones.
    check = bc.restaged_argv(files)
    deadline = time.monotonic() + RELOAD_WAIT
    while time.monotonic() < deadline:
        rc, _out, _err = run(check)
        if rc == 0:
            if EGRESS_JSON in files:
                why = egress_refusal(run, "@" + EGRESS_STAGED)
                if why is not None and not why.startswith("egress's parser could not be run"):
                    error = EgressRefusal("egress refused the reloaded configuration and keeps its previous one "
                                          "(the files are put back as they were; the proposal is still pending): %s"
                                          % why)
                    error.changed = True  # the bundle was signalled
                    raise error
            time.sleep(1)  # a daemon swaps its configuration right after the copy it watches changed
            return True, "reloaded"
        time.sleep(0.25)
    return True, "reload signalled; the staged configuration did not change within %d s (see docker logs %s)" \
        % (RELOAD_WAIT, container.name)


def _read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _fail(message, changed=False):
    error = SuperviseError(message)
    error.changed = changed
    return error


def _append_audit(state_dir, event):
    """``supervise.append_audit`` after the decision was written: a refusal (a planted symlink) says so."""
    try:
        sv.append_audit(state_dir, event)
    except SuperviseError as exc:
        raise _fail("the decision is recorded, but its audit line was not: %s" % exc, True)


def _apply_and_reload(plan, state_dir, slug, reload, client_factory):
    """Write ``plan``; (config_hash or None, reloaded, message). Reload errors propagate.

    A running bundle's egress first parses the egress.json the plan renders (its own parser): when it would refuse
    it, nothing is written (``EgressRefusal``). When egress refuses it after the reload all the same, the files
    written are put back as they were before raising: the bottle keeps the configuration egress runs."""
    if reload and plan.changes.get(EGRESS_JSON) is not None:
        egress_precheck(client_factory, slug, plan.changes[EGRESS_JSON])
    if plan.changes:
        plan.apply()
    if not plan.touches_config():
        return None, False, "configuration unchanged: nothing to reload"
    # Hashed from disk, as bottle_state does: the role's next run computes the same value.
    config_hash = bc.config_hash(state_dir)
    if not reload:
        return config_hash, False, "not reloaded (reload: false): the next playbooks/bottle.yml run applies it"
    written = [relative for relative, data in plan.changes.items() if data is not None]
    try:
        reloaded, message = reload_bundle(client_factory, slug, config_hash, written)
    except EgressRefusal:
        _put_back(plan)
        raise
    return config_hash, reloaded, message


def egress_precheck(client_factory, slug, egress_json):
    """Raise ``EgressRefusal`` (nothing written yet) when the running bundle's egress would refuse ``egress_json``.

    No running bundle, or no engine: nothing to ask (the reload reports what it finds; the next launch renders
    from the same checked policy)."""
    try:
        container = running_bundle(client_factory, slug)
        if container is None:
            return
        why = egress_refusal(_runner(container), egress_json)
    except (dc.DockerException, dc.EngineUnavailable):
        return
    if why is not None and not why.startswith("egress's parser could not be run"):
        raise EgressRefusal("egress would refuse the configuration this approval renders, so none of it was written "
                            "(the proposal is still pending): %s" % why)


def _put_back(plan):
    """Undo ``plan.apply()``: every file it changed as it was before (absent ones removed)."""
    for relative, data in plan.before.items():
        if relative not in plan.changes:
            continue
        path = os.path.join(plan.state_dir, relative)
        if data is None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        else:
            bc.write_atomic(path, data)


def _validate(slug, proposal_id, decision, note, scope):
    _check_slug(slug)
    if decision not in DECISIONS:
        raise SuperviseError("decision %r: use approve, reject or modify" % (decision,))
    if scope not in SCOPES:
        raise SuperviseError("scope %r: use bottle (this bottle) or agent (every bottle of its agent)" % (scope,))
    error = sv.id_error(proposal_id)
    if error:
        raise SuperviseError(error)
    if not isinstance(note, str):
        raise SuperviseError("note must be text")
    if len(note) > MAX_NOTE:
        raise SuperviseError("note is %d characters long; keep it under %d" % (len(note), MAX_NOTE))


def decide(state_root, slug, proposal_id, decision, note="", changes=None, tokens=None, reload=True,
           check_mode=False, scope="bottle", warn=None, docker_host=None, timeout=60, client_factory=None,
           bind_new_host=False):
    """Record the operator's ``decision`` on proposal ``proposal_id`` of bottle ``slug`` (see the module doc)."""
    note = "" if note is None else note
    _validate(slug, proposal_id, decision, note, scope)
    if not isinstance(bind_new_host, bool):
        raise SuperviseError("%s must be true or false" % BIND_FLAG)
    changes = copy.deepcopy(changes or {})
    if not isinstance(changes, dict):
        raise SuperviseError("changes must be a mapping of the fields to change")
    client_factory = client_factory or default_client_factory(docker_host, timeout)
    warnings = []

    def say(text):
        warnings.append(text)
        if warn is not None:
            warn(text)

    state_dir = naming.state_dir(slug, state_root)
    if not os.path.isdir(sv.store_dir(state_dir)):
        raise SuperviseError("bottle %s has no supervise store (%s): is the slug right, and does the bottle run "
                             "supervise (bottle_supervise_enabled)?" % (slug, sv.store_dir(state_dir)))
    proposal = sv.read_proposal(state_dir, proposal_id)
    if proposal is None:
        raise SuperviseError("bottle %s has no proposal %s: list them (no decision)" % (slug, proposal_id))
    want = DECISIONS[decision]
    result = dict(changed=False, reloaded=False, reload="", changed_files=[], proposal=proposal, problems=[],
                  diff=[], warnings=warnings)
    if scope == "agent":
        result["also"] = []

    if proposal["status"] != "pending":
        if want == proposal["status"] and not changes:
            return result
        raise SuperviseError("proposal %s was already %s on %s (note: %r); a decision is final - the agent can make "
                             "a new proposal" % (proposal_id, proposal["status"], proposal.get("decided"),
                                                 proposal.get("note", "")))
    if decision == "modify" and not sv.EDITABLE[proposal["kind"]]:
        raise SuperviseError("a %s proposal cannot be modified: %s; approve or reject it (with a note)" % (
            proposal["kind"], "it asks to send one held request as it is" if proposal["kind"] == "release"
            else "it has no field to change"))
    if decision == "modify" and not changes:
        raise SuperviseError("decision=modify needs changes: the fields to change (%s)"
                             % ", ".join(sv.EDITABLE[proposal["kind"]]))
    if scope == "agent" and (decision != "approve" or proposal["kind"] not in sv.POLICY_KINDS):
        raise SuperviseError(
            "scope agent applies an approval of a domain or route to every bottle of the agent; this is %s of a %s "
            "proposal: use scope bottle" % ("a rejection" if decision == "reject" else
                                            "a modification" if decision == "modify" else "an approval",
                                            proposal["kind"]))
    try:
        updated, before = sv.apply_changes(proposal, changes)
    except SuperviseError as exc:
        raise SuperviseError("changes: %s" % exc)
    updated.pop("not_applied", None)  # an earlier approval's failure: this decision is recorded afresh
    stamp = sv.now()
    events = []
    if before:
        updated["modified"] = {"at": stamp, "before": before}
        events.append(dict(event="modified", by="operator", id=proposal["id"], kind=proposal["kind"], time=stamp,
                           before=before, after={k: updated.get(k) for k in before}))

    agent = sv.bottle_agent(state_dir)
    agent_approved = None
    if agent is not None and want == "approved" and proposal["kind"] in sv.POLICY_KINDS:
        agent_approved = sv.read_agent_approved(state_root, agent)
    elif agent is None and scope == "agent":
        raise SuperviseError("bottle %s has no meta.json naming its agent (launched by an older release): relaunch it "
                             "with playbooks/bottle.yml, or approve with scope bottle" % slug)
    plan = None
    others = []  # (slug, state_dir, plan)
    agent_file = None
    if want != "pending":
        updated.update(status=want, decided=stamp, note=note)
        extra = {"scope": "agent", "agent": agent} if scope == "agent" else {}
        events.append(dict(event=want, by="operator", id=proposal["id"], kind=proposal["kind"], time=stamp,
                           note=note, **dict(extra, **{k: updated[k] for k in ("host", "url") if k in updated})))
        if want == "approved" and proposal["kind"] == "route":
            try:
                ref, serves = credential_serves(state_root, slug, updated, agent_approved or {})
            except SuperviseError as exc:
                raise SuperviseError("cannot approve proposal %s: %s" % (proposal_id, exc))
            try:
                check_binding(ref, serves, updated["host"], bind_new_host)
            except SuperviseError as exc:
                raise SuperviseError("cannot approve proposal %s: %s" % (proposal_id, exc))
            if ref is not None:
                binding = dict(credential=ref, credential_serves=serves,
                               bound_new_host=bool(serves) and updated["host"] not in serves)
                updated.update(binding)
                events[-1].update(binding)
        if want == "approved" and proposal["kind"] in sv.POLICY_KINDS:
            try:
                plan = sv.plan_approval(state_dir, updated, tokens, agent_approved)
            except SuperviseError as exc:
                raise SuperviseError("cannot approve proposal %s: %s" % (proposal_id, exc))
        if scope == "agent":
            for other in agent_slugs(state_root, agent):
                if other == slug:
                    continue
                other_dir = naming.state_dir(other, state_root)
                try:
                    ref, serves = credential_serves(state_root, other, updated, agent_approved or {})
                    check_binding(ref, serves, updated["host"], bind_new_host, " in bottle %s" % other)
                    others.append((other, other_dir, sv.plan_approval(other_dir, updated, tokens, agent_approved)))
                except SuperviseError as exc:
                    raise SuperviseError("cannot approve proposal %s for bottle %s (agent %s), so for none of its "
                                         "bottles: %s; or approve it with scope bottle" % (proposal_id, other, agent, exc))
            agent_file = (sv.agent_approved_path(state_root, agent),
                          bc.json_bytes(sv.add_approval(agent_approved, updated)))
        if proposal["kind"] == "release" and sv.release_too_late(state_dir, proposal):
            say("egress holds a request for %d s only (firewall.dlp_supervise_timeout) and proposal %s is "
                "older: the request was already refused, so this decision is only recorded"
                % (sv.release_hold(state_dir), proposal["id"]))
    result.update(changed=True, proposal=updated)
    diffs = [dict(before_header="proposal %s" % proposal["id"], after_header="proposal %s" % proposal["id"],
                  before=proposal, after=updated)]
    if plan is not None:
        result["changed_files"] = plan.paths
        diffs.extend(plan.diff())
    for _other, _dir, other_plan in others:
        result["changed_files"].extend(other_plan.paths)
        diffs.extend(other_plan.diff())
    agent_before = None
    if agent_file is not None:
        agent_before = _read_bytes(agent_file[0])
        if agent_before != agent_file[1]:
            result["changed_files"].append(agent_file[0])
            diffs.append(dict(before_header=agent_file[0], after_header=agent_file[0],
                              before=(agent_before or b"").decode("utf-8", "replace"),
                              after=agent_file[1].decode("utf-8", "replace")))
    result["diff"] = diffs
    if check_mode:
        if scope == "agent":
            result["also"] = [dict(slug=other, changed=bool(other_plan.changes), reloaded=False, reload="check mode")
                              for other, _dir, other_plan in others]
        return result

    # The configuration first, the decision last: when the agent sees "approved", the bottle allows it.
    if plan is not None:
        try:
            config_hash, result["reloaded"], result["reload"] = _apply_and_reload(
                plan, state_dir, slug, reload, client_factory)
        except (dc.DockerException, dc.EngineUnavailable, bc.BundleConfigError) as exc:
            raise _fail("the configuration of bottle %s was updated but the bundle could not be reloaded (%s): "
                        "re-run playbooks/bottle.yml for it; the proposal is still pending" % (slug, exc), True)
        except EgressRefusal as exc:
            # The agent is told too: its proposal stays pending, saying why the approval did not take.
            sv.write_proposal(state_dir, dict(proposal, not_applied={"at": stamp, "why": str(exc)}))
            raise
        if config_hash is not None:
            result["config_hash"] = config_hash
    if agent_file is not None and agent_before != agent_file[1]:
        os.makedirs(os.path.dirname(agent_file[0]), mode=0o700, exist_ok=True)
        bc.write_atomic(agent_file[0], agent_file[1])
    for other, other_dir, other_plan in others:
        entry = dict(slug=other, changed=bool(other_plan.changes), reloaded=False, reload="")
        try:
            config_hash, entry["reloaded"], entry["reload"] = _apply_and_reload(
                other_plan, other_dir, other, reload, client_factory)
            if config_hash is not None:
                entry["config_hash"] = config_hash
        except (dc.DockerException, dc.EngineUnavailable, bc.BundleConfigError, SuperviseError) as exc:
            entry["reload"] = "not reloaded: %s" % exc
            say("bottle %s (agent %s) has the approval in its files, but its bundle could not be reloaded (%s): "
                "re-run playbooks/bottle.yml for it" % (other, agent, exc))
        if os.path.isdir(sv.store_dir(other_dir)):
            _append_audit(other_dir, dict(event="approved", by="operator", scope="agent", agent=agent,
                                          kind=proposal["kind"], time=stamp, note=note, host=updated["host"],
                                          from_bottle=slug, **{"from": proposal["id"]}))
        result["also"].append(entry)
    sv.write_proposal(state_dir, updated)
    for event in events:
        _append_audit(state_dir, event)
    return result


def agent_approvals_text(state_root, agent):
    """What ``agent``'s agent-wide approvals hold, as ``(path, ["domain x", "route y"])`` ([] when none)."""
    approved = sv.read_agent_approved(state_root, agent)
    entries = ["domain %s" % host for host in approved.get("domains") or []]
    entries += ["route %s" % route.get("host") for route in approved.get("routes") or [] if isinstance(route, dict)]
    return sv.agent_approved_path(state_root, agent), entries


def revoke_agent_approval(state_root, agent, host, check_mode=False):
    """Take back the agent-wide approval of ``host`` (a domain, a route, or both) of ``agent``: removed from
    ``~/.bot-bottle/agents/<agent>/supervise-approved.json``, so the agent's later bottles no longer get it.
    Its running bottles keep what they were given until they are relaunched or torn down (said in ``note``)."""
    path = sv.agent_approved_path(state_root, agent)
    approved = sv.read_agent_approved(state_root, agent)
    name = str(host or "").strip().lower()
    domains = [d for d in approved.get("domains") or [] if str(d).lower() != name]
    routes = [r for r in approved.get("routes") or [] if not (isinstance(r, dict) and str(r.get("host", "")).lower() == name)]
    removed = (["domain %s" % name] if len(domains) != len(approved.get("domains") or []) else []) + \
        (["route %s" % name] if len(routes) != len(approved.get("routes") or []) else [])
    if not removed:
        _path, entries = agent_approvals_text(state_root, agent)
        raise SuperviseError("agent %s has no agent-wide approval of %s (%s holds: %s)" % (
            agent, name or "(no host)", path, ", ".join(entries) or "nothing"))
    if not check_mode:
        bc.write_atomic(path, bc.json_bytes(dict(approved, domains=domains, routes=routes)))
    return dict(changed=True, path=path, removed=removed,
                note="agent %s's later bottles no longer get %s; a running bottle of it keeps it until it is "
                     "relaunched or torn down" % (agent, " and ".join(removed)))
