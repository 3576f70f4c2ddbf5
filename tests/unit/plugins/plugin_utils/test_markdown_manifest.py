# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Markdown manifests: front matter + body, validated like inventory definitions, errors name file and key."""

from __future__ import annotations

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import manifest
from ansible_collections.botbottle.bottle.plugins.plugin_utils.markdown_manifest import (
    ManifestError, load_dir, parse)

AGENT = """---
policy: webdev
skills:
  lint: |
    # lint
    Run the linter.
---
You maintain the frontend.

Run the tests before you push.
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_agent_body_is_the_prompt(tmp_path):
    write(tmp_path, "frontend.md", AGENT)
    write(tmp_path, "README.txt", "not a manifest")
    agents = load_dir(str(tmp_path))
    assert agents == {"frontend": {"policy": "webdev", "skills": {"lint": "# lint\nRun the linter.\n"},
                                   "prompt": "You maintain the frontend.\n\nRun the tests before you push.\n"}}


def test_policy_body_is_the_description_and_it_resolves_like_inventory(tmp_path):
    write(tmp_path, "webdev.md", "---\nallowed_domains: [registry.npmjs.org]\nenv: {NODE_ENV: development}\n---\n"
                                 "Web development: npm only.\n")
    policies = load_dir(str(tmp_path), "policies")
    assert policies["webdev"]["description"] == "Web development: npm only.\n"
    _name, agent = parse(AGENT, "agents/frontend.md")
    resolved = manifest.resolve({"frontend": agent}, policies, "frontend")
    assert resolved["policy"]["allowed_domains"] == ["registry.npmjs.org"] and resolved["env"] == {
        "NODE_ENV": "development"}


def test_an_empty_body_sets_nothing():
    _name, agent = parse("---\npolicy: p\nprompt: from the front matter\n---\n\n", "a.md")
    assert agent == {"policy": "p", "prompt": "from the front matter"}


@pytest.mark.parametrize("text, kind, message", [
    ("---\npolcy: webdev\n---\nhi\n", "agents",
     "agents/web.md: bottle_agents.web.polcy is not a known key: use one of"),
    ("---\nskills: {lint: 3}\npolicy: p\n---\n", "agents", "agents/web.md: bottle_agents.web.skills.lint must be Markdown"),
    ("---\nprompt: twice\npolicy: p\n---\nbody\n", "agents",
     "agents/web.md: bottle_agents.web.prompt is given twice (front matter and body)"),
    ("---\n---\nhi\n", "agents", "agents/web.md: bottle_agents.web.policy is required"),
    ("policy: p\n", "agents", "agents/web.md: no front matter: start the file with a line '---'"),
    ("---\npolicy: p\n", "agents", "agents/web.md: the front matter is not closed"),
    ("---\npolicy: [\n---\n", "agents", "agents/web.md: the front matter is not valid YAML"),
    ("---\n- a\n---\n", "agents", "agents/web.md: the front matter must be a mapping of agent keys"),
    ("---\nallowed_domains: ['https://x.example']\n---\n", "policies",
     "agents/web.md: bottle_policies.web.allowed_domains[0] 'https://x.example' is not a host name"),
])
def test_errors_name_the_file_and_the_key(text, kind, message):
    with pytest.raises(ManifestError) as error:
        parse(text, "agents/web.md", kind)
    assert str(error.value).startswith(message), str(error.value)


def test_bad_file_names_and_directories(tmp_path):
    write(tmp_path, "Web Agent.md", AGENT)
    with pytest.raises(ManifestError, match=r"Web Agent.md: 'Web Agent' is not a valid agent name"):
        load_dir(str(tmp_path))
    with pytest.raises(ManifestError, match="is not a directory of <name>.md agents manifests"):
        load_dir(str(tmp_path / "absent"))
    with pytest.raises(ManifestError, match="kind 'skills': use agents or policies"):
        parse(AGENT, "a.md", "skills")
