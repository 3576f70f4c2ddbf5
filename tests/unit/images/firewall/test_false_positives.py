# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a real agent sends must pass untouched: Claude Code, npm, pip and git traffic."""

from __future__ import annotations

import pytest

import corpus
from bottle_firewall import bodies


@pytest.fixture(scope="module")
def claude_body():
    return corpus.claude_messages_body()


def test_the_claude_body_is_realistic(claude_body):
    assert 300_000 <= len(claude_body) <= 700_000
    assert b'"media_type": "image/png"' in claude_body and b"@@ -" in claude_body


def test_claude_messages_pass(engine, claude_body):
    engine.known.load(["correct-horse-battery-staple-42", "ghp_R0uteTokenValue0123456789abcdefABCD"])
    assert engine.scan_head("/v1/messages?beta=true", corpus.CLAUDE_HEADERS) is None
    assert engine.scan_body(claude_body, "application/json") is None


@pytest.mark.parametrize("name, path, headers, body, content_type",
                         corpus.package_manager_requests(), ids=lambda value: value if isinstance(value, str) else "")
def test_package_manager_traffic_passes(engine, name, path, headers, body, content_type):
    engine.known.load(["correct-horse-battery-staple-42"])
    assert engine.scan_head(path, headers) is None, name
    if body:
        decoded = bodies.decode_content(body, "gzip" if body[:2] == b"\x1f\x8b" else "", 1 << 24)
        assert engine.scan_body(decoded, content_type) is None, name


def test_claude_messages_pass_the_whole_addon(proxy, claude_body):
    flow = proxy.https("api.anthropic.com", "POST", "/v1/messages?beta=true",
                       dict(corpus.CLAUDE_HEADERS), claude_body)
    assert flow.response is None and proxy.opened == [("160.79.104.10", 443)]
