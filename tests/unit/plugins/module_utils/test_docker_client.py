# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker_client: connection failures name the fix, helpers shape engine answers."""

from __future__ import annotations

from unittest import mock

import pytest

from docker.errors import DockerException, NotFound

from ansible_collections.botbottle.bottle.plugins.module_utils import docker_client


class Failed(Exception):
    pass


def module(**params):
    fake = mock.Mock()
    fake.params = dict({"docker_host": None, "timeout": 60}, **params)
    fake.fail_json.side_effect = fail
    return fake


def fail(**kwargs):
    raise Failed(kwargs)


def test_common_args_take_docker_host_from_the_environment():
    spec = docker_client.DOCKER_COMMON_ARGS["docker_host"]
    assert spec["fallback"][1] == ["DOCKER_HOST"]
    assert docker_client.DOCKER_COMMON_ARGS["timeout"]["default"] == 60


def test_engine_not_answering_names_docker_host_and_how_to_start_it():
    with mock.patch.object(docker_client.docker, "DockerClient") as client_cls:
        client_cls.return_value.ping.side_effect = DockerException("connection refused")
        with pytest.raises(Failed) as failure:
            docker_client.get_docker_client(module(docker_host="unix:///nowhere.sock"))
    msg = failure.value.args[0]["msg"]
    assert msg.startswith("no Docker engine answers at unix:///nowhere.sock (docker_host): connection refused.")
    assert "Start Docker (or Docker Desktop)" in msg and "DOCKER_HOST" in msg
    client_cls.assert_called_once_with(base_url="unix:///nowhere.sock", timeout=60)


def test_missing_sdk_fails_with_missing_required_lib():
    with mock.patch.object(docker_client, "HAS_DOCKER", False):
        with pytest.raises(Failed) as failure:
            docker_client.get_docker_client(module())
    assert "Failed to import the required Python library (docker)" in failure.value.args[0]["msg"]


def test_default_host_prefers_the_standard_socket_then_docker_desktop(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".docker" / "run").mkdir(parents=True)
    (tmp_path / ".docker" / "run" / "docker.sock").touch()
    with mock.patch.object(docker_client.os.path, "exists",
                           side_effect=lambda p: p != "/var/run/docker.sock" and p.startswith(str(tmp_path))):
        assert docker_client.default_docker_host() == "unix://%s/.docker/run/docker.sock" % tmp_path


def test_find_helpers_turn_not_found_into_none():
    client = mock.Mock()
    client.containers.get.side_effect = NotFound("x")
    client.networks.get.side_effect = NotFound("x")
    client.images.get.side_effect = NotFound("x")
    assert docker_client.find_container(client, "a") is None
    assert docker_client.find_network(client, "a") is None
    assert docker_client.find_image(client, "a") is None


def test_bottle_finders_filter_by_labels_only():
    client = mock.Mock()
    docker_client.bottle_containers(client, "demo")
    client.containers.list.assert_called_once_with(all=True, filters={"label": ["io.botbottle.bottle=demo"]})
    docker_client.bottle_networks(client, agent="a")
    client.networks.list.assert_called_once_with(
        filters={"label": ["io.botbottle.bottle", "io.botbottle.agent=a"]})


def test_exec_in_returns_text_and_passes_environment_through_the_api():
    container = mock.Mock()
    container.exec_run.return_value = mock.Mock(exit_code=3, output=(b"out\xff", None))
    rc, out, err = docker_client.exec_in(container, ["x"], user="0", environment={"K": "v"})
    assert (rc, out, err) == (3, "out\ufffd", "")
    container.exec_run.assert_called_once_with(["x"], user="0", demux=True, environment={"K": "v"})


def test_log_tail_never_raises():
    container = mock.Mock()
    container.logs.return_value = b"[pipelock] up\n"
    assert docker_client.log_tail(container, 5) == "[pipelock] up\n"
    container.logs.assert_called_once_with(tail=5)
    container.logs.side_effect = DockerException("gone")
    assert docker_client.log_tail(container) == "(logs unavailable: gone)"


def test_env_list_to_dict_keeps_equals_in_values():
    assert docker_client.env_list_to_dict(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    assert docker_client.env_list_to_dict(None) == {}


def test_engine_hint_permission_denied_names_the_group_not_become():
    from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import engine_hint
    hint = engine_hint("unix:///var/run/docker.sock", Exception("('Connection aborted.', PermissionError(13, 'Permission denied'))"))
    assert "docker group" in hint and "Docker Desktop" in hint and "needs no become" in hint
    assert "Start Docker" in engine_hint("unix:///x.sock", Exception("No such file or directory"))
