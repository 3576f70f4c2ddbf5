# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_launch against the in-memory engine of docker_fakes and a state root under tmp_path: what it
looks at before anything is created (images, approvals and their credentials, the stamp), check mode
on an empty engine, and failures that say whether the bottle existed."""

from __future__ import annotations

import hashlib
import json
import os
from unittest import mock

import pytest
from ansible.module_utils.common import arg_spec

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config, bundle_format, launch_stamp, naming
from ansible_collections.botbottle.bottle.plugins.modules import bottle_launch
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import (
    FakeEngine, Failed, run_module)

BUNDLE_IMAGE = "botbottle/bundle:test"
AGENT_IMAGE = "botbottle/agent:test"
TOKEN = "ghp-launch-test-token"
SECRET = "launch-test-secret-env"


@pytest.fixture
def engine():
    engine = FakeEngine()
    engine.add_image(BUNDLE_IMAGE, labels={bundle_format.IMAGE_LABEL: "2 3"})
    engine.add_image(AGENT_IMAGE)
    return engine


def args(tmp_path, **overrides):
    root = str(tmp_path / "state")
    out = {
        "slug": "demo", "agent": "demo", "approvals_agent": "demo", "digest": "digest-1",
        "state": {"state_root": root, "policy": {"allowed_domains": ["pypi.org"]}, "tokens": {},
                  "meta": {"slug": "demo", "agent": "demo"}},
        "network": {"pool": "172.29.0.0/16", "prefix": 28},
        "bundle": {"image": BUNDLE_IMAGE, "daemons": ["egress"],
                   "mounts": [{"source": root + "/demo/bundle", "target": "/etc/bottle", "read_only": True}]},
        "container": {"image": AGENT_IMAGE, "secret_env": {"DB_PASSWORD": SECRET}},
        "provision": {"ca_cert_path": root + "/demo/ca/bottle-ca.pem", "prompt": "Be careful."},
    }
    out.update(overrides)
    return out


def approve(tmp_path, approved):
    folder = tmp_path / "state" / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / bundle_config.APPROVED).write_text(json.dumps(approved))


def nothing_created(engine, tmp_path):
    assert not engine.containers
    assert sorted(engine.networks) == ["bridge"]
    assert not (tmp_path / "state" / "demo" / "bundle").exists()


def test_a_missing_image_is_reported_and_nothing_is_created(engine, tmp_path):
    engine.images.clear()
    engine.add_image(AGENT_IMAGE)
    result = run_module(bottle_launch, engine.client, args(tmp_path))
    assert result["changed"] is False and result["missing_images"] == [BUNDLE_IMAGE]
    assert result["preexisting"] is False
    nothing_created(engine, tmp_path)


def test_a_route_the_operator_approved_reports_the_credential_it_lacks(engine, tmp_path):
    approve(tmp_path, {"domains": [], "routes": [{"host": "api.github.com", "auth": {"token_ref": "GH_TOKEN"}}]})
    result = run_module(bottle_launch, engine.client, args(tmp_path))
    assert result["changed"] is False
    assert result["missing_tokens"] == [{"host": "api.github.com", "auth": {"token_ref": "GH_TOKEN"}}]
    # Only the approvals file existed: still nothing of the bottle.
    assert result["preexisting"] is True
    nothing_created(engine, tmp_path)


def test_an_approval_for_every_bottle_of_the_agent_counts_too(engine, tmp_path):
    agents = tmp_path / "agents" / "demo"
    agents.mkdir(parents=True)
    (agents / bundle_config.APPROVED).write_text(json.dumps(
        {"domains": [], "routes": [{"host": "api.github.com", "auth": {"token_ref": "GH_TOKEN"}}]}))
    result = run_module(bottle_launch, engine.client, args(tmp_path))
    assert [r["auth"]["token_ref"] for r in result["missing_tokens"]] == ["GH_TOKEN"]


def test_check_mode_on_an_empty_engine_creates_nothing(engine, tmp_path):
    approve(tmp_path, {"domains": ["example.org"], "routes": []})
    result = run_module(bottle_launch, engine.client, args(tmp_path), check=True, diff=True)
    assert result["changed"] is True and result["current"] is False
    assert result["container"]["created"] is True and result["bundle"]["created"] is True
    # The approved domain joins the policy the state would be written with.
    assert "example.org" in result["state"]["policy_changes"]["hosts_added"]
    assert "provision" not in result  # nothing to look into yet
    assert result["stamped"] is False
    assert not engine.containers and sorted(engine.networks) == ["bridge"]
    assert SECRET not in json.dumps(result)


def test_an_option_the_module_wires_itself_is_refused_naming_it(engine, tmp_path):
    bad = args(tmp_path)
    bad["bundle"] = dict(bad["bundle"], config_hash="abc")
    with pytest.raises(Failed) as failed:
        run_module(bottle_launch, engine.client, bad)
    # Ansible refuses it (the option is not among the bundle's: bottle_launch sets it), naming the phase and key
    # and listing what the phase takes.
    msg = failed.value.result["msg"]
    assert "bundle.config_hash" in msg and "Supported parameters include: " in msg and "daemons" in msg
    # Refused before the module ran: no preexisting, which the role's rescue reads as "remove nothing".
    assert "preexisting" not in failed.value.result
    nothing_created(engine, tmp_path)


def test_a_bad_phase_option_names_the_phase(engine, tmp_path):
    bad = args(tmp_path)
    bad["container"] = dict(bad["container"], pids_limit="many")
    with pytest.raises(Failed) as failed:
        run_module(bottle_launch, engine.client, bad, check=True)
    assert "found in 'container'" in failed.value.result["msg"]
    assert "pids_limit" in failed.value.result["msg"]


def running_bottle(engine, tmp_path, digest):
    """Bottle demo as a launch leaves it: its networks, both containers running, its files and its stamp."""
    state_dir = tmp_path / "state" / "demo"
    (state_dir / "bundle").mkdir(parents=True)
    (state_dir / "bundle" / "egress.json").write_text("{}")
    nets = {role: engine.add_network(naming.object_name("demo", suffix), subnet=subnet,
                                     labels=naming.labels("demo", "demo", suffix))
            for (role, suffix), subnet in zip(launch_stamp.NETWORKS.items(), ("10.9.0.0/28", "10.9.0.16/28"))}
    images = {"bundle": BUNDLE_IMAGE, "agent": AGENT_IMAGE}
    containers = {}
    for role in launch_stamp.CONTAINERS:
        name = naming.object_name("demo", role)
        image = engine.client.images.get(images[role])
        engine.client.api.create_container(
            image.id, name=name, environment={"BOTTLE_DAEMONS": "egress"} if role == "bundle" else {},
            labels=naming.labels("demo", "demo", role), host_config={"network_mode": nets["internal"].name},
            networking_config={nets["internal"].name: {}})
        engine.containers[name].start()
        containers[role] = {"id": engine.containers[name].id}
    launch_stamp.write(str(state_dir), digest, {
        "networks": {role: net.id for role, net in nets.items()}, "containers": containers,
        "config_hash": bundle_config.config_hash(str(state_dir))})
    return state_dir


def test_a_bottle_running_as_stamped_is_current_and_left_alone(engine, tmp_path):
    given = args(tmp_path)
    # The stamp a launch with these inputs writes: the controller's digest with the approvals and tokens.
    digest = hashlib.sha256(json.dumps(["digest-1", {"domains": [], "routes": []}, {}], sort_keys=True)
                            .encode("utf-8")).hexdigest()
    running_bottle(engine, tmp_path, digest)
    created = list(engine.created)
    result = run_module(bottle_launch, engine.client, given)
    assert result["current"] is True and result["reason"] == "" and result["changed"] is False
    assert result["preexisting"] is True
    assert engine.created == created

    # The name of earlier releases, stamp, is a deprecated alias of digest: the same launch, still current.
    old_name = dict(given)
    old_name["stamp"] = old_name.pop("digest")
    deprecations = []
    with mock.patch.object(arg_spec, "deprecate", lambda msg, **kw: deprecations.append(msg)):
        again = run_module(bottle_launch, engine.client, old_name)
    assert again["current"] is True and again["changed"] is False
    assert any("stamp" in d for d in deprecations), deprecations

    # Another input: not current, and the reason says so.
    other = run_module(bottle_launch, engine.client, dict(given, digest="digest-2"), check=True)
    assert other["current"] is False and "inputs" in other["reason"]

    # An unhealthy bundle: not current.
    engine.containers[naming.object_name("demo", "bundle")].unhealthy["egress"] = "not listening"
    sick = run_module(bottle_launch, engine.client, given, check=True)
    assert sick["current"] is False and "healthy" in sick["reason"]


def test_without_a_stamp_digest_the_launch_always_takes_its_full_path(engine, tmp_path):
    result = run_module(bottle_launch, engine.client, args(tmp_path, digest=None), check=True)
    assert "current" not in result and result["changed"] is True
    assert not os.path.exists(tmp_path / "state" / "demo" / launch_stamp.STAMP)


def test_a_launch_waits_for_the_bottles_lock_and_past_its_timeout_creates_nothing(engine, tmp_path):
    """One change to a bottle at a time: the lock (bottle_lock) is held by another run here; a killed run
    would hold nothing (tests/unit/plugins/module_utils/test_bottle_lock.py)."""
    from ansible_collections.botbottle.bottle.plugins.module_utils import bottle_lock
    with bottle_lock.hold(str(tmp_path / "state"), "demo", "teardown"):
        with pytest.raises(Failed) as failed:
            run_module(bottle_launch, engine.client, args(tmp_path, lock_timeout=0))
    msg = failed.value.result["msg"]
    assert msg.startswith("bottle demo is busy: teardown of bottle demo (pid ")
    # preexisting: the rescue of the role removes nothing that another run may be making
    assert failed.value.result["preexisting"] is True
    nothing_created(engine, tmp_path)
    engine.images.clear()  # once the lock is free the launch runs (here: to its report of the missing images)
    result = run_module(bottle_launch, engine.client, args(tmp_path, lock_timeout=0))
    assert result["missing_images"] and result["lock"] == {"waited": 0, "waited_for": None}


def test_the_operators_files_on_this_host_are_checked_before_anything_is_created(engine, tmp_path):
    """The git-gate identities and the upstream CA file are looked at in the module (no round trip of their own)."""
    shared = tmp_path / "gate-shared"
    shared.write_text("key")
    os.chmod(shared, 0o644)
    bad = args(tmp_path, upstream_ca_file=str(tmp_path / "missing-ca.pem"))
    bad["state"] = dict(bad["state"], meta={"slug": "demo", "agent": "demo", "policy": "demo"})
    bad["provision"] = dict(bad["provision"], git_gate={"repos": [
        {"name": "project", "identity": str(shared), "aliases": ["git@example.org:p.git"]}]})
    result = run_module(bottle_launch, engine.client, bad)
    assert result["changed"] is False and result["preexisting"] is False
    assert result["host_errors"] == [
        "bottle_policies.demo.git_gate.repos.project.identity %s on this host: has mode 0644, readable by others: "
        "chmod 600 %s" % (shared, shared),
        "bottle_upstream_ca_file %s/missing-ca.pem does not exist on this host: fix the path or leave it empty"
        % tmp_path]
    nothing_created(engine, tmp_path)


def test_the_upstream_ca_file_is_read_here_and_covered_by_the_stamp(engine, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    given = args(tmp_path, upstream_ca_file=str(ca))
    result = run_module(bottle_launch, engine.client, given, check=True, diff=True)
    assert result["host_errors"] == [] and result["changed"] is True
    # The state would be written with the CA's text (bundle/upstream-ca.pem among its files).
    assert any(path.endswith("upstream-ca.pem") for path in result["state"]["changed_files"])
    both = dict(given, state=dict(given["state"], options={"upstream_ca": "PEM"}))
    assert "give the CAs once" in run_module(bottle_launch, engine.client, both, check=True)["host_errors"][0]


def test_what_the_provisioning_checks_beyond_its_spec_fails_before_anything_is_created(engine, tmp_path):
    bad = args(tmp_path)
    bad["provision"] = dict(bad["provision"], skills={"bad name!": "text"})
    with pytest.raises(Failed) as failed:
        run_module(bottle_launch, engine.client, bad)
    assert failed.value.result["msg"].startswith("provision: skills.bad name! is not a valid skill name")
    assert failed.value.result["phase"] == "provision" and failed.value.result["preexisting"] is False
    nothing_created(engine, tmp_path)


def test_the_attach_line_runs_the_agent_kinds_cli(engine, tmp_path):
    result = run_module(bottle_launch, engine.client, args(tmp_path), check=True)
    assert result["attach"] == "docker exec -it -u agent bb-demo-agent claude"
    codex = args(tmp_path)
    codex["provision"] = dict(codex["provision"], kind="codex")
    assert run_module(bottle_launch, engine.client, codex, check=True)["attach"] == (
        "docker exec -it -u agent bb-demo-agent codex")


def test_a_smolmachines_launch_needs_its_archive_phase_and_not_a_container(engine, tmp_path):
    vm = args(tmp_path, backend="smolmachines")
    del vm["container"]
    with pytest.raises(Failed) as caught:
        run_module(bottle_launch, engine.client, vm, check=True)
    assert "archive" in str(caught.value)
    docker = args(tmp_path)
    del docker["container"]
    with pytest.raises(Failed) as caught:
        run_module(bottle_launch, engine.client, docker, check=True)
    assert "container" in str(caught.value)


def vm_args(tmp_path):
    vm = args(tmp_path, backend="smolmachines", boot=False)
    del vm["container"]
    vm["archive"] = {"image": AGENT_IMAGE, "cache_dir": str(tmp_path / "images")}
    return vm


def vm_host(monkeypatch, **found):
    """The smolmachines host as vm_launch.look finds it (test_vm_launch covers look itself)."""
    from ansible_collections.botbottle.bottle.plugins.module_utils import vm_launch
    seen = dict(smolvm={"available": True}, machine=None, address="127.77.0.9", host_errors=[], notes=[],
                root_steps=[])
    seen.update(found)
    monkeypatch.setattr(vm_launch, "look", lambda module, client, slug, state_root: seen)


def test_a_step_as_root_and_a_missing_credential_are_asked_for_together_and_nothing_is_created(
        engine, tmp_path, monkeypatch):
    vm_host(monkeypatch, root_steps=[{"step": "lo0_alias", "address": "127.77.0.9"}])
    approve(tmp_path, {"domains": [], "routes": [{"host": "api.github.com", "auth": {"token_ref": "GH_TOKEN"}}]})
    result = run_module(bottle_launch, engine.client, vm_args(tmp_path))
    assert result["changed"] is False and result["root_steps"] == [{"step": "lo0_alias", "address": "127.77.0.9"}]
    assert result["missing_tokens"] == [{"host": "api.github.com", "auth": {"token_ref": "GH_TOKEN"}}]
    assert result["loopback_address"] == "127.77.0.9"
    nothing_created(engine, tmp_path)


def test_a_smolmachines_host_problem_stops_the_launch_before_anything_is_created(engine, tmp_path, monkeypatch):
    vm_host(monkeypatch, host_errors=["the smolmachines backend needs the smolvm CLI on this host: not found"])
    result = run_module(bottle_launch, engine.client, vm_args(tmp_path))
    assert result["changed"] is False
    assert result["host_errors"] == ["the smolmachines backend needs the smolvm CLI on this host: not found"]
    assert result["attach"].endswith("machine exec --name bb-demo-agent -u agent -it -- claude")
    nothing_created(engine, tmp_path)


@pytest.mark.parametrize("labels", [{}, {bundle_format.IMAGE_LABEL: "2"}])
def test_a_bundle_image_of_an_earlier_release_is_refused_naming_the_fix(engine, tmp_path, labels):
    engine.add_image(BUNDLE_IMAGE, labels=labels)
    result = run_module(bottle_launch, engine.client, args(tmp_path))
    assert result["changed"] is False
    assert result["host_errors"] == [
        "bundle image %s reads egress.json version 2, and this collection writes version %d: the image was built by "
        "an earlier release - rebuild it (make images in the checkout, or the botbottle.bottle.images playbook)"
        % (BUNDLE_IMAGE, bundle_format.EGRESS_VERSION)]
    nothing_created(engine, tmp_path)
