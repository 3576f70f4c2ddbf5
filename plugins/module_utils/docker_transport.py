# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``AgentTransport`` over the Docker engine's ``exec`` and archive API.

``DockerTransport(client, container_name)`` takes a ``docker.DockerClient`` and a
running agent container's name. The engine reads and writes files itself, so the
agent's dropped capabilities (root cannot enter the agent user's 0700 home) do not
matter. Input for ``run(..., data=...)`` is staged as a root-only file and fed to
the command's stdin.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.botbottle.bottle.plugins.module_utils.agent_transport import AgentTransport, TransportError


def _not_found(exc):
    return getattr(getattr(exc, "response", None), "status_code", None) == 404 \
        or type(exc).__name__ == "NotFound"


class DockerTransport(AgentTransport):
    """An agent container, through the engine's exec and archive API."""

    def __init__(self, client, container_name):
        self.client = client
        self.name = container_name
        try:
            self.container = client.containers.get(container_name)
        except Exception as exc:  # docker.errors.NotFound and friends
            raise TransportError("agent container %s not found: %s" % (container_name, exc))
        if self.container.status != "running":
            raise TransportError("agent container %s is %s, not running: launch the bottle first"
                                 % (container_name, self.container.status))

    def run(self, argv, user=None, data=None):
        staging = None
        if data is not None:
            # The SDK's exec has no simple stdin: stage the data as a root-only file first.
            staging = "/tmp/.bottle-stdin-%d" % int(time.time() * 1000000)
            self._put(staging, data, 0o600, 0, 0)
            argv = ["sh", "-c", 'exec "$@" < "$0"', staging] + list(argv)
        try:
            result = self.container.exec_run(list(argv), user=user or "", demux=True)
        finally:
            if staging:
                self.container.exec_run(["rm", "-f", staging], user="root")
        out, err = result.output if isinstance(result.output, tuple) else (result.output, b"")
        return result.exit_code, out or b"", err or b""

    def _member(self, path):
        """(TarInfo, bytes or None) of ``path`` from the engine, or (None, None) when absent."""
        try:
            chunks, _stat = self.container.get_archive(path)
            buf = io.BytesIO(b"".join(chunks))
        except Exception as exc:
            if _not_found(exc):
                return None, None
            raise TransportError("cannot read %s from %s: %s" % (path, self.name, exc))
        with tarfile.open(fileobj=buf, mode="r") as tar:
            members = tar.getmembers()
            if not members:
                return None, None
            info = members[0]
            handle = tar.extractfile(info) if info.isfile() else None
            return info, handle.read() if handle else None

    def read_file(self, path):
        # A directory or a symlink in place of the file reads as "not the expected content":
        # write_file then replaces it with a regular file.
        info, content = self._member(path)
        if info is None or not info.isfile():
            return None
        return content

    def stat(self, path):
        info, _content = self._member(path)
        if info is None:
            return None
        return {"mode": info.mode & 0o7777, "uid": info.uid, "gid": info.gid}

    def read_file_info(self, path):
        info, content = self._member(path)
        if info is None or not info.isfile():
            return None, None
        return content, {"mode": info.mode & 0o7777, "uid": info.uid, "gid": info.gid}

    def read_files_info(self, paths):
        """Each path's (content, stat), read concurrently (one archive call each; the engine answers them
        side by side)."""
        paths = list(paths)
        if len(paths) < 2:
            return [self.read_file_info(path) for path in paths]
        with ThreadPoolExecutor(max_workers=min(8, len(paths))) as pool:
            return list(pool.map(self.read_file_info, paths))

    def _account_files(self):
        """{name: (uid, gid)} from /etc/passwd and {name: gid} from /etc/group, read through the engine."""
        if "_accounts" not in self.__dict__:
            users, groups = {}, {}
            (passwd, _s), (group, _t) = self.read_files_info(["/etc/passwd", "/etc/group"])
            for line in (passwd or b"").decode("utf-8", "replace").splitlines():
                fields = line.split(":")
                if len(fields) >= 4 and fields[2].isdigit() and fields[3].isdigit():
                    users.setdefault(fields[0], (int(fields[2]), int(fields[3])))
            for line in (group or b"").decode("utf-8", "replace").splitlines():
                fields = line.split(":")
                if len(fields) >= 3 and fields[2].isdigit():
                    groups.setdefault(fields[0], int(fields[2]))
            self._accounts = users, groups
        return self._accounts

    def _lookup_ids(self, owner):
        """From the agent's /etc/passwd and /etc/group (no process started in the agent); a name not
        found there (another name service) is asked of ``id``/``getent`` as the base class does."""
        users, groups = self._account_files()
        user, _sep, group = str(owner).partition(":")
        if user.isdigit():
            uid, primary = int(user), int(user)
        elif user in users:
            uid, primary = users[user]
        else:
            return AgentTransport._lookup_ids(self, owner)
        if not group:
            return uid, primary
        if group.isdigit():
            return uid, int(group)
        if group in groups:
            return uid, groups[group]
        return AgentTransport._lookup_ids(self, owner)

    def _put(self, path, content, mode, uid, gid):
        self._put_archive(posixpath.dirname(path) or "/", [(posixpath.basename(path), content, mode, uid, gid)], path)

    def _put_archive(self, where, members, what):
        """Extract ``members`` (name relative to ``where``, content, mode, uid, gid) in one archive."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, content, mode, uid, gid in members:
                if isinstance(content, str):
                    content = content.encode("utf-8")
                info = tarfile.TarInfo(name)
                info.size = len(content)
                info.mode = mode
                info.uid, info.gid = uid, gid
                info.mtime = int(time.time())
                tar.addfile(info, io.BytesIO(content))
        try:
            ok = self.container.put_archive(where, buf.getvalue())
        except Exception as exc:
            raise TransportError("could not write %s into %s: %s" % (what, self.name, exc))
        if not ok:
            raise TransportError("could not write %s into %s" % (what, self.name))

    def write_file(self, path, content, mode=0o644, owner=None):
        uid, gid = self.ids(owner)
        self.ensure_dir(posixpath.dirname(path), owner=owner)
        self._put(path, content, mode, uid, gid)

    def write_files(self, entries):
        """One ``mkdir`` per owner for the parents, then every file in one archive extracted at ``/``
        (the engine writes, owners and modes from the archive)."""
        entries = list(entries)
        if not entries:
            return
        parents = {}
        for path, _content, _mode, owner in entries:
            folders = parents.setdefault(owner, [])
            if posixpath.dirname(path) not in folders:
                folders.append(posixpath.dirname(path))
        for owner, folders in parents.items():
            self.ensure_dirs(folders, owner=owner)
        members = [(path.lstrip("/"), content, mode) + self.ids(owner) for path, content, mode, owner in entries]
        self._put_archive("/", members, ", ".join(path for path, _c, _m, _o in entries))
