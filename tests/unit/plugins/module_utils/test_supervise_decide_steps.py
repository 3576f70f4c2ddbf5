# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""supervise_decide.decide is validate, plan and apply around a small plan object (Decision): each step on its own.
validate reads the store only; plan works out every file and line the decision writes, writing nothing; apply
writes them, the configuration first and the decision last."""

from __future__ import annotations

import json

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as sv
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_decide as sd
# The fixtures of bottle_supervise's tests (a bottle with three pending proposals, reloads recorded) are used by name.
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.test_bottle_supervise import (  # noqa: F401 pylint: disable=unused-import
    DOMAIN_ID, ROUTE_ID, pipelock, reloads, root, snapshot)


@pytest.mark.parametrize("args, error", [
    (dict(decision="maybe"), "decision 'maybe': use approve, reject or modify"),
    (dict(scope="fleet"), "scope 'fleet': use bottle"),
    (dict(bind_new_host="yes"), "bind_new_host must be true or false"),
    (dict(changes=["x"]), "changes must be a mapping"),
    (dict(slug="other"), "bottle other has no supervise store"),
    (dict(proposal_id="ffffffffffffffff"), "bottle demo has no proposal ffffffffffffffff"),
])
def test_validate_names_what_is_wrong(root, args, error):
    given = dict(state_root=str(root), slug="demo", proposal_id=DOMAIN_ID, decision="approve")
    given.update(args)
    with pytest.raises(sv.SuperviseError, match=error):
        sd.validate(**given)


def test_validate_gives_the_request_with_its_proposal(root):
    request = sd.validate(str(root), "demo", DOMAIN_ID, "approve", note=None, changes={"host": "pypi.org"})
    assert request.proposal["id"] == DOMAIN_ID and request.want == "approved" and request.note == ""
    assert request.changes == {"host": "pypi.org"} and request.state_dir == str(root / "demo")


def test_plan_writes_nothing_and_says_what_apply_will_write(root, reloads):
    before = snapshot(root)
    step = sd.plan(sd.validate(str(root), "demo", DOMAIN_ID, "approve", note="ok"))
    assert snapshot(root) == before and reloads == []
    assert step.updated["status"] == "approved" and step.updated["note"] == "ok"
    assert [e["event"] for e in step.events] == ["approved"]
    assert step.config is not None and step.config.changes and not step.final
    assert step.result["changed"] is True and step.result["changed_files"] == step.config.paths
    assert step.result["diff"][0]["after"]["status"] == "approved"


def test_plan_of_a_decision_already_made_is_final(root, reloads):
    sd.decide(str(root), "demo", DOMAIN_ID, "reject", note="no")
    step = sd.plan(sd.validate(str(root), "demo", DOMAIN_ID, "reject"))
    assert step.final and step.result["changed"] is False
    assert sd.apply(step) is step.result


def test_plan_refuses_a_decision_that_cannot_be_made(root, reloads):
    with pytest.raises(sv.SuperviseError, match="decision=modify needs changes"):
        sd.plan(sd.validate(str(root), "demo", ROUTE_ID, "modify"))
    with pytest.raises(sv.SuperviseError, match="scope agent applies an approval"):
        sd.plan(sd.validate(str(root), "demo", DOMAIN_ID, "reject", scope="agent"))


def test_apply_writes_the_plan_the_configuration_before_the_decision(root, reloads, monkeypatch):
    order = []
    step = sd.plan(sd.validate(str(root), "demo", DOMAIN_ID, "approve"))
    real_apply, real_write = step.config.apply, sv.write_proposal
    monkeypatch.setattr(step.config, "apply", lambda: (order.append("configuration"), real_apply())[1])
    monkeypatch.setattr(sv, "write_proposal", lambda *a: (order.append("proposal"), real_write(*a))[1])
    result = sd.apply(step, client_factory=lambda: None)
    assert order == ["configuration", "proposal"]
    assert result["reloaded"] is True and result["config_hash"] == reloads[0][1]
    stored = json.loads((root / "demo" / "supervise" / "proposals" / (DOMAIN_ID + ".json")).read_text())
    assert stored["status"] == "approved"
    assert "pypi.org" in (root / "demo" / "bundle" / "egress.json").read_text()


def test_decide_is_the_three_steps(root, reloads):
    check = sd.decide(str(root), "demo", DOMAIN_ID, "approve", check_mode=True)
    step = sd.plan(sd.validate(str(root), "demo", DOMAIN_ID, "approve"))
    assert check["changed_files"] == step.result["changed_files"]
    done = sd.decide(str(root), "demo", DOMAIN_ID, "approve")
    assert done["changed"] is True and done["reloaded"] is True
