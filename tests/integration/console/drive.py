# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drive the operator's console headless (Textual's Pilot): wait for ask ID of bottle SLUG, press a key.

    python drive.py STATE_ROOT SLUG ID [KEY]

Exits 0 once the console shows the decision done (its log line is printed), 1 otherwise. What the
console shows of the bottle (its row, its firewall decisions) is printed too, for the caller to check.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def drive(state_root, slug, proposal_id, key, timeout=90):
    from botbottle_console import backend as bk  # pylint: disable=import-outside-toplevel
    from botbottle_console.app import ConsoleApp  # pylint: disable=import-outside-toplevel

    notes = []
    app = ConsoleApp(bk.LocalBackend(state_root), poll=0.5, bottle_poll=2.0,
                     notifier=lambda title, body: notes.append(body))
    async with app.run_test(size=(160, 60)) as pilot:
        deadline = time.monotonic() + timeout

        async def until(condition, what):
            while not condition():
                if time.monotonic() > deadline:
                    raise SystemExit("console: timed out waiting for %s; log:\n%s" % (what, log(app)))
                await pilot.pause(0.1)

        await until(lambda: any(p["id"] == proposal_id for p in app.proposals), "ask %s" % proposal_id)
        table = app.query_one("#asks")
        table.move_cursor(row=[p["id"] for p in app.proposals].index(proposal_id))
        await pilot.pause(0.1)
        assert app.selected_proposal()["id"] == proposal_id
        await until(lambda: any(b.get("slug") == slug and b.get("running") for b in app.bottles), "bottle running")
        await pilot.press(key)
        await until(lambda: "done " in log(app) or "FAILED " in log(app), "the decision")
        bottle = next(b for b in app.bottles if b.get("slug") == slug)
        print(json.dumps({"notes": notes, "health": bottle.get("health"), "firewall": bottle.get("firewall"),
                          "log": log(app)}, indent=1))
        return "done " in log(app)


def log(app):
    return "\n".join(app.history)


def main():
    state_root, slug, proposal_id = sys.argv[1:4]
    key = sys.argv[4] if len(sys.argv) > 4 else "a"
    return 0 if asyncio.run(drive(state_root, slug, proposal_id, key)) else 1


if __name__ == "__main__":
    sys.exit(main())
