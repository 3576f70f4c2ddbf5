# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An agent's work, found and kept before its container (or VM) goes.

The protocol (teardown, the rollback of a failed launch, a relaunch that recreates the agent, and
the playbook ``botbottle.bottle.snapshot`` all run it):

1. Copy the agent's home out of the agent to a private folder on the managed host: the engine's
   archive API for docker (``get_archive``, which reads a stopped or crashed container too), a
   ``tar`` run through the transport for smolvm. Caches (``.cache``, ``.npm``) are left out, and
   the copy stops with ``WorkError`` past ``SCAN_FACTOR`` times the cap (at least ``SCAN_FLOOR``). Only regular files,
   folders and symbolic links (kept as links, never followed) are written, and never through a
   link.
2. Neutralise every repository of the copy before git touches it: its ``.git/config`` is replaced by
   the harmless keys of ``SAFE_CONFIG`` (no filter, fsmonitor, hook path, pager, alternate, include:
   nothing the agent wrote can run on the host), its hooks and alternates are removed, and git runs
   with no system or global configuration.
3. For each repository under the home (a folder with a ``.git`` folder; a ``.git`` file, a linked
   worktree or submodule, is skipped and listed):
   - its unpushed commits: those of its branches, tags, stash entries (``refs/bottle/stash-<n>``)
     and a detached HEAD that no remote-tracking ref contains (the refs git-gate last reported);
   - with any work, a ``git bundle``: the whole repository (``complete``: ``git clone`` restores it
     with no upstream) when it fits, else only the unpushed refs (restored into a clone of the
     upstream);
   - its uncommitted changes and untracked files that are not ignored, as one binary patch against
     HEAD (``git apply --index`` restores them, all staged); ignored files are listed as skipped.
4. The other files of the work folder (``~/work``, outside any repository) go into
   ``loose.tar.gz``.
5. Everything kept counts against ``max_bytes``; a piece that would pass it is skipped and listed
   with why. ``MANIFEST.json`` says what was kept, and ``RESTORE.txt`` how to get it back.

The result (``snapshot_*``) is ``{repos, loose, skipped, bytes, max_bytes, lines}``: per repository
``{path, branch, head, unpushed_commits, unpushed_refs, stashes, changed_files, bundle, complete,
patch, skipped}``; ``lines`` are the one-line-per-repository summaries teardown prints.

API:
- ``DEFAULT_MAX_BYTES``, ``HOME``, ``WORK``.
- ``snapshot_container(container, dest, max_bytes, home=HOME)``: docker (running or stopped).
- ``snapshot_transport(transport, dest, max_bytes, home=HOME)``: any ``AgentTransport`` (smolvm).
- ``snapshot_tar(fileobj, dest, max_bytes, home=HOME)``: from a tar stream of the home's folder.
- ``relocate(folder)``: ``RESTORE.txt`` rewritten for the folder the snapshot's ``work/`` was moved into.
- ``WorkError``: the work could not be read; the message names the fix.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import re
import shutil
import subprocess
import tarfile
import tempfile

HOME = "/home/agent"
WORK = "work"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
# The copy of the home may be this many times the cap before the snapshot gives up (ignored files,
# build output and history take room the kept work does not).
SCAN_FACTOR = 8
SCAN_FLOOR = 1024 * 1024 * 1024
# Folders at the top of the home that hold caches only; never copied.
CACHES = (".cache", ".npm")
# The only keys of a repository's config kept in the host copy: none of them runs anything.
SAFE_CONFIG = ("core.repositoryformatversion", "core.bare", "core.filemode", "core.symlinks", "core.ignorecase",
               "core.logallrefupdates", "extensions.objectformat")
SAFE_PREFIXES = (("remote.", (".url", ".fetch")), ("branch.", (".remote", ".merge")))
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
SHOW_IGNORED = 20


class WorkError(Exception):
    pass


class _ChunkReader(io.RawIOBase):
    """A file over the engine's chunk iterator, for tarfile's stream mode."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self):
        return True

    def readinto(self, target):
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def _human(size):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024.0
    return "%d B" % size


# -- 1. the copy


def _inside(root, path):
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def extract_home(fileobj, dest, home_name, limit):
    """Extract the tar stream of the home folder ``home_name`` into ``dest`` (the home's own files
    under ``dest``). Returns the paths not copied, with why. Raises ``WorkError`` past ``limit`` bytes."""
    root = os.path.realpath(dest)
    skipped, total = [], 0
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r|")
    except tarfile.TarError as exc:
        raise WorkError("the agent's home is not a readable archive: %s" % exc)
    with tar:
        for member in tar:
            name = posixpath.normpath(member.name)
            parts = name.split("/")
            if parts[0] != home_name or ".." in parts or name.startswith("/"):
                continue
            rel = "/".join(parts[1:])
            if not rel or rel == ".":
                continue
            if parts[1] in CACHES:
                if len(parts) == 2:
                    skipped.append("%s (a cache, not copied)" % rel)
                continue
            target = os.path.join(root, rel)
            if not _inside(root, os.path.dirname(target)):
                skipped.append("%s (under a symbolic link, not followed)" % rel)
                continue
            if member.isdir():
                os.makedirs(target, mode=0o700, exist_ok=True)
            elif member.isfile():
                total += member.size
                if total > limit:
                    raise WorkError(
                        "the agent's home holds more than %s besides caches (%d times "
                        "bottle_archive_work_max_bytes, at least 1 GiB): nothing was removed. Fix: raise bottle_archive_work_max_bytes, "
                        "take the work out first (the playbook botbottle.bottle.snapshot, or git push from the agent), or discard "
                        "it explicitly with -e bottle_archive_work=false" % (_human(limit), SCAN_FACTOR))
                os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
                source = tar.extractfile(member)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0),
                             0o600 | (member.mode & 0o100))
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out, 1024 * 1024)
            elif member.issym():
                os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
                if os.path.lexists(target):
                    continue
                os.symlink(member.linkname, target)
            else:
                skipped.append("%s (not a regular file)" % rel)
    return skipped


# -- 2./3. the repositories


def _git_env(tmp):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, HOME=tmp, GIT_TERMINAL_PROMPT="0",
               LC_ALL="C", GIT_OPTIONAL_LOCKS="0")
    return env


class _Git:
    def __init__(self, repo, tmp):
        self.repo = repo
        self.env = _git_env(tmp)

    def __call__(self, *args, check=True, env=None, stdout=None):
        argv = ["git", "-c", "core.fsmonitor=false", "-c", "core.hooksPath=" + os.devnull,
                "-c", "protocol.allow=never", "-C", self.repo] + list(args)
        proc = subprocess.run(argv, env=dict(self.env, **(env or {})), stdout=stdout or subprocess.PIPE,
                              stderr=subprocess.PIPE, check=False)
        if check and proc.returncode != 0:
            raise WorkError("git %s in %s: %s" % (args[0], self.repo, proc.stderr.decode("utf-8", "replace").strip()))
        return proc

    def out(self, *args, check=True):
        proc = self(*args, check=check)
        return proc.stdout.decode("utf-8", "replace").strip() if proc.returncode == 0 else None


def _safe_key(key):
    if key in SAFE_CONFIG:
        return True
    return any(key.startswith(prefix) and key.endswith(suffixes) for prefix, suffixes in SAFE_PREFIXES)


def neutralise(gitdir, tmp):
    """Replace ``gitdir``'s config by its harmless keys, remove hooks and alternates."""
    config = os.path.join(gitdir, "config")
    kept = []
    if os.path.isfile(config) and not os.path.islink(config):
        proc = subprocess.run(["git", "config", "--file", config, "--null", "--list"], env=_git_env(tmp),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        for entry in proc.stdout.decode("utf-8", "replace").split("\0"):
            key, _sep, value = entry.partition("\n")
            if key and _safe_key(key.lower()):
                kept.append((key, value))
    if os.path.lexists(config):
        os.unlink(config)
    with open(config, "w", encoding="utf-8"):
        pass
    for key, value in kept:
        subprocess.run(["git", "config", "--file", config, "--add", key, value], env=_git_env(tmp),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    for rel in ("hooks", os.path.join("objects", "info", "alternates"),
                os.path.join("objects", "info", "http-alternates")):
        path = os.path.join(gitdir, rel)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)


def find_repos(home):
    """(repository folders relative to ``home``, skipped entries) - a ``.git`` that is a file is skipped."""
    repos, skipped = [], []
    for folder, dirs, files in os.walk(home):
        rel = os.path.relpath(folder, home)
        if ".git" in dirs:
            dirs.remove(".git")
            if os.path.isfile(os.path.join(folder, ".git", "HEAD")):
                repos.append("" if rel == "." else rel)
        if ".git" in files:
            skipped.append("%s (a .git file: a linked worktree or submodule, not followed; its main repository "
                           "is kept where it is under the home)" % ("~" if rel == "." else "~/" + rel))
        dirs.sort()
    return repos, skipped


class _Budget:
    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.used = 0

    def take(self, path):
        size = os.path.getsize(path)
        if self.used + size > self.max_bytes:
            os.unlink(path)
            return "over the cap: %s, %s left of bottle_archive_work_max_bytes=%d" % (
                _human(size), _human(self.max_bytes - self.used), self.max_bytes)
        self.used += size
        return None


def _repo_work(home, rel, out_root, budget, tmp):
    """Snapshot one repository into ``out_root/<rel or _home>/``."""
    path = os.path.join(home, rel) if rel else home
    label = "~/" + rel if rel else "~"
    git = _Git(path, tmp)
    entry = {"path": label, "branch": None, "head": None, "unpushed_commits": 0, "unpushed_refs": [],
             "stashes": 0, "changed_files": 0, "bundle": None, "complete": False, "patch": None, "skipped": []}
    neutralise(os.path.join(path, ".git"), tmp)
    head = git.out("rev-parse", "--verify", "-q", "HEAD", check=False)
    entry["head"] = head
    entry["branch"] = git.out("symbolic-ref", "-q", "--short", "HEAD", check=False)
    # Each stash entry under a ref of its own, so the bundle carries all of them, not only the newest.
    stashes = git.out("log", "-g", "--format=%H", "refs/stash", "--", check=False) if \
        git.out("rev-parse", "--verify", "-q", "refs/stash", check=False) else ""
    for index, sha in enumerate((stashes or "").split()):
        git("update-ref", "refs/bottle/stash-%d" % index, sha)
    entry["stashes"] = len((stashes or "").split())
    refs = (git.out("for-each-ref", "--format=%(refname)", "refs/heads", "refs/tags", "refs/bottle") or "").split()
    if head and not entry["branch"]:
        refs.append("HEAD")
    for ref in refs:
        count = int(git.out("rev-list", "--count", ref, "--not", "--remotes") or 0)
        if count:
            entry["unpushed_refs"].append(ref)
    if entry["unpushed_refs"]:
        entry["unpushed_commits"] = int(git.out("rev-list", "--count", *entry["unpushed_refs"], "--not", "--remotes")
                                        or 0)
    # Uncommitted and untracked (not ignored) as one binary patch, through a scratch index.
    index_copy = os.path.join(tmp, "index")
    if os.path.exists(os.path.join(path, ".git", "index")):
        shutil.copyfile(os.path.join(path, ".git", "index"), index_copy)
    elif os.path.exists(index_copy):
        os.unlink(index_copy)
    scratch = {"GIT_INDEX_FILE": index_copy}
    proc = git("add", "-A", "--", ".", env=scratch, check=False)
    if proc.returncode != 0:
        entry["skipped"].append("uncommitted changes (git add failed: %s)"
                                % proc.stderr.decode("utf-8", "replace").strip())
        names = ""
    else:
        names = git("diff", "--cached", "--name-only", "-z", head or EMPTY_TREE, env=scratch).stdout
    entry["changed_files"] = len([n for n in names.split(b"\0") if n]) if names else 0
    ignored = (git.out("ls-files", "--others", "--ignored", "--exclude-standard", "--directory", check=False)
               or "").splitlines()
    if ignored:
        shown = ", ".join(ignored[:SHOW_IGNORED]) + (" and %d more" % (len(ignored) - SHOW_IGNORED)
                                                     if len(ignored) > SHOW_IGNORED else "")
        entry["skipped"].append("ignored: %s" % shown)
    if not entry["unpushed_refs"] and not entry["changed_files"]:
        return entry
    folder = os.path.join(out_root, rel or "_home")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    if head or entry["unpushed_refs"]:
        bundle = os.path.join(folder, "repo.bundle")
        proc = git("bundle", "create", bundle, "--all", check=False)
        if proc.returncode == 0 and not budget.take(bundle) and os.path.exists(bundle):
            entry["bundle"], entry["complete"] = bundle, True
        elif entry["unpushed_refs"]:
            if os.path.exists(bundle):
                os.unlink(bundle)
            proc = git("bundle", "create", bundle, *entry["unpushed_refs"], "--not", "--remotes", check=False)
            why = proc.stderr.decode("utf-8", "replace").strip() if proc.returncode else budget.take(bundle)
            if why:
                entry["skipped"].append("the unpushed commits (%s)" % why)
            else:
                entry["bundle"] = bundle
    if entry["changed_files"]:
        patch = os.path.join(folder, "worktree.patch")
        with open(patch, "wb") as handle:
            git("diff", "--cached", "--binary", "--full-index", head or EMPTY_TREE, env=scratch, stdout=handle)
        why = budget.take(patch)
        if why:
            entry["skipped"].append("the uncommitted changes (%s)" % why)
        else:
            entry["patch"] = patch
    return entry


# -- 4. loose files


def _loose(home, repos, out_root, budget):
    work = os.path.join(home, WORK)
    loose = {"files": [], "tarball": None, "skipped": []}
    if not os.path.isdir(work) or os.path.islink(work):
        return loose
    repo_roots = {os.path.join(home, r) if r else home for r in repos}
    if home in repo_roots:
        return loose
    candidates = []
    for folder, dirs, files in os.walk(work):
        dirs[:] = sorted(d for d in dirs if os.path.join(folder, d) not in repo_roots)
        for name in sorted(files):
            candidates.append(os.path.join(folder, name))
    if not candidates:
        return loose
    tarball = os.path.join(out_root, "loose.tar.gz")
    kept = []
    with tarfile.open(tarball, "w:gz") as tar:
        for path in candidates:
            rel = os.path.relpath(path, home)
            size = os.lstat(path).st_size
            if budget.used + size > budget.max_bytes:
                loose["skipped"].append("~/%s (over the cap: %s)" % (rel, _human(size)))
                continue
            tar.add(path, arcname=rel, recursive=False)
            kept.append("~/" + rel)
    if not kept:
        os.unlink(tarball)
        return loose
    why = budget.take(tarball)
    if why:
        loose["skipped"].append("the loose files of ~/%s (%s)" % (WORK, why))
        return loose
    loose.update(files=kept, tarball=tarball)
    return loose


# -- 5. the summary


def _line(entry, where):
    parts = []
    if entry["unpushed_commits"]:
        parts.append("%d unpushed commit%s (%s)" % (
            entry["unpushed_commits"], "" if entry["unpushed_commits"] == 1 else "s",
            ", ".join(r.replace("refs/heads/", "").replace("refs/tags/", "tag ").replace("refs/bottle/", "")
                      for r in entry["unpushed_refs"])))
    if entry["changed_files"]:
        count = entry["changed_files"]
        parts.append("%d uncommitted or untracked file%s" % (count, "" if count == 1 else "s"))
    kept = [name for name, path in (("repo.bundle" + (" (complete)" if entry["complete"] else ""), entry["bundle"]),
                                    ("worktree.patch", entry["patch"])) if path]
    text = "%s: %s" % (entry["path"], "; ".join(parts) if parts else "nothing unpushed or uncommitted")
    if kept:
        text += " -> %s/%s" % (where, " + ".join(kept))
    if entry["skipped"]:
        text += " [skipped: %s]" % "; ".join(entry["skipped"])
    return text


def restore_commands(result, dest):
    """Shell commands that bring the kept work back under the current folder, pasted as they are."""
    lines = ["# The work of the agent kept in %s, brought back under the current folder." % dest,
             "# Each repository: its commits (repo.bundle), stash entries and uncommitted and untracked",
             "# changes (worktree.patch, applied staged). A bundle that is not complete holds only the",
             "# unpushed commits: run its commands in a clone of the repository's upstream instead.", ""]
    for entry in result.get("repos") or []:
        if not (entry["bundle"] or entry["patch"]):
            continue
        name = posixpath.basename(entry["path"]) if entry["path"] != "~" else "home"
        bundle = os.path.join(dest, entry["bundle"]) if entry["bundle"] else None
        patch = os.path.join(dest, entry["patch"]) if entry["patch"] else None
        lines.append("# %s" % entry["path"])
        if bundle and entry["complete"]:
            lines.append("git clone -q %s %s" % (_quote(bundle), _quote(name)))
        else:
            lines.append("git clone -q <the upstream of %s> %s" % (entry["path"], _quote(name)))
            if bundle:
                lines.append("git -C %s fetch -q --update-head-ok %s 'refs/heads/*:refs/heads/*' 'refs/tags/*:refs/tags/*'"
                             % (_quote(name), _quote(bundle)))
        if bundle and entry["stashes"]:
            lines.append("git -C %s fetch -q %s 'refs/bottle/*:refs/bottle/*'" % (_quote(name), _quote(bundle)))
            for index in reversed(range(entry["stashes"])):
                lines.append("git -C %s stash store -m 'kept by teardown' refs/bottle/stash-%d"
                             % (_quote(name), index))
        if entry["head"]:
            target = entry["branch"] or entry["head"]
            lines.append("git -C %s checkout -q -f %s" % (_quote(name), _quote(target)))
        if patch:
            lines.append("git -C %s apply --index %s" % (_quote(name), _quote(patch)))
        lines.append("")
    loose = result.get("loose") or {}
    if loose.get("tarball"):
        lines.append("# the loose files of ~/%s" % WORK)
        lines.append("mkdir -p loose && tar -xzf %s -C loose" % _quote(os.path.join(dest, loose["tarball"])))
    return "\n".join(lines) + "\n"


def _quote(text):
    return "'%s'" % text.replace("'", "'\\''") if re.search(r"[^A-Za-z0-9_./:@%+=-]", text) else text


def snapshot_tar(fileobj, dest, max_bytes, home=HOME):
    """The snapshot of a tar stream of the home folder (its entries named ``<basename of home>/...``)."""
    if max_bytes <= 0:
        raise WorkError("bottle_archive_work_max_bytes must be more than 0 (it is %s); discard the work explicitly "
                        "with -e bottle_archive_work=false instead" % max_bytes)
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, mode=0o700, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".work-scan-", dir=parent)
    try:
        copy = os.path.join(tmp, "home")
        os.mkdir(copy, 0o700)
        skipped = extract_home(fileobj, copy, posixpath.basename(home.rstrip("/")), max(max_bytes * SCAN_FACTOR, SCAN_FLOOR))
        repos, repo_skipped = find_repos(copy)
        skipped += repo_skipped
        if repos and shutil.which("git") is None:
            # Only a repository needs git; the loose files of an agent without one are kept all the same.
            raise WorkError("git is not installed on the managed host, so the agent's %d git repositor%s cannot be "
                            "read (nothing was removed). Fix: install git, or discard the work explicitly with "
                            "-e bottle_archive_work=false" % (len(repos), "y" if len(repos) == 1 else "ies"))
        os.makedirs(dest, mode=0o700, exist_ok=True)
        out_root = os.path.join(dest, "work")
        os.makedirs(out_root, mode=0o700, exist_ok=True)
        budget = _Budget(max_bytes)
        scratch = os.path.join(tmp, "git")
        os.mkdir(scratch, 0o700)
        entries = []
        for rel in repos:
            try:
                entries.append(_repo_work(copy, rel, out_root, budget, scratch))
            except WorkError as exc:
                entries.append({"path": "~/" + rel if rel else "~", "branch": None, "head": None,
                                "unpushed_commits": 0, "unpushed_refs": [], "stashes": 0, "changed_files": 0,
                                "bundle": None, "complete": False, "patch": None,
                                "skipped": ["the repository (%s)" % exc]})
        loose = _loose(copy, repos, out_root, budget)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for entry in entries:
        for key in ("bundle", "patch"):
            if entry[key]:
                entry[key] = os.path.relpath(entry[key], dest)
    if loose["tarball"]:
        loose["tarball"] = os.path.relpath(loose["tarball"], dest)
    kept = [e for e in entries if e["bundle"] or e["patch"]]
    if not kept and not loose["tarball"]:
        shutil.rmtree(out_root, ignore_errors=True)
    result = {"repos": entries, "loose": loose, "skipped": skipped, "bytes": budget.used, "max_bytes": max_bytes}
    result["lines"] = summary_lines(result, "work")
    if kept or loose["tarball"]:
        with open(os.path.join(out_root, "MANIFEST.json"), "w", encoding="utf-8") as handle:
            handle.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
        with open(os.path.join(out_root, "RESTORE.txt"), "w", encoding="utf-8") as handle:
            handle.write(restore_commands(result, dest))
    return result


def relocate(folder):
    """Rewrite ``<folder>/work/RESTORE.txt`` for where the work now lies (it was made in a staging folder and moved
    into an archive). Nothing happens without a ``MANIFEST.json`` there."""
    manifest = os.path.join(folder, "work", "MANIFEST.json")
    try:
        with open(manifest, encoding="utf-8") as handle:
            result = json.load(handle)
    except (OSError, ValueError):
        return
    with open(os.path.join(folder, "work", "RESTORE.txt"), "w", encoding="utf-8") as handle:
        handle.write(restore_commands(result, folder))


def summary_lines(result, where):
    lines = [_line(entry, "%s/%s" % (where, entry["path"][2:] or "_home")) for entry in result["repos"]]
    loose = result["loose"]
    if loose["tarball"]:
        lines.append("~/%s: %d loose file%s -> %s/loose.tar.gz%s" % (
            WORK, len(loose["files"]), "" if len(loose["files"]) == 1 else "s", where,
            " [skipped: %s]" % "; ".join(loose["skipped"]) if loose["skipped"] else ""))
    elif loose["skipped"]:
        lines.append("~/%s: loose files not kept [skipped: %s]" % (WORK, "; ".join(loose["skipped"])))
    return lines


def snapshot_container(container, dest, max_bytes, home=HOME):
    """Snapshot the agent container ``container`` (running, stopped or crashed) into ``dest``."""
    try:
        chunks, _stat = container.get_archive(home)
    except Exception as exc:  # docker.errors.NotFound / APIError
        if getattr(getattr(exc, "response", None), "status_code", None) == 404 or type(exc).__name__ == "NotFound":
            return snapshot_tar(io.BytesIO(_empty_tar(home)), dest, max_bytes, home)
        raise WorkError("cannot read the agent's home %s from container %s: %s" % (home, container.name, exc))
    return snapshot_tar(io.BufferedReader(_ChunkReader(chunks), 1024 * 1024), dest, max_bytes, home)


def snapshot_transport(transport, dest, max_bytes, home=HOME):
    """Snapshot the agent behind ``transport`` (smolvm: ``tar`` of the home run in the guest)."""
    parent, name = posixpath.split(home.rstrip("/"))
    rc, out, err = transport.run(["tar", "-C", parent or "/", "-cf", "-", "--exclude", "./%s/.cache" % name,
                                  name], user="root")
    if rc != 0:
        raise WorkError("cannot read the agent's home %s: tar exited %d: %s"
                        % (home, rc, err.decode("utf-8", "replace").strip()))
    return snapshot_tar(io.BytesIO(out), dest, max_bytes, home)


def _empty_tar(home):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w"):
        pass
    return buf.getvalue()
