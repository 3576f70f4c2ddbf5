# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launch's outcome line, "what changed" and the fleet's status: one owner (module_utils/launch_outcome.py)."""

from __future__ import annotations

import pytest

from ansible_collections.botbottle.bottle.plugins.filter.launch_outcome import launch_outcome
from ansible_collections.botbottle.bottle.plugins.module_utils.launch_outcome import outcome, policy_summary

NAME = "bottle coder (agent coder, policy ai)"
SAME = {"changed": False}


def run(results, preexisting=True, check=False, backend="docker", launched=None):
    return outcome("coder", "coder", "ai", backend, preexisting, check, results, launched)


def test_a_new_bottle_lists_what_was_created():
    got = run({"networks": {"changed": True}, "state": {"changed": True}, "bundle": {"changed": True, "created": True},
               "agent": {"changed": True, "created": True}}, preexisting=False)
    assert got["text"] == NAME + " is running (created: networks, state directory, sidecar bundle, agent container)"
    assert got["changed"] and got["status"] == "started"


def test_a_rerun_that_changed_nothing():
    got = run({"networks": SAME, "state": SAME, "bundle": SAME, "agent": SAME},
              launched={"current": True, "reason": "ignored"})
    assert got == {"text": NAME + " is running (nothing changed)", "changed": False, "status": "unchanged",
                   "why": "nothing to do: the bottle runs as this launch would leave it"}


def test_the_state_directory_names_the_policy_changes_and_never_a_credential():
    changes = {"hosts_added": ["a.test"], "hosts_removed": ["b.test"], "routes_added": ["GET a.test/x"],
               "other_added": ["max_body_bytes"]}
    assert policy_summary(changes) == "hosts +a.test -b.test; routes +GET a.test/x; firewall +max_body_bytes"
    got = run({"state": {"changed": True, "policy_changes": changes}, "bundle": {"changed": True, "created": False}})
    assert got["text"] == (NAME + " is running (changed: state directory (hosts +a.test -b.test; routes +GET a.test/x; "
                                  "firewall +max_body_bytes), sidecar bundle reloads its configuration)")
    assert got["status"] == "updated"


@pytest.mark.parametrize("result,words", [
    ({"changed": True, "created": False, "updated_in_place": ["cpus", "memory"]}, "agent container updated in place (cpus, memory)"),
    ({"changed": True, "created": False, "recreated_for": ["image"]}, "agent container recreated (image)"),
    ({"changed": True, "created": False, "restarted": True}, "agent container started"),
    ({"changed": True, "created": False}, "agent container"),
    ({"changed": True, "diff": {"before": {}, "after": {"image": "x"}}}, "agent container"),
])
def test_how_the_agent_changed(result, words):
    assert run({"agent": result})["text"] == NAME + " is running (changed: %s)" % words


def test_the_bundle_recreated_for_its_log_bound():
    got = run({"bundle": {"changed": True, "created": False, "recreated_for": ["log"]}})
    assert got["text"] == NAME + " is running (changed: sidecar bundle recreated (log))"


def test_check_mode_says_what_would_change_and_that_nothing_did():
    assert run({"networks": {"changed": True}}, preexisting=False, check=True)["text"] == (
        "check mode: " + NAME + " would be created: networks; nothing was changed")
    assert run({"bundle": {"changed": True, "created": False, "recreated_for": ["env"]}}, check=True)["text"] == (
        "check mode: " + NAME + " is running; this launch would change: sidecar bundle recreated (env); nothing was changed")
    assert run({"bundle": SAME}, check=True)["text"] == "check mode: " + NAME + " is running, nothing would change"


def test_smolmachines_names_the_vm_and_a_step_check_mode_skips():
    got = run({"archive": {"changed": True}, "agent": {"skipped": True}}, check=True, backend="smolmachines")
    assert got["text"] == ("check mode: " + NAME + " is running; this launch would change: agent image archive, agent VM; "
                           "nothing was changed")
    # smolmachines has its stamp too: why comes from bottle_launch, as on docker.
    vm = run({}, launched={"current": False, "reason": "the socket relay does not run as the launch left it"},
             backend="smolmachines")
    assert vm["why"] == "the socket relay does not run as the launch left it"


def test_the_relay_says_it_was_started_again():
    got = run({"relay": {"changed": True, "action": "restart"}}, backend="smolmachines")
    assert got["text"] == NAME + " is running (changed: socket relay restarted)"
    assert run({"relay": {"changed": False, "action": "none"}}, backend="smolmachines")["text"] == (
        NAME + " is running (nothing changed)")


def test_why_a_docker_launch_ran_in_full():
    assert run({}, launched={"current": False, "reason": "the stamp's digest differs"})["why"] == "the stamp's digest differs"


def test_the_filter_takes_ansibles_containers():
    got = launch_outcome({"bundle": {"changed": True, "created": False, "recreated_for": ("image",)}},
                         "coder", "coder", "ai", "docker", True, False)
    assert got["text"] == NAME + " is running (changed: sidecar bundle recreated (image))"
