# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_state on a temporary state root."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config as bc
from ansible_collections.botbottle.bottle.plugins.modules import bottle_state
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import Failed, run_module

SECRET, TOKEN = "ghp_secretValue0123456789", "tok-route-value-123"
POLICY = {"allowed_domains": ["api.anthropic.com"],
          "egress": {"routes": [{"host": "api.example", "auth": {"scheme": "Bearer", "token_ref": "API_TOKEN"}}]},
          # keys the bundle does not read: ignored, never stored
          "env": {"A": "1"}, "secret_env": {"NPM_TOKEN": SECRET}}


def run(root, check=False, **overrides):
    args = {"slug": "demo", "state_root": str(root), "policy": POLICY, "options": {"supervise": {"max_pending": 3}},
            "secrets": [SECRET], "tokens": {"API_TOKEN": TOKEN}, "meta": {"slug": "demo", "created": "t1"}}
    args.update(overrides)
    return run_module(bottle_state, None, args, check=check, diff=True)


def test_creates_private_tree_files_and_hash(tmp_path):
    result = run(tmp_path)
    base = tmp_path / "demo"
    assert result["changed"] and result["path"] == str(base)
    for path in (base, base / "bundle", base / "ca", base / "private", base / "private" / "egress"):
        assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o700
    assert sorted(os.listdir(str(base / "bundle"))) == [
        "egress.json", "git-gate.json", "supervise.json", "upstream-ca.pem"]
    assert sorted(os.listdir(str(base / "private"))) == ["egress"]
    egress = json.loads((base / "bundle" / "egress.json").read_text())
    assert egress["mode"] == "firewall" and egress["allowed_hosts"] == ["api.anthropic.com", "api.example"]
    assert json.loads((base / "bundle" / "supervise.json").read_text()) == {"wait_seconds": 20, "max_pending": 3}
    secrets = base / "private" / "egress" / "secrets.json"
    assert json.loads(secrets.read_text()) == [SECRET] and stat.S_IMODE(os.stat(str(secrets)).st_mode) == 0o600
    assert json.loads((base / "private" / "egress" / "tokens.json").read_text()) == {"API_TOKEN": TOKEN}
    assert result["config_hash"] == bc.config_hash(str(base))
    # neither the secrets nor the tokens show in the result or the diff
    assert SECRET not in json.dumps(result) and TOKEN not in json.dumps(result)


def test_the_source_is_kept_without_secrets_and_outside_the_mounts(tmp_path):
    run(tmp_path)
    source = json.loads((tmp_path / "demo" / bc.SOURCE).read_text())
    assert source["policy"] == {k: POLICY[k] for k in ("allowed_domains", "egress")}
    assert source["options"]["supervise"] == {"max_pending": 3} and source["options"]["pipelock"] is False
    assert SECRET not in (tmp_path / "demo" / bc.SOURCE).read_text()


def test_second_run_unchanged_and_meta_kept(tmp_path):
    first = run(tmp_path)
    second = run(tmp_path, meta={"slug": "demo", "created": "t2"})
    assert not second["changed"] and second["config_hash"] == first["config_hash"], second["changed_files"]
    assert json.loads((tmp_path / "demo" / "meta.json").read_text())["created"] == "t1"


def test_the_audit_folder_is_made_once_and_then_left_to_the_bundle(tmp_path):
    run(tmp_path)
    audit = tmp_path / "demo" / "audit"
    assert audit.is_dir() and stat.S_IMODE(audit.stat().st_mode) == 0o700
    audit.chmod(0o750)  # what the bundle's init does when it hands the folder to egress
    (audit / "egress.jsonl").write_text("{}\n")
    again = run(tmp_path)
    assert not again["changed"], again["changed_files"]
    assert stat.S_IMODE(audit.stat().st_mode) == 0o750 and (audit / "egress.jsonl").exists()
    assert again["config_hash"] == bc.config_hash(str(tmp_path / "demo")), "the audit is not configuration"


@pytest.mark.parametrize("change", [
    {"secrets": ["other"]},
    {"tokens": {"API_TOKEN": "other"}},
    {"policy": dict(POLICY, allowed_domains=["pypi.org"])},
    {"options": {"upstream_ca": "pem"}},
])
def test_a_change_changes_the_hash(tmp_path, change):
    first = run(tmp_path)
    second = run(tmp_path, **change)
    assert second["changed"] and second["config_hash"] != first["config_hash"]
    assert second["config_hash"] == bc.config_hash(str(tmp_path / "demo"))


def test_pipelock_on_then_off(tmp_path):
    on = run(tmp_path, options={"pipelock": True})
    base = tmp_path / "demo"
    assert (base / "bundle" / "pipelock.yaml").exists()
    assert (base / "private" / "pipelock" / "dlp-secrets.txt").read_text() == SECRET + "\n"
    assert json.loads((base / "bundle" / "egress.json").read_text())["mode"] == "behind-pipelock"
    off = run(tmp_path, options={"pipelock": False})
    assert off["changed"] and off["config_hash"] != on["config_hash"]
    assert str(base / "bundle" / "pipelock.yaml") in off["changed_files"]
    assert not (base / "bundle" / "pipelock.yaml").exists() and not (base / "private" / "pipelock").exists()
    # the same hash as a bottle launched without pipelock from the start
    fresh = run(tmp_path / "fresh", options={"pipelock": False})
    assert off["config_hash"] == fresh["config_hash"]


def test_a_stray_file_is_removed(tmp_path):
    first = run(tmp_path)
    (tmp_path / "demo" / "bundle" / "extra.conf").write_text("x")
    again = run(tmp_path)
    assert again["changed"] and not (tmp_path / "demo" / "bundle" / "extra.conf").exists()
    assert again["config_hash"] == first["config_hash"]


def test_check_mode_writes_nothing_and_reports_the_hash(tmp_path):
    check = run(tmp_path, check=True)
    assert check["changed"] and not (tmp_path / "demo").exists()
    assert check["config_hash"] == run(tmp_path)["config_hash"]
    changed = run(tmp_path, check=True, options={"pipelock": True})
    assert changed["changed"] and not (tmp_path / "demo" / "bundle" / "pipelock.yaml").exists()
    assert changed["config_hash"] == run(tmp_path, options={"pipelock": True})["config_hash"]


def test_diff_shows_bundle_files_only(tmp_path):
    result = run(tmp_path)
    assert result["diff"][0]["after_header"] == "%s: hosts and routes" % (tmp_path / "demo")
    shown = sorted(os.path.relpath(d["after_header"], str(tmp_path / "demo")) for d in result["diff"][1:])
    assert shown == [bc.SOURCE, "bundle/egress.json", "bundle/git-gate.json", "bundle/supervise.json",
                     "bundle/upstream-ca.pem"]


def test_diff_of_a_new_bottle_lists_every_host_and_route(tmp_path):
    result = run(tmp_path, check=True)
    view = result["diff"][0]
    assert view["before"] == ""
    assert view["after"] == "host api.anthropic.com\nhost api.example\nroute api.example auth Bearer API_TOKEN\n"
    assert result["policy_changes"] == {
        "hosts_added": ["api.anthropic.com", "api.example"], "hosts_removed": [],
        "routes_added": ["api.example auth Bearer API_TOKEN"], "routes_removed": [],
        "other_added": [], "other_removed": []}


def test_diff_of_an_allowlist_and_route_change_names_what_came_and_went(tmp_path):
    run(tmp_path)
    narrowed = {"allowed_domains": ["pypi.org"],
                "egress": {"routes": [{"host": "api.example", "auth": {"scheme": "Bearer", "token_ref": "API_TOKEN"},
                                       "matches": [{"methods": ["GET"], "paths": [{"type": "prefix",
                                                                                   "value": "/repos/"}]}]},
                                      {"host": "api.github.com", "auth": {"scheme": "token", "token_ref": "GH"}}]},
                "firewall": {"ports": [443]}}
    result = run(tmp_path, check=True, policy=narrowed, tokens={"API_TOKEN": TOKEN, "GH": "gh-" + TOKEN})
    assert result["changed"]
    assert result["policy_changes"] == {
        "hosts_added": ["api.github.com", "pypi.org"], "hosts_removed": ["api.anthropic.com"],
        "routes_added": ["api.example auth Bearer API_TOKEN match [GET; prefix /repos/]",
                         "api.github.com auth token GH"],
        "routes_removed": ["api.example auth Bearer API_TOKEN"],
        "other_added": ["ports 443"], "other_removed": []}
    view = result["diff"][0]
    assert view["before"].splitlines() == ["host api.anthropic.com", "host api.example",
                                           "route api.example auth Bearer API_TOKEN"]
    assert view["after"].splitlines() == [
        "host api.example", "host api.github.com", "host pypi.org",
        "route api.example auth Bearer API_TOKEN match [GET; prefix /repos/]", "route api.github.com auth token GH",
        "ports 443"]
    # Check mode: nothing written, and no credential value anywhere in what is shown.
    assert json.loads((tmp_path / "demo" / bc.SOURCE).read_text())["policy"]["allowed_domains"] == [
        "api.anthropic.com"]
    assert TOKEN not in json.dumps(result) and SECRET not in json.dumps(result)


def test_an_unchanged_policy_changes_nothing(tmp_path):
    run(tmp_path)
    again = run(tmp_path, check=True)
    assert not again["changed"]
    assert not any(again["policy_changes"].values())
    assert again["diff"][0]["before"] == again["diff"][0]["after"]


def test_absent(tmp_path):
    run(tmp_path)
    assert run(tmp_path, state="absent")["changed"]
    assert not run(tmp_path, state="absent")["changed"]


@pytest.mark.parametrize("overrides, needle", [
    ({"policy": {"allowed_domains": ["https://x/"]}}, "policy.allowed_domains[0]"),
    ({"policy": {"firewall": {"requests_per_minute": 0}}}, "policy.firewall.requests_per_minute"),
    ({"slug": "../evil"}, "slug"),
    ({"options": {"pipelok": True}}, "pipelok"),
])
def test_bad_input_names_the_key(tmp_path, overrides, needle):
    with pytest.raises(Failed, match=needle.replace("[", r"\[").replace("]", r"\]")):
        run(tmp_path, **overrides)
    assert not (tmp_path / "demo").exists()


def test_policy_is_required_when_present(tmp_path):
    args = {"slug": "demo", "state_root": str(tmp_path)}
    with pytest.raises(Failed, match="policy"):
        run_module(bottle_state, None, args)


def test_supervise_store_made_setgid_group_writable_and_kept(tmp_path):
    first = run(tmp_path)
    store = tmp_path / "demo" / "supervise"
    assert stat.S_IMODE(os.stat(str(store)).st_mode) == 0o2770
    assert str(store) + "/" in first["changed_files"]
    assert run(tmp_path)["changed"] is False
    os.chmod(str(store), 0o700)
    repaired = run(tmp_path)
    assert repaired["changed_files"] == [str(store) + "/ (mode)"]
    assert stat.S_IMODE(os.stat(str(store)).st_mode) == 0o2770


def test_no_supervise_store_without_supervise(tmp_path):
    run(tmp_path, options={"supervise_enabled": False})
    assert not (tmp_path / "demo" / "supervise").exists()


def test_supervise_store_in_check_mode_reported_not_made(tmp_path):
    result = run(tmp_path, check=True)
    assert str(tmp_path / "demo" / "supervise") + "/" in result["changed_files"]
    assert not (tmp_path / "demo").exists()
