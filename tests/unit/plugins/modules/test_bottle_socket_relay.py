# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_socket_relay: check mode, start, an idempotent rerun, a dead relay started again, a changed
address restarting it, absent stopping only this bottle's relay. Real relay processes under tmp_path."""

from __future__ import annotations

import os
import sys
import time

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.botbottle.bottle.plugins.module_utils import relay_process
from ansible_collections.botbottle.bottle.plugins.modules import bottle_socket_relay


class Exit(Exception):
    pass


class Fail(Exception):
    pass


@pytest.fixture
def run(tmp_path, monkeypatch):
    def exit_json(self, **kwargs):
        raise Exit(kwargs)

    def fail_json(self, **kwargs):
        raise Fail(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    started = []

    def call(check_mode=False, **args):
        args = dict(dict(slug="relay-a", state_root=str(tmp_path), python=sys.executable), **args)
        with patch_module_args(dict(args, _ansible_check_mode=check_mode)):
            with pytest.raises((Exit, Fail)) as caught:
                bottle_socket_relay.main()
        result = dict(caught.value.args[0], failed=caught.type is Fail)
        if result.get("pid"):
            started.append(result["pid"])
        return result

    yield call
    for slug in ("relay-a", "relay-b"):
        relay_process.Relay(os.path.join(str(tmp_path), slug)).stop()


def wait_gone(pid):
    deadline = time.time() + 5
    while relay_process.process_args(pid) is not None and time.time() < deadline:
        time.sleep(0.05)
    return relay_process.process_args(pid) is None


def test_lifecycle(run, tmp_path):
    args = dict(address="127.77.0.41", daemons=["egress", "supervise"])
    checked = run(check_mode=True, **args)
    assert checked["changed"] and checked["action"] == "start" and not checked["pid"]
    assert not os.path.exists(tmp_path / "relay-a" / "relay"), "check mode wrote nothing"
    assert checked["mounts"] == [
        {"host": str(tmp_path / "relay-a/sockets/proxy.sock"), "guest": "/run/bottle/proxy.sock"},
        {"host": str(tmp_path / "relay-a/sockets/supervise.sock"), "guest": "/run/bottle/supervise.sock"}]

    first = run(**args)
    assert first["changed"] and first["action"] == "start" and first["pid"]
    assert sorted(os.listdir(tmp_path / "relay-a" / "sockets")) == ["proxy.sock", "supervise.sock"]
    assert first["guest_endpoints"] == {"address": "127.0.0.1", "proxy_url": "http://127.0.0.1:8888",
                                        "supervise_url": "http://127.0.0.1:9100/mcp"}

    again = run(**args)
    assert not again["changed"] and again["action"] == "none" and again["pid"] == first["pid"]

    other = run(slug="relay-b", **args)
    assert other["changed"] and other["pid"] != first["pid"]

    os.kill(first["pid"], 9)
    assert wait_gone(first["pid"])
    revived = run(**args)
    assert revived["changed"] and revived["action"] == "start" and "stale" in revived["reason"]

    moved = run(address="127.77.0.42", daemons=["egress", "supervise"])
    assert moved["action"] == "restart" and moved["reason"] == "its sockets or their targets changed"
    assert wait_gone(revived["pid"])

    assert run(check_mode=True, state="absent")["action"] == "stop"
    assert relay_process.process_args(moved["pid"]) is not None, "check mode stopped nothing"
    gone = run(state="absent")
    assert gone["changed"] and gone["action"] == "stop" and wait_gone(moved["pid"])
    assert not os.path.exists(tmp_path / "relay-a" / "sockets") and not os.path.exists(tmp_path / "relay-a" / "relay")
    assert relay_process.process_args(other["pid"]) is not None, "another bottle's relay runs on"
    assert not run(state="absent")["changed"]


@pytest.mark.parametrize("args, words", [
    (dict(address="127.0.0.1", daemons=["egress"]), "127.0.0.1 is shared"),
    (dict(address="10.0.0.5", daemons=["egress"]), "not a loopback address"),
    (dict(daemons=["egress"]), "address is required"),
    (dict(address="127.77.0.43", daemons=["supervise"]), "has no proxy"),
])
def test_refusals_name_the_key(run, args, words):
    result = run(**args)
    assert result["failed"] and words in result["msg"], result
