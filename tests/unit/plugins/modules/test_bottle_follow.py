# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_follow (module side): one poll of an async job's results file and its progress file."""

from __future__ import annotations

import json

import pytest

from ansible_collections.botbottle.bottle.plugins.modules import bottle_follow
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import Failed, run_module


@pytest.fixture
def job(tmp_path):
    results = tmp_path / "j123.456"
    results.write_text(json.dumps({"started": True, "finished": False, "ansible_job_id": "j123.456"}))
    progress = tmp_path / "build.progress"
    progress.write_text('{"event": "step", "n": 1, "of": 2, "t": 0.1, "text": "FROM x"}\n')
    return results, progress


def poll(results, progress, offset=0):
    return run_module(bottle_follow, None, {"results_file": str(results), "progress_file": str(progress),
                                            "offset": offset})


def test_a_running_job_gives_its_new_events(job):
    results, progress = job
    first = poll(results, progress)
    assert not first["finished"] and [e["n"] for e in first["events"]] == [1] and "result" not in first
    assert poll(results, progress, first["offset"])["events"] == []


def test_a_finished_job_gives_its_result_its_last_events_and_cleans_up(job):
    results, progress = job
    offset = poll(results, progress)["offset"]
    with open(progress, "a") as handle:
        handle.write('{"event": "step", "n": 2, "of": 2, "t": 3.0, "text": "RUN y"}\n')
    results.write_text(json.dumps({"changed": True, "built": True, "image": {"name": "x:1"}}))
    done = poll(results, progress, offset)
    assert done["finished"] and done["result"]["built"] and [e["n"] for e in done["events"]] == [2]
    assert not results.exists() and not progress.exists()


def test_no_results_file_says_how_to_start_the_job(tmp_path):
    with pytest.raises(Failed, match="start the task with async and poll: 0"):
        poll(tmp_path / "missing", tmp_path / "p")
