# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_agent against the in-memory engine of docker_fakes."""

from __future__ import annotations

import json

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import naming
from ansible_collections.botbottle.bottle.plugins.modules import bottle_agent
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import (
    FakeEngine, Failed, run_module)

SECRET = "sk-ant-test-secret"
PROXY = "http://10.1.0.2:8888"


@pytest.fixture
def engine():
    engine = FakeEngine()
    engine.add_network("bb-demo-net-int", subnet="10.1.0.0/28", internal=True)
    engine.add_image("botbottle/agent:latest", env=["PATH=/usr/bin", "HOME=/home/agent"])
    return engine


def run(engine, check=False, diff=False, **overrides):
    base = {"slug": "demo", "agent": "demo", "image": "botbottle/agent:latest", "network": "bb-demo-net-int",
            "ip": "10.1.0.3", "proxy_url": PROXY, "env": {"ANTHROPIC_API_KEY": SECRET}}
    base.update(overrides)
    return run_module(bottle_agent, engine.client, base, check=check, diff=diff)


def test_create_is_hardened(engine):
    result = run(engine)
    agent = engine.containers["bb-demo-agent"]
    host = agent.attrs["HostConfig"]
    assert result["changed"]
    assert result["container"] == {"id": agent.id, "name": "bb-demo-agent"}
    assert result["ip"] == "10.1.0.3"
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Init"] is True and host["Privileged"] is False
    assert host["PortBindings"] == {} and agent.attrs["Mounts"] == []
    assert host["NetworkMode"] == "bb-demo-net-int"
    assert list(agent.attrs["NetworkSettings"]["Networks"]) == ["bb-demo-net-int"]  # not the default bridge
    assert host["Dns"] == ["127.0.0.1"] and host["DnsOptions"] == ["timeout:1", "attempts:1"]
    assert host["DnsSearch"] == ["."]
    assert host["PidsLimit"] == 512
    # the default limits (resources.AGENT_DEFAULTS): 4 GiB, 2 CPUs, 512 processes
    assert host["Memory"] == 4 * 1024 ** 3 and host["NanoCpus"] == 2 * 10 ** 9
    assert host["OomScoreAdj"] == 500  # the OOM killer takes the agent's processes before the bundle's
    assert agent.attrs["Config"]["User"] == "1000:1000"
    assert agent.labels == naming.labels("demo", "demo", "agent")


def test_environment_proxies_and_ca(engine):
    run(engine)
    env = engine.containers["bb-demo-agent"].env()
    for key in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        assert env[key] == PROXY
    # the bundle (the proxy's host) is reached directly: supervise, git-gate
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1,10.1.0.2"
    assert env["NODE_EXTRA_CA_CERTS"] == "/usr/local/share/ca-certificates/bottle-ca.crt"
    # every TLS client of the agent: the system store (which holds the bottle CA after provisioning)
    for key in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "GIT_SSL_CAINFO",
                "CARGO_HTTP_CAINFO"):
        assert env[key] == "/etc/ssl/certs/ca-certificates.crt", key
    assert env["ANTHROPIC_API_KEY"] == SECRET


def test_secret_never_in_diff(engine):
    result = run(engine, diff=True)
    assert SECRET not in json.dumps(result)
    assert "ANTHROPIC_API_KEY" in result["diff"]["after"]["env"]


def test_second_run_unchanged(engine):
    first = run(engine, memory="512m")
    again = run(engine, memory="512m")
    assert not again["changed"] and again["container"] == first["container"]
    assert engine.containers["bb-demo-agent"].attrs["HostConfig"]["Memory"] == 512 * 1024 * 1024


def test_check_mode_creates_nothing(engine):
    assert run(engine, check=True)["changed"]
    assert "bb-demo-agent" not in engine.containers


@pytest.mark.parametrize("change,reason", [
    ({"env": {"ANTHROPIC_API_KEY": "other"}}, "env"),
    ({"proxy_url": "http://10.1.0.2:9999"}, "env"),
    ({"ip": "10.1.0.4"}, "ip"),
    ({"user": "1001:1001"}, "user"),
    ({"agent": "renamed"}, "labels"),
])
def test_differences_recreate(engine, change, reason):
    first = run(engine)
    result = run(engine, **change)
    assert result["changed"] and result["recreated_for"] == [reason]
    assert result["container"]["id"] != first["container"]["id"]


def test_new_image_recreates(engine):
    run(engine)
    engine.add_image("botbottle/agent:latest")
    assert run(engine)["recreated_for"] == ["image"]


@pytest.mark.parametrize("user", ["0", "0:0", "root", "root:root", ":1000"])
def test_root_refused_before_creating(engine, user):
    with pytest.raises(Failed) as failure:
        run(engine, user=user)
    assert "runs the agent as root: use a non-root uid:gid" in failure.value.result["msg"]
    assert "bb-demo-agent" not in engine.containers


def test_bad_memory_names_memory(engine):
    with pytest.raises(Failed) as failure:
        run(engine, memory="lots")
    assert failure.value.result["msg"].startswith("memory 'lots' is not a size")


def test_no_option_can_mount_anything(engine):
    with pytest.raises(Failed) as failure:
        run(engine, mounts=[{"source": "/var/run/docker.sock", "target": "/var/run/docker.sock"}])
    assert "mounts" in failure.value.result["msg"]


def test_missing_image_names_the_fix(engine):
    with pytest.raises(Failed) as failure:
        run(engine, image="nope:latest")
    assert "agent image nope:latest is not in the local image cache" in failure.value.result["msg"]


def test_absent(engine):
    run(engine)
    assert run(engine, check=True, state="absent")["changed"]
    assert "bb-demo-agent" in engine.containers
    assert run(engine, state="absent")["changed"]
    assert "bb-demo-agent" not in engine.containers
    assert not run(engine, state="absent")["changed"]


# -- a recreate keeps the agent's work first (work_archive_root)

def give_work(container, tmp_path):
    """~/work/proj with a commit no upstream has."""
    import os
    import subprocess
    home = tmp_path / "home"
    repo = home / "work" / "proj"
    repo.mkdir(parents=True)
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_AUTHOR_NAME="a",
               GIT_AUTHOR_EMAIL="a@x", GIT_COMMITTER_NAME="a", GIT_COMMITTER_EMAIL="a@x")
    for argv in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "mine"]):
        subprocess.run(["git", "-C", str(repo)] + argv, env=env, check=True, capture_output=True)
    container.home = {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()}


def test_a_recreate_keeps_the_work_first(engine, tmp_path):
    run(engine)
    give_work(engine.containers["bb-demo-agent"], tmp_path)
    result = run(engine, work_archive_root=str(tmp_path / "archive"), user="1001:1001")
    assert result["recreated_for"] == ["user"]
    assert engine.archives_read == [("bb-demo-agent", "/home/agent")]
    (archive,) = (tmp_path / "archive").iterdir()
    assert archive.name.startswith("demo-") and (archive / "work" / "work" / "proj" / "repo.bundle").is_file()
    assert result["work"]["lines"] == ["kept ~/work/proj: 1 unpushed commit (main) -> %s/work/work/proj/repo.bundle "
                                       "(complete)" % archive]
    assert not (archive / "supervise").exists()  # the audit stays with the bottle
    assert "git clone -q %s/work/work/proj/repo.bundle proj" % archive in (archive / "work" / "RESTORE.txt").read_text()


def test_check_mode_says_what_a_recreate_would_keep(engine, tmp_path):
    run(engine)
    give_work(engine.containers["bb-demo-agent"], tmp_path)
    result = run(engine, check=True, work_archive_root=str(tmp_path / "archive"), user="1001:1001")
    assert result["work"]["lines"][0].startswith("would keep ~/work/proj: 1 unpushed commit")
    assert [p.name for p in (tmp_path / "archive").iterdir()] == []


def test_work_that_cannot_be_kept_leaves_the_container_as_it_was(engine, tmp_path):
    from unittest import mock
    first = run(engine)
    engine.containers["bb-demo-agent"].get_archive = mock.Mock(side_effect=OSError("engine gone"))
    with pytest.raises(Failed) as err:
        run(engine, work_archive_root=str(tmp_path / "archive"), user="1001:1001")
    assert "must be recreated (user differ) but its work could not be kept first" in err.value.result["msg"]
    assert engine.containers["bb-demo-agent"].id == first["container"]["id"]


def test_no_work_keeps_no_archive(engine, tmp_path):
    run(engine)
    result = run(engine, work_archive_root=str(tmp_path / "archive"), user="1001:1001")
    assert result["work"]["lines"] == [] and list((tmp_path / "archive").iterdir()) == []


def test_new_limits_are_applied_in_place(engine, tmp_path):
    first = run(engine)
    give_work(engine.containers["bb-demo-agent"], tmp_path)
    result = run(engine, memory="1g", cpus=1.5, pids_limit=2048, work_archive_root=str(tmp_path / "archive"),
                 diff=True)
    assert result["changed"] and result["updated_in_place"] == ["cpus", "memory", "pids_limit"]
    assert "recreated_for" not in result and engine.archives_read == []
    # the same container: its id does not change
    assert result["container"]["id"] == first["container"]["id"]
    assert engine.updates == [("bb-demo-agent", {"Memory": 1024 ** 3, "MemorySwap": 2 * 1024 ** 3,
                                                 "NanoCpus": 1500000000, "PidsLimit": 2048})]
    # --diff shows each limit before and after
    before, after = result["diff"]["before"], result["diff"]["after"]
    assert (before["memory"], before["cpus"], before["pids_limit"]) == (4 * 1024 ** 3, 2.0, 512)
    assert (after["memory"], after["cpus"], after["pids_limit"]) == (1024 ** 3, 1.5, 2048)
    again = run(engine, memory="1g", cpus=1.5, pids_limit=2048)
    assert not again["changed"]
    # check mode says so and changes nothing
    assert run(engine, check=True, memory="2g", cpus=1.5, pids_limit=2048)["updated_in_place"] == ["memory"]
    assert len(engine.updates) == 1


def test_only_the_changed_limit_is_sent(engine):
    run(engine)
    assert run(engine, pids_limit=4096)["updated_in_place"] == ["pids_limit"]
    assert engine.updates == [("bb-demo-agent", {"PidsLimit": 4096})]


def test_a_stopped_agent_updated_in_place_is_started(engine):
    run(engine)
    engine.containers["bb-demo-agent"].attrs["State"]["Status"] = "exited"
    result = run(engine, memory="1g")
    assert result["updated_in_place"] == ["memory"] and result["restarted"]


def test_removing_the_memory_limit_recreates(engine):
    run(engine, memory="1g")
    assert run(engine, memory="0")["recreated_for"] == ["memory"]


def test_cpus_above_the_engine_are_lowered_with_a_warning(engine, monkeypatch):
    from ansible.module_utils.basic import AnsibleModule
    warned = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, text: warned.append(text))
    run(engine, cpus=16)
    assert engine.containers["bb-demo-agent"].attrs["HostConfig"]["NanoCpus"] == 4 * 10 ** 9
    assert warned == ["cpus 16 is more than the 4 CPUs of this host's engine: the agent gets 4"]
    assert not run(engine, cpus=16)["changed"]


@pytest.mark.parametrize("memory", ["lots", "1m", "-4g"])
def test_a_bad_memory_names_the_option_and_the_fix(engine, memory):
    with pytest.raises(Failed) as err:
        run(engine, memory=memory)
    assert err.value.result["msg"].startswith("memory %r" % memory) and "such as 4g or 512m" in err.value.result["msg"]
