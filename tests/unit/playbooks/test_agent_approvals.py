# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 21 item 6: teardown of an agent's last bottle names the agent-wide approvals it leaves and how to take
them back; taking one back is one command (playbooks/supervise.yml -e agent=... -e revoke=<host>).

Runs the real playbooks on localhost against a state root in a temporary directory (a bottle with a state
directory only: nothing of Docker is created or removed; bottle_info only lists)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def playbook(tmp_path, name, *extra):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    environ.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   HOME=str(tmp_path))
    run = subprocess.run([str(PLAYBOOK), "playbooks/%s" % name, "-e", "bottle_state_root=%s" % (tmp_path / "state"),
                          "-e", "bottle_archive_root=%s" % (tmp_path / "archive")] + list(extra),
                         cwd=ROOT, env=environ, capture_output=True, text=True, timeout=240, check=False)
    return run.returncode, run.stdout + run.stderr


@pytest.fixture
def world(tmp_path):
    agent = "os2demo" + os.urandom(3).hex()
    for slug in ("os2-a-" + agent[-6:], "os2-b-" + agent[-6:]):
        (tmp_path / "state" / slug).mkdir(parents=True)
        (tmp_path / "state" / slug / "meta.json").write_text(json.dumps({"agent": agent, "slug": slug}))
    approvals = tmp_path / "agents" / agent / "supervise-approved.json"
    approvals.parent.mkdir(parents=True)
    approvals.write_text(json.dumps({"domains": ["pypi.org", "docs.example"], "routes": []}))
    return dict(agent=agent, approvals=approvals, slugs=sorted(os.listdir(tmp_path / "state")))


def test_revoke_takes_one_agent_wide_approval_back(tmp_path, world):
    rc, out = playbook(tmp_path, "supervise.yml", "-e", "agent=%s" % world["agent"], "-e", "revoke=pypi.org")
    assert rc == 0, out
    assert "taken back: domain pypi.org" in out
    assert json.loads(world["approvals"].read_text())["domains"] == ["docs.example"]
    rc, out = playbook(tmp_path, "supervise.yml", "-e", "revoke=pypi.org")
    assert rc != 0 and "name the agent too, -e agent=<name>" in out


@pytest.mark.docker  # bottle_info lists this machine's engine (read only)
def test_teardown_of_the_agents_last_bottle_names_what_it_leaves(tmp_path, world):
    first, last = world["slugs"]
    rc, out = playbook(tmp_path, "teardown.yml", "-e", "bottle=%s" % first)
    assert rc == 0, out
    assert "agent-wide approvals stay" not in out, "another bottle of the agent is still there"
    rc, out = playbook(tmp_path, "teardown.yml", "-e", "bottle=%s" % last)
    assert rc == 0, out
    assert "agent %s has no bottle left, but its agent-wide approvals stay in %s" % (world["agent"], world["approvals"]) \
        in out
    assert "domain pypi.org, domain docs.example" in out
    assert ".venv/bin/ansible-playbook playbooks/supervise.yml -e agent=%s -e revoke=<host>" % world["agent"] in out


@pytest.mark.docker  # bottle_info lists this machine's engine (read only)
def test_teardown_of_a_missing_bottle_says_so_in_a_sentence(tmp_path):
    """Issue 21 item 7: a sentence naming what was asked for and where to look, not a Python dict."""
    rc, out = playbook(tmp_path, "teardown.yml", "-e", "bottle=os2-nonexistent", "-e", "agent=nobody")
    assert rc == 0, out
    assert "Nothing to tear down on localhost: no bottle matches bottle os2-nonexistent and agent nobody. " \
           "The bottles there: .venv/bin/ansible-playbook playbooks/status.yml" in out, out  # the checkout's form
    assert "{'slug'" not in out and '{\\"slug' not in out
