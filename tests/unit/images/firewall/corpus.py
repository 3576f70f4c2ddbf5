# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Traffic a real coding agent sends, generated offline: it must pass the firewall untouched.

- Claude Code ``POST /v1/messages`` bodies (code files, a diff, prose, JSON tool results and a
  base64 PNG screenshot block), a few hundred KB;
- npm registry metadata and tarball requests, the bulk advisory POST;
- pip's simple-index, metadata and file requests (sha256 paths) with pip's JSON user agent;
- git smart-HTTP ``git-upload-pack`` negotiation bodies (pkt-lines with 40-hex SHAs).
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import random
import struct
import zlib

import argparse
import difflib
import textwrap
import json.decoder as json_decoder

PROSE = ("The failing test exercises the retry path: when the upstream answers 503 the client waits, "
         "then retries with the same idempotency key. I traced it to the backoff computation, which "
         "uses the attempt number before incrementing it, so the first retry happens immediately. "
         "Let me fix the off-by-one and add a regression test that pins the delays. ")


def _png(width=320, height=200, seed=7):
    """A real PNG (noise with some structure), as a screenshot block would carry."""
    rng = random.Random(seed)
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            shade = (x * 3 + y * 5 + rng.randrange(40)) % 256
            rows.extend((shade, (shade * 7) % 256, (255 - shade) % 256))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows), 6)) \
        + chunk(b"IEND", b"")


def _code_files():
    return {"argparse.py": inspect.getsource(argparse), "textwrap.py": inspect.getsource(textwrap),
            "json/decoder.py": inspect.getsource(json_decoder)}


def claude_messages_body(target_bytes=400_000):
    """A Claude Code /v1/messages request of about ``target_bytes``."""
    files = _code_files()
    old = files["textwrap.py"].splitlines(keepends=True)
    new = [line.replace("width", "max_width") for line in old]
    diff = "".join(difflib.unified_diff(old, new, "a/textwrap.py", "b/textwrap.py"))
    tool_result = json.dumps({"tests": [{"name": "test_retry_%d" % i, "outcome": "passed", "duration": 0.01 * i,
                                         "id": hashlib.sha1(str(i).encode()).hexdigest(),
                                         "run": "550e8400-e29b-41d4-a716-%012d" % i} for i in range(200)]},
                             indent=2)
    messages = [{"role": "user", "content": [{"type": "text", "text": "Fix the retry backoff bug in the client."}]}]
    tool_id = 0
    for name, source in files.items():
        tool_id += 1
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": PROSE},
            {"type": "tool_use", "id": "toolu_%024d" % tool_id, "name": "Read", "input": {"file_path": "/src/" + name}}]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_%024d" % tool_id, "content": source}]})
    messages.append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_diff", "content": diff},
        {"type": "tool_result", "tool_use_id": "toolu_tests", "content": tool_result},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": base64.b64encode(_png()).decode()}}]})
    body = {"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": True,
            "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude. " * 20,
                        "cache_control": {"type": "ephemeral"}}],
            "tools": [{"name": "Bash", "description": "Executes a bash command " * 30,
                       "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}],
            "metadata": {"user_id": "user_" + hashlib.sha256(b"operator").hexdigest() + "_account__session_"
                         + "0b3f2c1e-9a8d-4c7b-b6a5-f4e3d2c1b0a9"},
            "messages": messages}
    data = json.dumps(body).encode()
    while len(data) < target_bytes:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": PROSE * 20}]})
        data = json.dumps(body).encode()
    return data


CLAUDE_HEADERS = [("Host", "api.anthropic.com"), ("User-Agent", "claude-cli/2.0.14 (external, cli)"),
                  ("Content-Type", "application/json"), ("Anthropic-Version", "2023-06-01"),
                  ("Anthropic-Beta", "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"),
                  ("X-Stainless-Lang", "js"), ("X-Stainless-Package-Version", "0.60.0"),
                  ("X-Stainless-Retry-Count", "0"), ("X-App", "cli"), ("Accept", "application/json"),
                  ("Authorization", "Bearer placeholder")]

PIP_UA = json.dumps({"ci": None, "cpu": "x86_64", "distro": {"id": "trixie", "libc": {"lib": "glibc", "version": "2.41"},
                                                             "name": "Debian GNU/Linux", "version": "13"},
                     "implementation": {"name": "CPython", "version": "3.13.5"}, "installer": {"name": "pip", "version": "25.1.1"},
                     "openssl_version": "OpenSSL 3.5.1 1 Jul 2025", "python": "3.13.5", "rustc_version": "1.85.0",
                     "setuptools_version": "80.9.0", "system": {"name": "Linux", "release": "6.12.38"}},
                    separators=(",", ":"))


def package_manager_requests():
    """(name, path, headers, body, content type) of npm, pip and git requests."""
    sha_a = hashlib.sha1(b"a").hexdigest()
    sha_b = hashlib.sha1(b"b").hexdigest()
    wheel_sha = hashlib.sha256(b"requests").hexdigest()

    def pkt(line):
        return b"%04x%s" % (len(line) + 4, line)
    upload_pack_v0 = (pkt(b"want " + sha_a.encode() + b" multi_ack_detailed no-done side-band-64k thin-pack "
                          b"ofs-delta deepen-since deepen-not agent=git/2.47.2\n")
                      + pkt(b"want " + sha_b.encode() + b"\n") + b"0000"
                      + b"".join(pkt(b"have " + hashlib.sha1(str(i).encode()).hexdigest().encode() + b"\n")
                                 for i in range(64)) + pkt(b"done\n"))
    upload_pack_v2 = (pkt(b"command=fetch") + pkt(b"agent=git/2.47.2") + pkt(b"object-format=sha1") + b"0001"
                      + pkt(b"thin-pack") + pkt(b"ofs-delta") + pkt(b"want " + sha_a.encode() + b"\n")
                      + pkt(b"have " + sha_b.encode() + b"\n") + pkt(b"done") + b"0000")
    npm_headers = [("Accept", "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"),
                   ("npm-command", "install"), ("npm-session", "5e1f0b6c2d9a3e47"),
                   ("pacote-version", "21.0.0"), ("pacote-req-type", "packument"),
                   ("user-agent", "npm/11.6.0 node/v22.20.0 linux x64 workspaces/false")]
    return [
        ("npm packument", "/@anthropic-ai%2fclaude-code", npm_headers, b"", ""),
        ("npm tarball", "/@anthropic-ai/claude-code/-/claude-code-2.0.14.tgz", npm_headers, b"", ""),
        ("npm tarball unscoped", "/lodash/-/lodash-4.17.21.tgz", npm_headers, b"", ""),
        ("npm audit", "/-/npm/v1/security/advisories/bulk", npm_headers,
         gzip_json({"lodash": ["4.17.21"], "@anthropic-ai/claude-code": ["2.0.14"], "semver": ["7.7.2"]}),
         "application/json"),
        ("pip simple", "/simple/requests/", [("Accept", "application/vnd.pypi.simple.v1+json, text/html;q=0.01"),
                                             ("User-Agent", "pip/25.1.1 " + PIP_UA)], b"", ""),
        ("pip metadata", "/packages/f9/9b/%s/requests-2.32.3-py3-none-any.whl.metadata" % wheel_sha,
         [("User-Agent", "pip/25.1.1 " + PIP_UA)], b"", ""),
        ("pip file", "/packages/f9/9b/%s/requests-2.32.3-py3-none-any.whl" % wheel_sha,
         [("User-Agent", "pip/25.1.1 " + PIP_UA), ("Range", "bytes=0-")], b"", ""),
        ("pip wheel long name", "/packages/0e/aa/%s/kingfisher_secret_scanner-1.5.0-cp310-abi3-manylinux_2_28_x86_64.whl"
         % wheel_sha, [("User-Agent", "pip/25.1.1 " + PIP_UA)], b"", ""),
        ("git info/refs", "/owner/repo.git/info/refs?service=git-upload-pack",
         [("Git-Protocol", "version=2"), ("User-Agent", "git/2.47.2")], b"", ""),
        ("git upload-pack v0", "/owner/repo.git/git-upload-pack", [("User-Agent", "git/2.47.2")], upload_pack_v0,
         "application/x-git-upload-pack-request"),
        ("git upload-pack v2", "/owner/repo.git/git-upload-pack", [("Git-Protocol", "version=2")], upload_pack_v2,
         "application/x-git-upload-pack-request"),
    ]


def gzip_json(data):
    import gzip
    return gzip.compress(json.dumps(data).encode())
