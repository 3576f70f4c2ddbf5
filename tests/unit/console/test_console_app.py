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

from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as sv
from ansible_collections.botbottle.bottle.plugins.modules import bottle_state, bottle_supervise
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


def test_modify_and_approve_in_one_step(root, slug):
    """Issue 21 item 4: M narrows the ask and approves it in one decision; the key list says what m and M do."""
    env = {"GH_TOKEN": "tok-123"}

    async def scenario():
        app = console(root, [], environ=env)
        async with app.run_test(size=(160, 60)) as pilot:
            proposal_id = plant(root, slug, kind="route", host="api.github.com", auth_ref="GH_TOKEN",
                                matches=[{"methods": ["GET", "POST"],
                                          "paths": [{"type": "prefix", "value": "/repos/our-org/"}]}])
            await until(pilot, lambda: len(app.proposals) == 1)
            detail = str(app.query_one("#detail").render())
            await pilot.press("M")
            await until(pilot, lambda: app.screen.__class__.__name__ == "NoteScreen")
            title = str(app.screen.query_one("Label").render())
            box = app.screen.query_one("Input")
            box.value = '{"matches": [{"methods": ["GET"]}]}'
            await pilot.press("enter")
            await until(pilot, lambda: stored(root, slug, proposal_id)["status"] == "approved")
            return proposal_id, detail, title, log_text(app)

    proposal_id, detail, title, log = asyncio.run(scenario())
    final = stored(root, slug, proposal_id)
    assert final["matches"] == [{"methods": ["GET"], "paths": [{"type": "prefix", "value": "/repos/our-org/"}]}]
    assert "modified" in final, "the change and the approval are one decision on the narrowed ask"
    route = json.loads((root / slug / sv.APPROVED).read_text())["routes"][0]
    assert route["matches"] == final["matches"]
    assert "m modify: narrow it, it stays pending" in detail and "M modify + approve" in detail
    assert "Enter approves it" in title
    assert "done approve" in log


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


def test_a_route_without_its_credential_asks_for_it_masked(root, slug):
    """Issue 21 item 3: approving a route whose credential is not in the console's environment asks for it in a
    masked input; the value reaches the bottle and nothing else (log, audit, approvals, proposal)."""
    secret = "ghp_" + "Entered0123456789abcdefghijklmnopqrstu"

    async def scenario():
        app = console(root, [])
        async with app.run_test(size=(160, 60)) as pilot:
            proposal_id = plant(root, slug, kind="route", host="api.github.com", auth_ref="GH_TOKEN")
            await until(pilot, lambda: len(app.proposals) == 1)
            detail = str(app.query_one("#detail").render())
            await pilot.press("a")
            await until(pilot, lambda: app.screen.__class__.__name__ == "NoteScreen")
            box = app.screen.query_one("Input")
            masked, title = box.password, str(app.screen.query_one("Label").render())
            box.value = secret
            await pilot.press("enter")
            await until(pilot, lambda: stored(root, slug, proposal_id)["status"] == "approved")
            await until(pilot, lambda: "done approve" in log_text(app))
            return detail, masked, title, log_text(app), str(app.query_one("#detail").render())

    detail, masked, title, log, after = asyncio.run(scenario())
    assert "credential GH_TOKEN: NOT in the console's environment - approving asks for it" in detail
    assert masked and "GH_TOKEN" in title and "masked" in title
    tokens = [p for p in (root / slug).rglob("*") if p.is_file() and secret in p.read_text(errors="replace")]
    assert [p.name for p in tokens] == ["tokens.json"], tokens  # the bottle's private credential file only
    assert secret not in log and secret not in after


def test_a_credential_prompt_left_with_escape_approves_nothing_and_says_what_to_do(root, slug):
    async def scenario():
        app = console(root, [])
        async with app.run_test(size=(160, 60)) as pilot:
            proposal_id = plant(root, slug, kind="route", host="api.github.com", auth_ref="GH_TOKEN")
            await until(pilot, lambda: len(app.proposals) == 1)
            await pilot.press("a")
            await until(pilot, lambda: app.screen.__class__.__name__ == "NoteScreen")
            await pilot.press("escape")
            await until(pilot, lambda: "not approved" in log_text(app))
            return proposal_id, log_text(app)

    proposal_id, log = asyncio.run(scenario())
    assert "the credential GH_TOKEN was not entered (approve again and type it at the prompt, or export GH_TOKEN" in log
    assert stored(root, slug, proposal_id)["status"] == "pending"


def test_a_credential_left_empty_fails_naming_what_the_console_user_can_do(root, slug):
    async def scenario():
        app = console(root, [])
        async with app.run_test(size=(160, 60)) as pilot:
            plant(root, slug, kind="route", host="api.github.com", auth_ref="GH_TOKEN")
            await until(pilot, lambda: len(app.proposals) == 1)
            await pilot.press("a")
            await until(pilot, lambda: app.screen.__class__.__name__ == "NoteScreen")
            await pilot.press("enter")
            await until(pilot, lambda: "FAILED approve" in log_text(app))
            return log_text(app)

    log = asyncio.run(scenario())
    assert "approve again and type GH_TOKEN at the prompt" in log and "pass tokens" not in log


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


def test_x_takes_back_an_agent_wide_approval_and_the_key_list_says_so(root, slug):
    """Issue 21: taking back an agent-wide approval is one console key, not a hand edit."""
    assert any(b.key == "x" and "take back an agent-wide approval" in b.description for b in ConsoleApp.BINDINGS)
    agent_file = root.parent / "agents" / "cnsl" / sv.APPROVED

    async def scenario():
        app = console(root, [])
        async with app.run_test(size=(160, 60)) as pilot:
            await until(pilot, lambda: any(b.get("slug") == slug for b in app.bottles))
            await pilot.press("x")  # nothing approved for the agent yet: said, nothing asked
            await until(pilot, lambda: "has no agent-wide approval" in log_text(app))
            plant(root, slug, kind="domain", host="pypi.org")
            await until(pilot, lambda: len(app.proposals) == 1)
            await pilot.press("A")
            await until(pilot, lambda: "done approve" in log_text(app))
            assert "pypi.org" in agent_file.read_text()
            await until(pilot, lambda: any("domain pypi.org" in (b.get("agent_approvals") or []) for b in app.bottles))
            await pilot.press("x")
            await pilot.pause(0.2)
            dialog = app.screen.query_one("#answer")
            assert dialog.value == "pypi.org"
            await pilot.press("enter")
            await until(pilot, lambda: "done take back pypi.org" in log_text(app) or "FAILED" in log_text(app))
            return log_text(app)

    log = asyncio.run(scenario())
    assert "done take back pypi.org of agent cnsl" in log and "taken back domain pypi.org" in log, log
    assert "later bottles no longer get" in log
    assert "pypi.org" not in json.dumps(json.loads(agent_file.read_text()))


def test_firewall_decisions_of_the_selected_bottle(root, slug):
    (root / slug / "audit").mkdir(exist_ok=True)
    lines = [{"ts": time.time(), "event": "request", "host": "pypi.org", "action": "allow"},
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
    assert rows[0][0] == "evil.example" and rows[0][2] == "1" and rows[0][6] == "allowlist 1"
    assert rows[1][0] == "pypi.org" and rows[1][1] == "1"
    assert bottle[1] == slug and bottle[3] == "state only" and bottle[6:] == ["1", "1", "0"]


def test_an_upstream_failure_is_counted_failed_not_refused(root, slug):
    """Issue 21 item 1: pypi.org allowed twice, one of them failed upstream (TLS): allowed 1, failed 1."""
    (root / slug / "audit").mkdir(exist_ok=True)
    now = time.time()
    lines = [{"ts": now, "event": "connect", "host": "pypi.org", "action": "allow", "flow": "c1"},
             {"ts": now, "event": "request", "host": "pypi.org", "action": "allow", "flow": "f1"},
             {"ts": now, "event": "request", "host": "pypi.org", "action": "allow", "flow": "f2"},
             {"ts": now, "event": "outcome", "host": "pypi.org", "action": "complete", "status": 200, "flow": "f1"},
             {"ts": now, "event": "outcome", "host": "pypi.org", "action": "upstream-error", "rule": "upstream-tls",
              "flow": "f2"}]
    (root / slug / "audit" / "egress.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    async def scenario():
        app = console(root, [])
        async with app.run_test(size=(180, 60)) as pilot:
            table = app.query_one("#firewall")
            await until(pilot, lambda: table.row_count == 1)
            return [str(c) for c in table.get_row_at(0)], [str(c) for c in app.query_one("#bottles").get_row_at(0)]

    row, bottle = asyncio.run(scenario())
    assert row[:5] == ["pypi.org", "1", "0", "1", "0"] and row[6] == "-" and row[7] == "upstream-tls 1"
    assert bottle[6:] == ["1", "0", "1"]


def test_the_bottles_ask_count_follows_the_asks_panel(root, slug):
    """Issue 21 item 7: the per-bottle count changes with the asks panel, not with the (slow) bottle poll."""
    engine = FakeEngine()
    backend = bk.LocalBackend(str(root), client_factory=None, environ={}, reload_client_factory=lambda: engine.client)

    async def scenario():
        app = ConsoleApp(backend, poll=0.1, bottle_poll=3600, notifier=lambda title, body: None, environ={})
        async with app.run_test(size=(160, 60)) as pilot:
            bottles = app.query_one("#bottles")
            await until(pilot, lambda: bottles.row_count == 1)
            before = str(bottles.get_row_at(0)[5])
            plant(root, slug, kind="domain", host="pypi.org")
            plant(root, slug, kind="domain", host="docs.example")
            await until(pilot, lambda: len(app.proposals) == 2)
            return before, str(bottles.get_row_at(0)[5])

    before, after = asyncio.run(scenario())
    assert (before, after) == ("0", "2")


def test_a_decision_made_outside_the_console_is_logged(root, slug):
    """Issue 21 item 7: an ask decided through the playbook (the same module code) shows in the console's log."""
    async def scenario():
        app = console(root, [])
        async with app.run_test(size=(160, 60)) as pilot:
            decided_here = plant(root, slug, kind="domain", host="pypi.org")
            elsewhere = plant(root, slug, kind="domain", host="docs.example")
            await until(pilot, lambda: len(app.proposals) == 2)
            table = app.query_one("#asks")
            ids = [p["id"] for p in app.proposals]
            table.move_cursor(row=ids.index(decided_here))
            await pilot.pause()
            await pilot.press("a")
            await until(pilot, lambda: stored(root, slug, decided_here)["status"] == "approved")
            args = dict(state_root=str(root), slug=slug, id=elsewhere, decision="reject", note="use the mirror",
                        reload=False)
            run_module(bottle_supervise, None, args)
            await until(pilot, lambda: len(app.proposals) == 0)
            await until(pilot, lambda: "no longer pending" in log_text(app))
            return log_text(app)

    log = asyncio.run(scenario())
    lines = [line for line in log.splitlines() if "no longer pending" in line]
    assert len(lines) == 1 and "docs.example" in lines[0] and "decided outside this console" in lines[0], log


def test_a_torn_down_bottle_leaves_the_list_promptly(root, slug):
    """Issue 21 item 7: its state directory gone, the bottle leaves with the next asks poll (0.1 s here), not the
    bottle poll (an hour here); with none left, the title says so and how to launch one."""
    import shutil

    engine = FakeEngine()
    backend = bk.LocalBackend(str(root), client_factory=None, environ={}, reload_client_factory=lambda: engine.client)

    async def scenario():
        app = ConsoleApp(backend, poll=0.1, bottle_poll=3600, notifier=lambda title, body: None, environ={})
        async with app.run_test(size=(160, 60)) as pilot:
            bottles = app.query_one("#bottles")
            await until(pilot, lambda: bottles.row_count == 1)
            title = str(app.query_one("#bottles-title").render())
            shutil.rmtree(root / slug)
            await until(pilot, lambda: bottles.row_count == 0)
            return title, str(app.query_one("#bottles-title").render()), log_text(app)

    before, after, log = asyncio.run(scenario())
    assert before == "Bottles: 1"
    assert after == "Bottles: none on localhost - launch one: .venv/bin/ansible-playbook playbooks/bottle.yml -e agent=<name>"
    assert "bottle localhost/%s was torn down" % slug in log
