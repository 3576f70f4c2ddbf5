# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stop a run before anything is created, printing the reason once (documented in modules/preflight_fail.py).

ansible-core 2.19 prints a failed task's message twice: in the ``[ERROR]`` block, from the
exception, and in the ``fatal: ... FAILED! =>`` line, from the result's ``msg``. This action
raises the reason as the exception (the ``[ERROR]`` line) and gives the result a ``msg`` of its
own that says what happened instead (``outcome``), so a person reads the reason once.
"""

from __future__ import annotations

from ansible.errors import AnsibleAction, AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

DEFAULT_OUTCOME = "stopped before anything was created"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("msg", "outcome"))

    def run(self, tmp=None, task_vars=None):
        super().run(tmp, task_vars)
        args = self._task.args
        msg = args.get("msg")
        if isinstance(msg, (list, tuple)):
            msg = "\n".join(to_text(line) for line in msg)
        msg = to_text(msg).strip() if msg is not None else ""
        if not msg:
            raise AnsibleActionFail("preflight_fail: msg is required: say what is wrong, where, and the fix")
        outcome = to_text(args.get("outcome") or DEFAULT_OUTCOME)
        raise AnsibleAction(msg, result={"failed": True, "changed": False, "msg": outcome})
