# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Follow a background task on a managed host and print its progress on the controller as it happens.

Why this shape (issue 15, "long work shows progress"). A module cannot print while it runs: Ansible
shows its one JSON result when it ends, so an image build of several minutes is a silent task.
Options weighed:
- ``async`` with ``poll: N`` alone: Ansible polls with async_status, whose answer is only the job's
  results file, written when the job starts and when it ends, so every poll result (and any callback
  plugin listening to ``v2_runner_on_async_poll``) carries nothing in between; the default callback
  also prints an ``ASYNC POLL ... finished=0`` line per poll.
- a stdout callback plugin: it would replace the user's own choice of callback and still receives
  nothing until a task (or a poll) ends - it can only reformat, not reveal progress.
- one task per stage: a docker build is one engine call; its steps cannot be split into tasks, and a
  foreground ``docker build`` before the playbook would duplicate bottle_image's inputs hash and leave
  builds on fleet hosts silent.
- a progress file tailed by the Makefile/demo script: works on localhost only, and not for a user who
  runs the playbook.
So the long module runs in the background (``async``, ``poll: 0``) and appends progress events to a
file on the host; this action polls that file over the task's own connection (any host, any
connection plugin) with the bottle_follow module, and prints each new event as one whole line through
Ansible's display, which a worker process forwards to the terminal at once. Lines are plain text
(no carriage returns), at most one per step, a ``still running`` heartbeat after a silent minute.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.botbottle.bottle.plugins.plugin_utils.progress import Line, follow

display = Display()
MODULE = "botbottle.bottle.bottle_follow"


class ActionModule(ActionBase):

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        job = args.get("job") or {}
        if not isinstance(job, dict):
            result.update(failed=True, msg="job must be the registered result of a task run with async and poll: 0 "
                                           "(a dict), not %s" % type(job).__name__)
            return result
        if "ansible_job_id" not in job or job.get("finished"):
            # The task ran in the foreground (check mode, async 0) or was skipped: its result is ours.
            result.update(dict((k, v) for k, v in job.items() if not k.startswith("_ansible")))
            return result
        if not job.get("results_file"):
            result.update(failed=True, msg="job has no results_file: register the task started with async and poll: 0")
            return result
        line = Line(args.get("kind") or "progress", self._task.delegate_to or task_vars.get("inventory_hostname", "?"),
                    args.get("label") or "job")

        def poll(offset):
            return self._execute_module(module_name=MODULE, task_vars=task_vars, module_args={
                "results_file": job["results_file"], "progress_file": args.get("progress_file"),
                "offset": offset, "cleanup": bool(args.get("cleanup", True))})

        try:
            outcome = follow(poll, display.display, line, timeout=int(args.get("timeout", 7200)),
                             interval=float(args.get("interval", 2)), heartbeat=float(args.get("heartbeat", 60)),
                             sleep=time.sleep)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result.update(outcome)
        return result
