# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bundle_config: rendering, the approval merge, the writer, the hash from disk, the in-bundle record."""

from __future__ import annotations

import copy
import json
import os
import stat

import pytest
import yaml

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config as bc
from ansible_collections.botbottle.bottle.plugins.module_utils.manifest import ManifestError

POLICY = {
    "allowed_domains": ["Zeta.example", "allowed.example", "*.cdn.example"],
    "egress": {"routes": [{"host": "api.example", "auth": {"scheme": "Bearer", "token_ref": "API_TOKEN"},
                           "matches": [{"methods": ["GET"]}]}]},
}
OPTIONS = {"pipelock": False, "ssrf_ip_allowlist": ["10.9.0.0/24"], "upstream_ca": "-----BEGIN CERTIFICATE-----",
           "git_gate": {}, "supervise": {"wait_seconds": 5}}
PRIVATE = {"pipelock": False, "secrets": ["s3cret-one", "", "s3cret-two", "s3cret-one"], "tokens": {"API_TOKEN": "tok-value-123"}}

# The firewall's contract with the egress addon (version 3: every key written) for POLICY and OPTIONS.
EGRESS_GOLDEN = {
    "version": 3,
    "mode": "firewall",
    "allowed_hosts": ["*.cdn.example", "allowed.example", "api.example", "zeta.example"],
    "ports": [80, 443],
    "passthrough_domains": [],
    "trusted_domains": [],
    "websocket_hosts": [],
    "ssrf_ip_allowlist": ["10.9.0.0/24"],
    "routes": POLICY["egress"]["routes"],
    "dlp": {"max_body_bytes": 16777216, "entropy_min_length": 20, "entropy_bits": 4.5,
            "action": "block", "supervise_timeout": 120, "supervise_url": "http://127.0.0.1:9101"},
    "rate_limit": {"requests_per_minute": 6000, "burst": 3000},
    "audit": {"rotate_bytes": 67108864, "keep": 16},
}

# What roles/bottle/templates/pipelock.yaml.j2 (removed) rendered for POLICY_PL, parsed: the Python
# rendering keeps every key and value of it.
POLICY_PL = {
    "allowed_domains": ["b.example", "a.example"],
    "egress": {"routes": [{"host": "api.x.com", "auth": {"token_ref": "T"}}]},
    "pipelock": {"trusted_domains": ["t.example"], "passthrough_domains": ["p.example"],
                 "max_requests_per_minute": 5, "max_response_bytes": 99},
}
PIPELOCK_GOLDEN = {
    "version": 1, "mode": "strict", "api_allowlist": ["a.example", "api.x.com", "b.example"], "explain_blocks": True,
    "fetch_proxy": {"listen": "0.0.0.0:8888", "timeout_seconds": 60, "monitoring": {"max_requests_per_minute": 5}},
    "forward_proxy": {"enabled": True, "max_tunnel_seconds": 3600, "idle_timeout_seconds": 600,
                      "sni_verification": True},
    "request_body_scanning": {"enabled": True, "action": "block", "scan_headers": True, "header_mode": "all"},
    "dlp": {"include_defaults": True, "secrets_file": "/run/bottle/pipelock/dlp-secrets.txt"},
    "tls_interception": {"enabled": True, "ca_cert": "/run/bottle/pipelock/bottle-ca.pem",
                         "ca_key": "/run/bottle/pipelock/bottle-ca.key", "passthrough_domains": ["p.example"],
                         "max_response_bytes": 99},
    "trusted_domains": ["t.example"], "ssrf": {"ip_allowlist": ["10.0.0.0/8"]}, "metrics_listen": "127.0.0.1:9090",
    "logging": {"format": "json", "output": "stdout", "include_allowed": True, "include_blocked": True},
    "sentry": {"enabled": False},
}


def everything(options=None):
    """Every declared file of a bottle of POLICY (OPTIONS, or ``options``) and PRIVATE."""
    options = OPTIONS if options is None else options
    files = bc.render(POLICY, options)
    files.update(bc.render_private(dict(PRIVATE, pipelock=options.get("pipelock", False))))
    return files


# -- render ---------------------------------------------------------------------------------------

def test_egress_json_is_the_firewall_contract():
    files = bc.render(POLICY, OPTIONS)
    assert sorted(files) == ["bundle/egress.json", "bundle/git-gate.json", "bundle/supervise.json",
                             "bundle/upstream-ca.pem"]
    data = files["bundle/egress.json"]
    assert json.loads(data) == EGRESS_GOLDEN
    assert data == (json.dumps(EGRESS_GOLDEN, indent=2, sort_keys=True) + "\n").encode()


def test_the_audit_rotation_is_always_rendered():
    """Issue 23: firewall.audit_rotate_bytes / audit_keep reach egress.json as audit.rotate_bytes / keep; version 3
    writes the section with bundle_format's defaults when the policy does not set them (every key written)."""
    policy = copy.deepcopy(POLICY)
    policy["firewall"] = {"audit_keep": 0}
    assert json.loads(bc.render(policy, OPTIONS)["bundle/egress.json"]) == dict(
        EGRESS_GOLDEN, audit={"rotate_bytes": 67108864, "keep": 0})
    policy["firewall"] = {"audit_keep": 4, "audit_rotate_bytes": 1048576}
    rendered = json.loads(bc.render(policy, OPTIONS)["bundle/egress.json"])
    assert rendered["audit"] == {"keep": 4, "rotate_bytes": 1048576}


def test_a_format_key_the_renderer_does_not_write_fails_the_render(monkeypatch):
    """A key added to bundle_format's version 3 but not to the renderer is found when rendering, not by egress."""
    monkeypatch.setitem(bc.bundle_format.SECTIONS, "audit", dict(bc.bundle_format.DEFAULT_AUDIT, compress=True))
    with pytest.raises(bc.BundleConfigError, match="leaves out audit.compress, which version 3 requires"):
        bc.render(POLICY, OPTIONS)


def test_the_other_bundle_files():
    files = bc.render(POLICY, OPTIONS)
    assert json.loads(files["bundle/git-gate.json"]) == {"repos": []}
    assert json.loads(files["bundle/supervise.json"]) == {"wait_seconds": 5, "max_pending": 20}
    assert files["bundle/upstream-ca.pem"] == b"-----BEGIN CERTIFICATE-----\n"
    assert bc.render(POLICY, {})["bundle/upstream-ca.pem"] == b""
    repos = {"repos": [{"name": "r", "url": "ssh://git@h/r.git", "known_hosts": "h ssh-ed25519 AAAA",
                        "protected_branches": ["main"]}]}
    assert json.loads(bc.render(POLICY, dict(OPTIONS, git_gate=repos))["bundle/git-gate.json"]) == repos


def test_pipelock_yaml_keeps_the_templates_keys_and_values():
    files = bc.render(POLICY_PL, {"pipelock": True, "ssrf_ip_allowlist": ["10.0.0.0/8"]})
    text = files["bundle/pipelock.yaml"].decode()
    assert text.startswith("# pipelock configuration") and text.endswith("}\n")
    assert yaml.safe_load(text) == PIPELOCK_GOLDEN
    assert json.loads("".join(line for line in text.splitlines(True) if not line.startswith("#"))) == PIPELOCK_GOLDEN
    assert json.loads(files["bundle/egress.json"])["mode"] == "behind-pipelock"


def test_pipelock_without_a_rate_or_sizes_takes_the_defaults():
    parsed = yaml.safe_load(bc.render(POLICY, {"pipelock": True})["bundle/pipelock.yaml"])
    assert "monitoring" not in parsed["fetch_proxy"]
    assert parsed["tls_interception"]["max_response_bytes"] == 5242880
    assert parsed["api_allowlist"] == EGRESS_GOLDEN["allowed_hosts"]


def test_no_yaml_import_in_module_utils():
    with open(bc.__file__, encoding="utf-8") as handle:
        assert "import yaml" not in handle.read()


def test_firewall_settings_and_pipelock_host_lists_merge():
    policy = dict(POLICY, firewall={"passthrough_domains": ["Pass.example"], "trusted_domains": ["t1.example"],
                                    "ports": [8443, 443, 443], "max_body_bytes": 1024, "requests_per_minute": 30},
                  pipelock={"passthrough_domains": ["old.example", "pass.example"], "trusted_domains": ["t2.example"],
                            "max_response_bytes": 7, "max_requests_per_minute": 9})
    egress = json.loads(bc.render(policy, {})["bundle/egress.json"])
    assert egress["passthrough_domains"] == ["old.example", "pass.example"]
    assert egress["trusted_domains"] == ["t1.example", "t2.example"]
    assert egress["ports"] == [443, 8443]
    assert egress["dlp"]["max_body_bytes"] == 1024
    # the pipelock hop's own limits never reach the firewall; a burst never exceeds the rate
    assert egress["rate_limit"] == {"requests_per_minute": 30, "burst": 30}
    pipelock = yaml.safe_load(bc.render(policy, {"pipelock": True})["bundle/pipelock.yaml"])
    assert pipelock["tls_interception"]["passthrough_domains"] == ["old.example", "pass.example"]
    assert pipelock["trusted_domains"] == ["t1.example", "t2.example"]


def test_websocket_hosts_reach_egress_and_egress_reads_them():
    import pathlib
    import sys
    bundle = str(pathlib.Path(__file__).resolve().parents[4] / "images" / "bundle")
    if bundle not in sys.path:
        sys.path.insert(0, bundle)
    from bottle_firewall import policy as egress_policy
    rendered = bc.render(dict(POLICY, firewall={"websocket_hosts": ["WS.example", "*.live.example"]}), {})
    egress = json.loads(rendered["bundle/egress.json"])
    assert egress["websocket_hosts"] == ["*.live.example", "ws.example"]
    config = egress_policy.parse_config(egress)
    assert config.websocket.matches("ws.example") and config.websocket.matches("a.live.example")
    assert not config.websocket.matches("allowed.example")
    assert "websocket ws.example" in bc.policy_view(dict(POLICY, firewall={"websocket_hosts": ["ws.example"]}))
    # none by default: every Upgrade is refused
    assert not egress_policy.parse_config(json.loads(bc.render(POLICY, {})["bundle/egress.json"])).websocket


def test_render_private_with_and_without_pipelock():
    off = bc.render_private(PRIVATE)
    assert sorted(off) == ["private/egress/secrets.json", "private/egress/tokens.json"]
    assert json.loads(off["private/egress/secrets.json"]) == ["s3cret-one", "s3cret-two"]
    assert json.loads(off["private/egress/tokens.json"]) == {"API_TOKEN": "tok-value-123"}
    on = bc.render_private(dict(PRIVATE, pipelock=True))
    assert on["private/pipelock/dlp-secrets.txt"] == b"s3cret-one\ns3cret-two\n"
    assert bc.render_private({"pipelock": True})["private/pipelock/dlp-secrets.txt"] == b""


def test_render_ignores_keys_the_bundle_does_not_read_and_keeps_them_out_of_the_source():
    policy = dict(POLICY, env={"A": "1"}, secret_env={"NPM_TOKEN": "npm-secret"}, description="d")
    assert bc.render(policy, OPTIONS) == bc.render(POLICY, OPTIONS)
    source = bc.source_bytes(policy, OPTIONS)
    assert b"npm-secret" not in source and json.loads(source)["policy"] == POLICY


def test_dlp_supervise_holds_for_the_operator():
    policy = dict(POLICY, firewall={"dlp_action": "supervise", "dlp_supervise_timeout": 45, "max_body_bytes": 1024})
    dlp = json.loads(bc.render(policy, OPTIONS)["bundle/egress.json"])["dlp"]
    assert dlp == {"max_body_bytes": 1024, "entropy_min_length": 20, "entropy_bits": 4.5, "action": "supervise",
                   "supervise_timeout": 45, "supervise_url": "http://127.0.0.1:9101"}
    # the same with the pipelock hop in front, and with supervise_enabled said explicitly
    egress = json.loads(bc.render(policy, dict(OPTIONS, pipelock=True, supervise_enabled=True))["bundle/egress.json"])
    assert egress["dlp"] == dlp and egress["mode"] == "behind-pipelock"


def test_dlp_block_is_the_default_and_changes_nothing_else():
    blocked = bc.render(dict(POLICY, firewall={"dlp_action": "block"}), OPTIONS)
    assert blocked == bc.render(POLICY, OPTIONS)
    # a timeout without supervise is rendered (harmless) and changes no other key
    timed = json.loads(bc.render(dict(POLICY, firewall={"dlp_supervise_timeout": 300}), OPTIONS)["bundle/egress.json"])
    assert timed["dlp"] == dict(EGRESS_GOLDEN["dlp"], supervise_timeout=300)
    assert {k: v for k, v in timed.items() if k != "dlp"} == {k: v for k, v in EGRESS_GOLDEN.items() if k != "dlp"}


def test_dlp_supervise_without_supervise_names_both_keys():
    policy = dict(POLICY, firewall={"dlp_action": "supervise"})
    with pytest.raises(bc.BundleConfigError) as err:
        bc.render(policy, dict(OPTIONS, supervise_enabled=False))
    assert "firewall.dlp_action" in str(err.value) and "bottle_supervise_enabled" in str(err.value)
    assert isinstance(err.value, ValueError)  # bottle_state's fail_json catches ValueError
    # block needs no supervise
    off = bc.render(POLICY, dict(OPTIONS, supervise_enabled=False))
    assert off == bc.render(POLICY, OPTIONS)


def test_supervise_enabled_is_kept_in_the_source_and_defaults_to_true():
    assert bc.bundle_options({})["supervise_enabled"] is True
    assert bc.bundle_options({"supervise_enabled": 0})["supervise_enabled"] is False
    # a bundle-source.json of the previous release has no supervise_enabled: it ran supervise
    assert json.loads(bc.source_bytes(POLICY, OPTIONS))["options"]["supervise_enabled"] is True
    assert json.loads(bc.source_bytes(POLICY, dict(OPTIONS, supervise_enabled=False)))["options"][
        "supervise_enabled"] is False


def test_an_older_source_with_dlp_supervise_renders_again(tmp_path):
    policy = dict(POLICY, firewall={"dlp_action": "supervise"})
    older = {"policy": policy, "options": dict(OPTIONS)}  # no supervise_enabled key
    (tmp_path / bc.SOURCE).write_text(json.dumps(older))
    source_policy, options = bc.read_source(str(tmp_path))
    assert json.loads(bc.render(source_policy, options)["bundle/egress.json"])["dlp"]["action"] == "supervise"


@pytest.mark.parametrize("policy, options, needle", [
    ({"allowed_domains": ["https://x/"]}, {}, "policy.allowed_domains[0]"),
    (dict(POLICY, firewall={"dlp_action": "hold"}), {}, "policy.firewall.dlp_action 'hold'"),
    (dict(POLICY, firewall={"dlp_supervise_timeout": 0}), {}, "policy.firewall.dlp_supervise_timeout 0"),
    ({"firewall": {"ports": [0]}}, {}, "policy.firewall.ports[0]"),
    ("nope", {}, "policy must be a mapping"),
    (POLICY, {"pipelok": True}, "options.pipelok is not a known option"),
    (POLICY, {"ssrf_ip_allowlist": "10.0.0.0/8"}, "options.ssrf_ip_allowlist must be a list"),
])
def test_bad_input_names_the_key(policy, options, needle):
    with pytest.raises(ValueError) as err:
        bc.render(policy, options)
    assert needle in str(err.value)


# -- merge_approved -------------------------------------------------------------------------------

APPROVED = {"domains": ["pypi.org", "ALLOWED.example"],
            "routes": [{"host": "api.example", "auth": {"scheme": "Bearer", "token_ref": "OTHER"}},
                       {"host": "api.github.com", "auth": {"scheme": "Bearer", "token_ref": "GH"}}]}


def test_merge_adds_domains_and_routes_after_the_policys_own():
    merged = bc.merge_approved(POLICY, APPROVED)
    assert merged["allowed_domains"] == POLICY["allowed_domains"] + ["pypi.org"]
    assert [r["host"] for r in merged["egress"]["routes"]] == ["api.example", "api.github.com"]


def test_merge_never_drops_a_restriction_of_a_policy_route():
    merged = bc.merge_approved(POLICY, APPROVED)
    assert merged["egress"]["routes"][0] == POLICY["egress"]["routes"][0]
    assert merged["egress"]["routes"][0]["matches"] == [{"methods": ["GET"]}]


def test_merge_is_idempotent_and_leaves_its_inputs_alone():
    before = copy.deepcopy((POLICY, APPROVED))
    once = bc.merge_approved(POLICY, APPROVED)
    assert bc.merge_approved(once, APPROVED) == once
    assert (POLICY, APPROVED) == before
    assert bc.merge_approved(POLICY, {}) == dict(POLICY, egress={"routes": POLICY["egress"]["routes"]})
    assert bc.merge_approved(POLICY, None) == bc.merge_approved(POLICY, {"domains": [], "routes": []})


def test_merge_one_by_one_equals_merge_of_all():
    step = POLICY
    for index in range(len(APPROVED["domains"])):
        step = bc.merge_approved(step, {"domains": APPROVED["domains"][:index + 1], "routes": []})
    step = bc.merge_approved(step, APPROVED)
    assert step == bc.merge_approved(POLICY, APPROVED)


@pytest.mark.parametrize("approved, needle", [
    ({"domains": ["not a host"]}, "domains[0]"),
    ({"routes": [{"host": "*.x.com"}]}, "routes[0].host"),
    ({"domains": "pypi.org"}, "must be lists"),
    (["pypi.org"], "must hold a mapping"),
])
def test_merge_refuses_approvals_supervise_never_writes(approved, needle):
    with pytest.raises(ValueError) as err:
        bc.merge_approved(POLICY, approved)
    assert needle in str(err.value) and bc.APPROVED in str(err.value)


# -- writing and hashing --------------------------------------------------------------------------

def write(state_dir, files):
    change = bc.StateWrite(str(state_dir), files)
    change.apply()
    return change


def test_written_files_are_private_and_the_hash_comes_from_disk(tmp_path):
    files = everything()
    change = write(tmp_path, files)
    assert sorted(change.changes) == sorted(files)
    for relative in files:
        assert stat.S_IMODE(os.stat(str(tmp_path / relative)).st_mode) == 0o600
        assert (tmp_path / relative).read_bytes() == files[relative]
    assert bc.config_hash(str(tmp_path)) == bc.files_hash(files)
    assert bc.StateWrite(str(tmp_path), files).changes == {}


def test_every_declared_file_counts_in_the_hash(tmp_path):
    files = everything(options=dict(OPTIONS, pipelock=True))
    write(tmp_path, files)
    reference = bc.config_hash(str(tmp_path))
    for relative in files:
        path = tmp_path / relative
        original = path.read_bytes()
        path.write_bytes(original + b" ")
        assert bc.config_hash(str(tmp_path)) != reference, relative
        path.write_bytes(original)
    assert bc.config_hash(str(tmp_path)) == reference


def test_undeclared_files_are_removed_and_leave_the_hash_alone(tmp_path):
    with_pipelock = everything(options=dict(OPTIONS, pipelock=True))
    write(tmp_path, with_pipelock)
    (tmp_path / "bundle" / ".tmp-crashed").write_bytes(b"half")
    (tmp_path / "private" / "stray").mkdir()
    (tmp_path / "private" / "stray" / "x").write_bytes(b"x")
    without = everything()
    change = write(tmp_path, without)
    removed = sorted(r for r, data in change.changes.items() if data is None)
    assert removed == ["bundle/.tmp-crashed", "bundle/pipelock.yaml", "private/pipelock/dlp-secrets.txt",
                       "private/stray/x"]
    assert not (tmp_path / "bundle" / "pipelock.yaml").exists()
    assert not (tmp_path / "private" / "pipelock").exists() and not (tmp_path / "private" / "stray").exists()
    assert bc.config_hash(str(tmp_path)) == bc.files_hash(without)
    assert json.loads((tmp_path / "bundle" / "egress.json").read_bytes())["mode"] == "firewall"


def test_files_outside_the_config_and_the_source_are_not_hashed(tmp_path):
    files = everything()
    write(tmp_path, dict(files, **{bc.SOURCE: bc.source_bytes(POLICY, OPTIONS)}))
    (tmp_path / "meta.json").write_text("{}")
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "bottle-ca.pem").write_text("cert")
    assert bc.config_hash(str(tmp_path)) == bc.files_hash(files)


def test_a_symlink_is_never_trusted(tmp_path):
    files = everything()
    write(tmp_path, files)
    outside = tmp_path / "outside"
    outside.write_bytes(files["bundle/egress.json"])
    os.unlink(str(tmp_path / "bundle" / "egress.json"))
    os.symlink(str(outside), str(tmp_path / "bundle" / "egress.json"))
    assert "bundle/egress.json" in write(tmp_path, files).changes
    assert not os.path.islink(str(tmp_path / "bundle" / "egress.json"))


def test_diff_never_shows_private_files(tmp_path):
    diff = bc.StateWrite(str(tmp_path), everything()).diff()
    assert {d["after_header"].split(str(tmp_path) + "/")[1] for d in diff} == set(bc.render(POLICY, OPTIONS))
    assert "s3cret" not in json.dumps(diff) and "tok-value-123" not in json.dumps(diff)


@pytest.mark.parametrize("name", ["../evil", "bundle/../x", "bundle/.hidden", "private/egress", "bundle/a/b", "/abs"])
def test_names_stay_inside_the_state_directory(tmp_path, name):
    with pytest.raises(bc.BundleConfigError, match="not a file of a state directory"):
        bc.StateWrite(str(tmp_path), {name: b"x"})


def test_source_and_private_inputs_read_back(tmp_path):
    files = everything()
    write(tmp_path, dict(files, **{bc.SOURCE: bc.source_bytes(POLICY, OPTIONS)}))
    policy, options = bc.read_source(str(tmp_path))
    private = bc.read_private(str(tmp_path), options["pipelock"])
    assert dict(bc.render(policy, options), **bc.render_private(private)) == files


def test_a_state_of_an_older_release_names_the_fix(tmp_path):
    with pytest.raises(bc.BundleConfigError, match=r"re-run the launch \(the playbook botbottle.bottle.bottle\) for this bottle first"):
        bc.read_source(str(tmp_path))


# -- the running bundle ---------------------------------------------------------------------------

class FakeBundle:
    def __init__(self):
        self.files = {}
        self.argvs = []

    def run(self, argv):
        self.argvs.append(argv)
        if argv[0] == "cat":
            return (0, self.files[argv[1]], "") if argv[1] in self.files else (1, "", "No such file")
        if argv[:2] == ["sh", "-c"] and len(argv) == 5:
            self.files[argv[3]] = argv[4] + "\n"
            return 0, "", ""
        return 1, "", "read-only file system"


def test_loaded_hash_round_trip():
    bundle = FakeBundle()
    assert bc.read_loaded_hash(bundle.run) == ""
    bc.record_loaded_hash(bundle.run, "abc123")
    assert bc.read_loaded_hash(bundle.run) == "abc123"
    assert bundle.argvs[1][3] == bc.HASH_FILE == "/run/bottle/config-hash"


def test_a_failed_record_says_so():
    with pytest.raises(bc.BundleConfigError, match="could not record"):
        bc.record_loaded_hash(lambda argv: (1, "", "read-only file system"), "abc")


def test_restaged_check_covers_the_files_daemons_read():
    argv = bc.restaged_argv(["bundle/egress.json", "bundle/upstream-ca.pem", "private/egress/tokens.json",
                             bc.SOURCE])
    assert argv[:2] == ["sh", "-c"]
    assert 'cmp -s "/etc/bottle/egress.json" "/run/bottle/egress/egress.json"' in argv[2]
    assert 'cmp -s "/etc/bottle-private/egress/tokens.json" "/run/bottle/egress/tokens.json"' in argv[2]
    assert "upstream-ca" not in argv[2] and bc.SOURCE not in argv[2]
    assert bc.restaged_argv([]) == ["sh", "-c", "true"]


def test_manifest_errors_are_value_errors():
    assert issubclass(ManifestError, ValueError) and issubclass(bc.BundleConfigError, ValueError)
