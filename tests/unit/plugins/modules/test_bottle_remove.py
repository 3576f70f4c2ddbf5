# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_remove against the in-memory engine of docker_fakes and a state directory under tmp_path."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from unittest import mock

import pytest

from docker.errors import APIError

from ansible_collections.botbottle.bottle.plugins.module_utils import audit_archive, naming
from ansible_collections.botbottle.bottle.plugins.modules import bottle_remove, bottle_state
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import (
    FakeEngine, Failed, run_module)

SECRET = "sk-ant-test-secret"
TOKEN = "ghp-test-token"
NAMES = ["bb-demo-agent", "bb-demo-bundle"]
NETWORKS = ["bb-demo-net-int", "bb-demo-net-out"]


def add_container(engine, image, component, networks, env=None):
    name = "bb-demo-" + component
    engine.client.api.create_container(
        image.id, name=name, environment=env or {}, labels=naming.labels("demo", "demo", component),
        host_config={"network_mode": networks[0]}, networking_config={n: {} for n in networks})
    engine.containers[name].start()
    return engine.containers[name]


@pytest.fixture
def engine():
    """Bottle demo as launched: its two networks and two running containers (secrets in their env)."""
    engine = FakeEngine()
    engine.add_network("bb-demo-net-int", subnet="10.1.0.0/28", internal=True,
                       labels=naming.labels("demo", "demo", "net-int"))
    engine.add_network("bb-demo-net-out", subnet="10.1.0.16/28", labels=naming.labels("demo", "demo", "net-out"))
    image = engine.add_image("botbottle/any:latest")
    add_container(engine, image, "bundle", NETWORKS, env={"BOTTLE_DAEMONS": "egress"})
    add_container(engine, image, "agent", NETWORKS[:1], env={"ANTHROPIC_API_KEY": SECRET})
    return engine


@pytest.fixture
def state(tmp_path):
    """Its state directory (bottle_state), with an audit, and the secrets bottle_state was given."""
    run_module(bottle_state, None, {"slug": "demo", "state_root": str(tmp_path / "state"),
                                    "policy": {"allowed_domains": ["api.anthropic.com"]},
                                    "secrets": [SECRET], "tokens": {"GITHUB_TOKEN": TOKEN},
                                    "meta": {"slug": "demo", "agent": "demo", "created": "t1"}})
    root = tmp_path / "state" / "demo"
    (root / "supervise" / "audit.jsonl").write_text('{"event": "proposed"}\n')
    (root / "audit" / "egress.jsonl").write_text('{"host": "x.example", "action": "block"}\n')
    return root


def run(engine, tmp_path, check=False, diff=False, **overrides):
    args = {"slug": "demo", "state_root": str(tmp_path / "state"), "archive_root": str(tmp_path / "archive")}
    args.update(overrides)
    args = {k: v for k, v in args.items() if v is not None}
    return run_module(bottle_remove, engine.client, args, check=check, diff=diff)


def bottle_left(engine):
    return sorted(engine.containers), sorted(n for n in engine.networks if n != "bridge")


def deny(path):
    """os.open refusing ``path`` (an audit file this user may not read)."""
    real_open = os.open

    def fake_open(name, flags, *args, **kwargs):
        if name == path:
            raise PermissionError(errno.EACCES, "Permission denied", name)
        return real_open(name, flags, *args, **kwargs)
    return mock.patch.object(audit_archive.os, "open", fake_open)


def test_removes_everything_audit_archived_first(engine, state, tmp_path):
    ids = {c: engine.containers["bb-demo-" + c].id for c in ("agent", "bundle")}
    old = tmp_path / "archive" / "gone-20200101T000000Z"
    old.mkdir(parents=True)
    result = run(engine, tmp_path, archive_keep_days=30)
    assert result["changed"]
    assert bottle_left(engine) == ([], [])
    assert not state.exists()
    assert result["containers"] == {"agent": {"id": ids["agent"], "name": "bb-demo-agent"},
                                    "bundle": {"id": ids["bundle"], "name": "bb-demo-bundle"}}
    assert result["networks"] == NETWORKS
    assert result["path"] == str(state) and result["changed_files"] == [str(state)]
    assert result["archive_blocked"] is None
    archive = result["archive"]
    assert archive["files"] == ["supervise/audit.jsonl", "audit/egress.jsonl"]
    assert archive["skipped"] == [] and archive["pruned"] == [str(old)] and not old.exists()
    assert open(os.path.join(archive["path"], "supervise", "audit.jsonl")).read() == '{"event": "proposed"}\n'
    assert json.load(open(os.path.join(archive["path"], "meta.json")))["agent"] == "demo"
    # gone already: nothing to remove, nothing to archive
    again = run(engine, tmp_path)
    assert not again["changed"] and again["networks"] == []
    assert again["containers"]["agent"] == {"id": None, "name": "bb-demo-agent"}
    assert again["archive"] == {"path": None, "files": [], "skipped": [], "pruned": []}


def test_without_archive_root_nothing_is_archived(engine, state, tmp_path):
    result = run(engine, tmp_path, archive_root=None)
    assert result["changed"] and "archive" not in result and not state.exists()
    assert bottle_left(engine) == ([], [])
    assert not (tmp_path / "archive").exists()


@pytest.mark.parametrize("foreign", ["bb-demo-bundle", "bb-demo-net-out"])
def test_an_object_not_labelled_ours_is_refused_with_nothing_removed(engine, state, tmp_path, foreign):
    labels = (engine.containers[foreign].attrs["Config"]["Labels"] if foreign in engine.containers
              else engine.networks[foreign].attrs["Labels"])
    labels[naming.LABEL_BOTTLE] = "someone-else"
    with pytest.raises(Failed) as err:
        run(engine, tmp_path)
    assert "%s does not carry label %s=demo" % (foreign, naming.LABEL_BOTTLE) in err.value.result["msg"]
    assert bottle_left(engine) == (NAMES, NETWORKS)
    assert state.is_dir() and not (tmp_path / "archive").exists()


@pytest.mark.parametrize("check", [False, True])
def test_an_audit_that_cannot_be_archived_stops_with_nothing_removed(engine, state, tmp_path, check):
    with deny(str(state / "supervise" / "audit.jsonl")):
        with pytest.raises(Failed) as err:
            run(engine, tmp_path, check=check)
    msg = err.value.result["msg"]
    assert msg.startswith("bottle demo: cannot read supervise/audit.jsonl (Permission denied)")
    assert "(nothing was removed)" in msg and "bottle_archive=false" in msg
    assert bottle_left(engine) == (NAMES, NETWORKS)
    assert state.is_dir() and not (tmp_path / "archive").exists()


def test_an_archive_root_that_is_not_a_folder_stops_with_nothing_removed(engine, state, tmp_path):
    (tmp_path / "not-a-folder").write_text("")
    with pytest.raises(Failed) as err:
        run(engine, tmp_path, archive_root=str(tmp_path / "not-a-folder"))
    assert "not-a-folder exists and is not a folder (nothing was removed)" in err.value.result["msg"]
    assert bottle_left(engine) == (NAMES, NETWORKS) and state.is_dir()


def test_rollback_keeps_the_state_it_cannot_archive_and_removes_the_rest(engine, state, tmp_path):
    with deny(str(state / "audit" / "egress.jsonl")):
        result = run(engine, tmp_path, on_archive_failure="keep_state")
    assert result["changed"]
    assert result["archive_blocked"].startswith("bottle demo: cannot read audit/egress.jsonl (Permission denied)")
    assert "archive" not in result and result["changed_files"] == []
    assert bottle_left(engine) == ([], [])
    assert (state / "audit" / "egress.jsonl").is_file() and not (tmp_path / "archive").exists()
    # once readable, the rollback (or a teardown) archives and removes it
    again = run(engine, tmp_path, on_archive_failure="keep_state")
    assert again["changed"] and again["archive_blocked"] is None and not state.exists()
    assert again["archive"]["files"] == ["supervise/audit.jsonl", "audit/egress.jsonl"]


def test_rollback_of_a_launch_that_made_nothing(tmp_path):
    result = run(FakeEngine(), tmp_path, on_archive_failure="keep_state")
    assert not result["changed"] and result["networks"] == [] and result["archive_blocked"] is None


def test_check_mode_says_what_would_go_and_removes_nothing(engine, state, tmp_path):
    ids = {c: engine.containers["bb-demo-" + c].id for c in ("agent", "bundle")}
    old = tmp_path / "archive" / "gone-20200101T000000Z"
    old.mkdir(parents=True)
    result = run(engine, tmp_path, check=True, diff=True, archive_keep=1)
    assert result["changed"]
    assert {c: v["id"] for c, v in result["containers"].items()} == ids
    assert result["networks"] == NETWORKS and result["changed_files"] == [str(state)]
    assert result["archive"]["path"].startswith(str(tmp_path / "archive" / "demo-"))
    assert result["archive"]["pruned"] == [str(old)]
    assert bottle_left(engine) == (NAMES, NETWORKS)
    assert state.is_dir() and os.listdir(str(tmp_path / "archive")) == ["gone-20200101T000000Z"]
    headers = [d["before_header"] for d in result["diff"]]
    assert headers == ["agent (before)", "bundle (before)", "networks (before)", "state (before)"]
    assert all(d["after"] == {} or set(d["after"].values()) == {None} for d in result["diff"])


def test_secrets_never_in_the_output(engine, state, tmp_path):
    result = run(engine, tmp_path, diff=True)
    assert SECRET not in json.dumps(result) and TOKEN not in json.dumps(result)


def test_engine_error_names_the_step(engine, state, tmp_path):
    def broken(force=False):
        raise APIError("device or resource busy")
    engine.containers["bb-demo-bundle"].remove = broken
    with pytest.raises(Failed) as err:
        run(engine, tmp_path)
    assert err.value.result["msg"] == "docker engine error for bundle of bottle demo: device or resource busy"
    # the audit is not archived and the state stays while the bottle's containers may still run
    assert state.is_dir() and not (tmp_path / "archive").exists()


def test_bad_slug_and_negative_retention_are_refused(engine, tmp_path):
    with pytest.raises(Failed) as err:
        run(engine, tmp_path, slug="Not A Slug")
    assert err.value.result["msg"].startswith("slug: ")
    with pytest.raises(Failed) as err:
        run(engine, tmp_path, archive_keep_days=-1)
    assert err.value.result["msg"].startswith("archive_keep_days: -1 is negative; use 0")


# -- the agent's work, kept before its container goes (agent_work)

def git(cwd, *args):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_AUTHOR_NAME="a",
               GIT_AUTHOR_EMAIL="a@x", GIT_COMMITTER_NAME="a", GIT_COMMITTER_EMAIL="a@x")
    subprocess.run(["git", "-C", str(cwd)] + list(args), env=env, check=True, capture_output=True)


def give_work(container, tmp_path):
    """The agent's home: ~/work/proj with one unpushed commit and an untracked file, and a loose file."""
    home = tmp_path / "agent-home"
    repo = home / "work" / "proj"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("committed, never pushed\n")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "unpushed")
    (repo / "b.txt").write_text("untracked\n")
    (home / "work" / "notes.md").write_text("loose\n")
    container.home = {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()}


def test_teardown_keeps_the_agents_work_in_the_archive(engine, state, tmp_path):
    give_work(engine.containers["bb-demo-agent"], tmp_path)
    result = run(engine, tmp_path)
    assert engine.archives_read == [("bb-demo-agent", "/home/agent")]
    archive = result["archive"]["path"]
    assert result["work"]["lines"] == [
        "kept ~/work/proj: 1 unpushed commit (main); 1 uncommitted or untracked file -> %s/work/work/proj/"
        "repo.bundle (complete) + worktree.patch" % archive,
        "kept ~/work: 1 loose file -> %s/work/loose.tar.gz" % archive]
    assert result["work"]["restore"] == os.path.join(archive, "work", "RESTORE.txt")
    restore = open(result["work"]["restore"]).read()
    assert "git clone -q %s/work/work/proj/repo.bundle proj" % archive in restore and ".demo-work-" not in restore
    assert os.path.isfile(os.path.join(archive, "work", "work", "proj", "repo.bundle"))
    meta = json.loads(open(os.path.join(archive, "meta.json")).read())
    assert len(meta["work"]) == 2
    assert sorted(os.listdir(tmp_path / "archive")) == [os.path.basename(archive)]  # no staging left
    assert bottle_left(engine) == ([], [])


def test_check_mode_names_the_work_that_would_be_kept(engine, state, tmp_path):
    give_work(engine.containers["bb-demo-agent"], tmp_path)
    result = run(engine, tmp_path, check=True)
    assert result["work"]["lines"][0].startswith("would keep ~/work/proj: 1 unpushed commit (main)")
    assert not (tmp_path / "archive").exists() and "bb-demo-agent" in engine.containers


def test_a_stopped_agent_is_read_too(engine, state, tmp_path):
    agent = engine.containers["bb-demo-agent"]
    give_work(agent, tmp_path)
    agent.attrs["State"] = {"Status": "exited", "ExitCode": 137}
    result = run(engine, tmp_path)
    assert result["work"]["repos"][0]["unpushed_commits"] == 1


def test_discarding_the_work_is_an_explicit_choice(engine, state, tmp_path):
    give_work(engine.containers["bb-demo-agent"], tmp_path)
    result = run(engine, tmp_path, archive_work=False)
    assert engine.archives_read == [] and result["work"] is None
    assert not os.path.exists(os.path.join(result["archive"]["path"], "work"))


def test_work_that_cannot_be_read_stops_the_teardown_with_nothing_removed(engine, state, tmp_path):
    agent = engine.containers["bb-demo-agent"]
    agent.get_archive = mock.Mock(side_effect=APIError("boom"))
    with pytest.raises(Failed) as err:
        run(engine, tmp_path)
    assert "cannot keep the agent's work from bb-demo-agent" in err.value.result["msg"]
    assert "nothing was removed" in err.value.result["msg"]
    assert bottle_left(engine) == (sorted(NAMES), NETWORKS) and state.is_dir()


def test_a_rollback_goes_on_when_the_work_cannot_be_read(engine, state, tmp_path):
    engine.containers["bb-demo-agent"].get_archive = mock.Mock(side_effect=APIError("boom"))
    with mock.patch.object(bottle_remove.AnsibleModule, "warn") as warn:
        run(engine, tmp_path, on_archive_failure="keep_state")
    assert "cannot keep the agent's work from bb-demo-agent: cannot read" in warn.call_args[0][0]
    assert bottle_left(engine) == ([], [])


def test_a_cap_that_is_not_a_size_is_refused(engine, state, tmp_path):
    with pytest.raises(Failed) as err:
        run(engine, tmp_path, archive_work_max_bytes=0)
    assert "archive_work_max_bytes" in err.value.result["msg"] and "bottle_archive_work=false" in err.value.result["msg"]
    assert bottle_left(engine) == (sorted(NAMES), NETWORKS)


def test_an_archive_that_fails_after_the_removal_keeps_the_work_and_says_where(engine, state, tmp_path):
    give_work(engine.containers["bb-demo-agent"], tmp_path)
    real_rename = os.rename

    def failing_rename(src, dst):
        if os.path.basename(src).startswith(".demo-") and src.endswith(".partial"):
            raise OSError(errno.ENOSPC, "No space left on device", dst)
        return real_rename(src, dst)
    with mock.patch.object(audit_archive.os, "rename", failing_rename):
        with pytest.raises(Failed) as err:
            run(engine, tmp_path)
    msg = err.value.result["msg"]
    kept = msg.rsplit("the agent's work is kept in ", 1)[1]
    assert os.path.isfile(os.path.join(kept, "work", "work", "proj", "repo.bundle"))
    assert state.is_dir()


def test_work_taken_before_a_vm_went_moves_into_the_archive(engine, state, tmp_path):
    """smolmachines: bottle_work took the work (the machine is gone by now); bottle_remove files it."""
    taken = tmp_path / "archive" / ".demo-vm-work"
    (taken / "work").mkdir(parents=True)
    (taken / "work" / "MANIFEST.json").write_text(json.dumps({"lines": ["~/work/p: 1 unpushed commit (main) -> work/work/p/repo.bundle"]}))
    (taken / "work" / "RESTORE.txt").write_text("git clone ...\n")
    result = run(engine, tmp_path, work_dir=str(taken))
    archive = result["archive"]["path"]
    assert engine.archives_read == []
    assert os.path.isfile(os.path.join(archive, "work", "RESTORE.txt")) and not taken.exists()
    assert result["work"]["lines"] == ["kept ~/work/p: 1 unpushed commit (main) -> %s/work/work/p/repo.bundle" % archive]


def test_a_teardown_waits_for_the_bottles_lock_and_past_its_timeout_removes_nothing(engine, state, tmp_path):
    from ansible_collections.botbottle.bottle.plugins.module_utils import bottle_lock
    with bottle_lock.hold(str(tmp_path / "state"), "demo", "launch"):
        with pytest.raises(Failed) as err:
            run(engine, tmp_path, lock_timeout=0)
    assert err.value.result["msg"].startswith("bottle demo is busy: launch of bottle demo (pid %d" % os.getpid())
    assert bottle_left(engine) == (sorted(NAMES), NETWORKS) and state.is_dir()
    result = run(engine, tmp_path, lock_timeout=0)
    assert result["lock"] == {"waited": 0, "waited_for": None} and bottle_left(engine) == ([], [])
