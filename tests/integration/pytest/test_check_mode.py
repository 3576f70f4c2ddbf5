# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/bottle.yml with --check and --diff against a real bottle (Docker).

Run (the engine is shared): flock /tmp/bb-docker.lock .venv/bin/pytest -p no:cacheprovider
tests/integration/pytest/test_check_mode.py -ra

A new bottle in check mode is said to be created and nothing is; the launched bottle checked again
is said to be running with nothing to change; a policy change in check mode names the hosts and
routes that would come (in the closing line and in --diff), never the route's credential, and
changes nothing. The bottle lives under a private state root and is torn down at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest
import yaml

pytestmark = pytest.mark.docker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
INSTANCE = "c" + uuid.uuid4().hex[:6]
SLUG = "ckm-" + INSTANCE
TOKEN = "ckm-route-credential-" + uuid.uuid4().hex
AGENTS = {"ckm": {"policy": "ckm"}}
BEFORE = {"ckm": {"allowed_domains": ["example.com"]}}
AFTER = {"ckm": {"allowed_domains": ["example.com", "pypi.org"],
                 "egress": {"routes": [{"host": "api.github.com", "auth": {"token_ref": "CKM_TOKEN"}}]}}}


def docker_lines(*args):
    return subprocess.run(["docker"] + list(args), capture_output=True, text=True, check=True).stdout.split()


def left_behind():
    label = "label=io.botbottle.bottle=%s" % SLUG
    return docker_lines("ps", "-aq", "--filter", label) + docker_lines("network", "ls", "-q", "--filter", label)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        pytest.fail("no Docker engine: this suite needs one (it is part of make integration)")
    base = tmp_path_factory.mktemp("check-mode")
    state_root = base / "state"

    def play(name, policies, *extra, env=None):
        vars_file = base / "vars.yml"
        vars_file.write_text(yaml.safe_dump({"bottle_agents": AGENTS, "bottle_policies": policies}))
        environ = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        environ.update(ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                       ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_CALLBACK_FORMAT_PRETTY="false")
        environ.update(env or {})
        args = [PLAYBOOK, "playbooks/%s.yml" % name, "-e", "bottle_state_root=%s" % state_root]
        if name == "bottle":
            args += ["-e", "agent=ckm", "-e", "bottle_instance=%s" % INSTANCE, "-e", "@%s" % vars_file]
        else:
            args += ["-e", "bottle=%s" % SLUG]
        run = subprocess.run(args + list(extra), cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600,
                             check=False)
        return run.returncode, run.stdout + run.stderr

    yield {"play": play, "state": state_root / SLUG}
    rc, output = play("teardown", BEFORE)
    assert rc == 0, output
    assert left_behind() == [] and not (state_root / SLUG).exists()


def closing(output):
    """The closing message's lines (the "How to use it" task, one JSON line)."""
    line = next(line for line in output.splitlines() if line.startswith("ok: [localhost] => {\"msg\": ["))
    return json.loads(line.split(" => ", 1)[1])["msg"]


def test_check_mode_of_a_new_bottle_says_what_would_be_created(world):
    rc, output = world["play"]("bottle", BEFORE, "--check")
    assert rc == 0, output
    assert closing(output)[0] == (
        "check mode: bottle %s (agent ckm, policy ckm) would be created: networks, state directory "
        "(hosts +example.com), sidecar bundle, agent container; nothing was changed" % SLUG)
    assert "is running" not in output
    assert left_behind() == [] and not world["state"].exists()


def test_check_mode_of_a_running_bottle_says_nothing_would_change(world):
    rc, output = world["play"]("bottle", BEFORE)
    assert rc == 0, output
    assert closing(output)[0].startswith("bottle %s (agent ckm, policy ckm) is running (created: networks" % SLUG)
    rc, output = world["play"]("bottle", BEFORE, "--check", "--diff")
    assert rc == 0, output
    lines = closing(output)
    assert lines[0] == "check mode: bottle %s (agent ckm, policy ckm) is running, nothing would change" % SLUG
    assert not any(line.startswith("launch:") for line in lines)


def test_check_mode_and_diff_of_a_policy_change_name_the_hosts_and_routes(world):
    source = (world["state"] / "bundle-source.json").read_text()
    rc, output = world["play"]("bottle", AFTER, "--check", "--diff", env={"CKM_TOKEN": TOKEN})
    assert rc == 0, output
    assert closing(output)[0] == (
        "check mode: bottle %s (agent ckm, policy ckm) is running; this launch would change: state directory "
        "(hosts +api.github.com +pypi.org; routes +api.github.com auth Bearer CKM_TOKEN), sidecar bundle reloads "
        "its configuration; nothing was changed" % SLUG)
    # The diff: the hosts and routes, one a line, before and after.
    assert "+++ after: %s: hosts and routes" % world["state"] in output
    diff = output.split("hosts and routes\n", 2)[2].split("\n\n", 1)[0].splitlines()
    assert "+host pypi.org" in diff and "+host api.github.com" in diff and " host example.com" in diff
    assert "+route api.github.com auth Bearer CKM_TOKEN" in diff
    # Never the credential; and check mode changed nothing.
    assert TOKEN not in output
    assert (world["state"] / "bundle-source.json").read_text() == source
