# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_info archived=true: the archives teardown made, with what their audit counts."""

from __future__ import annotations

import datetime
import json

from ansible_collections.botbottle.bottle.plugins.module_utils import audit_archive
from ansible_collections.botbottle.bottle.plugins.modules import bottle_info
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import FakeEngine, run_module


def jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def archive_of(tmp_path, slug, agent, when):
    state = tmp_path / "state" / slug
    jsonl(state / "audit" / "egress.jsonl", [
        {"ts": 1.0, "event": "connect", "host": "pypi.org", "action": "allow"},
        {"ts": 2.0, "event": "request", "host": "pypi.org", "action": "allow"},
        {"ts": 3.0, "event": "connect", "host": "evil.example", "action": "block", "rule": "allowlist"}])
    jsonl(state / "supervise" / "audit.jsonl", [
        {"event": "proposed", "id": "0123456789abcdef"}, {"event": "proposed", "id": "1111222233334444"},
        {"event": "rejected", "id": "0123456789abcdef"}])
    (state / "meta.json").write_text(json.dumps({"slug": slug, "agent": agent, "policy": "p", "backend": "docker",
                                                 "created": "2026-12-01T00:00:00Z"}))
    return audit_archive.create(str(state), str(tmp_path / "archive"), slug, host="laptop",
                                now=datetime.datetime(2026, 12, 2, when, tzinfo=datetime.timezone.utc))["path"]


def test_archives_are_listed_with_their_counts(tmp_path):
    first = archive_of(tmp_path, "demo", "demo", 9)
    second = archive_of(tmp_path, "other", "other", 10)
    args = {"state_root": str(tmp_path / "state-none"), "archived": True, "archive_root": str(tmp_path / "archive")}
    archives = run_module(bottle_info, FakeEngine().client, args)["archives"]
    assert [a["path"] for a in archives] == [second, first]
    got = archives[1]
    assert {k: got[k] for k in ("slug", "agent", "policy", "backend", "created", "archived", "host", "asks",
                                "decisions", "allowed", "refused", "held", "problems")} == {
        "slug": "demo", "agent": "demo", "policy": "p", "backend": "docker", "created": "2026-12-01T00:00:00Z",
        "archived": "2026-12-02T09:00:00Z", "host": "laptop", "asks": 2, "decisions": 1, "allowed": 1,
        "refused": 1, "held": 0, "problems": []}
    assert [r["host"] for r in got["firewall"]] == ["evil.example", "pypi.org"]
    # filtered like the live bottles; absent without archived=true
    assert [a["slug"] for a in run_module(bottle_info, FakeEngine().client, dict(args, agent="other"))["archives"]] \
        == ["other"]
    assert [a["slug"] for a in run_module(bottle_info, FakeEngine().client, dict(args, slug="demo"))["archives"]] \
        == ["demo"]
    assert "archives" not in run_module(bottle_info, FakeEngine().client, dict(args, archived=False))


def test_archive_events_adds_the_supervise_events(tmp_path):
    archive_of(tmp_path, "demo", "demo", 9)
    args = {"state_root": str(tmp_path / "state-none"), "archived": True, "archive_root": str(tmp_path / "archive")}
    assert "events" not in run_module(bottle_info, FakeEngine().client, args)["archives"][0]
    got = run_module(bottle_info, FakeEngine().client, dict(args, archive_events=True))["archives"][0]
    assert [(e["event"], e["id"]) for e in got["events"]] == [
        ("proposed", "0123456789abcdef"), ("proposed", "1111222233334444"), ("rejected", "0123456789abcdef")]
