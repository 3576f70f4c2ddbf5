# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_state on a temporary state root."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.botbottle.bottle.plugins.modules import bottle_state
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import Failed, run_module


def run(root, check=False, **overrides):
    args = {"slug": "demo", "state_root": str(root), "files": {"pipelock.yaml": "mode: strict"},
            "private_files": {"pipelock": {"dlp-secrets.txt": "ghp_secret"}}, "meta": {"slug": "demo", "created": "t1"}}
    args.update(overrides)
    return run_module(bottle_state, None, args, check=check, diff=True)


@pytest.fixture(autouse=True)
def no_docker(monkeypatch):
    monkeypatch.setattr(bottle_state, "get_docker_client", None, raising=False)


def test_creates_private_tree_and_hash(tmp_path):
    result = run(tmp_path)
    base = tmp_path / "demo"
    assert result["changed"] and result["path"] == str(base)
    for path in (base, base / "bundle", base / "ca"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert (base / "bundle" / "pipelock.yaml").read_text() == "mode: strict\n"
    secret = base / "private" / "pipelock" / "dlp-secrets.txt"
    assert secret.read_text() == "ghp_secret\n" and stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(base / "private" / "pipelock").st_mode) == 0o700
    # the secret never shows in the diff
    assert "ghp_secret" not in json.dumps(result["diff"])


def test_second_run_unchanged_and_meta_kept(tmp_path):
    first = run(tmp_path)
    second = run(tmp_path, meta={"slug": "demo", "created": "t2"})
    assert not second["changed"] and second["config_hash"] == first["config_hash"]
    assert json.loads((tmp_path / "demo" / "meta.json").read_text())["created"] == "t1"


def test_content_change_changes_the_hash(tmp_path):
    first = run(tmp_path)
    second = run(tmp_path, private_files={"pipelock": {"dlp-secrets.txt": "other"}})
    assert second["changed"] and second["config_hash"] != first["config_hash"]


def test_check_mode_writes_nothing(tmp_path):
    assert run(tmp_path, check=True)["changed"]
    assert not (tmp_path / "demo").exists()


def test_absent(tmp_path):
    run(tmp_path)
    assert run(tmp_path, state="absent")["changed"]
    assert not run(tmp_path, state="absent")["changed"]


@pytest.mark.parametrize("name", ["../evil", ".hidden", "a/b"])
def test_file_names_stay_inside_bundle(tmp_path, name):
    with pytest.raises(Failed, match="plain file name"):
        run(tmp_path, files={name: "x"})
