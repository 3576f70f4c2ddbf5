# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sidecar_bundle against the in-memory engine of docker_fakes."""

from __future__ import annotations

import json

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import naming
from ansible_collections.botbottle.bottle.plugins.modules import sidecar_bundle
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import (
    FakeEngine, Failed, run_module)

SECRET = "tok-very-secret-123"


@pytest.fixture
def engine():
    engine = FakeEngine()
    engine.add_network("bb-demo-net-int", subnet="10.1.0.0/28", internal=True)
    engine.add_network("bb-demo-net-out", subnet="10.1.0.16/28")
    engine.add_network("bb-testnet", subnet="10.3.0.0/24")
    engine.add_image("botbottle/bundle:latest", env=["BOTTLE_DAEMONS=pipelock,egress", "PATH=/usr/bin"])
    return engine


def args(**overrides):
    base = {
        "slug": "demo", "agent": "demo", "image": "botbottle/bundle:latest",
        "internal_network": "bb-demo-net-int", "internal_ip": "10.1.0.2", "egress_network": "bb-demo-net-out",
        "extra_networks": ["bb-testnet"], "env": {"ROUTE_TOKEN": SECRET},
        "mounts": [{"source": "/state/demo/bundle", "target": "/etc/bottle", "read_only": True}],
        "published_ports": [{"container_port": 8888}], "config_hash": "h1", "health_timeout": 1,
    }
    base.update(overrides)
    return base


def run(engine, check=False, diff=False, **overrides):
    return run_module(sidecar_bundle, engine.client, args(**overrides), check=check, diff=diff)


def test_create_starts_healthy_bundle_on_its_networks_only(engine):
    result = run(engine, diff=True)
    bundle = engine.containers["bb-demo-bundle"]
    assert result["changed"]
    assert result["container"] == {"id": bundle.id, "name": "bb-demo-bundle"}
    assert result["ip"] == "10.1.0.2"
    assert result["host_ports"] == {"8888": 49153}
    assert result["health"] == {"pipelock": "healthy", "egress": "healthy"}
    assert sorted(bundle.attrs["NetworkSettings"]["Networks"]) == ["bb-demo-net-int", "bb-demo-net-out", "bb-testnet"]
    assert bundle.attrs["HostConfig"]["NetworkMode"] == "bb-demo-net-int"  # never the default bridge
    assert bundle.attrs["HostConfig"]["CapAdd"] == ["NET_ADMIN"]
    assert bundle.attrs["HostConfig"]["PortBindings"] == {"8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert bundle.labels == dict(naming.labels("demo", "demo", "bundle"), **{naming.LABEL_CONFIG_HASH: "h1"})
    assert bundle.env()["ROUTE_TOKEN"] == SECRET and bundle.env()["BOTTLE_DAEMONS"] == "pipelock,egress"
    assert bundle.attrs["Mounts"] == [{"Type": "bind", "Source": "/state/demo/bundle", "Destination": "/etc/bottle",
                                       "RW": False}]


def test_secret_values_never_reach_diff_or_argv(engine):
    result = run(engine, diff=True)
    assert SECRET not in json.dumps(result)
    assert result["diff"]["after"]["env"] == ["BOTTLE_DAEMONS", "ROUTE_TOKEN"]
    assert all(SECRET not in " ".join(argv) for _name, argv, _user, _env in engine.execs)
    changed = run(engine, diff=True, env={"ROUTE_TOKEN": SECRET + "2"})
    assert SECRET not in json.dumps(changed)


def test_second_run_unchanged(engine):
    first = run(engine)
    again = run(engine, diff=True)
    assert not again["changed"]
    assert again["container"] == first["container"]
    assert again["diff"]["before"] == again["diff"]["after"]


def test_check_mode_creates_nothing(engine):
    result = run(engine, check=True)
    assert result["changed"]
    assert "bb-demo-bundle" not in engine.containers


@pytest.mark.parametrize("change,reason", [
    ({"env": {"ROUTE_TOKEN": "other"}}, "env"),
    ({"daemons": ["pipelock", "egress", "supervise"]}, "env"),
    ({"internal_ip": "10.1.0.5"}, "internal_ip"),
    ({"extra_networks": []}, "networks"),
    ({"published_ports": []}, "ports"),
    ({"mounts": []}, "mounts"),
    ({"agent": "someone"}, "labels"),
])
def test_differences_recreate(engine, change, reason):
    first = run(engine)
    result = run(engine, **change)
    assert result["changed"]
    assert reason in result["recreated_for"]
    assert result["container"]["id"] != first["container"]["id"]


def test_new_image_recreates(engine):
    first = run(engine)
    engine.add_image("botbottle/bundle:latest")
    result = run(engine)
    assert result["recreated_for"] == ["image"]
    assert result["container"]["id"] != first["container"]["id"]


def test_check_mode_change_keeps_container(engine):
    first = run(engine)
    result = run(engine, check=True, env={"ROUTE_TOKEN": "other"})
    assert result["changed"] and result["recreated_for"] == ["env"]
    assert engine.containers["bb-demo-bundle"].id == first["container"]["id"]


def test_config_hash_change_reloads_without_recreate(engine):
    first = run(engine)
    bundle = engine.containers["bb-demo-bundle"]
    check = run(engine, check=True, config_hash="h2")
    assert check["changed"] and not check["reloaded"] and bundle.signals == []
    result = run(engine, config_hash="h2", diff=True)
    assert result["changed"] and result["reloaded"]
    assert result["container"]["id"] == first["container"]["id"]
    assert bundle.signals == ["SIGHUP"]
    assert result["diff"]["before"]["config_hash"] == "h1" and result["diff"]["after"]["config_hash"] == "h2"
    again = run(engine, config_hash="h2")
    assert not again["changed"] and bundle.signals == ["SIGHUP"]


def test_stopped_bundle_is_started(engine):
    run(engine)
    bundle = engine.containers["bb-demo-bundle"]
    bundle.attrs["State"] = {"Status": "exited", "ExitCode": 1}
    result = run(engine)
    assert result["changed"] and result["restarted"]
    assert bundle.status == "running"


def test_unhealthy_daemon_fails_naming_it_with_its_log_lines(engine):
    def sick(container):
        container.unhealthy = {"egress": "not listening on 9099"}
        container.log_lines = ["[pipelock] listening on :8888"] + \
            ["[egress] traceback line %d" % i for i in range(3)] + ["[pipelock] noise %d" % i for i in range(40)]
    engine.on_create = sick
    with pytest.raises(Failed) as failure:
        run(engine)
    msg = failure.value.result["msg"]
    assert "not every daemon was healthy within 1s (health_timeout)" in msg
    assert "Unhealthy: egress." in msg
    assert '"egress": "not listening on 9099"' in msg
    assert "Their log lines:\n[egress] traceback line 0\n[egress] traceback line 1\n[egress] traceback line 2" in msg
    assert "[pipelock] noise 39" in msg and "[pipelock] noise 9" not in msg  # the last 30 lines only
    assert failure.value.result["unhealthy"] == ["egress"]


def test_exited_bundle_fails_without_waiting(engine):
    def dies(container):
        container.exit_on_start = 3
        container.log_lines = ["[bottle-init] pipelock exited with 3"]
    engine.on_create = dies
    with pytest.raises(Failed) as failure:
        run(engine, health_timeout=60)
    msg = failure.value.result["msg"]
    assert "the bundle exited (status exited, exit code 3)" in msg
    assert "[bottle-init] pipelock exited with 3" in msg


def test_missing_image_names_the_fix(engine):
    with pytest.raises(Failed) as failure:
        run(engine, image="botbottle/bundle:missing")
    assert "bundle image botbottle/bundle:missing is not in the local image cache" in failure.value.result["msg"]
    assert "bb-demo-bundle" not in engine.containers


@pytest.mark.parametrize("key", ["agent", "image", "internal_network"])
def test_required_for_present(engine, key):
    with pytest.raises(Failed) as failure:
        run(engine, **{key: None})
    assert failure.value.result["msg"] == "%s is required when state=present" % key


def test_absent(engine):
    run(engine)
    assert run(engine, check=True, state="absent")["changed"]
    assert "bb-demo-bundle" in engine.containers
    assert run(engine, state="absent")["changed"]
    assert "bb-demo-bundle" not in engine.containers
    assert not run(engine, state="absent")["changed"]


def test_absent_refuses_a_container_of_another_bottle(engine):
    run(engine, slug="other", name="bb-demo-bundle")
    with pytest.raises(Failed) as failure:
        run(engine, state="absent")
    assert "does not carry label io.botbottle.bottle=demo" in failure.value.result["msg"]
    assert "bb-demo-bundle" in engine.containers
