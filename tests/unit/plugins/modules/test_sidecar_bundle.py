# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sidecar_bundle against the in-memory engine of docker_fakes."""

from __future__ import annotations

import json

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config, naming
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
    engine.add_image("botbottle/bundle:latest", env=["BOTTLE_DAEMONS=egress", "PATH=/usr/bin"])
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
    assert result["health"] == {"egress": "healthy"}
    assert sorted(bundle.attrs["NetworkSettings"]["Networks"]) == ["bb-demo-net-int", "bb-demo-net-out", "bb-testnet"]
    assert bundle.attrs["HostConfig"]["NetworkMode"] == "bb-demo-net-int"  # never the default bridge
    assert bundle.attrs["HostConfig"]["CapAdd"] == ["NET_ADMIN"]
    assert bundle.attrs["HostConfig"]["PortBindings"] == {"8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert bundle.labels == dict(naming.labels("demo", "demo", "bundle"), **{naming.LABEL_CONFIG_HASH: "h1"})
    assert bundle.env()["ROUTE_TOKEN"] == SECRET and bundle.env()["BOTTLE_DAEMONS"] == "egress"
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


def test_the_loaded_hash_is_kept_in_the_bundle_by_the_shared_protocol(engine):
    run(engine)
    bundle = engine.containers["bb-demo-bundle"]
    assert bundle_config.HASH_FILE not in bundle.files  # a new bundle: its label says what it loaded
    run(engine, config_hash="h2")
    assert bundle.files[bundle_config.HASH_FILE] == "h2\n"
    recorder = [(argv, user) for _name, argv, user, _env in engine.execs if argv[:2] == ["sh", "-c"]]
    assert recorder == [(["sh", "-c", bundle_config._RECORD, bundle_config.HASH_FILE, "h2"], "0")]
    # what a second role run reads back
    assert bundle_config.read_loaded_hash(lambda argv: (0, bundle.files[argv[1]], "")) == "h2"
    assert not run(engine, config_hash="h2")["changed"]


def test_a_bundle_without_a_record_falls_back_to_its_label(engine):
    run(engine, config_hash="h2")
    bundle = engine.containers["bb-demo-bundle"]
    bundle.files.pop(bundle_config.HASH_FILE, None)  # e.g. restarted: /run is empty again
    assert not run(engine, config_hash="h2")["changed"]


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


@pytest.mark.parametrize("key", ["agent", "image"])
def test_required_for_present(engine, key):
    with pytest.raises(Failed) as failure:
        run(engine, **{key: None})
    assert failure.value.result["msg"] == "%s is required when state=present" % key


@pytest.mark.parametrize("change,message", [
    ({"internal_network": None, "internal_ip": None, "egress_network": None},
     "internal_network or egress_network is required"),
    ({"internal_network": None}, "internal_ip needs internal_network"),
])
def test_network_requirements(engine, change, message):
    with pytest.raises(Failed) as failure:
        run(engine, **change)
    assert message in failure.value.result["msg"]
    assert "bb-demo-bundle" not in engine.containers


# -- smolmachines: the agent-facing ports on a loopback address of the bottle's own

def smol(**overrides):
    base = dict(slug="sm-a", agent="smol", backend="smolmachines", internal_network=None, internal_ip=None,
                egress_network="bb-demo-net-out", published_ports=[], publish_address="auto",
                publish_pool="127.77.0.0/16", daemons=["pipelock", "egress", "git-gate"])
    base.update(overrides)
    return base


def bindings(engine, name):
    return engine.containers[name].attrs["HostConfig"]["PortBindings"]


def test_publish_auto_binds_only_the_agent_ports_on_one_loopback_address(engine):
    result = run(engine, diff=True, **smol())
    address = result["publish_address"]
    assert result["publish_source"] == "allocated"
    assert address.startswith("127.77.") and address != "127.0.0.1"
    assert bindings(engine, "bb-sm-a-bundle") == {
        "8888/tcp": [{"HostIp": address, "HostPort": "8888"}],
        "9418/tcp": [{"HostIp": address, "HostPort": "9418"}]}
    bundle = engine.containers["bb-sm-a-bundle"]
    assert bundle.attrs["HostConfig"]["NetworkMode"] == "bb-demo-net-out"  # no internal network at all
    assert sorted(bundle.attrs["NetworkSettings"]["Networks"]) == ["bb-demo-net-out", "bb-testnet"]
    assert bundle.labels[naming.LABEL_BACKEND] == "smolmachines"
    assert result["ip"] is None


def test_publish_auto_is_stable_and_idempotent(engine):
    first = run(engine, **smol())
    again = run(engine, diff=True, **smol())
    assert not again["changed"]
    assert again["publish_address"] == first["publish_address"]
    assert again["publish_source"] == "bundle"
    assert again["diff"]["before"] == again["diff"]["after"]


def test_two_bottles_never_share_an_address(engine):
    # A pool of exactly two usable addresses: whatever the hash says, the second bottle gets the other one.
    pool = "127.77.0.0/30"
    for first in ("127.77.0.1", "127.77.0.2"):
        for slug in ("sm-a", "sm-b", "sm-c"):
            run(engine, state="absent", **smol(slug=slug, name="bb-%s-bundle" % slug))
        a = run(engine, **smol(publish_pool=pool, publish_address=first))
        b = run(engine, **smol(slug="sm-b", name="bb-sm-b-bundle", publish_pool=pool))
        assert {a["publish_address"], b["publish_address"]} == {"127.77.0.1", "127.77.0.2"}
    with pytest.raises(Failed) as failure:
        run(engine, **smol(slug="sm-c", name="bb-sm-c-bundle", publish_pool="127.77.0.0/30"))
    assert "no free address left" in failure.value.result["msg"]


def test_publish_given_address_used_by_another_bottle_fails_naming_it(engine):
    a = run(engine, **smol())
    with pytest.raises(Failed) as failure:
        run(engine, **smol(slug="sm-b", name="bb-sm-b-bundle", publish_address=a["publish_address"]))
    msg = failure.value.result["msg"]
    assert "already published by the bundle of bottle sm-a" in msg and "publish_address=auto" in msg
    assert "bb-sm-b-bundle" not in engine.containers


@pytest.mark.parametrize("address,message", [
    ("127.0.0.1", "shared by every service"),
    ("0.0.0.0", "not a loopback address"),
    ("192.168.1.5", "not a loopback address"),
    ("::1", "not a loopback address"),
    ("bogus", "not an IP address"),
])
def test_publish_refuses_non_private_addresses(engine, address, message):
    with pytest.raises(Failed) as failure:
        run(engine, **smol(publish_address=address))
    assert message in failure.value.result["msg"]
    assert "bb-sm-a-bundle" not in engine.containers


def test_changed_address_recreates_and_check_mode_keeps(engine):
    first = run(engine, **smol(publish_address="127.77.0.10"))
    checked = run(engine, check=True, **smol(publish_address="127.77.0.11"))
    assert checked["changed"] and checked["recreated_for"] == ["ports"]
    assert engine.containers["bb-sm-a-bundle"].id == first["container"]["id"]
    moved = run(engine, **smol(publish_address="127.77.0.11"))
    assert moved["recreated_for"] == ["ports"]
    assert bindings(engine, "bb-sm-a-bundle")["8888/tcp"] == [{"HostIp": "127.77.0.11", "HostPort": "8888"}]


def test_publish_check_mode_on_a_new_bundle_reports_the_address(engine):
    result = run(engine, check=True, **smol())
    assert result["changed"] and result["publish_address"].startswith("127.77.")
    assert "bb-sm-a-bundle" not in engine.containers


def test_publish_ports_follow_daemons_unless_given(engine):
    # egress alone faces the agent on 8888: an egress-only bundle publishes its proxy.
    run(engine, **smol(daemons=["egress"]))
    assert sorted(bindings(engine, "bb-sm-a-bundle")) == ["8888/tcp"]
    run(engine, **smol(daemons=["pipelock", "egress", "supervise"]))
    assert sorted(bindings(engine, "bb-sm-a-bundle")) == ["8888/tcp", "9100/tcp"]
    run(engine, **smol(publish_ports=[8888]))
    assert sorted(bindings(engine, "bb-sm-a-bundle")) == ["8888/tcp"]


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


def test_endpoints_say_how_the_agent_reaches_the_daemons(engine):
    result = run(engine, daemons=["egress", "git-gate", "supervise"])
    assert result["endpoints"] == {"address": "10.1.0.2", "proxy_url": "http://10.1.0.2:8888",
                                   "supervise_url": "http://10.1.0.2:9100/mcp", "git_gate_url": "git://10.1.0.2:9418"}
    checked = run(engine, check=True, daemons=["egress"])
    assert checked["endpoints"] == {"address": "10.1.0.2", "proxy_url": "http://10.1.0.2:8888"}


def test_without_wait_an_unhealthy_bundle_is_left_running_for_a_later_wait(engine):
    def sick(container):
        container.unhealthy = {"egress": "not listening on 8888"}
    engine.on_create = sick
    result = run(engine, wait=False)
    bundle = engine.containers["bb-demo-bundle"]
    assert result["changed"] and "health" not in result and bundle.status == "running"
    assert not [argv for _name, argv, _user, _env in engine.execs if argv[0].endswith("bottle-health")]


def test_the_bundle_has_a_memory_limit_changed_in_place(engine):
    first = run(engine)
    assert engine.containers["bb-demo-bundle"].attrs["HostConfig"]["Memory"] == 1024 ** 3  # the default
    result = run(engine, memory="1536m", config_hash="h2", diff=True)
    # the same container, its new limit, and its new configuration loaded too
    assert result["updated_in_place"] == ["memory"] and "recreated_for" not in result and result["reloaded"]
    assert result["container"]["id"] == first["container"]["id"]
    assert engine.updates == [("bb-demo-bundle", {"Memory": 1536 * 1024 ** 2, "MemorySwap": 3 * 1024 ** 3})]
    assert (result["diff"]["before"]["memory"], result["diff"]["after"]["memory"]) == (1024 ** 3, 1536 * 1024 ** 2)
    assert not run(engine, memory="1536m", config_hash="h2")["changed"]


def test_the_bundle_log_is_bounded_on_json_file(engine):
    result = run(engine, diff=True)
    bundle = engine.containers["bb-demo-bundle"]
    assert bundle.attrs["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
    assert result["diff"]["after"]["log"] == {"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}}
    assert not run(engine)["changed"]
    # a bundle made before the bound (Docker's default: no options) is recreated with it; a new bound too
    bundle.attrs["HostConfig"]["LogConfig"] = {"Type": "json-file", "Config": {}}
    assert run(engine)["recreated_for"] == ["log"]
    again = run(engine, log_max_size="50m", log_max_files=2)
    assert again["recreated_for"] == ["log"]
    assert engine.containers["bb-demo-bundle"].attrs["HostConfig"]["LogConfig"]["Config"] == {"max-size": "50m",
                                                                                              "max-file": "2"}


@pytest.mark.parametrize("driver", ["local", "journald"])
def test_another_log_driver_is_the_operators_choice(engine, driver):
    engine.client.info.return_value = {"NCPU": 4, "LoggingDriver": driver}
    run(engine)
    assert engine.containers["bb-demo-bundle"].attrs["HostConfig"]["LogConfig"] == {"Type": driver, "Config": {}}
    assert not run(engine)["changed"]


def test_an_empty_log_size_leaves_the_engine_setting(engine):
    run(engine, log_max_size="")
    assert engine.containers["bb-demo-bundle"].attrs["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert not run(engine, log_max_size="")["changed"]


@pytest.mark.parametrize("change,words", [
    ({"log_max_size": "10 MB"}, ["log_max_size", "10m"]),
    ({"log_max_size": "0"}, ["log_max_size"]),
    ({"log_max_files": 0}, ["log_max_files", "at least 1"]),
])
def test_a_bad_log_bound_names_the_key(engine, change, words):
    with pytest.raises(Failed) as failed:
        run(engine, **change)
    assert all(w in failed.value.result["msg"] for w in words)
    assert "bb-demo-bundle" not in engine.containers
