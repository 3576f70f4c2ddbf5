#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_follow
short_description: Follow a background task, printing its progress as it happens
version_added: 0.3.0
description:
  - Waits for a task started in the background (C(async) with C(poll) set to 0) and prints, on the controller,
    each progress event it appends to O(progress_file) on the managed host (for example each step of
    an image build by M(botbottle.bottle.bottle_image)), one whole line per event, then a closing line
    with the total time. After O(heartbeat) seconds without a line it prints a C(still running) line.
  - The lines are plain text (no carriage returns or colours), so they read the same in a terminal
    and in a CI log.
  - The task's result is the background task's own result (changed, failed, its return values), so a
    failure of the followed task fails this one with its message.
  - When O(job) is not a background job (the task ran in the foreground, for example in check mode),
    its result is returned as it is.
  - The action runs on the controller and polls the host with this module over the task's connection
    every O(interval) seconds; the job's results file and O(progress_file) are removed when it finishes.
author: botbottle developers (@botbottle)
attributes:
  action:
    support: full
    description: The action plugin loops and prints; the module reads the host's files once per poll.
  check_mode:
    support: full
    description: Follows the job as in a normal run (following changes nothing).
  diff_mode:
    support: none
    description: Nothing to show.
  idempotent:
    support: full
    description: Reports what the followed task reported.
options:
  job:
    description:
      - The registered result of the task started with C(async) and C(poll) set to 0 (its C(ansible_job_id)
        and C(results_file)). Used by the action.
    type: dict
  label:
    description: What is followed, printed in every line (for example the image name).
    type: str
    default: job
  kind:
    description: The first word of every line, in brackets.
    type: str
    default: progress
  progress_file:
    description: The file on the managed host the background task appends its progress events to.
    type: path
  results_file:
    description: The job's results file on the managed host (set by the action from O(job)).
    type: path
  offset:
    description: Byte offset in O(progress_file) up to which events were read (set by the action).
    type: int
    default: 0
  cleanup:
    description: Remove the results file and O(progress_file) once the job has finished.
    type: bool
    default: true
  interval:
    description: Seconds between polls.
    type: float
    default: 2
  heartbeat:
    description: Seconds without a line after which a C(still running) line is printed.
    type: float
    default: 60
  timeout:
    description: Seconds after which a job still running fails this task (it keeps running on the host).
    type: int
    default: 7200
"""

EXAMPLES = r"""
- name: Build the agent image in the background
  botbottle.bottle.bottle_image:
    name: botbottle/agent:latest
    path: /opt/botbottle/images/agent
    progress_file: /tmp/agent-build.progress
  async: 7200
  poll: 0
  register: agent_build

- name: Follow the build (prints "[build] localhost botbottle/agent:latest 0:41 step 3/12 RUN ...")
  botbottle.bottle.bottle_follow:
    job: "{{ agent_build }}"
    kind: build
    label: botbottle/agent:latest
    progress_file: /tmp/agent-build.progress
"""

RETURN = r"""
finished:
  description: Whether the job has finished (the module's answer to one poll, used by the action).
  returned: from the module
  type: bool
events:
  description: The progress events after O(offset) (used by the action).
  returned: from the module
  type: list
  elements: dict
offset:
  description: The byte offset after the events returned (used by the action).
  returned: from the module
  type: int
result:
  description: The job's result once it finished (the action returns its keys as the task's result).
  returned: from the module, when finished
  type: dict
"""

import contextlib
import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils.progress import read_events


def job_state(results_file):
    """``(finished, result)`` from an async job's results file.

    The async wrapper writes ``{"started": true, "finished": false, ...}`` when the job starts and
    the module's own result when it ends (both by rename, so a read sees one or the other)."""
    try:
        with open(results_file, encoding="utf-8") as handle:
            data = json.load(handle)
    except ValueError:
        return False, {}
    if not isinstance(data, dict):
        return True, {"failed": True, "msg": "the job's results file %s does not hold a result" % results_file}
    if "started" in data and not data.get("finished"):
        return False, {}
    return True, data


def poll(module):
    p = module.params
    if not p["results_file"] or not os.path.isfile(p["results_file"]):
        module.fail_json(msg="no background job's results file at %s on this host: start the task with async "
                             "and poll: 0, register it, and pass it as job" % p["results_file"])
    # Events first, then the state: a job that finished between the two reads has all its events read
    # by the next poll, which sees it finished.
    events, offset = read_events(p["progress_file"], p["offset"])
    finished, result = job_state(p["results_file"])
    if finished:
        more, offset = read_events(p["progress_file"], offset)
        events.extend(more)
        if p["cleanup"]:
            for path in (p["results_file"], p["progress_file"]):
                if path:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
    out = {"changed": False, "finished": finished, "events": events, "offset": offset}
    if finished:
        out["result"] = result
    return out


def main():
    module = AnsibleModule(
        argument_spec=dict(
            job=dict(type="dict"),
            label=dict(type="str", default="job"),
            kind=dict(type="str", default="progress"),
            progress_file=dict(type="path"),
            results_file=dict(type="path"),
            offset=dict(type="int", default=0),
            cleanup=dict(type="bool", default=True),
            interval=dict(type="float", default=2),
            heartbeat=dict(type="float", default=60),
            timeout=dict(type="int", default=7200),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**poll(module))


if __name__ == "__main__":
    main()
