# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""launch_digest: one digest of a launch's inputs and of the collection's code."""
from __future__ import annotations

import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.botbottle.bottle.plugins.filter import launch_digest as module
from ansible_collections.botbottle.bottle.plugins.filter.launch_digest import FilterModule, code_digest

launch_digest = FilterModule().filters()["launch_digest"]

INPUTS = {
    "backend": "docker",
    "state": {"state_root": "~/.bot-bottle/state", "policy": {"allowed_domains": ["api.anthropic.com"]},
              "options": {"pipelock": False, "ssrf_ip_allowlist": [], "supervise": {}},
              "secrets": [], "tokens": {"ANTHROPIC_API_KEY": "x"}, "meta": {"slug": "demo-rr1", "agent": "demo"}},
    "launch": {"network": {"pool": "172.29.0.0/16", "prefix": 24},
               "container": {"image": "botbottle/agent:latest", "env": {"A": "1"}, "secret_env": {}},
               "bundle": {"daemons": ["egress", "supervise"], "health_timeout": 60}},
}


def reordered(value):
    """The same structure with every dict's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(item) for item in value]
    return value


def test_same_inputs_same_digest_whatever_the_key_order():
    first = launch_digest(INPUTS)
    assert len(first) == 64 and int(first, 16) >= 0
    again = reordered(INPUTS)
    assert list(again) != list(INPUTS)
    assert launch_digest(again) == first == launch_digest(INPUTS)


@pytest.mark.parametrize("path, value", [
    (("state", "tokens", "ANTHROPIC_API_KEY"), "y"),                   # a credential (only its digest is kept)
    (("state", "policy", "allowed_domains"), ["example.org"]),
    (("state", "options", "pipelock"), True),
    (("launch", "network", "prefix"), 25),
    (("launch", "network", "prefix"), "24"),                            # a number is not its string
    (("launch", "container", "env", "B"), "2"),                         # a key added
    (("launch", "bundle", "daemons"), ["supervise", "egress"]),          # a list's order counts
    (("launch", "bundle", "health_timeout"), None),
])
def test_any_nested_change_changes_the_digest(path, value):
    changed = reordered(INPUTS)  # a deep copy
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert launch_digest(changed) != launch_digest(INPUTS)


def test_a_removed_key_changes_the_digest():
    changed = reordered(INPUTS)
    del changed["state"]["meta"]["agent"]
    assert launch_digest(changed) != launch_digest(INPUTS)


def test_the_collections_code_is_part_of_the_digest(monkeypatch):
    before = launch_digest(INPUTS)
    monkeypatch.setitem(module._code, module.ROOT, "0" * 64)  # as if a module or task file had changed
    assert launch_digest(INPUTS) != before


def test_the_shipped_collection_has_a_code_digest():
    assert os.path.isdir(os.path.join(module.ROOT, "plugins", "filter"))
    assert len(code_digest()) == 64


# --- code_digest over a tmp tree --------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "collection"
    for relative, text in {"plugins/modules/a.py": "A = 1\n", "plugins/module_utils/b.py": "B = 2\n",
                           "roles/bottle/tasks/main.yml": "---\n", "roles/bottle/defaults/main.yml": "x: 1\n"}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def fresh(root):
    """code_digest of ``root`` as a new process would compute it (the cache is per process, by root)."""
    module._code.pop(str(root), None)
    return code_digest(str(root))


def test_code_digest_is_cached_per_root(tree, tmp_path):
    first = fresh(tree)
    (tree / "plugins" / "modules" / "a.py").write_text("A = 2\n")
    assert code_digest(str(tree)) == first  # once per process
    assert fresh(tree) != first
    other = tmp_path / "other"
    other.mkdir()
    assert code_digest(str(other)) != first  # another root has its own entry
    module._code.pop(str(other), None)


@pytest.mark.parametrize("change", [
    lambda r: (r / "plugins" / "modules" / "a.py").write_text("A = 2\n"),          # plugins: a file changed
    lambda r: (r / "roles" / "bottle" / "tasks" / "main.yml").write_text("--- \n"),  # roles: a file changed
    lambda r: (r / "plugins" / "filter").mkdir() or (r / "plugins" / "filter" / "f.py").write_text(""),  # added
    lambda r: (r / "roles" / "bottle" / "tasks" / "extra.yml").write_text("---\n"),                      # added
    lambda r: (r / "plugins" / "module_utils" / "b.py").unlink(),                                          # removed
    lambda r: (r / "roles" / "bottle" / "defaults" / "main.yml").unlink(),                                 # removed
    lambda r: (r / "plugins" / "modules" / "a.py").rename(r / "plugins" / "modules" / "c.py"),             # renamed
])
def test_code_digest_follows_plugins_and_roles(tree, change):
    before = fresh(tree)
    change(tree)
    assert fresh(tree) != before
    module._code.pop(str(tree), None)


@pytest.mark.parametrize("change", [
    lambda r: (r / "plugins" / "modules" / "__pycache__").mkdir() or (
        r / "plugins" / "modules" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0compiled"),
    lambda r: (r / "plugins" / "modules" / "a.pyc").write_bytes(b"\0compiled"),
    lambda r: (r / "plugins" / "modules" / "a.pyo").write_bytes(b"\0compiled"),
    lambda r: (r / "roles" / "bottle" / "tasks" / ".main.yml.swp").write_text("editor"),
    lambda r: (r / "plugins" / ".git").mkdir() or (r / "plugins" / ".git" / "HEAD").write_text("x"),
    lambda r: (r / "docs").mkdir() or (r / "docs" / "x.md").write_text("not code"),
    lambda r: (r / "README.md").write_text("not code"),
])
def test_code_digest_ignores_what_is_not_code(tree, change):
    before = fresh(tree)
    change(tree)
    assert fresh(tree) == before
    module._code.pop(str(tree), None)


def test_code_digest_of_a_root_without_code(tmp_path):
    assert fresh(tmp_path) == fresh(tmp_path / "missing")  # both: nothing hashed
    module._code.pop(str(tmp_path), None)
    module._code.pop(str(tmp_path / "missing"), None)


# --- inputs that are not plain data ---------------------------------------------------------------

def circular():
    loop = {"a": []}
    loop["a"].append(loop)
    return loop


@pytest.mark.parametrize("inputs", [
    circular(),
    {"a": {1: "x", "b": "y"}},      # keys of mixed types cannot be sorted
    {"a": {(1, 2): "x"}},           # a key JSON cannot hold
])
def test_inputs_that_are_not_plain_data_fail_readably(inputs):
    with pytest.raises(AnsibleFilterError, match=r"^launch_digest: the inputs are not plain data: .+"):
        launch_digest(inputs)


def test_an_object_that_is_not_plain_data_fails():
    with pytest.raises(AnsibleFilterError, match="not plain data"):
        launch_digest({"a": object()})
