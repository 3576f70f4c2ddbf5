# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operator's files a launch reads on the managed host (module_utils/host_files.py): each problem names the
key the operator wrote and the fix."""

from __future__ import annotations

import os

from ansible_collections.botbottle.bottle.plugins.module_utils import host_files


def test_an_identity_must_exist_be_a_regular_file_and_private(tmp_path):
    good = tmp_path / "gate"
    good.write_text("key")
    os.chmod(good, 0o600)
    shared = tmp_path / "shared"
    shared.write_text("key")
    os.chmod(shared, 0o644)
    link = tmp_path / "link"
    link.symlink_to(good)
    repos = [{"name": "ok", "identity": str(good)}, {"name": "project", "identity": str(shared)},
             {"name": "gone", "identity": str(tmp_path / "missing")}, {"name": "dir", "identity": str(tmp_path)},
             {"name": "link", "identity": str(link)}]
    problems = host_files.identity_problems(repos, "demo")
    assert problems == [
        "bottle_policies.demo.git_gate.repos.project.identity %s on this host: has mode 0644, readable by others: "
        "chmod 600 %s" % (shared, shared),
        "bottle_policies.demo.git_gate.repos.gone.identity %s/missing on this host: does not exist: point it at the "
        "SSH private key the gate pushes with" % tmp_path,
        "bottle_policies.demo.git_gate.repos.dir.identity %s on this host: is not a regular file: point it at the "
        "SSH private key the gate pushes with" % tmp_path,
        "bottle_policies.demo.git_gate.repos.link.identity %s on this host: is not a regular file: point it at the "
        "SSH private key the gate pushes with" % link,
    ]
    assert host_files.identity_problems([{"name": "gone", "identity": str(tmp_path / "x")}])[0].startswith(
        "git_gate.repos.gone.identity ")


def test_the_upstream_ca_is_read_or_its_problem_named(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert host_files.read_upstream_ca(str(ca)) == ("-----BEGIN CERTIFICATE-----\n", None)
    text, problem = host_files.read_upstream_ca(str(tmp_path / "nope.pem"))
    assert text is None
    assert problem == ("bottle_upstream_ca_file %s/nope.pem does not exist on this host: fix the path or leave it "
                       "empty" % tmp_path)
    assert "is a directory" in host_files.read_upstream_ca(str(tmp_path))[1]
