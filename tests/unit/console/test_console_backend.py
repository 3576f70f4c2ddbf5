# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The console's backends and notifications: an inventory host through ansible ad hoc, credentials, notify."""

from __future__ import annotations

import json
import os
import secrets
import sys

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as sv
from ansible_collections.botbottle.bottle.plugins.modules import bottle_state
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import run_module
from botbottle_console import backend as bk
from botbottle_console import cli, notify

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")


def test_minimal_callback_output_is_parsed_per_host():
    out = ('box1 | SUCCESS => {\n    "changed": false,\n    "proposals": []\n}\n'
           'box2 | FAILED! => {"msg": "bottle x has no proposal"}\n'
           'box3 | UNREACHABLE! => {"msg": "ssh: no route", "unreachable": true}\n')
    parsed = bk.parse_minimal(out)
    assert parsed["box1"] == ("SUCCESS", {"changed": False, "proposals": []})
    assert parsed["box2"][0] == "FAILED!" and parsed["box3"][1]["unreachable"] is True


def test_credentials_are_looked_up_as_environment_variables():
    route = {"kind": "route", "host": "api.github.com", "auth_ref": "GH_TOKEN"}
    assert bk.lookup_tokens(route, {"GH_TOKEN": "t"}) == ({"GH_TOKEN": "t"}, None)
    assert bk.lookup_tokens(route, {"GH_TOKEN": ""}) == ({}, "GH_TOKEN")
    assert bk.lookup_tokens(dict(route, auth={"scheme": "Bearer", "token_ref": "OTHER"}), {}) == ({}, "OTHER")
    assert bk.lookup_tokens({"kind": "domain", "host": "pypi.org"}, {}) == ({}, None)


def test_notification_where_the_desktop_has_one():
    assert notify.command("t", "b", which=lambda name: "/usr/bin/" + name if name == "notify-send" else None,
                          platform="linux")[0] == "notify-send"
    mac = notify.command('t', 'say "hi"', which=lambda name: "/usr/bin/" + name, platform="darwin")
    assert mac[:2] == ["osascript", "-e"] and '"say \\"hi\\""' in mac[2]
    assert notify.command("t", "b", which=lambda name: None, platform="linux") is None
    launched = []
    assert notify.desktop("t", "b", which=lambda name: None, popen=launched.append) is False and launched == []
    assert notify.desktop("t", "b", which=lambda name: "/x/" + name, platform="linux",
                          popen=lambda argv, **kw: launched.append(argv)) is True
    assert launched == [["notify-send", "--app-name=bot-bottle", "--", "t", "b"]]


@pytest.fixture
def remote(tmp_path, monkeypatch):
    """An inventory host other than localhost (connection local), with one bottle and one pending ask."""
    slug = "cnsr-" + secrets.token_hex(4)
    run_module(bottle_state, None, dict(slug=slug, state_root=str(tmp_path / "state"),
                                        policy={"allowed_domains": ["a.example"], "egress": {"routes": []}},
                                        options={"pipelock": False, "ssrf_ip_allowlist": [],
                                                 "supervise": {"wait_seconds": 5}}, secrets=[], tokens={}))
    state = tmp_path / "state" / slug
    (state / "supervise" / "proposals").mkdir(parents=True)
    proposal = {"id": secrets.token_hex(8), "kind": "domain", "host": "pypi.org", "status": "pending",
                "created": sv.now(), "decided": None, "note": "", "justification": "j"}
    (state / "supervise" / "proposals" / (proposal["id"] + ".json")).write_text(json.dumps(proposal))
    (state / "audit").mkdir(exist_ok=True)
    (state / "audit" / "egress.jsonl").write_text(
        json.dumps({"ts": 1.0, "event": "connect", "host": "evil.example", "action": "block", "rule": "allowlist"})
        + "\n")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    buildbox:\n      ansible_connection: local\n"
                         "      ansible_python_interpreter: %s\n" % sys.executable)
    monkeypatch.setenv("ANSIBLE_CONFIG", os.path.join(REPO, "ansible.cfg"))
    monkeypatch.chdir(REPO)
    return dict(inventory=str(inventory), state_root=str(tmp_path / "state"), slug=slug, id=proposal["id"])


@pytest.mark.docker  # the modules connect to this machine's engine (the bottle is not running there)
def test_an_inventory_host_is_read_and_decided_through_the_modules(remote):
    backend = bk.AnsibleBackend(remote["inventory"], bk.inventory_hosts(remote["inventory"], "all", ANSIBLE),
                                remote["state_root"], ANSIBLE)
    assert backend.hosts == ["buildbox"]
    proposals, problems = backend.proposals()
    assert problems == [] and [(p["inventory_host"], p["slug"], p["id"]) for p in proposals] == [
        ("buildbox", remote["slug"], remote["id"])]
    bottles, problems = backend.bottles()
    mine = [b for b in bottles if b["slug"] == remote["slug"]]
    assert mine and mine[0]["inventory_host"] == "buildbox"
    assert [(r["host"], r["refused"]) for r in mine[0]["firewall"]] == [("evil.example", 1)]
    with pytest.raises(bk.DecisionError, match="note"):
        backend.decide(proposals[0], "reject", note="x" * 2001)
    result = backend.decide(proposals[0], "approve", note="ok for this sprint")
    assert result["proposal"]["status"] == "approved" and "not running" in result["reload"]
    approved = json.loads(open(os.path.join(remote["state_root"], remote["slug"], sv.APPROVED)).read())
    assert approved["domains"] == ["pypi.org"]


def test_the_command_line_builds_local_and_remote_parts(remote):
    args = cli.parser().parse_args(["-i", remote["inventory"], "--state-root", remote["state_root"]])
    fleet = cli.build_backend(args)
    assert fleet.local is None and fleet.remote.hosts == ["buildbox"]
    local_only = cli.build_backend(cli.parser().parse_args(["--state-root", remote["state_root"]]))
    assert isinstance(local_only, bk.LocalBackend) and local_only.state_root == remote["state_root"]


@pytest.mark.docker  # the modules connect to this machine's engine (the bottle is not running there)
def test_an_inventory_host_agent_wide_approval_is_listed_and_taken_back(remote):
    """The console's x on a remote host: bottle_info lists the agent's approvals, bottle_supervise takes one back."""
    state_dir = os.path.join(remote["state_root"], remote["slug"])
    with open(os.path.join(state_dir, "meta.json"), "w") as out:
        json.dump({"slug": remote["slug"], "agent": "cnsr"}, out)
    path = sv.agent_approved_path(remote["state_root"], "cnsr")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as out:
        json.dump({"domains": ["pypi.org", "files.example"], "routes": []}, out)
    backend = bk.AnsibleBackend(remote["inventory"], ["buildbox"], remote["state_root"], ANSIBLE)
    bottles, _problems = backend.bottles()
    mine = [b for b in bottles if b["slug"] == remote["slug"]]
    assert mine and mine[0]["agent_approvals"] == ["domain pypi.org", "domain files.example"], mine
    result = backend.revoke("buildbox", "cnsr", "pypi.org")
    assert result["removed"] == ["domain pypi.org"]
    assert json.load(open(path))["domains"] == ["files.example"]
    with pytest.raises(bk.DecisionError, match="holds: domain files.example"):
        backend.revoke("buildbox", "cnsr", "pypi.org")
