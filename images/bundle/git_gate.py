#!/usr/bin/env python
"""git-gate: the bottle's only git way out.

`git-gate` (no argument) serves one bare repository per declared repo with
`git daemon` on port 9418 and runs as its own uid (bottle-init starts it).
The same program is the daemon's access hook and the repositories'
pre-receive hook:

- access (`git-gate access <service> <path> ...`): only declared repositories
  are served; before every fetch and push the repository is refreshed from its
  upstream over SSH (BatchMode, a short ConnectTimeout, the pinned host key),
  and an unreachable upstream fails the request at once with a one-line
  reason the client prints.
- pre-receive (`git-gate pre-receive`): protected branches refuse deletion and
  force pushes; every new commit (for a new ref, the commits no existing ref
  has; otherwise old..new) is scanned with gitleaks, a finding rejects the
  push naming the file and line (the secret redacted); a clean push is
  relayed to the upstream with the repository's identity, with leases on the
  old values, and a refused relay fails the agent's push with the upstream's
  reason. The gate's refs change only after the upstream took the push.

Configuration: $HOME/git-gate.json (rendered by the role, staged by
bottle-init): {"repos": [{"name", "url", "known_hosts", "protected_branches"}]}.
Identities: $HOME/identities/<name> (mode 0400, this uid only).
"""

import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

HOME = os.environ.get("GIT_GATE_HOME") or os.environ.get("HOME") or "/run/bottle/git-gate"
PORT = int(os.environ.get("GIT_GATE_PORT", "9418"))
SELF = os.path.abspath(__file__)
ZERO = "0" * 40
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# Seconds: connect (and SSH banner) timeout, and the hard limit on a refresh or a relay.
CONNECT_TIMEOUT = int(os.environ.get("GIT_GATE_CONNECT_TIMEOUT", "5"))
REFRESH_LIMIT = int(os.environ.get("GIT_GATE_REFRESH_LIMIT", "12"))
RELAY_LIMIT = int(os.environ.get("GIT_GATE_RELAY_LIMIT", "120"))
SCAN_LIMIT = int(os.environ.get("GIT_GATE_SCAN_LIMIT", "120"))
GITLEAKS = os.environ.get("GIT_GATE_GITLEAKS", "gitleaks")


class GateError(Exception):
    """Refuse the request; the message is what the agent's git prints."""


def repos_dir():
    return os.path.join(HOME, "repos")


def load_config(path=None):
    path = path or os.path.join(HOME, "git-gate.json")
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        raise GateError("git-gate: its configuration %s is unreadable (%s)" % (path, exc))
    repos = {}
    for repo in config.get("repos", []):
        if not NAME_RE.match(str(repo.get("name", ""))):
            raise GateError("git-gate: configuration names an invalid repo %r" % repo.get("name"))
        repos[repo["name"]] = repo
    return repos


def ssh_command(name, home=None):
    """The SSH command for repo ``name``: its identity only, the pinned host key, no prompts, short timeouts."""
    home = home or HOME
    return " ".join([
        "ssh", "-F", "/dev/null",
        "-i", os.path.join(home, "identities", name),
        "-o", "IdentitiesOnly=yes",
        "-o", "IdentityAgent=none",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "UserKnownHostsFile=" + os.path.join(home, "known_hosts", name),
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes",
        "-o", "PasswordAuthentication=no",
        "-o", "ConnectTimeout=%d" % CONNECT_TIMEOUT,
        "-o", "ServerAliveInterval=5",
        "-o", "ServerAliveCountMax=2",
        "-o", "LogLevel=ERROR",
    ])


def git_env(name, home=None):
    home = home or HOME
    # In the pre-receive hook the pushed objects sit in a quarantine directory: keep the variables that
    # let this git read them, but not GIT_QUARANTINE_PATH, which a local upstream would inherit (and
    # refuse every ref update under).
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in (
        "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_DIR")}
    env.update({"GIT_SSH_COMMAND": ssh_command(name, home), "GIT_TERMINAL_PROMPT": "0", "HOME": home})
    return env


def run(argv, env=None, timeout=None, cwd=None, stdin=None):
    try:
        proc = subprocess.run(argv, env=env, cwd=cwd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return 124, "", "timed out after %ss" % timeout
    return proc.returncode, proc.stdout, proc.stderr


def reason_of(text):
    """The line of git/ssh stderr that says why: ssh's own, else git's fatal line, else the last one."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    for prefixes in (("ssh:", "Connection ", "kex_exchange", "Host key verification", "Permission denied",
                      "timed out"), ("fatal:", "error:", "ERROR:")):
        for line in lines:
            if line.startswith(prefixes) and "Could not read from remote repository" not in line:
                return line
    return lines[-1] if lines else "no output"


def last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# ---- set-up -------------------------------------------------------------------------------------


def prepare(repos, home=None):
    """Create the bare repos, known_hosts files and hook links; remove repos no longer declared."""
    home = home or HOME
    root = os.path.join(home, "repos")
    os.makedirs(root, exist_ok=True)
    os.makedirs(os.path.join(home, "known_hosts"), exist_ok=True)
    hooks = os.path.join(home, "hooks")
    os.makedirs(hooks, exist_ok=True)
    hook = os.path.join(hooks, "pre-receive")
    with open(hook + ".new", "w", encoding="utf-8") as handle:
        handle.write("#!/bin/sh\nexec %s %s pre-receive\n" % (sys.executable, SELF))
    os.chmod(hook + ".new", 0o700)
    os.replace(hook + ".new", hook)
    for name, repo in repos.items():
        with open(os.path.join(home, "known_hosts", name), "w", encoding="utf-8") as handle:
            handle.write(repo["known_hosts"].strip() + "\n")
        path = os.path.join(root, name + ".git")
        if not os.path.isdir(path):
            rc, _out, err = run(["git", "init", "-q", "--bare", path])
            if rc != 0:
                raise GateError("git-gate: cannot create %s: %s" % (path, last_line(err)))
        for key, value in (("core.hooksPath", hooks), ("receive.denyNonFastForwards", "false"),
                           ("receive.denyDeletes", "false"), ("gc.auto", "0"),
                           ("uploadpack.allowFilter", "true")):
            run(["git", "-C", path, "config", key, value])
        open(os.path.join(path, "git-daemon-export-ok"), "a").close()
    for entry in os.listdir(root):
        if entry.endswith(".git") and entry[:-4] not in repos:
            shutil.rmtree(os.path.join(root, entry), ignore_errors=True)


# What a bare TCP connect (the health check) makes git daemon's child print: not worth a log line.
QUIET = ("fatal: the remote end hung up unexpectedly",)


def forward_log(stream):
    for line in iter(stream.readline, ""):
        if line.strip() not in QUIET:
            sys.stdout.write(line)
            sys.stdout.flush()


def serve():
    repos = load_config()
    prepare(repos)
    argv = ["git", "daemon", "--reuseaddr", "--listen=0.0.0.0", "--port=%d" % PORT,
            "--base-path=" + repos_dir(), "--informative-errors",
            "--enable=receive-pack", "--disable=upload-archive", "--max-connections=16",
            "--access-hook=" + os.path.join(HOME, "hooks", "access")]
    access = os.path.join(HOME, "hooks", "access")
    with open(access + ".new", "w", encoding="utf-8") as handle:
        handle.write("#!/bin/sh\nexec %s %s access \"$@\"\n" % (sys.executable, SELF))
    os.chmod(access + ".new", 0o700)
    os.replace(access + ".new", access)
    print("git-gate: serving %s on port %d" % (", ".join(sorted(repos)) or "no repos", PORT), flush=True)
    daemon = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, errors="replace")
    threading.Thread(target=forward_log, args=(daemon.stderr,), daemon=True).start()

    def on_hup(_signum, _frame):
        try:
            prepare(load_config())
            print("git-gate: configuration reloaded", flush=True)
        except GateError as exc:
            print(str(exc), flush=True)

    def on_term(signum, _frame):
        daemon.send_signal(signum)

    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    while True:
        try:
            return daemon.wait()
        except InterruptedError:
            continue


# ---- access hook --------------------------------------------------------------------------------


def repo_of(path, repos, home=None):
    """The declared repo a daemon path names, or a GateError."""
    home = home or HOME
    root = os.path.realpath(os.path.join(home, "repos"))
    real = os.path.realpath(path)
    name = os.path.basename(real)
    if os.path.dirname(real) != root or not name.endswith(".git") or name[:-4] not in repos:
        raise GateError("git-gate: %s is not a repository of this bottle (declared: %s)"
                        % (os.path.basename(path), ", ".join(sorted(r + ".git" for r in repos)) or "none"))
    return name[:-4]


def refresh(name, repo, home=None):
    """Mirror the upstream's branches and tags into the gate's repository."""
    home = home or HOME
    path = os.path.join(home, "repos", name + ".git")
    rc, _out, err = run(["git", "-C", path, "fetch", "--quiet", "--prune", "--no-write-fetch-head", repo["url"],
                         "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
                        env=git_env(name, home), timeout=REFRESH_LIMIT)
    if rc != 0:
        raise GateError("git-gate: upstream %s of %s is unreachable or refused the fetch: %s"
                        % (repo["url"], name, reason_of(err)))
    follow_head(name, repo, path, home)


def follow_head(name, repo, path, home=None):
    """Point the gate's HEAD at the upstream's default branch (asked once, while HEAD names no branch)."""
    home = home or HOME
    rc, head, _err = run(["git", "-C", path, "symbolic-ref", "HEAD"])
    if rc == 0 and run(["git", "-C", path, "rev-parse", "--verify", "--quiet", head.strip()])[0] == 0:
        return
    rc, out, _err = run(["git", "ls-remote", "--symref", repo["url"], "HEAD"], env=git_env(name, home),
                        timeout=REFRESH_LIMIT)
    for line in out.splitlines() if rc == 0 else []:
        if line.startswith("ref: ") and line.endswith("\tHEAD"):
            run(["git", "-C", path, "symbolic-ref", "HEAD", line[5:-5].strip()])
            return


def access(args):
    service, path = args[0], args[1]
    repos = load_config()
    name = repo_of(path, repos)
    if service not in ("upload-pack", "receive-pack"):
        raise GateError("git-gate: %s is not served" % service)
    refresh(name, repos[name])
    return 0


# ---- pre-receive --------------------------------------------------------------------------------


def branch_of(ref):
    return ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None


def is_protected(ref, patterns):
    branch = branch_of(ref)
    return branch is not None and any(fnmatch.fnmatchcase(branch, p) for p in patterns)


def new_commit_range(old, new):
    """git log arguments selecting the commits this update brings: old..new, or what no ref has yet."""
    if old == ZERO:
        return [new, "--not", "--all"]
    return ["%s..%s" % (old, new)]


def check_update(old, new, ref, protected, is_ancestor):
    """Why this ref update is refused by policy (None: allowed). ``is_ancestor(a, b)`` asks git."""
    if not (ref.startswith("refs/heads/") or ref.startswith("refs/tags/")):
        return "git-gate: %s refused: push branches (refs/heads/*) or tags (refs/tags/*) only" % ref
    if is_protected(ref, protected):
        if new == ZERO:
            return "git-gate: %s is a protected branch: deleting it is refused" % branch_of(ref)
        if old != ZERO and not is_ancestor(old, new):
            return ("git-gate: %s is a protected branch: a force push (non-fast-forward) is refused; "
                    "pull, rebase on it and push again" % branch_of(ref))
    return None


def findings_message(findings):
    lines = ["git-gate: push rejected: gitleaks found %d secret(s) in the pushed commits; nothing was sent "
             "upstream." % len(findings)]
    for item in findings[:20]:
        lines.append("git-gate:   %s:%s  rule %s  commit %s  (secret redacted)" % (
            item.get("File", "?"), item.get("StartLine", "?"), item.get("RuleID", "?"), str(item.get("Commit", "?"))[:12]))
    lines.append("git-gate: remove the secret from those commits (rewrite them) and push again.")
    return "\n".join(lines)


def scan(repo_path, old, new):
    """gitleaks findings (list of dicts) in the commits the update brings."""
    rc, out, _err = run(["git", "-C", repo_path, "rev-list", "--count"] + new_commit_range(old, new))
    if rc == 0 and out.strip() == "0":
        return []
    with tempfile.TemporaryDirectory(prefix="git-gate-scan-") as scratch:
        report = os.path.join(scratch, "report.json")
        rc, out, err = run([GITLEAKS, "detect", "--no-banner", "--redact", "--source", repo_path,
                            "--log-opts", " ".join(new_commit_range(old, new)),
                            "--report-format", "json", "--report-path", report, "--exit-code", "3"],
                           timeout=SCAN_LIMIT)
        if rc not in (0, 3):
            raise GateError("git-gate: push rejected: the gitleaks scan failed (%s); nothing was sent upstream"
                            % last_line(err or out))
        try:
            with open(report, encoding="utf-8") as handle:
                findings = json.load(handle) or []
        except (OSError, ValueError):
            findings = []
        if rc == 3 and not findings:
            raise GateError("git-gate: push rejected: gitleaks reported a finding but no report; nothing was sent")
        return findings


def relay(name, repo, updates, repo_path, home=None):
    """Push the updates to the upstream with leases on the old values; GateError with its reason if refused."""
    home = home or HOME
    argv = ["git", "-C", repo_path, "push", "--porcelain", "--atomic", "--no-verify", repo["url"]]
    for old, new, ref in updates:
        argv.append("--force-with-lease=%s:%s" % (ref, "" if old == ZERO else old))
    for old, new, ref in updates:
        argv.append(":%s" % ref if new == ZERO else "%s:%s" % (new, ref))
    rc, out, err = run(argv, env=git_env(name, home), timeout=RELAY_LIMIT)
    if rc != 0:
        detail = [line for line in (err + "\n" + out).splitlines()
                  if line.strip() and not line.startswith(("To ", "Done"))]
        raise GateError("git-gate: the upstream %s refused the push:\n%s" % (
            repo["url"], "\n".join("git-gate:   " + line for line in detail[-8:]) or "git-gate:   (no reason given)"))


def pre_receive(stdin_text, repo_path=None):
    repo_path = repo_path or os.getcwd()
    repos = load_config()
    name = repo_of(repo_path, repos)
    repo = repos[name]
    updates = [tuple(line.split()) for line in stdin_text.splitlines() if line.strip()]

    def is_ancestor(a, b):
        return run(["git", "-C", repo_path, "merge-base", "--is-ancestor", a, b])[0] == 0

    for old, new, ref in updates:
        reason = check_update(old, new, ref, repo.get("protected_branches", []), is_ancestor)
        if reason:
            raise GateError(reason)
    findings = []
    for old, new, ref in updates:
        if new != ZERO:
            findings.extend(scan(repo_path, old, new))
    if findings:
        raise GateError(findings_message(findings))
    relay(name, repo, updates, repo_path)
    print("git-gate: scanned clean and relayed to %s" % repo["url"], file=sys.stderr)
    return 0


def main(argv):
    try:
        if not argv:
            return serve()
        if argv[0] == "access":
            return access(argv[1:])
        if argv[0] == "pre-receive":
            return pre_receive(sys.stdin.read())
        print("usage: git-gate [access <service> <path> ... | pre-receive]", file=sys.stderr)
        return 2
    except GateError as exc:
        # The access hook's first stdout line is what git daemon sends the client; hooks print to stderr.
        stream = sys.stdout if argv and argv[0] == "access" else sys.stderr
        print(str(exc), file=stream, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
