# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``AgentTransport`` over ``smolvm machine exec`` and ``smolvm machine cp``.

``SmolvmTransport(cli, name)`` takes a ``smolvm.SmolvmCLI`` and a running
machine's name. Commands run inside the machine's image container (where
``exec`` runs them); files move with ``cp``, which sets mode and owner on
upload. Input for ``run(..., data=...)`` is staged as a 0600 file with ``cp``
and fed to the command's stdin, as ``DockerTransport`` does.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
import time

from ansible_collections.botbottle.bottle.plugins.module_utils.agent_transport import AgentTransport, TransportError
from ansible_collections.botbottle.bottle.plugins.module_utils.smolvm import SmolvmError, clean_stderr, parse_error

# smolvm reports its own failures with these codes; COMMAND_FAILED (and no
# JSON at all) means the command inside the machine failed, which is a result.
_TRANSPORT_CODES = ("NOT_FOUND", "CONFLICT", "INTERRUPTED", "CONFIG_ERROR", "INVALID_STATE", "STORAGE_ERROR",
                    "MOUNT_ERROR", "KVM_UNAVAILABLE", "HYPERVISOR_UNAVAILABLE", "SMOLVM_ERROR")


def exec_argv(name, argv, user=None):
    words = ["machine", "exec", "--name", name]
    if user:
        words += ["--user", str(user)]
    return words + ["--"] + list(argv)


def upload_argv(local, name, path, mode=None, uid=None, gid=None):
    words = ["machine", "cp"]
    if mode is not None:
        words += ["--mode", "%o" % mode]
    if uid is not None:
        words += ["--uid", str(uid)]
    if gid is not None:
        words += ["--gid", str(gid)]
    return words + [local, "%s:%s" % (name, path)]


def download_argv(name, path, local):
    return ["machine", "cp", "%s:%s" % (name, path), local]


class SmolvmTransport(AgentTransport):
    def __init__(self, cli, name, require_running=True):
        self.cli = cli
        self.name = name
        if require_running:
            try:
                machine = cli.get_machine(name)
            except SmolvmError as exc:
                raise TransportError("cannot list smolvm machines: %s" % exc)
            if machine is None:
                raise TransportError("smolvm machine %s not found: create it with botbottle.bottle.smolvm_machine"
                                     % name)
            if machine.get("state") != "running":
                raise TransportError("smolvm machine %s is %s, not running: start it with smolvm_machine "
                                     "state=started" % (name, machine.get("state")))

    # -- AgentTransport

    def run(self, argv, user=None, data=None):
        staging = None
        if data is not None:
            staging = "/tmp/.bottle-stdin-%d" % int(time.time() * 1000000)
            self._upload(staging, data, 0o600, 0, 0)
            argv = ["sh", "-c", 'exec "$@" < "$0"', staging] + list(argv)
        try:
            rc, out, err = self.cli.run(exec_argv(self.name, argv, user), check=False)
        finally:
            if staging:
                self.cli.run(exec_argv(self.name, ["rm", "-f", staging], "root"), check=False)
        code, message = parse_error(err)
        if rc != 0 and code in _TRANSPORT_CODES:
            raise TransportError("smolvm machine exec in %s failed: %s: %s" % (self.name, code, message))
        return rc, out or b"", clean_stderr(err).encode("utf-8") if err else b""

    def read_file(self, path):
        tmpdir = tempfile.mkdtemp(prefix="bottle-smolvm-")
        local = os.path.join(tmpdir, "file")
        try:
            rc, _out, err = self.cli.run(download_argv(self.name, path, local), check=False)
            if rc != 0:
                code, message = parse_error(err)
                if code == "NOT_FOUND" or "No such file" in (message or ""):
                    return None
                raise TransportError("cannot read %s from %s: %s: %s" % (path, self.name, code, message))
            with open(local, "rb") as handle:
                return handle.read()
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def write_file(self, path, content, mode=0o644, owner=None):
        uid, gid = self._ids(owner)
        parent = posixpath.dirname(path)
        rc, _out, _err = self.run(["test", "-d", parent], user="root")
        if rc != 0:
            self.ensure_dir(parent, owner=owner)
        self._upload(path, content, mode, uid, gid)

    # -- helpers

    def _upload(self, path, content, mode, uid, gid):
        if isinstance(content, str):
            content = content.encode("utf-8")
        tmpdir = tempfile.mkdtemp(prefix="bottle-smolvm-")  # 0700: the content may be a secret
        local = os.path.join(tmpdir, "file")
        try:
            fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            rc, _out, err = self.cli.run(upload_argv(local, self.name, path, mode, uid, gid), check=False)
            if rc != 0:
                code, message = parse_error(err)
                raise TransportError("cannot write %s into %s: %s: %s" % (path, self.name, code, message))
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def _ids(self, owner):
        """Numeric (uid, gid) of ``owner`` (``user[:group]``, names or numbers) inside the machine."""
        if not owner:
            return 0, 0
        user, _sep, group = str(owner).partition(":")
        uid = int(user) if user.isdigit() else self._id("-u", user)
        if group:
            gid = int(group) if group.isdigit() else self._group_id(group)
        elif user.isdigit():
            gid = self._id("-g", user, default=uid)  # a bare uid without a passwd entry keeps gid = uid
        else:
            gid = self._id("-g", user)
        return uid, gid

    def _id(self, flag, user, default=None):
        rc, out, err = self.run(["id", flag, user], user="root")
        if rc == 0 and out.strip().isdigit():
            return int(out.strip())
        if default is not None:
            return default
        raise TransportError("no user %s in %s: %s" % (user, self.name, err.decode("utf-8", "replace").strip()))

    def _group_id(self, group):
        rc, out, err = self.run(["getent", "group", group], user="root")
        try:
            if rc != 0:
                raise ValueError
            return int(out.split(b":")[2])
        except (ValueError, IndexError):
            raise TransportError("no group %s in %s: %s" % (group, self.name, err.decode("utf-8", "replace").strip()))
