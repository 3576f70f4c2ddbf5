# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_image: what counts as an input, and when a build happens."""

from __future__ import annotations

import pytest
from docker.errors import NotFound

from ansible_collections.botbottle.bottle.plugins.module_utils import naming
from ansible_collections.botbottle.bottle.plugins.modules import bottle_image
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import Failed, run_module

DOCKERFILE = """ARG PIPELOCK_IMAGE=ghcr.io/luckypipewrench/pipelock:2.3.0
FROM ${PIPELOCK_IMAGE} AS pipelock
FROM debian:trixie-slim
COPY --from=pipelock /pipelock /usr/local/bin/pipelock
"""


class Image:
    def __init__(self, image_id, labels=None):
        self.id, self.labels = image_id, labels or {}


class Client:
    """Just the image calls bottle_image makes."""

    def __init__(self, images, fail=None):
        self.store, self.builds, self.fail = dict(images), [], fail
        self.images = self
        self.api = self

    def get(self, name):
        if name not in self.store:
            raise NotFound(name)
        return self.store[name]

    def remove(self, name):
        del self.store[name]

    def build(self, fileobj, tag, labels, buildargs, **kwargs):
        self.builds.append((tag, dict(buildargs), fileobj.read()))
        if self.fail:
            yield {"stream": "Step 1/2 : FROM debian\n"}
            yield {"error": self.fail}
            return
        self.store[tag] = Image("sha256:%d" % len(self.builds), labels)
        yield {"stream": "Successfully built\n"}


@pytest.fixture
def context(tmp_path):
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "app.py").write_text("print('hi')\n")
    (tmp_path / "notes.tmp").write_text("ignored\n")
    (tmp_path / ".dockerignore").write_text("*.tmp\n")
    return tmp_path


@pytest.fixture
def client():
    return Client({"debian:trixie-slim": Image("sha256:deb"),
                   "ghcr.io/luckypipewrench/pipelock:2.3.0": Image("sha256:pl")})


def run(client, context, check=False, **overrides):
    args = {"name": "botbottle/x:latest", "path": str(context)}
    args.update(overrides)
    return run_module(bottle_image, client, args, check=check, diff=True)


def test_base_images_follow_args_and_skip_stages():
    assert bottle_image.base_images(DOCKERFILE, {}) == ["ghcr.io/luckypipewrench/pipelock:2.3.0", "debian:trixie-slim"]
    assert bottle_image.base_images(DOCKERFILE, {"PIPELOCK_IMAGE": "pl:dev"})[0] == "pl:dev"


def test_context_respects_dockerignore_and_leaves_out_extra_ca(context):
    (context / "extra-ca.pem").write_text("x")
    assert bottle_image.context_files(str(context)) == [".dockerignore", "Dockerfile", "app.py"]


def test_build_once_then_unchanged(client, context):
    first = run(client, context)
    assert first["built"] and first["changed"]
    tag, _args, tar = client.builds[0]
    assert tag == "botbottle/x:latest" and b"extra-ca.pem" in tar and b"notes.tmp" not in tar
    assert client.store[tag].labels[naming.LABEL_INPUTS] == first["image"]["inputs_hash"]
    second = run(client, context)
    assert not second["changed"] and not second["built"] and len(client.builds) == 1


@pytest.mark.parametrize("change", ["file", "arg", "ca", "base"])
def test_each_input_triggers_a_rebuild(client, context, tmp_path_factory, change):
    ca = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.write_text("A")
    run(client, context, extra_ca_file=str(ca))
    kwargs = {"extra_ca_file": str(ca)}
    if change == "file":
        (context / "app.py").write_text("print('bye')\n")
    elif change == "arg":
        kwargs["build_args"] = {"X": "1"}
    elif change == "ca":
        ca.write_text("B")
    else:
        client.store["debian:trixie-slim"] = Image("sha256:newer")
    assert run(client, context, **kwargs)["built"]


def test_ignored_file_does_not_trigger_a_rebuild(client, context):
    run(client, context)
    (context / "notes.tmp").write_text("changed\n")
    assert not run(client, context)["changed"]


def test_check_mode_builds_nothing(client, context):
    result = run(client, context, check=True)
    assert result["changed"] and not result["built"] and client.builds == []


def test_missing_base_names_the_seed_script(client, context):
    del client.store["debian:trixie-slim"]
    with pytest.raises(Failed, match="scripts/seed-images.sh"):
        run(client, context)


def test_build_failure_carries_the_log(context):
    client = Client({"debian:trixie-slim": Image("a"), "ghcr.io/luckypipewrench/pipelock:2.3.0": Image("b")},
                    fail="apt-get failed")
    with pytest.raises(Failed) as err:
        run(client, context)
    assert "apt-get failed" in err.value.result["msg"] and err.value.result["build_log"]


def test_absent_removes_then_is_unchanged(client, context):
    run(client, context)
    assert run(client, context, state="absent")["changed"]
    assert not run(client, context, state="absent")["changed"]
