# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operator's console: bottles, their health and firewall decisions, and the asks waiting on you.

Keys (on the selected ask): ``a`` approve, ``A`` approve this host for every bottle of the agent,
``b`` approve a route and bind its credential to a host it does not serve yet (``B``: for every bottle of
the agent; ``a`` refuses that, saying which hosts the credential serves), ``r`` reject with a note,
``m`` modify (changes as JSON or YAML, merged by supervise's rule; the ask stays pending), ``M`` modify and
approve in one step, ``q`` quit.
``x`` (on the selected bottle) takes back an agent-wide approval of its agent (one given with ``A``, kept in
``~/.bot-bottle/agents/<agent>/supervise-approved.json``): the agent's later bottles no longer get it; its running
bottles keep it until relaunched or torn down. The same as the playbook ``botbottle.bottle.supervise -e agent=.. -e revoke=host``.
``v`` switches the bottles table to the archives of torn-down bottles and back: the selected archive's
firewall decisions and supervise events (asks, decisions, notes) fill the panes below, read-only.
Reading and deciding go through a backend (``backend.py``): the collection's own code, nothing else.

What an agent wrote (a justification, a host, a path, a URL, a note) is shown as plain text and nothing
else: every string reaches the screen through ``agent_text`` (``textual`` for cells, panes and titles,
``plain`` for the log and notifications, ``notification`` for the desktop): no markup, no control
character or escape sequence, no bidi override, bounded. A row that cannot be shown is logged and
replaced by a placeholder; it never takes the console down.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time

import yaml
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Header, Input, Label, RichLog, Static

from ansible_collections.botbottle.bottle.plugins.module_utils import agent_text, playbook_command
from ansible_collections.botbottle.bottle.plugins.module_utils.supervise_store import EDITABLE

from . import notify
from .backend import DecisionError, LocalBackend, lookup_tokens, token_ref


def describe(proposal):
    """One line saying what an ask wants."""
    kind = proposal.get("kind")
    if kind == "domain":
        return "domain %s" % proposal.get("host")
    if kind == "route":
        limits = []
        for entry in proposal.get("matches") or []:
            if not isinstance(entry, dict):
                continue
            paths = " ".join("%s %s" % (r.get("type", "prefix"), r.get("value")) for r in entry.get("paths") or []
                             if isinstance(r, dict))
            limits.append(" ".join(filter(None, [",".join(str(m) for m in entry.get("methods") or []), paths])))
        limits = "; ".join(filter(None, limits))
        return "route %s%s" % (proposal.get("host"), " (%s)" % limits if limits else "")
    if kind == "block":
        return "report of a refusal: %s" % proposal.get("url")
    if kind == "release":
        return "release held %s %s%s (%s)" % (
            proposal.get("method"), proposal.get("host"), proposal.get("path"), proposal.get("rule"))
    return str(kind)


def credential_lines(proposal):
    """What approving a route's credential means: the hosts it already serves (as the bottle's policy says: the
    backend's listing computes them, not the agent)."""
    ref = proposal.get("credential")
    serves = proposal.get("credential_serves")
    if proposal.get("kind") != "route" or not ref or serves is None:
        return []
    if not serves:
        return ["credential %s serves no host yet" % ref]
    lines = ["credential %s already serves: %s" % (ref, ", ".join(serves))]
    if str(proposal.get("host", "")).lower() not in serves:
        lines.append("approving sends it to %s too: only with b (a refuses)" % proposal.get("host"))
    return lines


def bind_key_text(proposal):
    """The key list's entry for ``b``, on a route that would bind a credential to a new host."""
    serves = proposal.get("credential_serves") or []
    if proposal.get("kind") != "route" or not serves or str(proposal.get("host", "")).lower() in serves:
        return ""
    return "b approve and bind %s to %s (a new host for it)   " % (proposal.get("credential"), proposal.get("host"))


CELL_LIMIT = 200
PANE_LIMIT = 2000
LOG_LIMIT = 4000


def cell(value, limit=CELL_LIMIT):
    """A table cell: plain text whatever it holds (``agent_text.textual``)."""
    return agent_text.textual(value, limit)


def pane(lines, limit=PANE_LIMIT):
    """The text of a pane or title: each line plain (``agent_text.plain``), the lines ours."""
    if isinstance(lines, str):
        lines = [lines]
    return Text("\n".join(agent_text.plain(line, limit) for line in lines))


def add_row(table, cells, key=None, on_error=None):
    """Add one row of plain-text cells; a row that fails is replaced by a placeholder (and ``on_error`` told)."""
    try:
        return table.add_row(*(cell(value) for value in cells), key=key)
    except Exception as exc:  # pylint: disable=broad-except  # one bad row never takes the console down
        if on_error is not None:
            on_error("a row could not be shown (%s: %s); a placeholder stands in for it" % (type(exc).__name__, exc))
        try:
            return table.add_row(*(cell("?") for _column in table.columns), key=None)
        except Exception:  # pylint: disable=broad-except
            return None


def health_text(bottle):
    health = bottle.get("health") or {}
    oom = bottle.get("agent_oom") or {}
    # An OOM kill of the agent (killed at its memory limit, dated by the first look that saw it).
    oom_text = "; agent OOM-killed %sx, last %s" % (oom["kills"], oom.get("last") or "?") if oom.get("kills") else ""
    if not health:
        return ("-" if not bottle.get("running") else "?") + oom_text
    bad = ["%s: %s" % (k, v) for k, v in sorted(health.items()) if v != "healthy"]
    return ("healthy" if not bad else "; ".join(bad)) + oom_text


def state_text(bottle):
    if bottle.get("running"):
        return "running"
    if bottle.get("containers") or bottle.get("machines"):
        return "stopped"
    return "state only"


LIVE, ARCHIVES = "bottles", "archives"
COLUMNS = {
    (LIVE, "bottles"): ("machine", "bottle", "agent", "state", "health", "asks", "allowed", "refused", "failed"),
    (LIVE, "asks"): ("machine", "bottle", "id", "what", "created", "justification"),
    (ARCHIVES, "bottles"): ("machine", "bottle", "agent", "archived", "asks", "decisions", "allowed", "refused",
                            "failed"),
    (ARCHIVES, "asks"): ("time", "event", "by", "id", "what", "note / why"),
}
READ_ONLY = "an archive is read-only: nothing is decided on it (v: back to the live bottles and their asks)"


def archive_key(archive):
    return "archive:%s/%s" % (archive.get("inventory_host"), os.path.basename(archive.get("path") or ""))


def event_what(event):
    """What one supervise event was about (an ask as describe() says it; a decision: its kind and host)."""
    if event.get("event") == "proposed":
        return describe(event)
    what = " ".join(str(v) for v in (event.get("kind"), event.get("host") or event.get("url")) if v)
    if event.get("event") == "modified":
        what += " changed: %s" % ", ".join(sorted(event.get("before") or {}))
    if event.get("scope") == "agent":
        what += " for every bottle of agent %s" % event.get("agent")
    if event.get("from_bottle"):
        what += " (decided on %s)" % event["from_bottle"]
    return what


def ago(ts, now=None):
    if not ts:
        return "-"
    seconds = max(0, int((now or time.time()) - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return "%d%s ago" % (seconds // size, unit)
    return "%ds ago" % seconds


class NoteScreen(ModalScreen):
    """Asks for one line of text; dismisses with it, or with None on Escape."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, title, value="", placeholder="", password=False):
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.password = password  # a credential: masked as typed, never shown, logged or written

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(pane(self.title_text), markup=False)
            yield Input(value=self.value, placeholder=self.placeholder, id="answer", password=self.password)
            yield Label("Enter to send, Escape to cancel", classes="hint")

    def on_mount(self):
        self.query_one(Input).focus()

    def on_input_submitted(self, event):
        self.dismiss(event.value)

    def action_cancel(self):
        self.dismiss(None)


class ConsoleApp(App):
    """bot-bottle console."""

    TITLE = "bot-bottle console"
    CSS = """
    #bottles { height: 1fr; }
    #asks { height: 1fr; }
    #detail { height: auto; max-height: 10; padding: 0 1; background: $boost; }
    #firewall { height: 1fr; }
    #log { height: 6; }
    .title { background: $primary; color: $text; padding: 0 1; }
    NoteScreen { align: center middle; }
    #dialog { width: 90%; height: auto; border: thick $accent; background: $surface; padding: 1; }
    """
    BINDINGS = [
        Binding("a", "decide('approve')", "approve"),
        Binding("A", "decide('approve', 'agent')", "approve for the agent"),
        Binding("b", "bind", "approve + bind credential to a new host"),
        Binding("B", "bind('agent')", "bind for the agent", show=False),
        Binding("r", "reject", "reject + note"),
        Binding("m", "modify", "modify (stays pending)"),
        Binding("M", "modify('approve')", "modify + approve"),
        Binding("x", "revoke", "take back an agent-wide approval (selected bottle's agent)"),
        Binding("v", "toggle_archives", "archives / bottles"),
        Binding("tab", "focus_next", "next pane", show=False),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, backend, poll=1.0, bottle_poll=5.0, notifier=notify.desktop, environ=None):
        super().__init__()
        self.backend = backend
        self.parts = list(getattr(backend, "parts", [backend]))
        self.poll = poll
        self.bottle_poll = bottle_poll
        self.notifier = notifier
        self.environ = environ
        self.proposals_by_part = [[] for part in self.parts]
        self.bottles_by_part = [[] for part in self.parts]
        self.decided_here = set()  # asks this console approved or rejected (not "decided elsewhere")
        self.problems = {}
        self.busy = set()
        self.lock = threading.Lock()
        self.proposals = []   # in table order
        self.bottles = []
        self.seen = None      # ids of the asks already announced (None: not polled yet)
        self.selected_bottle = None
        self.deciding = False
        self.asks_shown = None
        self.history = []     # the log's lines, unwrapped (the last 500)
        self.panes = {}
        self.view = LIVE      # the bottles table shows the live bottles, or the archives of torn-down ones
        self.archives_by_part = [[] for part in self.parts]
        self.reading = set()  # parts whose archives are being read
        self.archives = []    # in table order
        self.selected_archive = None
        self.events = []      # the selected archive's supervise events, in table order

    # --- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Kept as attributes: a query searches the screen on top, which may be a dialog.
        self.panes = {
            "bottles-title": Static("Bottles", classes="title", id="bottles-title"),
            "bottles": DataTable(id="bottles", cursor_type="row"),
            "asks-title": Static("Asks waiting for you", classes="title", id="asks-title"),
            "asks": DataTable(id="asks", cursor_type="row"),
            "detail": Static("", id="detail"),
            "firewall-title": Static("Firewall decisions (selected bottle, by host)", classes="title",
                                     id="firewall-title"),
            "firewall": DataTable(id="firewall", cursor_type="row"),
            "log": RichLog(id="log", markup=False, wrap=True),
        }
        yield Header()
        for name in ("bottles-title", "bottles", "asks-title", "asks", "detail", "firewall-title", "firewall", "log"):
            yield self.panes[name]
        yield Footer()

    def on_mount(self):
        self.set_columns()
        self.panes["firewall"].add_columns("host", "allowed", "refused", "failed upstream", "held", "last", "refused by",
                                           "failed by")
        self.panes["asks"].focus()
        for index, part in enumerate(self.parts):
            fast = getattr(part, "poll_interval", self.poll)
            slow = getattr(part, "bottle_interval", self.bottle_poll)
            self.set_interval(fast, lambda i=index: self.start_poll(i, "proposals"))
            self.set_interval(slow, lambda i=index: self.start_poll(i, "bottles"))
            self.start_poll(index, "proposals")
            self.start_poll(index, "bottles")

    # --- polling (threads: a backend may run docker or ansible) -----------------------------------

    def start_poll(self, index, what):
        key = (index, what)
        with self.lock:
            if key in self.busy:
                return
            self.busy.add(key)
        self.run_worker(lambda: self.poll_part(index, what), thread=True, group="poll-%s" % what)

    def poll_part(self, index, what):
        try:
            part = self.parts[index]
            try:
                found, problems = getattr(part, what)()
            except Exception as exc:  # pylint: disable=broad-except  # shown in the log; the next poll retries
                found, problems = None, ["%s: %s" % (what, exc)]
            try:
                self.call_from_thread(self.show_polled, index, what, found, problems)
            except RuntimeError:  # the console is closing
                pass
        finally:
            with self.lock:
                self.busy.discard((index, what))

    def show_polled(self, index, what, found, problems):
        key = (index, what)
        if self.problems.get(key) != problems:
            for line in problems:
                self.log_line("! " + line)
            self.problems[key] = problems
        if what == "archives":
            self.reading.discard(index)
            if found is not None:
                self.archives_by_part[index] = found
            if self.view == ARCHIVES:
                self.show_archives()
            return
        if found is None:
            return
        if what == "proposals":
            pending = [p for p in found if p.get("status", "pending") == "pending"]
            if not problems:  # a host that did not answer has not decided its asks
                self.log_decided_elsewhere(self.proposals_by_part[index], pending)
            self.proposals_by_part[index] = pending
            if self.drop_torn_down(index):
                self.show_bottles()
            self.show_asks()
        else:
            self.bottles_by_part[index] = found
            self.show_bottles()

    def drop_torn_down(self, index):
        """A bottle of this machine whose state directory is gone was torn down: it leaves the list with the
        next (fast) proposals poll, not the slower bottle poll. True when one left."""
        part = self.parts[index]
        if not isinstance(part, LocalBackend):
            return False
        kept = [b for b in self.bottles_by_part[index] if not b.get("state_dir") or os.path.isdir(b["state_dir"])]
        if len(kept) == len(self.bottles_by_part[index]):
            return False
        for b in self.bottles_by_part[index]:
            if b not in kept:
                self.log_line("bottle %s/%s was torn down" % (b.get("inventory_host"), b.get("slug")))
        self.bottles_by_part[index] = kept
        return True

    def log_decided_elsewhere(self, before, now):
        """An ask that left the pending list without a decision of this console was decided elsewhere
        (the playbook botbottle.bottle.supervise, another console, supervise's timeout): said in the log."""
        still = {self.ask_key(p) for p in now}
        for p in before:
            key = self.ask_key(p)
            if key not in still and key not in self.decided_here:
                where = (describe(p), p.get("inventory_host"), p.get("slug"), p.get("id"))
                self.log_line("%s on %s/%s (%s) is no longer pending: decided outside this console (the playbook "
                              "botbottle.bottle.supervise, another console, or its timeout)" % where)

    # --- asks -------------------------------------------------------------------------------------

    @staticmethod
    def ask_key(proposal):
        return "%s/%s/%s" % (proposal.get("inventory_host"), proposal.get("slug"), proposal.get("id"))

    def show_asks(self):
        asks = sorted((p for part in self.proposals_by_part for p in part),
                      key=lambda p: (str(p.get("created")), self.ask_key(p)))
        keys = [self.ask_key(p) for p in asks]
        self.announce(asks)
        if self.view == ARCHIVES:  # the pane shows an archive's events: drawn on the way back
            self.proposals, self.asks_shown = asks, None
            return
        shown = [(self.ask_key(p), describe(p), p.get("justification")) for p in asks]
        if shown == self.asks_shown:
            self.proposals = asks  # the same rows in the same order; a field not shown may have changed
            self.show_detail()
            return
        self.asks_shown = shown
        table = self.panes["asks"]
        current = self.selected_proposal()
        current_key = self.ask_key(current) if current else None
        table.clear()
        for p in asks:
            add_row(table, (p.get("inventory_host"), p.get("slug"), p.get("id"), describe(p), p.get("created") or "",
                            str(p.get("justification") or "")[:80]), key=self.ask_key(p),
                    on_error=self.log_line)
        self.proposals = asks
        self.panes["asks-title"].update(pane("Asks waiting for you: %d" % len(asks)))
        if current_key in keys:
            table.move_cursor(row=keys.index(current_key))
        self.show_detail()
        if self.bottles_by_part and any(self.bottles_by_part):
            self.show_bottles()  # the bottles' ask counts follow the asks panel, not the slower bottle poll

    def announce(self, asks):
        ids = {self.ask_key(p) for p in asks}
        if self.seen is None:
            self.seen = set()
            new = list(asks)
        else:
            new = [p for p in asks if self.ask_key(p) not in self.seen]
        self.seen |= ids
        if not new:
            return
        if len(new) == 1:
            body = "%s asks: %s" % (new[0].get("slug"), describe(new[0]))
        else:
            body = "%d asks wait for you (%s)" % (len(new), ", ".join(sorted({p.get("slug") for p in new})))
        self.bell()
        self.notify(agent_text.plain(body, CELL_LIMIT), title="bot-bottle", markup=False)
        self.log_line("ask: " + body)
        if self.notifier:
            self.notifier("bot-bottle", body)

    def selected_proposal(self):
        table = self.panes["asks"]
        if self.view == ARCHIVES or not self.proposals or table.row_count == 0:
            return None
        row = table.cursor_row
        if row is None or row < 0 or row >= len(self.proposals):
            return None
        return self.proposals[row]

    def on_data_table_row_highlighted(self, event):
        key = event.row_key.value if event.row_key else None
        archive = isinstance(key, str) and key.startswith("archive:")
        if event.data_table.id == "asks":
            if self.view == ARCHIVES:
                self.show_event()
            else:
                self.show_detail()
        elif event.data_table.id == "bottles":
            if self.view == ARCHIVES and archive:
                self.selected_archive = key
                self.show_archive()
            elif self.view == LIVE and not archive:  # a late event of the other view is not a selection
                self.selected_bottle = key
                self.show_firewall()

    def show_detail(self):
        p = self.selected_proposal()
        detail = self.panes["detail"]
        if p is None:
            detail.update(pane(["No ask is waiting. New ones appear here the moment an agent makes them.",
                                "x takes back an agent-wide approval of the selected bottle's agent (its later "
                                "bottles no longer get it)"]))
            return
        lines = ["%s on %s/%s (%s, %s)" % (describe(p), p.get("inventory_host"), p.get("slug"), p.get("kind"), p.get("id"))]
        if p.get("justification"):
            lines.append("why: %s" % p["justification"])
        for field in ("auth", "matches", "excerpt", "where"):
            if p.get(field):
                lines.append("%s: %s" % (field, json.dumps(p[field])))
        ref = token_ref(p)
        if ref:
            _tokens, missing = lookup_tokens(p, self.environ)
            if missing and p.get("credential_serves"):
                lines.append("credential %s: not in the console's environment; the bottle holds it already" % ref)
            elif missing:
                lines.append("credential %s: NOT in the console's environment - approving asks for it (typed masked, "
                             "kept in memory only; leave it empty if the bottle already holds it)" % ref)
            else:
                lines.append("credential %s: found in the console's environment" % ref)
        lines.extend(credential_lines(p))
        lines.append("a approve   A approve %s for every bottle of this agent   %sr reject with a note (the agent "
                     "reads it)" % (p.get("host") or "it", bind_key_text(p)))
        if EDITABLE.get(p.get("kind")):
            lines.append("m modify: narrow it, it stays pending (then a or r)   M modify + approve: narrow it and "
                         "approve it in one step")
        detail.update(pane(lines))

    # --- decisions --------------------------------------------------------------------------------

    def ask_to_act_on(self):
        """The selected ask, or None (said in the log) when none is selected or an archive is shown."""
        if self.read_only():
            return None
        p = self.selected_proposal()
        if p is None:
            self.log_line("no ask selected")
        return p

    def read_only(self):
        """True (and says so) when the panes show an archive: no decision key acts on one."""
        if self.view != ARCHIVES:
            return False
        self.log_line(READ_ONLY)
        self.notify(READ_ONLY, title="read-only", severity="warning", markup=False)
        return True

    def action_bind(self, scope="bottle"):
        """Approve a route and send its credential to a host the credential does not serve yet (the explicit choice
        ``a`` refuses to make)."""
        p = self.ask_to_act_on()
        if p is None:
            return
        if not p.get("credential_serves") or str(p.get("host", "")).lower() in p["credential_serves"]:
            self.log_line("b binds a route's credential to a host it does not serve yet; this ask binds none: use a")
            return
        self.action_decide("approve", scope, bind_new_host=True)

    def action_decide(self, decision, scope="bottle", note="", changes=None, bind_new_host=False, tokens=None):
        p = self.ask_to_act_on()
        if p is None:
            return
        if self.deciding:
            self.log_line("a decision is still being made: wait for it")
            return
        ref = token_ref(p)
        if decision == "approve" and ref and tokens is None and lookup_tokens(p, self.environ)[1] \
                and not p.get("credential_serves"):  # a credential the bottle sends already: it holds it
            def decide_with(entered):
                self.action_decide(decision, scope, note, changes, bind_new_host, tokens=entered)
            self.ask_credential(p, ref, decide_with)
            return
        self.deciding = True
        if decision != "modify":
            self.decided_here.add(self.ask_key(p))
        what = "%s %s of %s/%s%s%s" % (decision, p.get("id"), p.get("inventory_host"), p.get("slug"),
                                       " for every bottle of the agent" if scope == "agent" else "",
                                       " binding %s to %s" % (p.get("credential"), p.get("host")) if bind_new_host
                                       else "")
        self.log_line("... " + what)
        self.run_worker(lambda: self.decide_in_thread(p, decision, note, changes, scope, what, bind_new_host, tokens),
                        thread=True, group="decide")

    def ask_credential(self, proposal, ref, then):
        """Ask for the route's credential ``ref`` in a masked input; ``then({ref: value})`` ({} when left empty:
        the bottle may hold it already). The value stays in this process's memory: no log line, no command line,
        no file (a remote host gets it in the backend's private 0600 vars file, deleted after the run)."""
        def entered(value):
            if value is None:
                self.log_line("not approved: the credential %s was not entered (approve again and type it at the "
                              "prompt, or export %s=... before starting the console)" % (ref, ref))
                return
            then({ref: value} if value else {})

        self.push_screen(NoteScreen("Approve route %s - its credential %s is not in the console's environment. Type "
                                    "its value (masked; kept in memory only, never logged), or leave it empty if the "
                                    "bottle already holds it:" % (proposal.get("host"), ref),
                                    placeholder=ref, password=True), entered)

    def decide_in_thread(self, proposal, decision, note, changes, scope, what, bind_new_host=False, tokens=None):
        try:
            result, error = self.backend.decide(proposal, decision, note=note, changes=changes, scope=scope,
                                                bind_new_host=bind_new_host, tokens=tokens), None
        except DecisionError as exc:
            result, error = None, str(exc)
        except Exception as exc:  # pylint: disable=broad-except  # the operator reads it; the console goes on
            result, error = None, "%s: %s" % (type(exc).__name__, exc)
            self.call_from_thread(self.log_traceback, exc)
        try:
            self.call_from_thread(self.decided, what, result, error)
        except RuntimeError:  # the console is closing
            pass

    def decided(self, what, result, error):
        self.deciding = False
        if error:
            error = console_fix(error)
            self.log_line("FAILED %s: %s" % (what, error))
            self.notify(agent_text.plain(error, PANE_LIMIT), title="decision failed", severity="error", timeout=10,
                        markup=False)
        else:
            self.log_line("done %s: %s" % (what, summarise(result)))
            for warning in result.get("warnings") or []:
                self.log_line("warning: %s" % warning)
        for index in range(len(self.parts)):
            self.start_poll(index, "proposals")

    def action_reject(self):
        p = self.ask_to_act_on()
        if p is None:
            return

        def send(note):
            if note is not None:
                self.action_decide("reject", note=note)

        self.push_screen(NoteScreen("Reject %s - a note for the agent (it is shown this answer):" % describe(p),
                                    placeholder="use the internal mirror instead"), send)

    def action_modify(self, then=None):
        """``m``: narrow the ask (it stays pending); ``M`` (``then`` approve): narrow it and approve it, one step."""
        p = self.ask_to_act_on()
        if p is None:
            return
        fields = EDITABLE.get(p.get("kind"))
        if not fields:
            self.log_line("a %s cannot be modified: approve or reject it" % p.get("kind"))
            return
        current = {k: p[k] for k in fields if p.get(k) is not None}

        def send(text):
            if text is None:
                return
            try:
                changes = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                self.log_line("changes are not JSON or YAML (%s): nothing sent" % str(exc).splitlines()[0])
                return
            if not isinstance(changes, dict) or not changes:
                self.log_line("changes must be a mapping of %s, e.g. {\"host\": \"...\"}: nothing sent"
                              % ", ".join(fields))
                return
            self.action_decide(then or "modify", changes=changes)

        self.push_screen(NoteScreen("%s %s - changes as JSON or YAML (%s); a narrower ask is merged, never widened%s:"
                                    % ("Modify and approve" if then == "approve" else "Modify", p.get("id"),
                                       ", ".join(fields), "; Enter approves it" if then == "approve"
                                       else "; it stays pending (M modifies and approves)"),
                                    value=json.dumps(current)), send)

    def action_revoke(self):
        """``x``: take back an agent-wide approval of the selected bottle's agent (asks which host, pre-filled)."""
        if self.read_only():
            return
        bottle = next((b for b in self.bottles if "%s/%s" % (b.get("inventory_host"), b.get("slug"))
                       == self.selected_bottle), None)
        if bottle is None or not bottle.get("agent"):
            self.log_line("x takes back an agent-wide approval of the selected bottle's agent: select a bottle first")
            return
        agent, where = bottle["agent"], bottle.get("inventory_host")
        entries = [str(e) for e in bottle.get("agent_approvals") or []]
        if not entries:
            self.log_line("agent %s has no agent-wide approval on %s (A on an ask gives one): nothing to take back"
                          % (agent, where))
            return

        def send(host):
            if not host or not host.strip():
                return
            what = "take back %s of agent %s on %s" % (host.strip(), agent, where)
            self.log_line("... " + what)
            self.run_worker(lambda: self.revoke_in_thread(where, agent, host.strip(), what), thread=True,
                            group="decide")

        self.push_screen(NoteScreen("Take back an agent-wide approval of agent %s on %s - it holds: %s. The host "
                                    "(its later bottles no longer get it; a running bottle keeps it until relaunched "
                                    "or torn down):" % (agent, where, ", ".join(entries)),
                                    value=entries[0].split(" ", 1)[-1]), send)

    def revoke_in_thread(self, where, agent, host, what):
        try:
            result, error = self.backend.revoke(where, agent, host), None
        except DecisionError as exc:
            result, error = None, str(exc)
        except Exception as exc:  # pylint: disable=broad-except  # the operator reads it; the console goes on
            result, error = None, "%s: %s" % (type(exc).__name__, exc)
        try:
            self.call_from_thread(self.revoked, what, result, error)
        except RuntimeError:  # the console is closing
            pass

    def revoked(self, what, result, error):
        if error:
            self.log_line("FAILED %s: %s" % (what, error))
            self.notify(agent_text.plain(error, PANE_LIMIT), title="take-back failed", severity="error", timeout=10,
                        markup=False)
        else:
            removed = ", ".join(result.get("removed") or [])
            self.log_line("done %s: taken back %s (%s); %s" % (what, removed, result.get("path"), result.get("note")))
        for index in range(len(self.parts)):
            self.start_poll(index, "bottles")

    # --- bottles and firewall ---------------------------------------------------------------------

    def show_bottles(self):
        bottles = [b for part in self.bottles_by_part for b in part]
        if self.view == ARCHIVES:  # drawn on the way back
            self.bottles = bottles
            return
        pending = {}
        for p in self.proposals:
            where = (p.get("inventory_host"), p.get("slug"))
            pending[where] = pending.get(where, 0) + 1
        table = self.panes["bottles"]
        selected = self.selected_bottle
        table.clear()
        keys = []
        for b in bottles:
            key = "%s/%s" % (b.get("inventory_host"), b.get("slug"))
            keys.append(key)
            rows = b.get("firewall") or []
            add_row(table, (b.get("inventory_host"), b.get("slug"), b.get("agent") or "-", state_text(b),
                            health_text(b), str(pending.get((b.get("inventory_host"), b.get("slug")), 0)),
                            *(str(sum(r.get(k, 0) for r in rows)) for k in ("allowed", "refused", "failed"))),
                    key=key, on_error=self.log_line)
        self.bottles = bottles
        self.panes["bottles-title"].update(pane(
            "Bottles: %d" % len(bottles) if bottles else
            "Bottles: none on %s - launch one: %s"
            % (", ".join(sorted({str(getattr(part, "host", None) or "the inventory") for part in self.parts})),
               playbook_command.command("bottle", "-e agent=<name>"))))
        if selected in keys:
            table.move_cursor(row=keys.index(selected))
        elif keys:
            self.selected_bottle = keys[0]
        self.show_firewall()

    def show_firewall(self):
        bottle = next((b for b in self.bottles if "%s/%s" % (b.get("inventory_host"), b.get("slug")) == self.selected_bottle),
                      None)
        if bottle is None:
            self.fill_firewall("Firewall decisions (selected bottle, by host)", [])
            return
        self.fill_firewall("Firewall decisions of %s, by host" % self.selected_bottle, bottle.get("firewall"))

    def fill_firewall(self, title, rows):
        table = self.panes["firewall"]
        table.clear()
        self.panes["firewall-title"].update(pane(title))
        for row in (rows or [])[:200]:
            refused_by = ", ".join("%s %d" % item for item in sorted((row.get("rules") or {}).items()))
            failed_by = ", ".join("%s %d" % item for item in sorted((row.get("failures") or {}).items()))
            add_row(table, (row.get("host"), str(row.get("allowed", 0)), str(row.get("refused", 0)),
                            str(row.get("failed", 0)), str(row.get("held", 0)),
                            "%s %s" % (row.get("last_action") or "", ago(row.get("last"))),
                            refused_by or "-", failed_by or "-"), on_error=self.log_line)

    # --- archives of torn-down bottles (read-only) -------------------------------------------------

    def set_columns(self):
        for name in ("bottles", "asks"):
            table = self.panes[name]
            table.clear(columns=True)
            table.add_columns(*COLUMNS[(self.view, name)])

    def action_toggle_archives(self):
        self.view = ARCHIVES if self.view == LIVE else LIVE
        self.set_columns()
        self.asks_shown = None  # the asks pane was emptied: drawn again on the way back
        if self.view == LIVE:
            self.panes["bottles-title"].update(pane("Bottles"))
            self.show_bottles()
            self.show_asks()
            return
        for index in range(len(self.parts)):  # read again each time they are shown
            self.reading.add(index)
            self.start_poll(index, "archives")
        self.show_archives()

    def show_archives(self):
        archives = sorted((a for part in self.archives_by_part for a in part),
                          key=lambda a: (str(a.get("archived")), archive_key(a)), reverse=True)
        table = self.panes["bottles"]
        selected = self.selected_archive
        table.clear()
        keys = []
        for a in archives:
            keys.append(archive_key(a))
            add_row(table, (a.get("inventory_host"), a.get("slug"), a.get("agent") or "-", a.get("archived") or "-",
                            *(str(a.get(k, 0)) for k in ("asks", "decisions", "allowed", "refused", "failed"))),
                    key=keys[-1],
                    on_error=self.log_line)
        self.archives = archives
        roots = sorted({str(getattr(part, "archive_root", "?")) for part in self.parts})
        self.panes["bottles-title"].update(pane("Archived bottles: %d under %s%s - read-only; v: back to the live "
                                                "bottles" % (len(archives), ", ".join(roots),
                                                             " (reading...)" if self.reading else "")))
        if selected in keys:
            table.move_cursor(row=keys.index(selected))
        elif keys:
            self.selected_archive = keys[0]
        self.show_archive()

    def selected_archive_record(self):
        return next((a for a in self.archives if archive_key(a) == self.selected_archive), None)

    def show_archive(self):
        archive = self.selected_archive_record()
        where = self.selected_archive[len("archive:"):] if archive else None
        self.fill_firewall("Firewall decisions of the archive %s, by host" % where if archive
                           else "Firewall decisions (selected archive, by host)", archive and archive.get("firewall"))
        self.events = list((archive or {}).get("events") or [])[-500:]
        table = self.panes["asks"]
        table.clear()
        for number, e in enumerate(self.events):
            add_row(table, (e.get("time") or "-", e.get("event") or "-", e.get("by") or "-", e.get("id") or "-",
                            event_what(e), str(e.get("note") or e.get("justification") or "")[:80]),
                    key="event:%d" % number, on_error=self.log_line)
        self.panes["asks-title"].update(pane(
            "Supervise events of the archive %s: %d asks, %d decisions (read-only)"
            % (where, archive.get("asks", 0), archive.get("decisions", 0)) if archive
            else "Supervise events (selected archive)"))
        self.show_event()

    def show_event(self):
        detail = self.panes["detail"]
        archive = self.selected_archive_record()
        if archive is None:
            detail.update(pane("No archive under %s yet: teardown archives a bottle's audit there." % ", ".join(
                sorted({str(getattr(part, "archive_root", "?")) for part in self.parts})) if not self.reading
                else "Reading the archives..."))
            return
        lines = ["%s/%s of agent %s: created %s, archived %s; %s" % (
            archive.get("inventory_host"), archive.get("slug"), archive.get("agent") or "-", archive.get("created") or "-",
            archive.get("archived") or "-", archive.get("path"))]
        table = self.panes["asks"]
        row = table.cursor_row
        if self.events and row is not None and 0 <= row < len(self.events):
            e = self.events[row]
            lines.append("%s by %s at %s: %s (%s)" % (e.get("event"), e.get("by") or "-", e.get("time") or "-",
                                                      event_what(e), e.get("id") or "-"))
            for field in ("justification", "note", "matches", "before", "after", "auth_ref", "excerpt", "where"):
                if e.get(field):
                    value = e[field] if isinstance(e[field], str) else json.dumps(e[field])
                    lines.append("%s: %s" % (field, value))
        elif not self.events:
            lines.append("No supervise event: the agent asked nothing.")
        lines.append(READ_ONLY)
        detail.update(pane(lines))

    def log_traceback(self, exc):
        import traceback  # pylint: disable=import-outside-toplevel
        for line in "".join(traceback.format_exception(exc)).splitlines():
            self.log_line(line)

    def log_line(self, text):
        """One line of the log: plain text (what an agent wrote in it is shown escaped, never as markup)."""
        line = "%s %s" % (time.strftime("%H:%M:%S"), agent_text.plain(text, LOG_LIMIT))
        self.history.append(line)
        del self.history[:-500]
        self.panes["log"].write(Text(line))  # plain already: written as text, never as markup


def console_fix(error):
    """An error of the shared decision code, with its fix said for the console's user: a credential is entered
    at the console's prompt, not passed as the module's ``tokens``."""
    match = re.search(r"pass tokens: \{([^:}]+): \.\.\.\}( \([^)]*\))?", error)
    if match is None:
        return error
    ref = match.group(1)
    return error[:match.start()] + ("approve again and type %s at the prompt (left empty, the bottle must already hold "
                                    "it), or export %s=... before starting the console" % (ref, ref)) + error[match.end():]


def summarise(result):
    proposal = result.get("proposal") or {}
    parts = ["now %s" % proposal.get("status", "?")]
    if result.get("changed_files"):
        parts.append("%d files written" % len(result["changed_files"]))
    if result.get("reload"):
        parts.append(str(result["reload"]))
    elif result.get("reloaded"):
        parts.append("reloaded")
    for extra in result.get("also") or []:
        if isinstance(extra, dict) and extra.get("slug"):
            parts.append("also %s (%s)" % (extra["slug"], extra.get("reload") or ("changed" if extra.get("changed")
                                                                                  else "unchanged")))
    return "; ".join(parts)
