# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keys and defaults of the files the bundle reads: one definition for the writer and the readers.

``bundle_config`` (the collection) writes ``egress.json`` and ``supervise.json``; egress
(``images/bundle/bottle_firewall/policy.py``) and supervise (``images/bundle/supervise.py``) read
them. This file is plain Python (standard library only, no collection import), so the bundle runs
the very same code: ``images/bundle/bundle_format.py`` is a symlink to it that ``bottle_image`` sends
as this file (``/opt/egress/`` and ``/opt/supervise/`` in the image).

egress.json carries its ``version`` (``EGRESS_VERSIONS``: what egress reads; ``EGRESS_VERSION``: what
bundle_config writes). egress holds no default of its own: ``egress_keys`` gives the file of either
version with every key egress requires, and the keys it still leaves out (``missing_keys``).

- Version 3 (what bundle_config writes): the file carries every key of ``EGRESS_KEYS`` and every
  key of each of its ``SECTIONS`` (dlp, rate_limit, audit), none null; a key it leaves out is
  refused, naming the key (the writer must write it). Its exact and prefix paths start with ``/``
  (route_schema's rule).
- Version 2 (written by earlier releases, still read: a relaunch renders a state directory's files
  again, but a running bundle that Docker restarts reads the file it has): a key the file leaves
  out (a file rendered before the key existed, or ``audit`` where the policy did not set it) means
  the value of ``V2_DEFAULTS``, the keys of a section one by one (``fill_v2``). Its exact and prefix
  paths may not start with ``/`` (route_schema's ``legacy`` rule: such a path matches nothing).

Every version carries ``version`` (bundle_config has written it since version 2): a file without it is
refused.

supervise.json: ``SUPERVISE_DEFAULTS`` (``wait_seconds``, ``max_pending``) within ``SUPERVISE_BOUNDS``.
"""

from __future__ import annotations

import copy

EGRESS_VERSION = 3
EGRESS_VERSIONS = (2, 3)
# The bundle image says which versions its egress reads (images/bundle/Dockerfile LABEL, tied to EGRESS_VERSIONS by
# a unit test), so a launch can refuse an image built before the version it writes (bundle_image_problem).
IMAGE_LABEL = "io.botbottle.egress-json-versions"
EGRESS_KEYS = ("version", "mode", "allowed_hosts", "ports", "passthrough_domains", "trusted_domains",
               "ssrf_ip_allowlist", "routes", "dlp", "rate_limit", "websocket_hosts", "audit")
MODES = ("firewall", "behind-pipelock")
DEFAULT_PORTS = (80, 443)
DLP_ACTIONS = ("block", "supervise")
SUPERVISE_TIMEOUT_RANGE = (5, 600)
# supervise's endpoint for egress alone, on the bundle's loopback (images/bundle/supervise.py INTERNAL_*).
SUPERVISE_URL = "http://127.0.0.1:9101"
DEFAULT_DLP = {"max_body_bytes": 16 * 1024 * 1024, "entropy_min_length": 20, "entropy_bits": 4.5,
               "action": "block", "supervise_timeout": 120, "supervise_url": SUPERVISE_URL}
# Sized in bottle_firewall/ratelimit.py's docstring: no real tool run (npm ci of thousands of packages) reaches it.
DEFAULT_RATE = {"requests_per_minute": 6000, "burst": 3000}
# The audit file's rotation (audit/egress.jsonl): its size, and how many rotated files are kept (0: every one).
DEFAULT_AUDIT = {"rotate_bytes": 64 * 1024 * 1024, "keep": 16}
AUDIT_MIN_ROTATE_BYTES = 1024 * 1024
# The sections of egress.json, each a mapping of its keys and their defaults.
SECTIONS = {"dlp": DEFAULT_DLP, "rate_limit": DEFAULT_RATE, "audit": DEFAULT_AUDIT}
V2_DEFAULTS = {"mode": "firewall", "allowed_hosts": [], "ports": list(DEFAULT_PORTS), "passthrough_domains": [],
               "trusted_domains": [], "ssrf_ip_allowlist": [], "routes": [], "dlp": DEFAULT_DLP,
               "rate_limit": DEFAULT_RATE, "websocket_hosts": [], "audit": DEFAULT_AUDIT}

SUPERVISE_DEFAULTS = {"wait_seconds": 20, "max_pending": 20}
# How long a tool waits for the operator, and how many proposals may wait at once.
SUPERVISE_BOUNDS = {"wait_seconds": (0, 120), "max_pending": (1, 200)}


def fill_v2(data):
    """A version 2 egress.json (decoded, its keys checked) with each key it leaves out (or sets to null) taken
    from V2_DEFAULTS, the keys of a section one by one: every key, as egress requires them."""
    out = dict(data)
    out["version"] = 2
    for key, default in V2_DEFAULTS.items():
        if out.get(key) is None:
            out[key] = copy.deepcopy(default)
        elif key in SECTIONS and isinstance(out[key], dict):
            out[key] = dict(copy.deepcopy(SECTIONS[key]), **out[key])
    return out


def missing_keys(data):
    """The keys ``data`` (a decoded egress.json) leaves out (or sets to null), ``dlp.action`` for one of a
    section, in ``EGRESS_KEYS`` order: what egress requires of a version 3 file, and of a version 2 file
    once ``fill_v2`` has run."""
    missing = [key for key in EGRESS_KEYS if data.get(key) is None]
    for section, keys in SECTIONS.items():
        if isinstance(data.get(section), dict):
            missing.extend("%s.%s" % (section, key) for key in keys if key not in data[section])
    return missing


def egress_keys(data):
    """``(filled, missing)`` for a decoded egress.json of a version in EGRESS_VERSIONS (its keys checked):
    the file with every key egress requires (version 2: through ``fill_v2``; version 3: the file itself),
    and the keys still left out (``missing_keys``; empty when egress may read it)."""
    filled = fill_v2(data) if data.get("version") == 2 else dict(data)
    return filled, missing_keys(filled)


def release_hold(egress):
    """How long egress holds a request for the operator: ``dlp.supervise_timeout`` of a decoded egress.json
    (any version; the default when it cannot be told)."""
    value = ((egress if isinstance(egress, dict) else {}).get("dlp") or {})
    value = value.get("supervise_timeout") if isinstance(value, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return DEFAULT_DLP["supervise_timeout"]


def bundle_image_problem(labels, image):
    """Why the bundle image ``image`` (its ``labels``) cannot read the egress.json this collection writes, or None.
    An image without the label was built before it existed: its egress reads version 2 only."""
    reads = str((labels or {}).get(IMAGE_LABEL) or "2").split()
    if str(EGRESS_VERSION) in reads:
        return None
    return ("bundle image %s reads egress.json version %s, and this collection writes version %d: the image was built "
            "by an earlier release - rebuild it (make images in the checkout, or the botbottle.bottle.images playbook)"
            % (image, " and ".join(reads), EGRESS_VERSION))
