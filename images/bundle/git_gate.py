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
- pre-receive (`git-gate pre-receive`): ref policy first: protected branches
  refuse deletion and force pushes; a ref outside refs/heads/ whose short name
  (any trailing part of it) is a protected branch's name is refused (it would
  make that name ambiguous on the upstream); protected tags (``protected_tags``
  patterns, default ``["*"]``: every existing tag) refuse deletion and moves,
  a new tag may still be created; only refs/heads/, refs/tags/ and refs/notes/
  are pushed. Then DLP: every object the push makes newly reachable on the
  upstream (``git rev-list --objects <new> --not <the upstream's refs, which
  the gate mirrors since the access hook's refresh>``) is read with
  ``git cat-file --batch`` and handed, with the pushed ref names, to egress's
  DLP engine over its scan socket (bottle_firewall/scan_service.py, protocol
  there): blobs (binary too, raw bytes), tree entry names, every commit header
  but tree/parent (author, committer, gpgsig, mergetag, unknown ones) and
  message, every tag header but object/type (tag name, tagger) and message;
  notes are the blobs of refs/notes/* commits. The known secrets stay in
  egress's uid: git-gate never sees them. gitleaks scans the new commits too
  (a second scanner); a finding of either rejects the push naming the object
  or file and the rule (never the secret). Inline allow comments in the pushed
  content are not honoured by the engine; a finding whose fingerprint is in the
  repo's ``allowed_fingerprints`` is (never a known secret, never a ref name).
  If the scan service is unreachable or fails, the push is refused. A clean push
  is relayed to the upstream with the repository's identity, with leases on the
  old values (a protected tag is only ever created, with an empty lease, never
  forced), and a refused relay fails the agent's push with the upstream's
  reason. The gate's refs change only after the upstream took the push.

Configuration: $HOME/git-gate.json (rendered by the role, staged by
bottle-init): {"repos": [{"name", "url", "known_hosts", "protected_branches",
"protected_tags", "allowed_fingerprints"}]}.
Identities: $HOME/identities/<name> (mode 0400, this uid only).
"""

import concurrent.futures
import fnmatch
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

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
# egress's scan service (bottle_firewall/scan_service.py): its socket, and the limits this side keeps.
SCAN_SOCKET = os.environ.get("BOTTLE_GIT_GATE_SCAN_SOCKET", "/run/bottle/dlp/scan.sock")
SCAN_MAGIC = b"BOTTLE-SCAN/1"
MAX_OBJECT = 64 * 1024 * 1024   # the service's MAX_ITEM: a larger object is refused, never skipped
MAX_LABEL = 4096
MAX_REPLY = 4 * 1024 * 1024
# Tags nobody may move or delete when the policy says nothing: every existing tag is immutable.
DEFAULT_PROTECTED_TAGS = ["*"]
# What the gate mirrors of the upstream (refresh): everything reachable from these is already there.
MIRRORED = ("refs/heads/", "refs/tags/", "refs/notes/")
OBJECT_ID = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")


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
                              text=True, errors="surrogateescape", timeout=timeout, check=False)
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
    """Mirror the upstream's branches, tags and notes into the gate's repository (MIRRORED)."""
    home = home or HOME
    path = os.path.join(home, "repos", name + ".git")
    rc, _out, err = run(["git", "-C", path, "fetch", "--quiet", "--prune", "--no-write-fetch-head", repo["url"],
                         "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*", "+refs/notes/*:refs/notes/*"],
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


# ---- pre-receive: ref policy -------------------------------------------------------------------


def branch_of(ref):
    return ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None


def tag_of(ref):
    return ref[len("refs/tags/"):] if ref.startswith("refs/tags/") else None


def is_protected(ref, patterns):
    branch = branch_of(ref)
    return branch is not None and any(fnmatch.fnmatchcase(branch, p) for p in patterns)


def short_names(ref):
    """Every trailing part of ``ref`` after refs/ on a '/' boundary: refs/remotes/origin/main gives
    remotes/origin/main, origin/main and main."""
    parts = ref.split("/")[1:] if ref.startswith("refs/") else ref.split("/")
    return ["/".join(parts[i:]) for i in range(len(parts))]


def protected_names(patterns, branches):
    """The branch names a ref elsewhere may not take: the protected patterns without wildcards, and
    every existing branch (``branches``, short names) that a protected pattern covers."""
    names = {p for p in patterns if not any(c in p for c in "*?[")}
    names.update(b for b in branches if any(fnmatch.fnmatchcase(b, p) for p in patterns))
    return names


def new_commit_range(old, new):
    """git log arguments selecting the commits this update brings: old..new, or what no ref has yet."""
    if old == ZERO:
        return [new, "--not", "--all"]
    return ["%s..%s" % (old, new)]


def check_update(old, new, ref, protected, is_ancestor, protected_tags=None, branch_names=()):
    """Why this ref update is refused by policy (None: allowed). ``is_ancestor(a, b)`` asks git;
    ``branch_names``: the branches the upstream has (short names); ``protected_tags``: patterns
    (None: DEFAULT_PROTECTED_TAGS)."""
    protected_tags = DEFAULT_PROTECTED_TAGS if protected_tags is None else protected_tags
    if branch_of(ref) is None:
        taken = protected_names(protected, branch_names)
        clash = [name for name in short_names(ref) if name in taken]
        if clash:
            return ("git-gate: %s refused: its name ends in %s, a protected branch; a ref of that name outside "
                    "refs/heads/ would make the branch's name ambiguous upstream" % (ref, clash[0]))
    if not ref.startswith(MIRRORED):
        return "git-gate: %s refused: push branches (refs/heads/*), tags (refs/tags/*) or notes (refs/notes/*) only" % ref
    if is_protected(ref, protected):
        if new == ZERO:
            return "git-gate: %s is a protected branch: deleting it is refused" % branch_of(ref)
        if old != ZERO and not is_ancestor(old, new):
            return ("git-gate: %s is a protected branch: a force push (non-fast-forward) is refused; "
                    "pull, rebase on it and push again" % branch_of(ref))
    tag = tag_of(ref)
    if tag is not None and old != ZERO and any(fnmatch.fnmatchcase(tag, p) for p in protected_tags):
        if new == ZERO:
            return "git-gate: tag %s is protected (protected_tags): deleting it is refused" % tag
        return ("git-gate: tag %s is protected (protected_tags): moving it is refused; create a new tag "
                "instead" % tag)
    return None


# ---- pre-receive: what the push would publish ----------------------------------------------------


def newly_reachable(repo_path, updates):
    """[(sha, path, ref)] of every object the updates make reachable that the upstream does not have.

    The gate's refs under MIRRORED are the upstream's as of the access hook's refresh (they change
    only after the upstream took a push), and the pushed objects are still in quarantine: every
    object not reachable from those refs is new to the upstream. One rev-list per update, so an
    object is listed with the first ref that brings it."""
    listed, seen = [], set()
    negatives = ["--not"] + ["--glob=%s*" % prefix for prefix in MIRRORED]
    for _old, new, ref in updates:
        if new == ZERO:
            continue
        rc, out, err = run(["git", "-C", repo_path, "rev-list", "--objects", new] + negatives, timeout=SCAN_LIMIT)
        if rc != 0:
            raise GateError("git-gate: push rejected: listing the pushed objects failed (%s); nothing was sent "
                            "upstream" % last_line(err))
        for line in out.splitlines():
            sha, _sep, path = line.partition(" ")
            if OBJECT_ID.match(sha) and sha not in seen:
                seen.add(sha)
                listed.append((sha, path, ref))
    return listed


def read_objects(repo_path, shas):
    """Yield (sha, type, bytes) of each object, in order, from one ``git cat-file --batch``."""
    proc = subprocess.Popen(["git", "-C", repo_path, "cat-file", "--batch"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def feed():
        try:
            for sha in shas:
                proc.stdin.write(sha.encode("ascii") + b"\n")
            proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        for sha in shas:
            header = proc.stdout.readline().split()
            if len(header) != 3 or header[0].decode("ascii", "replace") != sha:
                raise GateError("git-gate: push rejected: object %s could not be read; nothing was sent upstream"
                                % sha)
            kind, size = header[1].decode("ascii"), int(header[2])
            if size > MAX_OBJECT:
                raise GateError("git-gate: push rejected: %s %s is %d bytes, over the %d the DLP scan takes; "
                                "nothing was sent upstream" % (kind, sha[:12], size, MAX_OBJECT))
            data = proc.stdout.read(size)
            proc.stdout.read(1)
            yield sha, kind, data
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()
        writer.join(1)


def split_object(data):
    """(headers [(name, value bytes)], message bytes) of a commit or tag object; a header's
    continuation lines (gpgsig, mergetag) belong to its value."""
    head, _sep, message = data.partition(b"\n\n")
    headers = []
    for line in head.split(b"\n"):
        if line.startswith(b" ") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + b"\n" + line[1:])
        elif line:
            name, _sp, value = line.partition(b" ")
            headers.append((name.decode("utf-8", "replace"), value))
    return headers, message


def tree_names(data, id_bytes=20):
    """The entry names of a tree object, one a line (``id_bytes``: 20 for SHA-1, 32 for SHA-256)."""
    names, offset = [], 0
    while offset < len(data):
        space = data.find(b" ", offset)
        nul = data.find(b"\0", space)
        if space < 0 or nul < 0:
            break
        names.append(data[space + 1:nul])
        offset = nul + 1 + id_bytes
    return b"\n".join(names)


def scan_items(objects, updates):
    """Yield (label, data, object sha or None) of everything to scan: each object's parts, then the
    pushed ref names. ``objects``: (sha, kind, data, path, ref)."""
    for sha, kind, data, path, ref in objects:
        short = sha[:12]
        if kind == "blob":
            what = "note" if ref.startswith("refs/notes/") else "blob"
            yield "%s %s (%s)" % (what, path or "?", short), data, sha
        elif kind == "tree":
            yield "tree %s (%s) entry names" % (path or "/", short), tree_names(data, len(sha) // 2), sha
        elif kind in ("commit", "tag"):
            headers, message = split_object(data)
            skip = ("tree", "parent") if kind == "commit" else ("object", "type")
            for name, value in headers:
                if name not in skip:
                    yield "%s %s header %s" % (kind, short, name), value, sha
            yield "%s %s message" % (kind, short), message, sha
        else:
            raise GateError("git-gate: push rejected: object %s has an unknown type %s" % (short, kind))
    for _old, new, ref in updates:
        yield "ref %s" % ref, ref.encode("utf-8", "surrogateescape"), None


class ScanClient:
    """One request to egress's scan service (bottle_firewall/scan_service.py has the protocol)."""

    def __init__(self, path=None, timeout=None):
        self.path = path or SCAN_SOCKET
        self.timeout = SCAN_LIMIT if timeout is None else timeout

    def scan(self, items):
        """The service's findings for ``items`` ((label, data, sha) tuples): (findings, items as sent).
        Any failure is a GateError: the push is refused (fail closed)."""
        deadline = time.monotonic() + self.timeout
        sent = []
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(min(self.timeout, 60))
        try:
            try:
                sock.connect(self.path)
            except OSError as exc:
                raise GateError("git-gate: push rejected: egress's DLP scan service is unreachable (%s: %s); "
                                "nothing was sent upstream" % (self.path, exc.strerror or type(exc).__name__))
            try:
                sock.sendall(struct.pack(">I", len(SCAN_MAGIC)) + SCAN_MAGIC)
                for label, data, sha in items:
                    if time.monotonic() > deadline:
                        raise GateError("git-gate: push rejected: the DLP scan took over %ss; nothing was sent "
                                        "upstream" % self.timeout)
                    encoded = label.encode("utf-8", "surrogateescape")[:MAX_LABEL]
                    payload = struct.pack(">H", len(encoded)) + encoded
                    sock.sendall(struct.pack(">I", len(payload) + len(data)) + payload)
                    sock.sendall(data)
                    sent.append((label, sha))
                sock.sendall(struct.pack(">I", 0))
            except OSError:
                pass  # the service may have answered (a limit) and closed: its reply says why
            reply = self._reply(sock, deadline)
        finally:
            sock.close()
        if not isinstance(reply, dict) or reply.get("ok") is not True:
            reason = reply.get("error") if isinstance(reply, dict) else None
            raise GateError("git-gate: push rejected: the DLP scan failed (%s); nothing was sent upstream"
                            % (reason or "no answer from egress's scan service"))
        if reply.get("items") != len(sent):
            raise GateError("git-gate: push rejected: the DLP scan saw %s of %d items; nothing was sent upstream"
                            % (reply.get("items"), len(sent)))
        return reply.get("findings") or [], sent

    def _reply(self, sock, deadline):
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
            if len(data) >= 4 and struct.unpack(">I", data[:4])[0] > MAX_REPLY:
                return None
            sock.settimeout(max(deadline - time.monotonic(), 0.1))
            try:
                chunk = sock.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        try:
            return json.loads(data[4:4 + struct.unpack(">I", data[:4])[0]].decode("utf-8"))
        except ValueError:
            return None


def fingerprint(rule, sha):
    """A finding's fingerprint as ``allowed_fingerprints`` lists it: ``<kingfisher rule id>:<object id>``
    (the object is content-addressed: allowing it allows that exact content, nothing else). Known
    secrets and ref names have none: they are never allowed."""
    if sha is None or not rule.startswith("dlp:"):
        return None
    return "%s:%s" % (rule[4:], sha)


def dlp_findings(repo_path, updates, client=None):
    """The engine's findings in what the updates would publish: [(where, rule, fingerprint)]."""
    objects = newly_reachable(repo_path, updates)
    info = {sha: (path, ref) for sha, path, ref in objects}

    def with_data():
        for sha, kind, data in read_objects(repo_path, [sha for sha, _p, _r in objects]):
            path, ref = info[sha]
            yield sha, kind, data, path, ref
    findings, sent = (client or ScanClient()).scan(scan_items(with_data(), updates))
    out = []
    for item in findings:
        index = item.get("item")
        if not isinstance(index, int) or not 0 <= index < len(sent):
            raise GateError("git-gate: push rejected: the DLP scan answered an unknown item; nothing was sent")
        out.append((str(item.get("where")), str(item.get("rule")), fingerprint(str(item.get("rule")), sent[index][1])))
    return out


def findings_message(findings, dlp=()):
    """The refusal: the engine's findings (where, rule, fingerprint) and gitleaks' (dicts); never a secret."""
    total = len(findings) + len(dlp)
    lines = ["git-gate: push rejected: %d secret(s) found in what this push would publish; nothing was sent "
             "upstream." % total]
    for where, rule, print_ in list(dlp)[:20]:
        lines.append("git-gate:   %s  rule %s%s  (secret redacted)" % (
            where, rule, "  fingerprint %s" % print_ if print_ else ""))
    if findings:
        lines.append("git-gate: gitleaks found %d secret(s) in the pushed commits:" % len(findings))
    for item in findings[:20]:
        lines.append("git-gate:   %s:%s  rule %s  commit %s  (secret redacted)" % (
            item.get("File", "?"), item.get("StartLine", "?"), item.get("RuleID", "?"), str(item.get("Commit", "?"))[:12]))
    lines.append("git-gate: remove the secret from those objects (rewrite them) and push again.")
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
    protected_tags = repo.get("protected_tags", DEFAULT_PROTECTED_TAGS)
    argv = ["git", "-C", repo_path, "push", "--porcelain", "--atomic", "--no-verify", repo["url"]]
    for old, new, ref in updates:
        tag = tag_of(ref)
        if tag is not None and old != ZERO and any(fnmatch.fnmatchcase(tag, p) for p in protected_tags):
            # check_update refused this already: a protected tag is only ever created, never forced.
            raise GateError("git-gate: tag %s is protected: refusing to move it upstream" % tag)
        argv.append("--force-with-lease=%s:%s" % (ref, "" if old == ZERO else old))
    for old, new, ref in updates:
        argv.append(":%s" % ref if new == ZERO else "%s:%s" % (new, ref))
    rc, out, err = run(argv, env=git_env(name, home), timeout=RELAY_LIMIT)
    if rc != 0:
        detail = [line for line in (err + "\n" + out).splitlines()
                  if line.strip() and not line.startswith(("To ", "Done"))]
        raise GateError("git-gate: the upstream %s refused the push:\n%s" % (
            repo["url"], "\n".join("git-gate:   " + line for line in detail[-8:]) or "git-gate:   (no reason given)"))


def pre_receive(stdin_text, repo_path=None, client=None):
    repo_path = repo_path or os.getcwd()
    repos = load_config()
    name = repo_of(repo_path, repos)
    repo = repos[name]
    updates = [tuple(line.split()) for line in stdin_text.splitlines() if line.strip()]

    def is_ancestor(a, b):
        return run(["git", "-C", repo_path, "merge-base", "--is-ancestor", a, b])[0] == 0

    rc, out, _err = run(["git", "-C", repo_path, "for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads/"])
    if rc != 0:
        raise GateError("git-gate: push rejected: the gate's branches could not be listed")
    branches = out.split()
    for old, new, ref in updates:
        reason = check_update(old, new, ref, repo.get("protected_branches", []), is_ancestor,
                              repo.get("protected_tags", DEFAULT_PROTECTED_TAGS), branches)
        if reason:
            raise GateError(reason)
    allowed = set(repo.get("allowed_fingerprints", []))
    # gitleaks runs beside the engine (a process of its own); both must answer.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        leaks = pool.submit(lambda: [f for old, new, _ref in updates if new != ZERO
                                     for f in scan(repo_path, old, new)])
        dlp = [f for f in dlp_findings(repo_path, updates, client) if f[2] is None or f[2] not in allowed]
        findings = [f for f in leaks.result() if f.get("Fingerprint") not in allowed]
    if findings or dlp:
        raise GateError(findings_message(findings, dlp))
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
