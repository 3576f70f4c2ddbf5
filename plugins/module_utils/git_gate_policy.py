# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A policy's ``git_gate``: validation, normalisation, and what the agent's git config says.

Pure Python, no Ansible. ``check()`` raises ``ValueError`` subclasses from the
caller (manifest.ManifestError) through the ``error`` argument so every message
names the dotted path of the offending key and the fix.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

REPO_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
SSH_URL_RE = re.compile(r"^ssh://(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])"
                        r"(?::(?P<port>[0-9]{1,5}))?/(?P<path>[A-Za-z0-9._~/-]+)$")
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
BRANCH_RE = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)(?!/)[A-Za-z0-9._/*-]{1,200}(?<!/)(?<!\.lock)$")
EMAIL_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
GATE_KEYS = {"user", "repos"}
USER_KEYS = {"name", "email"}
REPO_KEYS = {"url", "identity", "host_key", "protected_branches", "protected_tags", "allowed_fingerprints"}
TAG_RE = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)(?!/)[A-Za-z0-9._/*?+-]{1,200}(?<!/)$")
# Every existing tag is immutable unless the policy says otherwise (new tags may still be created):
# tags mark releases, and nothing an agent does needs to move or delete one.
DEFAULT_PROTECTED_TAGS = ["*"]
# An allowed finding: the engine's <kingfisher rule id>:<object id>, or gitleaks' own fingerprint
# <commit>:<file>:<rule>:<line>. Known secrets are never allowed.
ENGINE_FINGERPRINT_RE = re.compile(r"^(?P<rule>[A-Za-z0-9][A-Za-z0-9._-]{0,127}):[0-9a-f]{40}(?:[0-9a-f]{24})?$")
GITLEAKS_FINGERPRINT_RE = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?:[^\n]{1,1000}:[A-Za-z0-9._-]{1,128}:[0-9]{1,9}$")
GATE_PORT = 9418


def parse_url(url):
    """The parts of an ``ssh://`` URL as a dict, or None when it is not one."""
    match = SSH_URL_RE.match(url or "")
    if not match or ".." in match.group("path").split("/"):
        return None
    port = int(match.group("port") or 22)
    if not 0 < port < 65536:
        return None
    return {"user": match.group("user") or "", "host": match.group("host").lower(), "port": port,
            "path": match.group("path")}


def upstream_key(parts):
    """What makes two URLs the same upstream: host, port and path without a trailing .git or /."""
    path = parts["path"].rstrip("/")
    if path.endswith(".git"):
        path = path[:-4]
    return (parts["host"], parts["port"], path.lstrip("/"))


def parse_host_key(line):
    """``(keytype, base64)`` of a host key line (``[pattern] keytype base64 [comment]``), or None."""
    fields = (line or "").split()
    for index, field in enumerate(fields[:2]):
        if field in KEY_TYPES and len(fields) > index + 1:
            blob = fields[index + 1]
            try:
                raw = base64.b64decode(blob, validate=True)
            except (binascii.Error, ValueError):
                return None
            if len(raw) < 4:
                return None
            (length,) = struct.unpack(">I", raw[:4])
            if raw[4:4 + length].decode("ascii", "replace") != field:
                return None
            return field, blob
    return None


def known_hosts_pattern(parts):
    return parts["host"] if parts["port"] == 22 else "[%s]:%d" % (parts["host"], parts["port"])


def check(gate, path, error):
    """Validate a policy's ``git_gate`` mapping; ``error`` is the exception class to raise."""
    if not isinstance(gate, dict):
        raise error("%s must be a mapping with user and repos" % path)
    extra = sorted(set(gate) - GATE_KEYS)
    if extra:
        raise error("%s.%s is not a known key: use one of %s" % (path, extra[0], ", ".join(sorted(GATE_KEYS))))
    user = gate.get("user", {})
    if not isinstance(user, dict):
        raise error("%s.user must be a mapping {name, email}" % path)
    extra = sorted(set(user) - USER_KEYS)
    if extra:
        raise error("%s.user.%s is not a known key: use name and email" % (path, extra[0]))
    if "name" in user and (not isinstance(user["name"], str) or not user["name"].strip() or "\n" in user["name"]):
        raise error("%s.user.name must be a one-line name, e.g. 'Bottle Agent'" % path)
    if "email" in user and (not isinstance(user["email"], str) or not EMAIL_RE.match(user["email"])):
        raise error("%s.user.email %r is not an email address: write e.g. agent@example.com"
                    % (path, user.get("email")))
    repos = gate.get("repos", {})
    if not isinstance(repos, dict):
        raise error("%s.repos must be a mapping of repo name to {url, identity, host_key}" % path)
    seen = {}
    for name, repo in repos.items():
        rpath = "%s.repos.%s" % (path, name)
        if not isinstance(name, str) or not REPO_NAME_RE.match(name):
            raise error("%s: a repo name uses letters, digits, '-' and '_' (it becomes <name>.git on the gate)"
                        % rpath)
        if not isinstance(repo, dict):
            raise error("%s must be a mapping with url, identity and host_key" % rpath)
        extra = sorted(set(repo) - REPO_KEYS)
        if extra:
            raise error("%s.%s is not a known key: use one of %s" % (rpath, extra[0], ", ".join(sorted(REPO_KEYS))))
        for key in ("url", "identity", "host_key"):
            if not isinstance(repo.get(key), str) or not repo[key].strip():
                raise error("%s.%s is required (%s)" % (rpath, key, {
                    "url": "the upstream, ssh://user@host[:port]/path.git",
                    "identity": "the path of the SSH private key on the managed host",
                    "host_key": "the upstream's public host key line, e.g. from its /etc/ssh/ssh_host_ed25519_key.pub",
                }[key]))
        parts = parse_url(repo["url"])
        if parts is None:
            raise error("%s.url %r is not an ssh:// URL: write ssh://user@host[:port]/path.git (scp-style "
                        "user@host:path is rewritten for the agent automatically)" % (rpath, repo["url"]))
        if parse_host_key(repo["host_key"]) is None:
            raise error("%s.host_key is not a public host key line: write '<keytype> <base64>' (keytype one of %s), "
                        "as in the upstream's ssh_host_*_key.pub; it is pinned, never learnt on first use"
                        % (rpath, ", ".join(KEY_TYPES[:5])))
        if not repo["identity"].startswith(("/", "~")):
            raise error("%s.identity %r must be an absolute path on the managed host" % (rpath, repo["identity"]))
        branches = repo.get("protected_branches", [])
        if not isinstance(branches, list):
            raise error("%s.protected_branches must be a list of branch names" % rpath)
        for index, branch in enumerate(branches):
            if not isinstance(branch, str) or not BRANCH_RE.match(branch) or branch.startswith("refs/"):
                raise error("%s.protected_branches[%d] %r is not a branch name: write e.g. main or release/* "
                            "(no refs/heads/ prefix)" % (rpath, index, branch))
        tags = repo.get("protected_tags", DEFAULT_PROTECTED_TAGS)
        if not isinstance(tags, list):
            raise error("%s.protected_tags must be a list of tag name patterns, e.g. ['v*'] ([] protects none; "
                        "the default ['*'] makes every existing tag immutable)" % rpath)
        for index, tag in enumerate(tags):
            if not isinstance(tag, str) or not TAG_RE.match(tag) or tag.startswith("refs/"):
                raise error("%s.protected_tags[%d] %r is not a tag name pattern: write e.g. v* or release-* "
                            "(no refs/tags/ prefix)" % (rpath, index, tag))
        allowed = repo.get("allowed_fingerprints", [])
        if not isinstance(allowed, list):
            raise error("%s.allowed_fingerprints must be a list of finding fingerprints as git-gate prints them "
                        "(<rule>:<object id>)" % rpath)
        for index, entry in enumerate(allowed):
            epath = "%s.allowed_fingerprints[%d]" % (rpath, index)
            if not isinstance(entry, str):
                raise error("%s must be a string, e.g. kingfisher.aws.1:<40-hex object id>" % epath)
            match = ENGINE_FINGERPRINT_RE.match(entry)
            if match and match.group("rule") == "known-secret":
                raise error("%s: a known secret (secret_env or a route's credential) is never allowed out; remove "
                            "it from the pushed objects instead" % epath)
            if not match and not GITLEAKS_FINGERPRINT_RE.match(entry):
                raise error("%s %r is not a fingerprint: copy one from git-gate's refusal (<rule>:<object id>, "
                            "e.g. kingfisher.aws.1:%s) or gitleaks' (<commit>:<file>:<rule>:<line>)"
                            % (epath, entry[:80], "0" * 40))
        key = upstream_key(parts)
        if key in seen:
            raise error("%s.url is the same upstream as %s.url: declare each upstream once" % (rpath, seen[key]))
        seen[key] = rpath


def normalise(gate, bundle_host=None):
    """The gate as the role and the bundle use it (a dict), or None when no repo is declared."""
    if not gate or not gate.get("repos"):
        return None
    repos = []
    for name, repo in sorted(gate["repos"].items()):
        parts = parse_url(repo["url"])
        keytype, blob = parse_host_key(repo["host_key"])
        repos.append({
            "name": name,
            "url": repo["url"],
            "host": parts["host"],
            "port": parts["port"],
            "identity": repo["identity"],
            "known_hosts": "%s %s %s" % (known_hosts_pattern(parts), keytype, blob),
            "protected_branches": list(repo.get("protected_branches", [])),
            "protected_tags": list(repo.get("protected_tags", DEFAULT_PROTECTED_TAGS)),
            "allowed_fingerprints": list(repo.get("allowed_fingerprints", [])),
            "aliases": url_aliases(parts),
            # The identity reaches the bundle as one read-only file mount, for git-gate's uid alone.
            "mount": {"source": repo["identity"], "target": "/etc/bottle-identities/" + name, "read_only": True},
        })
    # What the bundle's git-gate reads (git-gate.json): upstreams and pinned keys, no identity path.
    bundle = {"repos": [{k: r[k] for k in ("name", "url", "known_hosts", "protected_branches", "protected_tags",
                                           "allowed_fingerprints")} for r in repos]}
    return {"user": dict(gate.get("user", {})), "repos": repos, "bundle_config": bundle}


def url_aliases(parts):
    """Every way the agent may spell the upstream: ssh:// (with and without user, .git), scp-style, https."""
    host, path = parts["host"], parts["path"].lstrip("/")
    bare = path[:-4] if path.endswith(".git") else path
    hostport = host if parts["port"] == 22 else "%s:%d" % (host, parts["port"])
    users = [parts["user"]] if parts["user"] else []
    users = users + ([""] if "" not in users else [])
    forms = []
    for suffix in (bare + ".git", bare):
        for user in users:
            at = user + "@" if user else ""
            forms.append("ssh://%s%s/%s" % (at, hostport, suffix))
            if parts["port"] == 22 and user:
                forms.append("%s@%s:%s" % (user, host, suffix))
        forms.append("https://%s/%s" % (host, suffix))
        forms.append("http://%s/%s" % (host, suffix))
        forms.append("git://%s/%s" % (host, suffix))
    seen, out = set(), []
    for form in forms:
        if form not in seen:
            seen.add(form)
            out.append(form)
    return out


def gitconfig(gate, bundle_host):
    """The agent's system git config (``/etc/gitconfig``): user and the rewrites to the gate."""
    lines = ["# Written by botbottle.bottle: every declared upstream goes through the bottle's git-gate."]
    user = gate.get("user") or {}
    if user:
        lines.append("[user]")
        for key in ("name", "email"):
            if user.get(key):
                lines.append("\t%s = %s" % (key, user[key]))
    for repo in gate["repos"]:
        lines.append('[url "git://%s:%d/%s.git"]' % (bundle_host, GATE_PORT, repo["name"]))
        for alias in repo["aliases"]:
            lines.append("\tinsteadOf = %s" % alias)
    lines.append("[credential]")
    lines.append("\thelper =")
    return "\n".join(lines) + "\n"
