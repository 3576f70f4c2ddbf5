# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""git-gate's DLP in the bundle image, as the bundle runs it: bottle-init's socket directory,
egress as the egress uid (the real mitmdump with the addon, whose `running` hook serves the scan
socket; a secret_env value and a route token in its files, 0400 egress), git-gate's
`git daemon` with its access and pre-receive hooks as the gitgate uid, real gitleaks, and the
agent's git as another uid (nobody) pushing over git:// on loopback to a local bare upstream.

Each case is one push (cases.py): every object kind with every secret kind must be refused by
the engine (its own line names the object and the rule), nothing on the upstream (refs and
objects unchanged), no secret in what the gate said. The clean corpus must go through.
Run by tests/integration/git_gate_dlp.sh (root inside a --network none container).
Last line: "N passed, N failed".
"""

import json
import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import sys
import threading
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent
SRC = pathlib.Path(os.environ.get("BOTTLE_SRC", "/src"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(SRC))

import cases  # noqa: E402

EGRESS, GITGATE, AGENT = (pwd.getpwnam(n) for n in ("egress", "gitgate", "nobody"))
RUN = pathlib.Path("/run/bottle")
GATE_HOME = RUN / "git-gate"
EGRESS_HOME = RUN / "egress"
UPSTREAM = pathlib.Path("/srv/upstream/app.git")
SOCKET = RUN / "dlp" / "scan.sock"


LOGS = []


def drain(stream, sink):
    """Read a daemon's output in a thread (a full pipe would stop it)."""
    def pump():
        for line in iter(stream.readline, b""):
            sink.append(line.decode(errors="replace").rstrip())
    threading.Thread(target=pump, daemon=True).start()


def as_user(pw, umask=0o077):
    def demote():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
        os.umask(umask)
    return demote


def run_as(pw, argv, env=None, cwd=None, check=True, stdin=None):
    full = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(pw.pw_dir)}
    full.update(env or {})
    proc = subprocess.run(argv, env=full, cwd=cwd, preexec_fn=as_user(pw), capture_output=True, input=stdin,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s: %s" % (" ".join(argv), proc.stderr.decode(errors="replace")))
    return proc


def setup():
    import bottle_init
    RUN.mkdir(parents=True, exist_ok=True)
    assert bottle_init.prepare_scan_dir(["egress", "git-gate", "supervise"], str(SOCKET.parent)) == str(SOCKET.parent)
    EGRESS_HOME.mkdir(mode=0o700, exist_ok=True)
    os.chown(EGRESS_HOME, EGRESS.pw_uid, EGRESS.pw_gid)
    # egress as bottle-init starts it: mitmdump with the addon (from the working copy), its files
    # 0400 egress; the known secrets are a secret_env value and a route's token.
    files = {"secrets.json": [cases.KNOWN], "tokens.json": {"GITHUB_TOKEN": cases.ROUTE_TOKEN},
             "egress.json": {"version": 2, "mode": "firewall", "allowed_hosts": ["api.github.com"], "ports": [443],
                             "routes": [{"host": "api.github.com",
                                         "auth": {"scheme": "Bearer", "token_ref": "GITHUB_TOKEN"}}]}}
    for name, content in files.items():
        path = EGRESS_HOME / name
        path.write_text(json.dumps(content))
        os.chown(path, EGRESS.pw_uid, EGRESS.pw_gid)
        os.chmod(path, 0o400)
    confdir = EGRESS_HOME / "mitmproxy"
    confdir.mkdir(mode=0o700, exist_ok=True)
    os.chown(confdir, EGRESS.pw_uid, EGRESS.pw_gid)
    # PYTHONPATH: the collection's files egress shares (git_gate_dlp.sh mounts them).
    env = {"PATH": "/usr/bin:/bin", "HOME": str(EGRESS_HOME), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
           "BOTTLE_EGRESS_CONFIG": str(EGRESS_HOME / "egress.json"),
           "BOTTLE_EGRESS_TOKENS": str(EGRESS_HOME / "tokens.json"),
           "BOTTLE_EGRESS_SECRETS": str(EGRESS_HOME / "secrets.json"),
           "BOTTLE_EGRESS_RULES_CACHE": "/opt/egress/rules-cache"}
    service = subprocess.Popen(["/opt/egress/bin/mitmdump", "--mode", "regular", "--listen-host", "127.0.0.1",
                                "--listen-port", "8888", "--set", "confdir=" + str(confdir),
                                "--set", "termlog_verbosity=info", "-s", str(SRC / "egress_addon.py")],
                               preexec_fn=as_user(EGRESS), env=env, cwd=str(EGRESS_HOME),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = []
    for line in iter(service.stdout.readline, b""):
        seen.append(line)
        if b"scan service listens on" in line:
            break
    else:
        raise AssertionError("egress did not start the scan service: %r" % b"".join(seen))
    drain(service.stdout, LOGS)
    # The upstream: a bare repository with main, writable by git-gate's uid only.
    UPSTREAM.parent.mkdir(parents=True, exist_ok=True)
    os.chown(UPSTREAM.parent, GITGATE.pw_uid, GITGATE.pw_gid)
    run_as(GITGATE, ["git", "init", "-q", "--bare", "-b", "main", str(UPSTREAM)])
    seed = pathlib.Path("/tmp/seed")
    seed.mkdir()
    os.chown(seed, GITGATE.pw_uid, GITGATE.pw_gid)
    env = dict(cases.IDENT)
    run_as(GITGATE, ["git", "init", "-q", "-b", "main", str(seed)])
    (seed / "README").write_text("seed\n")
    os.chown(seed / "README", GITGATE.pw_uid, GITGATE.pw_gid)
    run_as(GITGATE, ["git", "-C", str(seed), "add", "README"], env)
    run_as(GITGATE, ["git", "-C", str(seed), "commit", "-qm", "seed"], env)
    run_as(GITGATE, ["git", "-C", str(seed), "push", "-q", str(UPSTREAM), "main"], env)
    # git-gate's home and configuration, as bottle-init stages them.
    GATE_HOME.mkdir(mode=0o700, exist_ok=True)
    os.chown(GATE_HOME, GITGATE.pw_uid, GITGATE.pw_gid)
    config = GATE_HOME / "git-gate.json"
    repo = {"name": "app", "url": str(UPSTREAM), "known_hosts": "x ssh-ed25519 AAAA",
            "protected_branches": ["main"], "protected_tags": ["v*"], "allowed_fingerprints": []}
    config.write_text(json.dumps({"repos": [repo]}))
    os.chown(config, GITGATE.pw_uid, GITGATE.pw_gid)
    os.chmod(config, 0o400)
    daemon = subprocess.Popen(["python3", str(SRC / "git_gate.py")], preexec_fn=as_user(GITGATE),
                              env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(GATE_HOME),
                                   "GIT_GATE_HOME": str(GATE_HOME), "PYTHONDONTWRITEBYTECODE": "1"},
                              cwd=str(GATE_HOME), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    drain(daemon.stdout, LOGS)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", 9418), 1).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        raise AssertionError("git daemon did not listen")
    return service, daemon


class Agent:
    """The agent's clone (uid nobody), origin the gate over git://."""

    def __init__(self, name):
        self.work = pathlib.Path("/tmp/agent") / name
        self.work.parent.mkdir(exist_ok=True)
        os.chown(self.work.parent, AGENT.pw_uid, AGENT.pw_gid)
        self.env = dict(cases.IDENT, HOME=str(self.work.parent))
        run_as(AGENT, ["git", "clone", "-q", "git://127.0.0.1:9418/app.git", str(self.work)], self.env)

    def git(self, *args, check=True, stdin=None):
        return run_as(AGENT, ["git", "-C", str(self.work)] + list(args), self.env, check=check, stdin=stdin)

    def push(self, *refspecs):
        return self.git("push", "origin", *refspecs, check=False)


def upstream_state():
    refs = run_as(GITGATE, ["git", "--git-dir", str(UPSTREAM), "for-each-ref",
                            "--format=%(objectname) %(refname)"]).stdout
    objects = run_as(GITGATE, ["git", "--git-dir", str(UPSTREAM), "cat-file", "--batch-all-objects",
                               "--batch-check=%(objectname)"]).stdout
    return refs, objects


def build_as_agent(agent, kind, value, tag):
    """cases.build, run as the agent's uid (it writes in the agent's clone)."""
    code = ("import sys, pathlib, json; sys.path.insert(0, %r); import cases; "
            "print(json.dumps(cases.build(%r, pathlib.Path(%r), %r, %r)))"
            % (str(HERE), kind, str(agent.work), value, tag))
    out = run_as(AGENT, ["python3", "-c", code], agent.env).stdout
    return json.loads(out)


TESTS = []


def test(function):
    TESTS.append(function)
    return function


@test
def test_only_git_gate_reaches_the_scan_socket_and_the_secrets_stay_with_egress():
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(%r); print('connected')\nexcept OSError as e:\n    print('refused', e.errno)\n"
             % str(SOCKET))
    assert run_as(GITGATE, ["python3", "-c", probe]).stdout.strip() == b"connected"
    assert run_as(AGENT, ["python3", "-c", probe]).stdout.strip() == b"refused 13"
    for name in ("secrets.json", "tokens.json"):
        read = "open(%r).read()" % str(EGRESS_HOME / name)
        assert run_as(GITGATE, ["python3", "-c", read], check=False).returncode != 0
    mode = os.stat(SOCKET.parent)
    assert (mode.st_uid, mode.st_gid, oct(mode.st_mode & 0o7777)) == (EGRESS.pw_uid, GITGATE.pw_gid, "0o2710")


def refusal_case(kind, secret):
    def check():
        value, rule = cases.SECRETS[secret]
        agent = Agent("%s-%s" % (kind, secret))
        before = upstream_state()
        refspecs, where = build_as_agent(agent, kind, value, "%s-%s" % (kind, secret))
        proc = agent.push(*refspecs)
        err = proc.stderr.decode(errors="replace")
        assert proc.returncode != 0, err
        said = "\n".join(line for line in err.splitlines() if line.startswith("remote:"))
        engine = [line for line in said.splitlines() if "rule " + rule in line and where in line]
        assert engine, said
        for form in (value, cases.KNOWN, cases.ROUTE_TOKEN, cases.GHP):
            assert form not in said, "the gate printed a secret"
        assert upstream_state() == before, "the upstream changed"
    check.__name__ = "test_refused_%s_%s" % (kind, secret)
    return check


for _kind in cases.KINDS:
    for _secret in sorted(cases.SECRETS):
        TESTS.append(refusal_case(_kind, _secret))


@test
def test_inline_allow_comments_are_not_honoured():
    agent = Agent("inline")
    (agent.work / "a.py").write_text("TOKEN = '%s'  # gitleaks:allow kingfisher:ignore\n" % cases.GHP)
    agent.git("add", "a.py")
    agent.git("commit", "-qm", "allowed?")
    proc = agent.push("HEAD:refs/heads/inline")
    err = proc.stderr.decode()
    assert proc.returncode != 0 and "blob a.py" in err and "rule dlp:" in err, err


@test
def test_the_false_positive_corpus_goes_through():
    agent = Agent("corpus")
    code = "import sys, pathlib; sys.path.insert(0, %r); import cases; cases.write_corpus(pathlib.Path(%r))" % (
        str(HERE), str(agent.work))
    run_as(AGENT, ["python3", "-c", code], agent.env)
    sysdir = agent.work / "vendor"
    sysdir.mkdir()
    for index, path in enumerate(cases.system_files()):
        shutil.copyfile(path, sysdir / ("%03d-%s" % (index, os.path.basename(path))))
    for path in [sysdir] + list(sysdir.iterdir()):
        os.chown(path, AGENT.pw_uid, AGENT.pw_gid)
    agent.git("add", "-A")
    agent.git("commit", "-qm", "vendor files from /usr/share")
    proc = agent.push("HEAD:refs/heads/main")
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "scanned clean and relayed" in err
    head = agent.git("rev-parse", "HEAD").stdout.strip()
    assert run_as(GITGATE, ["git", "--git-dir", str(UPSTREAM), "rev-parse", "main"]).stdout.strip() == head


@test
def test_protected_tags_and_names_upstream():
    agent = Agent("tags")
    agent.git("tag", "v1", "origin/main")
    assert agent.push("refs/tags/v1").returncode == 0
    agent.git("commit", "-q", "--allow-empty", "-m", "next")
    agent.git("tag", "-f", "v1", "HEAD")
    before = upstream_state()
    err = agent.push("+refs/tags/v1").stderr.decode()
    assert "tag v1 is protected (protected_tags): moving it is refused" in err, err
    err = agent.push(":refs/tags/v1").stderr.decode()
    assert "deleting it is refused" in err, err
    err = agent.push("HEAD:refs/tags/main").stderr.decode()
    assert "ends in main, a protected branch" in err, err
    assert upstream_state() == before


@test
def test_a_dead_scan_service_refuses_every_push():
    SERVICE_PROC.terminate()  # egress stops: its `done` hook removes the socket
    SERVICE_PROC.wait(20)
    assert not SOCKET.exists()
    agent = Agent("dead")
    agent.git("commit", "-q", "--allow-empty", "-m", "clean")
    before = upstream_state()
    proc = agent.push("HEAD:refs/heads/after-death")
    err = proc.stderr.decode()
    assert proc.returncode != 0 and "egress's DLP scan service is unreachable" in err, err
    assert upstream_state() == before


def main():
    global SERVICE_PROC
    SERVICE_PROC, daemon = setup()
    passed = failed = 0
    try:
        only = os.environ.get("GIT_GATE_DLP_ONLY", "")
        for function in [t for t in TESTS if only in t.__name__]:
            started = time.monotonic()
            try:
                function()
            except Exception:
                failed += 1
                print("FAIL %s\n%s" % (function.__name__, traceback.format_exc()), flush=True)
            else:
                passed += 1
                print("ok   %s (%.2fs)" % (function.__name__, time.monotonic() - started), flush=True)
    finally:
        daemon.terminate()
        SERVICE_PROC.kill()
    if failed or os.environ.get("GIT_GATE_DLP_LOGS"):
        print("-- daemon logs (last 60 lines)\n" + "\n".join(LOGS[-60:]))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
