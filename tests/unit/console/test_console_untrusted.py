# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Nothing an agent wrote is evaluated on the controller: Jinja planted in every agent field, and in every field
the operator can copy from an ask, reaches the store literally through both backends and the console; the
marker files the templates would create never appear.

The remote backend runs the real ``ansible`` (inventory host ``buildbox``, ``ansible_connection: local``)
against a state root laid out by the role's own module, as tests/unit/console/test_console_backend.py does.
No Docker engine is needed: modify, reject and a block report's approval reload nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as sv
from ansible_collections.botbottle.bottle.plugins.modules import bottle_state
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import run_module
from botbottle_console import backend as bk
from botbottle_console.app import ConsoleApp

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.dirname(sys.executable)
ANSIBLE = os.path.join(BIN, "ansible")


def payloads(marks):
    """Every template form Ansible (Jinja) knows, each creating a marker file of its own when evaluated."""
    def mark(name):
        return os.path.join(marks, "PWNED-" + name)
    return {
        "expr": "{{ lookup('pipe', 'touch %s') }}" % mark("expr"),
        "stmt": "{%% if lookup('pipe', 'touch %s') %%}x{%% endif %%}" % mark("stmt"),
        "comment": "{# hidden #}",
        "shell": "${HOME}$(touch %s)" % mark("shell"),
        "query": "{{ query('ansible.builtin.pipe', 'touch %s') }}" % mark("query"),
    }


def evaluated(marks):
    return sorted(name for name in os.listdir(marks) if name.startswith("PWNED-"))


@pytest.fixture
def remote(tmp_path, monkeypatch):
    slug = "cnsu-" + secrets.token_hex(4)
    state_root = tmp_path / "state"
    run_module(bottle_state, None, dict(slug=slug, state_root=str(state_root),
                                        policy={"allowed_domains": ["a.example"], "egress": {"routes": []}},
                                        options={"pipelock": False, "ssrf_ip_allowlist": [],
                                                 "supervise": {"wait_seconds": 5}}, secrets=[], tokens={}))
    (state_root / slug / "supervise" / "proposals").mkdir(parents=True)
    (state_root / slug / "meta.json").write_text(json.dumps({"slug": slug, "agent": "cnsu"}))
    marks = tmp_path / "marks"
    marks.mkdir()
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    buildbox:\n      ansible_connection: local\n"
                         "      ansible_python_interpreter: %s\n" % sys.executable)
    monkeypatch.setenv("ANSIBLE_CONFIG", os.path.join(REPO, "ansible.cfg"))
    monkeypatch.chdir(REPO)
    return dict(inventory=str(inventory), state_root=state_root, slug=slug, marks=str(marks))


def plant(state_root, slug, **fields):
    """A proposal as supervise's daemon writes it (its fields are what supervise accepts: see below)."""
    proposal = dict(fields, id=secrets.token_hex(8), status="pending", created=sv.now(), decided=None, note="")
    (state_root / slug / "supervise" / "proposals" / (proposal["id"] + ".json")).write_text(json.dumps(proposal))
    return proposal


def stored(state_root, slug, proposal_id):
    return json.loads((state_root / slug / "supervise" / "proposals" / (proposal_id + ".json")).read_text())


def agent_route(p):
    """A route ask whose every agent-written field holds a template: supervise accepts it as it is."""
    regex = "^/v1/(a|b)" + p["expr"] + p["stmt"] + p["comment"] + p["shell"] + p["query"] + "$"
    return dict(kind="route", host="api.example.com", auth_ref="GH_TOKEN",
                justification="please " + "".join(p.values()),
                matches=[{"methods": ["GET", "POST"],
                          "paths": [{"type": "regex", "value": regex},
                                    {"type": "prefix", "value": "/v2/" + p["expr"] + p["stmt"]}]}])


def test_supervise_accepts_the_planted_route_as_it_is(remote):
    """The asks planted here are ones the agent can make: supervise (the bundle's code) takes them unchanged."""
    sys.path.insert(0, os.path.join(REPO, "images", "bundle"))
    try:
        import importlib.util
        path = os.path.join(REPO, "images", "bundle", "supervise.py")
        spec = importlib.util.spec_from_file_location("supervise_untrusted", path)
        supervise = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(supervise)
    finally:
        sys.path.pop(0)
    route = agent_route(payloads(remote["marks"]))
    clean = supervise.validate("route", {k: route[k] for k in ("host", "auth_ref", "matches", "justification")})
    assert clean["matches"] == route["matches"] and clean["justification"] == route["justification"]
    block = supervise.validate("block", {"url": "https://x.example/%7B%7B", "reason_seen": route["justification"],
                                         "justification": route["justification"]})
    assert block["reason_seen"] == route["justification"]


def narrowing(asked):
    """What an operator sends after copying the ask into the modify dialog: the same paths, GET only."""
    return {"matches": [{"methods": ["GET"], "paths": asked["matches"][0]["paths"]}]}


def test_the_remote_backend_evaluates_nothing_the_agent_wrote(remote):
    """0a: a remote-backend modify of an ask whose matches carry a lookup evaluates nothing on the controller."""
    p = payloads(remote["marks"])
    backend = bk.AnsibleBackend(remote["inventory"], ["buildbox"], str(remote["state_root"]), ANSIBLE)
    route = plant(remote["state_root"], remote["slug"], **agent_route(p))
    block = plant(remote["state_root"], remote["slug"], kind="block", url="https://x.example/" + p["expr"],
                  reason_seen=p["stmt"], justification=p["query"])
    listed, problems = backend.proposals()
    assert problems == [] and {x["id"] for x in listed} == {route["id"], block["id"]}
    asked = next(x for x in listed if x["id"] == route["id"])
    assert asked["matches"] == route["matches"]  # read back literally, too

    note = "ok " + "".join(p.values())
    backend.decide(asked, "modify", changes=narrowing(asked), note=note)
    after = stored(remote["state_root"], remote["slug"], route["id"])
    assert after["matches"] == [{"methods": ["GET"], "paths": route["matches"][0]["paths"]}]
    assert after["status"] == "pending"
    backend.decide(asked, "reject", note=note)
    assert stored(remote["state_root"], remote["slug"], route["id"])["note"] == note
    backend.decide(next(x for x in listed if x["id"] == block["id"]), "approve", note=note)
    decided = stored(remote["state_root"], remote["slug"], block["id"])
    assert decided["status"] == "approved" and decided["note"] == note and decided["url"] == block["url"]
    assert evaluated(remote["marks"]) == []


def test_the_arguments_never_reach_the_command_line(remote, monkeypatch):
    """What ansible is run with: fixed references only; the values sit in a private, removed, !unsafe file."""
    seen = []
    real_run = subprocess.run

    def spy(argv, **kwargs):
        vars_file = argv[argv.index("-e") + 1][1:]
        seen.append((list(argv), os.stat(vars_file).st_mode & 0o777, os.stat(os.path.dirname(vars_file)).st_mode
                     & 0o777, open(vars_file, encoding="utf-8").read(), vars_file))
        return real_run(argv, **kwargs)  # pylint: disable=subprocess-run-check  # check is in kwargs

    monkeypatch.setattr(bk.subprocess, "run", spy)
    p = payloads(remote["marks"])
    backend = bk.AnsibleBackend(remote["inventory"], ["buildbox"], str(remote["state_root"]), ANSIBLE)
    proposal = dict(plant(remote["state_root"], remote["slug"], **agent_route(p)), slug=remote["slug"],
                    inventory_host="buildbox")
    backend.decide(proposal, "reject", note=p["expr"])
    argv, mode, dir_mode, text, vars_file = seen[-1]
    assert not any("lookup" in arg or "PWNED" in arg for arg in argv)
    assert json.loads(argv[argv.index("-a") + 1])["note"] == "{{ bb_console_args.note }}"
    assert mode == 0o600 and dir_mode == 0o700 and "!unsafe" in text and "lookup(" in text
    assert not os.path.exists(vars_file) and not os.path.exists(os.path.dirname(vars_file))
    assert evaluated(remote["marks"]) == []


def test_a_credential_entered_at_the_prompt_reaches_a_remote_host_only_in_the_private_file(remote, monkeypatch):
    """Issue 21 item 3: the value typed at the console's prompt goes to the remote module's no_log ``tokens`` through
    the 0600 !unsafe vars file, removed after the run; never on the command line, never in the output."""
    secret = "ghp_" + "Typed0123456789abcdefghijklmnopqrstuvw"
    seen = []
    real_run = subprocess.run

    def spy(argv, **kwargs):
        vars_file = argv[argv.index("-e") + 1][1:]
        seen.append((list(argv), open(vars_file, encoding="utf-8").read(), vars_file))
        result = real_run(argv, **kwargs)  # pylint: disable=subprocess-run-check  # check is in kwargs
        seen.append(result.stdout + result.stderr)
        return result

    monkeypatch.setattr(bk.subprocess, "run", spy)
    backend = bk.AnsibleBackend(remote["inventory"], ["buildbox"], str(remote["state_root"]), ANSIBLE,
                                environ={k: v for k, v in os.environ.items() if k != "GH_TOKEN"})
    proposal = dict(plant(remote["state_root"], remote["slug"], kind="route", host="api.example.com",
                          auth_ref="GH_TOKEN", justification="j"), slug=remote["slug"], inventory_host="buildbox")
    try:
        backend.decide(proposal, "approve", tokens={"GH_TOKEN": secret})
    except bk.DecisionError:
        pass  # no bundle runs here: what matters is where the value went
    (argv, text, vars_file), output = seen[0], seen[1]
    assert not any(secret in arg for arg in argv)
    assert secret in text and "!unsafe" in text, "the module got the value through the private file"
    assert not os.path.exists(vars_file)
    assert secret not in output
    tokens = os.path.join(str(remote["state_root"]), remote["slug"], "private", "egress", "tokens.json")
    assert secret in open(tokens, encoding="utf-8").read(), output[-2000:]


def test_extra_vars_files_are_templates_in_this_ansible(tmp_path):
    """Why the console writes !unsafe: ansible-core 2.19 evaluates templates in a plain -e @file (trusted)."""
    mark = tmp_path / "PWNED-plain"
    plain = tmp_path / "plain.yml"
    plain.write_text("x: \"{{ lookup('pipe', 'touch %s') }}\"\n" % mark)
    subprocess.run([ANSIBLE, "localhost", "-m", "ansible.builtin.debug", "-a", '{"msg": "{{ x }}"}', "-e",
                    "@%s" % plain], capture_output=True, check=True, cwd=str(tmp_path))
    assert mark.exists(), "ansible no longer templates -e @file values: the !unsafe tag may be redundant now"
    safe = tmp_path / "safe"
    safe.mkdir(mode=0o700)
    other = tmp_path / "PWNED-unsafe"
    vars_file = bk.write_unsafe_vars(str(safe), {"x": "{{ lookup('pipe', 'touch %s') }}" % other})
    out = subprocess.run([ANSIBLE, "localhost", "-m", "ansible.builtin.debug", "-a",
                          bk.module_args_referring({"x": 1}).replace('"x"', '"msg"'), "-e", "@" + vars_file],
                         capture_output=True, text=True, check=True, cwd=str(tmp_path),
                         env=dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal"))
    assert not other.exists() and "lookup('pipe', 'touch %s')" % other in out.stdout


def test_the_local_backend_evaluates_nothing(remote):
    p = payloads(remote["marks"])
    backend = bk.LocalBackend(str(remote["state_root"]), client_factory=None, environ={})
    route = plant(remote["state_root"], remote["slug"], **agent_route(p))
    proposal = dict(route, slug=remote["slug"], inventory_host="localhost")
    note = "".join(p.values())
    backend.decide(proposal, "modify", changes=narrowing(route))
    backend.decide(proposal, "reject", note=note)
    final = stored(remote["state_root"], remote["slug"], route["id"])
    assert final["note"] == note and final["matches"][0]["paths"] == route["matches"][0]["paths"]
    assert evaluated(remote["marks"]) == []


async def _until(pilot, condition, what, timeout=120.0):
    import time
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s; log:\n%s" % (what, "\n".join(pilot.app.history)))
        await pilot.pause(0.1)


def test_the_console_modify_dialog_on_a_remote_host_evaluates_nothing(remote):
    """The whole 0a path: the console lists a remote ask, m pre-fills the agent's matches, the operator narrows
    them and sends; the agent's templates arrive in the store as written."""
    p = payloads(remote["marks"])
    route = plant(remote["state_root"], remote["slug"], **agent_route(p))
    backend = bk.AnsibleBackend(remote["inventory"], ["buildbox"], str(remote["state_root"]), ANSIBLE)
    backend.poll_interval = 1.0
    backend.bottle_interval = 600.0  # bottles are read once; this test is about the asks

    async def scenario():
        app = ConsoleApp(bk.Fleet(remote=backend), poll=1.0, bottle_poll=600.0, notifier=None, environ={})
        async with app.run_test(size=(200, 60)) as pilot:
            await _until(pilot, lambda: len(app.proposals) == 1, "the remote ask")
            await pilot.press("m")
            await _until(pilot, lambda: app.screen.__class__.__name__ == "NoteScreen", "the modify dialog")
            box = app.screen.query_one("Input")
            prefilled = json.loads(box.value)
            assert prefilled["matches"] == route["matches"]  # the agent's text, copied into the dialog
            box.value = json.dumps(narrowing(prefilled))
            await pilot.press("enter")
            await _until(pilot, lambda: "modified" in stored(remote["state_root"], remote["slug"], route["id"]),
                         "the modification in the store")
            await _until(pilot, lambda: not app.deciding, "the decision's end")
            return list(app.history)

    log = asyncio.run(scenario())
    assert any("done modify" in line for line in log), log
    after = stored(remote["state_root"], remote["slug"], route["id"])
    assert after["matches"][0]["paths"] == route["matches"][0]["paths"]
    assert evaluated(remote["marks"]) == []
