# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The identity_problems filter says of ansible.builtin.stat's results what bottle_launch says of os.lstat's."""

from __future__ import annotations

import os

from ansible_collections.botbottle.bottle.plugins.filter.identity_problems import identity_problems
from ansible_collections.botbottle.bottle.plugins.module_utils import host_files


def _registered(*pairs):
    return {"results": [{"item": {"name": name, "identity": path}, "stat": seen} for name, path, seen in pairs]}


def test_the_filter_and_the_module_say_the_same(tmp_path):
    shared = tmp_path / "shared"
    shared.write_text("k")
    os.chmod(shared, 0o644)
    private = tmp_path / "private"
    private.write_text("k")
    os.chmod(private, 0o600)
    registered = _registered(
        ("project", str(shared), {"exists": True, "isreg": True, "mode": "0644"}),
        ("ok", str(private), {"exists": True, "isreg": True, "mode": "0600"}),
        ("gone", str(tmp_path / "gone"), {"exists": False}),
        ("dir", str(tmp_path), {"exists": True, "isreg": False, "mode": "0755"}))
    repos = [result["item"] for result in registered["results"]]
    assert identity_problems(registered, "probe") == host_files.identity_problems(repos, "probe")
    assert len(identity_problems(registered, "probe")) == 3


def test_a_skipped_loop_has_no_problems():
    assert identity_problems({"results": []}) == []
    assert identity_problems({}) == []
