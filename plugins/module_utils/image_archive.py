# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent image as an archive smolvm boots (``docker save``, cached by image id): bottle_image_archive's logic,
and the smolmachines launch's ``archive`` phase (bottle_launch).

API: ``ARCHIVE_SPEC`` (the options), ``run(module, client)`` -> result (``module``: an AnsibleModule or a
launch phase), ``failure_message(params, exc)``, ``archive_name``, ``write_archive``, ``prunable``.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time

from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import DockerException, find_image

ARCHIVE_SPEC = dict(
    image=dict(type="str", required=True),
    cache_dir=dict(type="path", default="~/.bot-bottle/images"),
    prune=dict(type="bool", default=True),
)

ARCHIVE_RE = re.compile(r"^([0-9a-f]{64})\.tar$")
PART_RE = re.compile(r"^\.[0-9a-f]{64}\.tar\..*\.part$")
STALE_PART_SECONDS = 3600


def archive_name(image_id):
    """``<hex>.tar`` for image id ``sha256:<hex>``."""
    return image_id.split(":", 1)[-1] + ".tar"


def write_archive(client, reference, path):
    """Stream ``docker save reference`` into ``path`` atomically; return its size."""
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in client.api.get_image(reference):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return os.path.getsize(path)


def tagged_ids(client, ids):
    """The ids among ``ids`` that still carry at least one tag."""
    keep = set()
    for image_id in ids:
        image = find_image(client, "sha256:" + image_id)
        if image is not None and image.tags:
            keep.add(image_id)
    return keep


def prunable(client, cache_dir, current, now=None):
    """Files of ``cache_dir`` no launch will read again (never ``current``)."""
    now = time.time() if now is None else now
    names = sorted(os.listdir(cache_dir))
    archives = {m.group(1): n for n in names for m in [ARCHIVE_RE.match(n)] if m and n != current}
    keep = tagged_ids(client, archives)
    out = [os.path.join(cache_dir, n) for i, n in archives.items() if i not in keep]
    for name in names:
        full = os.path.join(cache_dir, name)
        if PART_RE.match(name) and now - os.path.getmtime(full) > STALE_PART_SECONDS:
            out.append(full)
    return sorted(out)


def failure_message(params, exc):
    if isinstance(exc, DockerException):
        return "docker save %s failed: %s" % (params["image"], exc)
    return ("cannot write the archive of %s under %s: %s (check the directory's permissions and free space, "
            "or set cache_dir)" % (params["image"], params["cache_dir"], exc))


def run(module, client):
    p = module.params
    image = find_image(client, p["image"])
    if image is None:
        module.fail_json(msg="image %s is not in the local image cache: build it (make images) or point "
                             "image at one that exists" % p["image"])
    cache_dir = os.path.abspath(p["cache_dir"])  # type=path: already expanded
    name = archive_name(image.id)
    path = os.path.join(cache_dir, name)
    result = dict(changed=False, path=path, image_id=image.id, cached=os.path.isfile(path), size=0, pruned=[])
    if result["cached"]:
        result["size"] = os.path.getsize(path)
    elif not module.check_mode:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        result["size"] = write_archive(client, p["image"], path)
        result["changed"] = True
    else:
        result["changed"] = True
    if p["prune"] and os.path.isdir(cache_dir):
        result["pruned"] = prunable(client, cache_dir, name)
        if result["pruned"]:
            result["changed"] = True
            if not module.check_mode:
                for stale in result["pruned"]:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(stale)
    return result
