# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A token bucket per registrable domain: a ceiling on a runaway agent, sized above real work.

What it is for: an agent in a loop (a bug, a prompt injection) can send requests to one host as
fast as egress relays them. The limit caps that, so that the host's operators, the user's address
and the quota (or bill) of a credentialed route do not pay for it. It is not a defence against
leaks: a slow drip passes any rate limit (6000 a minute is 360,000 requests an hour); the DLP is
what looks at what leaves.

The limit is per *registrable* domain (``a.example.co.uk`` and ``b.example.co.uk`` share
``example.co.uk``'s bucket) so an agent cannot multiply its budget with subdomains.

The default (``policy.DEFAULT_RATE``: 6000 a minute, bursts of 3000) is sized from what real tools
send to one registrable domain, so that none of them meets a ``429``:

=====================================  ==============================================================
``npm ci`` of a large lockfile          one GET per package (``resolved`` tarball), at npm's 15
                                        sockets: 1000-3000 requests in 5-20 s. Fits in the burst.
``npm install`` without a lockfile      packument + tarball per package: a 74-package install sent
                                        about 170 (issue 22); 1500 packages about 3500 in 15+ s:
                                        the burst plus 100 a second.
``pip install`` of a data-science       an index page (pypi.org) and a file (pythonhosted.org) per
stack (numpy, pandas, scipy,            package, two domains: about 100 each, sequential.
scikit-learn, matplotlib, jupyter)
``git clone`` over HTTPS                2-3 requests (info/refs, upload-pack); LFS one per object
                                        batch.
a busy Claude Code session              one model request per step, plus count_tokens and
                                        telemetry: a few a second with subagents.
a runaway loop                          hundreds a second: held to 100 a second once the burst is
                                        spent, each refusal a ``429`` with ``Retry-After``.
=====================================  ==============================================================

One limit for every host rather than classes per kind of host (registries, model APIs, the rest):
a class list of registry domains would need upkeep and miss private registries and mirrors, and
the hosts that would want a lower ceiling (model APIs, credentialed routes) enforce their own
per-key limits with their own ``429``s, which their clients honour. The previous default, 600 a
minute with a burst of 120, was sized for Claude Code alone: it gave a 74-package ``npm install``
35 ``429``s, each costing npm a 10 s back-off.
"""

import functools
import logging
import time

from . import ssrf

LOG = logging.getLogger("bottle_firewall")
MAX_BUCKETS = 10000

_PSL = None


def _suffix_list():
    global _PSL
    if _PSL is None:
        try:
            from publicsuffixlist import PublicSuffixList
            _PSL = PublicSuffixList()
        except Exception as exc:  # the limit still works per host without it
            LOG.error("egress: publicsuffixlist unavailable (%s); rate limits apply per host", type(exc).__name__)
            _PSL = False
    return _PSL


@functools.lru_cache(maxsize=1024)
def registrable_domain(host):
    """example.co.uk for a.b.example.co.uk; the host itself for IPs and unknown suffixes
    (remembered: every request asks, and the public suffix list does not change)."""
    host = (host or "").lower().rstrip(".")
    if not host or ssrf.parse_ip_literal(host) is not None:
        return host
    psl = _suffix_list()
    if psl:
        try:
            domain = psl.privatesuffix(host)
        except Exception:  # malformed names: fall back to the host, never fail the request
            domain = None
        if domain:
            return domain
    return host


class RateLimiter:
    """``check(host)`` -> None when the request may go, else seconds until it could.

    ``requests_per_minute`` 0 disables the limit. ``clock`` is injectable for tests."""

    def __init__(self, requests_per_minute, burst, clock=time.monotonic):
        self.rate = float(requests_per_minute) / 60.0
        self.burst = float(burst)
        self.clock = clock
        self.buckets = {}

    def configure(self, requests_per_minute, burst):
        self.rate = float(requests_per_minute) / 60.0
        self.burst = float(burst)

    def check(self, host):
        if self.rate <= 0:
            return None
        key = registrable_domain(host)
        now = self.clock()
        tokens, last = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self.buckets[key] = (tokens - 1.0, now)
            self._trim(now)
            return None
        self.buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _trim(self, now):
        """Forget buckets that have refilled: they hold no information, only memory."""
        if len(self.buckets) <= MAX_BUCKETS:
            return
        full = [key for key, (tokens, last) in self.buckets.items()
                if tokens + (now - last) * self.rate >= self.burst]
        for key in full:
            del self.buckets[key]
