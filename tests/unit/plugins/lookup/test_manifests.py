# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The manifests lookup: one mapping from every directory, errors as AnsibleLookupError."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleLookupError
from ansible_collections.botbottle.bottle.plugins.lookup.manifests import LookupModule


def lookup():
    return LookupModule()


def test_merges_directories_later_wins(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "a.md").write_text("---\npolicy: p\n---\nfirst a\n")
    (tmp_path / "one" / "b.md").write_text("---\npolicy: p\n---\nb\n")
    (tmp_path / "two" / "a.md").write_text("---\npolicy: q\n---\nsecond a\n")
    result = lookup().run([str(tmp_path / "one"), str(tmp_path / "two")], variables={})
    assert result == [{"a": {"policy": "q", "prompt": "second a\n"}, "b": {"policy": "p", "prompt": "b\n"}}]


def test_policies_kind(tmp_path):
    (tmp_path / "web.md").write_text("---\nallowed_domains: [example.com]\n---\nWeb.\n")
    result = lookup().run([str(tmp_path)], variables={}, kind="policies")
    assert result == [{"web": {"allowed_domains": ["example.com"], "description": "Web.\n"}}]


def test_errors_name_the_file(tmp_path):
    (tmp_path / "web.md").write_text("---\npolicy: p\nimage: [1]\n---\n")
    with pytest.raises(AnsibleLookupError, match=r"web.md: bottle_agents.web.image must be a string"):
        lookup().run([str(tmp_path)], variables={})


def test_bad_options(tmp_path):
    with pytest.raises(AnsibleLookupError, match="kind='skills': use agents or policies"):
        lookup().run([str(tmp_path)], variables={}, kind="skills")
    with pytest.raises(AnsibleLookupError, match="recursive is not an option"):
        lookup().run([str(tmp_path)], variables={}, recursive=True)
