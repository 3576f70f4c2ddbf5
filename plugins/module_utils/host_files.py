# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operator's files on the managed host a launch reads: each problem named by its key, with the fix.

API:
- ``identity_problem(key, path, st)``: what is wrong with a git-gate identity (an SSH private key the gate
  pushes with) whose ``os.lstat`` result is ``st`` (None: it does not exist; a link is not a regular file) - it
  must be a regular file others cannot read (ssh itself refuses one they can) - or None.
- ``identity_problems(repos, policy=None)``: each problem of the ``identity`` of ``repos`` (the ``git_gate.repos``
  of the ``botbottle.bottle.resolve_bottle`` filter's result), looked at on this host; ``policy`` (the policy's
  name) makes the key the one the operator wrote, ``bottle_policies.<policy>.git_gate.repos.<name>.identity``.
- ``read_upstream_ca(path, key="bottle_upstream_ca_file") -> (text, problem)``: the CAs the bundle trusts upstream.
"""

from __future__ import annotations

import os
import stat


def identity_problem(key, path, st):
    where = "%s %s on this host: " % (key, path)
    if st is None:
        return where + "does not exist: point it at the SSH private key the gate pushes with"
    if not stat.S_ISREG(st.st_mode):
        return where + "is not a regular file: point it at the SSH private key the gate pushes with"
    if st.st_mode & 0o077:
        return where + "has mode %04o, readable by others: chmod 600 %s" % (stat.S_IMODE(st.st_mode), path)
    return None


def _stat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def identity_problems(repos, policy=None):
    problems = []
    for repo in repos:
        key = "%sgit_gate.repos.%s.identity" % ("bottle_policies.%s." % policy if policy else "", repo.get("name"))
        path = os.path.expanduser(str(repo.get("identity") or ""))
        problem = identity_problem(key, path, _stat(path))
        if problem:
            problems.append(problem)
    return problems


def read_upstream_ca(path, key="bottle_upstream_ca_file"):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8"), None
    except FileNotFoundError:
        return None, "%s %s does not exist on this host: fix the path or leave it empty" % (key, path)
    except IsADirectoryError:
        return None, "%s %s is a directory on this host: name the PEM file of the CAs, or leave it empty" % (key, path)
    except UnicodeDecodeError:
        return None, "%s %s is not text: name a PEM file of the CAs, or leave it empty" % (key, path)
