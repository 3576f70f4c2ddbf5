# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: launch_current
short_description: Whether a bottle already runs exactly as a launch would leave it
version_added: 0.4.0
description:
  - Compares what M(botbottle.bottle.bottle_info) observed (its C(launch) result - the stamp of the last launch
    and the bottle's objects now) with the digest of this launch's inputs (C(botbottle.bottle.launch_digest)) and
    the images it wants.
  - Current means - the same digest; the same networks and containers (by id) as the stamp recorded, both
    containers running; each container running the image its name points at now; the state directory's files
    unchanged; every daemon of the bundle healthy. Anything else is not current, with the reason.
options:
  _input:
    description: C(bottle_info)'s C(launch) result.
    type: dict
    required: true
  digest:
    description: The digest of this launch's inputs.
    type: str
    required: true
  images:
    description: The id of each image the launch wants now, as C({bundle, agent}).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Decide whether the bottle already runs as this launch would leave it
  ansible.builtin.set_fact:
    bottle_current: "{{ bottle_preflight_info.launch | botbottle.bottle.launch_current(bottle_launch_digest, bottle_image_ids) }}"
"""

RETURN = r"""
_value:
  description: C({current, reason}) - C(reason) says why not (empty when current).
  type: dict
"""

from ansible_collections.botbottle.bottle.plugins.module_utils.launch_stamp import is_current


def launch_current(observed, digest, images):
    current, reason = is_current(observed, digest, images or {})
    return {"current": current, "reason": reason}


class FilterModule:
    def filters(self):
        return {"launch_current": launch_current}
