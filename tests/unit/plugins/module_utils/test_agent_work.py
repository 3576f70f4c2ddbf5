# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""agent_work: an agent's home (as the engine's archive API streams it) snapshotted with real git, and
the RESTORE.txt it writes run as an operator would paste it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import agent_work

BINARY = bytes(range(256)) * 4


def git(cwd, *args):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_AUTHOR_NAME="a",
               GIT_AUTHOR_EMAIL="a@x", GIT_COMMITTER_NAME="a", GIT_COMMITTER_EMAIL="a@x")
    return subprocess.run(["git", "-C", str(cwd)] + list(args), env=env, check=True, capture_output=True).stdout


def commit(repo, name, content, message):
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def home(tmp_path):
    """/home/agent as an agent leaves it: two repos cloned from upstreams, work in each, a loose file."""
    home = tmp_path / "agent"
    (home / "work").mkdir(parents=True)
    (home / ".cache" / "big").mkdir(parents=True)
    (home / ".cache" / "big" / "blob").write_bytes(b"x" * 1000)
    for name in ("proj", "lib"):
        upstream = tmp_path / "upstream" / (name + ".git")
        upstream.mkdir(parents=True)
        git(upstream, "init", "-q", "--bare", "-b", "main")
        repo = home / "work" / name
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        git(repo, "remote", "add", "origin", str(upstream))
        commit(repo, "README", "base of %s\n" % name, "base")
        commit(repo, ".gitignore", "build/\n", "ignore build")
        git(repo, "push", "-q", "origin", "main")
        git(repo, "fetch", "-q", "origin")
        commit(repo, "feature.txt", "unpushed work of %s\n" % name, "unpushed 1")
        commit(repo, "feature2.txt", "more\n", "unpushed 2")
        (repo / "build").mkdir()
        (repo / "build" / "out.o").write_bytes(b"ignored")
    proj = home / "work" / "proj"
    (proj / "stashed.txt").write_text("stash me\n")
    git(proj, "add", "stashed.txt")
    git(proj, "stash", "-q")
    (proj / "README").write_text("base of proj\nchanged, not committed\n")
    (proj / "new.bin").write_bytes(BINARY)
    lib = home / "work" / "lib"
    git(lib, "checkout", "-q", "-b", "topic")
    commit(lib, "topic.txt", "topic\n", "topic work")
    (lib / "untracked.txt").write_text("untracked\n")
    (home / "work" / "notes.md").write_text("loose notes\n")
    return home


def home_tar(home):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(home), arcname="agent")
    buf.seek(0)
    return buf


def test_work_survives_and_the_restore_commands_bring_it_back(home, tmp_path):
    dest = tmp_path / "archive" / "demo-1"
    result = agent_work.snapshot_tar(home_tar(home), str(dest), 10 * 1024 * 1024)
    by_path = {r["path"]: r for r in result["repos"]}
    assert sorted(by_path) == ["~/work/lib", "~/work/proj"]
    proj, lib = by_path["~/work/proj"], by_path["~/work/lib"]
    assert proj["unpushed_commits"] == 4 and proj["stashes"] == 1  # 2 commits + the stash (its tree and index)
    assert proj["changed_files"] == 2 and proj["complete"] and proj["patch"]
    assert lib["branch"] == "topic" and lib["changed_files"] == 1
    assert sorted(lib["unpushed_refs"]) == ["refs/heads/main", "refs/heads/topic"]
    assert any("build/" in s for s in proj["skipped"])
    assert result["loose"]["files"] == ["~/work/notes.md"]
    assert any(s.startswith(".cache") for s in result["skipped"])
    assert len(result["lines"]) == 3 and result["lines"][0].startswith("~/work/lib: ")
    manifest = json.loads((dest / "work" / "MANIFEST.json").read_text())
    assert manifest["bytes"] == result["bytes"] <= 10 * 1024 * 1024
    # Restore as documented, in an empty folder.
    where = tmp_path / "restored"
    where.mkdir()
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    subprocess.run(["bash", "-e", str(dest / "work" / "RESTORE.txt")], cwd=str(where), env=env, check=True)
    rproj, rlib = where / "proj", where / "lib"
    assert (rproj / "new.bin").read_bytes() == BINARY
    assert (rproj / "README").read_text() == "base of proj\nchanged, not committed\n"
    assert (rproj / "feature2.txt").read_text() == "more\n"
    assert not (rproj / "build").exists()
    assert b"stashed.txt" in git(rproj, "stash", "show", "--name-only", "stash@{0}")
    assert git(rproj, "log", "-1", "--format=%s", "main").strip() == b"unpushed 2"
    assert git(rlib, "rev-parse", "--abbrev-ref", "HEAD").strip() == b"topic"
    assert (rlib / "untracked.txt").read_text() == "untracked\n"
    assert (rlib / "topic.txt").exists()
    assert (where / "loose" / "work" / "notes.md").read_text() == "loose notes\n"


def test_a_repository_config_runs_nothing_on_the_host(home, tmp_path):
    proj = home / "work" / "proj"
    marker = tmp_path / "pwned"
    git(proj, "config", "filter.evil.clean", "touch %s; cat" % marker)
    git(proj, "config", "core.fsmonitor", "touch %s" % marker)
    git(proj, "config", "diff.external", "touch %s" % marker)
    (proj / ".gitattributes").write_text("* filter=evil diff=evil\n")
    (proj / ".git" / "hooks" / "pre-commit").write_text("#!/bin/sh\ntouch %s\n" % marker)
    result = agent_work.snapshot_tar(home_tar(home), str(tmp_path / "dest"), 10 * 1024 * 1024)
    assert not marker.exists()
    assert {r["path"]: r for r in result["repos"]}["~/work/proj"]["changed_files"] == 3  # + .gitattributes


def test_over_the_cap_is_skipped_and_said(home, tmp_path):
    (home / "work" / "big.dat").write_bytes(os.urandom(200000))
    result = agent_work.snapshot_tar(home_tar(home), str(tmp_path / "dest"), 150000)
    assert result["bytes"] <= 150000
    assert any("big.dat (over the cap" in s for s in result["loose"]["skipped"])
    assert result["loose"]["files"] == ["~/work/notes.md"]


def test_a_cap_too_small_for_anything_keeps_nothing_and_lists_why(home, tmp_path):
    result = agent_work.snapshot_tar(home_tar(home), str(tmp_path / "dest"), 10)
    assert result["bytes"] == 0
    for entry in result["repos"]:
        assert entry["bundle"] is None and entry["patch"] is None
        assert any("over the cap" in s for s in entry["skipped"])
    assert "over the cap" in result["lines"][0]


def test_a_home_past_the_scan_limit_stops_with_the_fix(home, tmp_path, monkeypatch):
    monkeypatch.setattr(agent_work, "SCAN_FLOOR", 0)
    (home / "work" / "huge").write_bytes(b"\0" * 5000)
    with pytest.raises(agent_work.WorkError, match="bottle_archive_work=false"):
        agent_work.snapshot_tar(home_tar(home), str(tmp_path / "dest"), 100)


def test_a_link_in_the_home_is_kept_as_a_link_and_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("agent/work/escape")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
        data = b"through the link"
        info = tarfile.TarInfo("agent/work/escape/planted")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("../evil")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    result = agent_work.snapshot_tar(buf, str(tmp_path / "dest"), 10000)
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "evil").exists()
    assert any("planted (under a symbolic link" in s for s in result["skipped"])


def test_a_home_without_work_keeps_nothing(tmp_path):
    (tmp_path / "agent" / "work").mkdir(parents=True)
    result = agent_work.snapshot_tar(home_tar(tmp_path / "agent"), str(tmp_path / "dest"), 1000)
    assert result["repos"] == [] and result["loose"]["tarball"] is None and result["lines"] == []
    assert not (tmp_path / "dest" / "work").exists()


def test_without_git_on_the_host_loose_work_is_kept_and_a_repository_stops_with_the_fix(home, tmp_path, monkeypatch):
    """A managed host without git (a fleet host) tears down an agent that has no repository."""
    monkeypatch.setattr(agent_work.shutil, "which", lambda name: None if name == "git" else "/usr/bin/" + name)
    plain = tmp_path / "plain" / "agent"
    (plain / "work").mkdir(parents=True)
    (plain / "work" / "notes.md").write_text("loose notes\n")
    result = agent_work.snapshot_tar(home_tar(plain), str(tmp_path / "dest"), 100000)
    assert result["repos"] == [] and result["loose"]["tarball"]
    with pytest.raises(agent_work.WorkError, match=r"git is not installed on the managed host, so the agent's 2 git "
                                                   r"repositories cannot be read \(nothing was removed\). Fix: install git"):
        agent_work.snapshot_tar(home_tar(home), str(tmp_path / "dest2"), 100000)


class FakeContainer:
    name = "bb-demo-agent"

    def __init__(self, tar_bytes):
        self.tar_bytes = tar_bytes
        self.status = "exited"

    def get_archive(self, path):
        assert path == "/home/agent"
        data = self.tar_bytes
        return iter([data[i:i + 1000] for i in range(0, len(data), 1000)]), {}


def test_a_stopped_container_is_read_through_the_archive_api(home, tmp_path):
    result = agent_work.snapshot_container(FakeContainer(home_tar(home).getvalue()), str(tmp_path / "d"), 10 ** 7)
    assert len(result["repos"]) == 2 and result["loose"]["tarball"] == "work/loose.tar.gz"


class FakeTransport:
    def __init__(self, tar_bytes):
        self.tar_bytes = tar_bytes
        self.calls = []

    def run(self, argv, user=None, data=None):
        self.calls.append((argv, user))
        return 0, self.tar_bytes, b""


def test_smolvm_reads_the_home_through_its_transport(home, tmp_path):
    transport = FakeTransport(home_tar(home).getvalue())
    result = agent_work.snapshot_transport(transport, str(tmp_path / "d"), 10 ** 7)
    assert transport.calls[0][0][:3] == ["tar", "-C", "/home"] and transport.calls[0][1] == "root"
    assert len(result["repos"]) == 2


def test_a_transport_that_cannot_tar_is_an_error():
    class Broken(FakeTransport):
        def run(self, argv, user=None, data=None):
            return 2, b"", b"tar: agent: Cannot open"
    with pytest.raises(agent_work.WorkError, match="Cannot open"):
        agent_work.snapshot_transport(Broken(b""), "/nonexistent/d", 10)
