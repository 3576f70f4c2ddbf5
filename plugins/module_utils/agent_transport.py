# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How modules reach into a running agent, whatever the backend: the interface alone.

``AgentTransport`` is the interface every backend implements:

- ``run(argv, user=None, data=None) -> (rc, stdout bytes, stderr bytes)``;
  ``data`` (bytes) is fed to the command's stdin, never put on argv;
- ``read_file(path) -> bytes | None`` (None: no such file);
- ``write_file(path, content, mode=0o644, owner=None)``: parents created,
  owned by ``owner`` (``user[:group]``) or root;
- ``write_files(entries)``: each ``(path, content, mode, owner)`` as ``write_file``
  writes it; a backend may do it in fewer round trips (docker: one mkdir per owner,
  one archive);
- ``stat(path) -> {"mode", "uid", "gid"} | None``;
- ``read_file_info(path) -> (bytes | None, stat | None)``: both at once
  (one engine call for docker);
- ``read_files_info(paths) -> [(bytes | None, stat | None), ...]``: each path's, in order; a
  backend may read them concurrently (docker does).

It also gives ``ids(owner)`` (numeric uid/gid, cached),
``ensure_dir(path, owner, mode)`` and ``ensure_dirs(paths, owner, mode)`` (one
command for all) on top of ``run``. ``TransportError`` is what
every backend raises.

The backends, each in its own file: ``DockerTransport`` (``docker_transport.py``)
and ``SmolvmTransport`` (``smolvm_transport.py``). ``get_transport(module, kind,
target)`` (``transport_factory.py``) picks one. This file imports neither, so
the backends import it without a circle.
"""

from __future__ import annotations


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

    def write_files(self, entries):
        """Write each ``(path, content, mode, owner)`` of ``entries`` as ``write_file`` does."""
        for path, content, mode, owner in entries:
            self.write_file(path, content, mode=mode, owner=owner)

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

    def read_files_info(self, paths):
        """``read_file_info`` of each of ``paths``, in order."""
        return [self.read_file_info(path) for path in paths]

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
        self.ensure_dirs([path], owner=owner, mode=mode)

    def ensure_dirs(self, paths, owner=None, mode=0o755):
        """Create every one of ``paths`` and their parents as ``owner``'s user (root when None), in one command."""
        user = owner.partition(":")[0] if owner else "root"
        rc, _out, err = self.run(["mkdir", "-p", "-m", "%o" % mode, "--"] + list(paths), user=user)
        if rc != 0:
            raise TransportError("cannot create %s: %s" % (", ".join(paths), err.decode("utf-8", "replace").strip()))
