# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_image_ship: load only where the id differs, check the loaded id, tag, clean up."""

from __future__ import annotations

import pytest

from ansible_collections.botbottle.bottle.plugins.modules import bottle_image_ship
from ansible_collections.botbottle.bottle.tests.unit.plugins.modules.docker_fakes import (
    FakeEngine, FakeImage, Failed, run_module)


@pytest.fixture
def engine(monkeypatch):
    """The fake engine plus ``docker load``: an archive's text is the id of the image it holds."""
    engine = FakeEngine()
    engine.loads = []

    def load(handle):
        wanted = handle.read().decode()
        engine.loads.append(wanted)
        image = FakeImage("placeholder")
        image.id, image.tags = wanted, []
        engine.images.append(image)
        return [image]

    def remove(image_id):
        engine.images[:] = [i for i in engine.images if i.id != image_id]

    def tag(self, repo, tag):  # as the engine does: the name moves to this image
        name = "%s:%s" % (repo, tag)
        for other in engine.images:
            if name in other.tags:
                other.tags.remove(name)
        self.tags.append(name)

    engine.client.images.load = load
    engine.client.images.remove = remove
    monkeypatch.setattr(FakeImage, "tag", tag, raising=False)
    return engine


def archive(tmp_path, image_id):
    path = tmp_path / "image.tar"
    path.write_text(image_id)
    return str(path)


def test_same_id_is_left_alone_without_an_archive(engine):
    image = engine.add_image("botbottle/bundle:latest")
    result = run_module(bottle_image_ship, engine.client, {"name": "botbottle/bundle:latest", "id": image.id})
    assert not result["changed"] and not result["loaded"] and engine.loads == []


def test_missing_image_is_loaded_tagged_and_the_archive_removed(engine, tmp_path):
    path = archive(tmp_path, "sha256:" + "ab" * 32)
    result = run_module(bottle_image_ship, engine.client,
                        {"name": "botbottle/bundle:latest", "id": "sha256:" + "ab" * 32, "archive": path}, diff=True)
    assert result["changed"] and result["loaded"]
    assert result["diff"] == {"before": {"id": None}, "after": {"id": "sha256:" + "ab" * 32}}
    assert engine.client.images.get("botbottle/bundle:latest").id == "sha256:" + "ab" * 32
    assert not (tmp_path / "image.tar").exists()
    again = run_module(bottle_image_ship, engine.client, {"name": "botbottle/bundle:latest", "id": "ab" * 32})
    assert not again["changed"]


def test_another_id_is_replaced_and_the_old_untagged_image_removed(engine, tmp_path):
    old = engine.add_image("botbottle/bundle:latest")
    path = archive(tmp_path, "sha256:" + "cd" * 32)
    result = run_module(bottle_image_ship, engine.client,
                        {"name": "botbottle/bundle:latest", "id": "sha256:" + "cd" * 32, "archive": path})
    assert result["image"]["previous_id"] == old.id
    assert [i.id for i in engine.images] == ["sha256:" + "cd" * 32]


def test_keep_previous_keeps_the_old_image(engine, tmp_path):
    old = engine.add_image("botbottle/bundle:latest")
    path = archive(tmp_path, "sha256:" + "cd" * 32)
    run_module(bottle_image_ship, engine.client, {"name": "botbottle/bundle:latest", "id": "sha256:" + "cd" * 32,
                                                  "archive": path, "keep_previous": True, "remove_archive": False})
    assert old.id in [i.id for i in engine.images] and (tmp_path / "image.tar").exists()


def test_check_mode_reports_a_load_and_loads_nothing(engine, tmp_path):
    result = run_module(bottle_image_ship, engine.client,
                        {"name": "botbottle/bundle:latest", "id": "sha256:" + "ef" * 32, "archive": "/nowhere.tar"},
                        check=True)
    assert result["changed"] and result["loaded"] and engine.loads == []


def test_wrong_archive_is_refused_naming_both_ids(engine, tmp_path):
    path = archive(tmp_path, "sha256:" + "11" * 32)
    with pytest.raises(Failed) as failed:
        run_module(bottle_image_ship, engine.client,
                   {"name": "botbottle/bundle:latest", "id": "sha256:" + "22" * 32, "archive": path})
    assert "holds sha256:" + "11" * 32 in str(failed.value) and "not sha256:" + "22" * 32 in str(failed.value)
    assert "archive the image again" in str(failed.value)


def test_missing_archive_and_no_archive_name_the_fix(engine, tmp_path):
    with pytest.raises(Failed, match="archive is not set: copy the image's docker save archive"):
        run_module(bottle_image_ship, engine.client, {"name": "botbottle/bundle:latest", "id": "sha256:" + "33" * 32})
    with pytest.raises(Failed, match="does not exist on this host"):
        run_module(bottle_image_ship, engine.client, {"name": "botbottle/bundle:latest", "id": "sha256:" + "33" * 32,
                                                      "archive": str(tmp_path / "absent.tar")})


@pytest.mark.parametrize("name, expected", [
    ("botbottle/bundle:latest", ("botbottle/bundle", "latest")),
    ("botbottle/bundle", ("botbottle/bundle", "latest")),
    ("registry:5000/bundle", ("registry:5000/bundle", "latest")),
    ("registry:5000/bundle:v1", ("registry:5000/bundle", "v1")),
])
def test_split_reference(name, expected):
    assert bottle_image_ship.split_reference(name) == expected


def test_parts_are_loaded_in_order_as_one_archive_and_removed(engine, tmp_path):
    image = "sha256:" + "ab" * 32
    parts = []
    for i, piece in enumerate([image[:20], image[20:50], image[50:]]):
        path = tmp_path / ("a.tar.part-%04d" % i)
        path.write_text(piece)
        parts.append(str(path))
    args = {"name": "botbottle/bundle:latest", "id": image, "archive_parts": parts}
    result = run_module(bottle_image_ship, engine.client, args)
    assert result["loaded"] and engine.loads == [image]
    assert not any((tmp_path / ("a.tar.part-%04d" % i)).exists() for i in range(3))


def test_parts_reader_reads_across_files_in_any_block_size(tmp_path):
    paths = []
    for i, piece in enumerate([b"abc", b"", b"defgh", b"ij"]):
        path = tmp_path / str(i)
        path.write_bytes(piece)
        paths.append(str(path))
    with bottle_image_ship.PartsReader(paths) as reader:
        assert len(reader) == 10
        assert [reader.read(4), reader.read(4), reader.read(4), reader.read(4)] == [b"abcd", b"efgh", b"ij", b""]
    with bottle_image_ship.PartsReader(paths) as reader:
        assert reader.read() == b"abcdefghij"
