"""egress: the last hop of the bottle, a mitmproxy addon in transparent mode.

pipelock's every upstream TCP connection is redirected here (iptables, by uid).
For hosts with a declared route egress terminates TLS (pipelock trusts egress's
CA) so that a route can act on the request; every other connection is relayed
untouched (TLS passthrough): pipelock already scanned it in plaintext.

Routes come from the JSON file named by BOTTLE_EGRESS_CONFIG (bottle-init stages the
role's bundle/egress.json at /run/bottle/egress/egress.json). Minimal format:

    {"routes": [{"host": "api.example.com"}, ...]}

- the file may be absent or empty, and "routes" may be empty or null: no routes, every
  connection is relayed untouched;
- each route is an object with a required "host" (a DNS name, compared case-insensitively,
  trailing dot ignored); any other key of a route is kept as is in the route table for the
  route actions layered on this (credential injection), and ignored here;
- a malformed file (not JSON, "routes" not a list, a route without "host") is logged and
  ignored: the previous table stays in force.

The file is re-read when its mtime changes, so a reload of the bundle's configuration
(SIGHUP to bottle-init re-stages it) needs no restart of egress.
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
        if not isinstance(route, dict):
            raise ValueError("%s: routes[%d] must be an object with a host" % (path, index))
        host = route.get("host")
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
