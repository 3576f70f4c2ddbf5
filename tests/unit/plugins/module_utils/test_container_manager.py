# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""container_manager: the shared life cycle, with a minimal container of its own."""

from __future__ import annotations

from unittest import mock

import pytest

from docker.errors import APIError

from ansible_collections.botbottle.bottle.plugins.module_utils import container_manager, naming
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import FakeEngine

SECRET = "s3cret-value"


class Failed(Exception):
    pass


class ProbeManager(container_manager.ContainerManager):
    kind = "agent"  # a known component: names and labels are checked
    options = (container_manager.IMAGE, container_manager.ENV, container_manager.LABELS,
               container_manager.NETWORKS, container_manager.pinned_ip("ip", "ip", "network"))
    required = ("image", "network")
    ip_param, network_param = "ip", "network"
    fail_connect = False

    def desired_env(self):
        return {"TOKEN": SECRET}

    def desired_labels(self):
        return naming.labels(self.p["slug"], "a", "agent")

    def desired_networks(self):
        return [self.p["network"]]

    def host_config(self, want):
        return {}

    def connect_networks(self):
        if self.fail_connect:
            raise APIError("no such network")

    def start_failure_hint(self):
        return " (a hint)"


@pytest.fixture
def engine():
    engine = FakeEngine()
    engine.add_network("net", subnet="10.5.0.0/28")
    engine.add_image("probe:latest", env=["PATH=/usr/bin", "TOKEN=image-default"])
    return engine


def manager(engine, check=False, **params):
    module = mock.Mock(check_mode=check)
    module.params = dict({"slug": "demo", "name": None, "image": "probe:latest", "network": "net", "ip": "10.5.0.4"},
                         **params)

    def fail(**kwargs):
        raise Failed(kwargs["msg"])
    module.fail_json.side_effect = fail
    return ProbeManager(module, engine.client)


def test_present_creates_on_the_pinned_address_then_is_unchanged(engine):
    first = manager(engine)
    first.present()
    container = engine.containers["bb-demo-agent"]
    assert first.result["changed"] and first.result["ip"] == "10.5.0.4"
    assert container.attrs["HostConfig"]["NetworkMode"] == "net" and container.status == "running"
    again = manager(engine)
    again.present()
    assert not again.result["changed"]
    assert again.result["diff"]["before"] == again.result["diff"]["after"]


def test_secret_options_show_their_keys_only(engine):
    m = manager(engine)
    m.present()
    assert m.result["diff"]["after"]["env"] == ["TOKEN"]
    assert SECRET not in repr(m.result)


def test_each_differing_option_is_named(engine):
    manager(engine).present()
    moved = manager(engine, ip="10.5.0.5")
    moved.present()
    assert moved.result["recreated_for"] == ["ip"]
    assert engine.containers["bb-demo-agent"].attrs["NetworkSettings"]["Networks"]["net"]["IPAddress"] == "10.5.0.5"


def test_environment_the_image_sets_itself_is_not_compared(engine):
    m = manager(engine)
    m.present()
    assert manager(engine).current()["env"] == {"TOKEN": SECRET}


def test_stopped_container_is_started_and_check_mode_touches_nothing(engine):
    manager(engine).present()
    container = engine.containers["bb-demo-agent"]
    container.attrs["State"] = {"Status": "exited", "ExitCode": 0}
    check = manager(engine, check=True)
    check.present()
    assert check.result["changed"] and check.result["restarted"] and container.status == "exited"
    real = manager(engine)
    real.present()
    assert real.result["restarted"] and container.status == "running"


def test_a_container_that_does_not_start_is_removed_again(engine):
    m = manager(engine)
    m.fail_connect = True
    with pytest.raises(Failed) as failure:
        m.present()
    assert str(failure.value) == "could not start agent bb-demo-agent: no such network (a hint)"
    assert "bb-demo-agent" not in engine.containers


@pytest.mark.parametrize("key", ["image", "network"])
def test_required_for_present(engine, key):
    with pytest.raises(Failed) as failure:
        manager(engine, **{key: None}).present()
    assert str(failure.value) == "%s is required when state=present" % key


def test_missing_image_names_the_kind_and_the_fix(engine):
    with pytest.raises(Failed) as failure:
        manager(engine, image="nope").present()
    assert str(failure.value).startswith("agent image nope is not in the local image cache: build it with")


def test_absent_removes_only_the_bottles_container(engine):
    manager(engine, slug="other", name="bb-demo-agent").present()
    with pytest.raises(Failed) as failure:
        manager(engine).absent()
    assert "does not carry label io.botbottle.bottle=demo" in str(failure.value)
    manager(engine, slug="other", name="bb-demo-agent").absent()
    assert "bb-demo-agent" not in engine.containers
    gone = manager(engine)
    gone.absent()
    assert not gone.result["changed"]
