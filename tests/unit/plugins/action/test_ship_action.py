# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_image_ship's action: copy from the controller over a fake transport, then load, with a line
per stage and host (bytes, time, MB/s); and bottle_follow's action passing a foreground result on."""

from __future__ import annotations

from unittest import mock

import pytest

from ansible_collections.botbottle.bottle.plugins.action import bottle_follow as follow_action
from ansible_collections.botbottle.bottle.plugins.action import bottle_image_ship as ship_action


class Shell:
    def __init__(self):
        self.tmpdir = None

    def join_path(self, *parts):
        return "/".join(parts)


def make_action(cls, args, check_mode=False):
    task = mock.MagicMock(args=args, async_val=0, check_mode=check_mode, delegate_to=None, action="x")
    connection = mock.MagicMock(_shell=Shell())
    action = cls(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(), mock.MagicMock())
    action.lines, action.calls, action.moved = [], [], []
    return action


@pytest.fixture
def ship(monkeypatch, tmp_path):
    archive = tmp_path / "6ec5.tar"
    archive.write_bytes(b"x" * 3_000_000)

    def build(args, check_mode=False, load_result=None):
        action = make_action(ship_action.ActionModule, args, check_mode)
        monkeypatch.setattr(ship_action.display, "display", action.lines.append)

        def make_tmp_path():
            action._connection._shell.tmpdir = "/remote/ansible-tmp-1"
            return "/remote/ansible-tmp-1"

        def transfer(local, remote):  # the fake transport: record what moved where
            with open(local, "rb") as handle:
                action.moved.append((remote, len(handle.read())))

        def execute(module_name=None, module_args=None, task_vars=None):
            action.calls.append((module_name, dict(module_args)))
            return dict(load_result or {"changed": True, "loaded": True, "image": {"id": "sha256:6ec5"}})

        action._make_tmp_path = make_tmp_path
        action._transfer_file = transfer
        action._fixup_perms2 = lambda paths: None
        action._remove_tmp_path = lambda path: action.calls.append(("rm", path))
        action._execute_module = execute
        return action
    return archive, build


def test_ship_copies_in_parts_then_loads_and_reports_bytes_per_host(ship, monkeypatch):
    archive, build = ship
    monkeypatch.setattr(ship_action, "PART_BYTES", 1_200_000)
    action = build({"name": "botbottle/bundle:latest", "id": "sha256:6ec5", "src": str(archive)})
    result = action.run(task_vars={"inventory_hostname": "bb-fleet-host1"})
    parts = ["/remote/ansible-tmp-1/6ec5.tar.part-%04d" % i for i in range(3)]
    assert action.moved == list(zip(parts, [1_200_000, 1_200_000, 600_000]))
    assert action.calls[0] == ("botbottle.bottle.bottle_image_ship", {
        "name": "botbottle/bundle:latest", "id": "sha256:6ec5", "archive_parts": parts})
    assert action.calls[-1] == ("rm", "/remote/ansible-tmp-1")
    assert result["loaded"] and result["shipped"]["bytes"] == 3_000_000
    assert len(action.lines) == 3
    assert action.lines[0] == "[ship] bb-fleet-host1 botbottle/bundle:latest copying 3.0 MB"
    assert action.lines[1].startswith("[ship] bb-fleet-host1 botbottle/bundle:latest copied 3.0 MB in ")
    assert action.lines[1].endswith(" MB/s); loading")
    assert action.lines[2].startswith("[ship] bb-fleet-host1 botbottle/bundle:latest loaded in ")


def test_ship_in_check_mode_copies_nothing(ship):
    archive, build = ship
    action = build({"name": "n:1", "id": "sha256:1", "src": str(archive)}, check_mode=True,
                   load_result={"changed": True, "loaded": True})
    result = action.run(task_vars={"inventory_hostname": "h"})
    assert action.moved == [] and action.lines == [] and result["loaded"]
    assert action.calls == [("botbottle.bottle.bottle_image_ship", {"name": "n:1", "id": "sha256:1",
                                                                    "archive": str(archive)})]


def test_ship_a_missing_src_names_it(ship):
    _archive, build = ship
    result = build({"name": "n:1", "id": "sha256:1", "src": "/nonexistent.tar"}).run(task_vars={})
    assert result["failed"] and "src /nonexistent.tar is not a file on the controller" in result["msg"]


def test_a_failed_load_is_reported_and_passed_on(ship):
    archive, build = ship
    action = build({"name": "n:1", "id": "sha256:1", "src": str(archive)},
                   load_result={"failed": True, "msg": "archive holds sha256:2, not sha256:1"})
    result = action.run(task_vars={"inventory_hostname": "h"})
    assert result["failed"] and "not sha256:1" in result["msg"]
    assert "load FAILED after" in action.lines[-1]


def test_follow_passes_a_foreground_result_on():
    action = make_action(follow_action.ActionModule, {"job": {"changed": True, "image": {"id": "x"}}})
    result = action.run(task_vars={"inventory_hostname": "h"})
    assert result["changed"] and result["image"] == {"id": "x"}


def test_follow_polls_the_host_and_prints_on_the_controller(monkeypatch):
    action = make_action(follow_action.ActionModule, {
        "job": {"ansible_job_id": "j1", "started": True, "finished": False, "results_file": "/r/j1"},
        "kind": "build", "label": "img:1", "progress_file": "/p", "interval": 0})
    monkeypatch.setattr(follow_action.display, "display", action.lines.append)
    answers = iter([{"finished": False, "events": [{"event": "step", "t": 1, "n": 1, "of": 1, "text": "RUN x"}],
                     "offset": 50},
                    {"finished": True, "events": [], "offset": 50,
                     "result": {"changed": True, "built": True, "ansible_job_id": "j1"}}])

    def execute(module_name=None, module_args=None, task_vars=None):
        action.calls.append(module_args)
        return next(answers)

    action._execute_module = execute
    action._remove_tmp_path = lambda path: None
    result = action.run(task_vars={"inventory_hostname": "h"})
    assert [c["offset"] for c in action.calls] == [0, 50] and action.calls[0]["results_file"] == "/r/j1"
    assert action.lines[0] == "[build] h img:1 0:01 step 1/1 RUN x"
    assert action.lines[1].startswith("[build] h img:1 0:0") and "built in" in action.lines[1]
    assert result["changed"] and result["built"] and "ansible_job_id" not in result
