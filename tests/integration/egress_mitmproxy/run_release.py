# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dlp.action supervise under mitmproxy 12 itself: a DLP hit held while the real supervise
(images/bundle/supervise.py: its release endpoint and proposal store, on 127.0.0.1:<free port>
in a thread) waits for the operator, who decides by rewriting the proposal as bottle_supervise
does. The request hook awaits inside mitmproxy's AddonManager, as in the proxy."""

import asyncio
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import CONFIG, PAT, ROUTE_TOKEN, main  # noqa: E402
from mitmproxy import hooks  # noqa: E402

import supervise  # noqa: E402  (images/bundle/supervise.py, mounted at /src)
from bottle_firewall import policy  # noqa: E402


class Operator:
    """The real supervise release endpoint over a temporary store; ``decide`` plays the operator."""

    def __init__(self):
        self.directory = tempfile.TemporaryDirectory()
        self.store = supervise.Store(os.path.join(self.directory.name, "store"))
        self.store.ensure()
        config_dir = os.path.join(self.directory.name, "config")
        os.makedirs(config_dir)
        self.server, self.thread = supervise.start_internal(supervise.Releases(self.store, config_dir),
                                                            port=0, poll_interval=0.05)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    async def pending(self):
        for _attempt in range(200):
            found = [p for p in self.store.pending() if p.get("kind") == "release"]
            if found:
                return found[0]
            await asyncio.sleep(0.02)
        raise AssertionError("egress never asked")

    def decide(self, proposal, status, note=""):
        self.store._replace(dict(proposal, status=status, decided=supervise.now(), note=note))

    def close(self):
        supervise.stop_internal(self.server)
        self.directory.cleanup()


def hold(env, operator, timeout=30):
    env.fw.config = policy.parse_config(dict(CONFIG, dlp={"action": "supervise", "supervise_timeout": timeout,
                                                          "supervise_url": operator.url}))
    env.fw.hold_interval = 0.05


def holds(env):
    return [(line["action"], line["rule"], line.get("proposal")) for line in env.audit() if line["event"] == "request"]


async def test_a_held_request_is_released_once_with_the_route_credential(env):
    operator = Operator()
    try:
        hold(env, operator)
        body = json.dumps({"title": "bug", "body": "use " + PAT + " for the registry"}).encode()
        sending = asyncio.ensure_future(env.https("api.github.com", "POST", "/repos/o/r/issues?token=" + PAT,
                                                  [("Authorization", "Bearer agent-own"),
                                                   ("Content-Type", "application/json")], body))
        proposal = await operator.pending()
        assert not sending.done(), "the request waits while held"
        assert proposal["host"] == "api.github.com" and proposal["path"] == "/repos/o/r/issues?token="
        assert proposal["where"] == "url" and proposal["excerpt"] == ""
        stored = json.dumps(proposal)
        assert PAT not in stored and PAT[4:14] not in stored
        operator.decide(proposal, "approved")
        # The URL hit was released; the body's own hit is asked about next.
        second = None
        for _attempt in range(200):
            second = [p for p in operator.store.pending() if p["id"] != proposal["id"]]
            if second:
                break
            await asyncio.sleep(0.02)
        assert second, "the body's hit is asked about too"
        assert second[0]["excerpt"] == "use [redacted:dlp:betterleaks.github-pat] for the registry", second[0]
        operator.decide(second[0], "approved", "ok once")
        flow, data = await asyncio.wait_for(sending, 10)
        assert flow.response is None and not flow.error
        assert flow.request.headers.get_all("authorization") == ["Bearer " + ROUTE_TOKEN]
        assert data is not None and data.server.error is None and data.server.address == ("140.82.112.6", 443)
        assert holds(env) == [("hold", "dlp:betterleaks.github-pat", proposal["id"]),
                              ("hold", "dlp:betterleaks.github-pat", second[0]["id"]),
                              ("allow", "dlp:betterleaks.github-pat", proposal["id"]),
                              ("allow", "dlp:betterleaks.github-pat", second[0]["id"])]
    finally:
        operator.close()


async def test_a_rejected_request_is_a_readable_403_with_the_note(env):
    operator = Operator()
    try:
        hold(env, operator)
        body = json.dumps({"x": "here: " + PAT}).encode()
        sending = asyncio.ensure_future(env.https("api.anthropic.com", "POST", "/v1/messages",
                                                  [("Content-Type", "application/json")], body))
        proposal = await operator.pending()
        operator.decide(proposal, "rejected", "rotate it first")
        flow, data = await asyncio.wait_for(sending, 10)
        assert data is None and flow.response.status_code == 403
        assert flow.response.get_text() == ("blocked by egress: dlp:betterleaks.github-pat found in body field $.x; "
                                            "the operator did not release it (the operator's note: rotate it "
                                            "first)\n")
        assert flow.response.headers["x-bottle-egress-rule"] == "dlp:betterleaks.github-pat"
        assert [a for a, _r, _p in holds(env)] == ["hold", "block"]
    finally:
        operator.close()


async def test_supervise_over_its_limit_refuses_at_once(env):
    operator = Operator()
    try:
        hold(env, operator)
        with open(os.path.join(operator.directory.name, "config", "supervise.json"), "w") as handle:
            json.dump({"max_pending": 1}, handle)
        operator.store.propose("domain", {"host": "a.example.com", "justification": "x"}, 5)
        flow, data = await env.https("api.anthropic.com", "POST", "/v1/messages",
                                     [("Content-Type", "application/json")], json.dumps({"x": PAT}).encode())
        assert data is None and flow.response.status_code == 403
        assert flow.response.get_text().endswith("the operator could not be asked (too many pending asks)\n")
    finally:
        operator.close()


async def test_egress_stopping_kills_a_held_request(env):
    operator = Operator()
    try:
        hold(env, operator)
        sending = asyncio.ensure_future(env.https("api.anthropic.com", "POST", "/v1/messages",
                                                  [("Content-Type", "application/json")],
                                                  json.dumps({"x": PAT}).encode()))
        await operator.pending()
        await env.tctx.master.addons.trigger_event(hooks.DoneHook())  # as master.done() calls it
        flow, data = await asyncio.wait_for(sending, 10)
        assert flow.error is not None and flow.error.msg == flow.error.KILLED_MESSAGE, flow.error
        assert flow.response is None and data is None, "never sent"
        assert [a for a, _r, _p in holds(env)] == ["hold", "block"]
    finally:
        operator.close()


if __name__ == "__main__":
    sys.exit(main(dict(globals())))
