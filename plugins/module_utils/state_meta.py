# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one reader of a bottle's ``meta.json``, in its state directory or in its archive.

``bottle_state`` writes ``<state_root>/<slug>/meta.json`` once, when the bottle is first launched:
``slug``, ``agent``, ``policy``, ``backend``, ``created`` and (smolmachines) ``loopback_address``.
``audit_archive`` copies it into an archive (same layout) with ``archived``, ``host``, ``files``...

API (pure Python, no dependencies; nothing here writes):
- ``META``: the file's name, relative to the directory.
- ``meta_path(directory)``: its path.
- ``read_meta(directory)``: the file as a dict; ``{}`` when absent, unreadable, not JSON or not an
  object (a bottle launched by an older release has none: callers treat every key as optional).
"""

from __future__ import annotations

import json
import os

META = "meta.json"


def meta_path(directory):
    return os.path.join(directory, META)


def read_meta(directory):
    """``directory``'s meta.json as a dict, or ``{}`` when absent or unreadable."""
    try:
        with open(meta_path(directory), encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}
