# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""git-gate: its decisions alone, then the real hooks with real git against a local upstream.

The end-to-end run (git daemon, SSH upstream, real gitleaks) is the Molecule scenario's git probes;
here the upstream is a local bare repository and gitleaks a stand-in that flags a marker, so the
range each push scans, the leased relay and the protected branches are checked with real git.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

import pytest

from conftest import BUNDLE

if str(BUNDLE) not in sys.path:
    sys.path.insert(0, str(BUNDLE))

from bottle_firewall import dlp, scan_service  # noqa: E402

ZERO = "0" * 40
MARKER = "SECRET-MARKER-123"
# The bottle's known secrets as egress holds them: a secret_env value no pattern rule knows, a route token.
KNOWN = "pa+ss!w0rd-Zq8x"
ROUTE_TOKEN = "rt-9fQ2mXv7LpK3sW8dZ1aB"
GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
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
    reason = check(ZERO, "b" * 40, "refs/pull/1", [], always)
    assert "push branches (refs/heads/*), tags (refs/tags/*) or notes" in reason
    assert check(ZERO, "b" * 40, "refs/notes/commits", [], always) is None


@pytest.mark.parametrize("ref", ["refs/tags/main", "refs/remotes/origin/main", "refs/foo/main", "refs/notes/main",
                                 "refs/tags/release/1", "refs/tags/x/release/1"])
def test_a_ref_elsewhere_named_as_a_protected_branch_is_refused(git_gate, ref):
    reason = git_gate.check_update(ZERO, "b" * 40, ref, ["main", "release/*"], lambda a, b: True,
                                   [], ["main", "release/1", "topic"])
    assert reason and "a protected branch" in reason and ref in reason


def test_names_that_only_look_alike_are_not_protected(git_gate):
    check = git_gate.check_update
    for ref in ("refs/tags/main2", "refs/tags/v1", "refs/tags/topic", "refs/heads/feature/main", "refs/tags/release"):
        assert check(ZERO, "b" * 40, ref, ["main", "release/*"], lambda a, b: True, [],
                     ["main", "release/1", "topic"]) is None, ref
    # "*" protects every existing branch: a tag may not take an existing branch's name, any other is fine.
    assert "protected branch" in check(ZERO, "b" * 40, "refs/tags/topic", ["*"], lambda a, b: True, [], ["topic"])
    assert check(ZERO, "b" * 40, "refs/tags/v2", ["*"], lambda a, b: True, [], ["topic"]) is None


def test_protected_tags_refuse_deletion_and_moves_not_creation(git_gate):
    check = git_gate.check_update
    assert "deleting it is refused" in check("a" * 40, ZERO, "refs/tags/v1", [], None, ["v*"])
    assert "moving it is refused" in check("a" * 40, "b" * 40, "refs/tags/v1", [], None, ["v*"])
    assert check(ZERO, "b" * 40, "refs/tags/v2", [], None, ["v*"]) is None
    assert check("a" * 40, ZERO, "refs/tags/nightly", [], None, ["v*"]) is None
    # The default protects every existing tag; [] protects none.
    assert git_gate.DEFAULT_PROTECTED_TAGS == ["*"]
    assert "moving it is refused" in check("a" * 40, "b" * 40, "refs/tags/nightly", [], None)
    assert check("a" * 40, "b" * 40, "refs/tags/nightly", [], None, []) is None


def test_short_names(git_gate):
    assert git_gate.short_names("refs/remotes/origin/main") == ["remotes/origin/main", "origin/main", "main"]


def test_commit_headers_split_with_their_continuation_lines(git_gate):
    raw = (b"tree " + b"a" * 40 + b"\nparent " + b"b" * 40 + b"\nauthor A <a@x> 1 +0000\n"
           b"committer C <c@x> 1 +0000\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n abc\n -----END PGP SIGNATURE-----\n"
           b"x-custom value\n\nsubject\n\nbody\n")
    headers, message = git_gate.split_object(raw)
    assert [name for name, _v in headers] == ["tree", "parent", "author", "committer", "gpgsig", "x-custom"]
    assert dict(headers)["gpgsig"] == b"-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----"
    assert message == b"subject\n\nbody\n"


def test_tree_entry_names(git_gate):
    raw = b"100644 a.txt\0" + b"\x01" * 20 + b"40000 dir name\0" + b"\x02" * 20
    assert git_gate.tree_names(raw) == b"a.txt\ndir name"


def test_scan_items_cover_every_part_and_the_ref_names(git_gate):
    sha = "c" * 40
    commit_raw = (b"tree " + b"a" * 40 + b"\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 1 +0000\n"
                  b"mergetag object x\n type commit\n\nmsg\n")
    objects = [("b" * 40, "blob", b"data", "dir/f.bin", "refs/heads/x"),
               ("d" * 40, "blob", b"note", "cc/cccc", "refs/notes/commits"),
               (sha, "commit", commit_raw, "", "refs/heads/x"),
               ("e" * 40, "tag", b"object " + b"c" * 40 + b"\ntype commit\ntag v1\ntagger T <t@x> 1 +0000\n\nm\n",
                "v1", "refs/tags/v1")]
    labels = [label for label, _d, _s in git_gate.scan_items(objects, [(ZERO, sha, "refs/heads/x")])]
    assert labels == ["blob dir/f.bin (bbbbbbbbbbbb)", "note cc/cccc (dddddddddddd)",
                      "commit cccccccccccc header author", "commit cccccccccccc header committer",
                      "commit cccccccccccc header mergetag", "commit cccccccccccc message",
                      "tag eeeeeeeeeeee header tag", "tag eeeeeeeeeeee header tagger", "tag eeeeeeeeeeee message",
                      "ref refs/heads/x"]


def test_fingerprints_never_cover_known_secrets_or_ref_names(git_gate):
    assert git_gate.fingerprint("dlp:kingfisher.aws.1", "a" * 40) == "kingfisher.aws.1:" + "a" * 40
    assert git_gate.fingerprint("known-secret", "a" * 40) is None
    assert git_gate.fingerprint("dlp:kingfisher.aws.1", None) is None


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
                                       "Commit": "0123456789abcdef", "Secret": "ghp_x"}],
                                     [("blob a.txt (0123456789ab)", "known-secret", None)])
    assert "2 secret(s) found" in text and "gitleaks found 1 secret(s)" in text
    assert "a.txt:3" in text and "github-pat" in text and "blob a.txt (0123456789ab)  rule known-secret" in text
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


class ServiceThread:
    """egress's scan service in a thread of this process, on a short socket path."""

    def __init__(self, engine):
        self.dir = tempfile.mkdtemp(prefix="gg-", dir="/tmp")
        self.path = os.path.join(self.dir, "scan.sock")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.service = scan_service.ScanService(engine, self.path, allowed_uids={os.getuid()})
        asyncio.run_coroutine_threadsafe(self.service.start(), self.loop).result(10)

    def stop(self):
        self.loop.call_soon_threadsafe(self.service.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    cache = tmp_path_factory.mktemp("kingfisher-rules")
    cache.chmod(0o700)
    engine = dlp.Engine(dlp.load_kingfisher(str(cache)))
    engine.known.load([KNOWN, ROUTE_TOKEN])
    return engine


@pytest.fixture(scope="session")
def service(engine):
    running = ServiceThread(engine)
    yield running
    running.stop()


@pytest.fixture
def gate(tmp_path, monkeypatch, git_gate, service):
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
    monkeypatch.setenv("BOTTLE_GIT_GATE_SCAN_SOCKET", service.path)
    monkeypatch.setattr(git_gate, "SCAN_SOCKET", service.path)
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


# ---- DLP: the real engine (egress's, served in this process) on every kind of object ---------------

sys.path.insert(0, str(BUNDLE.parents[1] / "tests" / "integration" / "git_gate_dlp"))
import cases  # noqa: E402


@pytest.mark.parametrize("secret", sorted(cases.SECRETS))
@pytest.mark.parametrize("kind", cases.KINDS)
def test_every_object_kind_with_every_secret_kind_is_refused_and_nothing_reaches_upstream(gate, kind, secret):
    value, rule = cases.SECRETS[secret]
    before = cases.upstream_state(gate["upstream"])
    refspecs, where = cases.build(kind, gate["work"], value, "%s-%s" % (kind, secret))
    proc = push(gate, *refspecs)
    assert proc.returncode != 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "rule " + rule in line and where in line]
    assert lines, proc.stderr  # the engine's own finding, naming the object and the rule
    assert "gitleaks found" not in proc.stderr  # the stand-in gitleaks flags only its marker: the engine alone
    # What the gate said (the agent's own git echoes the refs it pushed, the secret in a ref name too).
    said = "\n".join(line for line in proc.stderr.splitlines() if line.startswith("remote:"))
    for form in (value, KNOWN, ROUTE_TOKEN, GHP):
        assert form not in said
    assert cases.upstream_state(gate["upstream"]) == before


def test_inline_allow_comments_are_not_honoured(gate):
    (gate["work"] / "a.py").write_text("TOKEN = '%s'  # gitleaks:allow kingfisher:ignore nosec\n" % GHP)
    git("add", "a.py", cwd=gate["work"])
    git("commit", "-qm", "allowed?", cwd=gate["work"])
    proc = push(gate, "main")
    assert proc.returncode != 0 and "blob a.py" in proc.stderr and "rule dlp:" in proc.stderr


def allow(gate, fingerprints):
    config = json.loads((gate["home"] / "git-gate.json").read_text())
    config["repos"][0]["allowed_fingerprints"] = fingerprints
    (gate["home"] / "git-gate.json").write_text(json.dumps(config))


def test_an_allowed_fingerprint_lets_that_object_through_and_nothing_else(gate):
    (gate["work"] / "fixture.txt").write_text("example = %s\n" % GHP)
    git("add", "fixture.txt", cwd=gate["work"])
    git("commit", "-qm", "test fixture", cwd=gate["work"])
    proc = push(gate, "main")
    assert proc.returncode != 0
    printed = [word for line in proc.stderr.splitlines() for word in line.split() if ":" in word and
               word.endswith(git("rev-parse", "HEAD:fixture.txt", cwd=gate["work"]).stdout.strip())]
    assert len(printed) == 1 and printed[0].split(":")[0] in proc.stderr
    allow(gate, printed)
    assert push(gate, "main").returncode == 0
    # The same rule in another object is still refused; a known secret is never allowed.
    (gate["work"] / "other.txt").write_text("example = %s\nmore\n" % GHP)
    git("add", "other.txt", cwd=gate["work"])
    git("commit", "-qm", "another", cwd=gate["work"])
    assert push(gate, "main").returncode != 0
    git("reset", "-q", "--hard", "HEAD~1", cwd=gate["work"])
    (gate["work"] / "k.txt").write_text(KNOWN)
    git("add", "k.txt", cwd=gate["work"])
    git("commit", "-qm", "k", cwd=gate["work"])
    allow(gate, printed + ["known-secret:" + git("rev-parse", "HEAD:k.txt", cwd=gate["work"]).stdout.strip()])
    proc = push(gate, "main")
    assert proc.returncode != 0 and "blob k.txt" in proc.stderr and "rule known-secret" in proc.stderr


def test_a_secret_spread_over_a_path_is_found_in_the_blob_label(gate):
    half = len(GHP) // 2
    path = gate["work"] / GHP[:half] / GHP[half:]
    path.parent.mkdir()
    path.write_text("clean\n")
    git("add", "-A", cwd=gate["work"])
    git("commit", "-qm", "nested", cwd=gate["work"])
    proc = push(gate, "main")
    assert proc.returncode != 0 and "blob (name withheld)" in proc.stderr and GHP[half:] not in proc.stderr


def test_the_false_positive_corpus_goes_through(gate):
    cases.write_corpus(gate["work"])
    proc = push(gate, "main")
    assert proc.returncode == 0, proc.stderr
    assert upstream_ref(gate, "main") == git("rev-parse", "HEAD", cwd=gate["work"]).stdout.strip()


def test_only_objects_new_to_the_upstream_are_sent_to_the_scanner(gate, git_gate):
    first = commit(gate["work"], "a.txt", "a\n")
    assert push(gate, "main").returncode == 0
    second = commit(gate["work"], "b.txt", "b\n")
    # Put `second` into the gate's object store without a ref (as the quarantine holds a push).
    subprocess.run(["git", "-C", str(gate["work"]), "push", "-q", "--no-verify", str(gate["upstream"]), "HEAD:x"],
                   check=False, capture_output=True)
    git("--git-dir", str(gate["repo"]), "fetch", "-q", str(gate["upstream"]), "refs/heads/x")
    git("--git-dir", str(gate["upstream"]), "update-ref", "-d", "refs/heads/x")
    objects = git_gate.newly_reachable(str(gate["repo"]), [(first, second, "refs/heads/main")])
    blob = git("rev-parse", "HEAD:b.txt", cwd=gate["work"]).stdout.strip()
    tree = git("rev-parse", "HEAD^{tree}", cwd=gate["work"]).stdout.strip()
    # The commit, its root tree and the one new blob: not a.txt, README, nor the commits main has.
    assert sorted(sha for sha, _p, _r in objects) == sorted([second, tree, blob])
    assert ("b.txt" in [p for _s, p, _r in objects]) and all(r == "refs/heads/main" for _s, _p, r in objects)


def test_a_tag_on_a_commit_the_upstream_has_is_scanned(gate):
    git("tag", "-a", "v9", "-m", "clean release", "origin/main", cwd=gate["work"])
    proc = push(gate, "refs/tags/v9")
    assert proc.returncode == 0, proc.stderr
    git("tag", "-a", "v10", "-m", "notes %s" % KNOWN, "origin/main", cwd=gate["work"])
    proc = push(gate, "refs/tags/v10")
    assert proc.returncode != 0 and "message  rule known-secret" in proc.stderr


def test_protected_tags_upstream(gate):
    git("tag", "v1", "origin/main", cwd=gate["work"])
    assert push(gate, "refs/tags/v1").returncode == 0
    commit(gate["work"], "x.txt", "x\n")
    git("tag", "-f", "v1", "HEAD", cwd=gate["work"])
    proc = push(gate, "+refs/tags/v1")
    assert proc.returncode != 0 and "tag v1 is protected (protected_tags): moving it is refused" in proc.stderr
    proc = push(gate, ":refs/tags/v1")
    assert proc.returncode != 0 and "deleting it is refused" in proc.stderr
    assert upstream_ref(gate, "refs/tags/v1") == git("rev-parse", "origin/main", cwd=gate["work"]).stdout.strip()


def test_a_tag_named_as_a_protected_branch_is_refused(gate):
    proc = push(gate, "HEAD:refs/tags/main")
    assert proc.returncode != 0 and "ends in main, a protected branch" in proc.stderr
    assert upstream_ref(gate, "refs/tags/main") is None


def test_a_scan_service_that_is_down_refuses_the_push(gate, monkeypatch, tmp_path):
    monkeypatch.setenv("BOTTLE_GIT_GATE_SCAN_SOCKET", str(tmp_path / "nothing.sock"))
    commit(gate["work"], "a.txt", "clean\n")
    before = cases.upstream_state(gate["upstream"])
    proc = push(gate, "main")
    assert proc.returncode != 0 and "egress's DLP scan service is unreachable" in proc.stderr
    assert cases.upstream_state(gate["upstream"]) == before


def test_a_file_name_that_is_not_utf8_is_scanned_and_named_safely(gate):
    name = b"k\xff-" + KNOWN.encode() + b".txt"
    (gate["work"] / os.fsdecode(name)).write_text("clean\n")
    git("add", "-A", cwd=gate["work"])
    git("commit", "-qm", "odd name", cwd=gate["work"])
    proc = push(gate, "main")
    said = "\n".join(line for line in proc.stderr.splitlines() if line.startswith("remote:"))
    assert proc.returncode != 0 and "entry names  rule known-secret" in said, proc.stderr
    assert KNOWN not in said and "Traceback" not in said
