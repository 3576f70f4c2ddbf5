# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An in-memory agent container speaking the docker SDK calls DockerTransport uses.

It keeps a small file system with modes and owners, answers ``exec_run`` for the
commands the transport and bottle_provision run (mkdir, id, getent, cat, stat, rm,
sh -c stdin staging, update-ca-certificates), and the archive API
(``put_archive`` / ``get_archive``) with tar streams as the engine sends them.
Like the real agent, root has no capabilities: it cannot enter a 0700 directory
it does not own.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from types import SimpleNamespace

USERS = {"root": (0, 0), "agent": (1000, 1000)}
GROUPS = {"root": 0, "agent": 1000}


class NotFoundError(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.response = SimpleNamespace(status_code=404)


class FakeContainer:
    def __init__(self, name="bb-demo-agent", status="running"):
        self.name, self.status = name, status
        self.fs = {}
        self.execs = []
        self.fail_update_ca = False
        for path, uid, mode in (("/", 0, 0o755), ("/tmp", 0, 0o1777), ("/home", 0, 0o755),
                                ("/home/agent", 1000, 0o700), ("/usr", 0, 0o755), ("/usr/local", 0, 0o755),
                                ("/usr/local/share", 0, 0o755), ("/usr/local/share/ca-certificates", 0, 0o755),
                                ("/etc", 0, 0o755), ("/etc/ssl", 0, 0o755), ("/etc/ssl/certs", 0, 0o755)):
            self.fs[path] = {"type": "dir", "mode": mode, "uid": uid, "gid": uid}

    # -- helpers

    def _can_enter(self, path, uid):
        parts = [p for p in path.split("/") if p]
        current = "/"
        for part in parts[:-1]:
            current = posixpath.join(current, part)
            node = self.fs.get(current)
            if node is None:
                return True
            if node["type"] == "dir" and node["uid"] != uid and not node["mode"] & 0o001:
                return False
        return True

    def _mkdir(self, path, uid, mode):
        current = "/"
        for part in [p for p in path.split("/") if p]:
            current = posixpath.join(current, part)
            node = self.fs.get(current)
            if node is None:
                parent = self.fs[posixpath.dirname(current)]
                if parent["uid"] != uid or not self._can_enter(current, uid):
                    return 1, b"", ("mkdir: cannot create directory '%s': Permission denied" % current).encode()
                self.fs[current] = {"type": "dir", "mode": mode, "uid": uid, "gid": uid}
            elif node["type"] != "dir":
                return 1, b"", b"mkdir: File exists"
        return 0, b"", b""

    def _exec(self, argv, uid):
        if argv[:2] == ["sh", "-c"]:
            staging, rest = argv[3], argv[4:]
            rc, out, err = self._exec(rest, uid)
            return rc, out + b"<stdin:" + self.fs[staging]["content"] + b">", err
        cmd = argv[0]
        if cmd == "mkdir":
            for path in argv[argv.index("--") + 1:]:
                rc, out, err = self._mkdir(path, uid, int(argv[3], 8))
                if rc:
                    return rc, out, err
            return 0, b"", b""
        if cmd == "id":
            if argv[2] not in USERS:
                return 1, b"", ("id: '%s': no such user" % argv[2]).encode()
            return 0, b"%d\n" % USERS[argv[2]][0 if argv[1] == "-u" else 1], b""
        if cmd == "getent":
            if argv[2] not in GROUPS:
                return 2, b"", b""
            return 0, ("%s:x:%d:\n" % (argv[2], GROUPS[argv[2]])).encode(), b""
        if cmd in ("cat", "stat"):
            node = self.fs.get(argv[-1])
            if node is None or not self._can_enter(argv[-1], uid):
                return 1, b"", b"No such file or Permission denied"
            if cmd == "cat":
                return 0, node.get("content", b""), b""
            return 0, b"%o %d %d\n" % (node["mode"], node["uid"], node["gid"]), b""
        if cmd == "rm":
            self.fs.pop(argv[-1], None)
            return 0, b"", b""
        if cmd == "update-ca-certificates":
            if self.fail_update_ca:
                return 1, b"", b"update-ca-certificates: command not found"
            self.fs["/etc/ssl/certs/bottle-ca.pem"] = {"type": "link", "mode": 0o777, "uid": 0, "gid": 0,
                                                       "target": "/usr/local/share/ca-certificates/bottle-ca.crt"}
            return 0, b"1 added, 0 removed; done.\n", b""
        return 127, b"", ("%s: not found" % cmd).encode()

    # -- the SDK surface

    def exec_run(self, argv, user="", demux=False):
        self.execs.append((list(argv), user))
        uid = USERS.get(user or "root", (0, 0))[0]
        rc, out, err = self._exec(list(argv), uid)
        return SimpleNamespace(exit_code=rc, output=(out or None, err or None) if demux else out + err)

    def put_archive(self, path, data):
        # The engine itself extracts: no permission checks, owners and modes from the tar headers.
        if self.fs.get(path, {}).get("type") != "dir":
            raise NotFoundError("Could not find the file %s in container %s" % (path, self.name))
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for info in tar.getmembers():
                self.fs[posixpath.join(path, info.name)] = {
                    "type": "file", "mode": info.mode, "uid": info.uid, "gid": info.gid,
                    "content": tar.extractfile(info).read()}
        return True

    def get_archive(self, path):
        node = self.fs.get(path)
        if node is None:
            raise NotFoundError("Could not find the file %s in container %s" % (path, self.name))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(posixpath.basename(path))
            info.mode, info.uid, info.gid = node["mode"], node["uid"], node["gid"]
            if node["type"] == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif node["type"] == "link":
                info.type, info.linkname = tarfile.SYMTYPE, node["target"]
                tar.addfile(info)
            else:
                info.size = len(node["content"])
                tar.addfile(info, io.BytesIO(node["content"]))
        data = buf.getvalue()
        # The SDK yields the stream in chunks.
        return iter([data[:100], data[100:]]), {"name": posixpath.basename(path)}


class FakeClient:
    def __init__(self, *containers):
        self.containers = self
        self._by_name = {c.name: c for c in containers}

    def get(self, name):
        if name not in self._by_name:
            raise NotFoundError("No such container: %s" % name)
        return self._by_name[name]
