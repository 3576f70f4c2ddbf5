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

import json
import os
import re
import stat
import time

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config as bc
from ansible_collections.botbottle.bottle.plugins.module_utils import manifest, state_meta
from ansible_collections.botbottle.bottle.plugins.module_utils import proposal_format as pf

# The store's format, shared with the bundle's supervise (proposal_format: one file on both sides).
ID_RE = pf.ID_RE
KINDS = pf.KINDS
STATUSES = pf.STATUSES
STORE = "supervise"
APPROVED = bc.APPROVED
MAX_PROPOSAL_BYTES = 65536
# Fields of a proposal the operator may change (modify, or approve with changes), per kind.
EDITABLE = {"domain": ("host",), "route": ("host", "auth", "matches"), "block": (), "release": ()}
# Kinds whose approval changes the bottle's policy (the others record the decision only).
POLICY_KINDS = ("domain", "route")
# What the operator reads of a release: the held request and the DLP hit (the excerpt is redacted).
RELEASE_FIELDS = pf.RELEASE_FIELDS


class SuperviseError(Exception):
    """A proposal or decision that cannot be taken; the message names the key and the fix.

    ``changed``: whether something was written before the error (a reload that failed after the
    configuration was updated)."""

    changed = False


def id_error(value):
    if not isinstance(value, str) or not ID_RE.match(value):
        return "id %r is not a proposal id: 16 hex characters, as bottle_supervise lists them" % (value,)
    return None


def store_dir(state_dir):
    return os.path.join(state_dir, STORE)


now = pf.now


def read_proposal(state_dir, proposal_id):
    """The proposal ``proposal_id`` of the bottle at ``state_dir``, or None; never follows a path outside."""
    error = id_error(proposal_id)
    if error:
        raise SuperviseError(error)
    path = os.path.join(store_dir(state_dir), pf.PROPOSALS, proposal_id + ".json")
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
    folder = os.path.join(store_dir(state_dir), pf.PROPOSALS)
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


# The store is a directory the supervise daemon's uid can write (from inside the bundle); the operator writes
# proposals and audit lines into it as the operator. Nothing here may follow a symlink the daemon planted
# there (audit.jsonl -> ~/.bashrc, proposals/ -> ~/.ssh): each directory is opened with O_NOFOLLOW and
# each file is created or opened relative to that descriptor, never through a path.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _untrusted_entry(path, why):
    return SuperviseError(
        "%s %s: not writing to it as the operator (the supervise daemon's uid can write that folder, so a link "
        "there could point at any file of yours). Look at it, remove it, and decide again" % (path, why))


def _open_store_dir(state_dir, *parts):
    """A descriptor of ``<store>/<parts...>``, each component opened without following a symlink."""
    path = store_dir(state_dir)
    fd = None
    try:
        for name in (None,) + parts:
            if name is not None:
                path = os.path.join(path, name)
            try:
                child = os.open(path if fd is None else name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if os.path.islink(path):
                    raise _untrusted_entry(path, "is a symlink")
                if os.path.lexists(path) and not os.path.isdir(path):
                    raise _untrusted_entry(path, "is not a directory")
                raise SuperviseError("%s cannot be opened (%s)" % (path, exc.strerror or exc))
            if fd is not None:
                os.close(fd)
            fd = child
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    return fd


def write_proposal(state_dir, proposal):
    """Write ``proposal`` into the store atomically, never through a symlink (proposals/ or the file)."""
    name = proposal["id"] + ".json"
    data = (json.dumps(proposal, indent=2, sort_keys=True) + "\n").encode("utf-8")
    dir_fd = _open_store_dir(state_dir, pf.PROPOSALS)
    tmp = ".op-%s.tmp" % os.urandom(8).hex()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                # World-readable: the daemon reads the decision through "other" (the file is the operator's).
                os.fchmod(handle.fileno(), 0o664)
                handle.write(data)
            # rename replaces a symlink at the destination itself; it never writes through it.
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            raise
    finally:
        os.close(dir_fd)


def append_audit(state_dir, event):
    """Append ``event`` to the store's audit.jsonl as one JSON line; SuperviseError (naming the file) when it is a
    symlink, not a regular file, or has other hard links - it is never followed or written through."""
    path = os.path.join(store_dir(state_dir), pf.AUDIT)
    dir_fd = _open_store_dir(state_dir)
    try:
        try:
            fd = os.open(pf.AUDIT, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK,
                         0o664, dir_fd=dir_fd)
        except OSError as exc:
            if os.path.islink(path):
                raise _untrusted_entry(path, "is a symlink")
            if os.path.lexists(path) and not os.path.isfile(path):
                raise _untrusted_entry(path, "is not a regular file")
            raise SuperviseError("%s cannot be opened (%s)" % (path, exc.strerror or exc))
    finally:
        os.close(dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _untrusted_entry(path, "is not a regular file")
        if info.st_nlink != 1:
            raise _untrusted_entry(path, "has %d hard links (another name for the same file)" % info.st_nlink)
        os.write(fd, (json.dumps(event, sort_keys=True) + "\n").encode("utf-8"))
    finally:
        os.close(fd)


# How long egress holds a request for the operator: the rendered ``dlp.supervise_timeout`` (default 120),
# read by bundle_config, the owner of the bundle's files.
release_hold = bc.release_hold


def release_too_late(state_dir, proposal, clock=time.time):
    """Whether egress has stopped holding the request of a pending release proposal (None: cannot tell)."""
    created = pf.epoch(proposal.get("created"))
    if created is None:
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


# The bottle's meta.json (slug, agent, policy, backend, created), or {} when absent or unreadable.
read_meta = state_meta.read_meta


def bottle_agent(state_dir):
    """The agent a bottle runs (its meta.json), or None when it cannot be told."""
    agent = read_meta(state_dir).get("agent")
    return agent if isinstance(agent, str) and manifest.NAME_RE.match(agent) else None


def agents_root(state_root):
    """Where agent-wide state lives: ``agents/`` beside the state root (``~/.bot-bottle/agents``)."""
    return os.path.join(os.path.dirname(os.path.abspath(os.path.expanduser(state_root))), "agents")


def agent_approved_path(state_root, agent):
    """``<state_root>/../agents/<agent>/supervise-approved.json``: what every bottle of ``agent`` gets."""
    if not isinstance(agent, str) or not manifest.NAME_RE.match(agent):
        raise SuperviseError("agent name %r is not one botbottle writes" % (agent,))
    return os.path.join(agents_root(state_root), agent, APPROVED)


def read_agent_approved(state_root, agent):
    """The approvals recorded for every bottle of ``agent`` (``scope: agent``)."""
    return read_approved(os.path.dirname(agent_approved_path(state_root, agent)))


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


def route_credential(proposal):
    """The credential (token_ref) approving route ``proposal`` adds to its requests, or None."""
    if proposal.get("kind") != "route":
        return None
    return (route_of(proposal).get("auth") or {}).get("token_ref") or None


def credential_serves(state_dir, ref, agent_approved=None):
    """The hosts whose route carries credential ``ref`` in the bottle's policy, sorted: the policy its files were
    rendered from (bundle-source.json) with its approvals (and its agent's, ``agent_approved``) merged, as an
    approval renders it. Read from the operator's side of the store, never from a proposal."""
    try:
        policy, _options = bc.read_source(state_dir)
        merged = bc.merge_approved(policy, bc.combine_approved(read_approved(state_dir), agent_approved))
    except bc.BundleConfigError as exc:
        raise SuperviseError(str(exc))
    return sorted({str(route.get("host", "")).lower() for route in (merged.get("egress") or {}).get("routes") or []
                   if isinstance(route, dict) and (route.get("auth") or {}).get("token_ref") == ref})


def _path_rule(rule):
    return rule.get("type", "prefix"), rule.get("value")


def _show_rule(rule):
    kind, value = _path_rule(rule)
    return "%s %s" % (kind, value)


def _rule_inside(rule, asked):
    """Whether every path ``rule`` matches is matched by the asked rule (decidable cases only)."""
    kind, value = _path_rule(rule)
    asked_kind, asked_value = _path_rule(asked)
    if kind == asked_kind and value == asked_value:
        return True
    if kind == "exact":
        if asked_kind == "prefix":
            return value.startswith(asked_value)
        if asked_kind == "regex":
            return re.fullmatch(asked_value, value) is not None
        return False
    if kind == "prefix":
        return asked_kind == "prefix" and value.startswith(asked_value)
    return False  # a regex is inside only the very same regex: anything else cannot be checked


def _check_entry_shape(entry, where):
    """The shapes the narrowing check reads (the values are validated like a policy afterwards)."""
    paths = entry.get("paths", [])
    if not isinstance(paths, list) or not all(isinstance(rule, dict) for rule in paths):
        raise SuperviseError("%s.paths must be a list of {type: exact|prefix|regex, value: /path} rules" % where)
    if not isinstance(entry.get("methods", []), list):
        raise SuperviseError("%s.methods must be a list of HTTP methods" % where)
    if not isinstance(entry.get("headers", {}), dict):
        raise SuperviseError("%s.headers must be a mapping of Header-Name: value" % where)


def _entry_widening(entry, asked, where):
    """What ``entry`` (merged) allows that the asked entry did not: a list of sentences, empty when none."""
    found = []
    asked_paths = asked.get("paths") or []
    if asked_paths:
        paths = entry.get("paths") or []
        if not paths:
            found.append("%s would drop the paths the request was limited to (%s): every path would be allowed"
                         % (where, ", ".join(_show_rule(r) for r in asked_paths)))
        for index, rule in enumerate(paths):
            if not any(_rule_inside(rule, other) for other in asked_paths):
                found.append("%s.paths[%d] %s is not inside the paths asked (%s)%s"
                             % (where, index, _show_rule(rule), ", ".join(_show_rule(r) for r in asked_paths),
                                " - a regex can only be kept as asked" if _path_rule(rule)[0] == "regex" else ""))
    asked_methods = [str(m).upper() for m in asked.get("methods") or []]
    if asked_methods:
        methods = [str(m).upper() for m in entry.get("methods") or []]
        if not methods:
            found.append("%s would drop the methods the request was limited to (%s): every method would be allowed"
                         % (where, ", ".join(asked_methods)))
        added = [m for m in methods if m not in asked_methods]
        if added:
            found.append("%s would add method %s, which the request did not ask (it asked %s)"
                         % (where, ", ".join(added), ", ".join(asked_methods)))
    headers = {str(k).lower(): v for k, v in (entry.get("headers") or {}).items()}
    for name, value in (asked.get("headers") or {}).items():
        if headers.get(str(name).lower()) != value:
            found.append("%s would drop or change the required header %s: %s" % (where, name, value))
    return found


def merge_matches(asked, change, where="changes.matches"):
    """The route ``matches`` an operator's ``change`` makes of the ``asked`` ones; SuperviseError if it widens.

    Entries are merged by position: a key the change's entry omits keeps the asked value, ``null`` for a
    key removes it, ``null`` for a whole entry drops that entry. A change may only narrow: every
    merged entry must allow a subset of what its asked entry allowed (paths inside the asked ones,
    methods among the asked ones, the asked headers kept). Without asked matches (every request
    allowed) the change is taken as it is.
    """
    if change is None or change == []:
        if asked:
            raise SuperviseError(
                "%s would drop every restriction the request had (%s): every request to the host would be "
                "allowed. Give the entries to keep, or reject with a note and let the agent ask again"
                % (where, json.dumps(asked, sort_keys=True)))
        return change
    if not isinstance(change, list):
        raise SuperviseError("%s must be a list of {paths, methods, headers} entries" % where)
    if not asked:
        return change
    if len(change) != len(asked):
        raise SuperviseError(
            "%s has %d entr%s and the request has %d: give one entry per requested entry, in the same order "
            "({} keeps an entry as asked, null drops it, an entry's omitted keys keep the asked values); the "
            "request: %s" % (where, len(change), "y" if len(change) == 1 else "ies", len(asked),
                             json.dumps(asked, sort_keys=True)))
    merged, widening = [], []
    for index, (entry, before) in enumerate(zip(change, asked)):
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise SuperviseError("%s[%d] must be a mapping of paths, methods and headers (or null to drop it)"
                                 % (where, index))
        combined = dict(before)
        for key, value in entry.items():
            if value is None:
                combined.pop(key, None)
            else:
                combined[key] = value
        _check_entry_shape(combined, "%s[%d]" % (where, index))
        widening.extend(_entry_widening(combined, before, "%s[%d]" % (where, index)))
        merged.append(combined)
    if widening:
        raise SuperviseError(
            "a change may only narrow what the agent asked, and this one widens it: %s. Narrow within the "
            "request, or reject it with a note and let the agent ask again" % "; ".join(widening))
    if not merged:
        raise SuperviseError("%s drops every entry the request had: reject the proposal instead (with a note)"
                             % where)
    return merged


def _wildcard_inside(host, asked):
    """Whether wildcard ``host`` (``*.x``) matches only hosts the asked host (wildcard or not) matches."""
    if not asked.startswith("*."):
        return False
    suffix, asked_suffix = host[2:], asked[2:]
    return suffix == asked_suffix or suffix.endswith("." + asked_suffix)


def check_host_change(proposal, host):
    """A new ``host`` for a domain or route proposal: another exact host is the operator's choice; a
    wildcard only inside the wildcard the agent asked for (else SuperviseError)."""
    asked = str(proposal.get("host") or "").lower()
    if host.startswith("*.") and host != asked and not _wildcard_inside(host, asked):
        raise SuperviseError(
            "changes.host %s would allow every host under %s, and the request asked for %s only: approve %s (or "
            "another single host), or add %s to the policy's allowed_domains (bottle_policies) if every one of "
            "those hosts is meant" % (host, host[2:], asked or "nothing", asked or "a single host", host))


def apply_changes(proposal, changes):
    """``proposal`` with the operator's ``changes``, validated like a policy; (new proposal, before-values).

    A change narrows and never widens: ``matches`` is merged over the asked ones (``merge_matches``),
    a wildcard host stays inside the asked one (``check_host_change``).
    """
    changes = dict(changes or {})
    allowed = EDITABLE[proposal["kind"]]
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise SuperviseError("changes.%s cannot be changed on a %s proposal: change %s"
                             % (unknown[0], proposal["kind"], ", ".join(allowed) or "nothing (answer with a note)"))
    if "host" in changes and isinstance(changes["host"], str):
        changes["host"] = changes["host"].lower()
        if manifest.is_host(changes["host"]):
            check_host_change(proposal, changes["host"])
    if "matches" in changes:
        merged = merge_matches(proposal.get("matches"), changes["matches"])
        if merged is None:
            changes.pop("matches")
        else:
            changes["matches"] = merged
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
        why = manifest.host_error(host)
        if why:
            raise SuperviseError("host %s" % why)
        updated["host"] = host.lower()
    elif proposal["kind"] == "route":
        try:
            manifest.check_route(route_of(updated), "proposal %s" % proposal["id"])
        except manifest.ManifestError as exc:
            raise SuperviseError(str(exc))
        updated["host"] = updated["host"].lower()
    return updated, before


def add_approval(approved, proposal):
    """``approved`` (domains and routes) with what a domain or route ``proposal`` asks added (a copy)."""
    approved = {"domains": list(approved.get("domains") or []), "routes": list(approved.get("routes") or [])}
    if proposal["kind"] == "domain":
        if proposal["host"] not in approved["domains"]:
            approved["domains"].append(proposal["host"])
    elif proposal["kind"] == "route":
        route = route_of(proposal)
        if route not in approved["routes"]:
            approved["routes"] = [r for r in approved["routes"] if r.get("host") != route["host"]] + [route]
    return approved


def plan_approval(state_dir, proposal, tokens, agent_approved=None):
    """The write that makes the bottle allow what ``proposal`` (domain or route) asks; tokens: ref -> value.

    ``agent_approved``: the bottle's agent's approvals (``read_agent_approved``), folded into the
    bottle's supervise-approved.json as the role merges them at launch (``combine_approved``).
    Nothing is written here: the caller shows ``diff()`` (check mode) or calls ``apply()``, then hashes
    the state directory with ``bundle_config.config_hash``.
    """
    try:
        policy, options = bc.read_source(state_dir)
        private = bc.read_private(state_dir, options["pipelock"])
        approved = bc.combine_approved(read_approved(state_dir), agent_approved)
    except bc.BundleConfigError as exc:
        raise SuperviseError(str(exc))
    if proposal["kind"] == "route":
        route = route_of(proposal)
        same = [r for r in (policy.get("egress") or {}).get("routes") or []
                if str(r.get("host", "")).lower() == route["host"]]
        if same and same[0] != route:
            raise SuperviseError("%s already has a route: change it in the policy (bottle_policies) instead"
                                 % route["host"])
    approved = add_approval(approved, proposal)
    if proposal["kind"] == "route":
        ref = (route.get("auth") or {}).get("token_ref")
        if ref:
            value = (tokens or {}).get(ref)
            if value in (None, "") and ref not in private["tokens"]:
                raise SuperviseError(
                    "route %s needs credential %s, which the operator must supply: pass tokens: {%s: ...} (the "
                    "playbook botbottle.bottle.supervise looks it up as an Ansible variable, else an environment "
                    "variable of the controller, like botbottle.bottle.bottle)" % (route["host"], ref, ref))
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
