# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shape of a request, decided before anything goes upstream (pure: no mitmproxy).

- **Method**: one of ``KNOWN_METHODS``. CONNECT is not among them: a CONNECT is decided in
  ``http_connect``, and one inside a tunnel is refused there. No WebDAV methods: git over HTTP
  (smart protocol) needs GET and POST only, and pushes go through git-gate, not egress.
- **Target**: origin form (``/path?query``), or absolute form whose authority names exactly the
  host and port the request is for (the CONNECT tunnel's, or the proxy request's URL). An
  HTTP/2 ``:authority`` is compared the same way. Anything else (another host, userinfo, the
  asterisk form, an authority form) is refused: mitmproxy sends an absolute-form target inside
  a tunnel upstream verbatim.
- **Upgrade**: only a well-formed RFC 6455 WebSocket opening handshake is an acceptable
  ``Upgrade`` (GET, HTTP/1.1, ``Upgrade: websocket``, ``Connection`` listing ``upgrade``,
  ``Sec-WebSocket-Key`` the base64 of 16 bytes, ``Sec-WebSocket-Version: 13``); whether the host
  may have one is the policy's ``websocket_hosts``. Every other ``Upgrade`` (h2c, TLS, any
  name) is refused.
"""

import base64
import binascii
import re

from . import policy

KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"))
_ORIGIN_FORM = re.compile(r"^/[\x21-\x7e]*$")
_KEY = re.compile(r"^[A-Za-z0-9+/]{22}==$")


def method_problem(method):
    """Why ``method`` is refused, or None."""
    if method in KNOWN_METHODS:
        return None
    # The method itself is not quoted: it is the agent's data, and this text reaches the log.
    return "the request's method is not a known HTTP method (%s)" % ", ".join(sorted(KNOWN_METHODS))


def authority_matches(authority, host, port):
    """Whether ``authority`` (``name[:port]``, no userinfo) names exactly ``host``:``port``."""
    if not authority or "@" in authority:
        return False
    try:
        name, named_port = policy.split_host_port(authority, port)
    except (ValueError, TypeError):
        return False
    return name == policy.normalize_host(host) and named_port == port


def target_problem(authority, path, host, port):
    """Why this request target is refused, or None. ``authority`` is what the request line
    (absolute form) or HTTP/2 ``:authority`` named ("" for origin form), ``path`` the rest."""
    if not isinstance(path, str) or not _ORIGIN_FORM.match(path):
        return "the request target is not in origin form (/path) nor absolute form naming %s:%s" % (host, port)
    if authority and not authority_matches(authority, host, port):
        return "the request target's authority does not name %s:%s, the host this request is for" % (host, port)
    return None


def _tokens(value):
    return [part.strip().lower() for part in (value or "").split(",") if part.strip()]


def websocket_problem(method, http_version, headers):
    """Why this ``Upgrade`` request is not a well-formed RFC 6455 opening handshake, or None.
    ``headers``: (name, value) pairs."""
    fields = {}
    for name, value in headers:
        fields.setdefault(name.lower(), []).append(value)

    def one(name):
        values = fields.get(name, [])
        return values[0] if len(values) == 1 else None

    if method != "GET":
        return "a WebSocket handshake is a GET"
    if http_version != "HTTP/1.1":
        return "a WebSocket handshake is HTTP/1.1"
    if _tokens(one("upgrade")) != ["websocket"]:
        return "Upgrade must be exactly websocket"
    if "upgrade" not in _tokens(", ".join(fields.get("connection", []))):
        return "Connection must list upgrade"
    key = one("sec-websocket-key")
    try:
        if key is None or not _KEY.match(key.strip()) or len(base64.b64decode(key.strip(), validate=True)) != 16:
            return "Sec-WebSocket-Key must be the base64 of 16 bytes"
    except (binascii.Error, ValueError):
        return "Sec-WebSocket-Key must be the base64 of 16 bytes"
    if (one("sec-websocket-version") or "").strip() != "13":
        return "Sec-WebSocket-Version must be 13"
    return None


def upgrade_requested(headers):
    """Whether the request asks for any protocol switch (an ``Upgrade`` header, even empty)."""
    return any(field[0].lower() == "upgrade" for field in headers)
