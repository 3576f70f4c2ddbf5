# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""egress.json (version 2): what the bottle may reach, read strictly.

The collection renders this file and bottle-init stages it where only egress's uid can read
it. A typo in it must never silently open (or close) something, so an unknown key or a value
of the wrong type refuses the whole file with a message naming the key; the addon then keeps
the previous configuration in force, or refuses everything when there is none (at start).

``dlp``: ``max_body_bytes``, ``entropy_min_length``, ``entropy_bits``, and what a hit does:
``action`` ``block`` (refused) or ``supervise`` (held for the operator, see release.py) for at
most ``supervise_timeout`` seconds (5..600), asking supervise at ``supervise_url`` (plain HTTP
on the bundle's loopback only: egress sends it outside its own checks). Missing keys take the
defaults (block, 120, http://127.0.0.1:9101), so files rendered before them still load.

``audit``: ``rotate_bytes`` (the size at which egress.jsonl rotates, at least 1 MiB) and ``keep``
(how many rotated files are kept, egress.jsonl.1 the newest; 0 keeps every one). Missing: 64 MiB
and 16 (see audit.py).

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

from . import ssrf

DEFAULT_PORTS = (80, 443)
DLP_ACTIONS = ("block", "supervise")
SUPERVISE_TIMEOUT_RANGE = (5, 600)
DEFAULT_DLP = {"max_body_bytes": 16 * 1024 * 1024, "entropy_min_length": 20, "entropy_bits": 4.5,
               "action": "block", "supervise_timeout": 120, "supervise_url": "http://127.0.0.1:9101"}
DLP_NUMBERS = ("max_body_bytes", "entropy_min_length", "entropy_bits")
# Sized in ratelimit.py's docstring: no real tool run (npm ci of thousands of packages) reaches it.
DEFAULT_RATE = {"requests_per_minute": 6000, "burst": 3000}
# The audit file's rotation (audit.py: ROTATE_BYTES, KEEP; the collection's bundle_config keeps them equal).
DEFAULT_AUDIT = {"rotate_bytes": 64 * 1024 * 1024, "keep": 16}
AUDIT_MIN_ROTATE_BYTES = 1024 * 1024
MODES = ("firewall", "behind-pipelock")
TOP_KEYS = ("version", "mode", "allowed_hosts", "ports", "passthrough_domains", "trusted_domains",
            "ssrf_ip_allowlist", "routes", "dlp", "rate_limit", "websocket_hosts", "audit")
ROUTE_KEYS = ("host", "auth", "matches")
AUTH_KEYS = ("scheme", "header", "value", "token_ref")
AUTH_SCHEMES = ("Bearer", "token", "header")
MATCH_KEYS = ("paths", "methods", "headers")
PATH_KEYS = ("type", "value")
PATH_TYPES = ("exact", "prefix", "regex")

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


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
    value = data.get(key)
    if value is None:
        return []
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
    dlp = dict(DEFAULT_DLP)
    if raw is None:
        return dlp
    _keys(raw, tuple(DEFAULT_DLP), where)
    for key in raw:
        if key in DLP_NUMBERS:
            dlp[key] = _number(raw, key, "%s.%s" % (where, key), key != "entropy_bits", 1)
    if "action" in raw:
        if raw["action"] not in DLP_ACTIONS:
            raise ConfigError("%s.action must be one of %s, not %r"
                              % (where, ", ".join(DLP_ACTIONS), str(raw["action"])[:40]))
        dlp["action"] = raw["action"]
    if "supervise_timeout" in raw:
        low, high = SUPERVISE_TIMEOUT_RANGE
        value = _number(raw, "supervise_timeout", where + ".supervise_timeout", True, low)
        if value > high:
            raise ConfigError("%s.supervise_timeout must be %d..%d seconds" % (where, low, high))
        dlp["supervise_timeout"] = value
    if "supervise_url" in raw:
        supervise_address(raw["supervise_url"], where + ".supervise_url")
        dlp["supervise_url"] = raw["supervise_url"]
    return dlp


def _parse_route(route, where):
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
        scheme = auth.get("scheme", "Bearer")
        if scheme not in AUTH_SCHEMES:
            raise ConfigError("%s.auth.scheme must be one of %s" % (where, ", ".join(AUTH_SCHEMES)))
        for key in ("header", "value", "token_ref"):
            if key in auth:
                _expect(auth[key], (str,), "%s.auth.%s" % (where, key), "a string")
        if not auth.get("token_ref"):
            raise ConfigError("%s.auth.token_ref is required (the name of the credential in tokens.json)" % where)
        if scheme == "header" and not _TOKEN.match(auth.get("header") or "Authorization"):
            raise ConfigError("%s.auth.header is not a header name" % where)
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
                if rule.get("type", "prefix") not in PATH_TYPES:
                    raise ConfigError("%s.type must be one of %s" % (rule_where, ", ".join(PATH_TYPES)))
                _expect(rule.get("value", ""), (str,), rule_where + ".value", "a string")
                if rule.get("type") == "regex":
                    try:
                        re.compile(rule["value"])
                    except re.error as exc:
                        raise ConfigError("%s.value is not a valid regex: %s" % (rule_where, exc)) from None
            _str_list(entry, "methods", entry_where + ".methods")
            headers = entry.get("headers") or {}
            _expect(headers, (dict,), entry_where + ".headers", "an object of header name -> value")
            for name, value in headers.items():
                _expect(value, (str,), "%s.headers.%s" % (entry_where, name), "a string")
    return normalize_host(host), route


def parse_config(data, source="egress.json"):
    """A ``Config`` from the decoded JSON ``data``; ConfigError naming the key otherwise."""
    _keys(data, TOP_KEYS, source)
    version = data.get("version", 2)
    _expect(version, (int,), source + ": version", "an integer")
    if version != 2:
        raise ConfigError("%s: version %r is not supported (this egress reads version 2)" % (source, version))
    mode = data.get("mode") or "firewall"
    if mode not in MODES:
        raise ConfigError("%s: mode must be one of %s" % (source, ", ".join(MODES)))
    allowed = HostSet(_str_list(data, "allowed_hosts", source + ": allowed_hosts"), source + ": allowed_hosts")
    ports = data.get("ports")
    if ports is None:
        ports = list(DEFAULT_PORTS)
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
    raw_routes = data.get("routes")
    if raw_routes is not None:
        _expect(raw_routes, (list,), source + ": routes", "a list")
        for index, route in enumerate(raw_routes):
            where = "%s: routes[%d]" % (source, index)
            if not isinstance(route, dict):
                raise ConfigError("%s must be an object with a host" % where)
            host, route = _parse_route(route, where)
            if host in routes:
                raise ConfigError("%s: host %s has a route already" % (where, host))
            routes[host] = route
    dlp = _parse_dlp(data.get("dlp"), source + ": dlp")
    rate = dict(DEFAULT_RATE)
    if data.get("rate_limit") is not None:
        _keys(data["rate_limit"], tuple(DEFAULT_RATE), source + ": rate_limit")
        for key in data["rate_limit"]:
            minimum = 0 if key == "requests_per_minute" else 1
            rate[key] = _number(data["rate_limit"], key, "%s: rate_limit.%s" % (source, key), key == "burst", minimum)
    websocket = HostSet(_str_list(data, "websocket_hosts", source + ": websocket_hosts"), source + ": websocket_hosts")
    audit = dict(DEFAULT_AUDIT)
    if data.get("audit") is not None:
        _keys(data["audit"], tuple(DEFAULT_AUDIT), source + ": audit")
        for key in data["audit"]:
            minimum = AUDIT_MIN_ROTATE_BYTES if key == "rotate_bytes" else 0
            audit[key] = _number(data["audit"], key, "%s: audit.%s" % (source, key), True, minimum)
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
