# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent's limits: written in a policy or an agent, checked with errors naming the key and the fix,
merged over the defaults, mapped to smolvm's machine options."""

from __future__ import annotations

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import resources
from ansible_collections.botbottle.bottle.plugins.module_utils.manifest import ManifestError, resolve

POLICIES = {"base": {"allowed_domains": ["pypi.org"], "resources": {"memory": "2g", "cpus": 1}},
            "big": {"extends": "base", "resources": {"cpus": 4}}}


def bottle(agent_resources=None, policy="base", **kwargs):
    agent = {"policy": policy}
    if agent_resources is not None:
        agent["resources"] = agent_resources
    return resolve({"a": agent}, POLICIES, "a", **kwargs)


def test_defaults_without_resources():
    found = resolve({"a": {"policy": "p"}}, {"p": {"allowed_domains": ["pypi.org"]}}, "a")
    assert found["resources"] == {"memory": "4g", "cpus": 2, "pids": 512} == resources.AGENT_DEFAULTS
    assert found["resources_written"] == {} and found["resources_smolvm"] == {}
    assert "resources" not in found["policy"]  # the bundle's policy carries no agent limits


def test_policy_then_agent_then_the_operator_over_the_defaults():
    assert bottle()["resources"] == {"memory": "2g", "cpus": 1, "pids": 512}
    assert bottle(policy="big")["resources"] == {"memory": "2g", "cpus": 4, "pids": 512}  # merged along extends
    assert bottle({"pids": 2048, "memory": "3g"})["resources"] == {"memory": "3g", "cpus": 1, "pids": 2048}
    assert bottle({"memory": "3g"}, memory_override="1g")["resources"]["memory"] == "1g"


def test_smolvm_options_from_what_was_written():
    found = bottle({"cpus": 1.5, "memory": "1536m"})
    assert found["resources_smolvm"] == {"memory": 1536, "cpus": 2}


@pytest.mark.parametrize("written,needle", [
    ({"memroy": "4g"}, "bottle_agents.a.resources.memroy is not a known key: use one of memory, cpus, pids"),
    ({"memory": "lots"}, "bottle_agents.a.resources.memory 'lots' is not a size: write a size such as 4g or 512m"),
    ({"memory": "1m"}, "bottle_agents.a.resources.memory '1m' is below Docker's least memory limit"),
    ({"memory": True}, "bottle_agents.a.resources.memory True is not a size"),
    ({"cpus": "two"}, "bottle_agents.a.resources.cpus 'two' is not a number of CPUs: write how many CPUs"),
    ({"cpus": 0}, "bottle_agents.a.resources.cpus 0 is not a number of CPUs"),
    ({"pids": 2.5}, "bottle_agents.a.resources.pids 2.5 is not a process limit: write the most processes"),
    ({"pids": 4}, "bottle_agents.a.resources.pids 4 is not a process limit"),
    ("4g", "bottle_agents.a.resources must be a mapping, such as {memory: 4g, cpus: 2, pids: 2048}"),
])
def test_errors_name_the_key_and_the_fix(written, needle):
    with pytest.raises(ManifestError) as err:
        bottle(written)
    assert needle in str(err.value)


def test_a_policy_error_names_the_policy():
    with pytest.raises(ManifestError) as err:
        resolve({"a": {"policy": "p"}}, {"p": {"allowed_domains": ["x.org"], "resources": {"pids": 0}}}, "a")
    assert str(err.value).startswith("bottle_policies.p.resources.pids 0 is not a process limit")


def test_the_operator_override_is_checked_under_its_own_name():
    with pytest.raises(ManifestError) as err:
        bottle(memory_override="big")
    assert str(err.value).startswith("bottle_agent_memory 'big' is not a size")


@pytest.mark.parametrize("text,number", [("4g", 4 * 1024 ** 3), ("512m", 512 * 1024 ** 2), ("512MB", 512 * 1024 ** 2),
                                         ("1.5g", int(1.5 * 1024 ** 3)), (1073741824, 1073741824),
                                         ("65536k", 64 * 1024 ** 2)])
def test_sizes(text, number):
    assert resources.memory_bytes(text) == number


def test_docker_update_sends_only_what_is_given():
    calls = []

    class Api:
        @staticmethod
        def _url(path, *args):
            return path.format(*args)

        @staticmethod
        def _post_json(url, data=None):
            calls.append((url, data))
            return "response"

        @staticmethod
        def _raise_for_status(response):
            calls.append(response)

    assert resources.docker_update(Api, "abc", cpus=0.5) == {"NanoCpus": 500000000}
    assert calls == [("/containers/abc/update", {"NanoCpus": 500000000}), "response"]
    assert resources.docker_update(Api, "abc") is None and len(calls) == 2
