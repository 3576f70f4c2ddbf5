# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""supervise's proposal store and what an approval changes, on the managed host.

The store is ``<state_dir>/supervise/`` (mounted into the bundle only, at
/var/lib/bottle/supervise, where the supervise daemon writes proposals):

  proposals/<id>.json   id, kind (domain|route|block), status (pending|approved|rejected),
                        created, decided, note, the request fields, justification
  audit.jsonl           append-only, one JSON line per proposal and per decision

Approved additions are kept outside the mounted directory, in
``<state_dir>/supervise-approved.json`` (``{"domains": [...], "routes": [...]}``), so
nothing on the bottle's side can write them; the role merges them into the policy on
every run. An approval rewrites the bundle files the role renders from the policy
(``bundle/pipelock.yaml``'s ``api_allowlist`` line, ``bundle/egress.json``, the route
credential in ``private/egress/tokens.json``) byte for byte as the role would, so the
configuration hash stays what the role computes.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time

from ansible_collections.botbottle.bottle.plugins.module_utils import manifest
from ansible_collections.botbottle.bottle.plugins.module_utils.bottle_config import state_config_hash

ID_RE = re.compile(r"^[0-9a-f]{16}$")
KINDS = ("domain", "route", "block")
STATUSES = ("pending", "approved", "rejected")
STORE = "supervise"
APPROVED = "supervise-approved.json"
MAX_PROPOSAL_BYTES = 65536
# The bundle-side path where bottle-init stages /etc/bottle for pipelock and egress (a reload's
# effect is visible there once it is done).
STAGED = {"pipelock.yaml": "/run/bottle/pipelock/pipelock.yaml", "egress.json": "/run/bottle/egress/egress.json"}
# Fields of a proposal the operator may change (modify, or approve with changes), per kind.
EDITABLE = {"domain": ("host",), "route": ("host", "auth", "matches"), "block": ()}


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


def _write_atomic(path, data, mode):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_proposal(state_dir, proposal):
    path = os.path.join(store_dir(state_dir), "proposals", proposal["id"] + ".json")
    # World-readable: the daemon reads the decision through "other" (the file is the operator's).
    _write_atomic(path, (json.dumps(proposal, indent=2, sort_keys=True) + "\n").encode("utf-8"), 0o664)


def append_audit(state_dir, event):
    path = os.path.join(store_dir(state_dir), "audit.jsonl")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o664)
    try:
        os.write(fd, (json.dumps(event, sort_keys=True) + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def read_approved(state_dir):
    path = os.path.join(state_dir, APPROVED)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {"domains": [], "routes": []}
    except ValueError as exc:
        raise SuperviseError("%s is not valid JSON (%s): fix or remove it" % (path, exc))
    return {"domains": list(data.get("domains") or []), "routes": list(data.get("routes") or [])}


def approved_bytes(approved):
    return (json.dumps(approved, indent=2, sort_keys=True) + "\n").encode("utf-8")


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


ALLOW_LINE = re.compile(r"^api_allowlist: (\[.*\])$", re.M)


def with_allowed(pipelock_yaml, hosts):
    """pipelock.yaml text with ``hosts`` added to its ``api_allowlist`` (rendered sorted, as the role does)."""
    found = ALLOW_LINE.search(pipelock_yaml)
    if not found:
        raise SuperviseError("bundle/pipelock.yaml has no api_allowlist line as the role renders it: re-run "
                             "playbooks/bottle.yml for this bottle first")
    current = json.loads(found.group(1))
    merged = sorted(set(current) | set(hosts), key=lambda h: h.lower())
    return pipelock_yaml[:found.start(1)] + json.dumps(merged) + pipelock_yaml[found.end(1):]


def egress_bytes(routes):
    """bundle/egress.json as the role writes it (to_nice_json, then a final newline)."""
    return (json.dumps({"routes": routes}, indent=4, sort_keys=True, separators=(",", ": ")) + "\n").encode("utf-8")


def tokens_bytes(tokens):
    """private/egress/tokens.json as the role writes it (to_json, then a final newline)."""
    return (json.dumps(tokens) + "\n").encode("utf-8")


class Plan:
    """The files an approval writes, computed before anything is written (check mode, diff)."""

    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.files = {}      # path -> (new bytes, mode, secret)
        self.before = {}     # path -> old text (non-secret only)

    def read(self, relative):
        path = os.path.join(self.state_dir, relative)
        if path in self.files:
            return self.files[path][0]
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def put(self, relative, data, mode=0o600, secret=False):
        path = os.path.join(self.state_dir, relative)
        old = self.read(relative)
        if old == data:
            return
        if not secret and path not in self.before:
            self.before[path] = (old or b"").decode("utf-8", "replace")
        self.files[path] = (data, mode, secret)

    def diff(self):
        return [dict(before_header=p, after_header=p, before=self.before[p],
                     after=self.files[p][0].decode("utf-8", "replace")) for p in sorted(self.before)]

    def write(self):
        for path, (data, mode, _secret) in sorted(self.files.items()):
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            _write_atomic(path, data, mode)

    def config_hash(self):
        """The configuration hash once the planned files are written."""
        overlay = {p: d for p, (d, _m, _s) in self.files.items()}
        return state_config_hash(self.state_dir, overlay)


def plan_approval(state_dir, proposal, tokens):
    """A Plan that makes the bottle allow what ``proposal`` (domain or route) asks; tokens: ref -> value."""
    plan = Plan(state_dir)
    approved = read_approved(state_dir)
    if proposal["kind"] == "domain":
        if proposal["host"] not in approved["domains"]:
            approved["domains"].append(proposal["host"])
        text = (plan.read("bundle/pipelock.yaml") or b"").decode("utf-8")
        plan.put("bundle/pipelock.yaml", with_allowed(text, [proposal["host"]]).encode("utf-8"))
    elif proposal["kind"] == "route":
        route = route_of(proposal)
        raw = plan.read("bundle/egress.json")
        try:
            routes = list((json.loads(raw) if raw and raw.strip() else {}).get("routes") or [])
        except ValueError as exc:
            raise SuperviseError("bundle/egress.json is not valid JSON (%s): re-run playbooks/bottle.yml" % exc)
        same = [r for r in routes if str(r.get("host", "")).lower() == route["host"]]
        if same and same[0] != route:
            raise SuperviseError("%s already has a route: change it in the policy (bottle_policies) instead"
                                 % route["host"])
        if not same:
            routes.append(route)
        if route not in approved["routes"]:
            approved["routes"] = [r for r in approved["routes"] if r.get("host") != route["host"]] + [route]
        plan.put("bundle/egress.json", egress_bytes(routes))
        text = (plan.read("bundle/pipelock.yaml") or b"").decode("utf-8")
        plan.put("bundle/pipelock.yaml", with_allowed(text, [route["host"]]).encode("utf-8"))
        ref = (route.get("auth") or {}).get("token_ref")
        if ref:
            raw_tokens = plan.read("private/egress/tokens.json")
            try:
                current = json.loads(raw_tokens) if raw_tokens and raw_tokens.strip() else {}
            except ValueError:
                current = {}
            value = (tokens or {}).get(ref)
            if value in (None, "") and ref not in current:
                raise SuperviseError(
                    "route %s needs credential %s, which the operator must supply: pass tokens: {%s: ...} (the "
                    "playbook playbooks/supervise.yml looks it up as an Ansible variable, else an environment "
                    "variable of the controller, like playbooks/bottle.yml)" % (route["host"], ref, ref))
            if value not in (None, "") and current.get(ref) != value:
                current[ref] = value
                plan.put("private/egress/tokens.json", tokens_bytes(current), secret=True)
    plan.put(APPROVED, approved_bytes(approved))
    return plan
