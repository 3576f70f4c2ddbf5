#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_image_archive
short_description: A local image as a docker save archive, cached by image id
version_added: 0.1.0
description:
  - Writes the C(docker save) archive of local image O(image) to C(<cache_dir>/<image id>.tar), the form in
    which the smolmachines backend hands the agent image to smolvm (C(smolvm machine create --image)).
  - The archive is keyed by the image's id, so it is written once per image and reused by every later
    launch of any bottle using that image; a rebuilt image (a new id) gets a new archive.
  - Written atomically - to a hidden temporary file in O(cache_dir), flushed, then renamed - so a cached
    archive is always complete, even after an interrupted run.
  - With O(prune) archives of images that no longer carry any tag in the local image cache (or are gone) are
    removed, as are temporary files older than an hour left by interrupted runs. No launch can ask for an
    untagged image by name again, so those archives would never be read.
author: botbottle developers (@botbottle)
extends_documentation_fragment:
  - botbottle.bottle.docker
attributes:
  check_mode:
    description: Reports whether it would write the archive and what it would prune, writing and removing nothing.
    support: full
  diff_mode:
    description: Nothing is shown; RV(pruned) and RV(cached) say what happened.
    support: none
  idempotent:
    description: A second run with the same image finds the archive and changes nothing.
    support: full
options:
  image:
    description: The image reference (or id) in the local image cache.
    type: str
    required: true
  cache_dir:
    description: Where archives are kept on the managed host (created with mode 0700).
    type: path
    default: ~/.bot-bottle/images
  prune:
    description: Remove archives of images that have no tag any more, and stale temporary files.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: The agent image as an archive smolvm can boot
  botbottle.bottle.bottle_image_archive:
    image: botbottle/agent:latest
  register: agent_archive

- name: Use it
  ansible.builtin.debug:
    msg: "smolvm machine create --image {{ agent_archive.path }}"
"""

RETURN = r"""
path:
  description: The archive.
  returned: always
  type: str
  sample: /home/me/.bot-bottle/images/9ce333a5d5ab0f6f....tar
image_id:
  description: The image's id.
  returned: always
  type: str
  sample: sha256:9ce333a5d5ab0f6f...
cached:
  description: Whether the archive was already there (nothing was written).
  returned: always
  type: bool
size:
  description: Size of the archive in bytes (0 in check mode when it would be written).
  returned: always
  type: int
pruned:
  description: Files removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
"""

import contextlib
import os
import re
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, DockerException, find_image, get_docker_client)

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


def main():
    argument_spec = dict(
        image=dict(type="str", required=True),
        cache_dir=dict(type="path", default="~/.bot-bottle/images"),
        prune=dict(type="bool", default=True),
    )
    argument_spec.update(DOCKER_COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = get_docker_client(module)
    try:
        result = run(module, client)
    except (DockerException, OSError) as exc:
        module.fail_json(msg=failure_message(module.params, exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
