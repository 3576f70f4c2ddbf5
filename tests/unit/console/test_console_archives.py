# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The console shows the archives of torn-down bottles (key v), read-only, headless (Textual's Pilot).

An archive is made as teardown makes it (audit_archive.create) from a state directory whose audit was
written by the writers of the bottle: egress's Audit (images/bundle/bottle_firewall/audit.py) and
supervise's append_audit.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import json
import os
import pathlib
import sys
import time

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import audit_archive
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as sv
from botbottle_console import backend as bk
from botbottle_console import cli
from botbottle_console.app import ConsoleApp, READ_ONLY

REPO = pathlib.Path(__file__).resolve().parents[3]
WRITER = REPO / "images" / "bundle" / "bottle_firewall" / "audit.py"
ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")
ASK = "0123456789abcdef"
OTHER_ASK = "fedcba9876543210"


def egress_writer(state_dir):
    # egress imports bundle_format from beside its package (images/bundle, /opt/egress in the image): on the path
    # here too, so that this file passes alone as well as after the firewall's tests put it there.
    if str(WRITER.parents[1]) not in sys.path:
        sys.path.insert(0, str(WRITER.parents[1]))
    spec = importlib.util.spec_from_file_location("bb_firewall_audit_console", WRITER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (state_dir / "audit").mkdir(parents=True, exist_ok=True)
    return module.Audit(str(state_dir / "audit" / "egress.jsonl"), stream=open(os.devnull, "w"))


def plant_archive(tmp_path, slug="gone", agent="demo", hour=9):
    """A torn-down bottle's archive: 3 allowed to pypi.org, 2 refused to evil.example, 2 asks, 1 decision."""
    state = tmp_path / ("state-%s-%d" % (slug, hour)) / slug
    (state / "supervise").mkdir(parents=True)
    (state / "meta.json").write_text(json.dumps({"slug": slug, "agent": agent, "policy": agent, "backend": "docker",
                                                 "created": "2026-12-01T08:00:00Z"}))
    audit = egress_writer(state)
    for port in (443, 443, 80):
        audit.record("request", "pypi.org", port, "GET", "/simple/")
    audit.record("connect", "evil.example", 443, "CONNECT", rule="allowlist", action="block", status=403)
    audit.record("request", "evil.example", 443, "GET", "/x?token=secret", rule="allowlist", action="block",
                 status=403)
    sv.append_audit(str(state), {"event": "proposed", "by": "agent", "id": ASK, "kind": "domain",
                                 "host": "evil.example", "time": "2026-12-01T08:10:00Z",
                                 "justification": "the docs live there"})
    sv.append_audit(str(state), {"event": "rejected", "by": "operator", "id": ASK, "kind": "domain",
                                 "host": "evil.example", "time": "2026-12-01T08:11:00Z",
                                 "note": "use the internal mirror"})
    sv.append_audit(str(state), {"event": "proposed", "by": "agent", "id": OTHER_ASK, "kind": "domain",
                                 "host": "files.example", "time": "2026-12-01T08:20:00Z", "justification": "j"})
    made = audit_archive.create(str(state), str(tmp_path / "archive"), slug, host="laptop",
                                now=datetime.datetime(2026, 12, 2, hour, tzinfo=datetime.timezone.utc))
    return made["path"]


async def until(pilot, condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s; the console's log:\n%s"
                                 % (condition.__doc__, "\n".join(pilot.app.history)))
        await pilot.pause(0.05)


def console(tmp_path):
    (tmp_path / "state").mkdir(exist_ok=True)
    backend = bk.LocalBackend(str(tmp_path / "state"), client_factory=None, environ={},
                              archive_root=str(tmp_path / "archive"))
    return ConsoleApp(backend, poll=0.1, bottle_poll=0.5, notifier=None, environ={})


def rows(table):
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def test_an_archive_shows_its_counts_decisions_and_events_read_only(tmp_path):
    path = plant_archive(tmp_path)
    before = sorted((p, open(os.path.join(d, p), "rb").read()) for d, _dirs, fs in os.walk(path) for p in fs)

    async def scenario():
        app = console(tmp_path)
        async with app.run_test(size=(180, 60)) as pilot:
            await until(pilot, lambda: app.problems.get((0, "bottles")) is not None)
            assert app.panes["bottles"].row_count == 0
            await pilot.press("v")

            def shown():
                """the archive in the bottles table"""
                return app.panes["bottles"].row_count == 1 and not app.reading
            await until(pilot, shown)
            got = {
                "archives": rows(app.panes["bottles"]),
                "columns": [str(c.label) for c in app.panes["bottles"].columns.values()],
                "title": str(app.panes["bottles-title"].render()),
                "firewall": rows(app.panes["firewall"]),
                "events": rows(app.panes["asks"]),
                "asks_title": str(app.panes["asks-title"].render()),
            }
            await pilot.press("down")  # the rejection
            await until(pilot, lambda: "use the internal mirror" in str(app.panes["detail"].render()))
            got["detail"] = str(app.panes["detail"].render())
            await pilot.press("a")
            await until(pilot, lambda: READ_ONLY in app.history[-1])
            await pilot.press("r")
            await pilot.pause(0.2)
            got["screen"] = app.screen.__class__.__name__
            got["refusals"] = sum(READ_ONLY in line for line in app.history)
            # back to the live bottles: their columns again
            await pilot.press("v")
            await pilot.pause(0.2)
            got["live_columns"] = [str(c.label) for c in app.panes["bottles"].columns.values()]
            got["live_title"] = str(app.panes["bottles-title"].render())
            got["live_asks"] = app.panes["asks"].row_count
            return got

    got = asyncio.run(scenario())
    assert got["archives"] == [["localhost", "gone", "demo", "2026-12-02T09:00:00Z", "2", "1", "3", "2", "0"]]
    assert got["columns"] == ["machine", "bottle", "agent", "archived", "asks", "decisions", "allowed", "refused", "failed"]
    assert "Archived bottles: 1 under %s" % (tmp_path / "archive") in got["title"]
    assert [(r[0], r[1], r[2], r[6]) for r in got["firewall"]] == [("evil.example", "0", "2", "allowlist 2"),
                                                                   ("pypi.org", "3", "0", "-")]
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in got["events"]] == [
        ("proposed", "agent", ASK, "domain evil.example", "the docs live there"),
        ("rejected", "operator", ASK, "domain evil.example", "use the internal mirror"),
        ("proposed", "agent", OTHER_ASK, "domain files.example", "j")]
    assert "2 asks, 1 decisions (read-only)" in got["asks_title"]
    assert "rejected by operator at 2026-12-01T08:11:00Z" in got["detail"] and READ_ONLY in got["detail"]
    # no decision key acts on an archive: it says so, opens no dialog, and the archive is unchanged
    assert got["screen"] != "NoteScreen" and got["refusals"] >= 2
    after = sorted((p, open(os.path.join(d, p), "rb").read()) for d, _dirs, fs in os.walk(path) for p in fs)
    assert after == before
    assert got["live_columns"][3:5] == ["state", "health"] and got["live_title"].startswith("Bottles") and "Archived" not in got["live_title"]
    assert got["live_asks"] == 0


def test_selecting_another_archive_shows_its_own_record(tmp_path):
    plant_archive(tmp_path, slug="older", hour=8)
    newer = pathlib.Path(plant_archive(tmp_path, slug="newer", agent="other", hour=10))
    # the newer bottle asked nothing and reached one host
    (newer / "supervise" / "audit.jsonl").unlink()
    (newer / "audit" / "egress.jsonl").write_text(
        json.dumps({"ts": 5.0, "event": "request", "host": "github.com", "action": "allow"}) + "\n")

    async def scenario():
        app = console(tmp_path)
        async with app.run_test(size=(180, 60)) as pilot:
            await pilot.press("v")
            await until(pilot, lambda: app.panes["bottles"].row_count == 2 and not app.reading)
            first = (rows(app.panes["bottles"]), rows(app.panes["firewall"]), app.panes["asks"].row_count,
                     str(app.panes["detail"].render()))
            app.set_focus(app.panes["bottles"])
            await pilot.press("down")
            await until(pilot, lambda: app.panes["asks"].row_count == 3)
            return first, rows(app.panes["firewall"])

    first, second_firewall = asyncio.run(scenario())
    archives, firewall, events, detail = first
    assert [(r[1], r[2], r[4], r[6]) for r in archives] == [("newer", "other", "0", "1"), ("older", "demo", "2", "3")]
    assert [r[0] for r in firewall] == ["github.com"] and events == 0
    assert "No supervise event" in detail
    assert [r[0] for r in second_firewall] == ["evil.example", "pypi.org"]


def test_no_archive_says_where_they_would_be(tmp_path):
    async def scenario():
        app = console(tmp_path)
        async with app.run_test(size=(180, 60)) as pilot:
            await pilot.press("v")
            await until(pilot, lambda: not app.reading and "Archived bottles: 0" in str(app.panes["bottles-title"].render()))
            return str(app.panes["detail"].render())

    assert "No archive under %s" % (tmp_path / "archive") in asyncio.run(scenario())


def test_the_archive_root_defaults_as_the_roles():
    defaults = (REPO / "roles" / "bottle" / "defaults" / "main.yml").read_text()
    assert "bottle_archive_root: %s\n" % cli.parser().parse_args([]).archive_root in defaults
    assert cli.parser().parse_args([]).archive_root == audit_archive.DEFAULT_ROOT
    local = cli.build_backend(cli.parser().parse_args(["--archive-root", "/srv/arch", "--state-root", "/srv/st"]))
    assert local.archive_root == "/srv/arch"


@pytest.mark.docker  # bottle_info connects to this machine's engine
def test_an_inventory_hosts_archives_through_bottle_info(tmp_path, monkeypatch):
    plant_archive(tmp_path)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    buildbox:\n      ansible_connection: local\n"
                         "      ansible_python_interpreter: %s\n" % sys.executable)
    monkeypatch.setenv("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    monkeypatch.chdir(REPO)
    backend = bk.AnsibleBackend(str(inventory), ["buildbox"], str(tmp_path / "state-none"), ANSIBLE,
                                archive_root=str(tmp_path / "archive"))
    archives, problems = backend.archives()
    assert problems == []
    assert [(a["inventory_host"], a["slug"], a["asks"], a["decisions"], a["allowed"], a["refused"])
            for a in archives] == [("buildbox", "gone", 2, 1, 3, 2)]
    assert [e["event"] for e in archives[0]["events"]] == ["proposed", "rejected", "proposed"]
    assert [r["host"] for r in archives[0]["firewall"]] == ["evil.example", "pypi.org"]
