# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent's OOM kills: the cgroup's oom_kill count found from the host (v1, v2, a nested engine, by id,
inside the container), and dated by the first look that sees it rise."""

from __future__ import annotations

import json
import types

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import agent_oom

CID = "c0ffee" * 10 + "abcd"


class Container:
    def __init__(self, pid=4242, status="running", inside=None):
        self.id, self.status = CID, status
        self.attrs = {"State": {"Pid": pid}}
        self.inside = inside or {}
        self.execs = []

    def exec_run(self, argv, user="", demux=True, environment=None):
        self.execs.append((argv, user))
        text = self.inside.get(argv[-1])
        return types.SimpleNamespace(exit_code=0 if text else 1,
                                     output=((text or "").encode(), b"" if text else b"No such file"))


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def roots(tmp_path):
    return tmp_path / "proc", tmp_path / "cgroup"


def read(container, roots):
    return agent_oom.read_count(container, proc=str(roots[0]), cgroup=str(roots[1]))


def test_cgroup_v1_from_the_process(roots):
    proc, cgroup = roots
    write(proc / "4242" / "cgroup", "4:memory:/docker/%s\n0::/docker/%s\n" % (CID, CID))
    write(cgroup / "memory" / "docker" / CID / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    assert read(Container(), roots) == (3, "cgroup v1")


def test_cgroup_v2_systemd_driver(roots):
    proc, cgroup = roots
    path = "/system.slice/docker-%s.scope" % CID
    write(proc / "4242" / "cgroup", "0::%s\n" % path)
    write(cgroup / path.lstrip("/") / "memory.events", "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n")
    assert read(Container(), roots) == (2, "cgroup v2")


def test_a_nested_engine_finds_the_tail_of_the_path(roots):
    # An engine inside a container: the process's path names the outer container too.
    proc, cgroup = roots
    write(proc / "4242" / "cgroup", "0::/docker/outer123/docker/%s\n" % CID)
    write(cgroup / "docker" / CID / "memory.events", "oom 1\noom_kill 1\n")
    assert read(Container(), roots) == (1, "cgroup v2")


def test_inside_the_container_when_the_host_view_is_not_there(roots):
    container = Container(inside={"/sys/fs/cgroup/memory.events": "oom 5\noom_kill 5\n"})
    assert read(container, roots) == (5, "exec") and container.execs[0][1] == "0"


def test_a_stopped_agent_has_no_count(roots):
    count, why = read(Container(status="exited"), roots)
    assert count is None and why == "the agent container is exited"


def test_the_first_look_at_a_rise_dates_it(tmp_path):
    assert agent_oom.observe(str(tmp_path), CID, 0, now="T0") == {"kills": 0, "last": None, "count": 0}
    assert agent_oom.observe(str(tmp_path), CID, 1, now="T1") == {"kills": 1, "last": "T1", "count": 1}
    # no rise: the time stays the first look's
    assert agent_oom.observe(str(tmp_path), CID, 1, now="T2") == {"kills": 1, "last": "T1", "count": 1}
    assert agent_oom.observe(str(tmp_path), CID, 3, now="T3") == {"kills": 3, "last": "T3", "count": 3}
    assert json.loads((tmp_path / agent_oom.STATE_FILE).read_text()) == {
        "container": CID, "count": 3, "kills": 3, "last": "T3"}
    # a recreated agent counts from 0 and the bottle's kills add up
    assert agent_oom.observe(str(tmp_path), "other", 1, now="T4") == {"kills": 4, "last": "T4", "count": 1}
    # unreadable (stopped): what was recorded
    assert agent_oom.observe(str(tmp_path), "other", None, now="T5") == {"kills": 4, "last": "T4", "count": None}


def test_check_mode_records_nothing(tmp_path):
    assert agent_oom.observe(str(tmp_path), CID, 2, now="T1", record=False)["kills"] == 2
    assert not (tmp_path / agent_oom.STATE_FILE).exists()
