# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest env launch_smolmachines.yml hands smolvm_machine, rendered as Ansible renders it.

Proxies (both cases) at the bundle, NO_PROXY, the CA variables of the docker backend (CA_ENV, with
NODE_EXTRA_CA_CERTS); secret_env only by reference (its own option), never in env.
"""

from __future__ import annotations

import pathlib

import yaml

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.botbottle.bottle.plugins.module_utils.agent_container import CA_ENV

ROOT = pathlib.Path(__file__).resolve().parents[4]


def machine_task():
    tasks = yaml.safe_load((ROOT / "roles" / "bottle" / "tasks" / "launch_smolmachines.yml").read_text())
    task, = [t for t in tasks if "botbottle.bottle.smolvm_machine" in t]
    return task


def render(expr, variables):
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(trust_as_template(expr))


def test_guest_env_has_proxies_no_proxy_and_the_ca_variables_and_no_secret():
    task = machine_task()
    role_vars = yaml.safe_load((ROOT / "roles" / "bottle" / "vars" / "main.yml").read_text())
    variables = dict(
        bottle_resolved={"env": {"PROBE": "1"}, "secret_env": {"GH_TOKEN": "ghp_secretvalue"}},
        bottle_bundle={"endpoints": {"proxy_url": "http://127.77.0.17:8888"}},
        bottle_loopback_address="127.77.0.17",
        bottle_agent_ca_env=role_vars["bottle_agent_ca_env"],
    )
    for key, value in task["vars"].items():
        variables[key] = render(value, variables)
    args = task["botbottle.bottle.smolvm_machine"]
    env = render(args["env"], variables)
    proxy = "http://127.77.0.17:8888"
    for key in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        assert env[key] == proxy
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1,127.77.0.17"
    for key, value in CA_ENV.items():
        assert env[key] == value, key
    assert env["NODE_EXTRA_CA_CERTS"] == "/usr/local/share/ca-certificates/bottle-ca.crt"
    assert env["PROBE"] == "1"
    assert "GH_TOKEN" not in env and "ghp_secretvalue" not in repr(env)
    assert render(args["secret_env"], variables) == {"GH_TOKEN": "ghp_secretvalue"}
