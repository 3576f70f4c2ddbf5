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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, DockerException, get_docker_client)
from ansible_collections.botbottle.bottle.plugins.module_utils.image_archive import ARCHIVE_SPEC, failure_message, run


def main():
    argument_spec = dict(ARCHIVE_SPEC)
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
