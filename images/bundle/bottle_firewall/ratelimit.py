# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A token bucket per registrable domain.

The limit is per *registrable* domain (``a.example.co.uk`` and ``b.example.co.uk`` share
``example.co.uk``'s bucket) so an agent cannot multiply its budget with subdomains. The
default (600 a minute, bursts of 120) is sized for a real coding agent talking to its model
API and package registries, not pipelock's 60 a minute, which throttles such a session.
"""

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


def registrable_domain(host):
    """example.co.uk for a.b.example.co.uk; the host itself for IPs and unknown suffixes."""
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
