# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A test callback: count the module calls a playbook run made on its hosts, as they happened.

A module call is a task result (each item of a loop counts) of an action that has no action plugin of
its own - Ansible's ``normal`` action sends the module to the host and runs it there: stat, slurp,
bottle_launch ... - or of command and shell (action plugins that send their module). Skipped tasks made
no call; set_fact, debug, assert and the like (their own action plugins, run on the controller) and
include_tasks, include_role and meta (run by the strategy) make none either. Written at the end of the run, as JSON, to
the file in BB_MODULE_CALLS_FILE: {"count": N, "calls": [[task name, action], ...]}.

Enable it with ANSIBLE_CALLBACK_PLUGINS=<this folder> ANSIBLE_CALLBACKS_ENABLED=module_calls.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import action_loader


# Action plugins that send their module to the host.
SENDING = ("ansible.builtin.command", "ansible.builtin.shell", "command", "shell")
# Actions the strategy runs on the controller, with no action plugin (and no module).
STRATEGY = ("include_tasks", "include_role", "import_tasks", "import_role", "meta")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "module_calls"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.calls = []
        self._resolved = {}

    def _sends_a_module(self, task):
        action = task.action
        if action not in self._resolved:
            context = action_loader.find_plugin_with_context(action, collection_list=task.collections)
            # No action plugin of its own: the normal action.
            self._resolved[action] = action in SENDING or (
                not context.resolved and action.rpartition(".")[2] not in STRATEGY)
        return self._resolved[action]

    def _count(self, result):
        task = result._task
        if task.loop is not None or task.loop_with is not None:
            return  # each item is counted (v2_runner_item_on_*)
        if self._sends_a_module(task):
            self.calls.append([task.get_name(), task.action])

    def _count_item(self, result):
        if self._sends_a_module(result._task):
            self.calls.append([result._task.get_name(), result._task.action])

    def v2_runner_on_ok(self, result):
        self._count(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result)

    def v2_runner_item_on_ok(self, result):
        self._count_item(result)

    def v2_runner_item_on_failed(self, result):
        self._count_item(result)

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["BB_MODULE_CALLS_FILE"], "w", encoding="utf-8") as handle:
            json.dump({"count": len(self.calls), "calls": self.calls}, handle)
