# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rate limit's default against the traffic of real tools (ratelimit.py's table), replayed
on a virtual clock: none of them may meet a 429; a runaway loop is held to the sustained rate."""

from __future__ import annotations

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config
from bottle_firewall import policy, ratelimit


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def replay(limiter, clock, host, requests, seconds):
    """``requests`` to ``host`` spread evenly over ``seconds``; the number refused."""
    refused = 0
    for _index in range(requests):
        if limiter.check(host) is not None:
            refused += 1
        clock.now += seconds / requests
    return refused


def default_limiter(clock):
    return ratelimit.RateLimiter(policy.DEFAULT_RATE["requests_per_minute"], policy.DEFAULT_RATE["burst"], clock)


# (tool, host, requests, seconds at host speed): ratelimit.py's table.
REAL_WORK = [
    ("npm ci, 3000-package lockfile", "registry.npmjs.org", 3000, 5),
    ("npm install, 1500 packages without a lockfile", "registry.npmjs.org", 3500, 15),
    ("pip install of a data-science stack: index", "pypi.org", 120, 20),
    ("pip install of a data-science stack: files", "files.pythonhosted.org", 120, 20),
    ("git clone", "github.com", 3, 1),
    ("Claude Code, an hour with subagents at 5 requests a second", "api.anthropic.com", 18000, 3600),
]


@pytest.mark.parametrize("tool, host, requests, seconds", REAL_WORK, ids=[item[0] for item in REAL_WORK])
def test_real_work_never_meets_the_default_limit(tool, host, requests, seconds):
    clock = Clock()
    assert replay(default_limiter(clock), clock, host, requests, seconds) == 0


def test_a_working_session_runs_every_tool_with_half_a_minute_between():
    clock = Clock()
    limiter = default_limiter(clock)
    for _tool, host, requests, seconds in REAL_WORK[:5] * 2:
        assert replay(limiter, clock, host, requests, seconds) == 0
        clock.now += 30


def test_the_old_default_throttled_an_npm_install():
    clock = Clock()  # 600 a minute, burst 120: issue 22 measured 35 refusals on ~170 requests
    assert replay(ratelimit.RateLimiter(600, 120, clock), clock, "registry.npmjs.org", 170, 3) >= 20


def test_a_runaway_loop_is_held_to_the_sustained_rate():
    clock = Clock()
    limiter = default_limiter(clock)
    sent = 60 * 1000  # a minute at 1000 requests a second
    passed = sent - replay(limiter, clock, "api.example.com", sent, 60)
    rate = policy.DEFAULT_RATE
    assert passed == pytest.approx(rate["burst"] + rate["requests_per_minute"], abs=2)
    retry = limiter.check("api.example.com")
    assert retry is not None and 0 < retry <= 60.0 / rate["requests_per_minute"]


def test_the_controller_renders_the_addons_default():
    """bundle_config writes rate_limit into every egress.json: its default must be the addon's."""
    assert {"requests_per_minute": bundle_config.DEFAULT_REQUESTS_PER_MINUTE,
            "burst": bundle_config.DEFAULT_BURST} == policy.DEFAULT_RATE
