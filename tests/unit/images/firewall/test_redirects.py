# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redirect URLs handed out by upstream: the follow-up request skips the pattern and entropy
checks on its URL only (addon.Redirects); everything else still applies."""

from __future__ import annotations

import copy
import json
import types

import pytest

from fakes import BASE_CONFIG, KNOWN_SECRET, Headers, Proxy
from bottle_firewall import addon

# A GitHub release download: github.com answers 302 to a URL with a JWT in its query.
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJnaXRodWIuY29tIiwiYXVkIjoicmVsZWFzZS1hc3NldHMuZ2l0aH"
       "VidXNlcmNvbnRlbnQuY29tIiwia2V5Ijoia2V5MSIsImV4cCI6MTc2NDYzODQwMH0.Xq3vN8bS2kR5tW9yZ1cF4hJ7mP0aL6dG3eU8iO2rT5w")
ASSET = "/github-production-release-asset/123456/abc-def?sp=r&sv=2018-11-09&jwt=" + JWT + "&response-content-type=application%2Foctet-stream"
LOCATION = "https://release-assets.githubusercontent.com" + ASSET
# An S3 presigned URL: key id and signature in the query.
S3 = ("/bucket/object.tar.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7Q2XK3ZP%2F20250101%2F"
      "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250101T000000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host"
      "&X-Amz-Signature=Zk3Q9vB2mN7xR4tY8wL1pS6dF0gH5jK2aE9cV3bU7iO")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def proxy(firewall_factory, resolver, clock):
    config = copy.deepcopy(BASE_CONFIG)
    config["allowed_hosts"] += ["github.com", "release-assets.githubusercontent.com", "bucket.s3.amazonaws.com"]
    resolver.table.update({"github.com": ["140.82.112.3"], "release-assets.githubusercontent.com": ["185.199.108.133"],
                           "bucket.s3.amazonaws.com": ["52.217.1.1"]})
    return Proxy(firewall_factory(config=config, clock=clock))


def answer(proxy, flow, status, location):
    """Upstream's response to ``flow`` as responseheaders sees it."""
    flow.response = types.SimpleNamespace(status_code=status, headers=Headers({"Location": location}), stream=False)
    proxy.fw.responseheaders(flow)
    return flow


def download(proxy, host, path, headers=None):
    return proxy.https(host, path=path, headers=dict({"Host": host}, **(headers or {})))


def audit_lines(proxy):
    return [json.loads(line) for line in proxy.fw.audit.stream.lines]


def test_the_follow_up_request_is_blocked_without_the_redirect(proxy):
    flow = download(proxy, "release-assets.githubusercontent.com", ASSET)
    assert flow.response is not None and flow.response.status_code == 403


def test_a_github_release_redirect_is_followed(proxy):
    first = download(proxy, "github.com", "/owner/repo/releases/download/v1.0/tool.tar.gz")
    assert first.response is None
    answer(proxy, first, 302, LOCATION)
    follow = download(proxy, "release-assets.githubusercontent.com", ASSET)
    assert follow.response is None, follow.response.text
    assert ("185.199.108.133", 443) in proxy.opened
    line = [e for e in audit_lines(proxy) if e["event"] == "request"][-1]
    assert line["exempt"] == "upstream-redirect" and line["action"] == "allow"
    assert JWT not in "".join(proxy.fw.audit.stream.lines)
    # Any other request's line has no "exempt".
    assert "exempt" not in [e for e in audit_lines(proxy) if e["event"] == "request"][0]


def test_a_relative_location_and_a_presigned_s3_url(proxy):
    first = download(proxy, "bucket.s3.amazonaws.com", "/bucket/object.tar.gz")
    answer(proxy, first, 307, S3)  # relative to the request's URL
    assert download(proxy, "bucket.s3.amazonaws.com", S3).response is None


def test_a_different_url_with_the_same_token_is_still_blocked(proxy):
    answer(proxy, download(proxy, "github.com", "/owner/repo/releases/download/v1.0/tool.tar.gz"), 302, LOCATION)
    for host, path in (("release-assets.githubusercontent.com", ASSET + "&x=1"),
                       ("release-assets.githubusercontent.com", "/other?jwt=" + JWT),
                       ("www.example.com", ASSET)):
        flow = download(proxy, host, path)
        assert flow.response is not None and flow.response.status_code == 403, (host, path)
        assert "exempt" not in audit_lines(proxy)[-1]
    # another scheme or port is another URL
    assert addon.redirect_target("https://a.example.com/x", LOCATION) == LOCATION
    assert not proxy.fw.redirects.holds(LOCATION.replace("https://", "http://"))


def test_a_known_secret_in_a_remembered_url_is_still_blocked(proxy):
    leaking = "https://release-assets.githubusercontent.com/a?jwt=" + JWT + "&echo=" + KNOWN_SECRET
    answer(proxy, download(proxy, "github.com", "/owner/repo/releases/download/v1.0/tool.tar.gz"), 302, leaking)
    flow = download(proxy, "release-assets.githubusercontent.com", leaking.split(".com", 1)[1])
    assert flow.response.status_code == 403 and flow.response.headers["X-Bottle-Egress-Rule"] == "known-secret"
    assert KNOWN_SECRET not in flow.response.text


def test_headers_are_still_scanned_and_the_allowlist_still_applies(proxy):
    answer(proxy, download(proxy, "github.com", "/owner/repo/releases/download/v1.0/tool.tar.gz"), 302, LOCATION)
    flow = download(proxy, "release-assets.githubusercontent.com", ASSET, {"X-Leak": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"})
    assert flow.response.status_code == 403 and flow.response.headers["X-Bottle-Egress-Rule"].startswith("dlp:")
    outside = "https://not-allowed.example.net/x?jwt=" + JWT
    answer(proxy, download(proxy, "github.com", "/owner/repo/releases/download/v1.0/tool.tar.gz"), 302, outside)
    client, connect = proxy.connect("not-allowed.example.net")
    assert proxy.fw.tunnels[client.id].refusal.rule == "allowlist"


def test_remembered_urls_expire_and_are_bounded(proxy, clock):
    answer(proxy, download(proxy, "github.com", "/owner/repo/releases/download/v1.0/tool.tar.gz"), 302, LOCATION)
    clock.now += 299
    assert download(proxy, "release-assets.githubusercontent.com", ASSET).response is None
    clock.now += 301
    flow = download(proxy, "release-assets.githubusercontent.com", ASSET)
    assert flow.response is not None and flow.response.status_code == 403
    memory = addon.Redirects(clock, size=3, ttl=10)
    for index in range(5):
        memory.remember("https://h/%d" % index)
    assert len(memory) == 3 and not memory.holds("https://h/0") and memory.holds("https://h/4")


def test_only_redirects_egress_passed_from_upstream_are_remembered(proxy):
    flow = download(proxy, "github.com", "/owner/repo/releases/download/v1.0/tool.tar.gz")
    answer(proxy, flow, 200, LOCATION)  # not a redirect
    refused = download(proxy, "github.com", "/x?q=" + "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8")
    assert refused.response.status_code == 403
    answer(proxy, refused, 302, LOCATION)  # egress's own answer: never remembered
    for location in ("ftp://release-assets.githubusercontent.com/x", "https://[bad", "", "x" * 20000):
        answer(proxy, download(proxy, "github.com", "/a"), 302, location)
    assert len(proxy.fw.redirects) == 0


@pytest.mark.parametrize("base, location, expected", [
    ("https://github.com/a/b", "/c?d=1#frag", "https://github.com/c?d=1"),
    ("https://github.com/a/b", "c", "https://github.com/a/c"),
    ("https://github.com/a/b", "HTTPS://Objects.Example.COM:443/x", "https://objects.example.com/x"),
    ("http://h.example.com:8080/a", "//other.example.com:8443/p?q", "http://other.example.com:8443/p?q"),
    ("https://github.com/a", "https://[2001:db8::1]/x", "https://[2001:db8::1]/x"),
])
def test_redirect_targets_are_spelled_like_request_urls(base, location, expected):
    assert addon.redirect_target(base, location) == expected
    assert addon.absolute_url("https", "GitHub.com", 443, "/a") == "https://github.com/a"
