# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_supervise on a temporary state root: decisions, the files an approval rewrites, the hash."""

from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils import basic

from ansible_collections.botbottle.bottle.plugins.filter.with_approvals import with_approvals
from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config as bc
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as sv
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_decide as sd
from ansible_collections.botbottle.bottle.plugins.modules import bottle_state, bottle_supervise
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import (
    FakeEngine, Failed, run_module)

DOMAIN_ID, ROUTE_ID, BLOCK_ID = "0123456789abcdef", "1111222233334444", "aaaabbbbccccdddd"
TOKEN = "tok-route-value-123"
SECRET = "ghp_agentSecret0123456789"

POLICY = {"allowed_domains": ["zeta.example", "allowed.example"],
          "egress": {"routes": [{"host": "api.example", "auth": {"scheme": "Bearer", "token_ref": "EXISTING"}}]}}


def role_run(root, tokens, pipelock=False):
    """What the role does on its next run: merge supervise-approved.json (filter with_approvals), then bottle_state."""
    try:
        with open(os.path.join(str(root), "demo", sv.APPROVED), encoding="utf-8") as handle:
            approved = json.load(handle)
    except FileNotFoundError:
        approved = {}
    return run_module(bottle_state, None, dict(
        slug="demo", state_root=str(root), policy=with_approvals(POLICY, approved),
        options={"pipelock": pipelock, "ssrf_ip_allowlist": ["10.9.0.0/24"], "supervise": {"wait_seconds": 5}},
        secrets=[SECRET], tokens=tokens))


@pytest.fixture(params=[False, True], ids=["firewall", "with-pipelock"])
def pipelock(request):
    return request.param


@pytest.fixture
def root(tmp_path, pipelock):
    """A bottle launched by the role (bottle_state) with three pending proposals."""
    role_run(tmp_path, {"EXISTING": "e"}, pipelock)
    state = tmp_path / "demo"
    (state / "supervise" / "proposals").mkdir(parents=True)
    for proposal in (
            {"id": DOMAIN_ID, "kind": "domain", "host": "pypi.org"},
            {"id": ROUTE_ID, "kind": "route", "host": "api.github.com", "auth_ref": "GH_TOKEN",
             "matches": [{"methods": ["GET"]}]},
            {"id": BLOCK_ID, "kind": "block", "url": "https://allowed.example/x", "reason_seen": "DLP"}):
        proposal.update(status="pending", created="2026-01-01T00:00:00Z", decided=None, note="", justification="j")
        (state / "supervise" / "proposals" / (proposal["id"] + ".json")).write_text(json.dumps(proposal))
    return tmp_path


@pytest.fixture
def reloads(monkeypatch):
    calls = []

    def fake_reload(client_factory, slug, new_hash, files):
        calls.append((slug, new_hash))
        return True, "reloaded"

    monkeypatch.setattr(sd, "reload_bundle", fake_reload)
    monkeypatch.setattr(sd, "egress_precheck", lambda client_factory, slug, egress_json: None)  # no bundle here
    return calls


def run(root, check=False, **args):
    args.setdefault("state_root", str(root))
    return run_module(bottle_supervise, None, args, check=check, diff=True)


def read(root, relative):
    with open(os.path.join(str(root), "demo", relative), encoding="utf-8") as handle:
        return handle.read()


def audit(root):
    return [json.loads(line) for line in read(root, "supervise/audit.jsonl").splitlines()]


def test_list_pending_across_bottles(root):
    result = run(root)
    assert not result["changed"]
    assert sorted(p["id"] for p in result["proposals"]) == sorted([DOMAIN_ID, ROUTE_ID, BLOCK_ID])
    assert {p["slug"] for p in result["proposals"]} == {"demo"} and result["problems"] == []


def test_list_reports_untrusted_files(root):
    folder = root / "demo" / "supervise" / "proposals"
    (folder / "ffffffffffffffff.json").write_text("{broken")
    (folder / "eeeeeeeeeeeeeeee.json").write_text(json.dumps({"id": DOMAIN_ID, "kind": "domain", "status": "approved"}))
    (folder / "dddddddddddddddd.json").write_text(json.dumps({"id": "dddddddddddddddd", "kind": "domain",
                                                              "status": "granted"}))
    result = run(root, status="all")
    assert len(result["proposals"]) == 3 and len(result["problems"]) == 3
    assert any("not valid JSON" in p for p in result["problems"])
    assert any("does not hold proposal" in p for p in result["problems"])
    assert any("supervise never writes" in p for p in result["problems"])


def test_approve_domain_is_what_the_role_renders(root, reloads, pipelock):
    result = run(root, slug="demo", decision="approve", id=DOMAIN_ID, note="fine")
    assert result["changed"] and result["proposal"]["status"] == "approved" and result["proposal"]["note"] == "fine"
    assert "pypi.org" in json.loads(read(root, "bundle/egress.json"))["allowed_hosts"]
    # the role, on its next run, renders the policy with the approval merged: the same files, the same hash
    again = role_run(root, {"EXISTING": "e"}, pipelock)
    assert not again["changed"], again["changed_files"]
    assert again["config_hash"] == result["config_hash"] == bc.config_hash(str(root / "demo"))
    assert reloads == [("demo", result["config_hash"])]
    assert json.loads(read(root, "supervise-approved.json")) == {"domains": ["pypi.org"], "routes": []}
    assert [e["event"] for e in audit(root)] == ["approved"]
    assert audit(root)[0]["note"] == "fine" and audit(root)[0]["by"] == "operator"


def test_approval_renders_what_a_fresh_bottle_of_the_merged_policy_has(root, tmp_path, reloads, pipelock):
    run(root, slug="demo", decision="approve", id=DOMAIN_ID)
    result = run(root, slug="demo", decision="approve", id=ROUTE_ID, tokens={"GH_TOKEN": TOKEN})
    fresh = tmp_path / "fresh"
    os.makedirs(str(fresh / "demo"))
    with open(str(fresh / "demo" / sv.APPROVED), "w", encoding="utf-8") as handle:
        handle.write(read(root, sv.APPROVED))
    launched = role_run(fresh, {"EXISTING": "e", "GH_TOKEN": TOKEN}, pipelock)
    assert launched["config_hash"] == result["config_hash"]
    for relative in bc.config_files(str(root / "demo")):
        assert read(fresh, relative) == read(root, relative), relative
    assert read(fresh, bc.SOURCE) == read(root, bc.SOURCE)


def test_approving_again_changes_nothing(root, reloads):
    run(root, slug="demo", decision="approve", id=DOMAIN_ID)
    result = run(root, slug="demo", decision="approve", id=DOMAIN_ID)
    assert not result["changed"] and len(reloads) == 1 and len(audit(root)) == 1


def test_check_mode_writes_nothing(root, reloads):
    before = {p: open(os.path.join(d, p), "rb").read() for d, _s, files in os.walk(str(root)) for p in files}
    result = run(root, check=True, slug="demo", decision="approve", id=ROUTE_ID, tokens={"GH_TOKEN": TOKEN})
    after = {p: open(os.path.join(d, p), "rb").read() for d, _s, files in os.walk(str(root)) for p in files}
    assert result["changed"] and before == after and reloads == []
    assert any(f.endswith("egress.json") for f in result["changed_files"])
    assert TOKEN not in json.dumps(result)


def test_approve_route_with_its_credential(root, reloads, pipelock):
    result = run(root, slug="demo", decision="approve", id=ROUTE_ID, tokens={"GH_TOKEN": TOKEN})
    route = {"host": "api.github.com", "auth": {"scheme": "Bearer", "token_ref": "GH_TOKEN"}, "matches": [{"methods": ["GET"]}]}
    merged = {"allowed_domains": POLICY["allowed_domains"], "egress": {"routes": POLICY["egress"]["routes"] + [route]}}
    again = role_run(root, {"EXISTING": "e", "GH_TOKEN": TOKEN}, pipelock)
    assert not again["changed"], again["changed_files"]
    assert json.loads(read(root, "bundle/egress.json"))["routes"] == merged["egress"]["routes"]
    assert again["config_hash"] == result["config_hash"]
    assert json.loads(read(root, "supervise-approved.json"))["routes"] == [route]
    assert TOKEN not in json.dumps(result)  # not in the diff, not in the result
    tokens = root / "demo" / "private" / "egress" / "tokens.json"
    assert os.stat(str(tokens)).st_mode & 0o077 == 0
    assert json.loads(tokens.read_text()) == {"EXISTING": "e", "GH_TOKEN": TOKEN}
    assert json.loads(read(root, "private/egress/secrets.json")) == [SECRET]


def test_route_without_a_credential_names_the_fix(root, reloads):
    with pytest.raises(Failed, match="needs credential GH_TOKEN.*tokens"):
        run(root, slug="demo", decision="approve", id=ROUTE_ID)
    assert sv.read_proposal(str(root / "demo"), ROUTE_ID)["status"] == "pending" and reloads == []


def test_route_changed_by_the_operator(root, reloads):
    changes = {"host": "api.github.com", "auth": {"scheme": "token", "token_ref": "EXISTING"},
               "matches": [{"paths": [{"type": "prefix", "value": "/repos/"}], "methods": ["GET"]}]}
    with pytest.raises(Failed, match="names credential EXISTING, which already serves api.example"):
        run(root, slug="demo", decision="approve", id=ROUTE_ID, changes=changes)
    result = run(root, slug="demo", decision="approve", id=ROUTE_ID, changes=changes, bind_new_host=True)
    assert (result["proposal"]["credential"], result["proposal"]["credential_serves"]) == ("EXISTING", ["api.example"])
    egress = json.loads(read(root, "bundle/egress.json"))["routes"]
    assert egress[-1] == changes and not os.path.exists(str(root / "demo" / "private" / "egress" / "GH_TOKEN"))
    assert result["proposal"]["modified"]["before"]["auth_ref"] == "GH_TOKEN"
    assert [e["event"] for e in audit(root)] == ["modified", "approved"]


def test_modify_keeps_it_pending(root, reloads):
    result = run(root, slug="demo", decision="modify", id=DOMAIN_ID, changes={"host": "files.pythonhosted.org"})
    assert result["proposal"]["status"] == "pending" and result["proposal"]["host"] == "files.pythonhosted.org"
    assert result["changed_files"] == [] and reloads == []
    assert [e["event"] for e in audit(root)] == ["modified"]


@pytest.mark.parametrize("state, proposal_id, changes, error", [
    ("approve", DOMAIN_ID, {"url": "x"}, "changes.url cannot be changed on a domain"),
    ("approve", DOMAIN_ID, {"host": "not a host"}, "is not a host name"),
    ("approve", ROUTE_ID, {"auth": {"scheme": "Basic", "token_ref": "X"}}, "auth.scheme"),
    ("approve", BLOCK_ID, {"url": "https://x"}, "change nothing"),
    ("modify", DOMAIN_ID, {}, "decision=modify needs changes"),
])
def test_bad_changes_are_refused_naming_the_key(root, reloads, state, proposal_id, changes, error):
    with pytest.raises(Failed, match=error):
        run(root, slug="demo", decision=state, id=proposal_id, changes=changes)


def test_reject_changes_no_policy(root, reloads):
    before = bc.config_hash(str(root / "demo")), read(root, bc.SOURCE)
    result = run(root, slug="demo", decision="reject", id=DOMAIN_ID, note="use the mirror")
    assert result["proposal"]["status"] == "rejected" and result["proposal"]["note"] == "use the mirror"
    assert (bc.config_hash(str(root / "demo")), read(root, bc.SOURCE)) == before
    assert not os.path.exists(str(root / "demo" / "supervise-approved.json")) and reloads == []


def test_block_report_approval_records_only(root, reloads):
    result = run(root, slug="demo", decision="approve", id=BLOCK_ID, note="suppressed that rule")
    assert result["proposal"]["status"] == "approved" and result["changed_files"] == [] and reloads == []


def test_a_decision_is_final(root, reloads):
    run(root, slug="demo", decision="reject", id=DOMAIN_ID, note="no")
    with pytest.raises(Failed, match="already rejected"):
        run(root, slug="demo", decision="approve", id=DOMAIN_ID)


@pytest.mark.parametrize("args, error", [
    ({"slug": "demo", "decision": "approve", "id": "../../etc/passwd"}, "not a proposal id"),
    ({"slug": "demo", "decision": "approve", "id": "0123456789ABCDEF"}, "not a proposal id"),
    ({"slug": "demo", "decision": "approve", "id": "9999999999999999"}, "has no proposal 9999999999999999"),
    ({"slug": "../demo", "decision": "approve", "id": DOMAIN_ID}, "slug"),
    ({"slug": "nobottle", "decision": "approve", "id": DOMAIN_ID}, "no supervise store"),
    ({"decision": "approve", "id": DOMAIN_ID}, "slug"),
])
def test_bad_ids_and_slugs(root, reloads, args, error):
    with pytest.raises(Failed, match=error):
        run(root, **args)


def test_a_symlinked_proposal_is_not_trusted(root, tmp_path, reloads):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"id": "5555555555555555", "kind": "domain", "status": "pending", "host": "evil.org"}))
    os.symlink(str(outside), str(root / "demo" / "supervise" / "proposals" / "5555555555555555.json"))
    with pytest.raises(Failed, match="not a regular file"):
        run(root, slug="demo", decision="approve", id="5555555555555555")


def test_a_route_host_the_policy_already_routes_differently_is_refused(root, reloads):
    with pytest.raises(Failed, match="api.example already has a route"):
        run(root, slug="demo", decision="approve", id=ROUTE_ID, changes={"host": "api.example"}, tokens={"GH_TOKEN": "x"})


def test_a_domain_the_policy_allows_already_changes_no_configuration(root, reloads):
    (root / "demo" / "supervise" / "proposals" / (DOMAIN_ID + ".json")).write_text(json.dumps(dict(
        json.loads(read(root, "supervise/proposals/%s.json" % DOMAIN_ID)), host="allowed.example")))
    before = bc.config_hash(str(root / "demo"))
    result = run(root, slug="demo", decision="approve", id=DOMAIN_ID)
    assert result["changed"] and "config_hash" not in result and reloads == []
    assert result["changed_files"] == [str(root / "demo" / sv.APPROVED)]
    assert bc.config_hash(str(root / "demo")) == before


def test_a_bottle_of_an_older_release_names_the_fix(root, reloads):
    os.unlink(str(root / "demo" / bc.SOURCE))
    with pytest.raises(Failed, match=r"re-run the launch \(the playbook botbottle.bottle.bottle\) for this bottle first"):
        run(root, slug="demo", decision="approve", id=DOMAIN_ID)
    assert sv.read_proposal(str(root / "demo"), DOMAIN_ID)["status"] == "pending"


@pytest.fixture
def bundle():
    engine = FakeEngine()
    engine.add_image("botbottle/bundle:latest")
    engine.client.api.create_container(engine.images[0].id, name="bb-demo-bundle",
                                       labels={"io.botbottle.bottle": "demo"})
    engine.containers["bb-demo-bundle"].start()
    return engine


def test_reload_signals_records_the_hash_and_waits_for_the_staged_files(root, bundle, monkeypatch):
    monkeypatch.setattr(sd.time, "sleep", lambda seconds: None)
    result = run_module(bottle_supervise, bundle.client, dict(
        state_root=str(root), slug="demo", decision="approve", id=ROUTE_ID, tokens={"GH_TOKEN": TOKEN}))
    container = bundle.containers["bb-demo-bundle"]
    assert result["reloaded"] and result["reload"] == "reloaded" and container.signals == ["SIGHUP"]
    assert container.files[bc.HASH_FILE] == result["config_hash"] + "\n"
    check = [argv for _name, argv, _user, _env in bundle.execs if "cmp -s" in " ".join(argv)]
    assert check and "/run/bottle/egress/egress.json" in check[0][2] and "/run/bottle/egress/tokens.json" in check[0][2]
    assert all(user == "0" for _name, _argv, user, _env in bundle.execs)
    assert TOKEN not in json.dumps(bundle.execs)


def test_reload_of_a_stopped_bundle_leaves_it_to_the_next_launch(root, bundle):
    bundle.containers["bb-demo-bundle"].attrs["State"] = {"Status": "exited", "ExitCode": 0}
    result = run_module(bottle_supervise, bundle.client, dict(
        state_root=str(root), slug="demo", decision="approve", id=DOMAIN_ID))
    assert not result["reloaded"] and "the next launch (the playbook botbottle.bottle.bottle)" in result["reload"]
    assert result["proposal"]["status"] == "approved"


# -- release: a request egress holds after a DLP hit (firewall.dlp_action: supervise) ----------------

RELEASE_ID = "beefbeefbeefbeef"
HELD = {"host": "api.example", "method": "POST", "path": "/v1/upload?key=", "rule": "github-pat",
        "where": "body json $.config.token", "excerpt": "{\"token\": \"ghp_****\"}"}


def add_release(root, created=None):
    proposal = dict(HELD, id=RELEASE_ID, kind="release", status="pending", created=created or sv.now(), decided=None,
                    note="")
    (root / "demo" / "supervise" / "proposals" / (RELEASE_ID + ".json")).write_text(json.dumps(proposal))
    return proposal


def snapshot(root):
    """Every file under the state root but the proposal and the audit log."""
    out = {}
    for folder, _dirs, files in os.walk(str(root)):
        for name in files:
            path = os.path.join(folder, name)
            if name not in (RELEASE_ID + ".json", "audit.jsonl"):
                with open(path, "rb") as handle:
                    out[path] = handle.read()
    return out


@pytest.fixture
def warnings(monkeypatch):
    said = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, text: said.append(text))
    return said


def test_release_listed_with_what_was_held(root):
    add_release(root)
    listed = [p for p in run(root)["proposals"] if p["kind"] == "release"]
    assert len(listed) == 1 and listed[0]["slug"] == "demo"
    assert {k: listed[0][k] for k in HELD} == HELD


def test_approving_a_release_changes_no_policy_and_no_file_but_the_proposal(root, reloads, warnings):
    held = add_release(root)
    before = snapshot(root)
    result = run(root, slug="demo", decision="approve", id=RELEASE_ID, note="once")
    assert result["changed"] and result["changed_files"] == [] and not result["reloaded"] and reloads == []
    assert "config_hash" not in result and snapshot(root) == before and warnings == []
    on_disk = sv.read_proposal(str(root / "demo"), RELEASE_ID)
    assert (on_disk["status"], on_disk["note"]) == ("approved", "once")
    assert {k: on_disk[k] for k in HELD} == HELD
    assert [(e["event"], e["kind"], e["host"], e["by"]) for e in audit(root)] == \
        [("approved", "release", "api.example", "operator")]
    assert result["diff"] == [dict(before_header="proposal " + RELEASE_ID, after_header="proposal " + RELEASE_ID,
                                   before=held, after=on_disk)]


def test_rejecting_a_release_keeps_the_note(root, reloads):
    add_release(root)
    before = snapshot(root)
    result = run(root, slug="demo", decision="reject", id=RELEASE_ID, note="that is the production key")
    assert result["proposal"]["status"] == "rejected" and snapshot(root) == before and reloads == []
    assert sv.read_proposal(str(root / "demo"), RELEASE_ID)["note"] == "that is the production key"
    assert audit(root)[0]["event"] == "rejected" and audit(root)[0]["note"] == "that is the production key"


def test_release_check_mode_writes_nothing(root, reloads):
    add_release(root)
    proposal_file = root / "demo" / "supervise" / "proposals" / (RELEASE_ID + ".json")
    before = proposal_file.read_text()
    result = run(root, check=True, slug="demo", decision="approve", id=RELEASE_ID, note="ok")
    assert result["changed"] and result["proposal"]["status"] == "approved"
    assert len(result["diff"]) == 1 and result["diff"][0]["after"]["status"] == "approved"
    assert proposal_file.read_text() == before and not (root / "demo" / "supervise" / "audit.jsonl").exists()


def test_a_release_decided_again_the_same_way_changes_nothing(root, reloads):
    add_release(root)
    run(root, slug="demo", decision="approve", id=RELEASE_ID)
    assert not run(root, slug="demo", decision="approve", id=RELEASE_ID)["changed"]
    with pytest.raises(Failed, match="already approved"):
        run(root, slug="demo", decision="reject", id=RELEASE_ID)


@pytest.mark.parametrize("decision, changes, error", [
    ("modify", {}, "a release proposal cannot be modified: it asks to send one held request as it is; approve or "
                   "reject it"),
    ("modify", {"path": "/v1/other"}, "a release proposal cannot be modified"),
    ("approve", {"path": "/v1/other"}, "changes.path cannot be changed on a release proposal: change nothing"),
    ("approve", {"excerpt": ""}, "changes.excerpt cannot be changed on a release proposal"),
])
def test_a_release_cannot_be_changed(root, reloads, decision, changes, error):
    add_release(root)
    with pytest.raises(Failed, match=error):
        run(root, slug="demo", decision=decision, id=RELEASE_ID, changes=changes)
    assert sv.read_proposal(str(root / "demo"), RELEASE_ID)["status"] == "pending"


def test_a_block_report_cannot_be_modified_either(root, reloads):
    with pytest.raises(Failed, match="a block proposal cannot be modified: it has no field to change"):
        run(root, slug="demo", decision="modify", id=BLOCK_ID, changes={"url": "https://x.example/"})


def test_deciding_a_release_egress_stopped_holding_warns(root, reloads, warnings):
    add_release(root, created="2000-01-01T00:00:00Z")
    result = run(root, slug="demo", decision="approve", id=RELEASE_ID)
    assert result["proposal"]["status"] == "approved"
    assert len(warnings) == 1 and "120 s only (firewall.dlp_supervise_timeout)" in warnings[0]


def test_release_hold_read_from_the_rendered_egress_json(root):
    state = str(root / "demo")
    assert sv.release_hold(state) == 120
    egress = json.loads(read(root, "bundle/egress.json"))
    egress["dlp"]["supervise_timeout"] = 30
    (root / "demo" / "bundle" / "egress.json").write_text(json.dumps(egress))
    assert sv.release_hold(state) == 30
    fresh = {"created": "2026-01-01T00:00:00Z"}
    start = 1767225600  # 2026-01-01T00:00:00Z
    assert sv.release_too_late(state, fresh, clock=lambda: start + 29) is False
    assert sv.release_too_late(state, fresh, clock=lambda: start + 30) is True
    assert sv.release_too_late(state, {"created": None}) is None
    assert sv.release_hold(str(root / "nobottle")) == 120


def test_release_is_a_kind_of_the_store_contract():
    assert "release" in sv.KINDS and sv.EDITABLE["release"] == () and "release" not in sv.POLICY_KINDS


# -- a change narrows, never widens (issue 15) ---------------------------------------------------------

NARROW_ID = "abcdef0123456789"
ORG_PREFIX = {"type": "prefix", "value": "/repos/our-org/"}


def add_org_route(root):
    proposal = {"id": NARROW_ID, "kind": "route", "host": "api.github.com", "auth_ref": "EXISTING",
                "matches": [{"paths": [ORG_PREFIX], "methods": ["GET", "POST"]}], "status": "pending",
                "created": "2026-01-01T00:00:00Z", "decided": None, "note": "", "justification": "our repos"}
    (root / "demo" / "supervise" / "proposals" / (NARROW_ID + ".json")).write_text(json.dumps(proposal))


def test_narrowing_the_methods_keeps_the_path_the_agent_asked(root, reloads):
    add_org_route(root)
    result = run(root, slug="demo", decision="approve", id=NARROW_ID, changes={"matches": [{"methods": ["GET"]}]},
                 bind_new_host=True)
    wanted = [{"paths": [ORG_PREFIX], "methods": ["GET"]}]
    assert result["proposal"]["matches"] == wanted
    routes = {r["host"]: r for r in json.loads(read(root, "bundle/egress.json"))["routes"]}
    assert routes["api.github.com"]["matches"] == wanted
    assert json.loads(read(root, sv.APPROVED))["routes"][0]["matches"] == wanted
    assert [e["event"] for e in audit(root)] == ["modified", "approved"]
    assert audit(root)[0]["after"] == {"matches": wanted}


def test_a_widening_change_is_refused_and_nothing_is_written(root, reloads):
    add_org_route(root)
    before = bc.config_hash(str(root / "demo")), read(root, bc.SOURCE)
    with pytest.raises(Failed) as refused:
        run(root, slug="demo", decision="approve", id=NARROW_ID,
            changes={"matches": [{"paths": [{"type": "prefix", "value": "/"}], "methods": ["GET"]}]})
    assert "changes: a change may only narrow what the agent asked" in refused.value.args[0]
    assert "prefix / is not inside the paths asked (prefix /repos/our-org/)" in refused.value.args[0]
    assert (bc.config_hash(str(root / "demo")), read(root, bc.SOURCE)) == before and reloads == []
    assert sv.read_proposal(str(root / "demo"), NARROW_ID)["status"] == "pending"
    assert not (root / "demo" / "supervise" / "audit.jsonl").exists()


def test_modify_cannot_widen_either(root, reloads):
    add_org_route(root)
    with pytest.raises(Failed, match="would add method DELETE"):
        run(root, slug="demo", decision="modify", id=NARROW_ID, changes={"matches": [{"methods": ["DELETE"]}]})


def test_module_list_and_decide_are_the_shared_functions(root, reloads):
    listed = run(root)
    assert (listed["proposals"], listed["problems"]) == sd.list_all(str(root))
    with pytest.raises(sv.SuperviseError, match="status 'some'"):
        sd.list_all(str(root), status="some")
    with pytest.raises(sv.SuperviseError, match="scope 'fleet'"):
        sd.decide(str(root), "demo", DOMAIN_ID, "approve", scope="fleet")
    with pytest.raises(sv.SuperviseError, match="note is 2001 characters long"):
        sd.decide(str(root), "demo", DOMAIN_ID, "approve", note="x" * 2001)
    said = []
    result = sd.decide(str(root), "demo", DOMAIN_ID, "approve", note="ok", warn=said.append)
    assert result["changed"] and result["reloaded"] and result["warnings"] == said == []
    assert result["diff"][0]["after"]["status"] == "approved" and "also" not in result


def test_a_reload_failure_is_reported_as_changed(root, monkeypatch):
    def no_engine():
        raise sd.dc.EngineUnavailable("no Docker engine answers at unix:///nowhere.sock")
    with pytest.raises(sv.SuperviseError) as failed:
        sd.decide(str(root), "demo", DOMAIN_ID, "approve", client_factory=no_engine)
    assert failed.value.changed and "the proposal is still pending" in str(failed.value)
    assert sv.read_proposal(str(root / "demo"), DOMAIN_ID)["status"] == "pending"


# -- scope agent: every bottle of the agent, and its later bottles -------------------------------------

def launch(state_root, slug, agent, tokens=None):
    """The role's launch of bottle ``slug`` of ``agent``: its approvals, then its agent's (preflight.yml)."""
    def load(path):
        try:
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return {}
    policy = with_approvals(POLICY, load(os.path.join(str(state_root), slug, sv.APPROVED)),
                            agent=load(sv.agent_approved_path(str(state_root), agent)))
    result = run_module(bottle_state, None, dict(
        slug=slug, state_root=str(state_root), policy=policy,
        options={"ssrf_ip_allowlist": ["10.9.0.0/24"], "supervise": {"wait_seconds": 5}},
        secrets=[SECRET], tokens=dict({"EXISTING": "e"}, **(tokens or {})),
        meta={"slug": slug, "agent": agent, "policy": "p", "backend": "docker"}))
    (state_root / slug / "supervise" / "proposals").mkdir(parents=True, exist_ok=True)
    return result


@pytest.fixture
def fleet(tmp_path):
    """Bottles demo and demo-2 of agent demo, other of agent other; demo asked for a domain and a route."""
    state_root = tmp_path / "state"
    for slug, agent in (("demo", "demo"), ("demo-2", "demo"), ("other", "other")):
        launch(state_root, slug, agent)
    for proposal in ({"id": DOMAIN_ID, "kind": "domain", "host": "pypi.org"},
                     {"id": ROUTE_ID, "kind": "route", "host": "api.github.com", "auth_ref": "GH_TOKEN",
                      "matches": [{"methods": ["GET"]}]}):
        proposal.update(status="pending", created="2026-01-01T00:00:00Z", decided=None, note="", justification="j")
        (state_root / "demo" / "supervise" / "proposals" / (proposal["id"] + ".json")).write_text(json.dumps(proposal))
    return state_root


def hosts(state_root, slug):
    with open(os.path.join(str(state_root), slug, "bundle", "egress.json"), encoding="utf-8") as handle:
        return json.load(handle)["allowed_hosts"]


def audit_of(state_root, slug):
    path = os.path.join(str(state_root), slug, "supervise", "audit.jsonl")
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_scope_agent_approves_for_every_bottle_of_the_agent(fleet, reloads):
    result = run(fleet, slug="demo", decision="approve", id=DOMAIN_ID, scope="agent", note="for all of demo")
    assert "pypi.org" in hosts(fleet, "demo") and "pypi.org" in hosts(fleet, "demo-2")
    assert "pypi.org" not in hosts(fleet, "other")
    assert [(a["slug"], a["changed"], a["reloaded"]) for a in result["also"]] == [("demo-2", True, True)]
    assert result["also"][0]["config_hash"] == bc.config_hash(str(fleet / "demo-2"))
    assert sorted(slug for slug, _hash in reloads) == ["demo", "demo-2"]
    agent_file = fleet.parent / "agents" / "demo" / "supervise-approved.json"
    assert json.loads(agent_file.read_text()) == {"domains": ["pypi.org"], "routes": []}
    assert str(agent_file) in result["changed_files"]
    mine = audit_of(fleet, "demo")[-1]
    assert (mine["event"], mine["scope"], mine["agent"], mine["by"]) == ("approved", "agent", "demo", "operator")
    theirs = audit_of(fleet, "demo-2")
    assert theirs == [dict(event="approved", by="operator", scope="agent", agent="demo", kind="domain",
                           host="pypi.org", note="for all of demo", time=theirs[0]["time"],
                           from_bottle="demo", **{"from": DOMAIN_ID})]
    assert not os.path.exists(str(fleet / "other" / "supervise" / "audit.jsonl"))
    # the role's next run of each bottle changes nothing; a bottle of the agent launched later has it too
    for slug in ("demo", "demo-2"):
        assert not launch(fleet, slug, "demo")["changed"]
    launch(fleet, "demo-3", "demo")
    assert "pypi.org" in hosts(fleet, "demo-3")
    launch(fleet, "other-2", "other")
    assert "pypi.org" not in hosts(fleet, "other-2")


def test_a_later_bottle_approval_keeps_the_launch_idempotent(fleet, reloads):
    run(fleet, slug="demo", decision="approve", id=DOMAIN_ID, scope="agent")
    launch(fleet, "demo-3", "demo")
    later = {"id": "9999999999999999", "kind": "domain", "host": "files.example", "status": "pending",
             "created": "2026-01-02T00:00:00Z", "decided": None, "note": "", "justification": "j"}
    (fleet / "demo-3" / "supervise" / "proposals" / (later["id"] + ".json")).write_text(json.dumps(later))
    run(fleet, slug="demo-3", decision="approve", id=later["id"])
    assert json.loads((fleet / "demo-3" / sv.APPROVED).read_text())["domains"] == ["pypi.org", "files.example"]
    assert not launch(fleet, "demo-3", "demo")["changed"]


def test_scope_agent_route_carries_the_credential_to_every_bottle(fleet, reloads):
    result = run(fleet, slug="demo", decision="approve", id=ROUTE_ID, scope="agent", tokens={"GH_TOKEN": TOKEN})
    for slug in ("demo", "demo-2"):
        tokens = json.loads((fleet / slug / "private" / "egress" / "tokens.json").read_text())
        assert tokens["GH_TOKEN"] == TOKEN
        assert "api.github.com" in [r["host"] for r in json.loads((fleet / slug / "bundle" / "egress.json").read_text())["routes"]]
    assert TOKEN not in json.dumps(result)
    assert TOKEN not in (fleet.parent / "agents" / "demo" / "supervise-approved.json").read_text()
    assert not launch(fleet, "demo-2", "demo", tokens={"GH_TOKEN": TOKEN})["changed"]


def test_scope_agent_writes_nothing_when_one_bottle_cannot_take_it(fleet, reloads):
    os.unlink(str(fleet / "demo-2" / bc.SOURCE))
    before = bc.config_hash(str(fleet / "demo"))
    with pytest.raises(Failed) as refused:
        run(fleet, slug="demo", decision="approve", id=DOMAIN_ID, scope="agent")
    assert "for bottle demo-2 (agent demo), so for none of its bottles" in refused.value.args[0]
    assert "or approve it with scope bottle" in refused.value.args[0]
    assert bc.config_hash(str(fleet / "demo")) == before and reloads == []
    assert not (fleet.parent / "agents").exists()
    assert sv.read_proposal(str(fleet / "demo"), DOMAIN_ID)["status"] == "pending"


def test_scope_agent_check_mode_writes_nothing(fleet, reloads):
    result = run(fleet, check=True, slug="demo", decision="approve", id=DOMAIN_ID, scope="agent")
    assert result["changed"] and [a["slug"] for a in result["also"]] == ["demo-2"]
    assert any(f.endswith("agents/demo/supervise-approved.json") for f in result["changed_files"])
    assert "pypi.org" not in hosts(fleet, "demo-2") and not (fleet.parent / "agents").exists() and reloads == []


@pytest.mark.parametrize("decision, args, error", [
    ("reject", {}, "this is a rejection of a domain proposal: use scope bottle"),
    ("modify", {"changes": {"host": "x.example"}}, "this is a modification of a domain proposal"),
])
def test_scope_agent_is_for_approvals(fleet, reloads, decision, args, error):
    with pytest.raises(Failed, match=error):
        run(fleet, slug="demo", decision=decision, id=DOMAIN_ID, scope="agent", **args)


def test_scope_agent_needs_the_bottles_agent(fleet, reloads):
    os.unlink(str(fleet / "demo" / "meta.json"))
    with pytest.raises(Failed, match="no meta.json naming its agent"):
        run(fleet, slug="demo", decision="approve", id=DOMAIN_ID, scope="agent")


def test_a_planted_audit_symlink_is_refused_after_the_decision_is_recorded(root, reloads, tmp_path):
    """supervise's uid can write its store: a symlink audit.jsonl -> the operator's file is never appended to."""
    bashrc = tmp_path / "bashrc"
    bashrc.write_text("# mine\n")
    (root / "demo" / "supervise" / "audit.jsonl").symlink_to(bashrc)
    with pytest.raises(Failed, match="the decision is recorded, but its audit line was not: .*audit.jsonl is a "
                                     "symlink: not writing to it as the operator") as err:
        run(root, slug="demo", decision="reject", id=DOMAIN_ID, note="no")
    assert err.value.result["changed"] is True
    assert bashrc.read_text() == "# mine\n"
    assert sv.read_proposal(str(root / "demo"), DOMAIN_ID)["status"] == "rejected"


# -- request_route and a credential the bottle already holds ----------------------------------------

BIND_ID = "b1b2b3b4b5b6b7b8"


def add_route_ask(state_dir, host, auth_ref, proposal_id=BIND_ID, **extra):
    proposal = dict({"id": proposal_id, "kind": "route", "host": host, "auth_ref": auth_ref, "status": "pending",
                     "created": "2026-01-01T00:00:00Z", "decided": None, "note": "", "justification": "j"}, **extra)
    (state_dir / "supervise" / "proposals" / (proposal_id + ".json")).write_text(json.dumps(proposal))


def test_binding_a_held_credential_to_a_new_host_is_refused_without_the_flag(root, reloads):
    # The agent claims the credential serves nothing: the decision reads the real policy.
    add_route_ask(root / "demo", "llm.example.net", "EXISTING", credential_serves=[])
    before = bc.config_hash(str(root / "demo")), read(root, bc.SOURCE)
    with pytest.raises(Failed) as refused:
        run(root, slug="demo", decision="approve", id=BIND_ID)
    message = refused.value.args[0]
    assert message.startswith("cannot approve proposal %s: route llm.example.net names credential EXISTING, which "
                              "already serves api.example: approving would send it to llm.example.net too" % BIND_ID)
    assert "approve with bind_new_host: true (playbook: -e bind_new_host=true; console: key b)" in message
    assert refused.value.result["changed"] is False
    assert (bc.config_hash(str(root / "demo")), read(root, bc.SOURCE)) == before and reloads == []
    assert sv.read_proposal(str(root / "demo"), BIND_ID)["status"] == "pending"
    assert not (root / "demo" / "supervise" / "audit.jsonl").exists()
    # check mode refuses the same way
    with pytest.raises(Failed, match="bind_new_host"):
        run(root, check=True, slug="demo", decision="approve", id=BIND_ID)


def test_binding_a_held_credential_with_the_flag_is_recorded(root, reloads):
    add_route_ask(root / "demo", "llm.example.net", "EXISTING")
    result = run(root, slug="demo", decision="approve", id=BIND_ID, bind_new_host=True, note="our proxy")
    assert result["changed"] and result["proposal"]["status"] == "approved"
    routes = {r["host"]: r for r in json.loads(read(root, "bundle/egress.json"))["routes"]}
    assert routes["llm.example.net"]["auth"]["token_ref"] == "EXISTING"
    stored = sv.read_proposal(str(root / "demo"), BIND_ID)
    assert (stored["credential"], stored["credential_serves"], stored["bound_new_host"]) == (
        "EXISTING", ["api.example"], True)
    line = audit(root)[-1]
    assert (line["event"], line["credential"], line["credential_serves"], line["bound_new_host"]) == (
        "approved", "EXISTING", ["api.example"], True)


def test_a_new_credential_needs_no_flag(root, reloads):
    result = run(root, slug="demo", decision="approve", id=ROUTE_ID, tokens={"GH_TOKEN": TOKEN})
    assert result["proposal"]["status"] == "approved"
    assert (result["proposal"]["credential_serves"], result["proposal"]["bound_new_host"]) == ([], False)


def test_a_credential_for_a_host_it_serves_already_needs_no_flag(root, reloads):
    add_route_ask(root / "demo", "API.example", "EXISTING")
    result = run(root, slug="demo", decision="approve", id=BIND_ID)
    assert result["proposal"]["status"] == "approved"
    assert (result["proposal"]["credential_serves"], result["proposal"]["bound_new_host"]) == (["api.example"], False)


def test_serves_counts_approved_routes_and_the_operators_changes(root, reloads):
    """An approval made earlier serves its host too; a change of auth to a held credential is checked as well."""
    run(root, slug="demo", decision="approve", id=ROUTE_ID, tokens={"GH_TOKEN": TOKEN})
    add_route_ask(root / "demo", "uploads.github.com", "GH_TOKEN", credential_serves=["uploads.github.com"])
    with pytest.raises(Failed, match="names credential GH_TOKEN, which already serves api.github.com:"):
        run(root, slug="demo", decision="approve", id=BIND_ID)
    add_route_ask(root / "demo", "docs.example", None, proposal_id="c1c2c3c4c5c6c7c8")
    with pytest.raises(Failed, match="route docs.example names credential EXISTING, which already serves api.example"):
        run(root, slug="demo", decision="approve", id="c1c2c3c4c5c6c7c8",
            changes={"auth": {"scheme": "Bearer", "token_ref": "EXISTING"}})
    # without a credential nothing is bound: no choice to make
    assert run(root, slug="demo", decision="approve", id="c1c2c3c4c5c6c7c8")["proposal"]["status"] == "approved"


def test_the_listing_shows_what_the_credential_serves_from_the_real_policy(root):
    add_route_ask(root / "demo", "llm.example.net", "EXISTING", credential_serves=["nothing.example"])
    result = run(root)
    listed = {p["id"]: p for p in result["proposals"]}
    assert (listed[BIND_ID]["credential"], listed[BIND_ID]["credential_serves"]) == ("EXISTING", ["api.example"])
    assert ("| credential EXISTING already serves: api.example (approving for llm.example.net needs "
            "-e bind_new_host=true)") in result["shown"]
    assert (listed[ROUTE_ID]["credential"], listed[ROUTE_ID]["credential_serves"]) == ("GH_TOKEN", [])
    assert "credential_serves" not in listed[DOMAIN_ID]


def test_bind_new_host_is_a_documented_bool_option(root, reloads):
    import yaml
    option = yaml.safe_load(bottle_supervise.DOCUMENTATION)["options"]["bind_new_host"]
    assert (option["type"], option["default"]) == ("bool", False)
    examples = yaml.safe_load(bottle_supervise.EXAMPLES)
    assert any((task["botbottle.bottle.bottle_supervise"] or {}).get("bind_new_host") is True for task in examples)
    add_route_ask(root / "demo", "llm.example.net", "EXISTING")
    with pytest.raises(Failed, match="bind_new_host"):
        run(root, slug="demo", decision="approve", id=BIND_ID, bind_new_host="perhaps")
    assert run(root, slug="demo", decision="approve", id=BIND_ID, bind_new_host="yes")["proposal"]["bound_new_host"]
    with pytest.raises(sv.SuperviseError, match="bind_new_host must be true or false"):
        sd.decide(str(root), "demo", BIND_ID, "approve", bind_new_host="yes")


def test_scope_agent_checks_the_credential_in_every_bottle(fleet, reloads):
    """GH_TOKEN serves nothing in demo, but api.github.com in demo-2: approving it for the agent binds it there."""
    add_route_ask(fleet / "demo-2", "api.github.com", "GH_TOKEN", proposal_id="d1d2d3d4d5d6d7d8")
    run(fleet, slug="demo-2", decision="approve", id="d1d2d3d4d5d6d7d8", tokens={"GH_TOKEN": TOKEN})
    add_route_ask(fleet / "demo", "gist.github.com", "GH_TOKEN")
    with pytest.raises(Failed, match="names credential GH_TOKEN, which already serves api.github.com in bottle "
                                     "demo-2: approving would send it to gist.github.com too"):
        run(fleet, slug="demo", decision="approve", id=BIND_ID, scope="agent", tokens={"GH_TOKEN": TOKEN})
    assert "gist.github.com" not in hosts(fleet, "demo")
    result = run(fleet, slug="demo", decision="approve", id=BIND_ID, scope="agent", tokens={"GH_TOKEN": TOKEN},
                 bind_new_host=True)
    assert "gist.github.com" in hosts(fleet, "demo") and "gist.github.com" in hosts(fleet, "demo-2")
    assert result["proposal"]["bound_new_host"] is False, "in its own bottle the credential was new"


# -- egress's own parser decides: an approval it would refuse writes nothing; a reload it did not take fails --

def load_bundle_supervise():
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[4] / "images" / "bundle" / "supervise.py"
    spec = importlib.util.spec_from_file_location("supervise_for_decide_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def with_an_address_route(monkeypatch):
    """A renderer that slips a route to an address into egress.json: what egress refuses (0x7f000001 is 127.0.0.1)."""
    real = bc.render

    def render(policy, options):
        files = real(policy, options)
        egress = json.loads(files["bundle/egress.json"])
        egress.setdefault("routes", []).append({"host": "0x7f000001"})
        files["bundle/egress.json"] = bc.json_bytes(egress)
        return files
    monkeypatch.setattr(bc, "render", render)


def test_an_approval_egress_would_refuse_writes_nothing(root, bundle, monkeypatch):
    monkeypatch.setattr(sd.time, "sleep", lambda seconds: None)
    before = read(root, "bundle/egress.json")
    with_an_address_route(monkeypatch)
    with pytest.raises(Failed, match="egress would refuse the configuration this approval renders, so none of it was "
                                     "written .*no IP literal") as failed:
        run_module(bottle_supervise, bundle.client, dict(state_root=str(root), slug="demo", decision="approve",
                                                         id=DOMAIN_ID))
    assert failed.value.result["changed"] is False
    assert read(root, "bundle/egress.json") == before and not (root / "demo" / sv.APPROVED).exists()
    assert bundle.containers["bb-demo-bundle"].signals == []
    proposal = sv.read_proposal(str(root / "demo"), DOMAIN_ID)
    assert proposal["status"] == "pending" and "egress would refuse" in proposal["not_applied"]["why"]


def test_a_reload_egress_did_not_take_fails_and_puts_the_files_back(root, bundle, monkeypatch):
    monkeypatch.setattr(sd.time, "sleep", lambda seconds: None)
    before = read(root, "bundle/egress.json")
    container = bundle.containers["bb-demo-bundle"]
    # what egress finds staged after the SIGHUP: a file its parser refuses (it keeps the previous one)
    container.egress_staged = json.dumps({"version": 2, "allowed_hosts": ["a.example"],
                                          "routes": [{"host": "0x7f000001"}]})
    with pytest.raises(sv.SuperviseError, match="egress refused the reloaded configuration and keeps its previous "
                                                "one .*still pending.*no IP literal") as failed:
        sd.decide(str(root), "demo", DOMAIN_ID, "approve", client_factory=lambda: bundle.client)
    assert failed.value.changed and container.signals == ["SIGHUP"]
    assert read(root, "bundle/egress.json") == before and not (root / "demo" / sv.APPROVED).exists()
    proposal = sv.read_proposal(str(root / "demo"), DOMAIN_ID)
    assert proposal["status"] == "pending" and "no IP literal" in proposal["not_applied"]["why"]
    # what supervise (the bundle's code) tells the agent of it: not approved, and why
    told = load_bundle_supervise().answer(proposal)
    assert told["status"] == "pending" and "could NOT be applied" in told["message"]
    assert "no IP literal" in told["message"] and "approved:" not in told["message"]


def test_what_an_approval_renders_loads_in_egress(root, bundle, monkeypatch):
    """Across the bundle boundary: the approvals' egress.json goes through egress's own parser (the fake bundle
    runs images/bundle/bottle_firewall/policy.py) before it is written, and after the reload."""
    monkeypatch.setattr(sd.time, "sleep", lambda seconds: None)
    for proposal_id, extra in ((DOMAIN_ID, {}), (ROUTE_ID, {"tokens": {"GH_TOKEN": TOKEN}})):
        result = run_module(bottle_supervise, bundle.client, dict(state_root=str(root), slug="demo",
                                                                  decision="approve", id=proposal_id, **extra))
        assert result["proposal"]["status"] == "approved" and result["reload"] == "reloaded"
    checks = [argv for _name, argv, _user, _env in bundle.execs if argv[0] == sd.EGRESS_PYTHON]
    assert len(checks) == 4 and checks[1][3] == "@" + sd.EGRESS_STAGED
    assert "api.github.com" in checks[2][3] and TOKEN not in json.dumps(checks)


def test_an_approval_that_takes_after_one_that_did_not_clears_the_failure(root, bundle, monkeypatch):
    monkeypatch.setattr(sd.time, "sleep", lambda seconds: None)
    container = bundle.containers["bb-demo-bundle"]
    container.egress_staged = json.dumps({"version": 2, "routes": [{"host": "0x7f000001"}]})
    with pytest.raises(sv.SuperviseError, match="egress refused the reloaded configuration"):
        sd.decide(str(root), "demo", DOMAIN_ID, "approve", client_factory=lambda: bundle.client)
    container.egress_staged = None  # egress takes the next one
    result = sd.decide(str(root), "demo", DOMAIN_ID, "approve", client_factory=lambda: bundle.client)
    proposal = sv.read_proposal(str(root / "demo"), DOMAIN_ID)
    assert result["reload"] == "reloaded" and proposal["status"] == "approved" and "not_applied" not in proposal
    assert load_bundle_supervise().answer(proposal)["message"].startswith("approved: the bottle now allows pypi.org")


# -- taking an agent-wide approval back (issue 21 item 6) -----------------------------------------------

def test_an_agent_wide_approval_is_taken_back_in_one_step(fleet, reloads):
    run(fleet, slug="demo", decision="approve", id=DOMAIN_ID, scope="agent")
    path = sv.agent_approved_path(str(fleet), "demo")
    assert json.load(open(path, encoding="utf-8"))["domains"] == ["pypi.org"]
    result = run(fleet, revoke_agent="demo", revoke_host="PyPI.org")
    assert result["changed"] and result["removed"] == ["domain pypi.org"] and result["path"] == path
    assert "later bottles no longer get domain pypi.org" in result["shown"][1]
    assert json.load(open(path, encoding="utf-8"))["domains"] == []
    # the agent's next bottle is launched without it
    launch(fleet, "demo-3", "demo")
    assert "pypi.org" not in hosts(fleet, "demo-3")


def test_taking_back_what_is_not_there_names_what_is(fleet, reloads):
    run(fleet, slug="demo", decision="approve", id=DOMAIN_ID, scope="agent")
    with pytest.raises(Failed) as failed:
        run(fleet, revoke_agent="demo", revoke_host="npmjs.org")
    assert "agent demo has no agent-wide approval of npmjs.org" in str(failed.value)
    assert "holds: domain pypi.org" in str(failed.value)
    with pytest.raises(Failed):
        run(fleet, revoke_agent="demo")  # the host is required with the agent


def test_a_diff_line_from_an_agent_wide_approval_says_so(fleet, reloads):
    run(fleet, slug="demo", decision="approve", id=DOMAIN_ID, scope="agent")
    policy = with_approvals(POLICY, {}, agent=json.load(open(sv.agent_approved_path(str(fleet), "demo"), encoding="utf-8")))
    result = run_module(bottle_state, None, dict(
        slug="fresh", state_root=str(fleet), policy=policy,
        options={"ssrf_ip_allowlist": ["10.9.0.0/24"], "supervise": {"wait_seconds": 5}},
        secrets=[SECRET], tokens={"EXISTING": "e"}, meta={"slug": "fresh", "agent": "demo"}), diff=True)
    after = result["diff"][0]["after"].splitlines()
    path = sv.agent_approved_path(str(fleet), "demo")
    assert "host pypi.org  # from an agent-wide approval (%s)" % path in after
    assert "host allowed.example" in after  # the policy's own host: no note


@pytest.mark.parametrize("decision, changes", [("modify", {"matches": [{"methods": ["GET"]}]}), ("reject", {})])
def test_modify_and_reject_print_no_empty_parentheses(root, reloads, decision, changes):
    """Issue 21 item 7: no "pending ()" and no "bundle reloaded: False ()"; what happened, said plainly."""
    result = run(root, slug="demo", decision=decision, id=ROUTE_ID, changes=changes, note="")
    shown = "\n".join(result["shown"])
    assert "()" not in shown, shown
    assert shown.splitlines()[-1] == "bundle: not reloaded (%s)" % (
        "the ask stays pending: nothing changes in the bottle until it is approved" if decision == "modify"
        else "a rejection changes nothing in the bottle"), shown
