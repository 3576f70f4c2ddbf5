# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""deprecated_alias: the value unchanged; Ansible's deprecation warning only when the old name was used."""

from __future__ import annotations

import pytest

from ansible_collections.botbottle.bottle.plugins.filter import deprecated_alias as plugin


class Recorder:
    calls = []

    def deprecated(self, msg, version=None, collection_name=None, **kwargs):
        Recorder.calls.append((msg, version, collection_name))


@pytest.fixture(autouse=True)
def display(monkeypatch):
    Recorder.calls = []
    monkeypatch.setattr(plugin, "Display", Recorder)


def test_the_old_name_set_warns_naming_both_and_the_release():
    assert plugin.deprecated_alias("coder", "bottle_agent", "bottle_agent_name") == "coder"
    assert Recorder.calls == [("the variable bottle_agent is deprecated: set bottle_agent_name instead (same value)",
                               "1.0.0", "botbottle.bottle")]


@pytest.mark.parametrize("value", ["", None, [], {}])
def test_the_old_name_unset_says_nothing(value):
    assert plugin.deprecated_alias(value, "bottle_agent", "bottle_agent_name") == value
    assert Recorder.calls == []


def test_the_filter_is_registered():
    assert plugin.FilterModule().filters()["deprecated_alias"] is plugin.deprecated_alias
