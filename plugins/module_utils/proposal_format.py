# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The proposal store's format: one definition for both sides of the bundle boundary.

supervise (in the bundle) writes proposals and the audit; ``bottle_supervise``, ``bottle_info`` and the
console (on the managed host, through module_utils/supervise_store.py) read them and write decisions. This
file is plain Python (standard library only, no collection import), so the bundle runs the very same
code: ``images/bundle/proposal_format.py`` is a symlink to it, which ``bottle_image`` sends as this
file (``/opt/supervise/proposal_format.py`` in the image).

The store (``<state_dir>/supervise/``, ``/var/lib/bottle/supervise`` in the bundle)::

  proposals/<id>.json   id, kind, status, created, decided, note, the request fields,
                        justification (not for release)
  audit.jsonl           append-only, one JSON line per proposal and per decision

API:
- ``ID_RE``: a proposal id is 16 lower-case hex characters.
- ``KINDS``: ``domain``, ``route``, ``block`` (the agent's asks: ``AGENT_KINDS``) and ``release``
  (egress's: a request its DLP held). ``STATUSES``: ``pending``, ``approved``, ``rejected``.
- ``RELEASE_FIELDS``: the fields of a release proposal (what egress held, the excerpt redacted).
- ``PROPOSALS``, ``AUDIT``: the store's folder and file, relative to the store.
- ``now()``, ``epoch(stamp)``: the store's time stamps (UTC, ``%Y-%m-%dT%H:%M:%SZ``).
"""

from __future__ import annotations

import calendar
import re
import time

ID_RE = re.compile(r"^[0-9a-f]{16}$")
KINDS = ("domain", "route", "block", "release")
# Kinds the agent asks for through supervise's MCP tools; a release is egress's alone.
AGENT_KINDS = ("domain", "route", "block")
STATUSES = ("pending", "approved", "rejected")
# A release proposal: the request egress held and its DLP hit (egress redacts the excerpt).
RELEASE_FIELDS = ("host", "method", "path", "rule", "where", "excerpt")
PROPOSALS = "proposals"
AUDIT = "audit.jsonl"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now():
    """The store's time stamp of this moment (UTC)."""
    return time.strftime(TIME_FORMAT, time.gmtime())


def epoch(stamp):
    """Seconds since the epoch of a ``now()`` stamp; None when it is not one."""
    try:
        return calendar.timegm(time.strptime(str(stamp), TIME_FORMAT))
    except ValueError:
        return None
