# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_image: what counts as an input, and when a build happens."""

from __future__ import annotations

import io
import os
import tarfile

import pytest
from docker.errors import APIError, NotFound

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
        self.id, self.labels, self.tags = image_id, labels or {}, []


class Client:
    """Just the image calls bottle_image makes."""

    def __init__(self, images, fail=None):
        self.store, self.builds, self.fail, self.in_use = dict(images), [], fail, set()
        self.images = self
        self.api = self

    def _tag_all(self):
        for image in self.store.values():
            image.tags = []
        for tag, image in self.store.items():
            if not tag.startswith("sha256:"):
                image.tags.append(tag)

    def get(self, name):
        if name not in self.store:
            raise NotFound(name)
        self._tag_all()
        return self.store[name]

    def remove(self, name):
        if self.in_use and self.store[name].id in self.in_use:
            raise APIError("conflict: image is being used by running container")
        del self.store[name]

    def build(self, fileobj, tag, labels, buildargs, **kwargs):
        self.builds.append((tag, dict(buildargs), fileobj.read()))
        self.build_kwargs = kwargs
        if isinstance(self.fail, Exception):
            raise self.fail
        if self.fail:
            for step in range(60):
                yield {"stream": "step %d\n" % step}
            yield {"error": self.fail}
            return
        image = Image("sha256:%d" % len(self.builds), labels)
        self.store[tag] = self.store[image.id] = image
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


def test_missing_base_names_the_seed_script_before_building(client, context):
    del client.store["debian:trixie-slim"]
    with pytest.raises(Failed, match="debian:trixie-slim of botbottle/x:latest .*scripts/seed-images.sh") as err:
        run(client, context)
    assert err.value.result["missing_base_images"] == ["debian:trixie-slim"] and client.builds == []


def test_base_images_scoping_flags_and_defaults():
    text = """ARG REG=docker.io
ARG TAG
FROM --platform=linux/amd64 ${REG}/library/debian:${TAG:-trixie-slim} AS base
ARG LATE=ignored
FROM base
FROM scratch
FROM $LATE
FROM \\
  busybox:1
"""
    assert bottle_image.base_images(text, {}) == ["docker.io/library/debian:trixie-slim", "busybox:1"]
    assert bottle_image.base_images(text, {"TAG": "13"})[0] == "docker.io/library/debian:13"


def test_dockerignore_directories_and_exceptions(context):
    (context / "cache").mkdir()
    (context / "cache" / "a.bin").write_text("a")
    (context / "docs").mkdir()
    (context / "docs" / "keep.md").write_text("k")
    (context / "docs" / "drop.md").write_text("d")
    (context / ".dockerignore").write_text("# comment\n*.tmp\ncache\ndocs/*\n!docs/keep.md\nDockerfile\n")
    assert bottle_image.context_files(str(context)) == [".dockerignore", "Dockerfile", "app.py", "docs/keep.md"]


@pytest.mark.parametrize("change", ["mode", "label", "dockerfile-name"])
def test_more_inputs_trigger_a_rebuild(client, context, change):
    first = run(client, context)
    kwargs = {}
    if change == "mode":
        os.chmod(context / "app.py", 0o755)
    elif change == "label":
        kwargs["labels"] = {"team": "a"}
    else:
        (context / "Other.dockerfile").write_text(DOCKERFILE)
        kwargs["dockerfile"] = "Other.dockerfile"
    second = run(client, context, **kwargs)
    assert second["built"] and second["image"]["inputs_hash"] != first["image"]["inputs_hash"]
    assert second["diff"] == {"before": {"inputs_hash": first["image"]["inputs_hash"]},
                              "after": {"inputs_hash": second["image"]["inputs_hash"]}}


def test_extra_ca_goes_into_the_tar_not_the_source_tree(client, context, tmp_path_factory):
    ca = tmp_path_factory.mktemp("ca") / "proxy.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nproxy\n")
    (context / "extra-ca.pem").write_text("stale copy from an old manual build")
    run(client, context, extra_ca_file=str(ca))
    with tarfile.open(fileobj=io.BytesIO(client.builds[0][2])) as tar:
        assert tar.getnames().count("extra-ca.pem") == 1
        assert tar.extractfile("extra-ca.pem").read() == ca.read_bytes()
    assert (context / "extra-ca.pem").read_text() == "stale copy from an old manual build"


def test_without_extra_ca_the_context_has_an_empty_one(client, context):
    run(client, context)
    with tarfile.open(fileobj=io.BytesIO(client.builds[0][2])) as tar:
        assert tar.extractfile("extra-ca.pem").read() == b""


def test_missing_extra_ca_file_is_named(client, context, tmp_path):
    with pytest.raises(Failed, match="extra_ca_file .*absent.pem is not a file"):
        run(client, context, extra_ca_file=str(tmp_path / "absent.pem"))


def test_reserved_label_is_refused(client, context):
    with pytest.raises(Failed, match="labels: io.botbottle.inputs is set by the module"):
        run(client, context, labels={naming.LABEL_INPUTS: "x"})


def test_missing_dockerfile_names_the_option(client, tmp_path):
    with pytest.raises(Failed, match="has no Dockerfile \\(dockerfile\\)"):
        run(client, tmp_path)


def test_check_mode_after_a_build(client, context):
    run(client, context)
    assert not run(client, context, check=True)["changed"]
    (context / "app.py").write_text("print('changed')\n")
    result = run(client, context, check=True)
    assert result["changed"] and not result["built"] and len(client.builds) == 1


def test_rebuild_removes_the_replaced_image_unless_kept_or_in_use(client, context):
    run(client, context)
    (context / "app.py").write_text("print(2)\n")
    assert run(client, context)["removed_previous"] is True and "sha256:1" not in client.store
    (context / "app.py").write_text("print(3)\n")
    assert run(client, context, keep_previous=True).get("removed_previous") is None and "sha256:2" in client.store
    client.in_use.add("sha256:3")
    (context / "app.py").write_text("print(4)\n")
    assert run(client, context)["removed_previous"] is False and "sha256:3" in client.store
    client.store["other/tag:1"] = client.store["sha256:4"]
    (context / "app.py").write_text("print(5)\n")
    assert run(client, context)["removed_previous"] is False and "sha256:4" in client.store


def test_force_rebuilds_unchanged_inputs(client, context):
    run(client, context)
    assert run(client, context, force=True)["built"] and len(client.builds) == 2


def bases():
    return {"debian:trixie-slim": Image("a"), "ghcr.io/luckypipewrench/pipelock:2.3.0": Image("b")}


def test_build_failure_carries_the_last_40_lines(context):
    client = Client(bases(), fail="The command '/bin/sh -c apt-get install' returned a non-zero code: 100")
    with pytest.raises(Failed) as err:
        run(client, context)
    msg, log = err.value.result["msg"], err.value.result["build_log"]
    assert "returned a non-zero code: 100" in msg and "seed-images" not in msg
    assert len(log) == 40 and log[-1].startswith("The command") and "step 59" in msg and "step 20" not in msg
    assert "botbottle/x:latest" not in client.store


def test_pull_failure_during_build_names_the_seed_script(context):
    client = Client(bases(), fail="pull access denied for pipelock-dev, repository does not exist")
    with pytest.raises(Failed, match="a base image is missing: run scripts/seed-images.sh"):
        run(client, context)


def test_silent_build_step_timeout_names_build_timeout(context):
    client = Client(bases(), fail=OSError("Read timed out"))
    with pytest.raises(Failed, match="raise build_timeout"):
        run(client, context, build_timeout=5)
    assert client.build_kwargs["timeout"] == 5 and client.build_kwargs["pull"] is False


def test_absent_removes_then_is_unchanged(client, context):
    run(client, context)
    assert run(client, context, state="absent", check=True)["changed"] and "botbottle/x:latest" in client.store
    assert run(client, context, state="absent")["changed"]
    assert "botbottle/x:latest" not in client.store
    assert not run(client, context, state="absent")["changed"]


def test_progress_file_gets_the_build_and_each_step_as_it_starts(client, context, tmp_path_factory, monkeypatch):
    from ansible_collections.botbottle.bottle.plugins.module_utils.progress import read_events
    progress = tmp_path_factory.mktemp("progress") / "bundle.progress"
    seen_while_building = []

    def build(fileobj, tag, labels, buildargs, **kwargs):
        for line in ["Step 1/3 : FROM debian:trixie-slim\n", " ---> 5f2b\n", "Step 2/3 : RUN make\n",
                     " ---> Using cache\n", "Step 3/3 : LABEL io.botbottle.inputs=abc\n"]:
            yield {"stream": line}
            # Each step is in the file before the build goes on (what a follower reads mid-build).
            seen_while_building.append(len(read_events(str(progress))[0]))
        image = Image("sha256:built", labels)
        client.store[tag] = client.store[image.id] = image

    monkeypatch.setattr(client, "build", build)
    result = run(client, context, progress_file=str(progress))
    events = read_events(str(progress))[0]
    assert [e["event"] for e in events] == ["build", "step", "step", "step"]
    assert events[0]["reason"] == "no image botbottle/x:latest yet"
    assert [(e["n"], e["of"], e["text"]) for e in events[1:]] == [
        (1, 3, "FROM debian:trixie-slim"), (2, 3, "RUN make"), (3, 3, "LABEL io.botbottle.inputs=abc")]
    assert seen_while_building == [2, 2, 3, 3, 4]
    assert result["build_steps"] == {"steps": 3, "cached": 1}
    # Unchanged inputs: no build, nothing more in the file.
    assert not run(client, context, progress_file=str(progress))["built"]
    assert len(read_events(str(progress))[0]) == 4


def test_a_symlinked_file_is_sent_as_the_file_it_points_at(client, context, tmp_path_factory):
    shared = tmp_path_factory.mktemp("collection") / "agent_text.py"
    shared.write_text("RULES = 1\n")
    (context / "agent_text.py").symlink_to(shared)
    first = run(client, context)
    with tarfile.open(fileobj=io.BytesIO(client.builds[0][2])) as tar:
        member = tar.getmember("agent_text.py")
        assert member.isfile() and tar.extractfile(member).read() == b"RULES = 1\n"
    # The file's content is the input, not the link: a change to the shared file rebuilds.
    shared.write_text("RULES = 2\n")
    second = run(client, context)
    assert second["built"] and second["image"]["inputs_hash"] != first["image"]["inputs_hash"]


@pytest.mark.parametrize("target", ["nowhere.py", "a-directory"])
def test_a_symlink_that_is_not_a_file_fails_naming_it(client, context, target):
    (context / "a-directory").mkdir()
    (context / "link.py").symlink_to(context / target)
    with pytest.raises(Failed, match=r"symlinks that do not point at a file: link\.py -> .*%s" % target):
        run(client, context)
    assert client.builds == []
