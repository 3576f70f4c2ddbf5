# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The VM a smolmachines launch asks smolvm for: the role's machine options (preflight.yml, bottle_launch_vm),
rendered as Ansible renders them, wired by bottle_launch's smolmachines plan (launch_phases.SMOLMACHINES).

The guest env: proxies (both cases) at the guest's own loopback (its relay), NO_PROXY, the CA variables
of the docker backend (CA_ENV, with NODE_EXTRA_CA_CERTS); secret_env only by reference (its own option),
never in env. The exact ``machine create`` argv: no network flag, the three mounted sockets, the secret
references, the guest relay as the workload.
"""

from __future__ import annotations

import pathlib

import yaml

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.botbottle.bottle.plugins.module_utils import launch_phases, smolvm
from ansible_collections.botbottle.bottle.plugins.module_utils import socket_relay
from ansible_collections.botbottle.bottle.plugins.module_utils.agent_container import CA_ENV

ROOT = pathlib.Path(__file__).resolve().parents[4]


def assemble_task():
    tasks = yaml.safe_load((ROOT / "roles" / "bottle" / "tasks" / "preflight.yml").read_text())
    task, = [t for t in tasks if t.get("name") == "Assemble what the launch gives its modules"]
    return task


def render(expr, variables):
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(trust_as_template(expr))


STATE = "/home/me/.bot-bottle/state/demo-a"
SERVICES = ["proxy", "git-gate", "supervise"]


def rendered_args():
    role_vars = yaml.safe_load((ROOT / "roles" / "bottle" / "vars" / "main.yml").read_text())
    variables = dict(
        bottle_slug="demo-a",
        bottle_resolved={"agent": "demo", "env": {"PROBE": "1"}, "secret_env": {"GH_TOKEN": "ghp_secretvalue"},
                         "resources_smolvm": {}},
        bottle_agent_ca_env=role_vars["bottle_agent_ca_env"],
        bottle_smolvm_cpus=0, bottle_smolvm_memory=0, bottle_smolvm_path="", bottle_smolvm_state_dir="",
    )
    given = render(assemble_task()["vars"]["bottle_launch_vm"]["machine"], variables)
    # What bottle_launch's machine phase gets: the role's options, wired from the relay's and archive's results
    # (the relay's values come from these functions).
    run = launch_phases.Run("demo-a", "demo", policy={}, address="127.77.0.9", boot=True)
    run.relay = {"mounts": socket_relay.mounts(STATE, SERVICES), "guest_command": socket_relay.guest_command(SERVICES),
                 "guest_env": socket_relay.guest_proxy_env()}
    run.archive = {"path": "/home/me/.bot-bottle/images/abc.tar"}
    return launch_phases.phase_of("smolmachines", "machine").options(run, dict(given, secret_files={})), given


def test_guest_env_has_proxies_no_proxy_and_the_ca_variables_and_no_secret():
    got, args = rendered_args()
    env = got["env"]
    proxy = "http://127.0.0.1:8888"
    for key in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        assert env[key] == proxy
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1"
    for key, value in CA_ENV.items():
        assert env[key] == value, key
    assert env["NODE_EXTRA_CA_CERTS"] == "/usr/local/share/ca-certificates/bottle-ca.crt"
    assert env["PROBE"] == "1"
    assert "GH_TOKEN" not in env and "ghp_secretvalue" not in repr(env)
    assert got["secret_env"] == {"GH_TOKEN": "ghp_secretvalue"}
    assert "allow_cidrs" not in args and got["allow_cidrs"] == [], "the VM has no network: no allow list"


def test_exact_create_argv_of_a_bottle_vm():
    got, _args = rendered_args()
    spec = dict(name="bb-demo-a-agent", image=got["image"], mount_sockets=got["mount_sockets"],
                command=got["command"], user=got["user"], secret_env=got["secret_env"],
                labels={"io.botbottle.bottle": "demo-a"})
    assert smolvm.create_argv(spec, smolfile="/tmp/bottle-smolfile-x.toml") == [
        "machine", "create", "--name", "bb-demo-a-agent", "--image", "/home/me/.bot-bottle/images/abc.tar",
        "--mount-socket", STATE + "/sockets/proxy.sock:/run/bottle/proxy.sock",
        "--mount-socket", STATE + "/sockets/git-gate.sock:/run/bottle/git-gate.sock",
        "--mount-socket", STATE + "/sockets/supervise.sock:/run/bottle/supervise.sock",
        "--secret-env", "GH_TOKEN=BOTBOTTLE_SECRET_GH_TOKEN",
        "--user", "root",
        "--label", "io.botbottle.bottle=demo-a",
        "--smolfile", "/tmp/bottle-smolfile-x.toml",
        "--", "python3", "/usr/local/lib/bottle/bottle_relay.py", "guest", "proxy", "git-gate", "supervise"]
    argv = smolvm.create_argv(spec)
    for word in argv:
        assert not word.startswith(("--net", "--allow-", "--dns", "--outbound", "--block-private", "--credential",
                                    "--use-host-proxy", "-p", "--port")), word
    assert "ghp_secretvalue" not in " ".join(argv)
