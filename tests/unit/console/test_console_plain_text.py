# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an agent wrote is shown as plain text: asks and firewall rows carrying markup, unbalanced tags, ANSI
and OSC escapes and bidi overrides leave the console up, are shown character for character (the invisible
ones escaped), and a decision still works. The console exits non-zero when it dies.

Before this, the first justification below made the console die with a MarkupError (and exit 0).
"""

from __future__ import annotations

import asyncio
import json
import time

# root and slug are fixtures (pytest finds them here by name)
from ansible_collections.botbottle.bottle.tests.unit.console.test_console_app import (  # noqa: F401  pylint: disable=unused-import
    console, log_text, plant, root, slug, stored, until)
from ansible_collections.botbottle.bottle.plugins.module_utils import agent_text
from botbottle_console import app as app_module
from botbottle_console import cli, notify

MARKUP = "need docs [/x] [link=https://evil.example]click[/link] [b]unbalanced [/i]"
ANSI = "\x1b[31mred\x1b[0m \x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\ \x9b2J\x07"
BIDI = "\u202eexe.txt\u202c \u2066iso\u2069\u200f"
HOSTILE = MARKUP + " " + ANSI + " " + BIDI
INVISIBLE = ("\x1b", "\x9b", "\x07", "\u202e", "\u202c", "\u2066", "\u2069", "\u200f")


def shown(widget):
    return str(widget.render())


def visible(text):
    assert not any(char in text for char in INVISIBLE), repr(text)
    return text


def test_hostile_asks_and_firewall_rows_are_shown_as_typed_and_approve_works(root, slug):
    notes = []
    (root / slug / "audit").mkdir(exist_ok=True)
    lines = [{"ts": time.time(), "event": "connect", "host": "x[/b].example" + ANSI, "action": "block",
              "rule": "allowlist [link=https://evil.example]x[/link]" + BIDI},
             {"ts": time.time(), "event": "request", "host": "[bold red]pypi.org", "action": "allow"}]
    (root / slug / "audit" / "egress.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    async def scenario():
        app = console(root, notes)
        async with app.run_test(size=(200, 60)) as pilot:
            await until(pilot, lambda: app.bottles)
            domain = plant(root, slug, kind="domain", host="docs.example", justification=HOSTILE)
            plant(root, slug, kind="route", host="api.example.com", justification=MARKUP,
                  matches=[{"methods": ["GET"], "paths": [{"type": "regex", "value": "^/[link=x]" + ANSI + "$"}]}])
            plant(root, slug, kind="block", url="https://x.example/[/x]" + BIDI, reason_seen=ANSI,
                  justification=MARKUP)
            plant(root, slug, kind="release", host="api.example.com", method="POST", path="/[/x]" + ANSI,
                  rule="[link=https://evil.example]r", where="body" + BIDI, excerpt=HOSTILE)
            await until(pilot, lambda: len(app.proposals) == 4)
            await pilot.pause(0.3)  # the rows are drawn

            asks = app.query_one("#asks")
            rows = [[visible(str(c)) for c in asks.get_row_at(i)] for i in range(asks.row_count)]
            firewall = app.query_one("#firewall")
            await until(pilot, lambda: firewall.row_count == 2)
            walls = [[visible(str(c)) for c in firewall.get_row_at(i)] for i in range(firewall.row_count)]
            # the screen as the operator sees it
            screen = visible(app.export_screenshot())
            for index, proposal in enumerate(app.proposals):
                if proposal["id"] == domain:
                    break
            await pilot.press(*(["down"] * index))
            await until(pilot, lambda: app.selected_proposal() and app.selected_proposal()["id"] == domain)
            detail = visible(shown(app.query_one("#detail")))
            await pilot.press("a")
            await until(pilot, lambda: stored(root, slug, domain)["status"] == "approved")
            await until(pilot, lambda: "done approve" in log_text(app))
            assert app.is_running
            app.log_line("the agent wrote: " + HOSTILE)  # e.g. a failure message quoting an ask
            await pilot.pause(0.2)
            pane = "\n".join(strip.text for strip in app.query_one("#log").lines)
            assert "\\x1b[31mred" in pane and "\\\\x1b" not in pane, pane  # escaped once, not twice
            return rows, detail, walls, screen, log_text(app), domain

    rows, detail, walls, screen, log, domain_id = asyncio.run(scenario())
    justifications = [row[5] for row in rows]
    domain_row = next(row for row in rows if row[2] == domain_id)
    assert domain_row[5] == agent_text.plain(HOSTILE[:80])  # escaped once: one backslash before x1b
    assert "need docs [/x] [link=https://evil.example]click[/link] [b]unbalanced [/i]"[:80] in justifications
    assert any(r[3].startswith("route api.example.com (GET regex ^/[link=x]\\x1b[31mred") for r in rows), rows
    assert any("report of a refusal: https://x.example/[/x]\\u202eexe.txt" in r[3] for r in rows), rows
    assert any("release held POST api.example.com/[/x]\\x1b[31m" in r[3] for r in rows), rows
    assert "[link=https://evil.example]click[/link]" in detail
    assert "\\x1b[31mred\\x1b[0m \\x1b]8;;https://evil.example\\x1b\\\\link" in detail
    assert "\\u202eexe.txt\\u202c \\u2066iso\\u2069\\u200f" in detail
    hosts = {w[0]: w for w in walls}
    assert "x[/b].example\\x1b[31mred\\x1b[0m \\x1b]8;;https://evil.example\\x1b\\\\link\\x1b]8;;\\x1b\\\\ " \
           "\\x9b2J\\x07" in hosts and "[bold red]pypi.org" in hosts
    assert any("allowlist [link=https://evil.example]x[/link]\\u202e" in w[6] for w in walls), walls
    assert "[link=https://evil.example]" in screen  # the SVG of the screen: the brackets are text
    visible(log)
    assert "the agent wrote: need docs [/x] [link=https://evil.example]click[/link]" in log
    assert "\\x1b[31mred" in log and "\\u202eexe.txt" in log
    assert notes  # the desktop notifier was called (what it shows: the test below)


def test_desktop_notifications_show_agent_text_plain():
    linux = notify.command("bot-bottle", "s1 asks: domain x " + HOSTILE + " <b>bold</b> &amp;",
                           which=lambda name: "/usr/bin/" + name if name == "notify-send" else None, platform="linux")
    assert linux[:3] == ["notify-send", "--app-name=bot-bottle", "--"]
    body = visible(linux[4])
    assert "[link=https://evil.example]click[/link]" in body and "\\x1b[31mred" in body
    assert "&lt;b&gt;bold&lt;/b&gt; &amp;amp;" in body
    mac = notify.command("bot-bottle", "x " + HOSTILE, which=lambda name: "/usr/bin/" + name, platform="darwin")
    visible(mac[2])
    assert "\\\\u202eexe.txt" in mac[2]  # plain's escape, then the AppleScript string's own
    assert len(notify.command("t", "y" * 5000, which=lambda name: "/x", platform="linux")[4]) < 400


def test_a_row_that_cannot_be_shown_is_a_placeholder():
    class Table:
        columns = {"a": 1, "b": 2}

        def __init__(self):
            self.rows = []

        def add_row(self, *cells, key=None):
            if any(str(c) == "boom" for c in cells):
                raise ValueError("cannot draw")
            self.rows.append(([str(c) for c in cells], key))
            return key

    table, errors = Table(), []
    app_module.add_row(table, ("boom", "x"), key="k", on_error=errors.append)
    app_module.add_row(table, ("fine", "y"), key="k2", on_error=errors.append)
    assert table.rows == [(["?", "?"], None), (["fine", "y"], "k2")]
    assert errors and "ValueError: cannot draw" in errors[0]


def test_the_console_exits_non_zero_when_it_dies(monkeypatch, tmp_path):
    class Broken:
        """A backend whose asks are not mappings: drawing them raises in the console's own code."""
        def proposals(self):
            return [object()], []

        def bottles(self):
            return [], []

        def archives(self):
            return [], []

    real_run = app_module.ConsoleApp.run
    monkeypatch.setattr(cli, "build_backend", lambda args: Broken())
    monkeypatch.setattr(app_module.ConsoleApp, "run", lambda self: real_run(self, headless=True))
    assert cli.main(["--no-notify", "--state-root", str(tmp_path)]) == 1


def test_the_health_cell_says_when_the_agent_had_an_oom_kill():
    from botbottle_console.app import health_text
    oom = {"kills": 2, "last": "2026-12-07T08:12:40Z", "count": 2, "source": "cgroup v1"}
    assert health_text({"running": True, "health": {"egress": "healthy"}, "agent_oom": oom}) == \
        "healthy; agent OOM-killed 2x, last 2026-12-07T08:12:40Z"
    assert health_text({"running": True, "health": {"egress": "healthy"}, "agent_oom": dict(oom, kills=0)}) == "healthy"
