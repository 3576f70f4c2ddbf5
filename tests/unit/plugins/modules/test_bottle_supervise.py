# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_supervise on a temporary state root: decisions, the files an approval rewrites, the hash."""

from __future__ import annotations

import json
import os

import jinja2
import pytest

from ansible.plugins.filter.core import to_json, to_nice_json

from ansible_collections.botbottle.bottle.plugins.module_utils import supervise as sv
from ansible_collections.botbottle.bottle.plugins.module_utils.bottle_config import state_config_hash
from ansible_collections.botbottle.bottle.plugins.modules import bottle_state, bottle_supervise
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import Failed, run_module

TEMPLATE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "bottle", "templates",
                        "pipelock.yaml.j2")
DOMAIN_ID, ROUTE_ID, BLOCK_ID = "0123456789abcdef", "1111222233334444", "aaaabbbbccccdddd"
TOKEN = "tok-route-value-123"


def render_pipelock(policy):
    """roles/bottle/templates/pipelock.yaml.j2 as the role renders it."""
    env = jinja2.Environment(keep_trailing_newline=True)
    env.filters.update(to_json=to_json)
    with open(TEMPLATE, encoding="utf-8") as handle:
        return env.from_string(handle.read()).render(bottle_slug="demo", bottle_policy=policy)


def role_files(policy, tokens):
    """What the role passes to bottle_state for ``policy``: the files an approval must reproduce."""
    return {"files": {"pipelock.yaml": render_pipelock(policy),
                      "egress.json": to_nice_json({"routes": policy["egress"]["routes"]})},
            "private_files": {"egress": {"tokens.json": to_json(tokens)}}}


POLICY = {"allowed_domains": ["zeta.example", "allowed.example"],
          "egress": {"routes": [{"host": "api.example", "auth": {"scheme": "Bearer", "token_ref": "EXISTING"}}]}}


@pytest.fixture(autouse=True)
def no_docker(monkeypatch):
    monkeypatch.setattr(bottle_state, "get_docker_client", None, raising=False)


@pytest.fixture
def root(tmp_path):
    """A bottle launched by the role (bottle_state) with three pending proposals."""
    run_module(bottle_state, None, dict(slug="demo", state_root=str(tmp_path), **role_files(POLICY, {"EXISTING": "e"})))
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

    def fake_reload(module, slug, new_hash):
        calls.append((slug, new_hash))
        return True, "reloaded"

    monkeypatch.setattr(bottle_supervise, "reload_bundle", fake_reload)
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


def test_approve_domain_matches_what_the_role_renders(root, reloads):
    result = run(root, slug="demo", decision="approve", id=DOMAIN_ID, note="fine")
    assert result["changed"] and result["proposal"]["status"] == "approved" and result["proposal"]["note"] == "fine"
    # the role, on its next run, renders the policy with the approval merged: the same bytes, the same hash
    merged = dict(POLICY, allowed_domains=POLICY["allowed_domains"] + ["pypi.org"])
    again = run_module(bottle_state, None, dict(slug="demo", state_root=str(root),
                                                **role_files(merged, {"EXISTING": "e"})))
    assert not again["changed"], again["changed_files"]
    assert again["config_hash"] == result["config_hash"] == state_config_hash(str(root / "demo"))
    assert reloads == [("demo", result["config_hash"])]
    assert json.loads(read(root, "supervise-approved.json")) == {"domains": ["pypi.org"], "routes": []}
    assert [e["event"] for e in audit(root)] == ["approved"]
    assert audit(root)[0]["note"] == "fine" and audit(root)[0]["by"] == "operator"


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


def test_approve_route_with_its_credential(root, reloads):
    result = run(root, slug="demo", decision="approve", id=ROUTE_ID, tokens={"GH_TOKEN": TOKEN})
    route = {"host": "api.github.com", "auth": {"scheme": "Bearer", "token_ref": "GH_TOKEN"}, "matches": [{"methods": ["GET"]}]}
    merged = {"allowed_domains": POLICY["allowed_domains"], "egress": {"routes": POLICY["egress"]["routes"] + [route]}}
    again = run_module(bottle_state, None, dict(slug="demo", state_root=str(root),
                                                **role_files(merged, {"EXISTING": "e", "GH_TOKEN": TOKEN})))
    assert not again["changed"], again["changed_files"]
    assert again["config_hash"] == result["config_hash"]
    assert json.loads(read(root, "supervise-approved.json"))["routes"] == [route]
    assert TOKEN not in json.dumps(result)  # not in the diff, not in the result
    assert os.stat(str(root / "demo" / "private" / "egress" / "tokens.json")).st_mode & 0o077 == 0


def test_route_without_a_credential_names_the_fix(root, reloads):
    with pytest.raises(Failed, match="needs credential GH_TOKEN.*tokens"):
        run(root, slug="demo", decision="approve", id=ROUTE_ID)
    assert sv.read_proposal(str(root / "demo"), ROUTE_ID)["status"] == "pending" and reloads == []


def test_route_changed_by_the_operator(root, reloads):
    changes = {"host": "api.github.com", "auth": {"scheme": "token", "token_ref": "EXISTING"},
               "matches": [{"paths": [{"type": "prefix", "value": "/repos/"}], "methods": ["GET"]}]}
    result = run(root, slug="demo", decision="approve", id=ROUTE_ID, changes=changes)
    egress = json.loads(read(root, "bundle/egress.json"))["routes"]
    assert egress[-1] == changes
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
    before = read(root, "bundle/pipelock.yaml"), read(root, "bundle/egress.json")
    result = run(root, slug="demo", decision="reject", id=DOMAIN_ID, note="use the mirror")
    assert result["proposal"]["status"] == "rejected" and result["proposal"]["note"] == "use the mirror"
    assert (read(root, "bundle/pipelock.yaml"), read(root, "bundle/egress.json")) == before
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


def test_allowlist_edit_is_the_rendering_of_the_merged_policy():
    base = render_pipelock(POLICY)
    merged = render_pipelock(dict(POLICY, allowed_domains=POLICY["allowed_domains"] + ["b.example", "Y.example"]))
    assert sv.with_allowed(base, ["b.example", "Y.example"]) == merged


def test_without_an_allowlist_line_the_fix_is_named():
    with pytest.raises(sv.SuperviseError, match="re-run playbooks/bottle.yml"):
        sv.with_allowed("mode: strict\n", ["a.example"])


@pytest.mark.parametrize("value", [{"routes": []}, {"routes": [{"host": "a", "matches": [{"methods": ["GET"]}]}]}])
def test_egress_and_tokens_bytes_equal_the_role_filters(value):
    assert sv.egress_bytes(value["routes"]) == (to_nice_json(value) + "\n").encode()
    assert sv.tokens_bytes({"B": "1", "A": "2"}) == (to_json({"B": "1", "A": "2"}) + "\n").encode()
