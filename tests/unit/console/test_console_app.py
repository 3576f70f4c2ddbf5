# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The console, headless (Textual's Pilot), on a temporary state root: asks appear, keys decide them.

The bottle is laid out by the role's own module (bottle_state); decisions go through
supervise_decide.decide, so what is checked here is the store and the files the real path writes.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import supervise as sv
from ansible_collections.botbottle.bottle.plugins.modules import bottle_state
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import FakeEngine, run_module
from botbottle_console import backend as bk
from botbottle_console.app import ConsoleApp

POLICY = {"allowed_domains": ["allowed.example"], "egress": {"routes": []}}


@pytest.fixture
def slug():
    return "cnsl-" + secrets.token_hex(4)


@pytest.fixture
def root(tmp_path, slug):
    # a state root of its own: approvals for an agent are kept beside it (<state_root>/../agents/)
    tmp_path = tmp_path / "state"
    run_module(bottle_state, None, dict(slug=slug, state_root=str(tmp_path), policy=POLICY,
                                        options={"pipelock": False, "ssrf_ip_allowlist": [],
                                                 "supervise": {"wait_seconds": 5}},
                                        secrets=[], tokens={}))
    (tmp_path / slug / "supervise" / "proposals").mkdir(parents=True)
    (tmp_path / slug / "meta.json").write_text(json.dumps({"slug": slug, "agent": "cnsl"}))
    return tmp_path


def plant(root, slug, **fields):
    """A proposal as supervise's daemon writes it (pending, with a fresh id)."""
    proposal = dict(fields, id=secrets.token_hex(8), status="pending", created=sv.now(), decided=None, note="",
                    justification=fields.get("justification", "the agent needs it"))
    path = root / slug / "supervise" / "proposals" / (proposal["id"] + ".json")
    path.write_text(json.dumps(proposal))
    return proposal["id"]


def stored(root, slug, proposal_id):
    return json.loads((root / slug / "supervise" / "proposals" / (proposal_id + ".json")).read_text())


async def until(pilot, condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s; the console's log:\n%s"
                                 % (condition.__doc__, log_text(pilot.app)))
        await pilot.pause(0.05)


def log_text(app):
    return "\n".join(app.history)


def console(root, notes, environ=None):
    # An in-memory engine: the reload after an approval finds no bundle of the bottle running.
    engine = FakeEngine()
    backend = bk.LocalBackend(str(root), client_factory=None, environ=environ or {},
                              reload_client_factory=lambda: engine.client)
    return ConsoleApp(backend, poll=0.1,
                      bottle_poll=0.5, notifier=lambda title, body: notes.append(body), environ=environ or {})


def test_an_ask_appears_and_a_key_approves_it(root, slug):
    notes = []

    async def scenario():
        app = console(root, notes)
        async with app.run_test(size=(160, 60)) as pilot:
            await until(pilot, lambda: app.bottles)
            assert app.proposals == [] and notes == []
            proposal_id = plant(root, slug, kind="domain", host="pypi.org")

            def seen():
                """the planted ask in the table"""
                return [p["id"] for p in app.proposals] == [proposal_id]
            await until(pilot, seen)
            assert notes == ["%s asks: domain pypi.org" % slug]
            assert "pypi.org" in str(app.query_one("#detail").render())
            await pilot.press("a")

            def approved():
                """the proposal approved in the store"""
                return stored(root, slug, proposal_id)["status"] == "approved"
            await until(pilot, approved)
            await until(pilot, lambda: app.proposals == [] and "done approve" in log_text(app))
            assert "bundle not running" in log_text(app)
        return proposal_id

    asyncio.run(scenario())
    approved = json.loads((root / slug / sv.APPROVED).read_text())
    assert approved["domains"] == ["pypi.org"]
    # the rendered firewall configuration allows it: the role's next run finds nothing to change
    assert "pypi.org" in (root / slug / "bundle" / "egress.json").read_text()
    events = [json.loads(line) for line in (root / slug / "supervise" / "audit.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["approved"] and events[0]["by"] == "operator"


def test_reject_with_a_note_of_several_words(root, slug):
    notes = []

    async def scenario():
        app = console(root, notes)
        async with app.run_test(size=(160, 60)) as pilot:
            proposal_id = plant(root, slug, kind="domain", host="evil.example")
            await until(pilot, lambda: len(app.proposals) == 1)
            await pilot.press("r")
            await until(pilot, lambda: app.screen.__class__.__name__ == "NoteScreen")
            await pilot.press(*"use the internal mirror")
            await pilot.press("enter")
            await until(pilot, lambda: stored(root, slug, proposal_id)["status"] == "rejected")
            return proposal_id

    proposal_id = asyncio.run(scenario())
    assert stored(root, slug, proposal_id)["note"] == "use the internal mirror"
    assert not (root / slug / sv.APPROVED).exists()


def test_escape_sends_no_rejection(root, slug):
    async def scenario():
        app = console(root, [])
        async with app.run_test(size=(160, 60)) as pilot:
            proposal_id = plant(root, slug, kind="domain", host="evil.example")
            await until(pilot, lambda: len(app.proposals) == 1)
            await pilot.press("r")
            await until(pilot, lambda: app.screen.__class__.__name__ == "NoteScreen")
            await pilot.press("escape")
            await pilot.pause(0.3)
            return proposal_id

    assert stored(root, slug, asyncio.run(scenario()))["status"] == "pending"


def test_modify_narrows_a_route_then_approve(root, slug):
    """The operator narrows a route to GET: the asked path limit stays (the merge rule), then approves."""
    env = {"GH_TOKEN": "tok-123"}

    async def scenario():
        app = console(root, [], environ=env)
        async with app.run_test(size=(160, 60)) as pilot:
            proposal_id = plant(root, slug, kind="route", host="api.github.com", auth_ref="GH_TOKEN",
                                matches=[{"methods": ["GET", "POST"],
                                          "paths": [{"type": "prefix", "value": "/repos/our-org/"}]}])
            await until(pilot, lambda: len(app.proposals) == 1)
            assert "credential GH_TOKEN: found" in str(app.query_one("#detail").render())
            await pilot.press("m")
            await until(pilot, lambda: app.screen.__class__.__name__ == "NoteScreen")
            box = app.screen.query_one("Input")
            assert json.loads(box.value)["host"] == "api.github.com"
            box.value = '{"matches": [{"methods": ["GET"]}]}'
            await pilot.press("enter")

            def modified():
                """the proposal modified in the store"""
                return "modified" in stored(root, slug, proposal_id)

            await until(pilot, modified)
            await until(pilot, lambda: not app.deciding and app.proposals
                        and app.proposals[0]["matches"][0]["methods"] == ["GET"])
            await pilot.press("a")
            await until(pilot, lambda: stored(root, slug, proposal_id)["status"] == "approved")
            return proposal_id

    proposal_id = asyncio.run(scenario())
    final = stored(root, slug, proposal_id)
    assert final["matches"] == [{"methods": ["GET"], "paths": [{"type": "prefix", "value": "/repos/our-org/"}]}]
    route = json.loads((root / slug / sv.APPROVED).read_text())["routes"][0]
    assert route["matches"] == final["matches"] and route["host"] == "api.github.com"
    assert "tok-123" not in (root / slug / sv.APPROVED).read_text()


def test_a_widening_change_is_refused_and_shown(root, slug):
    async def scenario():
        app = console(root, [])
        async with app.run_test(size=(160, 60)) as pilot:
            proposal_id = plant(root, slug, kind="route", host="api.github.com",
                                matches=[{"methods": ["GET"], "paths": [{"type": "prefix", "value": "/repos/"}]}])
            await until(pilot, lambda: len(app.proposals) == 1)
            await pilot.press("m")
            await until(pilot, lambda: app.screen.__class__.__name__ == "NoteScreen")
            app.screen.query_one("Input").value = "matches: null"
            await pilot.press("enter")
            await until(pilot, lambda: "FAILED modify" in log_text(app))
            return proposal_id, log_text(app)

    proposal_id, log = asyncio.run(scenario())
    assert "would drop" in log
    assert stored(root, slug, proposal_id)["status"] == "pending" and "modified" not in stored(root, slug, proposal_id)


def test_a_route_without_its_credential_says_so(root, slug):
    async def scenario():
        app = console(root, [])
        async with app.run_test(size=(160, 60)) as pilot:
            plant(root, slug, kind="route", host="api.github.com", auth_ref="GH_TOKEN")
            await until(pilot, lambda: len(app.proposals) == 1)
            detail = str(app.query_one("#detail").render())
            await pilot.press("a")
            await until(pilot, lambda: "FAILED approve" in log_text(app))
            return detail, log_text(app)

    detail, log = asyncio.run(scenario())
    assert "credential GH_TOKEN: NOT in the console's environment" in detail
    assert "GH_TOKEN" in log


def test_approve_for_every_bottle_of_the_agent(root, slug):
    other = slug + "b"
    run_module(bottle_state, None, dict(slug=other, state_root=str(root), policy=POLICY,
                                        options={"pipelock": False, "ssrf_ip_allowlist": [],
                                                 "supervise": {"wait_seconds": 5}}, secrets=[], tokens={}))
    (root / other / "meta.json").write_text(json.dumps({"slug": other, "agent": "cnsl"}))

    async def scenario():
        app = console(root, [])
        async with app.run_test(size=(160, 60)) as pilot:
            proposal_id = plant(root, slug, kind="domain", host="pypi.org")
            await until(pilot, lambda: len(app.proposals) == 1)
            await pilot.press("A")
            await until(pilot, lambda: "done approve" in log_text(app))
            return proposal_id, log_text(app)

    proposal_id, log = asyncio.run(scenario())
    assert stored(root, slug, proposal_id)["status"] == "approved"
    assert json.loads((root / other / sv.APPROVED).read_text())["domains"] == ["pypi.org"]
    # and for the agent's later bottles
    assert "pypi.org" in (root.parent / "agents" / "cnsl" / sv.APPROVED).read_text()
    assert "also %s" % other in log


def test_firewall_decisions_of_the_selected_bottle(root, slug):
    (root / slug / "audit").mkdir(exist_ok=True)
    lines = [{"ts": time.time(), "event": "connect", "host": "pypi.org", "action": "allow"},
             {"ts": time.time(), "event": "connect", "host": "evil.example", "action": "block", "rule": "allowlist"}]
    (root / slug / "audit" / "egress.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    async def scenario():
        app = console(root, [])
        async with app.run_test(size=(160, 60)) as pilot:
            table = app.query_one("#firewall")
            await until(pilot, lambda: table.row_count == 2)
            return ([[str(c) for c in table.get_row_at(i)] for i in range(2)],
                    [str(c) for c in app.query_one("#bottles").get_row_at(0)])

    rows, bottle = asyncio.run(scenario())
    assert rows[0][0] == "evil.example" and rows[0][2] == "1" and rows[0][5] == "allowlist 1"
    assert rows[1][0] == "pypi.org" and rows[1][1] == "1"
    assert bottle[1] == slug and bottle[3] == "state only" and bottle[6:] == ["1", "1"]
