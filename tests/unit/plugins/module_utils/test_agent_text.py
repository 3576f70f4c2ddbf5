# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""agent_text: host names (never an address), text fields, and each way of showing what an agent wrote.

Across the bundle boundary: the bundle's copy (images/bundle/agent_text.py) is this very file, and
supervise's own checks (images/bundle/supervise.py, loaded as the bundle runs it) refuse what the
controller's manifest validator refuses, on a fixed list and on generated numeric-ish strings compared
with ``socket.inet_aton`` and ``ipaddress``.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import pathlib
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.botbottle.bottle.plugins.module_utils import agent_text, bundle_config, manifest
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as sv

REPO = pathlib.Path(__file__).resolve().parents[4]
BUNDLE = REPO / "images" / "bundle"


def load_bundle_supervise():
    spec = importlib.util.spec_from_file_location("supervise_for_agent_text", BUNDLE / "supervise.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SUPERVISE = load_bundle_supervise()

ADDRESSES = [
    "127.0.0.1", "10.0.0.1", "93.184.216.34", "0x7f000001", "0x5db8d822", "0X7F000001", "0177.0.0.1",
    "0177.0.0.01", "2130706433", "127.1", "127.0.1", "0x7f.1", "0x7f.0.0.1", "0x7f.0x0.0x0.0x1", "017700000001",
    "127.0.0.1.", "0x7f000001.", "127.1..", " 127.0.0.1 ", "::1", "[::1]", "::ffff:127.0.0.1", "[::ffff:7f00:1]",
    "fe80::1%eth0", "[fe80::1%25eth0]", "fe80::1%25", "2001:db8::1", "::", "0", "0x", "00", "4294967295",
    "1.2.3.4.", "a.b.0x7f", "example.123", "1.0x1", "[example.com]", "example.com%eth0",
]
NAMES = ["api.example.com", "pypi.org", "0x7f.example", "1e100.net", "123.example", "x--y.example", "a.b.c.d.example",
         "localhost", "xn--bcher-kva.example", "0x.example"]


def test_the_bundle_runs_this_very_file():
    """One owner: images/bundle/agent_text.py is a symlink to plugins/module_utils/agent_text.py, which
    bottle_image sends into the build as the file it points at (tested in test_bottle_image)."""
    link = BUNDLE / "agent_text.py"
    assert link.is_symlink(), "images/bundle/agent_text.py must stay a symlink to the module_utils file, not a copy"
    assert link.resolve() == (REPO / "plugins" / "module_utils" / "agent_text.py").resolve()
    assert SUPERVISE.agent_text.host_error("0x7f000001") == agent_text.host_error("0x7f000001")
    assert "COPY agent_text.py /opt/supervise/agent_text.py" in (BUNDLE / "Dockerfile").read_text()


def controller_refuses(host):
    """Every controller-side place a host is written: a policy's lists, a route, the model, an approval."""
    outcomes = []
    for policy in ({"allowed_domains": [host]}, {"firewall": {"passthrough_domains": [host]}},
                   {"firewall": {"trusted_domains": [host]}}, {"egress": {"routes": [{"host": host}]}}):
        try:
            manifest.check_policy(policy, "bottle_policies.p")
            outcomes.append(False)
        except manifest.ManifestError:
            outcomes.append(True)
    try:
        manifest.check_route({"host": host}, "route")
        outcomes.append(False)
    except manifest.ManifestError:
        outcomes.append(True)
    try:
        bundle_config.merge_approved({"allowed_domains": ["a.example"]}, {"domains": [host], "routes": []})
        outcomes.append(False)
    except (bundle_config.BundleConfigError, manifest.ManifestError):
        outcomes.append(True)
    for kind in ("domain", "route"):
        try:
            sv.apply_changes({"id": "0" * 16, "kind": kind, "host": "asked.example", "status": "pending"},
                             {"host": host})
            outcomes.append(False)
        except sv.SuperviseError:
            outcomes.append(True)
    assert len(set(outcomes)) == 1, "the controller's checks disagree on %r: %s" % (host, outcomes)
    return outcomes[0]


def bundle_refuses(host):
    """supervise, in the bundle: request_domain's and request_route's host check."""
    outcomes = []
    for kind in ("domain", "route"):
        try:
            SUPERVISE.validate(kind, {"host": host, "justification": "needed"})
            outcomes.append(False)
        except SUPERVISE.InvalidRequest:
            outcomes.append(True)
    try:
        SUPERVISE.validate("block", {"url": "https://%s/x" % host, "reason_seen": "403", "justification": "j"})
        outcomes.append(False)
    except SUPERVISE.InvalidRequest:
        outcomes.append(True)
    assert len(set(outcomes[:2])) == 1, "supervise's domain and route checks disagree on %r" % host
    return outcomes[0]


@pytest.mark.parametrize("host", ADDRESSES)
def test_every_address_spelling_is_refused_on_both_sides(host):
    assert agent_text.host_error(host) is not None
    assert controller_refuses(host)
    assert bundle_refuses(host)


@pytest.mark.parametrize("host", NAMES)
def test_names_are_taken_on_both_sides(host):
    assert agent_text.host_error(host) is None
    assert not controller_refuses(host)
    assert not bundle_refuses(host)


def test_the_refusal_names_the_address_and_the_fix():
    why = agent_text.host_error("0x7f000001")
    assert "'0x7f000001' is an IPv4 address" in why and "such as api.example.com" in why
    with pytest.raises(manifest.ManifestError, match=r"allowed_domains\[0\] '0177.0.0.1' is an IPv4 address"):
        manifest.check_policy({"allowed_domains": ["0177.0.0.1"]}, "bottle_policies.p")
    answer = SUPERVISE.validate
    with pytest.raises(SUPERVISE.InvalidRequest, match="host '127.1' is an IPv4 address"):
        answer("domain", {"host": "127.1", "justification": "j"})
    assert "wildcard" in agent_text.host_error("*.example.com") and agent_text.host_error("*.example.com", True) is None
    assert agent_text.host_error("*.0x7f", wildcard=True) is not None


def reads_as_address(text):
    """What this machine's resolver library or ipaddress takes for an address (the oracle)."""
    try:
        socket.inet_aton(text)
        return True
    except (OSError, ValueError):
        pass
    core = text.strip().rstrip(".")
    if core.startswith("[") and core.endswith("]"):
        core = core[1:-1]
    try:
        ipaddress.ip_address(core.split("%", 1)[0])
        return True
    except ValueError:
        pass
    try:  # a resolver reads a name with trailing dots as the same name
        socket.inet_aton(core)
        return True
    except (OSError, ValueError):
        return False


NUMERIC_PART = st.one_of(
    st.integers(0, 2 ** 32).map(str),
    st.integers(0, 2 ** 32).map(lambda n: "0%o" % n),
    st.integers(0, 2 ** 32).map(lambda n: "0x%x" % n),
    st.integers(0, 2 ** 32).map(lambda n: "0X%X" % n),
    st.text("0123456789abcdefxX", min_size=1, max_size=10),
)
NUMERICISH = st.one_of(
    st.lists(NUMERIC_PART, min_size=1, max_size=5).map(".".join),
    st.builds(lambda s, dots: s + "." * dots, st.lists(NUMERIC_PART, min_size=1, max_size=4).map(".".join),
              st.integers(0, 2)),
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda ip: "[%s]" % ip),
    st.text("0123456789abcdefx.:[]%", min_size=1, max_size=24),
)


@settings(max_examples=600, deadline=None)
@given(NUMERICISH)
def test_what_inet_aton_or_ipaddress_reads_as_an_address_is_never_a_name(text):
    refused = agent_text.host_error(text) is not None
    if reads_as_address(text):
        assert refused, "%r reads as an address but passes as a host name" % text
    # both sides of the bundle boundary decide alike
    assert controller_refuses(text) == refused
    assert bundle_refuses(text) == refused


# --- text fields -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["a\x1b[31mred", "bell\x07", "del\x7f", "c1\x9b31m", "cr\rlf", "nul\x00",
                                   "surrogate\ud800"])
def test_control_characters_are_refused(value):
    assert "control character" in agent_text.text_error(value, multiline=False)


def test_newline_and_tab_only_in_a_multiline_field():
    assert agent_text.text_error("two\nlines\tand a tab") is None
    assert "one line" in agent_text.text_error("two\nlines", multiline=False)


@pytest.mark.parametrize("url", ["https://x.example/\r\nX-Injected: 1", "https://x.example/\x1b]8;;https://evil/\x07",
                                 "https://x.example/a\tb", "https://x.example/\x85a"])
def test_report_block_url_keeps_no_control_character(url):
    with pytest.raises(SUPERVISE.InvalidRequest, match="url contains a control character"):
        SUPERVISE.validate("block", {"url": url, "reason_seen": "403", "justification": "j"})


def test_route_path_values_keep_no_control_character():
    with pytest.raises(SUPERVISE.InvalidRequest, match=r"matches\[0\].paths\[0\].value contains a control"):
        SUPERVISE.check_matches([{"paths": [{"type": "prefix", "value": "/v1/\x1b[2J"}]}])


# --- showing it ----------------------------------------------------------------------------------------

HOSTILE = ("need docs [/x] [link=https://evil.example]click[/link] \x1b[31mred\x1b[0m "
           "\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\ \x9b2J \u202egnp.exe\u202c \u2066x\u2069 \u200f\u061c"
           "\u2028\r\n\x07 back\\slash")


def test_plain_shows_every_invisible_character_escaped():
    shown = agent_text.plain(HOSTILE, 10000)
    assert "\x1b" not in shown and "\x9b" not in shown and "\x07" not in shown and "\n" not in shown
    assert not any(c in shown for c in agent_text.BIDI) and "\u2028" not in shown
    assert "\\x1b[31mred" in shown and "\\x9b2J" in shown and "\\u202egnp.exe\\u202c" in shown
    assert "\\u2066x\\u2069" in shown and "\\u200f\\u061c" in shown and "\\u2028\\r\\n\\x07" in shown
    assert "[link=https://evil.example]click[/link]" in shown  # markup is text here, shown as typed
    assert "back\\\\slash" in shown  # a backslash the agent wrote cannot pass for an escape
    assert agent_text.plain("ordinary words, é and 日本") == "ordinary words, é and 日本"
    assert agent_text.plain(None) == "" and agent_text.plain(42) == "42"


def test_plain_is_bounded():
    shown = agent_text.plain("x" * 1000, 50)
    assert shown == "x" * 50 + "...(950 more)"
    escaped = agent_text.plain("\x1b" * 100, 20)
    assert len(escaped.split("...", maxsplit=1)[0]) <= 20 and escaped.endswith("(95 more)")


def test_terminal_is_plain():
    assert agent_text.terminal(HOSTILE, 10000) == agent_text.plain(HOSTILE, 10000)


def test_textual_is_never_markup():
    from rich.console import Console
    from rich.text import Text
    text = agent_text.textual(HOSTILE, 10000)
    assert isinstance(text, Text) and text.spans == []
    console = Console(width=400, color_system=None, record=True, force_terminal=False)
    console.print(text)
    out = console.export_text()
    assert "[link=https://evil.example]click[/link]" in out and "[/x]" in out and "\x1b" not in out


def test_notification_bodies_are_neither_markup_nor_control():
    body = agent_text.notification('<a href="https://evil">x</a> & <b>bold</b>\x1b[31m', 200)
    assert body == '&lt;a href="https://evil"&gt;x&lt;/a&gt; &amp; &lt;b&gt;bold&lt;/b&gt;\\x1b[31m'
    assert len(agent_text.notification("y" * 1000)) <= 200 + len("...(1000 more)")
