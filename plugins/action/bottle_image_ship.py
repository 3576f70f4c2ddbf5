# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_image_ship with ``src``: copy a docker save archive from the controller, then load it,
printing a line per stage and host as each happens.

An archive is hundreds of MB; over a fleet the copy is most of the run (a minute per host over SSH
here). Ansible's copy module prints nothing until it is done and cannot report bytes or speed, and a
connection's put_file reports nothing while it runs, so this action does the copy itself in parts of
PART_BYTES (each written to a controller temp file and sent with ``_transfer_file``, the connection's
own put_file, as every file-moving action does); the module loads the parts in order as one archive,
so the host never holds a second copy. Lines: ``copying 534.9 MB`` before, ``copied 128.0 of 534.9 MB
(23%) in 15 s (8.5 MB/s)`` at most every ten seconds, ``copied 534.9 MB in 61.6 s (8.7 MB/s);
loading`` after, and ``loaded in 19.2 s`` once the module has loaded and checked the image. They go
through Ansible's display, which a worker forwards to the terminal at once, so hosts shipping in
parallel (strategy free) each say what they move while they move it. Without ``src`` the module
runs as is.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.botbottle.bottle.plugins.plugin_utils.progress import ShipReport

display = Display()
MODULE = "botbottle.bottle.bottle_image_ship"
PART_BYTES = 32 * 1024 * 1024


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        src = args.pop("src", None)
        if not src:
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
            return result
        if args.get("archive"):
            result.update(failed=True, msg="src and archive are mutually exclusive: give src (an archive on the "
                                           "controller, copied by this task) or archive (one already on the host)")
            return result
        src = os.path.expanduser(src)
        if not os.path.isfile(src):
            result.update(failed=True, msg="src %s is not a file on the controller: give the path of the image's docker "
                                           "save archive (bottle_image_archive writes it)" % src)
            return result
        if self._task.check_mode:
            # Nothing is copied: the module says whether a load would happen.
            args["archive"] = src
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
            return result
        host = task_vars.get("inventory_hostname", "?")
        report = ShipReport(display.display, host)
        nbytes = os.path.getsize(src)
        local = tempfile.mkdtemp(prefix="botbottle-ship-")
        try:
            tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
            report.copying(args.get("name", "?"), nbytes)
            args["archive_parts"] = self._send_parts(src, local, tmpdir, report)
            copy_seconds = report.copied(nbytes)
            loaded = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
            load_seconds = report.loaded(loaded)
        finally:
            shutil.rmtree(local, ignore_errors=True)
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result.update(loaded)
        result["shipped"] = {"bytes": nbytes, "copy_seconds": round(copy_seconds, 2),
                             "load_seconds": round(load_seconds, 2)}
        return result

    def _send_parts(self, src, local, tmpdir, report):
        """Copy ``src`` to ``tmpdir`` on the host in parts of PART_BYTES; the remote paths, in order."""
        remote_parts, done = [], 0
        base = os.path.basename(src)
        with open(src, "rb") as source:
            while True:
                data = source.read(PART_BYTES)
                if not data and remote_parts:
                    break
                part = os.path.join(local, "part")
                with open(part, "wb") as handle:
                    handle.write(data)
                remote = self._connection._shell.join_path(tmpdir, "%s.part-%04d" % (base, len(remote_parts)))
                self._transfer_file(part, remote)
                remote_parts.append(remote)
                done += len(data)
                report.progress(done)
                if not data:
                    break
        self._fixup_perms2([tmpdir] + remote_parts)
        return remote_parts
