# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How modules reach into a running agent, whatever the backend.

``AgentTransport`` is the interface every backend implements:

- ``run(argv, user=None, data=None) -> (rc, stdout bytes, stderr bytes)``;
  ``data`` (bytes) is fed to the command's stdin, never put on argv;
- ``read_file(path) -> bytes | None`` (None: no such file);
- ``write_file(path, content, mode=0o644, owner=None)``: parents created,
  owned by ``owner`` (``user[:group]``) or root;
- ``stat(path) -> {"mode", "uid", "gid"} | None``;
- ``read_file_info(path) -> (bytes | None, stat | None)``: both at once
  (one engine call for docker).

``DockerTransport(client, container_name)`` implements it over ``exec`` and the
archive API: the engine reads and writes files itself, so the agent's
dropped capabilities (root cannot enter the agent user's 0700 home) do not
matter. ``SmolvmTransport`` (``smolvm_transport.py``) implements it over
``smolvm machine exec``/``cp``. ``get_transport(module, kind, target)`` picks
one.
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
        """Run ``argv`` as ``user`` (default: the image's user); return (rc, stdout bytes, stderr bytes)."""
        raise NotImplementedError

    def read_file(self, path):
        """The bytes of ``path``, or None when it does not exist."""
        rc, out, _err = self.run(["cat", "--", path], user="root")
        return out if rc == 0 else None

    def write_file(self, path, content, mode=0o644, owner=None):
        """Write ``content`` to ``path`` (parents created), owned by ``owner`` (user[:group]) or root."""
        raise NotImplementedError

    def stat(self, path):
        """``{"mode": int, "uid": int, "gid": int}`` of ``path``, or None when it does not exist."""
        rc, out, _err = self.run(["stat", "-c", "%a %u %g", "--", path], user="root")
        if rc != 0:
            return None
        mode, uid, gid = out.split()
        return {"mode": int(mode, 8), "uid": int(uid), "gid": int(gid)}

    def read_file_info(self, path):
        """(content, stat) of ``path``; (None, None) when it does not exist."""
        content = self.read_file(path)
        return content, (self.stat(path) if content is not None else None)

    def ids(self, owner):
        """Numeric (uid, gid) of ``owner`` (``user[:group]``, names or numbers); (0, 0) for None."""
        if not owner:
            return 0, 0
        cache = self.__dict__.setdefault("_id_cache", {})
        if owner not in cache:
            cache[owner] = self._lookup_ids(owner)
        return cache[owner]

    def _lookup_ids(self, owner):
        user, _sep, group = str(owner).partition(":")
        uid = int(user) if user.isdigit() else self._id_of(["id", "-u", user], "user", user)
        if group:
            gid = int(group) if group.isdigit() else self._id_of(["getent", "group", group], "group", group)
        elif user.isdigit():
            gid = uid
        else:
            gid = self._id_of(["id", "-g", user], "user", user)
        return uid, gid

    def _id_of(self, argv, what, name):
        rc, out, err = self.run(argv, user="root")
        field = out.strip().split(b":")[2] if argv[0] == "getent" and out.count(b":") >= 2 else out.strip()
        if rc != 0 or not field.isdigit():
            raise TransportError("no %s %s in the agent: %s" % (what, name, err.decode("utf-8", "replace").strip()))
        return int(field)

    def ensure_dir(self, path, owner=None, mode=0o755):
        """Create ``path`` and its parents as ``owner``'s user (root when None)."""
        user = owner.partition(":")[0] if owner else "root"
        rc, _out, err = self.run(["mkdir", "-p", "-m", "%o" % mode, "--", path], user=user)
        if rc != 0:
            raise TransportError("cannot create %s: %s" % (path, err.decode("utf-8", "replace").strip()))


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

    def _put(self, path, content, mode, uid, gid):
        if isinstance(content, str):
            content = content.encode("utf-8")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(posixpath.basename(path))
            info.size = len(content)
            info.mode = mode
            info.uid, info.gid = uid, gid
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(content))
        try:
            ok = self.container.put_archive(posixpath.dirname(path) or "/", buf.getvalue())
        except Exception as exc:
            raise TransportError("could not write %s into %s: %s" % (path, self.name, exc))
        if not ok:
            raise TransportError("could not write %s into %s" % (path, self.name))

    def write_file(self, path, content, mode=0o644, owner=None):
        uid, gid = self.ids(owner)
        self.ensure_dir(posixpath.dirname(path), owner=owner)
        self._put(path, content, mode, uid, gid)


TRANSPORTS = ("docker", "smolvm")


def get_transport(module, kind, target, client=None):
    """The transport of ``kind`` (``docker`` or ``smolvm``) to the running agent ``target``.

    docker: ``module`` carries the docker connection options (``DOCKER_COMMON_ARGS``).
    smolvm: ``module`` may carry ``smolvm_path`` and ``smolvm_state_dir``.
    """
    if kind == "docker":
        if client is None:
            from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import get_docker_client
            client = get_docker_client(module)
        return DockerTransport(client, target)
    if kind == "smolvm":
        # Imported here: the smolvm pieces are only needed by the smolmachines backend.
        from ansible_collections.botbottle.bottle.plugins.module_utils import smolvm
        from ansible_collections.botbottle.bottle.plugins.module_utils.smolvm_transport import SmolvmTransport
        params = module.params
        try:
            binary = smolvm.find_smolvm(params.get("smolvm_path"), which=module.get_bin_path)
        except smolvm.SmolvmError as exc:
            raise TransportError(str(exc))
        cli = smolvm.SmolvmCLI(smolvm.module_runner(module), binary, state_dir=params.get("smolvm_state_dir"))
        return SmolvmTransport(cli, target)
    raise TransportError("unknown transport %r: use one of %s" % (kind, ", ".join(TRANSPORTS)))
