# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""fleet_view: durations, ages, orphans, health, pending proposals, filters."""

from __future__ import annotations

import datetime
import json

import pytest

from unittest import mock

from ansible_collections.botbottle.bottle.plugins.module_utils import fleet_view
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import NotFound

NOW = datetime.datetime(2026, 11, 22, 12, 0, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("45m", 2700), ("2h", 7200), ("3d", 259200),
                                           ("1w", 604800), (" 2 h ", 7200), ("0s", 0)])
def test_durations(text, seconds):
    assert fleet_view.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2", "h", "2hours", "-1h", "1.5h", "", "2y"])
def test_bad_durations_name_the_forms(text):
    with pytest.raises(ValueError, match="s m h d or w"):
        fleet_view.parse_duration(text)


def bottle(slug, **kw):
    b = {"slug": slug, "agent": slug, "backend": "docker", "containers": [], "networks": [], "state_dir": None,
         "created": None}
    b.update(kw)
    return b


def test_age_from_meta_else_from_the_oldest_container():
    client = mock.Mock()
    client.containers.get.side_effect = lambda name: mock.Mock(attrs={"Created": {
        "bb-b-bundle": "2026-11-22T10:00:00.123456789Z", "bb-b-agent": "2026-11-22T11:00:00Z"}[name]})
    bottles = [bottle("a", created="2026-11-22T11:00:00Z"),
               bottle("b", containers=[{"name": "bb-b-bundle"}, {"name": "bb-b-agent"}]),
               bottle("c")]
    fleet_view.add_age(client, bottles, now=NOW)
    assert [b["age_seconds"] for b in bottles] == [3600, 7200, None]
    assert bottles[1]["created"] == "2026-11-22T10:00:00Z"


def test_orphans():
    bottles = fleet_view.add_orphan([
        bottle("whole", state_dir="/s/whole", networks=[{"name": "bb-whole-net-int"}]),
        bottle("objects", networks=[{"name": "bb-objects-net-int"}]),
        bottle("husk", state_dir="/s/husk"),
        bottle("vm", state_dir="/s/vm", machines=[{"name": "bb-vm-agent"}]),
    ])
    assert [b["orphan"] for b in bottles] == [None, "no-state", "no-objects", None]


def test_select_combines_filters():
    bottles = [bottle("old", age_seconds=7200, orphan=None), bottle("new", age_seconds=60, orphan=None),
               bottle("unknown", age_seconds=None, orphan="no-state"),
               bottle("old-orphan", age_seconds=9000, orphan="no-objects")]
    assert [b["slug"] for b in fleet_view.select(bottles)] == ["old", "new", "unknown", "old-orphan"]
    assert [b["slug"] for b in fleet_view.select(bottles, older_than=3600)] == ["old", "old-orphan"]
    assert [b["slug"] for b in fleet_view.select(bottles, orphans=True)] == ["unknown", "old-orphan"]
    assert [b["slug"] for b in fleet_view.select(bottles, older_than=3600, orphans=True)] == ["old-orphan"]


def test_health_from_the_running_bundle_only():
    healthy = mock.Mock()
    healthy.exec_run.return_value = mock.Mock(exit_code=0, output=(b'{"pipelock": "healthy", "egress": "down"}', b""))
    broken = mock.Mock()
    broken.exec_run.return_value = mock.Mock(exit_code=126, output=(b"oops", b""))
    client = mock.Mock()
    client.containers.get.side_effect = lambda name: {"bb-a-bundle": healthy, "bb-c-bundle": broken}[name]
    bottles = fleet_view.add_health(client, [
        bottle("a", containers=[{"name": "bb-a-bundle", "component": "bundle", "status": "running"}]),
        bottle("b", containers=[{"name": "bb-b-bundle", "component": "bundle", "status": "exited"}]),
        bottle("c", containers=[{"name": "bb-c-bundle", "component": "bundle", "status": "running"}]),
    ])
    assert bottles[0]["health"] == {"pipelock": "healthy", "egress": "down"}
    assert bottles[1]["health"] == {}
    assert bottles[2]["health"] == {"bundle": "bottle-health gave no report (exit 126)"}
    healthy.exec_run.assert_called_once_with(["bottle-health", "--json"], demux=True)


def proposal_id(n):
    return "%016x" % n


def test_pending_proposals_are_counted(tmp_path):
    proposals = tmp_path / "a" / "supervise" / "proposals"
    proposals.mkdir(parents=True)
    for n, status in ((1, "pending"), (2, "approved"), (3, "pending"), (4, "rejected")):
        (proposals / (proposal_id(n) + ".json")).write_text(
            json.dumps({"id": proposal_id(n), "kind": "domain", "status": status}))
    (proposals / (proposal_id(5) + ".json")).write_text("not json")
    (proposals / (proposal_id(6) + ".json")).write_text("[]")
    bottles = fleet_view.add_proposals([bottle("a", state_dir=str(tmp_path / "a")), bottle("b")])
    assert [b["proposals_pending"] for b in bottles] == [2, 0]


def test_pending_proposals_are_read_by_the_stores_own_rules(tmp_path):
    # What supervise.list_proposals does not trust is not counted: a link, an oversized file,
    # a name that is no proposal id, a kind supervise never writes.
    proposals = tmp_path / "supervise" / "proposals"
    proposals.mkdir(parents=True)
    pending = {"id": proposal_id(1), "kind": "domain", "status": "pending"}
    (tmp_path / "elsewhere.json").write_text(json.dumps(dict(pending, id=proposal_id(2))))
    (proposals / (proposal_id(2) + ".json")).symlink_to(tmp_path / "elsewhere.json")
    (proposals / (proposal_id(3) + ".json")).write_text(
        json.dumps(dict(pending, id=proposal_id(3), pad="x" * 70000)))
    (proposals / "p1.json").write_text(json.dumps(dict(pending, id="p1")))
    (proposals / (proposal_id(4) + ".json")).write_text(json.dumps(dict(pending, id=proposal_id(4), kind="x")))
    assert fleet_view.count_pending(str(tmp_path)) == 0
    (proposals / (proposal_id(1) + ".json")).write_text(json.dumps(pending))
    assert fleet_view.count_pending(str(tmp_path)) == 1


def test_health_of_a_bundle_gone_since_listed_is_left_empty():
    client = mock.Mock()
    client.containers.get.side_effect = NotFound("gone")
    bottles = fleet_view.add_health(client, [
        bottle("a", containers=[{"name": "bb-a-bundle", "component": "bundle", "status": "running"}])])
    assert bottles[0]["health"] == {}
