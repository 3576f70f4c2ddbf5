# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""git-gate's DLP cases: one push per object kind, each carrying a secret, and the corpus of clean
pushes. Shared by the unit tests (tests/unit/images/test_git_gate.py, a local upstream and the real
engine in-process) and the bundle-image run (run_git_gate_dlp.py: real gitleaks, separate uids).

``build(kind, work, secret, tag)`` makes, in the clone ``work`` whose origin is the gate, the
objects of one case and returns ``(refspecs, expected where)``: what to push and the text the
refusal must name.
"""

import base64
import os
import random
import subprocess

KNOWN = "pa+ss!w0rd-Zq8x"                       # a secret_env value: no pattern rule knows it
ROUTE_TOKEN = "rt-9fQ2mXv7LpK3sW8dZ1aB"          # a route's credential, as egress holds it
GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"  # a provider token: kingfisher's pattern
SECRETS = {
    "known": (KNOWN, "known-secret"),
    "route": (ROUTE_TOKEN, "known-secret"),
    "provider": (GHP, "dlp:"),
    "base64-known": (base64.b64encode(KNOWN.encode()).decode(), "known-secret"),
}
KINDS = ("blob-text", "blob-binary", "blob-gzip", "commit-message", "author-name", "author-email", "committer", "gpgsig",
         "mergetag", "unknown-header", "tag-message", "tagger", "tree-entry-name", "ref-name", "note")
IDENT = {"GIT_AUTHOR_NAME": "Agent", "GIT_AUTHOR_EMAIL": "agent@example.com", "GIT_COMMITTER_NAME": "Agent",
         "GIT_COMMITTER_EMAIL": "agent@example.com", "GIT_CONFIG_NOSYSTEM": "1"}


def git(work, *args, env=None, stdin=None, check=True):
    full = dict(os.environ, **IDENT)
    full.update(env or {})
    proc = subprocess.run(["git"] + list(args), cwd=str(work), env=full, input=stdin, capture_output=True,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError("git %s: %s" % (" ".join(args), proc.stderr.decode(errors="replace")))
    return proc.stdout.decode(errors="replace").strip()


def head(work):
    return git(work, "rev-parse", "HEAD")


def _commit_object(work, extra_headers, message, parents=None):
    """A commit object written with ``extra_headers`` (bytes lines, continuation lines indented)."""
    tree = git(work, "rev-parse", "HEAD^{tree}")
    parents = parents or [head(work)]
    lines = [b"tree " + tree.encode()] + [b"parent " + p.encode() for p in parents]
    lines += [b"author Agent <agent@example.com> 1700000000 +0000",
              b"committer Agent <agent@example.com> 1700000000 +0000"]
    raw = b"\n".join(lines + extra_headers) + b"\n\n" + message
    return git(work, "hash-object", "-t", "commit", "-w", "--stdin", stdin=raw)


def build(kind, work, secret, tag):
    """Objects for case ``kind`` carrying ``secret``; returns (refspecs, expected where text)."""
    branch = "refs/heads/leak-%s" % tag
    env = {}
    if kind == "blob-text":
        (work / "config.txt").write_text("[service]\nvalue = %s\n" % secret)
        git(work, "add", "config.txt")
        git(work, "commit", "-qm", "add config")
        return ["HEAD:" + branch], "blob config.txt"
    if kind == "blob-binary":
        rng = random.Random(7)
        data = bytes(rng.randrange(256) for _unused in range(3000)) + b"\0" + secret.encode() + b"\0\x89PNG" + bytes(500)
        (work / "asset.bin").write_bytes(data)
        git(work, "add", "asset.bin")
        git(work, "commit", "-qm", "add asset")
        return ["HEAD:" + branch], "blob asset.bin"
    if kind == "blob-gzip":
        import gzip
        (work / "dump.json.gz").write_bytes(gzip.compress(("{\"key\": \"%s\"}\n" % secret).encode(), mtime=0))
        git(work, "add", "dump.json.gz")
        git(work, "commit", "-qm", "add a dump")
        return ["HEAD:" + branch], "blob dump.json.gz"
    if kind == "commit-message":
        git(work, "commit", "-q", "--allow-empty", "-m", "fix the build\n\nthe value is %s" % secret)
        return ["HEAD:" + branch], "message"
    if kind in ("author-name", "author-email", "committer"):
        if kind == "author-name":
            env["GIT_AUTHOR_NAME"] = "Agent " + secret
        elif kind == "author-email":
            env["GIT_AUTHOR_EMAIL"] = secret + "@example.com"
        else:
            env["GIT_COMMITTER_NAME"] = "Agent " + secret
        git(work, "commit", "-q", "--allow-empty", "-m", "an ordinary message", env=env)
        return ["HEAD:" + branch], "header committer" if kind == "committer" else "header author"
    if kind == "gpgsig":
        sig = [b"gpgsig -----BEGIN PGP SIGNATURE-----", b" ", b" " + secret.encode(), b" -----END PGP SIGNATURE-----"]
        sha = _commit_object(work, sig, b"signed\n")
        return ["%s:%s" % (sha, branch)], "header gpgsig"
    if kind == "mergetag":
        tag_body = [b"mergetag object " + head(work).encode(), b" type commit", b" tag side",
                    b" tagger Agent <agent@example.com> 1700000000 +0000", b" ", b" " + secret.encode()]
        sha = _commit_object(work, tag_body, b"merge\n")
        return ["%s:%s" % (sha, branch)], "header mergetag"
    if kind == "unknown-header":
        sha = _commit_object(work, [b"x-data " + secret.encode()], b"odd header\n")
        return ["%s:%s" % (sha, branch)], "header x-data"
    if kind in ("tag-message", "tagger"):
        # An annotated tag on a commit the upstream already has: the tag object is still new.
        if kind == "tagger":
            env["GIT_COMMITTER_NAME"] = "Agent " + secret
            message = "release"
        else:
            message = "release notes: %s" % secret
        git(work, "tag", "-a", "t-" + tag, "-m", message, "origin/main", env=env)
        return ["refs/tags/t-%s:refs/tags/t-%s" % (tag, tag)], "header tagger" if kind == "tagger" else "message"
    if kind == "tree-entry-name":
        (work / ("%s.txt" % secret)).write_text("clean content\n")
        git(work, "add", "-A")
        git(work, "commit", "-qm", "add a file")
        return ["HEAD:" + branch], "entry names"
    if kind == "ref-name":
        git(work, "commit", "-q", "--allow-empty", "-m", "clean")
        return ["HEAD:refs/heads/leak-%s" % secret], "ref (name withheld)"
    if kind == "note":
        git(work, "notes", "add", "-m", "remember %s" % secret, "origin/main")
        return ["refs/notes/commits:refs/notes/commits"], "note "
    raise ValueError(kind)


def upstream_state(upstream):
    """The upstream's refs and every object it holds: nothing may change on a refused push."""
    refs = git(upstream, "for-each-ref", "--format=%(objectname) %(refname)")
    objects = git(upstream, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    return refs, objects


# ---- the false-positive corpus: a repository like real ones ---------------------------------------


def png(width=64, height=64, seed=1):
    """A valid PNG (random pixels, zlib-compressed: binary like any image asset)."""
    import struct
    import zlib
    rng = random.Random(seed)
    rows = b"".join(b"\0" + bytes(rng.randrange(256) for _unused in range(width * 3)) for _unused in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def _integrity(rng):
    return "sha512-" + base64.b64encode(bytes(rng.randrange(256) for _unused in range(64))).decode()


def package_lock(rng, count=150):
    import json
    packages = {"": {"name": "web", "version": "1.0.0", "dependencies": {"react": "^18.2.0"}}}
    for index in range(count):
        name = "pkg-%s-%d" % ("".join(rng.choice("abcdefghijklmnop") for _unused in range(6)), index)
        packages["node_modules/" + name] = {
            "version": "%d.%d.%d" % (rng.randrange(9), rng.randrange(30), rng.randrange(30)),
            "resolved": "https://registry.npmjs.org/%s/-/%s-1.2.3.tgz" % (name, name),
            "integrity": _integrity(rng), "license": "MIT"}
    return json.dumps({"name": "web", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
                       "packages": packages}, indent=2) + "\n"


def poetry_lock(rng, count=80):
    lines = []
    for index in range(count):
        name = "lib%s%d" % ("".join(rng.choice("qrstuvwxyz") for _unused in range(5)), index)
        lines += ["[[package]]", 'name = "%s"' % name, 'version = "1.%d.0"' % index,
                  'description = "A library"', 'optional = false', 'python-versions = ">=3.8"', "files = ["]
        for suffix in ("py3-none-any.whl", "tar.gz"):
            digest = "".join(rng.choice("0123456789abcdef") for _unused in range(64))
            lines.append('    {file = "%s-1.%d.0-%s", hash = "sha256:%s"},' % (name, index, suffix, digest))
        lines += ["]", ""]
    lines += ["[metadata]", 'lock-version = "2.0"', 'python-versions = "^3.11"',
              'content-hash = "%s"' % "".join(rng.choice("0123456789abcdef") for _unused in range(64))]
    return "\n".join(lines) + "\n"


def cargo_lock(rng, count=80):
    lines = ["# This file is automatically @generated by Cargo.", "version = 3", ""]
    for index in range(count):
        name = "crate-%s-%d" % ("".join(rng.choice("abcdefgh") for _unused in range(5)), index)
        lines += ["[[package]]", 'name = "%s"' % name, 'version = "0.%d.1"' % index,
                  'source = "registry+https://github.com/rust-lang/crates.io-index"',
                  'checksum = "%s"' % "".join(rng.choice("0123456789abcdef") for _unused in range(64)), ""]
    return "\n".join(lines)


def minified_js(rng, size=120000):
    """Minified-looking JavaScript: short identifiers, no whitespace, a base64 data URI, a source map."""
    parts = ['!function(e,t){"object"==typeof exports?module.exports=t():e.lib=t()}(this,function(){"use strict";']
    names = ["a", "b", "c", "d", "e", "f", "n", "r", "o", "i", "u", "s"]
    while sum(map(len, parts)) < size:
        a, b, c = rng.choice(names), rng.choice(names), rng.choice(names)
        parts.append("var %s%d=function(%s,%s){return %s.map(function(%s){return %s+%d})};" % (
            a, rng.randrange(999), b, c, b, c, c, rng.randrange(99)))
        if rng.random() < 0.02:
            parts.append('var img="data:image/png;base64,%s";' % base64.b64encode(png(8, 8, rng.randrange(99))).decode())
    parts.append("return{}});\n//# sourceMappingURL=app.min.js.map\n")
    return "".join(parts)


def write_corpus(work, seed=11):
    """A real-world-like repository: assets, lockfiles, minified JS, a source file, ordinary text."""
    rng = random.Random(seed)
    (work / "assets").mkdir(exist_ok=True)
    for index in range(5):
        (work / "assets" / ("icon-%d.png" % index)).write_bytes(png(96, 96, seed + index))
    (work / "package-lock.json").write_text(package_lock(rng))
    (work / "poetry.lock").write_text(poetry_lock(rng))
    (work / "Cargo.lock").write_text(cargo_lock(rng))
    (work / "dist").mkdir(exist_ok=True)
    (work / "dist" / "app.min.js").write_text(minified_js(rng))
    (work / "src").mkdir(exist_ok=True)
    (work / "src" / "main.py").write_text(
        "import hashlib\nimport uuid\n\nSESSION = uuid.UUID('6f1c2a9e-3b4d-4c5e-8f70-91a2b3c4d5e6')\n"
        "DIGEST = '%s'\n\ndef main():\n    return hashlib.sha256(b'x').hexdigest()\n"
        % "".join(rng.choice("0123456789abcdef") for _unused in range(64)))
    (work / "README.md").write_text("# web\n\nBuild with `npm ci`; see docs/.\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "import the web app\n\nSigned-off-by: Agent <agent@example.com>")


def system_files(limit=40, max_bytes=400000):
    """Real files from this machine (/usr/share), binary and text, for the clean corpus."""
    picked = []
    for root in ("/usr/share/doc", "/usr/share/common-licenses", "/usr/share/mime", "/usr/share/zoneinfo"):
        for dirpath, _dirs, files in os.walk(root):
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                if os.path.isfile(path) and not os.path.islink(path) and 0 < os.path.getsize(path) < max_bytes:
                    picked.append(path)
                if len(picked) >= limit:
                    return picked
    return picked
