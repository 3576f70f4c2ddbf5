# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/supervise.yml evaluates nothing an agent wrote and prints it escaped.

Runs the real playbook (ansible-playbook, the project's ansible.cfg, localhost with connection local) on a
state root laid out by the role's own module, with Jinja planted in every agent field; the operator decides
with a decision_file holding what they copied from the listing (the agent's matches, a note quoting it).
No template is evaluated (the marker files never appear), the values arrive literally, and the listing shows
control characters, escape sequences and bidi overrides escaped. No Docker engine: nothing here reloads.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as sv
from ansible_collections.botbottle.bottle.plugins.modules import bottle_state
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import run_module

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


@pytest.fixture
def world(tmp_path):
    slug = "plbk-" + secrets.token_hex(3)
    state_root = tmp_path / "state"
    run_module(bottle_state, None, dict(slug=slug, state_root=str(state_root),
                                        policy={"allowed_domains": ["a.example"], "egress": {"routes": []}},
                                        options={"pipelock": False, "ssrf_ip_allowlist": [],
                                                 "supervise": {"wait_seconds": 5}}, secrets=[], tokens={}))
    (state_root / slug / "supervise" / "proposals").mkdir(parents=True)
    marks = tmp_path / "marks"
    marks.mkdir()
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    p = {name: text % (marks / ("PWNED-" + name)) for name, text in {
        "expr": "{{ lookup('pipe', 'touch %s') }}",
        "stmt": "{%% if lookup('pipe', 'touch %s') %%}x{%% endif %%}",
        "query": "{{ query('ansible.builtin.pipe', 'touch %s') }}"}.items()}
    p["comment"] = "{# hidden #}"
    return dict(tmp=tmp_path, slug=slug, state_root=state_root, marks=marks, inventory=inventory, p=p)


def plant(world, **fields):
    proposal = dict(fields, id=secrets.token_hex(8), status="pending", created=sv.now(), decided=None, note="")
    path = world["state_root"] / world["slug"] / "supervise" / "proposals" / (proposal["id"] + ".json")
    path.write_text(json.dumps(proposal))
    return proposal


def stored(world, proposal_id):
    path = world["state_root"] / world["slug"] / "supervise" / "proposals" / (proposal_id + ".json")
    return json.loads(path.read_text())


def playbook(world, *extra):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    environ.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   HOME=str(world["tmp"]))
    run = subprocess.run([str(PLAYBOOK), "playbooks/supervise.yml", "-i", str(world["inventory"]),
                          "-e", "bottle_state_root=%s" % world["state_root"]] + list(extra),
                         cwd=ROOT, env=environ, capture_output=True, text=True, timeout=180, check=False)
    return run.returncode, run.stdout + run.stderr


def evaluated(world):
    return sorted(os.listdir(world["marks"]))


def test_the_listing_and_a_decision_file_evaluate_nothing(world):
    p = world["p"]
    every = "".join(p.values())
    route = plant(world, kind="route", host="api.example.com", auth_ref="GH_TOKEN",
                  justification="need it \x1b[31m\u202e " + every,
                  matches=[{"methods": ["GET", "POST"], "paths": [{"type": "regex", "value": "^/v1/" + every + "$"}]}])
    block = plant(world, kind="block", url="https://x.example/" + p["expr"], reason_seen=p["stmt"],
                  justification=p["query"])

    rc, out = playbook(world)
    assert rc == 0, out
    assert "\x1b" not in out and "\u202e" not in out
    assert "\\\\x1b[31m\\\\u202e" in out, out  # escaped by the module, then JSON-quoted by the callback
    assert route["id"] in out and block["id"] in out and "lookup('pipe'" in out
    assert evaluated(world) == []

    # the operator narrows the route to GET, copying the agent's paths, and quotes it in the note
    decision = world["tmp"] / "decision.yml"
    note = "GET only; you asked " + every
    decision.write_text(yaml.safe_dump({"note": note, "changes": {"matches": [
        {"methods": ["GET"], "paths": route["matches"][0]["paths"]}]}}))
    rc, out = playbook(world, "-e", "decide=modify", "-e", "id=%s" % route["id"], "-e", "decision_file=%s" % decision)
    assert rc == 0, out
    after = stored(world, route["id"])
    assert after["matches"] == [{"methods": ["GET"], "paths": route["matches"][0]["paths"]}]
    rc, out = playbook(world, "-e", "decide=reject", "-e", "id=%s" % route["id"], "-e", "decision_file=%s" % decision)
    assert rc == 0, out
    assert stored(world, route["id"])["note"] == note and stored(world, route["id"])["status"] == "rejected"

    decision.write_text(yaml.safe_dump({"note": "thanks: " + every}))
    rc, out = playbook(world, "-e", "decide=approve", "-e", "id=%s" % block["id"], "-e", "decision_file=%s" % decision)
    assert rc == 0, out
    assert stored(world, block["id"])["note"] == "thanks: " + every
    assert evaluated(world) == []


def test_an_unsafe_vars_file_evaluates_nothing_either(world):
    """The other way to pass data: -e @file with the value tagged !unsafe (a plain -e @file is templated)."""
    p = world["p"]
    proposal = plant(world, kind="domain", host="docs.example", justification="j")
    vars_file = world["tmp"] / "note.yml"
    vars_file.write_text("note: !unsafe %s\n" % json.dumps("no: " + "".join(p.values())))
    rc, out = playbook(world, "-e", "decide=reject", "-e", "id=%s" % proposal["id"], "-e", "@%s" % vars_file)
    assert rc == 0, out
    assert stored(world, proposal["id"])["note"] == "no: " + "".join(p.values())
    assert evaluated(world) == []


def test_a_decision_file_of_the_wrong_shape_is_refused(world):
    proposal = plant(world, kind="domain", host="docs.example", justification="j")
    decision = world["tmp"] / "decision.yml"
    decision.write_text(yaml.safe_dump({"notes": "typo"}))
    rc, out = playbook(world, "-e", "decide=reject", "-e", "id=%s" % proposal["id"], "-e", "decision_file=%s" % decision)
    assert rc != 0 and "must hold a mapping with note (text) and/or changes" in out
    assert stored(world, proposal["id"])["status"] == "pending"


def test_approvals_that_reach_the_role_stay_data(world):
    """The role's smolmachines preflight: the approvals come back from a module (bottle_info there, slurp here),
    go through the with_approvals filter and a set_fact into a module's arguments; an agent-written regex in an
    approved route is never evaluated on the way."""
    p = world["p"]
    regex = "^/v1/" + "".join(p.values()) + "$"
    approved = world["tmp"] / "supervise-approved.json"
    approved.write_text(json.dumps({"domains": ["docs.example"], "routes": [
        {"host": "api.example.com", "matches": [{"paths": [{"type": "regex", "value": regex}]}]}]}))
    out_file = world["tmp"] / "policy.json"
    play = world["tmp"] / "approvals.yml"
    play.write_text(yaml.safe_dump([{
        "name": "approvals as the role reads them", "hosts": "localhost", "gather_facts": False,
        "tasks": [
            {"name": "read", "ansible.builtin.slurp": {"src": str(approved)}, "register": "read"},
            {"name": "merge", "ansible.builtin.set_fact": {"merged": "{{ {'allowed_domains': ['a.example'], "
                                                                     "'egress': {'routes': []}} | "
                                                                     "botbottle.bottle.with_approvals(read.content "
                                                                     "| b64decode | from_json) }}"}},
            {"name": "use", "ansible.builtin.copy": {"content": "{{ merged | to_json }}", "dest": str(out_file),
                                                     "mode": "0600"}},
        ]}]))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    environ.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", HOME=str(world["tmp"]))
    run = subprocess.run([str(PLAYBOOK), str(play), "-i", str(world["inventory"])], cwd=ROOT, env=environ,
                         capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    merged = json.loads(out_file.read_text())
    assert merged["egress"]["routes"][0]["matches"][0]["paths"][0]["value"] == regex
    assert evaluated(world) == []


def test_a_note_the_shell_split_is_refused_with_the_quoting_that_works(world):
    """Issue 21 item 5: -e note="use the internal mirror" reaches ansible-core as three words; refused, not "use"."""
    proposal = plant(world, kind="domain", host="docs.example", justification="j")
    rc, out = playbook(world, "-e", "decide=reject", "-e", "id=%s" % proposal["id"], "-e", "note=use the internal mirror")
    assert rc != 0, out
    assert "cut at its first space" in out and "-e 'note=\"use the internal mirror\"'" in out and "decision_file" in out
    assert stored(world, proposal["id"])["status"] == "pending"
    # the quoting it names works
    rc, out = playbook(world, "-e", "decide=reject", "-e", "id=%s" % proposal["id"], "-e", 'note="use the internal mirror"')
    assert rc == 0, out
    assert stored(world, proposal["id"])["note"] == "use the internal mirror"


def test_a_misspelt_decision_is_echoed(world):
    """Issue 21 item 7: -e decide=aprove names the bad value, not the scope."""
    proposal = plant(world, kind="domain", host="docs.example", justification="j")
    rc, out = playbook(world, "-e", "decide=aprove", "-e", "id=%s" % proposal["id"])
    assert rc != 0 and '(got "aprove")' in out, out
    assert "(got bottle)" not in out
