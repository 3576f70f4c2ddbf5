# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The console, headless: a route that names a credential the bottle holds for another host shows what that
credential serves, ``a`` refuses to bind it to the new host, ``b`` does it."""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest

from ansible_collections.botbottle.bottle.plugins.modules import bottle_state
from ansible_collections.botbottle.bottle.tests.unit.console.test_console_app import (
    console, log_text, plant, stored, until)
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import run_module
from botbottle_console import app as console_app

POLICY = {"allowed_domains": ["allowed.example"],
          "egress": {"routes": [{"host": "api.example", "auth": {"scheme": "Bearer", "token_ref": "EXISTING"}}]}}


@pytest.fixture
def slug():
    return "bind-" + secrets.token_hex(4)


@pytest.fixture
def root(tmp_path, slug):
    tmp_path = tmp_path / "state"
    run_module(bottle_state, None, dict(slug=slug, state_root=str(tmp_path), policy=POLICY,
                                        options={"pipelock": False, "ssrf_ip_allowlist": [],
                                                 "supervise": {"wait_seconds": 5}},
                                        secrets=[], tokens={"EXISTING": "held"}))
    (tmp_path / slug / "supervise" / "proposals").mkdir(parents=True)
    (tmp_path / slug / "meta.json").write_text(json.dumps({"slug": slug, "agent": "bind"}))
    return tmp_path


def detail_text(app):
    return str(app.query_one("#detail").render())


def test_a_refuses_and_b_binds_a_held_credential_to_a_new_host(root, slug):
    async def scenario():
        app = console(root, [])
        async with app.run_test(size=(200, 60)) as pilot:
            await until(pilot, lambda: app.bottles)
            # The agent claims the credential serves nothing: the console shows what the policy says.
            proposal_id = plant(root, slug, kind="route", host="llm.example.net", auth_ref="EXISTING",
                                credential_serves=[])

            def seen():
                """the route ask in the table"""
                return [p["id"] for p in app.proposals] == [proposal_id]
            await until(pilot, seen)
            await until(pilot, lambda: "already serves" in detail_text(app))
            text = detail_text(app)
            assert "credential EXISTING already serves: api.example" in text
            assert "approving sends it to llm.example.net too: only with b (a refuses)" in text
            assert "b approve and bind EXISTING to llm.example.net (a new host for it)" in text

            await pilot.press("a")

            def refused():
                """the approval refused in the log"""
                return "FAILED approve %s" % proposal_id in log_text(app)
            await until(pilot, refused)
            assert "bind_new_host: true (playbook: -e bind_new_host=true; console: key b)" in log_text(app)
            assert stored(root, slug, proposal_id)["status"] == "pending"

            await pilot.press("b")

            def approved():
                """the proposal approved in the store"""
                return stored(root, slug, proposal_id)["status"] == "approved"
            await until(pilot, approved)
            await until(pilot, lambda: "done approve" in log_text(app))
            assert "binding EXISTING to llm.example.net" in log_text(app)
        return proposal_id

    proposal_id = asyncio.run(scenario())
    decided = stored(root, slug, proposal_id)
    assert (decided["credential_serves"], decided["bound_new_host"]) == (["api.example"], True)
    routes = json.loads((root / slug / "bundle" / "egress.json").read_text())["routes"]
    expected = {"api.example": "EXISTING", "llm.example.net": "EXISTING"}
    assert {r["host"]: r["auth"]["token_ref"] for r in routes} == expected


def test_b_on_an_ask_that_binds_nothing_decides_nothing(root, slug):
    async def scenario():
        app = console(root, [])
        async with app.run_test(size=(200, 60)) as pilot:
            await until(pilot, lambda: app.bottles)
            proposal_id = plant(root, slug, kind="domain", host="pypi.org")
            await until(pilot, lambda: [p["id"] for p in app.proposals] == [proposal_id])
            assert "b approve and bind" not in detail_text(app)
            await pilot.press("b")
            await until(pilot, lambda: "this ask binds none: use a" in log_text(app))
            await pilot.pause(0.3)
            assert stored(root, slug, proposal_id)["status"] == "pending"
    asyncio.run(scenario())


def test_the_key_list_names_b():
    keys = {binding.key: binding.description for binding in console_app.ConsoleApp.BINDINGS}
    assert keys["b"] == "approve + bind credential to a new host"


def test_agent_written_names_in_the_credential_lines_are_not_markup(root, slug):
    async def scenario():
        app = console(root, [])
        async with app.run_test(size=(200, 60)) as pilot:
            await until(pilot, lambda: app.bottles)
            proposal_id = plant(root, slug, kind="route", host="llm.example.net", auth_ref="[b]LOUD[/b]")
            await until(pilot, lambda: [p["id"] for p in app.proposals] == [proposal_id])
            await until(pilot, lambda: "serves no host yet" in detail_text(app))
            assert "credential [b]LOUD[/b] serves no host yet" in detail_text(app)
    asyncio.run(scenario())


def test_every_backend_passes_the_choice_on(monkeypatch):
    from botbottle_console import backend as bk
    sent = []

    def run(self, pattern, module, args, extra_vars=None):
        sent.append((pattern, module, args))
        return {pattern: ("CHANGED", {"proposal": {"status": "approved"}})}, None
    monkeypatch.setattr(bk.AnsibleBackend, "run", run)
    remote = bk.AnsibleBackend("inventory.yml", ["buildbox"], "/state")
    fleet = bk.Fleet(remote=remote)
    proposal = {"inventory_host": "buildbox", "slug": "demo", "id": "a" * 16, "kind": "route", "host": "x.example"}
    fleet.decide(proposal, "approve", bind_new_host=True)
    fleet.decide(proposal, "approve")
    assert [args["bind_new_host"] for _pattern, _module, args in sent] == [True, False]
    assert sent[0][1] == "botbottle.bottle.bottle_supervise"

    decided = []
    monkeypatch.setattr(bk.supervise_decide, "decide", lambda *a, **kw: decided.append(kw["bind_new_host"]) or {})
    local = bk.LocalBackend("/state", client_factory=None, environ={})
    bk.Fleet(local=local).decide(dict(proposal, inventory_host=local.host), "approve", bind_new_host=True)
    assert decided == [True]
