# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""git-gate: its decisions alone, then the real hooks with real git against a local upstream.

The end-to-end run (git daemon, SSH upstream, real gitleaks) is the Molecule scenario's git probes;
here the upstream is a local bare repository and gitleaks a stand-in that flags a marker, so the
range each push scans, the leased relay and the protected branches are checked with real git.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

ZERO = "0" * 40
MARKER = "SECRET-MARKER-123"
FAKE_GITLEAKS = r'''#!%s
import json, os, subprocess, sys
args = sys.argv[1:]
opts = args[args.index("--log-opts") + 1].split()
source = args[args.index("--source") + 1]
report = args[args.index("--report-path") + 1]
log = subprocess.run(["git", "-C", source, "log", "-p", "-U0", "--format=commit %%H"] + opts,
                     capture_output=True, text=True, check=True).stdout
with open(os.environ["FAKE_GITLEAKS_CALLS"], "a") as h:
    commits = [t.split()[1] for t in log.splitlines() if t.startswith("commit ")]
    h.write(json.dumps({"opts": opts, "commits": commits}) + "\n")
findings, commit, path, line = [], None, None, 0
for text in log.splitlines():
    if text.startswith("commit "):
        commit = text.split()[1]
    elif text.startswith("+++ b/"):
        path = text[6:]
    elif text.startswith("@@"):
        line = int(text.split("+")[1].split(",")[0].split()[0])
    elif text.startswith("+") and "%s" in text:
        findings.append({"File": path, "StartLine": line, "RuleID": "fake-rule", "Commit": commit,
                         "Secret": "REDACTED"})
with open(report, "w") as h:
    json.dump(findings, h)
sys.exit(3 if findings else 0)
''' % (sys.executable, MARKER)


def test_protected_branch_rules(git_gate):
    def never(_a, _b):
        return False

    def always(_a, _b):
        return True

    check = git_gate.check_update
    assert "deleting it is refused" in check("a" * 40, ZERO, "refs/heads/main", ["main"], always)
    assert "force push" in check("a" * 40, "b" * 40, "refs/heads/main", ["main"], never)
    assert check("a" * 40, "b" * 40, "refs/heads/main", ["main"], always) is None
    assert check(ZERO, "b" * 40, "refs/heads/main", ["main"], never) is None
    assert check("a" * 40, "b" * 40, "refs/heads/topic", ["main"], never) is None
    assert "force push" in check("a" * 40, "b" * 40, "refs/heads/release/1", ["release/*"], never)
    assert "push branches (refs/heads/*) or tags" in check(ZERO, "b" * 40, "refs/notes/x", [], always)


def test_scan_range(git_gate):
    assert git_gate.new_commit_range(ZERO, "n") == ["n", "--not", "--all"]
    assert git_gate.new_commit_range("o", "n") == ["o..n"]


def test_reason_prefers_ssh_over_git_boilerplate(git_gate):
    err = ("ssh: connect to host git.example.com port 22: Connection timed out\r\n"
           "fatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\n"
           "and the repository exists.\n")
    assert git_gate.reason_of(err) == "ssh: connect to host git.example.com port 22: Connection timed out"
    assert git_gate.reason_of("fatal: repository 'x' not found\n") == "fatal: repository 'x' not found"
    assert git_gate.reason_of("") == "no output"


def test_findings_message_names_file_line_rule_and_never_the_secret(git_gate):
    text = git_gate.findings_message([{"File": "a.txt", "StartLine": 3, "RuleID": "github-pat",
                                       "Commit": "0123456789abcdef", "Secret": "ghp_x"}])
    assert "gitleaks found 1 secret(s)" in text and "a.txt:3" in text and "github-pat" in text
    assert "ghp_x" not in text and "0123456789ab" in text


def test_ssh_command_pins_the_key_and_never_prompts(git_gate):
    cmd = git_gate.ssh_command("app", "/run/bottle/git-gate")
    for opt in ("-i /run/bottle/git-gate/identities/app", "IdentitiesOnly=yes", "StrictHostKeyChecking=yes",
                "UserKnownHostsFile=/run/bottle/git-gate/known_hosts/app", "BatchMode=yes", "ConnectTimeout=5",
                "GlobalKnownHostsFile=/dev/null", "-F /dev/null"):
        assert opt in cmd


def git(*args, cwd=None, check=True):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_NOSYSTEM="1", HOME=os.environ["HOME"])
    proc = subprocess.run(["git"] + list(args), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("git %s: %s" % (" ".join(args), proc.stderr))
    return proc


@pytest.fixture
def gate(tmp_path, monkeypatch, git_gate):
    """A gate home with one repo `app` whose upstream is a local bare repository seeded on main."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    home = tmp_path / "gate"
    upstream = tmp_path / "upstream.git"
    seed = tmp_path / "seed"
    git("init", "-q", "--bare", "-b", "main", str(upstream))
    git("init", "-q", "-b", "main", str(seed))
    (seed / "README").write_text("seed\n")
    git("add", "README", cwd=seed)
    git("commit", "-qm", "seed", cwd=seed)
    git("push", "-q", str(upstream), "main", cwd=seed)
    home.mkdir()
    (home / "git-gate.json").write_text(json.dumps({"repos": [{
        "name": "app", "url": str(upstream), "known_hosts": "x ssh-ed25519 AAAA", "protected_branches": ["main"]}]}))
    leaks = tmp_path / "gitleaks"
    leaks.write_text(FAKE_GITLEAKS)
    leaks.chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_GATE_HOME", str(home))
    monkeypatch.setenv("GIT_GATE_GITLEAKS", str(leaks))
    monkeypatch.setenv("FAKE_GITLEAKS_CALLS", str(tmp_path / "scans.jsonl"))
    monkeypatch.setattr(git_gate, "HOME", str(home))
    git_gate.prepare(git_gate.load_config(), str(home))
    repo = home / "repos" / "app.git"
    # The daemon's access hook refreshes before every fetch or push; do what it does.
    assert git_gate.access(["upload-pack", str(repo)]) == 0
    work = tmp_path / "work"
    git("clone", "-q", str(repo), str(work))
    return {"home": home, "repo": repo, "upstream": upstream, "work": work, "module": git_gate,
            "calls": tmp_path}


def commit(work, name, text):
    (work / name).write_text(text)
    git("add", name, cwd=work)
    git("commit", "-qm", "add " + name, cwd=work)
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


def push(g, *refspecs):
    g["module"].access(["receive-pack", str(g["repo"])])
    return git("push", "origin", *refspecs, cwd=g["work"], check=False)


def upstream_ref(g, ref):
    proc = git("--git-dir", str(g["upstream"]), "rev-parse", "--verify", "--quiet", ref, check=False)
    return proc.stdout.strip() or None


def test_clean_push_is_relayed_and_the_gate_follows_the_upstream_head(gate):
    assert git("symbolic-ref", "HEAD", cwd=gate["repo"]).stdout.strip() == "refs/heads/main"
    head = commit(gate["work"], "a.txt", "clean\n")
    proc = push(gate, "main")
    assert proc.returncode == 0, proc.stderr.replace(" ", "_")
    assert "scanned clean and relayed" in proc.stderr
    assert upstream_ref(gate, "main") == head


def test_secret_in_a_new_branch_is_rejected_and_nothing_reaches_the_upstream(gate):
    commit(gate["work"], "creds.txt", "token=%s\n" % MARKER)
    git("checkout", "-q", "-b", "leak", cwd=gate["work"])
    proc = push(gate, "leak")
    assert proc.returncode != 0
    assert "gitleaks found 1 secret(s)" in proc.stderr and "creds.txt:1" in proc.stderr
    assert MARKER not in proc.stderr
    assert upstream_ref(gate, "leak") is None


def test_a_buried_secret_under_a_clean_commit_is_found(gate):
    before = upstream_ref(gate, "main")
    commit(gate["work"], "settings.py", "KEY = '%s'\n" % MARKER)
    commit(gate["work"], "clean.txt", "clean\n")
    proc = push(gate, "main")
    assert proc.returncode != 0 and "settings.py:1" in proc.stderr
    assert upstream_ref(gate, "main") == before


def scans(g):
    path = g["calls"] / "scans.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_new_branch_scans_only_the_commits_no_ref_has(gate):
    seed = git("rev-parse", "HEAD", cwd=gate["work"]).stdout.strip()
    git("checkout", "-q", "-b", "topic", cwd=gate["work"])
    head = commit(gate["work"], "t.txt", "clean\n")
    assert push(gate, "topic").returncode == 0
    assert scans(gate) == [{"opts": [head, "--not", "--all"], "commits": [head]}]
    assert seed != head and upstream_ref(gate, "topic") == head


def test_an_update_scans_old_to_new_only(gate):
    old = git("rev-parse", "HEAD", cwd=gate["work"]).stdout.strip()
    first = commit(gate["work"], "a.txt", "a\n")
    second = commit(gate["work"], "b.txt", "b\n")
    assert push(gate, "main").returncode == 0
    assert scans(gate) == [{"opts": ["%s..%s" % (old, second)], "commits": [second, first]}]


def test_protected_main_refuses_force_push_and_deletion_unprotected_allows_them(gate):
    git("checkout", "-q", "-b", "topic", cwd=gate["work"])
    commit(gate["work"], "t.txt", "one\n")
    assert push(gate, "topic").returncode == 0
    git("commit", "-q", "--amend", "-m", "rewritten", cwd=gate["work"])
    assert push(gate, "+topic").returncode == 0
    assert push(gate, ":topic").returncode == 0
    assert upstream_ref(gate, "topic") is None
    git("checkout", "-q", "main", cwd=gate["work"])
    git("commit", "-q", "--amend", "-m", "rewritten main", cwd=gate["work"])
    before = upstream_ref(gate, "main")
    proc = push(gate, "+main")
    assert proc.returncode != 0 and "main is a protected branch: a force push" in proc.stderr
    proc = push(gate, ":main")
    assert proc.returncode != 0 and "main is a protected branch: deleting it is refused" in proc.stderr
    assert upstream_ref(gate, "main") == before


def test_a_relay_the_upstream_refuses_fails_the_push_with_its_reason(gate):
    hook = gate["upstream"] / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'upstream policy: pushes are frozen' >&2\nexit 1\n")
    hook.chmod(0o755)
    commit(gate["work"], "a.txt", "clean\n")
    proc = push(gate, "main")
    assert proc.returncode != 0
    assert "the upstream %s refused the push" % gate["upstream"] in proc.stderr
    assert "upstream policy: pushes are frozen" in proc.stderr
    # The gate's own ref did not move either: it mirrors the upstream.
    upstream_main = git("--git-dir", str(gate["upstream"]), "rev-parse", "main").stdout
    assert git("rev-parse", "main", cwd=gate["repo"]).stdout == upstream_main


def test_an_unreachable_upstream_fails_the_access_hook_with_one_line_naming_it(gate, git_gate, tmp_path):
    config = json.loads((gate["home"] / "git-gate.json").read_text())
    config["repos"][0]["url"] = str(tmp_path / "gone.git")
    (gate["home"] / "git-gate.json").write_text(json.dumps(config))
    with pytest.raises(git_gate.GateError) as err:
        git_gate.access(["upload-pack", str(gate["repo"])])
    assert str(err.value).startswith("git-gate: upstream %s of app is unreachable" % (tmp_path / "gone.git"))
    assert "\n" not in str(err.value)


def test_only_declared_repositories_are_served(gate, git_gate):
    for path in (str(gate["home"] / "repos" / "other.git"), str(gate["home"] / "git-gate.json"),
                 str(gate["home"] / "repos" / ".." / "identities")):
        with pytest.raises(git_gate.GateError) as err:
            git_gate.access(["upload-pack", path])
        assert "is not a repository of this bottle (declared: app.git)" in str(err.value)
    with pytest.raises(git_gate.GateError):
        git_gate.access(["upload-archive", str(gate["repo"])])
