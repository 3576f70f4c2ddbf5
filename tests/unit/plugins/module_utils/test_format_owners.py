# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One owner per format: each test here fails when a second reader or a second definition comes back."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import pathlib
import re
import sys

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import (
    audit_archive, audit_log, bundle_config, bundle_format, loopback, manifest, proposal_format, route_schema,
    state_meta)
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as supervise

ROOT = pathlib.Path(__file__).resolve().parents[4]
TREES = ("plugins", "images/bundle", "console")


def _python_files():
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            if not path.is_symlink() and "__pycache__" not in path.parts:
                yield path


def _functions_named(name):
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                found.append(str(path.relative_to(ROOT)))
    return found


def test_one_meta_reader(tmp_path):
    assert _functions_named("read_meta") == ["plugins/module_utils/state_meta.py"]
    assert audit_log.read_meta is state_meta.read_meta is supervise.read_meta
    assert audit_log.META == audit_archive.META == state_meta.META
    assert state_meta.read_meta(str(tmp_path)) == {}
    (tmp_path / "meta.json").write_text("[1]")
    assert state_meta.read_meta(str(tmp_path)) == {}
    (tmp_path / "meta.json").write_text("{not json")
    assert state_meta.read_meta(str(tmp_path)) == {}
    (tmp_path / "meta.json").write_text(json.dumps({"slug": "demo", "loopback_address": "127.77.0.9"}))
    assert state_meta.read_meta(str(tmp_path))["slug"] == "demo"
    # loopback reads the same file through the same reader.
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "meta.json").write_text(json.dumps({"loopback_address": "127.77.0.9"}))
    assert loopback.meta_addresses(str(tmp_path)) == {"127.77.0.9": ["demo"]}


def test_console_reads_through_module_utils_only():
    for path in sorted((ROOT / "console").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "plugins.modules" not in text and "plugins/modules" not in text, path


# -- across the bundle boundary: the bundle's copies are the collection's files ------------------------

BUNDLE = ROOT / "images" / "bundle"
SHARED = ("agent_text", "proposal_format", "route_schema", "bundle_format")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# supervise puts images/bundle on sys.path itself; egress's package is imported from there as the firewall's tests do.
BUNDLE_SUPERVISE = _load("supervise_for_format_owners", BUNDLE / "supervise.py")
if str(BUNDLE) not in sys.path:
    sys.path.insert(0, str(BUNDLE))
from bottle_firewall import audit as egress_audit, policy as egress_policy  # noqa: E402  pylint: disable=wrong-import-position


@pytest.mark.parametrize("name", SHARED)
def test_the_bundle_takes_the_shared_files_from_module_utils(name):
    link = BUNDLE / (name + ".py")
    assert link.is_symlink() and link.resolve() == (ROOT / "plugins" / "module_utils" / (name + ".py")).resolve()
    copies = [line for line in (BUNDLE / "Dockerfile").read_text().splitlines()
              if line.startswith("COPY ") and (name + ".py") in line.split()]
    assert copies, "images/bundle/Dockerfile copies no %s.py" % name


def _assigned_literals(name):
    """Files of the three trees that bind ``name`` to a literal (a tuple, dict, set, string or regex)."""
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets) \
                    and path.name != "markdown_manifest.py":  # its KINDS are kinds of markdown, not of proposals
                value = node.value
                if isinstance(value, (ast.Tuple, ast.List, ast.Dict, ast.Set, ast.Constant)) or (
                        isinstance(value, ast.Call) and getattr(value.func, "attr", "") == "compile"):
                    found.append(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("name, owner", [
    ("KINDS", "plugins/module_utils/proposal_format.py"), ("STATUSES", "plugins/module_utils/proposal_format.py"),
    ("ID_RE", "plugins/module_utils/proposal_format.py"), ("RELEASE_FIELDS", "plugins/module_utils/proposal_format.py"),
    ("AGENT_KINDS", "plugins/module_utils/proposal_format.py"),
    ("METHODS", "plugins/module_utils/route_schema.py"), ("PATH_TYPES", "plugins/module_utils/route_schema.py"),
    ("AUTH_SCHEMES", "plugins/module_utils/route_schema.py"),
    ("DEFAULT_DLP", "plugins/module_utils/bundle_format.py"), ("DEFAULT_RATE", "plugins/module_utils/bundle_format.py"),
    ("DEFAULT_AUDIT", "plugins/module_utils/bundle_format.py"),
    ("SUPERVISE_DEFAULTS", "plugins/module_utils/bundle_format.py"),
])
def test_one_definition(name, owner):
    assert _assigned_literals(name) == [owner]


def test_the_proposal_store_is_one_format_on_both_sides():
    for name in ("KINDS", "STATUSES", "RELEASE_FIELDS"):
        assert getattr(BUNDLE_SUPERVISE, name) == getattr(supervise, name) == getattr(proposal_format, name)
    assert BUNDLE_SUPERVISE.ID_RE.pattern == supervise.ID_RE.pattern == proposal_format.ID_RE.pattern
    assert BUNDLE_SUPERVISE.AGENT_KINDS == tuple(k for k in supervise.KINDS if k != "release")


def test_a_proposal_the_bundle_writes_is_read_by_the_collection(tmp_path):
    store = BUNDLE_SUPERVISE.Store(str(tmp_path / "supervise"))
    store.ensure()
    written, created = store.propose("domain", {"host": "pypi.org", "justification": "pip install"}, max_pending=5)
    assert created
    read = supervise.read_proposal(str(tmp_path), written["id"])
    assert read == written and read["status"] in supervise.STATUSES
    assert supervise.release_too_late(str(tmp_path), dict(read, created=proposal_format.now())) is False


def test_the_release_hold_is_read_alike_on_both_sides(tmp_path):
    (tmp_path / "bundle").mkdir()
    for text, expected in (('{"version": 2, "dlp": {"supervise_timeout": 300}}', 300), ("{}", 120),
                           ("not json", 120), ('{"dlp": {"supervise_timeout": true}}', 120)):
        (tmp_path / "bundle" / "egress.json").write_text(text)
        assert supervise.release_hold(str(tmp_path)) == expected
        assert BUNDLE_SUPERVISE.release_timeout(str(tmp_path / "bundle")) == expected


# -- the route schema: one set of rules for the manifest, supervise and egress --------------------------

def _manifest_accepts(route):
    try:
        manifest.check_route(route, "route")
    except manifest.ManifestError:
        return False
    return True


def _egress_accepts(route, version=bundle_format.EGRESS_VERSION):
    """Whether egress reads a file of ``version`` with ``route``: the file bundle_config writes for an empty
    policy (every key), or a version 2 file that leaves every other key out."""
    if version == 2:
        data = {"version": 2, "routes": [route]}
    else:
        data = dict(json.loads(bundle_config.render({}, {})["bundle/egress.json"]), version=version, routes=[route])
    try:
        egress_policy.parse_config(data)
    except egress_policy.ConfigError:
        return False
    return True


def _supervise_accepts(matches):
    try:
        BUNDLE_SUPERVISE.check_matches(matches)
    except BUNDLE_SUPERVISE.InvalidRequest:
        return False
    return True


HOST = "api.example.com"
ROUTES = [
    ({"host": HOST}, True),
    ({"host": HOST, "auth": {"token_ref": "API_TOKEN"}}, True),
    ({"host": HOST, "auth": {"scheme": "token", "token_ref": "T"}}, True),
    ({"host": HOST, "auth": {"scheme": "header", "token_ref": "T", "header": "X-Api-Key", "value": "Key {token}"}}, True),
    ({"host": HOST, "auth": {"scheme": "header", "token_ref": "T", "value": "{token}"}}, False),
    ({"host": HOST, "auth": {"scheme": "header", "token_ref": "T", "header": "X-Key", "value": "no placeholder"}}, False),
    ({"host": HOST, "auth": {"token_ref": "T", "header": "X-Key"}}, False),
    ({"host": HOST, "auth": {"scheme": "Basic", "token_ref": "T"}}, False),
    ({"host": HOST, "auth": {"scheme": "Bearer"}}, False),
    ({"host": HOST, "auth": {"token_ref": "not a name"}}, False),
    ({"host": HOST, "verb": "GET"}, False),
    ({"host": HOST, "matches": [{"paths": [{"value": "/v1/"}]}]}, True),
    ({"host": HOST, "matches": [{"paths": [{"type": "exact", "value": "/v1/items"}], "methods": ["GET", "post"]}]}, True),
    ({"host": HOST, "matches": [{"paths": [{"type": "regex", "value": "^/v[0-9]+/"}]}]}, True),
    ({"host": HOST, "matches": [{"paths": [{"type": "regex", "value": "(["}]}]}, False),
    ({"host": HOST, "matches": [{"paths": [{"type": "glob", "value": "/"}]}]}, False),
    ({"host": HOST, "matches": [{"paths": [{"value": ""}]}]}, False),
    ({"host": HOST, "matches": [{"paths": [{"value": 5}]}]}, False),
    ({"host": HOST, "matches": [{"paths": [{"value": "/", "kind": "x"}]}]}, False),
    ({"host": HOST, "matches": [{"methods": ["FETCH"]}]}, False),
    ({"host": HOST, "matches": [{"methods": ["TRACE"]}]}, False),
    ({"host": HOST, "matches": [{"methods": "GET"}]}, False),
    ({"host": HOST, "matches": [{"headers": {"X-Org": "ours"}}]}, True),
    ({"host": HOST, "matches": [{"headers": {"X-Org": 5}}]}, False),
    ({"host": HOST, "matches": [{"headers": {"bad name": "x"}}]}, False),
    ({"host": HOST, "matches": [{"verbs": ["GET"]}]}, False),
]


@pytest.mark.parametrize("route, accepted", ROUTES)
def test_the_manifest_and_egress_agree_on_a_route(route, accepted):
    assert _manifest_accepts(route) is accepted
    assert _egress_accepts(route) is accepted


@pytest.mark.parametrize("route, accepted", [(r, a) for r, a in ROUTES
                                             if "matches" in r and not any("headers" in e for e in r["matches"])])
def test_supervise_agrees_on_what_an_agent_may_ask(route, accepted):
    assert _supervise_accepts(route["matches"]) is accepted


def test_a_path_that_does_not_start_with_a_slash():
    """It matches no request. The manifest, supervise and egress's version 3 refuse it; egress reads version 2
    files, which could hold one (written before the rule), by the legacy rule: loaded, and matching nothing."""
    route = {"host": HOST, "matches": [{"paths": [{"type": "prefix", "value": "v1/"}]}]}
    assert not _manifest_accepts(route) and not _supervise_accepts(route["matches"])
    assert route_schema.path_value_error("prefix", "v1/") and not route_schema.path_value_error("prefix", "v1/", True)
    assert bundle_format.EGRESS_VERSION == 3 and not _egress_accepts(route, 3)
    assert _egress_accepts(route, 2)
    with pytest.raises(egress_policy.ConfigError, match=r"routes\[0\]\.matches\[0\]\.paths\[0\]\.value 'v1/' must start with /"):
        egress_policy.parse_config(dict(json.loads(bundle_config.render({}, {})["bundle/egress.json"]), routes=[route]))


def test_a_routes_description_stays_in_the_policy():
    policy = {"egress": {"routes": [{"host": HOST, "description": "the API", "auth": {"token_ref": "T"}}]}}
    assert _manifest_accepts(policy["egress"]["routes"][0])
    rendered = json.loads(bundle_config.render(policy, {})["bundle/egress.json"])
    assert rendered["routes"] == [{"host": HOST, "auth": {"token_ref": "T"}}]
    assert egress_policy.parse_config(rendered).route_for(HOST) == {"host": HOST, "auth": {"token_ref": "T"}}


# -- egress.json's keys and defaults: one table for the renderer and egress ------------------------------

def test_egress_holds_no_default_of_its_own():
    # egress imports the bundle's link to bundle_format (another module object, the same file).
    assert egress_policy.bundle_format.__file__ and egress_policy.DEFAULT_DLP == bundle_format.DEFAULT_DLP
    assert os.path.realpath(egress_policy.bundle_format.__file__) == os.path.realpath(bundle_format.__file__)
    assert egress_policy.TOP_KEYS == bundle_format.EGRESS_KEYS
    audit_defaults = bundle_format.DEFAULT_AUDIT
    assert (egress_audit.ROTATE_BYTES, egress_audit.KEEP) == (audit_defaults["rotate_bytes"], audit_defaults["keep"])
    for key, (low, high) in manifest.SUPERVISE_KEYS.items():
        assert low <= bundle_format.SUPERVISE_DEFAULTS[key] <= high
    # The renderer writes every key (version 3) for an empty policy: bundle_format's defaults, the values egress
    # gives the keys a version 2 file leaves out.
    rendered = json.loads(bundle_config.render({}, {})["bundle/egress.json"])
    assert rendered["version"] == bundle_format.EGRESS_VERSION == 3
    assert bundle_format.missing_keys(rendered) == [] and set(rendered) == set(bundle_format.EGRESS_KEYS)
    assert rendered == dict(bundle_format.fill_v2({"version": 2}), version=3)
    config, bare = egress_policy.parse_config(rendered), egress_policy.parse_config({"version": 2})
    for attribute in ("mode", "ports", "dlp", "rate_limit", "audit"):
        assert getattr(config, attribute) == getattr(bare, attribute), attribute
    assert config.audit == bundle_format.DEFAULT_AUDIT and config.dlp == bundle_format.DEFAULT_DLP


def test_egress_requires_every_key_of_what_it_reads():
    filled = bundle_format.fill_v2({"version": 2, "dlp": {"action": "supervise"}})
    assert bundle_format.missing_keys(filled) == []
    assert filled["dlp"] == dict(bundle_format.DEFAULT_DLP, action="supervise")
    assert set(filled) == set(bundle_format.EGRESS_KEYS)


def test_bottle_state_options_are_the_renderers():
    from ansible_collections.botbottle.bottle.plugins.module_utils import state_write  # pylint: disable=import-outside-toplevel
    options = state_write.STATE_SPEC["options"]["options"]
    assert {key: spec["default"] for key, spec in options.items()} == bundle_config.OPTION_DEFAULTS


# -- the two writers into a folder a daemon's uid can write (bottle-init as root, the operator's decisions) -------
# They differ (bottle-init refuses a link at the destination and chowns; the operator's write replaces the
# link itself) but keep one rule: nothing is ever written through a symlink planted in that folder.

BOTTLE_INIT = _load("bottle_init_for_format_owners", BUNDLE / "bottle_init.py")


def _planted(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("the operator's own file\n")
    store = tmp_path / "supervise"
    (store / "proposals").mkdir(parents=True)
    return victim, store


def test_neither_writer_writes_through_a_link_at_the_destination(tmp_path):
    victim, store = _planted(tmp_path)
    proposal_id = "0123456789abcdef"
    (store / "proposals" / (proposal_id + ".json")).symlink_to(victim)
    supervise.write_proposal(str(tmp_path), {"id": proposal_id, "kind": "domain", "status": "pending"})
    (store / "staged.json").symlink_to(victim)
    with pytest.raises(BOTTLE_INIT.UnsafePath, match="is a symlink|not writing through it"):
        BOTTLE_INIT.write_owned(str(store / "staged.json"), b"{}", os.getuid(), os.getgid())
    assert victim.read_text() == "the operator's own file\n"
    assert not (store / "proposals" / (proposal_id + ".json")).is_symlink()


def test_neither_writer_follows_a_linked_folder(tmp_path):
    victim, store = _planted(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (store / "proposals").rmdir()
    (store / "proposals").symlink_to(elsewhere)
    with pytest.raises(supervise.SuperviseError, match="is a symlink"):
        supervise.write_proposal(str(tmp_path), {"id": "0123456789abcdef", "kind": "domain", "status": "pending"})
    with pytest.raises(BOTTLE_INIT.UnsafePath):
        BOTTLE_INIT.write_owned(str(store / "proposals" / "x.json"), b"{}", os.getuid(), os.getgid())
    assert list(elsewhere.iterdir()) == [] and victim.read_text() == "the operator's own file\n"


def test_the_bundle_image_says_the_egress_versions_its_egress_reads():
    labels = re.findall(r'^LABEL %s="([^"]*)"' % re.escape(bundle_format.IMAGE_LABEL),
                        (BUNDLE / "Dockerfile").read_text(), re.M)
    assert labels == [" ".join(str(v) for v in bundle_format.EGRESS_VERSIONS)]
    assert bundle_format.bundle_image_problem({bundle_format.IMAGE_LABEL: labels[0]}, "x") is None
