"""egress: the last hop of the bottle, a mitmproxy addon in transparent mode.

pipelock's every upstream TCP connection is redirected here (iptables, by uid).
For hosts with a declared route egress terminates TLS (pipelock trusts egress's
CA) so that a route can act on the request; every other connection is relayed
untouched (TLS passthrough): pipelock already scanned it in plaintext.

Routes come from the JSON file named by BOTTLE_EGRESS_CONFIG:
    {"routes": [{"host": "api.example.com"}]}
Hosts compare case-insensitively. The file is re-read when it changes, so a
reload of the bundle's configuration needs no restart. Credential injection
for routes is layered on this (see docs/architecture.md).
"""

import json
import logging
import os

CONFIG_PATH = os.environ.get("BOTTLE_EGRESS_CONFIG", "/run/bottle/egress/egress.json")


def load_routes(path):
    """The declared routes of ``path`` by lower-cased host; {} when absent or empty."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}
    if not text.strip():
        return {}
    data = json.loads(text)
    routes = data.get("routes") or []
    if not isinstance(routes, list):
        raise ValueError("%s: 'routes' must be a list" % path)
    table = {}
    for index, route in enumerate(routes):
        host = (route or {}).get("host")
        if not isinstance(host, str) or not host:
            raise ValueError("%s: routes[%d] has no host" % (path, index))
        table[host.lower().rstrip(".")] = route
    return table


class Egress:
    def __init__(self, path=CONFIG_PATH):
        self.path = path
        self.mtime = None
        self.routes = {}
        self.refresh()

    def refresh(self):
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime == self.mtime:
            return
        self.mtime = mtime
        try:
            self.routes = load_routes(self.path)
            logging.info("egress: %d route(s) loaded", len(self.routes))
        except (ValueError, json.JSONDecodeError) as exc:
            # Keep the previous table: a broken file must not open or close anything new.
            logging.error("egress: ignoring invalid %s: %s", self.path, exc)

    def route_for(self, host):
        self.refresh()
        return self.routes.get((host or "").lower().rstrip("."))

    # mitmproxy hooks
    def tls_clienthello(self, data):
        sni = data.client_hello.sni
        if self.route_for(sni) is None:
            data.ignore_connection = True


addons = [Egress()]
