#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What git-gate's push scan costs: egress's DLP engine side by side with gitleaks, same push.

Builds one commit of 1,000 new files (20 MB in all: Python sources of the image's stdlib cut
into pieces, JSON, prose and 5% binary assets) that no ref has, as a push sits in git-gate's
quarantine, then times, in one run:
- the engine: git_gate.dlp_findings (rev-list --objects, cat-file --batch, every object and its
  parts sent over the scan socket to egress's scan service, running as its own process with
  known secrets loaded, kingfisher + known secrets in all encodings);
- gitleaks, as git-gate runs it (git_gate.scan: ``gitleaks detect --log-opts <new> --not --all``).
One file carries a planted known secret (base64): the run fails unless the engine names it.
Aim: the engine no slower than gitleaks. Prints the median of 3 runs of each (--smoke: 20 small
files, one run). Runs inside the bundle image (kingfisher, gitleaks and git are there): from the
controller it starts one ``docker run --rm --network none`` of $BUNDLE_IMAGE with the working copy
mounted read-only and runs itself there.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
IMAGE = os.environ.get("BUNDLE_IMAGE", "botbottle/bundle:latest")
ZERO = "0" * 40
SERVICE = r'''
import asyncio, json, sys
sys.path.insert(0, %(src)r)
from bottle_firewall import dlp, scan_service
engine = dlp.Engine.start("/opt/egress/rules-cache")
engine.known.load(%(secrets)r)
async def main():
    await scan_service.ScanService(engine, %(socket)r).start()
    print("READY", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
'''
SECRETS = ["pa+ss!w0rd-Zq8x", "rt-9fQ2mXv7LpK3sW8dZ1aB", "sk-ant-api03-" + "x1Y2z3" * 12, "hunter2-but-longer"]


def outside(argv):
    """Run this script inside the bundle image."""
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode != 0:
        print("image %s not found (make test-images, or set BUNDLE_IMAGE)" % IMAGE, file=sys.stderr)
        return 1
    return subprocess.run(["docker", "run", "--rm", "--network", "none", "--user", "root",
                           "-e", "PYTHONDONTWRITEBYTECODE=1", "-v", "%s:/repo:ro" % REPO,
                           "--entrypoint", "/opt/egress/bin/python", IMAGE, "/repo/bench/git_scan.py",
                           "--inside"] + argv, check=False).returncode


def git(cwd, *args, stdin=None):
    env = dict(os.environ, GIT_AUTHOR_NAME="Agent", GIT_AUTHOR_EMAIL="agent@example.com",
               GIT_COMMITTER_NAME="Agent", GIT_COMMITTER_EMAIL="agent@example.com", GIT_CONFIG_NOSYSTEM="1")
    return subprocess.run(["git", "-C", cwd] + list(args), env=env, input=stdin, capture_output=True,
                          check=True).stdout.decode().strip()


def corpus(count, total):
    """(path, bytes) of ``count`` files of about ``total`` bytes in all."""
    rng = random.Random(5)
    sources = []
    for root in ("/usr/lib/python3.13", "/opt/egress/lib/python3.13/site-packages"):
        for dirpath, _dirs, files in os.walk(root):
            for name in sorted(files):
                if name.endswith(".py"):
                    with open(os.path.join(dirpath, name), "rb") as handle:
                        sources.append(handle.read())
            if sum(map(len, sources)) > 3 * total:
                break
    code = b"\n".join(sources)
    size = max(total // count, 64)
    prose = (b"The failing test exercises the retry path: when the upstream answers 503 the client waits, then "
             b"retries with the same idempotency key. ")
    files = []
    for index in range(count):
        kind = index % 20
        if kind == 0:
            data = bytes(rng.getrandbits(8) for _unused in range(min(size, 4096))) * (size // 4096 + 1)
            path = "assets/img-%04d.bin" % index
        elif kind in (1, 2):
            data = json.dumps([{"id": "%032x" % rng.getrandbits(128), "name": "item %d" % i, "ok": True}
                               for i in range(size // 70)]).encode()
            path = "data/fixture-%04d.json" % index
        elif kind == 3:
            data = prose * (size // len(prose) + 1)
            path = "docs/page-%04d.md" % index
        else:
            start = rng.randrange(0, max(1, len(code) - size))
            data = code[start:start + size]
            path = "src/pkg%02d/module_%04d.py" % (index % 37, index)
        files.append((path, data[:size]))
    # One known secret, base64-wrapped, in the last file: the run proves the scan looked.
    import base64
    path, data = files[-1]
    files[-1] = (path, data[:-60] + b"\nX = '" + base64.b64encode(SECRETS[0].encode()) + b"'\n")
    return files


def build(root, files):
    """A repository holding one commit of ``files`` that no ref points to (as in the quarantine)."""
    work = os.path.join(root, "push.git")
    subprocess.run(["git", "init", "-q", "--bare", work], check=True)
    entries = {}
    for path, data in files:
        sha = git(work, "hash-object", "-w", "--stdin", stdin=data)
        entries[path] = sha
    index = "".join("100644 %s\t%s\n" % (sha, path) for path, sha in sorted(entries.items()))
    env_index = os.path.join(root, "index")
    subprocess.run(["git", "-C", work, "update-index", "--add", "--index-info"], input=index.encode(), check=True,
                   env=dict(os.environ, GIT_INDEX_FILE=env_index))
    tree = subprocess.run(["git", "-C", work, "write-tree"], env=dict(os.environ, GIT_INDEX_FILE=env_index),
                          capture_output=True, check=True).stdout.decode().strip()
    commit = git(work, "commit-tree", tree, "-m", "import %d files" % len(files))
    return work, commit


def inside(args):
    sys.path.insert(0, "/repo/images/bundle")
    import git_gate  # noqa: E402
    count, total, runs = (20, 200 * 1024, 1) if args.smoke else (args.files, args.megabytes * 1000 * 1000, 3)
    root = tempfile.mkdtemp(prefix="git-scan-")
    socket_path = os.path.join(root, "scan.sock")
    service = subprocess.Popen(["/opt/egress/bin/python", "-c", SERVICE % {
        "src": "/repo/images/bundle", "secrets": SECRETS, "socket": socket_path}], stdout=subprocess.PIPE)
    try:
        if b"READY" not in service.stdout.readline():
            print("the scan service did not start", file=sys.stderr)
            return 1
        files = corpus(count, total)
        work, commit = build(root, files)
        size = sum(len(d) for _p, d in files)
        updates = [(ZERO, commit, "refs/heads/import")]
        client = git_gate.ScanClient(socket_path, timeout=600)
        engine, leaks, found = [], [], None
        for _run in range(runs):
            start = time.perf_counter()
            found = git_gate.dlp_findings(work, updates, client)
            engine.append(time.perf_counter() - start)
            start = time.perf_counter()
            leaked = git_gate.scan(work, ZERO, commit)
            leaks.append(time.perf_counter() - start)
        e, g = statistics.median(engine), statistics.median(leaks)
        if not any(rule == "known-secret" and files[-1][0] in where for where, rule, _f in found):
            print("the engine missed the planted known secret: %r" % (found,), file=sys.stderr)
            return 1
        print("git push scan: %d new files, %.1f MB (%d run(s), median)" % (len(files), size / 1e6, runs))
        print("  engine (egress's DLP over the scan socket): %7.2f s  %6.1f MB/s  %d finding(s)"
              % (e, size / 1e6 / e, len(found)))
        print("  gitleaks (git-gate's second scanner):        %7.2f s  %6.1f MB/s  %d finding(s)"
              % (g, size / 1e6 / g, len(leaked)))
        print("  engine / gitleaks: %.2fx (aim: <= 1.00x)" % (e / g))
        if args.json:
            print(json.dumps({"files": len(files), "bytes": size, "engine_s": e, "gitleaks_s": g}))
        return 0
    finally:
        service.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--smoke", action="store_true", help="20 small files, one run (make test)")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--megabytes", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="the figures as one JSON line at the end")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args, _rest = parser.parse_known_args()
    if not args.inside:
        return outside(list(sys.argv[1:]))
    return inside(args)


if __name__ == "__main__":
    sys.exit(main())
