# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent's CA variables have one set of values in every backend: the docker backend's
(agent_container.CA_ENV), the smolmachines VM's (the role's bottle_agent_ca_env), the agent image's
own ENV; and a policy cannot override them."""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

from ansible_collections.botbottle.bottle.plugins.module_utils import manifest
from ansible_collections.botbottle.bottle.plugins.module_utils.agent_container import CA_ENV, CA_PATH
from ansible_collections.botbottle.bottle.plugins.module_utils.provisioning import CA_TARGET

ROOT = pathlib.Path(__file__).resolve().parents[4]


def test_the_smolmachines_vm_gets_the_docker_backends_values():
    role_vars = yaml.safe_load((ROOT / "roles" / "bottle" / "vars" / "main.yml").read_text(encoding="utf-8"))
    assert role_vars["bottle_agent_ca_env"] == CA_ENV
    task = (ROOT / "roles" / "bottle" / "tasks" / "preflight.yml").read_text(encoding="utf-8")
    assert "'env': bottle_resolved.env | combine(bottle_agent_ca_env)" in task


def test_the_agent_image_sets_the_same_values():
    dockerfile = (ROOT / "images" / "agent" / "Dockerfile").read_text(encoding="utf-8")
    env_block = dockerfile[dockerfile.index("\nENV "):]
    image_env = dict(re.findall(r"\b([A-Z_]+)=(\S+)", env_block.split("\nUSER ")[0]))
    expected = {key: value for key, value in CA_ENV.items() if key != "NODE_EXTRA_CA_CERTS"}
    assert {key: image_env.get(key) for key in expected} == expected
    # NODE_EXTRA_CA_CERTS names a file that exists only once the bottle is provisioned: per container.
    assert "NODE_EXTRA_CA_CERTS" not in image_env


def test_node_adds_the_file_provisioning_installs():
    assert CA_ENV["NODE_EXTRA_CA_CERTS"] == CA_PATH == CA_TARGET


@pytest.mark.parametrize("name", sorted(CA_ENV))
def test_a_policy_cannot_override_a_ca_variable(name):
    assert name in manifest.RESERVED_ENV
