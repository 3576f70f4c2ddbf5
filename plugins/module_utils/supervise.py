# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""supervise's proposal store and what an approval changes, on the managed host.

The store is ``<state_dir>/supervise/`` (mounted into the bundle only, at
/var/lib/bottle/supervise, where the supervise daemon writes proposals):

  proposals/<id>.json   id, kind (domain|route|block|release), status (pending|approved|rejected),
                        created, decided, note, the request fields, justification (not for release)
  audit.jsonl           append-only, one JSON line per proposal and per decision

Kinds: ``domain``, ``route`` and ``block`` are the agent's asks (supervise's MCP tools);
``release`` is egress's (a policy with ``firewall.dlp_action: supervise``): egress holds a
request its DLP refused and asks, through supervise's bundle-local endpoint, that it be sent
once. Its fields are ``host``, ``method``, ``path`` (query values removed), ``rule``,
``where`` (where the hit was found) and ``excerpt`` (redacted by egress). Approving a
release changes no policy and no file but the proposal: egress, polling supervise, sends
the held request once; a rejection, or no decision within ``firewall.dlp_supervise_timeout``,
answers 403 (supervise then rejects the proposal itself, noting the timeout). Nothing of a
release can be changed (``EDITABLE``).

Approved additions are kept outside the mounted directory, in
``<state_dir>/supervise-approved.json`` (``{"domains": [...], "routes": [...]}``), so
nothing on the bottle's side can write them; the role merges them into the policy on
every run (filter ``with_approvals``). An approval does the same merge
(``bundle_config.merge_approved``) into the policy the bottle's files were last rendered
from (``bundle-source.json``), renders them again with ``bundle_config.render``, and writes
them with ``bundle_config.StateWrite``: the very code the role's ``bottle_state`` runs, so
the role's next run finds nothing to change.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import time

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config as bc
from ansible_collections.botbottle.bottle.plugins.module_utils import manifest

ID_RE = re.compile(r"^[0-9a-f]{16}$")
KINDS = ("domain", "route", "block", "release")
STATUSES = ("pending", "approved", "rejected")
STORE = "supervise"
APPROVED = bc.APPROVED
MAX_PROPOSAL_BYTES = 65536
# Fields of a proposal the operator may change (modify, or approve with changes), per kind.
EDITABLE = {"domain": ("host",), "route": ("host", "auth", "matches"), "block": (), "release": ()}
# Kinds whose approval changes the bottle's policy (the others record the decision only).
POLICY_KINDS = ("domain", "route")
# What the operator reads of a release: the held request and the DLP hit (the excerpt is redacted).
RELEASE_FIELDS = ("host", "method", "path", "rule", "where", "excerpt")


class SuperviseError(Exception):
    pass


def id_error(value):
    if not isinstance(value, str) or not ID_RE.match(value):
        return "id %r is not a proposal id: 16 hex characters, as bottle_supervise lists them" % (value,)
    return None


def store_dir(state_dir):
    return os.path.join(state_dir, STORE)


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_proposal(state_dir, proposal_id):
    """The proposal ``proposal_id`` of the bottle at ``state_dir``, or None; never follows a path outside."""
    error = id_error(proposal_id)
    if error:
        raise SuperviseError(error)
    path = os.path.join(store_dir(state_dir), "proposals", proposal_id + ".json")
    try:
        if os.path.islink(path) or os.path.getsize(path) > MAX_PROPOSAL_BYTES:
            raise SuperviseError("proposal %s is not a regular file of at most %d bytes: not trusting it"
                                 % (proposal_id, MAX_PROPOSAL_BYTES))
        with open(path, encoding="utf-8") as handle:
            proposal = json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise SuperviseError("proposal %s is not valid JSON (%s)" % (proposal_id, exc))
    except OSError as exc:  # a directory of that name, an unreadable file: not trusted, not fatal
        raise SuperviseError("proposal %s cannot be read (%s)" % (proposal_id, exc.strerror or exc))
    if not isinstance(proposal, dict) or proposal.get("id") != proposal_id:
        raise SuperviseError("proposal file %s.json does not hold proposal %s" % (proposal_id, proposal_id))
    if proposal.get("kind") not in KINDS or proposal.get("status") not in STATUSES:
        raise SuperviseError("proposal %s has kind %r / status %r, which supervise never writes"
                             % (proposal_id, proposal.get("kind"), proposal.get("status")))
    return proposal


def list_proposals(state_dir, status=None):
    """Proposals of one bottle, oldest first; unreadable ones are reported, not trusted."""
    folder = os.path.join(store_dir(state_dir), "proposals")
    out, problems = [], []
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return out, problems
    for name in names:
        if not name.endswith(".json") or id_error(name[:-5]):
            continue
        try:
            proposal = read_proposal(state_dir, name[:-5])
        except SuperviseError as exc:
            problems.append(str(exc))
            continue
        if proposal is not None and (status is None or proposal.get("status") == status):
            out.append(proposal)
    out.sort(key=lambda p: (str(p.get("created")), p["id"]))
    return out, problems


def write_proposal(state_dir, proposal):
    path = os.path.join(store_dir(state_dir), "proposals", proposal["id"] + ".json")
    # World-readable: the daemon reads the decision through "other" (the file is the operator's).
    bc.write_atomic(path, (json.dumps(proposal, indent=2, sort_keys=True) + "\n").encode("utf-8"), 0o664)


def append_audit(state_dir, event):
    path = os.path.join(store_dir(state_dir), "audit.jsonl")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o664)
    try:
        os.write(fd, (json.dumps(event, sort_keys=True) + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def release_hold(state_dir):
    """How long egress holds a request for the operator: the rendered ``dlp.supervise_timeout`` (default 120)."""
    try:
        with open(os.path.join(state_dir, "bundle", "egress.json"), encoding="utf-8") as handle:
            value = (json.load(handle).get("dlp") or {}).get("supervise_timeout")
    except (OSError, ValueError, AttributeError):
        value = None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return bc.DEFAULT_DLP_SUPERVISE_TIMEOUT


def release_too_late(state_dir, proposal, clock=time.time):
    """Whether egress has stopped holding the request of a pending release proposal (None: cannot tell)."""
    try:
        created = calendar.timegm(time.strptime(str(proposal.get("created")), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return None
    return clock() >= created + release_hold(state_dir)


def read_approved(state_dir):
    path = os.path.join(state_dir, APPROVED)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {"domains": [], "routes": []}
    except ValueError as exc:
        raise SuperviseError("%s is not valid JSON (%s): fix or remove it" % (path, exc))
    if not isinstance(data, dict):
        raise SuperviseError("%s must hold a mapping of domains and routes: fix or remove it" % path)
    return {"domains": list(data.get("domains") or []), "routes": list(data.get("routes") or [])}


def route_of(proposal):
    """The egress route (policy form) a route proposal asks for."""
    route = {"host": proposal["host"]}
    if proposal.get("auth"):
        route["auth"] = dict(proposal["auth"])
    elif proposal.get("auth_ref"):
        route["auth"] = {"scheme": "Bearer", "token_ref": proposal["auth_ref"]}
    if proposal.get("matches"):
        route["matches"] = proposal["matches"]
    return route


def apply_changes(proposal, changes):
    """``proposal`` with the operator's ``changes``, validated like a policy; (new proposal, before-values)."""
    changes = changes or {}
    allowed = EDITABLE[proposal["kind"]]
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise SuperviseError("changes.%s cannot be changed on a %s proposal: change %s"
                             % (unknown[0], proposal["kind"], ", ".join(allowed) or "nothing (answer with a note)"))
    updated = dict(proposal)
    before = {}
    for key, value in changes.items():
        if updated.get(key) != value:
            before[key] = proposal.get(key)
            updated[key] = value
    if "auth" in changes and "auth_ref" in updated:
        before.setdefault("auth_ref", updated.pop("auth_ref"))
    if proposal["kind"] == "domain":
        host = updated.get("host")
        if not isinstance(host, str) or not manifest.HOST_RE.match(host.lower()):
            raise SuperviseError("host %r is not a host name: write api.example.com or *.example.com" % (host,))
        updated["host"] = host.lower()
    elif proposal["kind"] == "route":
        try:
            manifest.check_route(route_of(updated), "proposal %s" % proposal["id"])
        except manifest.ManifestError as exc:
            raise SuperviseError(str(exc))
        updated["host"] = updated["host"].lower()
    return updated, before


def plan_approval(state_dir, proposal, tokens):
    """The write that makes the bottle allow what ``proposal`` (domain or route) asks; tokens: ref -> value.

    Nothing is written here: the caller shows ``diff()`` (check mode) or calls ``apply()``, then hashes
    the state directory with ``bundle_config.config_hash``.
    """
    try:
        policy, options = bc.read_source(state_dir)
        private = bc.read_private(state_dir, options["pipelock"])
    except bc.BundleConfigError as exc:
        raise SuperviseError(str(exc))
    approved = read_approved(state_dir)
    if proposal["kind"] == "domain":
        if proposal["host"] not in approved["domains"]:
            approved["domains"].append(proposal["host"])
    elif proposal["kind"] == "route":
        route = route_of(proposal)
        same = [r for r in (policy.get("egress") or {}).get("routes") or []
                if str(r.get("host", "")).lower() == route["host"]]
        if same and same[0] != route:
            raise SuperviseError("%s already has a route: change it in the policy (bottle_policies) instead"
                                 % route["host"])
        if route not in approved["routes"]:
            approved["routes"] = [r for r in approved["routes"] if r.get("host") != route["host"]] + [route]
        ref = (route.get("auth") or {}).get("token_ref")
        if ref:
            value = (tokens or {}).get(ref)
            if value in (None, "") and ref not in private["tokens"]:
                raise SuperviseError(
                    "route %s needs credential %s, which the operator must supply: pass tokens: {%s: ...} (the "
                    "playbook playbooks/supervise.yml looks it up as an Ansible variable, else an environment "
                    "variable of the controller, like playbooks/bottle.yml)" % (route["host"], ref, ref))
            if value not in (None, ""):
                private["tokens"][ref] = value
    try:
        merged = bc.merge_approved(policy, approved)
        files = bc.render(merged, options)
        files.update(bc.render_private(private))
        files[bc.SOURCE] = bc.source_bytes(merged, options)
    except ValueError as exc:
        raise SuperviseError(str(exc))
    files[APPROVED] = bc.json_bytes(approved)
    return bc.StateWrite(state_dir, files)
