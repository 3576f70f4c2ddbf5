# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bundle's configuration: rendered once, written once, hashed from disk, recorded in the bundle.

This is the one owner of every file the sidecar bundle reads from a bottle's state
directory and of the protocol that reloads a running bundle. ``bottle_state`` (the
role's launch) and ``bottle_supervise`` (an operator's approval) both go through it.

Files (relative to the state directory ``<state_root>/<slug>/``)::

  bundle/egress.json           the firewall (egress): allowlist, ports, SSRF, routes, DLP, rate limit
  bundle/pipelock.yaml         only with the optional pipelock hop in front of egress
  bundle/git-gate.json         git-gate's upstreams and pinned host keys (no identity)
  bundle/upstream-ca.pem       extra CAs the bundle trusts upstream (may be empty)
  bundle/supervise.json        supervise's bounds
  private/egress/tokens.json   route credentials by token_ref (egress alone)
  private/egress/secrets.json  the agent's secret_env values, for egress's DLP
  private/pipelock/dlp-secrets.txt   the same values, one a line (only with pipelock)
  bundle-source.json           the policy and options the files were rendered from (not
                               mounted, no secret): an approval re-renders from it

``bundle/`` is mounted read-only at /etc/bottle, ``private/`` at /etc/bottle-private;
bottle-init stages both into /run/bottle/<daemon>/ at start and on SIGHUP.

The reload protocol:

1. ``render(policy, options)`` and ``render_private(private)`` give every declared file's bytes.
2. ``StateWrite(state_dir, files).apply()`` writes the declared files that differ (mode 0600,
   atomically) and removes every undeclared file under ``bundle/`` and ``private/<daemon>/``
   (a ``pipelock.yaml`` left from a launch with pipelock, a temporary file of a crashed write).
3. ``config_hash(state_dir)`` is computed FROM DISK after writing, over the regular files of
   ``bundle/*`` and ``private/*/*`` (exactly the declared files once step 2 ran); in check mode
   ``files_hash(files)`` gives the same value from what would be written.
4. A running bundle that has loaded a configuration carries its hash in ``HASH_FILE``
   (``/run/bottle/config-hash``, root only): ``record_loaded_hash`` writes it after a SIGHUP,
   ``read_loaded_hash`` reads it (``sidecar_bundle`` compares it with the state's hash, and falls
   back to the container's creation label). Both take an ``exec`` callable running argv as root
   in the bundle and returning ``(rc, stdout, stderr)``.
5. ``restaged_argv(files)`` is the check that bottle-init has re-staged the files after a SIGHUP.

Pure Python (no yaml, no docker): runs on the managed host inside modules and on the
controller inside the ``with_approvals`` filter.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_format, manifest, route_schema

SOURCE = "bundle-source.json"
APPROVED = "supervise-approved.json"
# Inside the bundle, written by root after each reload.
HASH_FILE = "/run/bottle/config-hash"
# Where the bundle finds the state directory's files, and where bottle-init stages them.
MOUNTED = {"bundle": "/etc/bottle", "private": "/etc/bottle-private"}
RUN_DIR = "/run/bottle"
# The daemon that reads each bundle file (bottle-init stages every bundle file for every daemon).
READERS = {"egress.json": "egress", "pipelock.yaml": "pipelock", "git-gate.json": "git-gate",
           "supervise.json": "supervise"}

# The policy keys the bundle's files are rendered from (the rest - env, secret_env, git_gate's
# identities - never reaches bundle-source.json).
POLICY_KEYS = ("allowed_domains", "egress", "firewall", "pipelock")
# supervise_enabled: supervise runs in the bundle (bottle_supervise_enabled); a DLP hit can be held for
# the operator (firewall.dlp_action: supervise) only then.
OPTION_DEFAULTS = {"pipelock": False, "ssrf_ip_allowlist": [], "upstream_ca": "", "git_gate": {}, "supervise": {},
                   "supervise_enabled": True}

# egress.json's and supervise.json's keys and defaults: bundle_format, which egress and supervise read too.
DEFAULT_PORTS = list(bundle_format.DEFAULT_PORTS)
DEFAULT_MAX_BODY_BYTES = bundle_format.DEFAULT_DLP["max_body_bytes"]
DEFAULT_REQUESTS_PER_MINUTE = bundle_format.DEFAULT_RATE["requests_per_minute"]
DEFAULT_BURST = bundle_format.DEFAULT_RATE["burst"]
ENTROPY_MIN_LENGTH = bundle_format.DEFAULT_DLP["entropy_min_length"]
ENTROPY_BITS = bundle_format.DEFAULT_DLP["entropy_bits"]
SUPERVISE_DEFAULTS = bundle_format.SUPERVISE_DEFAULTS
# What egress does with a DLP hit: refuse it, or hold it and ask the operator through supervise's
# bundle-local endpoint (images/bundle/supervise.py) for how long.
DEFAULT_DLP_ACTION = bundle_format.DEFAULT_DLP["action"]
DEFAULT_DLP_SUPERVISE_TIMEOUT = bundle_format.DEFAULT_DLP["supervise_timeout"]
SUPERVISE_RELEASE_URL = bundle_format.SUPERVISE_URL
PIPELOCK_MAX_RESPONSE_BYTES = 5242880

PIPELOCK_HEADER = """\
# pipelock configuration - rendered by botbottle.bottle (plugins/module_utils/bundle_config.py), do not edit.
# JSON, which YAML reads as is. pipelock is the optional hop in front of egress (bottle_pipelock):
# strict mode with the bottle's allowlist (allowed_domains, route hosts and approvals), TLS
# interception with the per-bottle CA, DLP with the bottle's known secrets; its upstream TCP is
# redirected to egress by bottle-init. Only 8888 faces the agent; /metrics and /stats listen on
# 127.0.0.1:9090; the kill switch and session admin API stay disabled (no api_token).
"""


class BundleConfigError(ValueError):
    pass


def option_spec():
    """OPTION_DEFAULTS as the ``options`` of a module's argument spec (bottle_state's ``options``)."""
    spec = {}
    for key, default in OPTION_DEFAULTS.items():
        kind = {bool: "bool", list: "list", str: "str", dict: "dict"}[type(default)]
        spec[key] = dict(type=kind, default=copy.deepcopy(default))
        if kind == "list":
            spec[key]["elements"] = "str"
    return spec


# -- rendering ------------------------------------------------------------------------------

def json_bytes(value):
    """JSON as every bundle file is written: sorted keys, indent 2, a final newline."""
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def text_bytes(text):
    """Text with a final newline unless empty."""
    text = "" if text is None else str(text)
    return (text if not text or text.endswith("\n") else text + "\n").encode("utf-8")


def _hosts(*lists):
    """Sorted, unique, lower-cased host names from ``lists``."""
    return sorted({str(host).lower() for hosts in lists for host in (hosts or [])})


def bundle_policy(policy):
    """The part of ``policy`` the bundle is rendered from, validated like a policy."""
    if not isinstance(policy, dict):
        raise BundleConfigError("policy must be a mapping, not %s" % manifest.type_name(policy))
    kept = {key: copy.deepcopy(policy[key]) for key in POLICY_KEYS if policy.get(key) is not None}
    manifest.check_policy(kept, "policy")
    return kept


def bundle_options(options):
    """``options`` with defaults filled in; unknown keys refused."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTION_DEFAULTS))
    if unknown:
        raise BundleConfigError("options.%s is not a known option: use %s" % (unknown[0], ", ".join(sorted(OPTION_DEFAULTS))))
    out = copy.deepcopy(OPTION_DEFAULTS)
    out.update({key: copy.deepcopy(value) for key, value in options.items() if value is not None})
    out["pipelock"] = bool(out["pipelock"])
    out["supervise_enabled"] = bool(out["supervise_enabled"])
    for key, kind in (("ssrf_ip_allowlist", list), ("git_gate", dict), ("supervise", dict)):
        if not isinstance(out[key], kind):
            raise BundleConfigError("options.%s must be a %s" % (key, "list" if kind is list else "mapping"))
    return out


def _routes(policy):
    return list((policy.get("egress") or {}).get("routes") or [])


def allowed_hosts(policy):
    """Every host the agent may reach: allowed_domains and the route hosts."""
    return _hosts(policy.get("allowed_domains"), [route["host"] for route in _routes(policy)])


def _host_setting(policy, key):
    """A host list of ``firewall:``, with the same key of ``pipelock:`` (older policies) merged in."""
    return _hosts((policy.get("firewall") or {}).get(key), (policy.get("pipelock") or {}).get(key))


def firewall_config(policy, options):
    """bundle/egress.json: what the egress addon enforces (bundle_format's version 3: every key of EGRESS_KEYS and
    of each section written, the policy's value or bundle_format's default)."""
    firewall = policy.get("firewall") or {}
    per_minute = firewall.get("requests_per_minute", DEFAULT_REQUESTS_PER_MINUTE)
    dlp_action = firewall.get("dlp_action", DEFAULT_DLP_ACTION)
    if dlp_action == "supervise" and not options["supervise_enabled"]:
        raise BundleConfigError(
            "policy.firewall.dlp_action is supervise, but supervise does not run in this bottle "
            "(bottle_supervise_enabled is false): nobody could release a held request. Set "
            "bottle_supervise_enabled: true, or firewall.dlp_action: block")
    config = {
        "version": bundle_format.EGRESS_VERSION,
        "mode": "behind-pipelock" if options["pipelock"] else "firewall",
        "allowed_hosts": allowed_hosts(policy),
        "ports": sorted(set(firewall.get("ports") or DEFAULT_PORTS)),
        "passthrough_domains": _host_setting(policy, "passthrough_domains"),
        "trusted_domains": _host_setting(policy, "trusted_domains"),
        # Where the agent may open a WebSocket (every other Upgrade is refused; none when empty).
        "websocket_hosts": _hosts(firewall.get("websocket_hosts")),
        "ssrf_ip_allowlist": list(options["ssrf_ip_allowlist"]),
        # What egress reads of each route (a route's description stays in the policy).
        "routes": [route_schema.for_egress(route) for route in _routes(policy)],
        "dlp": {"max_body_bytes": firewall.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES),
                "entropy_min_length": ENTROPY_MIN_LENGTH, "entropy_bits": ENTROPY_BITS,
                # block: a hit is refused (403); supervise: held up to supervise_timeout seconds while a
                # release proposal waits for the operator at supervise_url, sent once if approved.
                "action": dlp_action,
                "supervise_timeout": firewall.get("dlp_supervise_timeout", DEFAULT_DLP_SUPERVISE_TIMEOUT),
                "supervise_url": SUPERVISE_RELEASE_URL},
        # A burst above the per-minute rate would let a low limit through at once.
        "rate_limit": {"requests_per_minute": per_minute, "burst": min(DEFAULT_BURST, per_minute)},
        # The audit file's rotation (egress's audit/egress.jsonl).
        "audit": {key: firewall.get(name, bundle_format.DEFAULT_AUDIT[key])
                  for key, name in (("rotate_bytes", "audit_rotate_bytes"), ("keep", "audit_keep"))},
    }
    missing = bundle_format.missing_keys(config)
    if missing:  # egress would refuse the file: a key of bundle_format that this writer does not write yet
        raise BundleConfigError("egress.json: the renderer leaves out %s, which version %d requires"
                                % (missing[0], config["version"]))
    return config


def pipelock_config(policy, options):
    """bundle/pipelock.yaml's settings (pipelock 2.3.0; unknown keys make it refuse to start)."""
    settings = policy.get("pipelock") or {}
    fetch_proxy = {"listen": "0.0.0.0:8888", "timeout_seconds": 60}
    if settings.get("max_requests_per_minute") is not None:
        fetch_proxy["monitoring"] = {"max_requests_per_minute": settings["max_requests_per_minute"]}
    return {
        "version": 1,
        "mode": "strict",
        "api_allowlist": allowed_hosts(policy),
        # A refusal carries an X-Pipelock-Hint header; the agent's prompt and skill point at supervise.
        "explain_blocks": True,
        "fetch_proxy": fetch_proxy,
        # Streaming LLM responses (SSE) keep one tunnel open for long.
        "forward_proxy": {"enabled": True, "max_tunnel_seconds": 3600, "idle_timeout_seconds": 600,
                          "sni_verification": True},
        "request_body_scanning": {"enabled": True, "action": "block", "scan_headers": True, "header_mode": "all"},
        "dlp": {"include_defaults": True, "secrets_file": "/run/bottle/pipelock/dlp-secrets.txt"},
        "tls_interception": {
            "enabled": True,
            "ca_cert": "/run/bottle/pipelock/bottle-ca.pem",
            "ca_key": "/run/bottle/pipelock/bottle-ca.key",
            "passthrough_domains": _host_setting(policy, "passthrough_domains"),
            # pipelock buffers a response to scan it before sending it on: a larger one is refused.
            "max_response_bytes": settings.get("max_response_bytes") or PIPELOCK_MAX_RESPONSE_BYTES,
        },
        "trusted_domains": _host_setting(policy, "trusted_domains"),
        "ssrf": {"ip_allowlist": list(options["ssrf_ip_allowlist"])},
        "metrics_listen": "127.0.0.1:9090",
        "logging": {"format": "json", "output": "stdout", "include_allowed": True, "include_blocked": True},
        "sentry": {"enabled": False},
    }


def render(policy, options):
    """``{"bundle/<name>": bytes}``: every file of ``bundle/`` for ``policy`` (approvals merged) and ``options``."""
    policy = bundle_policy(policy)
    options = bundle_options(options)
    files = {
        "bundle/egress.json": json_bytes(firewall_config(policy, options)),
        # Upstreams and pinned host keys (identities are mounted for git-gate alone).
        "bundle/git-gate.json": json_bytes(options["git_gate"] or {"repos": []}),
        "bundle/upstream-ca.pem": text_bytes(options["upstream_ca"]),
        "bundle/supervise.json": json_bytes(dict(SUPERVISE_DEFAULTS, **options["supervise"])),
    }
    if options["pipelock"]:
        files["bundle/pipelock.yaml"] = PIPELOCK_HEADER.encode("utf-8") + json_bytes(pipelock_config(policy, options))
    return files


def known_secrets(secrets):
    """The agent's secret values, without empties and repeats, in their order."""
    out = []
    for value in secrets or []:
        value = str(value)
        if value and value not in out:
            out.append(value)
    return out


def render_private(private):
    """``{"private/<daemon>/<name>": bytes}`` from ``{"pipelock": bool, "secrets": [...], "tokens": {ref: value}}``."""
    secrets = known_secrets(private.get("secrets"))
    tokens = {str(ref): str(value) for ref, value in (private.get("tokens") or {}).items()}
    files = {
        "private/egress/tokens.json": json_bytes(tokens),
        "private/egress/secrets.json": json_bytes(secrets),
    }
    if private.get("pipelock"):
        files["private/pipelock/dlp-secrets.txt"] = text_bytes("\n".join(secrets))
    return files


def source_bytes(policy, options):
    """bundle-source.json: what ``render`` was given (no secret), so an approval can render again."""
    return json_bytes({"policy": bundle_policy(policy), "options": bundle_options(options)})


def read_json(state_dir, relative, missing):
    """The JSON value of ``relative`` in ``state_dir``; ``missing`` when the file does not exist."""
    path = os.path.join(state_dir, relative)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return missing
    except ValueError as exc:
        raise BundleConfigError("%s is not valid JSON (%s): re-run the launch (the playbook botbottle.bottle.bottle) for this bottle" % (path, exc))


def read_source(state_dir):
    """(policy, options) the bottle's files were last rendered from."""
    source = read_json(state_dir, SOURCE, None)
    if not isinstance(source, dict) or not isinstance(source.get("policy"), dict):
        raise BundleConfigError("%s has no %s (it was launched by an older release of botbottle.bottle): re-run "
                                "the launch (the playbook botbottle.bottle.bottle) for this bottle first" % (state_dir, SOURCE))
    return source["policy"], bundle_options(source.get("options"))


def release_hold(state_dir):
    """How long egress holds a request for the operator: the ``dlp.supervise_timeout`` of the bottle's rendered
    bundle/egress.json (bundle_format's default when it cannot be read)."""
    try:
        return bundle_format.release_hold(read_json(state_dir, "bundle/egress.json", None))
    except BundleConfigError:
        return bundle_format.release_hold(None)


def read_private(state_dir, pipelock):
    """The private inputs as written last (secrets and tokens), to render the private files again."""
    secrets = read_json(state_dir, "private/egress/secrets.json", None)
    tokens = read_json(state_dir, "private/egress/tokens.json", {})
    if not isinstance(secrets, list) or not isinstance(tokens, dict):
        raise BundleConfigError("%s has no readable private/egress/secrets.json and tokens.json: re-run "
                                "the launch (the playbook botbottle.bottle.bottle) for this bottle first" % state_dir)
    return {"pipelock": pipelock, "secrets": secrets, "tokens": tokens}


# -- what a person reads of a policy (diffs, check mode) ---------------------------------------

def describe_route(route):
    """One line for a route: its host, how egress authenticates it (the credential's name, never a value) and the
    requests it allows (methods, paths, the names of matched headers)."""
    parts = [str(route.get("host", "")).lower()]
    auth = route.get("auth")
    if auth:
        parts.append("auth %s %s" % (auth.get("scheme", "Bearer"), auth.get("token_ref", "?")))
    for entry in route.get("matches") or []:
        shape = []
        if entry.get("methods"):
            shape.append(",".join(str(method).upper() for method in entry["methods"]))
        for rule in entry.get("paths") or []:
            shape.append("%s %s" % (rule.get("type", "prefix"), rule.get("value")))
        if entry.get("headers"):
            shape.append("headers " + ",".join(sorted(str(name) for name in entry["headers"])))
        parts.append("match [%s]" % "; ".join(shape or ["any"]))
    return " ".join(parts)


def policy_view(policy):
    """What ``policy`` lets the agent reach, as sorted lines: ``host <name>`` per allowed host (allowed_domains and
    route hosts), ``route <describe_route>`` per route, and the firewall's host lists and ports when set. No
    credential value is in a policy, so none is here."""
    if not isinstance(policy, dict):
        return []
    lines = ["host %s" % host for host in allowed_hosts(policy)]
    lines += sorted("route %s" % describe_route(route) for route in _routes(policy))
    for key in ("passthrough_domains", "trusted_domains"):
        lines += ["%s %s" % (key.split("_", maxsplit=1)[0], host) for host in _host_setting(policy, key)]
    lines += ["websocket %s" % host for host in _hosts((policy.get("firewall") or {}).get("websocket_hosts"))]
    ports = (policy.get("firewall") or {}).get("ports")
    if ports:
        lines.append("ports %s" % ",".join(str(port) for port in sorted(set(ports))))
    return lines


def policy_changes(before, after):
    """What changes between two policies (``before`` None: nothing yet): the ``policy_view`` lines added and
    removed, by kind - ``hosts_added``, ``hosts_removed``, ``routes_added``, ``routes_removed``, ``other_added``,
    ``other_removed`` (firewall host lists and ports)."""
    old, new = set(policy_view(before) if before is not None else []), set(policy_view(after))
    out = {}
    for kind, prefix in (("hosts", "host "), ("routes", "route ")):
        out[kind + "_added"] = sorted(line[len(prefix):] for line in new - old if line.startswith(prefix))
        out[kind + "_removed"] = sorted(line[len(prefix):] for line in old - new if line.startswith(prefix))
    out["other_added"] = sorted(line for line in new - old if not line.startswith(("host ", "route ")))
    out["other_removed"] = sorted(line for line in old - new if not line.startswith(("host ", "route ")))
    return out


def policy_diff(state_dir, before, after, origins=None):
    """An Ansible diff entry showing ``policy_view`` before and after, one line each (``before`` None: nothing).
    ``origins`` maps a line to where it comes from (an agent-wide approval): said after each such line added."""
    old = set(policy_view(before)) if before is not None else set()

    def text(policy, annotate=False):
        lines = policy_view(policy) if policy is not None else []
        return "".join(line + ("  # %s" % origins[line] if annotate and origins and line in origins and line not in old
                               else "") + "\n" for line in lines)
    header = "%s: hosts and routes" % state_dir
    return dict(before_header=header, after_header=header, before=text(before), after=text(after, True))


def approval_origins(agent_approved, where):
    """``{policy_view line: note}`` of what ``agent_approved`` (an agent's supervise-approved.json) adds."""
    if not agent_approved or not (agent_approved.get("domains") or agent_approved.get("routes")):
        return {}
    try:
        lines = policy_view(merge_approved({}, agent_approved))
    except BundleConfigError:
        return {}
    return {line: "from an agent-wide approval (%s)" % where for line in lines}


# -- approvals --------------------------------------------------------------------------------

def merge_approved(policy, approved):
    """``policy`` with supervise-approved.json (``{"domains": [...], "routes": [...]}``) merged in.

    Approved domains join allowed_domains (after the policy's own); an approved route is added unless
    the policy already routes its host, so a policy route and its restrictions always win. Idempotent;
    ``policy`` is not changed. An approval that is not what bottle_supervise writes is refused.
    """
    approved = approved or {}
    where = APPROVED
    if not isinstance(approved, dict):
        raise BundleConfigError("%s must hold a mapping of domains and routes: fix or remove it" % where)
    domains = approved.get("domains") or []
    routes = approved.get("routes") or []
    if not isinstance(domains, list) or not isinstance(routes, list):
        raise BundleConfigError("%s: domains and routes must be lists: fix or remove it" % where)
    for index, host in enumerate(domains):
        why = manifest.host_error(host)
        if why:
            raise BundleConfigError("%s: domains[%d] %s; fix or remove it" % (where, index, why))
    for index, route in enumerate(routes):
        manifest.check_route(route, "%s: routes[%d]" % (where, index))

    merged = copy.deepcopy(policy or {})
    allowed = list(merged.get("allowed_domains") or [])
    seen = {host.lower() for host in allowed}
    for host in domains:
        if host.lower() not in seen:
            allowed.append(host)
            seen.add(host.lower())
    merged["allowed_domains"] = allowed
    egress = dict(merged.get("egress") or {})
    policy_routes = list(egress.get("routes") or [])
    routed = {route["host"].lower() for route in policy_routes}
    for route in routes:
        if route["host"].lower() not in routed:
            policy_routes.append(copy.deepcopy(route))
            routed.add(route["host"].lower())
    egress["routes"] = policy_routes
    merged["egress"] = egress
    return merged


def combine_approved(bottle, agent):
    """One approvals mapping from a bottle's and its agent's (``scope: agent``) supervise-approved.json.

    The bottle's entries first, in their order, then the agent's the bottle's file lacks (a route only
    when the bottle approved none for its host): an approval writes the agent's entries into the
    bottle's file as they were applied, so the order is the one the bottle's files were rendered in.
    """
    out = {"domains": [], "routes": []}
    for source in (bottle or {}, agent or {}):
        if not isinstance(source, dict):
            raise BundleConfigError("%s must hold a mapping of domains and routes: fix or remove it" % APPROVED)
        for host in source.get("domains") or []:
            if host not in out["domains"]:
                out["domains"].append(host)
        routed = {str(route.get("host", "")).lower() for route in out["routes"] if isinstance(route, dict)}
        for route in source.get("routes") or []:
            if not isinstance(route, dict) or str(route.get("host", "")).lower() not in routed:
                out["routes"].append(route)
    return out


# -- writing and hashing ----------------------------------------------------------------------

def _hashed(relative):
    parts = relative.split("/")
    return (len(parts) == 2 and parts[0] == "bundle") or (len(parts) == 3 and parts[0] == "private")


def _check_relative(relative):
    parts = relative.split("/")
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts) or not (
            _hashed(relative) or len(parts) == 1):
        raise BundleConfigError("%r is not a file of a state directory (bundle/<name>, private/<daemon>/<name> or "
                                "<name>)" % relative)


def files_hash(files):
    """SHA-256 over the relative paths and contents of the bundle and private files of ``files``."""
    digest = hashlib.sha256()
    for name in sorted(name for name in files if _hashed(name)):
        digest.update(name.encode("utf-8") + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def config_files(state_dir):
    """Relative path -> absolute path of the regular files under bundle/ and private/<daemon>/."""
    found = {}
    for top, depth in (("bundle", 1), ("private", 2)):
        base = os.path.join(state_dir, top)
        folders = [("", base)]
        if depth == 2:
            folders = [(name + "/", os.path.join(base, name)) for name in _listdir(base)
                       if os.path.isdir(os.path.join(base, name)) and not os.path.islink(os.path.join(base, name))]
        for prefix, folder in folders:
            for name in _listdir(folder):
                path = os.path.join(folder, name)
                if os.path.islink(path) or os.path.isfile(path):
                    found["%s/%s%s" % (top, prefix, name)] = path
    return found


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _read(path):
    if os.path.islink(path):
        return None  # never trusted: rewritten as a regular file
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def config_hash(state_dir):
    """The configuration hash of ``state_dir``, from what is on disk now."""
    return files_hash({relative: _read(path) or b"" for relative, path in config_files(state_dir).items()})


def write_atomic(path, data, mode=0o600):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class StateWrite:
    """What writing ``files`` (relative path -> bytes) into ``state_dir`` changes, and the writing.

    Declared files that differ are written (mode 0600, atomically); every undeclared file under
    ``bundle/`` and ``private/<daemon>/`` is removed, and so is a ``private/<daemon>/`` left empty.
    Nothing is read or written outside ``state_dir``; private files never appear in ``diff()``.
    """

    def __init__(self, state_dir, files):
        self.state_dir = state_dir
        self.changes = {}  # relative -> new bytes, or None to remove
        self.before = {}   # relative -> bytes on disk (None: absent)
        for relative in files:
            _check_relative(relative)
        for relative, data in files.items():
            current = _read(os.path.join(state_dir, relative))
            if current != data:
                self.changes[relative] = data
                self.before[relative] = current
        for relative, path in config_files(state_dir).items():
            if relative not in files:
                self.changes[relative] = None
                self.before[relative] = _read(path)

    @property
    def paths(self):
        """Absolute paths written or removed."""
        return [os.path.join(self.state_dir, relative) for relative in sorted(self.changes)]

    def touches_config(self):
        """Whether the change reaches what the bundle reads (and its hash)."""
        return any(_hashed(relative) for relative in self.changes)

    def diff(self):
        out = []
        for relative in sorted(self.changes):
            if relative.startswith("private/"):
                continue
            path = os.path.join(self.state_dir, relative)
            after = self.changes[relative]
            out.append(dict(before_header=path, after_header=path,
                            before=(self.before[relative] or b"").decode("utf-8", "replace"),
                            after=(after or b"").decode("utf-8", "replace")))
        return out

    def apply(self):
        for relative, data in sorted(self.changes.items()):
            path = os.path.join(self.state_dir, relative)
            if data is None:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                folder = os.path.dirname(path)
                if relative.startswith("private/") and not os.listdir(folder):
                    os.rmdir(folder)
                continue
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            write_atomic(path, data)


# -- the running bundle -----------------------------------------------------------------------

# argv: sh -c SCRIPT HASH_FILE VALUE (the value is a hex digest, nothing secret).
_RECORD = 'umask 077 && mkdir -p "${0%/*}" && printf "%s\\n" "$1" > "$0.new" && mv -f "$0.new" "$0"'


def read_loaded_hash(run):
    """The hash recorded in a running bundle, or "" when none is (``run(argv)`` runs as root in it)."""
    rc, out, _err = run(["cat", HASH_FILE])
    return out.strip() if rc == 0 else ""


def record_loaded_hash(run, value):
    """Record ``value`` as the hash of the configuration the running bundle has loaded."""
    rc, out, err = run(["sh", "-c", _RECORD, HASH_FILE, value or ""])
    if rc != 0:
        raise BundleConfigError("could not record the configuration hash in the bundle (%s, rc %s): %s"
                                % (HASH_FILE, rc, (err or out).strip()))


def restaged_argv(files):
    """argv, run as root in the bundle, that succeeds once bottle-init has re-staged ``files``.

    A file counts when its staged copy (/run/bottle/<daemon>/<name>) equals the mounted one, or when
    its daemon does not run in this bundle (nothing staged).
    """
    checks = []
    for relative in sorted(files):
        parts = relative.split("/")
        if parts[0] == "bundle" and parts[-1] in READERS:
            source, daemon = "%s/%s" % (MOUNTED["bundle"], parts[1]), READERS[parts[1]]
        elif parts[0] == "private" and len(parts) == 3:
            source, daemon = "%s/%s/%s" % (MOUNTED["private"], parts[1], parts[2]), parts[1]
        else:
            continue
        staged = "%s/%s/%s" % (RUN_DIR, daemon, parts[-1])
        checks.append('{ [ ! -d "%s/%s" ] || cmp -s "%s" "%s"; }' % (RUN_DIR, daemon, source, staged))
    return ["sh", "-c", " && ".join(checks) or "true"]
