# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One module running several others' work as phases, in one process (one Ansible round trip).

A phase is the logic of a module (its manager or run function in module_utils) given a ``Phase``
in place of the module: the phase's own options, checked against that module's argument spec with
its defaults filled, and the host module's check mode, diff, warnings and failure. Values of the
phase's ``no_log`` options are masked in everything the host module returns.

API:
- ``Phase(module, name, spec, params, raise_failures=False)``: ``params`` (a dict) checked against
  ``spec``; a bad or missing option fails the host module naming ``<name>.<option>``. Then
  ``.params``, ``.check_mode``, ``._diff``, ``.fail_json(msg=..., **details)``, ``.warn(msg)``.
  ``fail_json`` fails the host module, or with ``raise_failures`` raises ``PhaseFailed`` (for a
  phase run in a thread: the host module then fails once, from its own thread, with ``fail(module)``).
- ``merge_diffs(results)``: the ``diff`` of each phase result (a ``{before, after}`` dict or a list
  of them), as one list with a header naming the phase.
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator


class PhaseFailed(Exception):
    """A phase's failure, raised instead of failing the module (``raise_failures``)."""

    def __init__(self, phase, msg, details):
        super().__init__(msg)
        self.phase, self.msg, self.details = phase, msg, details

    def fail(self, module):
        module.fail_json(msg=self.msg, phase=self.phase, **self.details)


class Phase:
    """What a module's logic sees of the module, for one phase of another module."""

    def __init__(self, module, name, spec, params, raise_failures=False):
        self.module = module
        self.name = name
        self.raise_failures = raise_failures
        self.check_mode = module.check_mode
        self._diff = module._diff
        result = ArgumentSpecValidator(spec).validate(dict(params or {}))
        # Secrets of the phase (its no_log options) are masked in the host module's output.
        module.no_log_values.update(result._no_log_values)
        if result.error_messages:
            self.fail_json("%s: %s" % (name, "; ".join(result.error_messages)))
        self.params = result.validated_parameters

    def fail_json(self, msg, **details):
        if self.raise_failures:
            raise PhaseFailed(self.name, msg, details)
        self.module.fail_json(msg=msg, phase=self.name, **details)

    def warn(self, warning):
        self.module.warn(warning)


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
