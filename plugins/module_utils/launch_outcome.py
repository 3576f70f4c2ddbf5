# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a launch did to its bottle, or in check mode would do: the one owner of that text and of "what changed".

Computed from the modules' own results (each phase's: networks, state directory, bundle, agent image archive,
agent container or VM). The role's closing message prints ``text``; the fleet's summary takes ``status``.
Hosts and routes come from bottle_state's ``policy_changes`` (names only, never a credential). Pure Python.
"""

from __future__ import annotations

# Each phase's result key, and how the closing message names it.
PHASES = (("networks", "networks"), ("state", "state directory"), ("archive", "agent image archive"),
          ("bundle", "sidecar bundle"), ("relay", "socket relay"), ("agent", "agent container"))


def _changed(result):
    return bool((result or {}).get("changed"))


def _signed(changes, key):
    return ["+" + x for x in changes.get(key + "_added") or []] + ["-" + x for x in changes.get(key + "_removed") or []]


def policy_summary(changes):
    """``hosts +a -b; routes +r; firewall +k`` from bottle_state's policy_changes ('' for none)."""
    changes = changes or {}
    parts = []
    for key, label, sep in (("hosts", "hosts", " "), ("routes", "routes", ", "), ("other", "firewall", " ")):
        signed = _signed(changes, key)
        if signed:
            parts.append(label + " " + sep.join(signed))
    return "; ".join(parts)


def _container_part(label, result, preexisting, check_mode):
    """The words for the bundle or the agent (None: it did not change)."""
    result = result or {}
    # A step check mode skips (the VM of an image not archived yet) is one it would take.
    if not (_changed(result) or (check_mode and result.get("skipped"))):
        return None
    # Created: the container modules say so (created); a module that does not, by its diff.
    created = result["created"] if "created" in result else ((result.get("diff") or {}).get("before") or {}) == {}
    if not preexisting or created:
        return label
    if result.get("updated_in_place"):
        return "%s updated in place (%s)" % (label, ", ".join(result["updated_in_place"]))
    if result.get("recreated_for"):
        return "%s recreated (%s)" % (label, ", ".join(result["recreated_for"]))
    if result.get("restarted"):
        return label + " started"
    return label + " reloads its configuration" if label == "sidecar bundle" else label


def outcome(slug, agent, policy, backend, preexisting, check_mode, results, launched=None):
    """``{"text", "changed", "status", "why"}`` of one launch.

    ``results``: the phases' module results by key of ``PHASES`` (a missing one did not run); ``launched``:
    bottle_launch's own result (its stamp's ``current`` and ``reason``)."""
    results = results or {}
    preexisting = bool(preexisting)
    changed = not preexisting or any(_changed(results.get(key)) for key, _label in PHASES)
    parts = []
    for key, label in PHASES:
        result = results.get(key) or {}
        if key in ("bundle", "agent"):
            if key == "agent" and backend == "smolmachines":
                label = "agent VM"
            part = _container_part(label, result, preexisting, check_mode)
        elif not _changed(result):
            part = None
        elif key == "state":
            summary = policy_summary(result.get("policy_changes"))
            part = label + (" (%s)" % summary if summary else "")
        elif key == "relay":
            # A new bottle's relay is one of what was created; a running bottle's says what happened to it.
            part = label if not preexisting else "%s %sed" % (label, result.get("action") or "start")
        else:
            part = label
        if part:
            parts.append(part)
    name = "bottle %s (agent %s, policy %s)" % (slug, agent, policy)
    listed = ", ".join(parts)
    if check_mode and not preexisting:
        text = "check mode: %s would be created: %s; nothing was changed" % (name, listed)
    elif check_mode and parts:
        text = "check mode: %s is running; this launch would change: %s; nothing was changed" % (name, listed)
    elif check_mode:
        text = "check mode: %s is running, nothing would change" % name
    elif not preexisting:
        text = "%s is running (created: %s)" % (name, listed)
    elif parts:
        text = "%s is running (changed: %s)" % (name, listed)
    else:
        text = "%s is running (nothing changed)" % name
    if (launched or {}).get("current"):
        why = "nothing to do: the bottle runs as this launch would leave it"
    else:
        why = (launched or {}).get("reason") or ""
    status = "started" if not preexisting else ("updated" if changed else "unchanged")
    return {"text": text, "changed": changed, "status": status, "why": why}
