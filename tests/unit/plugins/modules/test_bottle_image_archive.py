# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_image_archive against the in-memory engine of docker_fakes."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.botbottle.bottle.plugins.modules import bottle_image_archive
from ansible_collections.botbottle.bottle.plugins.module_utils import image_archive
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import (
    FakeEngine, Failed, run_module)


@pytest.fixture
def engine():
    engine = FakeEngine()
    engine.add_image("botbottle/agent:latest")
    engine.saves = []

    def get_image(reference):
        engine.saves.append(reference)
        image = engine.client.images.get(reference)
        yield b"archive of "
        yield image.id.encode()

    engine.client.api.get_image = get_image
    return engine


def run(engine, cache, check=False, **overrides):
    args = dict(image="botbottle/agent:latest", cache_dir=str(cache))
    args.update(overrides)
    return run_module(bottle_image_archive, engine.client, args, check=check)


def test_writes_once_keyed_by_image_id_then_reuses(engine, tmp_path):
    cache = tmp_path / "images"
    image = engine.images[-1]
    first = run(engine, cache)
    path = cache / (image.id.split(":")[1] + ".tar")
    assert first["changed"] and not first["cached"]
    assert first["path"] == str(path) and first["image_id"] == image.id
    assert path.read_bytes() == b"archive of " + image.id.encode()
    assert first["size"] == path.stat().st_size
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(cache.stat().st_mode & 0o777) == "0o700"
    again = run(engine, cache)
    assert not again["changed"] and again["cached"] and again["path"] == first["path"]
    assert engine.saves == ["botbottle/agent:latest"]  # the second run did not save


def test_check_mode_writes_nothing(engine, tmp_path):
    result = run(engine, tmp_path / "images", check=True)
    assert result["changed"] and not result["cached"]
    assert not (tmp_path / "images").exists()
    assert engine.saves == []


def test_rebuilt_image_gets_a_new_archive_and_the_untagged_one_is_pruned(engine, tmp_path):
    cache = tmp_path / "images"
    old = run(engine, cache)
    engine.add_image("botbottle/agent:latest")  # rebuilt: the old image keeps no tag
    new = run(engine, cache)
    assert new["path"] != old["path"] and new["changed"]
    assert new["pruned"] == [old["path"]]
    assert not os.path.exists(old["path"]) and os.path.exists(new["path"])


def test_archives_of_tagged_images_and_foreign_files_are_kept(engine, tmp_path):
    cache = tmp_path / "images"
    other = engine.add_image("botbottle/other:latest")
    kept = run(engine, cache, image="botbottle/other:latest")
    (cache / "notes.txt").write_text("mine")
    result = run(engine, cache)
    assert result["pruned"] == []
    assert os.path.exists(kept["path"]) and (cache / "notes.txt").exists()
    assert kept["image_id"] == other.id


def test_stale_partial_files_are_pruned_fresh_ones_kept(engine, tmp_path):
    cache = tmp_path / "images"
    cache.mkdir()
    stale = cache / (".%s.tar.x1.part" % ("a" * 64))
    fresh = cache / (".%s.tar.x2.part" % ("b" * 64))
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    hour_ago = time.time() - 2 * image_archive.STALE_PART_SECONDS
    os.utime(stale, (hour_ago, hour_ago))
    checked = run(engine, cache, check=True)
    assert checked["pruned"] == [str(stale)] and stale.exists()
    result = run(engine, cache)
    assert result["pruned"] == [str(stale)]
    assert not stale.exists() and fresh.exists()


def test_prune_false_keeps_everything(engine, tmp_path):
    cache = tmp_path / "images"
    old = run(engine, cache)
    engine.add_image("botbottle/agent:latest")
    assert run(engine, cache, prune=False)["pruned"] == []
    assert os.path.exists(old["path"])


def test_interrupted_save_leaves_no_archive(engine, tmp_path):
    cache = tmp_path / "images"

    def broken(reference):
        yield b"partial"
        raise bottle_image_archive.DockerException("connection reset")

    engine.client.api.get_image = broken
    with pytest.raises(Failed) as failure:
        run(engine, cache)
    assert "docker save botbottle/agent:latest failed: connection reset" in failure.value.result["msg"]
    assert os.listdir(cache) == []


def test_missing_image_names_the_fix(engine, tmp_path):
    with pytest.raises(Failed) as failure:
        run(engine, tmp_path, image="nope:latest")
    assert "nope:latest is not in the local image cache" in failure.value.result["msg"]
