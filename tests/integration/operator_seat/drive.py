# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drive the operator's console headless (Textual's Pilot) for tests/integration/operator_seat.sh.

    python drive.py STATE_ROOT SLUG view HOST...
        wait until the bottle's firewall pane lists every HOST; print what the console shows of the bottle
        (its firewall rows by host, its agent's agent-wide approvals, its health) as JSON
    python drive.py STATE_ROOT SLUG modify-approve ID CHANGES_JSON TOKEN_FILE
        select ask ID, press M, replace the pre-filled changes with CHANGES_JSON, Enter; the console asks for
        the route's credential in a masked input: type the value read from TOKEN_FILE key by key, Enter; wait
        for the decision. The value is never an argument (a process listing would show it).

The console is started with an empty environment for credentials: it holds none of its own. Exits 0 when the
step did what it says, 1 otherwise (the console's log is printed).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


def log(app):
    return "\n".join(app.history)


async def run(state_root, slug, action, args, timeout=90):
    from botbottle_console import backend as bk  # pylint: disable=import-outside-toplevel
    from botbottle_console.app import ConsoleApp, NoteScreen  # pylint: disable=import-outside-toplevel
    from textual.widgets import Input  # pylint: disable=import-outside-toplevel

    app = ConsoleApp(bk.LocalBackend(state_root, environ={}), poll=0.5, bottle_poll=1.0,
                     notifier=lambda title, body: None, environ={})
    async with app.run_test(size=(180, 60)) as pilot:
        deadline = time.monotonic() + timeout

        async def until(condition, what):
            while not condition():
                if time.monotonic() > deadline:
                    raise SystemExit("console: timed out waiting for %s; log:\n%s" % (what, log(app)))
                await pilot.pause(0.1)

        def bottle():
            return next((b for b in app.bottles if b.get("slug") == slug), None)

        await until(lambda: bottle() is not None and bottle().get("running"), "bottle %s running" % slug)
        if action == "view":
            hosts = set(args)
            await until(lambda: hosts <= {r.get("host") for r in bottle().get("firewall") or []},
                        "firewall rows of %s" % ", ".join(sorted(hosts)))
            await pilot.pause(1.5)  # one more poll: the last outcome lines are in
            b = bottle()
            print(json.dumps({"firewall": b.get("firewall"), "agent_approvals": b.get("agent_approvals"),
                              "health": b.get("health"), "log": log(app)}, indent=1))
            return True
        if action != "modify-approve":
            raise SystemExit("unknown action %s" % action)
        proposal_id, changes, token_file = args
        with open(token_file, encoding="utf-8") as handle:
            token = handle.read().strip()
        await until(lambda: any(p["id"] == proposal_id for p in app.proposals), "ask %s" % proposal_id)
        app.query_one("#asks").move_cursor(row=[p["id"] for p in app.proposals].index(proposal_id))
        await pilot.pause(0.1)
        assert app.selected_proposal()["id"] == proposal_id
        await pilot.press("M")
        await until(lambda: isinstance(app.screen, NoteScreen), "the modify dialog")
        assert "Modify and approve" in app.screen.title_text, app.screen.title_text
        field = app.screen.query_one(Input)
        field.value = changes
        await pilot.press("enter")
        await until(lambda: isinstance(app.screen, NoteScreen) and app.screen.password, "the credential prompt")
        prompt = app.screen.title_text
        field = app.screen.query_one(Input)
        assert field.password, "the credential input is not masked"
        for char in token:
            await pilot.press(char)
        await pilot.pause(0.1)
        shown = app.export_screenshot()
        assert field.value == token, "the typed credential did not reach the input"
        masked = token not in shown
        await pilot.press("enter")
        await until(lambda: "done " in log(app) or "FAILED " in log(app), "the decision")
        text = log(app)
        print(json.dumps({"prompt": prompt, "masked": masked, "log": text,
                          "token_in_log": token in text}, indent=1).replace(token, "<the credential>"))
        return "done approve" in text and masked and token not in text


def main():
    state_root, slug, action = sys.argv[1:4]
    return 0 if asyncio.run(run(state_root, slug, action, sys.argv[4:])) else 1


if __name__ == "__main__":
    sys.exit(main())
