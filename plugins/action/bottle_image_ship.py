# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_image_ship with ``src``: copy a docker save archive from the controller, then load it,
printing a line per stage and host as each happens.

An archive is hundreds of MB; over a fleet the copy is most of the run. Ansible's copy module prints
nothing until it is done and cannot report bytes or speed, so this action does the copy itself
(``_transfer_file``: the connection's own put_file, as every file-moving action does) between two
lines - ``copying 312.4 MB`` before, ``copied 312.4 MB in 4.1 s (76.2 MB/s); loading`` after - and
closes with ``loaded in 6.3 s`` once the module has loaded and checked the image. The lines go through
Ansible's display, which a worker forwards to the terminal at once, so hosts shipping in parallel
(strategy free) each say what they move while they move it. Without ``src`` the module runs as is.
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.botbottle.bottle.plugins.plugin_utils.progress import ShipReport

display = Display()
MODULE = "botbottle.bottle.bottle_image_ship"


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
        try:
            tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
            remote = self._connection._shell.join_path(tmpdir, os.path.basename(src))
            report.copying(args.get("name", "?"), nbytes)
            self._transfer_file(src, remote)
            self._fixup_perms2((tmpdir, remote))
            copy_seconds = report.copied(nbytes)
            args["archive"] = remote
            loaded = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
            load_seconds = report.loaded(loaded)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result.update(loaded)
        result["shipped"] = {"bytes": nbytes, "copy_seconds": round(copy_seconds, 2),
                             "load_seconds": round(load_seconds, 2)}
        return result
