# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An egress route's schema: one table and one set of rules, for every side that reads a route.

A route is what egress adds to (``auth``) and allows of (``matches``) the requests to one host::

  {host: api.example.com,
   auth: {scheme: Bearer|token|header, token_ref: NAME[, header: X-Api-Key, value: "Key {token}"]},
   matches: [{paths: [{type: exact|prefix|regex, value: /v1/}], methods: [GET], headers: {X-Org: ours}}]}

Three sides read one: the policy an operator writes (``manifest.check_route``), the route an agent
asks for through supervise (``images/bundle/supervise.py``: ``check_matches``, matches without
headers and within bounds, as agent-written text) and the file egress enforces
(``images/bundle/bottle_firewall/policy.py``). Each walks a route with its own error type and
wording; every decision about what is allowed is taken here. This file is plain Python (standard
library only, no collection import), so the bundle runs the very same code:
``images/bundle/route_schema.py`` is a symlink to it that ``bottle_image`` sends as this file
(``/opt/supervise/`` and ``/opt/egress/`` in the image). tests/unit/plugins/module_utils/
test_format_owners.py runs one set of routes through the three sides and fails when they disagree.

The rules (each ``*_error`` function returns None, or what is wrong and how to fix it, to follow the
key's path, which the caller puts in front: ``"%s.type %s" % (where, path_type_error(kind))``):
- keys: ``ROUTE_KEYS`` (a policy's route may also say what it is for, ``description``:
  ``POLICY_ROUTE_KEYS``; ``for_egress`` leaves it out of what egress reads), ``AUTH_KEYS``,
  ``MATCH_KEYS``, ``PATH_KEYS``;
- ``auth``: ``scheme`` one of ``AUTH_SCHEMES`` (default Bearer), ``token_ref`` the name of a credential
  (``TOKEN_REF_RE``), and for scheme ``header`` a header name and a value holding ``{token}``;
- a path rule: ``type`` one of ``PATH_TYPES`` (default prefix); an exact or prefix ``value`` starts
  with ``/`` (a request's path always does); a regex ``value`` compiles (Python ``re``, matched
  with ``re.search`` against the path);
- ``methods``: each one of ``METHODS`` (case-insensitive);
- ``headers``: names are HTTP tokens, values strings.
"""

from __future__ import annotations

import re

ROUTE_KEYS = ("host", "auth", "matches")
POLICY_ROUTE_KEYS = ROUTE_KEYS + ("description",)
AUTH_KEYS = ("scheme", "token_ref", "header", "value")
AUTH_SCHEMES = ("Bearer", "token", "header")
DEFAULT_SCHEME = "Bearer"
MATCH_KEYS = ("paths", "methods", "headers")
PATH_KEYS = ("type", "value")
PATH_TYPES = ("exact", "prefix", "regex")
DEFAULT_PATH_TYPE = "prefix"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
TOKEN_REF_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# An HTTP header name (RFC 9110 token).
HEADER_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
TOKEN_PLACEHOLDER = "{token}"


def _join(words):
    return ", ".join(words[:-1]) + " or " + words[-1]


def scheme_error(scheme):
    if scheme not in AUTH_SCHEMES:
        return "must be one of %s, not %r: use Bearer, token, or header (with auth.header and auth.value)" % (
            ", ".join(AUTH_SCHEMES), str(scheme)[:40])
    return None


def token_ref_error(ref):
    if not isinstance(ref, str) or not TOKEN_REF_RE.match(ref):
        return ("is required: the name of the credential (an Ansible variable or environment variable of "
                "the controller; letters, digits, '_'), never its value")
    return None


def header_auth_error(auth):
    """What is wrong with the ``header``/``value`` keys of ``auth`` (a mapping), for its scheme; the message
    starts with the key it is about (the caller puts ``<where>.auth.`` in front)."""
    if auth.get("scheme", DEFAULT_SCHEME) == "header":
        if not isinstance(auth.get("header"), str) or not HEADER_RE.match(auth["header"]):
            return "header must name the header to set (scheme header)"
        if not isinstance(auth.get("value", TOKEN_PLACEHOLDER), str) or \
                TOKEN_PLACEHOLDER not in auth.get("value", TOKEN_PLACEHOLDER):
            return "value must contain %s where the credential goes" % TOKEN_PLACEHOLDER
    elif "header" in auth or "value" in auth:
        return "header/value apply to scheme header only"
    return None


def auth_error(auth):
    """What is wrong with ``auth`` (a mapping of AUTH_KEYS), starting with the key it is about
    (``scheme``, ``token_ref``, ``header`` or ``value``: the caller puts ``<where>.auth.`` in front)."""
    for key, why in (("scheme", scheme_error(auth.get("scheme", DEFAULT_SCHEME))),
                     ("token_ref", token_ref_error(auth.get("token_ref")))):
        if why:
            return "%s %s" % (key, why)
    return header_auth_error(auth)


def path_type_error(kind):
    if kind not in PATH_TYPES:
        return "must be one of %s" % _join(PATH_TYPES)
    return None


def path_value_error(kind, value, legacy=False):
    """What is wrong with a path rule's ``value`` of type ``kind`` (None: fine). ``legacy``: the rule of
    egress.json version 2, which let an exact or prefix value not start with ``/`` (it matched nothing)."""
    if not isinstance(value, str) or not value:
        return "is required: a path such as /v1/ (or a regex for type regex)"
    if kind == "regex":
        try:
            re.compile(value)
        except re.error as exc:
            return "is not a valid regex (%s): fix the pattern" % exc
    elif not value.startswith("/") and not legacy:
        return "%r must start with / (a request's path always does)" % value[:80]
    return None


def method_error(method):
    if not isinstance(method, str) or method.upper() not in METHODS:
        return "%r is not an HTTP method a route matches: it is not one of %s" % (str(method)[:20], ", ".join(METHODS))
    return None


def header_error(name, value):
    if not isinstance(name, str) or not HEADER_RE.match(name):
        return "%r is not a header name" % (str(name)[:40],)
    if not isinstance(value, str):
        return "%s must be a string (the value the header must have)" % name
    return None


def for_egress(route):
    """``route`` as egress reads it: its ROUTE_KEYS only (a policy's ``description`` stays behind)."""
    return {key: route[key] for key in ROUTE_KEYS if key in route}
