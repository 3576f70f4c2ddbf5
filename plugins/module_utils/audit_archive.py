# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A bottle's audit kept after the bottle: archives under ``~/.bot-bottle/archive/``.

Teardown copies a bottle's audit out of its state directory before the directory goes, into
``<archive_root>/<slug>-<YYYYMMDDTHHMMSSZ>/`` (``-2``, ``-3`` ... when two land in the same second),
in the state directory's own layout so that one reader (``audit_log``) reads both:

  supervise/audit.jsonl         supervise's events (asks and decisions)
  supervise/proposals/<id>.json the proposals as last written
  audit/egress.jsonl[.N]        egress's firewall decisions, and every rotated file (.1 the newest)
  audit/bundle.jsonl            bottle-init's restarts of hung daemons (and a fail-closed stop)
  supervise-approved.json       what the operator approved for the bottle
  meta.json                     the bottle's meta.json (slug, agent, policy, backend, created) with
                                ``archived`` (UTC), ``host``, ``state_dir``, ``files`` and ``skipped``
                                (and ``work``: the summary lines of the agent's work, when kept)
  work/                         the agent's work, when kept (``agent_work``: per repository a
                                ``repo.bundle`` and ``worktree.patch``, ``loose.tar.gz``,
                                ``MANIFEST.json``, ``RESTORE.txt``)

The archive is private to the operator (folders 0700, files 0600), is written under a hidden
``.<name>.partial`` name and renamed when complete: a failed archive leaves no half archive behind.
The bundle's daemons own what they wrote (their uids) but the folders are setgid to the operator's
group (bottle-init), so the operator reads them; a file that cannot be read is an error naming it,
never silently left out. A symbolic link or other non-regular file (the daemons never make one) is
not followed: it is listed in ``skipped``.

API:
- ``DEFAULT_ROOT``: ``~/.bot-bottle/archive``.
- ``plan(state_dir)`` -> ``{files, skipped, unreadable}`` (paths relative to the state directory;
  ``unreadable`` as ``"<path> (<reason>)"``).
- ``archive_name(slug, now)`` / ``parse_name(name)`` -> ``(slug, stamp)`` or None.
- ``create(state_dir, archive_root, slug, host=None, now=None, dry_run=False, work=None)`` -> ``{path, files,
  skipped}`` (``path`` None when there is nothing to archive; ``work``: a folder holding ``work/``, made by
  ``agent_work``, moved into the archive); ``ArchiveError`` names what failed and the fix.
- ``list_archives(archive_root, slug=None, agent=None)`` -> ``[{slug, name, path, archived, meta}]``, newest first.
- ``prune(archive_root, keep_days=0, keep=0, now=None, dry_run=False, protect=(), pending=0)`` -> ``(removed, problems)``.
- ``read_json(path)``: the JSON object in a file, {} when there is none.
- ``retention_error(keep_days, keep)`` -> the message refusing a negative retention, or None.
- ``remove_state(state_dir, slug, archive_root=None, keep_days=0, keep=0, dry_run=False, warn=None, work=None)``: a bottle's
  state directory goes, its audit archived first (with ``archive_root``) and old archives pruned; returns
  ``{changed, path, changed_files[, archive: {path, files, skipped, pruned}]}``, raises ``ArchiveError`` with
  nothing removed. The one implementation of bottle_state ``state=absent`` and bottle_remove's last step.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import re
import shutil
import socket
import stat

from ansible_collections.botbottle.bottle.plugins.module_utils import audit_log, state_meta

DEFAULT_ROOT = "~/.bot-bottle/archive"

# The archive options of the modules that archive (bottle_state state=absent, bottle_remove); their
# retention is documented once, by the botbottle.bottle.audit_archive doc fragment.
ARCHIVE_SPEC = dict(
    archive_root=dict(type="path"),
    archive_keep_days=dict(type="int", default=0),
    archive_keep=dict(type="int", default=0),
)
META = state_meta.META
# A bottle's audit, relative to its state directory (and to its archive).
# egress's rotated files (audit/egress.jsonl.1, .2 ...) are found by audit_log.egress_files.
FILES = (
    os.path.join("supervise", "audit.jsonl"),
    os.path.join("audit", "bundle.jsonl"),
    "supervise-approved.json",
)
PROPOSALS = os.path.join("supervise", "proposals")
STAMP = "%Y%m%dT%H%M%SZ"
NAME_RE = re.compile(r"^(?P<slug>[a-z0-9][a-z0-9-]*?)-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<n>[2-9]|[1-9]\d+))?$")
_COPY_CHUNK = 1024 * 1024


class ArchiveError(Exception):
    pass


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _iso(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reason(exc):
    return exc.strerror or type(exc).__name__


def _probe(path):
    """None when ``path`` is a regular file this process can read; else ``("skipped"|"unreadable", why)``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "skipped", "a symbolic link, not followed"
        return "unreadable", _reason(exc)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "skipped", "not a regular file"
    finally:
        os.close(fd)
    return None


def plan(state_dir):
    """What archiving ``state_dir`` would copy: ``{files, skipped, unreadable}``, paths relative to it."""
    files, skipped, unreadable = [], [], []
    listed = FILES[:1] + tuple(audit_log.egress_files(state_dir)) + FILES[1:]
    candidates = [rel for rel in listed if os.path.lexists(os.path.join(state_dir, rel))]
    folder = os.path.join(state_dir, PROPOSALS)
    if os.path.lexists(folder):
        if os.path.islink(folder) or not os.path.isdir(folder):
            skipped.append("%s (not a folder)" % PROPOSALS)
        else:
            try:
                names = sorted(os.listdir(folder))
            except OSError as exc:
                unreadable.append("%s/ (%s)" % (PROPOSALS, _reason(exc)))
                names = []
            candidates.extend(os.path.join(PROPOSALS, n) for n in names if n.endswith(".json"))
    for rel in candidates:
        problem = _probe(os.path.join(state_dir, rel))
        if problem is None:
            files.append(rel)
        elif problem[0] == "skipped":
            skipped.append("%s (%s)" % (rel, problem[1]))
        else:
            unreadable.append("%s (%s)" % (rel, problem[1]))
    return {"files": files, "skipped": skipped, "unreadable": unreadable}


def archive_name(slug, now):
    return "%s-%s" % (slug, now.astimezone(datetime.timezone.utc).strftime(STAMP))


def parse_name(name):
    """``(slug, stamp datetime)`` of an archive folder name, or None when it is not one."""
    match = NAME_RE.match(name)
    if not match:
        return None
    try:
        stamp = datetime.datetime.strptime(match.group("stamp"), STAMP).replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return match.group("slug"), stamp


def read_json(path):
    """The JSON object in ``path``; {} when it cannot be read or is not an object."""
    return _read_json(path)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _copy(src, dest):
    fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(out, "wb") as target:
            shutil.copyfileobj(source, target, _COPY_CHUNK)
    os.utime(dest, ns=(info.st_atime_ns, info.st_mtime_ns))


def _free_name(archive_root, slug, now):
    base = archive_name(slug, now)
    name, n = base, 1
    while os.path.lexists(os.path.join(archive_root, name)) or \
            os.path.lexists(os.path.join(archive_root, "." + name + ".partial")):
        n += 1
        name = "%s-%d" % (base, n)
    return name


def _work_folder(work):
    """``<work>/work`` when the agent's work was kept there, else None."""
    folder = os.path.join(work, "work") if work else None
    return folder if folder and os.path.isdir(folder) and not os.path.islink(folder) else None


def create(state_dir, archive_root, slug, host=None, now=None, dry_run=False, work=None):
    """Archive the audit of the bottle at ``state_dir``; ``{path, files, skipped}``.

    ``path`` is None when the state directory holds no audit at all (nothing is written). With
    ``dry_run`` nothing is written and ``path`` is where the archive would go. Raises ``ArchiveError``
    (with nothing written) when a file cannot be read or the archive cannot be written.
    """
    now = now or _utcnow()
    archive_root = os.path.abspath(os.path.expanduser(archive_root))
    found = plan(state_dir)
    if found["unreadable"]:
        raise ArchiveError(
            "cannot read %s under %s, so its audit cannot be archived to %s (nothing was removed). Fix: give "
            "this user read access (the bundle makes these folders setgid to the state directory's group: "
            "chmod -R g+rX them as their owner, or run teardown as a user of that group), or tear down without "
            "an archive: -e bottle_archive=false" % (", ".join(found["unreadable"]), state_dir, archive_root))
    work_folder = _work_folder(work)
    if not found["files"] and not work_folder:
        return {"path": None, "files": [], "skipped": found["skipped"]}
    if os.path.lexists(archive_root) and not os.path.isdir(archive_root):
        raise ArchiveError("the archive root %s exists and is not a folder (nothing was removed). Fix: move it "
                           "away, or set bottle_archive_root to a folder" % archive_root)
    if dry_run:
        name = _free_name(archive_root, slug, now) if os.path.isdir(archive_root) else archive_name(slug, now)
        return {"path": os.path.join(archive_root, name), "files": found["files"], "skipped": found["skipped"]}
    meta = state_meta.read_meta(state_dir)
    meta.setdefault("slug", slug)
    meta.update({"archived": _iso(now), "host": host or socket.gethostname(), "state_dir": state_dir,
                 "files": found["files"], "skipped": found["skipped"]})
    if work_folder:
        meta["work"] = _read_json(os.path.join(work_folder, "MANIFEST.json")).get("lines", [])
    partial = None
    try:
        os.makedirs(archive_root, mode=0o700, exist_ok=True)
        name = _free_name(archive_root, slug, now)
        partial = os.path.join(archive_root, "." + name + ".partial")
        os.mkdir(partial, 0o700)
        for rel in found["files"]:
            dest = os.path.join(partial, rel)
            os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
            _copy(os.path.join(state_dir, rel), dest)
        if work_folder:
            os.rename(work_folder, os.path.join(partial, "work"))
        fd = os.open(os.path.join(partial, META), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        final = os.path.join(archive_root, name)
        os.rename(partial, final)
    except OSError as exc:
        if work_folder and partial and os.path.isdir(os.path.join(partial, "work")):
            os.rename(os.path.join(partial, "work"), work_folder)  # the work is never dropped with a half archive
        if partial and os.path.isdir(partial):
            shutil.rmtree(partial, ignore_errors=True)
        raise ArchiveError("cannot write the archive of bottle %s under %s: %s%s (nothing was removed). Fix: free "
                           "space or fix the folder's permissions, set bottle_archive_root to a writable folder, or "
                           "tear down without an archive: -e bottle_archive=false"
                           % (slug, archive_root, _reason(exc), " (%s)" % exc.filename if exc.filename else ""))
    return {"path": final, "files": found["files"], "skipped": found["skipped"]}


def list_archives(archive_root, slug=None, agent=None):
    """The archives under ``archive_root`` (folders named ``<slug>-<stamp>``), newest first."""
    root = os.path.abspath(os.path.expanduser(archive_root))
    try:
        names = os.listdir(root)
    except OSError:
        return []
    out = []
    for name in names:
        parsed = parse_name(name)
        path = os.path.join(root, name)
        if parsed is None or os.path.islink(path) or not os.path.isdir(path):
            continue
        if slug and parsed[0] != slug:
            continue
        meta = state_meta.read_meta(path)
        if agent and meta.get("agent") != agent:
            continue
        archived = _parse_iso(meta.get("archived")) or parsed[1]
        out.append({"slug": parsed[0], "name": name, "path": path, "archived": _iso(archived), "meta": meta,
                    "_when": archived})
    out.sort(key=lambda a: (a["_when"], a["name"]), reverse=True)
    for entry in out:
        del entry["_when"]
    return out


def _parse_iso(value):
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return parsed.replace(tzinfo=datetime.timezone.utc)


def prune(archive_root, keep_days=0, keep=0, now=None, dry_run=False, protect=(), pending=0):
    """Remove archives older than ``keep_days`` days and all but the newest ``keep`` (all bottles
    together); 0 (or None) leaves that limit off. ``protect``: paths never removed; ``pending``: archives
    about to be made (a dry run's), counted as the newest. Returns
    ``(removed paths, problems)``; a folder that cannot be removed is a problem, not an exception."""
    keep_days, keep = keep_days or 0, keep or 0
    if keep_days < 0 or keep < 0:
        raise ArchiveError("archive retention must be 0 (keep forever) or more, not keep_days=%s keep=%s"
                           % (keep_days, keep))
    if not keep_days and not keep:
        return [], []
    now = now or _utcnow()
    protect = {os.path.abspath(p) for p in protect if p}
    archives = list_archives(archive_root)
    doomed = []
    for index, entry in enumerate(archives):
        age = (now - _parse_iso(entry["archived"])).total_seconds()
        if (keep and index + pending >= keep) or (keep_days and age > keep_days * 86400):
            if entry["path"] not in protect:
                doomed.append(entry["path"])
    removed, problems = [], []
    for path in doomed:
        if dry_run:
            removed.append(path)
            continue
        try:
            shutil.rmtree(path)
            removed.append(path)
        except OSError as exc:
            problems.append("%s: %s" % (path, _reason(exc)))
    return removed, problems


def retention_error(keep_days, keep):
    """The message refusing a negative ``archive_keep_days`` / ``archive_keep``, or None."""
    for key, value, unit in (("archive_keep_days", keep_days, "days"), ("archive_keep", keep, "archives")):
        if value < 0:
            return ("%s: %s is negative; use 0 to keep archives forever (no limit), or a number of %s"
                    % (key, value, unit))
    return None


def archive_state(state_dir, archive_root, slug, keep_days=0, keep=0, dry_run=False, warn=None, work=None):
    """Archive the audit of ``state_dir`` (before it goes), then apply the retention:
    ``{path, files, skipped, pruned}``. ``warn(text)`` hears of an old archive that could not be pruned."""
    made = create(state_dir, archive_root, slug, dry_run=dry_run, work=work)
    pruned, problems = prune(archive_root, keep_days=keep_days, keep=keep, dry_run=dry_run, protect=[made["path"]],
                             pending=1 if dry_run and made["path"] else 0)
    for problem in problems:
        if warn:
            warn("could not prune the old audit archive %s" % problem)
    made["pruned"] = pruned
    return made


def remove_state(state_dir, slug, archive_root=None, keep_days=0, keep=0, dry_run=False, warn=None, work=None):
    """Remove the state directory ``state_dir`` of bottle ``slug``, with ``archive_root`` archiving its audit
    first (see ``archive_state``; no archive when the directory is gone already). With ``dry_run``, what would
    be done. Returns ``{changed, path, changed_files[, archive]}``; ``ArchiveError`` leaves everything in place."""
    exists = os.path.isdir(state_dir)
    out = dict(path=state_dir, changed_files=[state_dir] if exists else [])
    if archive_root:
        out["archive"] = (archive_state(state_dir, archive_root, slug, keep_days, keep, dry_run, warn, work)
                          if exists or _work_folder(work) else dict(path=None, files=[], skipped=[], pruned=[]))
    if exists and not dry_run:
        shutil.rmtree(state_dir)
    out["changed"] = exists or bool(out.get("archive", {}).get("pruned"))
    return out
