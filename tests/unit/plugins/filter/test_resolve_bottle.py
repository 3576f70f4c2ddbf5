# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.botbottle.bottle.plugins.filter.resolve_bottle import FilterModule


def test_filter_resolves_and_wraps_errors():
    resolve_bottle = FilterModule().filters()["resolve_bottle"]
    agents = {"a": {"policy": "p"}}
    policies = {"p": {"allowed_domains": ["api.anthropic.com"]}}
    assert resolve_bottle("a", agents, policies, suffix="x")["slug"] == "a-x"
    with pytest.raises(AnsibleFilterError, match="known agents are a"):
        resolve_bottle("b", agents, policies)
