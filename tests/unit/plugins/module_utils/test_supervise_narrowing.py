# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An operator's change to a proposal narrows what the agent asked and never widens it."""

from __future__ import annotations

import re

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config as bc
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as sv

PREFIX = {"type": "prefix", "value": "/repos/our-org/"}
# issue 15: the agent asked for this; approving with {"matches": [{"methods": ["GET"]}]} allowed GET on every path.
ASKED = [{"paths": [PREFIX], "methods": ["GET", "POST"]}]


def route(**fields):
    proposal = {"id": "1111222233334444", "kind": "route", "status": "pending", "host": "api.github.com",
                "auth_ref": "GH_TOKEN", "matches": ASKED}
    proposal.update(fields)
    return {k: v for k, v in proposal.items() if v is not None}


def test_the_issue_case_keeps_the_prefix_and_allows_get_only():
    updated, before = sv.apply_changes(route(), {"matches": [{"methods": ["GET"]}]})
    assert updated["matches"] == [{"paths": [PREFIX], "methods": ["GET"]}]
    assert before == {"matches": ASKED}
    # and that is what egress is given
    assert sv.route_of(updated)["matches"] == [{"paths": [PREFIX], "methods": ["GET"]}]


@pytest.mark.parametrize("change, result", [
    ([{}], ASKED),
    ([{"paths": [{"type": "prefix", "value": "/repos/our-org/tools/"}]}],
     [{"paths": [{"type": "prefix", "value": "/repos/our-org/tools/"}], "methods": ["GET", "POST"]}]),
    ([{"paths": [{"type": "exact", "value": "/repos/our-org/x"}], "methods": ["post"]}],
     [{"paths": [{"type": "exact", "value": "/repos/our-org/x"}], "methods": ["post"]}]),
    ([{"paths": [{"value": "/repos/our-org/a/"}], "headers": {"Accept": "application/json"}}],
     [{"paths": [{"value": "/repos/our-org/a/"}], "methods": ["GET", "POST"], "headers": {"Accept": "application/json"}}]),
], ids=["empty-entry-keeps", "longer-prefix", "exact-inside-and-fewer-methods", "added-header"])
def test_narrowing_changes_are_merged(change, result):
    assert sv.merge_matches(ASKED, change) == result


@pytest.mark.parametrize("change, said", [
    ([{"paths": None}], "would drop the paths the request was limited to (prefix /repos/our-org/): every path"),
    ([{"paths": [{"type": "prefix", "value": "/repos/"}]}],
     "changes.matches[0].paths[0] prefix /repos/ is not inside the paths asked (prefix /repos/our-org/)"),
    ([{"paths": [{"type": "prefix", "value": "/repos/our-org"}]}], "prefix /repos/our-org is not inside"),
    ([{"paths": [{"type": "regex", "value": "/repos/our-org/.*"}]}], "a regex can only be kept as asked"),
    ([{"methods": ["GET", "DELETE"]}], "would add method DELETE, which the request did not ask (it asked GET, POST)"),
    ([{"methods": None}], "would drop the methods the request was limited to (GET, POST): every method"),
    (None, "would drop every restriction the request had"),
    ([], "would drop every restriction the request had"),
], ids=["paths-dropped", "outer-prefix", "shorter-prefix", "regex", "method-added", "methods-dropped",
        "matches-null", "matches-empty"])
def test_widening_changes_are_refused_saying_what(change, said):
    with pytest.raises(sv.SuperviseError) as refused:
        sv.merge_matches(ASKED, change)
    assert said in str(refused.value)
    if change:
        assert "reject it with a note and let the agent ask again" in str(refused.value)


@pytest.mark.parametrize("entry, said", [
    ({"paths": "/repos/our-org/x"}, "changes.matches[0].paths must be a list of {type"),
    ({"paths": ["/repos/our-org/x"]}, "changes.matches[0].paths must be a list of {type"),
    ({"methods": "GET"}, "changes.matches[0].methods must be a list"),
    ({"headers": ["X-A"]}, "changes.matches[0].headers must be a mapping"),
    ("GET", "changes.matches[0] must be a mapping"),
])
def test_a_change_of_the_wrong_shape_names_the_key(entry, said):
    with pytest.raises(sv.SuperviseError, match=re.escape(said)):
        sv.merge_matches(ASKED, [entry])


def test_every_widening_of_a_change_is_named():
    with pytest.raises(sv.SuperviseError) as refused:
        sv.merge_matches(ASKED, [{"paths": [{"type": "prefix", "value": "/"}], "methods": ["PUT"]}])
    assert "prefix / is not inside" in str(refused.value) and "would add method PUT" in str(refused.value)


def test_a_header_the_request_required_stays():
    asked = [{"methods": ["GET"], "headers": {"X-Org": "ours"}}]
    assert sv.merge_matches(asked, [{"headers": {"x-org": "ours", "Accept": "json"}}])[0]["headers"] == \
        {"x-org": "ours", "Accept": "json"}
    with pytest.raises(sv.SuperviseError, match="would drop or change the required header X-Org: ours"):
        sv.merge_matches(asked, [{"headers": {"X-Org": "theirs"}}])


def test_exact_path_inside_an_asked_regex():
    asked = [{"paths": [{"type": "regex", "value": "/v1/items/[0-9]+"}]}]
    assert sv.merge_matches(asked, [{"paths": [{"type": "exact", "value": "/v1/items/42"}]}])
    with pytest.raises(sv.SuperviseError, match="exact /v1/items/abc is not inside"):
        sv.merge_matches(asked, [{"paths": [{"type": "exact", "value": "/v1/items/abc"}]}])


TWO = [{"paths": [PREFIX], "methods": ["GET"]}, {"paths": [{"type": "exact", "value": "/user"}]}]


def test_a_change_of_another_length_is_refused_with_the_request():
    with pytest.raises(sv.SuperviseError) as refused:
        sv.merge_matches(TWO, [{"methods": ["GET"]}])
    text = str(refused.value)
    assert "changes.matches has 1 entry and the request has 2" in text
    assert "{} keeps an entry as asked, null drops it" in text and "/repos/our-org/" in text
    with pytest.raises(sv.SuperviseError, match="has 3 entries and the request has 2"):
        sv.merge_matches(TWO, [{}, {}, {"methods": ["GET"]}])


def test_null_drops_an_entry_and_dropping_all_is_a_rejection():
    assert sv.merge_matches(TWO, [None, {}]) == [TWO[1]]
    assert sv.merge_matches(TWO, [{"methods": ["GET"]}, None]) == [TWO[0]]
    with pytest.raises(sv.SuperviseError, match="drops every entry the request had: reject the proposal instead"):
        sv.merge_matches(TWO, [None, None])


def test_a_request_without_matches_takes_the_change_as_given():
    change = [{"paths": [{"type": "prefix", "value": "/v1/"}], "methods": ["GET"]}]
    updated, _before = sv.apply_changes(route(matches=None), {"matches": change})
    assert updated["matches"] == change
    updated, before = sv.apply_changes(route(matches=None), {"matches": None})
    assert "matches" not in updated and before == {}


def test_a_widening_approval_leaves_the_proposal_as_it_was():
    proposal = route()
    with pytest.raises(sv.SuperviseError):
        sv.apply_changes(proposal, {"matches": [{"paths": None}]})
    assert proposal["matches"] == ASKED


# -- host --------------------------------------------------------------------------------------------

def domain(host):
    return {"id": "0123456789abcdef", "kind": "domain", "status": "pending", "host": host}


def test_another_single_host_is_the_operators_choice():
    updated, before = sv.apply_changes(domain("pypi.org"), {"host": "Mirror.Example.COM"})
    assert updated["host"] == "mirror.example.com" and before == {"host": "pypi.org"}


@pytest.mark.parametrize("asked, change", [("api.example.com", "*.example.com"), ("*.api.example.com", "*.example.com"),
                                           ("pypi.org", "*.other.org")])
def test_a_wildcard_wider_than_the_request_is_refused(asked, change):
    with pytest.raises(sv.SuperviseError) as refused:
        sv.apply_changes(domain(asked), {"host": change})
    assert "changes.host %s would allow every host under %s, and the request asked for %s only" % (
        change, change[2:], asked) in str(refused.value)
    assert "allowed_domains (bottle_policies)" in str(refused.value)


@pytest.mark.parametrize("asked, change", [("*.example.com", "*.api.example.com"), ("*.example.com", "*.example.com"),
                                           ("*.example.com", "www.example.com")])
def test_a_wildcard_inside_the_asked_one_is_a_narrowing(asked, change):
    assert sv.apply_changes(domain(asked), {"host": change})[0]["host"] == change


def test_a_route_host_stays_a_single_host():
    with pytest.raises(sv.SuperviseError, match="would allow every host under github.com"):
        sv.apply_changes(route(), {"host": "*.github.com"})


# -- approvals of a bottle and of its agent ------------------------------------------------------------

def test_combined_approvals_keep_the_bottles_order_then_add_the_agents():
    bottle = {"domains": ["b.example", "a.example"], "routes": [{"host": "r.example", "matches": [{"methods": ["GET"]}]}]}
    agent = {"domains": ["a.example", "c.example"], "routes": [{"host": "r.example"}, {"host": "s.example"}]}
    assert bc.combine_approved(bottle, agent) == {
        "domains": ["b.example", "a.example", "c.example"],
        "routes": [{"host": "r.example", "matches": [{"methods": ["GET"]}]}, {"host": "s.example"}]}
    assert bc.combine_approved(None, agent) == {"domains": agent["domains"], "routes": agent["routes"]}


def test_agent_approvals_live_beside_the_state_root(tmp_path):
    root = str(tmp_path / "state")
    assert sv.agent_approved_path(root, "demo") == str(tmp_path / "agents" / "demo" / "supervise-approved.json")
    assert sv.agent_approved_path(root + "/", "demo") == sv.agent_approved_path(root, "demo")
    with pytest.raises(sv.SuperviseError, match="not one botbottle writes"):
        sv.agent_approved_path(root, "../etc")
    assert sv.read_agent_approved(root, "demo") == {"domains": [], "routes": []}
