#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_image_ship
short_description: Make an image on a fleet host the one built elsewhere, by docker load
version_added: 0.2.0
description:
  - Ensures image O(name) on the managed host has the id O(id) (the id it has where it was built).
  - When it already has that id nothing happens and O(archive) is not needed, so a playbook copies an
    archive only to the hosts that lack the image (see the role's C(ship_images.yml) tasks).
  - Otherwise the C(docker save) archive O(archive) (written where the image was built by
    M(botbottle.bottle.bottle_image_archive)) is
    loaded with C(docker load), the loaded id is checked against O(id) and O(name) is tagged to it. No
    registry and no build on the host.
  - The image O(name) named before is removed when nothing else uses it (see O(keep_previous)).
  - With O(src) (an archive on the controller) the action copies it to the host first, in parts of
    32 MB, and prints per host, as it happens, a line before the copy (its size), the bytes copied so
    far every ten seconds, a line after it (time and MB/s) and one after the load; the copy is removed
    afterwards. O(src) is always copied, so give it only for hosts known to lack
    the image (the role's C(ship_images.yml) tasks ask M(botbottle.bottle.bottle_info) first).
author: botbottle developers (@botbottle)
extends_documentation_fragment:
  - botbottle.bottle.docker
attributes:
  action:
    support: full
    description: The action copies O(src) from the controller and reports the bytes moved.
  check_mode:
    support: full
    description: Reports whether a load would happen (nothing is copied).
  diff_mode:
    support: full
    description: Shows the image id before and after.
  idempotent:
    support: full
    description: An image that already has O(id) is left alone.
options:
  name:
    description: Image reference, for example V(botbottle/bundle:latest).
    type: str
    required: true
  id:
    description: The image id it must have (C(sha256:...)).
    type: str
    required: true
  archive:
    description:
      - Path on the managed host of the C(docker save) archive holding the image. Required only when
        the host lacks the image.
    type: path
  src:
    description:
      - Path on the controller of the C(docker save) archive; copied to the host in parts (and removed
        afterwards) by the action, which then loads them as O(archive_parts). Mutually exclusive with
        O(archive).
    type: path
  archive_parts:
    description:
      - Paths on the managed host of consecutive parts of one C(docker save) archive, loaded in this
        order as one archive (set by the action for O(src)). Mutually exclusive with O(archive).
    type: list
    elements: path
  remove_archive:
    description: Remove O(archive) (or O(archive_parts)) after a successful load (it can be large).
    type: bool
    default: true
  keep_previous:
    description: Keep the image O(name) pointed at before, even when no tag or container uses it.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Copy the bundle's archive from the controller and load it, with a line per stage
  botbottle.bottle.bottle_image_ship:
    name: botbottle/bundle:latest
    id: "{{ archives.images[0].id }}"
    src: /home/me/.bot-bottle/images/6ec53a9fd2eb0f6f.tar

- name: Load the bundle image from the archive copied to the host
  botbottle.bottle.bottle_image_ship:
    name: botbottle/bundle:latest
    id: "{{ archives.images[0].id }}"
    archive: /tmp/botbottle-ship/6ec53a9fd2eb0f6f.tar
"""

RETURN = r"""
image:
  description: The image on the host after the module ran.
  returned: always
  type: dict
  sample: {name: botbottle/bundle:latest, id: "sha256:6ec53a9fd2eb...", previous_id: null}
loaded:
  description: Whether an archive was loaded (or would be, in check mode).
  returned: always
  type: bool
shipped:
  description: What the copy from the controller moved, and how long the copy and the load took.
  returned: when O(src) was copied
  type: dict
  sample: {bytes: 312400000, copy_seconds: 4.1, load_seconds: 6.3}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, DockerException, find_image, get_docker_client)

try:
    from docker.errors import APIError
except ImportError:  # pragma: no cover - the module fails in get_docker_client first
    APIError = Exception


class PartsReader:
    """The consecutive files ``paths`` read as one (a docker save archive copied in parts).

    ``len()`` is the total size, so the engine gets the archive with a Content-Length, as from one file."""

    def __init__(self, paths):
        self.paths, self.index, self.handle = list(paths), 0, None
        self.size = sum(os.path.getsize(path) for path in self.paths)

    def __len__(self):
        return self.size

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def read(self, size=-1):
        out = b""
        while self.index < len(self.paths) and (size < 0 or len(out) < size):
            if self.handle is None:
                self.handle = open(self.paths[self.index], "rb")
            chunk = self.handle.read(-1 if size < 0 else size - len(out))
            if not chunk:
                self.close()
                self.index += 1
                continue
            out += chunk
        return out


def split_reference(name):
    """``repo:tag`` -> (repo, tag); a port in the registry part is not a tag."""
    repo, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return name, "latest"
    return repo, tag


def ship(module, client):
    p = module.params
    want = p["id"] if p["id"].startswith("sha256:") else "sha256:" + p["id"]
    current = find_image(client, p["name"])
    before = current.id if current is not None else None
    result = {"changed": False, "loaded": False,
              "image": {"name": p["name"], "id": before, "previous_id": None},
              "diff": {"before": {"id": before}, "after": {"id": want}}}
    if before == want:
        return result
    result.update(changed=True, loaded=True)
    result["image"].update(id=want, previous_id=before)
    if not p["archive"] and not p["archive_parts"]:
        module.fail_json(msg="%s on this host is %s, not %s, and archive is not set: copy the image's docker save "
                             "archive to the host and pass its path" % (p["name"], before or "missing", want))
    if module.check_mode:
        return result
    paths = p["archive_parts"] or [p["archive"]]
    for path in paths:
        if not os.path.isfile(path):
            module.fail_json(msg="archive %s does not exist on this host: copy the docker save archive of %s there first"
                                 % (path, p["name"]))
    with PartsReader(paths) as handle:
        ids = [image.id for image in client.images.load(handle)]
    if want not in ids:
        module.fail_json(msg="archive %s holds %s, not %s (%s): archive the image again where it was built"
                             % (paths[0], ", ".join(ids) or "no image", want, p["name"]))
    loaded = client.images.get(want)
    if p["name"] not in (loaded.tags or []):
        repo, tag = split_reference(p["name"])
        loaded.tag(repo, tag)
    if p["remove_archive"]:
        for path in paths:
            os.unlink(path)
    if before and not p["keep_previous"]:
        try:
            old = client.images.get(before)
            if not old.tags:
                client.images.remove(before)
        except (APIError, DockerException):
            pass  # still used by a container or another image: the engine keeps it, so do we
    return result


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        id=dict(type="str", required=True),
        archive=dict(type="path"),
        src=dict(type="path"),
        archive_parts=dict(type="list", elements="path"),
        remove_archive=dict(type="bool", default=True),
        keep_previous=dict(type="bool", default=False),
    )
    argument_spec.update(DOCKER_COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[("src", "archive"), ("archive", "archive_parts")])
    client = get_docker_client(module)
    try:
        result = ship(module, client)
    except DockerException as exc:
        module.fail_json(msg="docker engine error while loading %s: %s" % (module.params["name"], exc))
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
