# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_work: a snapshot of a running bottle's work (docker through the fake engine; smolvm through a mocked
CLI, whose guests cannot boot on these hosts)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import naming, smolvm
from ansible_collections.botbottle.bottle.plugins.modules import bottle_work
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import (
    FakeEngine, Failed, run_module)


def git(cwd, *args):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_AUTHOR_NAME="a",
               GIT_AUTHOR_EMAIL="a@x", GIT_COMMITTER_NAME="a", GIT_COMMITTER_EMAIL="a@x")
    subprocess.run(["git", "-C", str(cwd)] + list(args), env=env, check=True, capture_output=True)


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "agent"
    repo = home / "work" / "proj"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("one\n")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "never pushed")
    return home


@pytest.fixture
def engine(home):
    engine = FakeEngine()
    image = engine.add_image("botbottle/agent:latest")
    engine.client.api.create_container(image.id, name="bb-demo-agent", labels=naming.labels("demo", "demo", "agent"),
                                       host_config={}, networking_config={})
    agent = engine.containers["bb-demo-agent"]
    agent.start()
    agent.home = {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()}
    return engine


def test_a_snapshot_of_a_running_bottle_leaves_it_running(engine, tmp_path):
    result = run_module(bottle_work, engine.client, {"slug": "demo", "archive_root": str(tmp_path / "archive")})
    assert result["changed"] and result["path"].startswith(str(tmp_path / "archive" / "snapshots" / "demo-"))
    assert result["lines"] == ["kept ~/work/proj: 1 unpushed commit (main) -> %s/work/work/proj/repo.bundle (complete)"
                               % result["path"]]
    assert os.path.isfile(result["restore"])
    assert engine.containers["bb-demo-agent"].status == "running"


def test_check_mode_writes_nothing(engine, tmp_path):
    result = run_module(bottle_work, engine.client, {"slug": "demo", "archive_root": str(tmp_path / "archive")},
                        check=True)
    assert result["lines"][0].startswith("would keep ~/work/proj: 1 unpushed commit")
    assert list((tmp_path / "archive" / "snapshots").iterdir()) == []


def test_a_bottle_without_an_agent_has_nothing_to_keep(tmp_path):
    result = run_module(bottle_work, FakeEngine().client, {"slug": "demo", "archive_root": str(tmp_path / "a")})
    assert not result["changed"] and result["path"] is None and result["lines"] == []


def test_a_container_not_the_bottles_is_not_read(engine, tmp_path):
    engine.containers["bb-demo-agent"].attrs["Config"]["Labels"] = {}
    with pytest.raises(Failed) as err:
        run_module(bottle_work, engine.client, {"slug": "demo", "archive_root": str(tmp_path / "a")})
    assert "does not carry label io.botbottle.bottle=demo" in err.value.result["msg"]
    assert engine.archives_read == []


class FakeCLI:
    """smolvm's CLI as the transport uses it: ``machine ls`` and ``machine exec`` (tar of the home)."""

    def __init__(self, home, state="running"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(str(home), arcname="agent")
        self.tar = buf.getvalue()
        self.state = state
        self.calls = []

    def get_machine(self, name):
        return {"name": name, "state": self.state}

    def run(self, words, data=None, check=True):
        self.calls.append(words)
        assert words[:4] == ["machine", "exec", "--name", "bb-demo-agent"]
        return 0, self.tar, b""


@pytest.fixture
def smol(monkeypatch, home):
    cli = FakeCLI(home)
    monkeypatch.setattr(smolvm, "find_smolvm", lambda explicit=None, which=None: "/opt/smolvm")
    monkeypatch.setattr(smolvm, "SmolvmCLI", lambda runner, binary, state_dir=None: cli)
    return cli


def test_smolvm_through_its_transport(smol, tmp_path):
    dest = tmp_path / "archive" / ".demo-vm-work"
    result = run_module(bottle_work, None, {"slug": "demo", "backend": "smolmachines", "dest": str(dest)})
    assert smol.calls[0][-5:] == ["-cf", "-", "--exclude", "./agent/.cache", "agent"]
    assert result["path"] == str(dest)
    assert (dest / "work" / "work" / "proj" / "repo.bundle").is_file()


def test_a_stopped_vm_says_how_to_go_on(smol, tmp_path):
    smol.state = "stopped"
    with pytest.raises(Failed) as err:
        run_module(bottle_work, None, {"slug": "demo", "backend": "smolmachines", "dest": str(tmp_path / "d")})
    assert "is stopped" in err.value.result["msg"] and "bottle_archive_work=false" in err.value.result["msg"]
    assert not (tmp_path / "d").exists()


def test_a_vm_that_never_started_holds_no_work(smol, tmp_path):
    """smolvm's "created": no agent ever ran in it (guests cannot boot on PVM hosts): nothing to keep, no failure."""
    smol.state = "created"
    result = run_module(bottle_work, None, {"slug": "demo", "backend": "smolmachines", "dest": str(tmp_path / "d")})
    assert result["changed"] is False and result["path"] is None and result["lines"] == []
    assert smol.calls == [], "nothing was read from inside it"
