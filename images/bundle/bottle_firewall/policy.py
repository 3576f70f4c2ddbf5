# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""egress.json (version 3, and version 2 as earlier releases wrote it): what the bottle may reach, read strictly.

The collection renders this file and bottle-init stages it where only egress's uid can read
it. A typo in it must never silently open (or close) something, so an unknown key or a value
of the wrong type refuses the whole file with a message naming the key; the addon then keeps
the previous configuration in force, or refuses everything when there is none (at start).

``dlp``: ``max_body_bytes``, ``entropy_min_length``, ``entropy_bits``, and what a hit does:
``action`` ``block`` (refused) or ``supervise`` (held for the operator, see release.py) for at
most ``supervise_timeout`` seconds (5..600), asking supervise at ``supervise_url`` (plain HTTP
on the bundle's loopback only: egress sends it outside its own checks).

``audit``: ``rotate_bytes`` (the size at which egress.jsonl rotates, at least 1 MiB) and ``keep``
(how many rotated files are kept, egress.jsonl.1 the newest; 0 keeps every one).

The keys, the versions and what a key left out of a version 2 file means are the collection's
``bundle_format`` (beside this package in the image, as the collection's renderer has it); the
route schema (auth schemes, path rules, methods, headers) is ``route_schema``. This parser holds no
default of its own: it requires every key of a version 3 file in the file itself, and every key of
what ``bundle_format.fill_v2`` gives for a version 2 file (``bundle_format.egress_keys``).

``websocket_hosts``: the hosts (patterns, as below) where the agent may open a WebSocket (an
RFC 6455 handshake; the host must also be allowed). Missing or empty: every ``Upgrade`` is
refused, WebSocket included.

Host patterns: ``example.com`` is that host only; ``*.example.com`` is example.com and every
subdomain; both case-insensitive with a trailing dot ignored. IP literals match only an
identical address listed as such (a wildcard never matches an address).
"""

import ipaddress
import json
import os
import re

# The collection's format modules, top-level beside this package (/opt/egress; images/bundle in a checkout).
import bundle_format  # pylint: disable=wrong-import-order
import route_schema  # pylint: disable=wrong-import-order

from . import ssrf

DEFAULT_PORTS = bundle_format.DEFAULT_PORTS
DLP_ACTIONS = bundle_format.DLP_ACTIONS
SUPERVISE_TIMEOUT_RANGE = bundle_format.SUPERVISE_TIMEOUT_RANGE
DEFAULT_DLP = bundle_format.DEFAULT_DLP
DLP_NUMBERS = ("max_body_bytes", "entropy_min_length", "entropy_bits")
DEFAULT_RATE = bundle_format.DEFAULT_RATE
DEFAULT_AUDIT = bundle_format.DEFAULT_AUDIT
AUDIT_MIN_ROTATE_BYTES = bundle_format.AUDIT_MIN_ROTATE_BYTES
MODES = bundle_format.MODES
TOP_KEYS = bundle_format.EGRESS_KEYS
ROUTE_KEYS = route_schema.ROUTE_KEYS
AUTH_KEYS = route_schema.AUTH_KEYS
AUTH_SCHEMES = route_schema.AUTH_SCHEMES
MATCH_KEYS = route_schema.MATCH_KEYS
PATH_KEYS = route_schema.PATH_KEYS
PATH_TYPES = route_schema.PATH_TYPES

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


class ConfigError(ValueError):
    """egress.json (or tokens.json, secrets.json) cannot be used; the message names the key."""


def normalize_host(host):
    """Lower-cased host without trailing dot or IPv6 brackets; '' for None."""
    host = (host or "").strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def split_host_port(value, default_port=None):
    """(host, port or default_port) of a Host header / authority value; port None if malformed."""
    value = (value or "").strip()
    if value.startswith("["):
        host, _sep, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _sep, port_text = value.partition(":")
    else:
        host, port_text = value, ""
    if not port_text:
        return normalize_host(host), default_port
    if not port_text.isdigit():
        return normalize_host(host), None
    return normalize_host(host), int(port_text)


class HostSet:
    """Exact names, ``*.`` wildcards and exact IP literals, matched as the module says."""

    def __init__(self, patterns=(), key="hosts"):
        self.names, self.suffixes, self.ips = set(), set(), set()
        self.patterns = []
        for index, pattern in enumerate(patterns):
            where = "%s[%d]" % (key, index)
            if not isinstance(pattern, str):
                raise ConfigError("%s must be a host name string, not %s" % (where, type(pattern).__name__))
            self.add(pattern, where)

    def add(self, pattern, where="host"):
        text = normalize_host(pattern)
        self.patterns.append(text)
        ip = ssrf.parse_ip_literal(text)
        if ip is not None:
            self.ips.add(str(ip))
            return
        wildcard = text.startswith("*.")
        name = text[2:] if wildcard else text
        labels = name.split(".")
        if not name or not all(_LABEL.match(label) for label in labels):
            raise ConfigError("%s: %r is not a host name (or *.domain pattern or IP literal)" % (where, pattern))
        (self.suffixes if wildcard else self.names).add(name)

    def matches(self, host):
        host = normalize_host(host)
        if not host:
            return False
        ip = ssrf.parse_ip_literal(host)
        if ip is not None:
            return str(ip) in self.ips
        if host in self.names or host in self.suffixes:
            return True
        labels = host.split(".")
        return any(".".join(labels[i:]) in self.suffixes for i in range(1, len(labels)))

    def __bool__(self):
        return bool(self.names or self.suffixes or self.ips)


class Config:
    """A validated egress.json. Built by ``parse_config``; read-only by convention."""

    def __init__(self, mode, allowed, ports, passthrough, trusted, networks, routes, dlp, rate_limit,
                 websocket=None, audit=None):
        self.mode = mode
        self.audit = audit if audit is not None else dict(DEFAULT_AUDIT)
        self.websocket = websocket if websocket is not None else HostSet()
        self.allowed = allowed
        self.ports = frozenset(ports)
        self.passthrough = passthrough
        self.trusted = trusted
        self.ssrf_networks = tuple(networks)
        self.routes = routes
        self.dlp = dlp
        self.rate_limit = rate_limit

    def allows(self, host, port):
        """Whether the allowlist (with the implicitly allowed route hosts) lets host:port out."""
        return port in self.ports and (self.allowed.matches(host) or normalize_host(host) in self.routes)

    def route_for(self, host):
        return self.routes.get(normalize_host(host))


def _expect(value, kinds, where, what):
    if isinstance(value, bool) and bool not in kinds:
        raise ConfigError("%s must be %s, not a boolean" % (where, what))
    if not isinstance(value, kinds):
        raise ConfigError("%s must be %s, not %s" % (where, what, type(value).__name__))
    return value


def _keys(obj, allowed, where):
    _expect(obj, (dict,), where, "an object")
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise ConfigError("%s: unknown key %r (known: %s)" % (where, unknown[0], ", ".join(allowed)))


def _str_list(data, key, where):
    value = data[key]
    _expect(value, (list,), where, "a list of strings")
    for index, item in enumerate(value):
        _expect(item, (str,), "%s[%d]" % (where, index), "a string")
    return value


def _number(obj, key, where, integer, minimum):
    value = obj[key]
    kinds = (int,) if integer else (int, float)
    _expect(value, kinds, where, "an integer" if integer else "a number")
    if value < minimum:
        raise ConfigError("%s must be >= %s" % (where, minimum))
    return value


def supervise_address(url, where="dlp.supervise_url"):
    """(host, port) of the supervise endpoint ``url``: ``http://<loopback address>[:port]``, no
    path, query or credentials. Egress sends it what it holds outside the firewall's checks, so
    it must be bundle-local: a loopback IP literal or ``localhost``."""
    from urllib.parse import urlsplit
    if not isinstance(url, str):
        raise ConfigError("%s must be a string" % where)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError("%s %r is not a URL" % (where, url[:80])) from None
    if parts.scheme != "http" or parts.username or parts.password or parts.query or parts.fragment \
            or parts.path not in ("", "/") or not parts.hostname:
        raise ConfigError("%s must be http://<host>[:port] (no path, query or credentials), not %r" % (where, url[:80]))
    host = parts.hostname.lower()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if host != "localhost" and (ip is None or not ip.is_loopback):
        raise ConfigError("%s must point at the bundle's loopback (127.0.0.1, ::1 or localhost), not %s"
                          % (where, host))
    return host, port or 80


def _parse_dlp(raw, where):
    _keys(raw, tuple(DEFAULT_DLP), where)
    dlp = {key: _number(raw, key, "%s.%s" % (where, key), key != "entropy_bits", 1) for key in DLP_NUMBERS}
    if raw["action"] not in DLP_ACTIONS:
        raise ConfigError("%s.action must be one of %s, not %r"
                          % (where, ", ".join(DLP_ACTIONS), str(raw["action"])[:40]))
    dlp["action"] = raw["action"]
    low, high = SUPERVISE_TIMEOUT_RANGE
    value = _number(raw, "supervise_timeout", where + ".supervise_timeout", True, low)
    if value > high:
        raise ConfigError("%s.supervise_timeout must be %d..%d seconds" % (where, low, high))
    dlp["supervise_timeout"] = value
    supervise_address(raw["supervise_url"], where + ".supervise_url")
    dlp["supervise_url"] = raw["supervise_url"]
    return dlp


def _rule(why, where):
    """ConfigError ``<where> <why>`` when a route_schema rule refused something."""
    if why:
        raise ConfigError("%s %s" % (where, why))


def _parse_route(route, where, legacy=False):
    """One route, by route_schema's rules (``legacy``: version 2's path rule)."""
    _keys(route, ROUTE_KEYS, where)
    host = route.get("host")
    if not isinstance(host, str) or not host.strip():
        raise ConfigError("%s has no host" % where)
    HostSet([host], where + ".host")
    if "*" in host or ssrf.parse_ip_literal(host) is not None:
        raise ConfigError("%s.host must be one DNS name (no wildcard, no IP literal)" % where)
    auth = route.get("auth")
    if auth is not None:
        _keys(auth, AUTH_KEYS, where + ".auth")
        why = route_schema.auth_error(auth)
        if why:
            raise ConfigError("%s.auth.%s" % (where, why))
    matches = route.get("matches")
    if matches is not None:
        _expect(matches, (list,), where + ".matches", "a list")
        for index, entry in enumerate(matches):
            entry_where = "%s.matches[%d]" % (where, index)
            _keys(entry, MATCH_KEYS, entry_where)
            paths = entry.get("paths") or []
            _expect(paths, (list,), entry_where + ".paths", "a list")
            for pindex, rule in enumerate(paths):
                rule_where = "%s.paths[%d]" % (entry_where, pindex)
                _keys(rule, PATH_KEYS, rule_where)
                kind = rule.get("type", route_schema.DEFAULT_PATH_TYPE)
                _rule(route_schema.path_type_error(kind), rule_where + ".type")
                _rule(route_schema.path_value_error(kind, rule.get("value"), legacy), rule_where + ".value")
            methods = entry.get("methods") or []
            _expect(methods, (list,), entry_where + ".methods", "a list of strings")
            for method in methods:
                _rule(route_schema.method_error(method), entry_where + ".methods:")
            headers = entry.get("headers") or {}
            _expect(headers, (dict,), entry_where + ".headers", "an object of header name -> value")
            for name, value in headers.items():
                _rule(route_schema.header_error(name, value), entry_where + ".headers:")
    return normalize_host(host), route


def _section(data, key, minimum, source):
    """A section (rate_limit, audit) of whole-number keys, each required."""
    _keys(data[key], tuple(bundle_format.SECTIONS[key]), "%s: %s" % (source, key))
    return {name: _number(data[key], name, "%s: %s.%s" % (source, key, name), integer, minimum(name))
            for name, integer in ((name, key == "audit" or name == "burst") for name in bundle_format.SECTIONS[key])}


def parse_config(data, source="egress.json"):
    """A ``Config`` from the decoded JSON ``data``; ConfigError naming the key otherwise."""
    _keys(data, TOP_KEYS, source)
    if data.get("version") is None:
        raise ConfigError("%s: version is missing: the file must say its version (%s), so its writer must write it "
                          "(the collection's bundle_config writes version %d: relaunch the bottle to render the file "
                          "again)" % (source, " or ".join(str(v) for v in bundle_format.EGRESS_VERSIONS),
                                      bundle_format.EGRESS_VERSION))
    version = data["version"]
    _expect(version, (int,), source + ": version", "an integer")
    if version not in bundle_format.EGRESS_VERSIONS:
        raise ConfigError("%s: version %r is not supported (this egress reads version %s)"
                          % (source, version, ", ".join(str(v) for v in bundle_format.EGRESS_VERSIONS)))
    # Every key is required: in the file itself (version 3), or once bundle_format.fill_v2 has given a
    # version 2 file the values of the keys it leaves out.
    data, missing = bundle_format.egress_keys(data)
    for key in bundle_format.SECTIONS:
        if data.get(key) is not None:
            _expect(data[key], (dict,), "%s: %s" % (source, key), "an object")
    if missing:
        raise ConfigError("%s: %s is missing: a version %d file must carry every key (null is not a value), "
                          "so its writer must write it (the collection's bundle_config writes each one: relaunch "
                          "the bottle to render the file again)" % (source, missing[0], version))
    mode = data["mode"]
    if mode not in MODES:
        raise ConfigError("%s: mode must be one of %s" % (source, ", ".join(MODES)))
    allowed = HostSet(_str_list(data, "allowed_hosts", source + ": allowed_hosts"), source + ": allowed_hosts")
    ports = data["ports"]
    _expect(ports, (list,), source + ": ports", "a list of port numbers")
    for index, port in enumerate(ports):
        _expect(port, (int,), "%s: ports[%d]" % (source, index), "an integer")
        if not 0 < port < 65536:
            raise ConfigError("%s: ports[%d] must be 1..65535" % (source, index))
    passthrough = HostSet(_str_list(data, "passthrough_domains", source + ": passthrough_domains"),
                          source + ": passthrough_domains")
    trusted = HostSet(_str_list(data, "trusted_domains", source + ": trusted_domains"), source + ": trusted_domains")
    networks = []
    for index, cidr in enumerate(_str_list(data, "ssrf_ip_allowlist", source + ": ssrf_ip_allowlist")):
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise ConfigError("%s: ssrf_ip_allowlist[%d] %r is not a CIDR" % (source, index, cidr)) from None
    routes = {}
    _expect(data["routes"], (list,), source + ": routes", "a list")
    for index, route in enumerate(data["routes"]):
        where = "%s: routes[%d]" % (source, index)
        if not isinstance(route, dict):
            raise ConfigError("%s must be an object with a host" % where)
        host, route = _parse_route(route, where, legacy=version == 2)
        if host in routes:
            raise ConfigError("%s: host %s has a route already" % (where, host))
        routes[host] = route
    dlp = _parse_dlp(data["dlp"], source + ": dlp")
    rate = _section(data, "rate_limit", lambda name: 0 if name == "requests_per_minute" else 1, source)
    websocket = HostSet(_str_list(data, "websocket_hosts", source + ": websocket_hosts"), source + ": websocket_hosts")
    audit = _section(data, "audit", lambda name: AUDIT_MIN_ROTATE_BYTES if name == "rotate_bytes" else 0, source)
    return Config(mode, allowed, ports, passthrough, trusted, networks, routes, dlp, rate, websocket, audit)


def _read_json(path):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # The message has a position only, never the file's content.
        raise ConfigError("%s is not JSON (%s)" % (path, exc)) from None


def load_config(path):
    """The ``Config`` in ``path``; ConfigError (or OSError when unreadable) otherwise."""
    return parse_config(_read_json(path), path)


def load_tokens(path):
    """{token_ref: value} from tokens.json; {} when the file does not exist."""
    try:
        data = _read_json(path)
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ConfigError("%s: expected an object of token_ref -> string value" % path)
    return data


def load_secrets(path):
    """The agent's known secret values from secrets.json; [] when the file does not exist."""
    try:
        data = _read_json(path)
    except FileNotFoundError:
        return []
    if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
        raise ConfigError("%s: expected a list of strings" % path)
    return data


def mtime(path):
    """The file's mtime in ns, None when it does not exist (a change either way reloads)."""
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None
