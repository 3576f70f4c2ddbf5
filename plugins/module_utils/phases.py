# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One module running several others' work as phases, in one process (one Ansible round trip).

A phase is the logic of a module (its manager or run function in module_utils) given a ``Phase`` in
place of the module: the phase's options, and the host module's check mode, diff, warnings and
failure. The host module's own argument spec holds each phase's options as the nested ``options`` of
one dict option (``nested``), so Ansible validates them, fills their defaults and masks their
``no_log`` values; what the host module sets itself is left out of that spec and added here.

API:
- ``nested(spec, wired, **overrides)``: a module's argument spec, less the options named in ``wired``
  (set by the host module, never by its caller), with ``overrides`` (option -> changed keys, such as
  ``required``) applied; the ``options=`` of the host module's dict option for that phase.
- ``Phase(module, name, params)``: ``params`` (the caller's options of the phase, validated by the host
  module, with the wired ones added). Then ``.params``, ``.check_mode``, ``._diff`` (as the phases'
  logic reads a module), ``.fail_json(msg=..., **details)`` (raises ``PhaseFailed``: a phase may run
  in a thread; the host module fails once, from its own thread), ``.warn(msg)``, and the host module's
  ``.run_command(...)`` and ``.get_bin_path(...)`` (the smolvm CLI, lsof).
- ``with_defaults(spec, params)``: ``params`` with the defaults of ``spec`` filled, for a phase whose
  options the host module sets itself (bottle_remove's ``state=absent``); a bad one raises ValueError.
- ``merge_diffs(results)``: the ``diff`` of each phase result (a ``{before, after}`` dict or a list
  of them), as one list with a header naming the phase.
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator


class PhaseFailed(Exception):
    """A phase's failure, raised instead of failing the module."""

    def __init__(self, phase, msg, details):
        super().__init__(msg)
        self.phase, self.msg, self.details = phase, msg, details


def nested(spec, wired, **overrides):
    """``spec`` less ``wired``, with ``overrides`` ({option: {key: value}}) applied to copies of its options."""
    unknown = sorted((set(wired) | set(overrides)) - set(spec))
    if unknown:
        raise ValueError("not options of this phase: %s" % ", ".join(unknown))
    return {name: dict(option, **overrides.get(name, {})) for name, option in spec.items() if name not in wired}


def with_defaults(spec, params):
    result = ArgumentSpecValidator(spec).validate(dict(params))
    if result.error_messages:
        raise ValueError("; ".join(result.error_messages))
    return result.validated_parameters


class Phase:
    """What a module's logic reads of the module, for one phase of another module."""

    def __init__(self, module, name, params):
        self.name = name
        self.params = params
        self.check_mode = module.check_mode
        self._diff = module._diff
        self._warn = module.warn
        self.run_command = module.run_command
        self.get_bin_path = module.get_bin_path

    def fail_json(self, msg, **details):
        raise PhaseFailed(self.name, msg, details)

    def warn(self, warning):
        self._warn(warning)


def merge_diffs(results):
    """``[(name, result), ...]`` -> one diff list for the host module (the phases' own, headed by name)."""
    merged = []
    for name, result in results:
        diff = (result or {}).get("diff")
        if not diff:
            continue
        for entry in diff if isinstance(diff, list) else [diff]:
            if not entry or entry.get("before") == entry.get("after"):
                continue
            entry = dict(entry)
            entry.setdefault("before_header", "%s (before)" % name)
            entry.setdefault("after_header", "%s (after)" % name)
            merged.append(entry)
    return merged
