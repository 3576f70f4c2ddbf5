# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_firewall: the bottle's egress firewall, run as a mitmproxy 12 addon.

Every byte the agent sends over HTTP(S) passes through egress (the agent's HTTPS_PROXY).
This package decides, for each connection and request, whether it may leave the bottle:

- ``policy``     egress.json: allowlist, ports, passthrough/trusted domains, routes, limits;
- ``ssrf``       which resolved addresses may be dialled (and the odd IP spellings);
- ``bodies``     decompression and field extraction of request bodies, percent-decoding;
- ``dlp``        kingfisher (provider formats), the bottle's known secrets, URL entropy;
- ``routes``     the per-host request matches and credential injection of declared routes;
- ``ratelimit``  a token bucket per registrable domain;
- ``release``    a DLP hit held for the operator (dlp.action supervise): the redacted release
                 proposal sent to supervise, and the wait for the decision;
- ``audit``      one JSON line per decision, never a secret;
- ``addon``      the mitmproxy hooks that put the above together and fail closed.

Everything but ``addon`` is plain Python (3.11+) without mitmproxy, so that the controller's
unit tests exercise the same code the bundle runs; ``addon`` imports mitmproxy lazily.
"""

__all__ = ["addon", "audit", "bodies", "dlp", "policy", "ratelimit", "release", "routes", "ssrf"]
