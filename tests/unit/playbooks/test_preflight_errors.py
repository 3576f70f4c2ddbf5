# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launch playbook with bad input: one short block naming the key and the fix, printed once.

Runs the real playbooks/bottle.yml (ansible-playbook, the project's ansible.cfg); every case stops in
the role's preflight before anything is created (a credential case reads the engine's image list first)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
# Environment variables the cases set themselves (a developer's real credentials must not leak in).
CREDENTIALS = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "GH_TOKEN")
MAX_FAILURE_LINES = 12


def launch(tmp_path, agent, definitions=None, env=None, extra=()):
    # An inventory of its own: a developer's group_vars (their agents, their credentials) stay out.
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    args = [str(PLAYBOOK), "playbooks/bottle.yml", "-i", str(inventory), "-e", "agent=%s" % agent,
            "-e", "bottle_state_root=%s" % (tmp_path / "state")]
    if definitions is not None:
        vars_file = tmp_path / "vars.yml"
        vars_file.write_text(yaml.safe_dump(definitions))
        args += ["-e", "@%s" % vars_file]
    environ = {k: v for k, v in os.environ.items() if k not in CREDENTIALS and not k.startswith("ANSIBLE_")}
    environ.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   HOME=str(tmp_path))
    environ.update(env or {})
    run = subprocess.run(args + list(extra), cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120,
                         check=False)
    return run.returncode, run.stdout + run.stderr


def failure_block(output):
    """The lines from the failing task's banner to the play recap."""
    lines = output.splitlines()
    failed = max(i for i, line in enumerate(lines) if line.startswith("fatal: ") or line.startswith("failed: "))
    start = max(i for i in range(failed + 1) if lines[i].startswith("TASK ["))
    end = next(i for i in range(failed, len(lines)) if lines[i].startswith("PLAY RECAP"))
    return [line for line in lines[start:end] if line.strip()]


WEB = {"web": {"policy": "web"}}
CASES = {
    "wrong type": (
        "web", {"bottle_agents": WEB, "bottle_policies": {"web": {"allowed_domains": "example.com"}}}, {},
        "bottle_policies.web.allowed_domains must be a list, not a string: write a list of host names"),
    "unknown policy key": (
        "web", {"bottle_agents": WEB, "bottle_policies": {"web": {"allowed_domain": ["example.com"]}}}, {},
        "bottle_policies.web.allowed_domain is not a known key: use one of allowed_domains,"),
    "unknown agent key": (
        "web", {"bottle_agents": {"web": {"policy": "web", "promt": "hi"}},
                "bottle_policies": {"web": {"allowed_domains": ["example.com"]}}}, {},
        "bottle_agents.web.promt is not a known key: use one of description, env, image,"),
    "a number where a mapping goes": (
        "web", {"bottle_agents": WEB, "bottle_policies": {"web": {"allowed_domains": ["example.com"], "env": 3}}},
        {}, "bottle_policies.web.env must be a mapping, not a number: write NAME: value pairs"),
    "a limit that is not a size": (
        "web", {"bottle_agents": {"web": {"policy": "web", "resources": {"memory": "lots"}}},
                "bottle_policies": {"web": {"allowed_domains": ["example.com"]}}}, {},
        "bottle_agents.web.resources.memory 'lots' is not a size: write a size such as 4g or 512m (at least 6m)"),
    "an unknown limit": (
        "web", {"bottle_agents": WEB, "bottle_policies": {"web": {"allowed_domains": ["example.com"],
                                                                  "resources": {"memroy": "4g"}}}}, {},
        "bottle_policies.web.resources.memroy is not a known key: use one of memory, cpus, pids"),
    "agents as a list": (
        "web", {"bottle_agents": ["web"]}, {},
        "bottle_agents must be a mapping, not a list: a mapping of agent name to definition"),
    "unknown agent": (
        "nobody", None, {}, "agent 'nobody' is not defined: known agents are demo, demo-codex (define it under bottle_agents)"),
    "route credential set but empty": (
        "web", {"bottle_agents": WEB, "bottle_policies": {"web": {"egress": {"routes": [
            {"host": "api.github.com", "auth": {"token_ref": "GH_TOKEN"}}]}}}}, {"GH_TOKEN": ""},
        "route api.github.com needs credential GH_TOKEN, and the environment variable GH_TOKEN is set but empty "
        "on the controller: export GH_TOKEN=<the credential>"),
    "route credential missing": (
        "web", {"bottle_agents": WEB, "bottle_policies": {"web": {"egress": {"routes": [
            {"host": "api.github.com", "auth": {"token_ref": "GH_TOKEN"}}]}}}}, {},
        "GH_TOKEN is neither an Ansible variable nor an environment variable on the controller: define it"),
    "model credentials set but empty": (
        "demo", None, {"ANTHROPIC_API_KEY": "", "CLAUDE_CODE_OAUTH_TOKEN": ""},
        "bottle_policies.demo.model: the controller holds no model credential (ANTHROPIC_API_KEY is set but empty, "
        "CLAUDE_CODE_OAUTH_TOKEN is set but empty): export ANTHROPIC_API_KEY"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_launch_prints_one_short_block(tmp_path, case):
    agent, definitions, env, message = CASES[case]
    rc, output = launch(tmp_path, agent, definitions, env)
    assert rc != 0, output
    assert output.count(message) == 1, output
    for noise in ("censored", "_Ansible", "<<< caused by >>>", "Finalization of task args", "NoneType", "dict",
                  "str'", "AnsibleFilterError"):
        assert noise not in output, (noise, output)
    block = failure_block(output)
    assert len(block) <= MAX_FAILURE_LINES, "\n".join(block)
    assert "stopped before anything was created" in block[-1], block[-1]
    # Nothing was created: not even the bottle's state directory.
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


def test_a_secret_env_value_of_a_bad_launch_is_not_printed(tmp_path):
    definitions = {"bottle_agents": {"web": {"policy": "web", "secret_env": {"DB_PASSWORD": "hunter2-very-secret"}}},
                   "bottle_policies": {"web": {"allowed_domains": "example.com"}}}
    rc, output = launch(tmp_path, "web", definitions, extra=["-v"])
    assert rc != 0 and "hunter2-very-secret" not in output, output
    assert output.count("bottle_policies.web.allowed_domains must be a list, not a string") == 1, output
