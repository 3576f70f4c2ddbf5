# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How modules reach into a running agent, whatever the backend.

``AgentTransport`` is the interface: ``run``, ``read_file``, ``write_file``.
``DockerTransport`` implements it over ``docker exec`` and the archive API;
a smolvm transport implements it over ``smolvm machine exec``/``cp``.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import time


class TransportError(Exception):
    pass


class AgentTransport:
    """Run commands and move files in an agent. Paths are absolute, inside the agent."""

    def run(self, argv, user=None, data=None):
        """Run ``argv``; return (rc, stdout bytes, stderr bytes)."""
        raise NotImplementedError

    def read_file(self, path, user=None):
        """The bytes of ``path`` as ``user`` (default root) reads it, or None when it does not exist.

        Agents run without capabilities, so root cannot look into the agent user's 0700 home:
        read a user's files as that user."""
        rc, out, _err = self.run(["cat", "--", path], user=user or "root")
        return out if rc == 0 else None

    def write_file(self, path, content, mode=0o644, owner=None):
        """Write ``content`` to ``path`` (parents created), owned by ``owner`` (user[:group]) or root."""
        raise NotImplementedError

    def ensure_dir(self, path, owner=None, mode=0o755):
        """Create ``path`` and its parents as ``owner``'s user (root when None)."""
        user = owner.partition(":")[0] if owner else "root"
        rc, _out, err = self.run(["mkdir", "-p", "-m", "%o" % mode, "--", path], user=user)
        if rc != 0:
            raise TransportError("cannot create %s: %s" % (path, err.decode("utf-8", "replace").strip()))


class DockerTransport(AgentTransport):
    def __init__(self, client, container_name):
        self.client = client
        self.name = container_name
        self._id_cache = {}
        try:
            self.container = client.containers.get(container_name)
        except Exception as exc:  # docker.errors.NotFound and friends
            raise TransportError("agent container %s not found: %s" % (container_name, exc))
        if self.container.status != "running":
            raise TransportError("agent container %s is %s, not running" % (container_name, self.container.status))

    def run(self, argv, user=None, data=None):
        if data is not None:
            # exec has no stdin in the SDK's simple API: stage the data as a file first.
            staging = "/tmp/.bottle-stdin-%d" % int(time.time() * 1000000)
            self._put(staging, data, 0o600, 0, 0)
            argv = ["sh", "-c", 'exec "$@" < "$0"; ', staging] + list(argv)
        result = self.container.exec_run(argv, user=user or "", demux=True)
        out, err = result.output if isinstance(result.output, tuple) else (result.output, b"")
        if data is not None:
            self.container.exec_run(["rm", "-f", staging], user="root")
        return result.exit_code, out or b"", err or b""

    def _put(self, path, content, mode, uid, gid):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(posixpath.basename(path))
            info.size = len(content)
            info.mode = mode
            info.uid, info.gid = uid, gid
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(content))
        if not self.container.put_archive(posixpath.dirname(path) or "/", buf.getvalue()):
            raise TransportError("could not write %s into %s" % (path, self.name))

    def _ids(self, owner):
        if not owner:
            return 0, 0
        if owner in self._id_cache:
            return self._id_cache[owner]
        self._id_cache[owner] = self._lookup_ids(owner)
        return self._id_cache[owner]

    def _lookup_ids(self, owner):
        user, _sep, group = owner.partition(":")
        rc, out, err = self.run(["id", "-u", user], user="root")
        if rc != 0:
            raise TransportError("no user %s in %s: %s" % (user, self.name, err.decode("utf-8", "replace").strip()))
        uid = int(out.strip())
        rc, out, _err = self.run(["id", "-g", group or user] if not group else ["getent", "group", group], user="root")
        gid = int(out.split(b":")[2]) if group else int(out.strip())
        return uid, gid

    def write_file(self, path, content, mode=0o644, owner=None):
        uid, gid = self._ids(owner)
        self.ensure_dir(posixpath.dirname(path), owner=owner)
        self._put(path, content, mode, uid, gid)


def get_transport(module, kind, target, client=None):
    """The transport for ``kind`` (now 'docker') to agent ``target``."""
    if kind == "docker":
        if client is None:
            from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import get_docker_client
            client = get_docker_client(module)
        return DockerTransport(client, target)
    raise TransportError("unknown transport %r: use docker" % kind)
