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
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as sv
from ansible_collections.botbottle.bottle.plugins.module_utils.supervise_store import SuperviseError

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
        return False, "bundle not running: the next launch (the playbook botbottle.bottle.bottle) starts it with this configuration"
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


def _apply_and_reload(config, state_dir, slug, reload, client_factory):
    """Write ``config`` (a configuration plan, ``supervise.plan_approval``'s); (config_hash or None, reloaded, message).
    Reload errors propagate.

    A running bundle's egress first parses the egress.json the plan renders (its own parser): when it would refuse
    it, nothing is written (``EgressRefusal``). When egress refuses it after the reload all the same, the files
    written are put back as they were before raising: the bottle keeps the configuration egress runs."""
    if reload and config.changes.get(EGRESS_JSON) is not None:
        egress_precheck(client_factory, slug, config.changes[EGRESS_JSON])
    if config.changes:
        config.apply()
    if not config.touches_config():
        return None, False, "configuration unchanged: nothing to reload"
    # Hashed from disk, as bottle_state does: the role's next run computes the same value.
    config_hash = bc.config_hash(state_dir)
    if not reload:
        return config_hash, False, "not reloaded (reload: false): the next launch (the playbook botbottle.bottle.bottle) applies it"
    written = [relative for relative, data in config.changes.items() if data is not None]
    try:
        reloaded, message = reload_bundle(client_factory, slug, config_hash, written)
    except EgressRefusal:
        _put_back(config)
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


def _put_back(config):
    """Undo ``config.apply()``: every file it changed as it was before (absent ones removed)."""
    for relative, data in config.before.items():
        if relative not in config.changes:
            continue
        path = os.path.join(config.state_dir, relative)
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


class Request:
    """A decision the operator asked for, checked (``validate``): what ``plan`` works from."""

    def __init__(self, state_root, slug, proposal, decision, note, changes, scope, bind_new_host):
        self.state_root, self.slug, self.proposal, self.decision = state_root, slug, proposal, decision
        self.note, self.changes, self.scope, self.bind_new_host = note, changes, scope, bind_new_host
        self.state_dir = naming.state_dir(slug, state_root)
        self.want = DECISIONS[decision]


class Decision:
    """What a decision does, worked out before anything is written (``plan``), then done (``apply``).

    ``updated``: the proposal as the decision leaves it; ``events``: the audit lines of this bottle; ``config``:
    the configuration plan of this bottle (``supervise.plan_approval``) or None; ``others``: (slug, state dir,
    configuration plan) of each other bottle of the agent (scope agent); ``agent_file``: (path, bytes) of the
    agent's approvals (scope agent) or None; ``result``: what ``decide`` returns, as far as known before writing;
    ``final``: nothing is left to write (the proposal already is as asked)."""

    def __init__(self, request, result, warnings, say):
        self.request, self.result, self.warnings, self.say = request, result, warnings, say
        self.updated, self.events, self.stamp, self.agent = request.proposal, [], None, None
        self.config, self.others, self.agent_file, self.agent_before = None, [], None, None
        self.final = False


def validate(state_root, slug, proposal_id, decision, note="", changes=None, scope="bottle", bind_new_host=False):
    """Check a decision's inputs against the store, before anything is read further: a ``Request``, or raise
    ``SuperviseError`` naming what is wrong and the fix."""
    note = "" if note is None else note
    _validate(slug, proposal_id, decision, note, scope)
    if not isinstance(bind_new_host, bool):
        raise SuperviseError("%s must be true or false" % BIND_FLAG)
    changes = copy.deepcopy(changes or {})
    if not isinstance(changes, dict):
        raise SuperviseError("changes must be a mapping of the fields to change")
    state_dir = naming.state_dir(slug, state_root)
    if not os.path.isdir(sv.store_dir(state_dir)):
        raise SuperviseError("bottle %s has no supervise store (%s): is the slug right, and does the bottle run "
                             "supervise (bottle_supervise_enabled)?" % (slug, sv.store_dir(state_dir)))
    proposal = sv.read_proposal(state_dir, proposal_id)
    if proposal is None:
        raise SuperviseError("bottle %s has no proposal %s: list them (no decision)" % (slug, proposal_id))
    return Request(state_root, slug, proposal, decision, note, changes, scope, bind_new_host)


def _check_decision(request):
    """Whether the decision can be made on the proposal as it is (False: it already was, nothing to do)."""
    proposal, decision, changes, scope = request.proposal, request.decision, request.changes, request.scope
    if proposal["status"] != "pending":
        if request.want == proposal["status"] and not changes:
            return False
        raise SuperviseError("proposal %s was already %s on %s (note: %r); a decision is final - the agent can make "
                             "a new proposal" % (proposal["id"], proposal["status"], proposal.get("decided"),
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
    return True


def _bind_route(request, updated, agent_approved, events):
    """An approved route: the credential it names, refused for a new host unless bound on purpose."""
    try:
        ref, serves = credential_serves(request.state_root, request.slug, updated, agent_approved or {})
        check_binding(ref, serves, updated["host"], request.bind_new_host)
    except SuperviseError as exc:
        raise SuperviseError("cannot approve proposal %s: %s" % (request.proposal["id"], exc))
    if ref is not None:
        binding = dict(credential=ref, credential_serves=serves,
                       bound_new_host=bool(serves) and updated["host"] not in serves)
        updated.update(binding)
        events[-1].update(binding)


def _plan_others(request, step, tokens, agent_approved):
    """Scope agent: the configuration plan of every other bottle of the agent, and the agent's approvals file."""
    for other in agent_slugs(request.state_root, step.agent):
        if other == request.slug:
            continue
        other_dir = naming.state_dir(other, request.state_root)
        try:
            ref, serves = credential_serves(request.state_root, other, step.updated, agent_approved or {})
            check_binding(ref, serves, step.updated["host"], request.bind_new_host, " in bottle %s" % other)
            step.others.append((other, other_dir, sv.plan_approval(other_dir, step.updated, tokens, agent_approved)))
        except SuperviseError as exc:
            raise SuperviseError("cannot approve proposal %s for bottle %s (agent %s), so for none of its bottles: "
                                 "%s; or approve it with scope bottle" % (request.proposal["id"], other, step.agent, exc))
    step.agent_file = (sv.agent_approved_path(request.state_root, step.agent),
                       bc.json_bytes(sv.add_approval(agent_approved, step.updated)))


def _diffs(step):
    """The result's changed files and diff: the proposal, then each file the decision rewrites."""
    proposal, result = step.request.proposal, step.result
    diffs = [dict(before_header="proposal %s" % proposal["id"], after_header="proposal %s" % proposal["id"],
                  before=proposal, after=step.updated)]
    if step.config is not None:
        result["changed_files"] = step.config.paths
        diffs.extend(step.config.diff())
    for _other, _dir, other_plan in step.others:
        result["changed_files"].extend(other_plan.paths)
        diffs.extend(other_plan.diff())
    if step.agent_file is not None:
        step.agent_before = _read_bytes(step.agent_file[0])
        if step.agent_before != step.agent_file[1]:
            result["changed_files"].append(step.agent_file[0])
            diffs.append(dict(before_header=step.agent_file[0], after_header=step.agent_file[0],
                              before=(step.agent_before or b"").decode("utf-8", "replace"),
                              after=step.agent_file[1].decode("utf-8", "replace")))
    result["diff"] = diffs


def plan(request, tokens=None, warn=None):
    """Work out everything ``request`` writes, writing nothing: a ``Decision`` (its ``result`` is what check mode
    returns). Raises ``SuperviseError`` when the decision cannot be made."""
    warnings = []

    def say(text):
        warnings.append(text)
        if warn is not None:
            warn(text)
    proposal = request.proposal
    result = dict(changed=False, reloaded=False, reload="", changed_files=[], proposal=proposal, problems=[],
                  diff=[], warnings=warnings)
    if request.scope == "agent":
        result["also"] = []
    step = Decision(request, result, warnings, say)
    if not _check_decision(request):
        step.final = True
        return step
    try:
        updated, before = sv.apply_changes(proposal, request.changes)
    except SuperviseError as exc:
        raise SuperviseError("changes: %s" % exc)
    updated.pop("not_applied", None)  # an earlier approval's failure: this decision is recorded afresh
    step.updated, step.stamp = updated, sv.now()
    if before:
        updated["modified"] = {"at": step.stamp, "before": before}
        step.events.append(dict(event="modified", by="operator", id=proposal["id"], kind=proposal["kind"],
                                time=step.stamp, before=before, after={k: updated.get(k) for k in before}))

    step.agent = sv.bottle_agent(request.state_dir)
    agent_approved = None
    if step.agent is not None and request.want == "approved" and proposal["kind"] in sv.POLICY_KINDS:
        agent_approved = sv.read_agent_approved(request.state_root, step.agent)
    elif step.agent is None and request.scope == "agent":
        raise SuperviseError("bottle %s has no meta.json naming its agent (launched by an older release): relaunch it "
                             "with the playbook botbottle.bottle.bottle, or approve with scope bottle" % request.slug)
    if request.want != "pending":
        updated.update(status=request.want, decided=step.stamp, note=request.note)
        extra = {"scope": "agent", "agent": step.agent} if request.scope == "agent" else {}
        step.events.append(dict(event=request.want, by="operator", id=proposal["id"], kind=proposal["kind"],
                                time=step.stamp, note=request.note,
                                **dict(extra, **{k: updated[k] for k in ("host", "url") if k in updated})))
        if request.want == "approved" and proposal["kind"] == "route":
            _bind_route(request, updated, agent_approved, step.events)
        if request.want == "approved" and proposal["kind"] in sv.POLICY_KINDS:
            try:
                step.config = sv.plan_approval(request.state_dir, updated, tokens, agent_approved)
            except SuperviseError as exc:
                raise SuperviseError("cannot approve proposal %s: %s" % (proposal["id"], exc))
        if request.scope == "agent":
            _plan_others(request, step, tokens, agent_approved)
        if proposal["kind"] == "release" and sv.release_too_late(request.state_dir, proposal):
            say("egress holds a request for %d s only (firewall.dlp_supervise_timeout) and proposal %s is "
                "older: the request was already refused, so this decision is only recorded"
                % (sv.release_hold(request.state_dir), proposal["id"]))
    result.update(changed=True, proposal=updated)
    _diffs(step)
    if request.scope == "agent":
        # What check mode reports of the other bottles (apply replaces it with what was done).
        result["also"] = [dict(slug=other, changed=bool(other_plan.changes), reloaded=False, reload="check mode")
                          for other, _dir, other_plan in step.others]
    return step


def _apply_other(step, other, other_dir, other_plan, reload, client_factory):
    """Write and reload another bottle of the agent (scope agent); its entry of ``also``. A reload that fails is
    a warning: the approval is in its files, and its next launch applies it."""
    request = step.request
    entry = dict(slug=other, changed=bool(other_plan.changes), reloaded=False, reload="")
    try:
        config_hash, entry["reloaded"], entry["reload"] = _apply_and_reload(
            other_plan, other_dir, other, reload, client_factory)
        if config_hash is not None:
            entry["config_hash"] = config_hash
    except (dc.DockerException, dc.EngineUnavailable, bc.BundleConfigError, SuperviseError) as exc:
        entry["reload"] = "not reloaded: %s" % exc
        step.say("bottle %s (agent %s) has the approval in its files, but its bundle could not be reloaded (%s): "
                 "re-run the launch (the playbook botbottle.bottle.bottle) for it" % (other, step.agent, exc))
    if os.path.isdir(sv.store_dir(other_dir)):
        _append_audit(other_dir, dict(event="approved", by="operator", scope="agent", agent=step.agent,
                                      kind=request.proposal["kind"], time=step.stamp, note=request.note,
                                      host=step.updated["host"], from_bottle=request.slug,
                                      **{"from": request.proposal["id"]}))
    return entry


def apply(step, reload=True, client_factory=None):
    """Write what ``step`` (``plan``'s) planned and reload the bundles it changes: the configuration first, the
    decision last (when the agent sees "approved", the bottle allows it). Returns ``step.result``."""
    request, result = step.request, step.result
    if step.final:
        return result
    client_factory = client_factory or default_client_factory()
    if step.config is not None:
        try:
            config_hash, result["reloaded"], result["reload"] = _apply_and_reload(
                step.config, request.state_dir, request.slug, reload, client_factory)
        except (dc.DockerException, dc.EngineUnavailable, bc.BundleConfigError) as exc:
            raise _fail("the configuration of bottle %s was updated but the bundle could not be reloaded (%s): "
                        "re-run the launch (the playbook botbottle.bottle.bottle) for it; the proposal is still pending" % (request.slug, exc), True)
        except EgressRefusal as exc:
            # The agent is told too: its proposal stays pending, saying why the approval did not take.
            sv.write_proposal(request.state_dir, dict(request.proposal,
                                                      not_applied={"at": step.stamp, "why": str(exc)}))
            raise
        if config_hash is not None:
            result["config_hash"] = config_hash
    if step.agent_file is not None and step.agent_before != step.agent_file[1]:
        os.makedirs(os.path.dirname(step.agent_file[0]), mode=0o700, exist_ok=True)
        bc.write_atomic(step.agent_file[0], step.agent_file[1])
    if request.scope == "agent":
        result["also"] = [_apply_other(step, other, other_dir, other_plan, reload, client_factory)
                          for other, other_dir, other_plan in step.others]
    sv.write_proposal(request.state_dir, step.updated)
    for event in step.events:
        _append_audit(request.state_dir, event)
    return result


def decide(state_root, slug, proposal_id, decision, note="", changes=None, tokens=None, reload=True,
           check_mode=False, scope="bottle", warn=None, docker_host=None, timeout=60, client_factory=None,
           bind_new_host=False):
    """Record the operator's ``decision`` on proposal ``proposal_id`` of bottle ``slug`` (see the module doc):
    ``validate``, ``plan``, then (not in check mode) ``apply``."""
    request = validate(state_root, slug, proposal_id, decision, note, changes, scope, bind_new_host)
    step = plan(request, tokens, warn)
    if check_mode:
        return step.result
    return apply(step, reload, client_factory or default_client_factory(docker_host, timeout))


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
