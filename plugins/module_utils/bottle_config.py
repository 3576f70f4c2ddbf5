# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The configuration hash of a bottle: what a running bundle has loaded.

bottle_state computes it over the files it writes (``bundle/*`` and
``private/<daemon>/*`` of the state directory); sidecar_bundle keeps it in the
running bundle (``/run/bottle/config-hash``) and reloads the bundle when it
changes; bottle_supervise recomputes it from the directory after an approval, so
the role's next run finds it unchanged.
"""

from __future__ import annotations

import hashlib
import os

# Inside the bundle, written by root after each reload (see sidecar_bundle).
HASH_FILE = "/run/bottle/config-hash"


def config_hash(files):
    """SHA-256 over relative paths (``bundle/<name>``, ``private/<daemon>/<name>``) and contents."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def state_files(state_dir):
    """Relative path -> absolute path of every file the hash covers in ``state_dir``."""
    found = {}
    bundle = os.path.join(state_dir, "bundle")
    if os.path.isdir(bundle):
        for name in os.listdir(bundle):
            if not name.startswith(".") and os.path.isfile(os.path.join(bundle, name)):
                found["bundle/" + name] = os.path.join(bundle, name)
    private = os.path.join(state_dir, "private")
    if os.path.isdir(private):
        for daemon in os.listdir(private):
            folder = os.path.join(private, daemon)
            if daemon.startswith(".") or not os.path.isdir(folder):
                continue
            for name in os.listdir(folder):
                if not name.startswith(".") and os.path.isfile(os.path.join(folder, name)):
                    found["private/%s/%s" % (daemon, name)] = os.path.join(folder, name)
    return found


def state_config_hash(state_dir, overlay=None):
    """The hash of ``state_dir``'s files, with ``overlay`` (absolute path -> bytes) in place of what is on disk."""
    overlay = overlay or {}
    contents = {}
    paths = state_files(state_dir)
    for path in overlay:
        relative = os.path.relpath(path, state_dir)
        if relative.startswith(("bundle/", "private/")):
            paths[relative] = path
    for relative, path in paths.items():
        if path in overlay:
            contents[relative] = overlay[path]
        else:
            with open(path, "rb") as handle:
                contents[relative] = handle.read()
    return config_hash(contents)
