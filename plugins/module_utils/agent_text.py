# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an agent wrote is data: checked on the way in, escaped on the way out, never evaluated.

The one owner of three rules, for both sides of the bundle boundary. This file is plain Python
(standard library only, no collection import), so the bundle runs the very same code:
``images/bundle/agent_text.py`` is a symlink to this file, which ``bottle_image`` sends as the file and
supervise imports (tests/unit/plugins/module_utils/test_format_owners.py checks the link).

1. Host names (``host_error``): a host an agent asks for, and a host a policy lists, is a DNS
   name or refused. Every spelling that ``inet_aton`` or a resolver reads as an address is
   refused: dotted quads, hex (``0x7f000001``), octal (``0177.0.0.1``), a bare integer
   (``2130706433``), short forms (``127.1``, ``0x7f.1``), each with trailing dots, IPv6 literals,
   brackets and ``%`` zone ids. The rule is syntactic: the last label of a name is never a
   number (decimal, octal or ``0x`` hex) - every address form of ``inet_aton`` ends in one - and
   a name never holds ``[``, ``]``, ``%`` or (as IPv6 does) ``:``.

2. Text fields (``text_error``): what the agent writes (a justification, a reason, a URL) holds
   no control character (C0, DEL, C1; a multi-line field keeps newline and tab), no lone
   surrogate, and is bounded.

3. Showing it (one function per kind of output); each returns text safe for that output:

   - ``plain(value, limit)``: one line, every control character, format character (bidi
     overrides and isolates U+202A-U+202E, U+2066-U+2069, the marks U+200E, U+200F, U+061C, and
     the other Unicode format characters), line and paragraph separator and lone surrogate shown
     as a visible escape (``\\n``, ``\\x1b``, ``\\u202e``), a backslash doubled, at most ``limit``
     characters (then ``...(N more)``). Terminal escape sequences (ANSI CSI, OSC 8 links) start
     with ESC or a C1 control, so nothing of them reaches a terminal.
   - ``terminal(value, limit)``: a log line or a playbook's output (``plain``).
   - ``textual(value, limit)``: a ``rich.text.Text`` for the console (Textual): never parsed as
     markup, so ``[link=...]`` or ``[/x]`` is shown as typed. Imports rich only when called.
   - ``notification(value, limit, markup)``: a desktop notification's title or body: ``plain``,
     and ``&``, ``<``, ``>`` as entities where the notifier reads markup (notify-send).
"""

from __future__ import annotations

import re
import unicodedata

# --- 1. host names -------------------------------------------------------------------------------

MAX_HOST = 253
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
NAME_RE = re.compile(r"^(?:%s\.)*%s$" % (_LABEL, _LABEL))
# The last label of an address as inet_aton reads it: decimal, octal (leading 0) or hex (0x).
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
_IPV6_CHARS = re.compile(r"^[0-9a-f:.]*:[0-9a-f:.]*$")


def normalize_host(value):
    """``value`` as hosts are compared: stripped, lower-cased, without trailing dots."""
    return value.strip().lower().rstrip(".")


def address_error(value):
    """Why ``value`` reads as an address rather than a name, or None when it does not."""
    host = normalize_host(value)
    if "[" in host or "]" in host or "%" in host:
        return "a bracketed address or an address with a zone id"
    if _IPV6_CHARS.match(host):
        return "an IPv6 address"
    last = host.rsplit(".", 1)[-1]
    if _NUMERIC_LABEL.match(last):
        return "an IPv4 address (in one of the spellings inet_aton reads: dotted, hex, octal, integer or short)"
    return None


def host_error(value, wildcard=False):
    """None when ``value`` is a host name (``*.name`` too when ``wildcard``); else why it is not, as a sentence
    that says what to write instead."""
    if not isinstance(value, str):
        return "must be a host name string"
    host = normalize_host(value)
    name = host[2:] if wildcard and host.startswith("*.") else host
    why = address_error(host)
    if why:
        return ("%r is %s: only a host name is allowed (the operator approves names, never addresses); "
                "ask for or list the name, such as api.example.com" % (value[:80], why))
    if not name or len(host) > MAX_HOST or not NAME_RE.match(name):
        if wildcard:
            return ("%r is not a host name: write names like api.example.com or *.example.com (no scheme, port or "
                    "path)" % (value[:80],))
        return ("%r is not one exact host name: write a name such as api.example.com (no scheme, port, path or "
                "wildcard)" % (value[:80],))
    return None


# --- 2. text fields --------------------------------------------------------------------------------

def _control(char):
    category = unicodedata.category(char)
    return category in ("Cc", "Cs")


def text_error(value, multiline=True):
    """None when ``value`` holds no control character (newline and tab allowed when ``multiline``), else why."""
    if not isinstance(value, str):
        return "must be a string"
    for char in value:
        if multiline and char in "\n\t":
            continue
        if _control(char):
            return "contains a control character (%s)%s" % (
                _escape(char), "" if multiline else " (one line: no newline or tab either)")
    return None


# --- 3. showing it ---------------------------------------------------------------------------------

MAX_SHOWN = 500
BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape(char):
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return "\\x%02x" % code
    if code < 0x10000:
        return "\\u%04x" % code
    return "\\U%08x" % code


def _shown_as_is(char):
    if char == "\\":
        return False
    if char in BIDI:
        return False
    return unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def plain(value, limit=MAX_SHOWN):
    """``value`` (any type; None is "") as one line of visible characters, at most ``limit`` long (see above)."""
    text = "" if value is None else value if isinstance(value, str) else str(value)
    out = []
    size = 0
    for index, char in enumerate(text):
        piece = char if _shown_as_is(char) else _escape(char)
        if size + len(piece) > limit:
            out.append("...(%d more)" % (len(text) - index))
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def terminal(value, limit=MAX_SHOWN):
    """For a terminal: a log line (supervise's, the console's), a playbook's or module's output."""
    return plain(value, limit)


def textual(value, limit=MAX_SHOWN, style=""):
    """For the console: a ``rich.text.Text`` (Textual shows it as is, never as markup)."""
    from rich.text import Text  # pylint: disable=import-outside-toplevel  # the console's, not a module's
    return Text(plain(value, limit), style=style)


def notification(value, limit=200, markup=True):
    """For a desktop notification's title or body: ``plain``, and with ``markup`` (notify-send, whose bodies
    are a little HTML) ``&``, ``<`` and ``>`` as entities; without (osascript, a quoted string) as they are."""
    text = plain(value, limit)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") if markup else text
