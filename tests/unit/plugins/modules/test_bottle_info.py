# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_info against the in-memory engine: labels and state dirs, filtered."""

from __future__ import annotations

import json

from ansible_collections.botbottle.bottle.plugins.modules import bottle_info, bottle_network
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import FakeEngine, run_module


def launch(engine, slug, agent):
    run_module(bottle_network, engine.client, {"slug": slug, "agent": agent, "pool": "10.9.0.0/16"})


def test_lists_by_labels_and_state_dirs_with_filters(tmp_path):
    engine = FakeEngine()
    engine.add_network("unrelated", subnet="10.8.0.0/24")
    launch(engine, "demo", "demo")
    launch(engine, "demo-two", "demo")
    launch(engine, "other", "other")
    (tmp_path / "demo").mkdir()
    meta = {"agent": "demo", "backend": "docker", "created": "2026-11-22T00:00:00Z"}
    (tmp_path / "demo" / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "orphan").mkdir()  # a state dir with nothing running
    (tmp_path / "Not A Slug").mkdir()

    everything = run_module(bottle_info, engine.client, {"state_root": str(tmp_path)})["bottles"]
    assert [b["slug"] for b in everything] == ["demo", "demo-two", "orphan", "other"]
    demo = everything[0]
    assert demo["created"] == "2026-11-22T00:00:00Z" and demo["state_dir"] == str(tmp_path / "demo")
    assert [n["name"] for n in demo["networks"]] == ["bb-demo-net-int", "bb-demo-net-out"]

    by_agent = run_module(bottle_info, engine.client, {"state_root": str(tmp_path), "agent": "demo"})["bottles"]
    assert [b["slug"] for b in by_agent] == ["demo", "demo-two"]
    one = run_module(bottle_info, engine.client, {"state_root": str(tmp_path), "slug": "demo-two"})["bottles"]
    assert [b["slug"] for b in one] == ["demo-two"] and one[0]["state_dir"] is None


def test_images_are_looked_up_in_order(tmp_path):
    engine = FakeEngine()
    bundle = engine.add_image("botbottle/bundle:latest")
    result = run_module(bottle_info, engine.client, {"state_root": str(tmp_path),
                                                     "images": ["botbottle/bundle:latest", "botbottle/agent:latest"]})
    assert result["images"] == [{"name": "botbottle/bundle:latest", "present": True, "id": bundle.id},
                                {"name": "botbottle/agent:latest", "present": False, "id": None}]
    assert not result["changed"]


def test_no_images_asked_none_reported(tmp_path):
    result = run_module(bottle_info, FakeEngine().client, {"state_root": str(tmp_path / "absent")})
    assert result["images"] == [] and result["bottles"] == []


def test_fleet_view_health_proposals_age_orphans_and_filters(tmp_path):
    import pytest
    from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import Failed

    engine = FakeEngine()
    launch(engine, "demo", "demo")
    launch(engine, "ghost", "demo")  # labelled objects, no state dir
    (tmp_path / "demo" / "supervise" / "proposals").mkdir(parents=True)
    (tmp_path / "demo" / "meta.json").write_text(json.dumps({"agent": "demo", "created": "2020-01-01T00:00:00Z"}))
    (tmp_path / "demo" / "supervise" / "proposals" / "p1.json").write_text('{"status": "pending"}')
    (tmp_path / "husk").mkdir()
    (tmp_path / "husk" / "meta.json").write_text(json.dumps({"agent": "demo", "created": "2099-01-01T00:00:00Z"}))

    found = {b["slug"]: b for b in run_module(bottle_info, engine.client,
                                              {"state_root": str(tmp_path), "health": True})["bottles"]}
    assert {s: b["orphan"] for s, b in found.items()} == {"demo": None, "ghost": "no-state", "husk": "no-objects"}
    assert found["demo"]["proposals_pending"] == 1 and found["demo"]["health"] == {}  # no bundle runs
    assert found["demo"]["age_seconds"] > 86400 and found["ghost"]["age_seconds"] is None

    def slugs(**args):
        return [b["slug"] for b in run_module(bottle_info, engine.client, dict(state_root=str(tmp_path), **args))["bottles"]]

    assert slugs(orphans=True) == ["ghost", "husk"]
    assert slugs(older_than="1d") == ["demo"]
    assert slugs(older_than="1d", orphans=True) == []
    assert "health" not in run_module(bottle_info, engine.client, {"state_root": str(tmp_path)})["bottles"][0]
    with pytest.raises(Failed, match="older_than: '2 days' is not a duration"):
        slugs(older_than="2 days")
