#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: preflight_fail
short_description: Stop a run before anything is created, printing the reason once
version_added: 0.1.0
description:
  - Fails the task with O(msg) as its error, like M(ansible.builtin.fail), but the reason is printed once - in the
    C([ERROR]) block - while the C(fatal) line carries O(outcome) (ansible-core 2.19 prints a failure's message in
    both places).
  - Meant for a reason a person reads once - what is wrong, where, the fix - computed by earlier tasks that never
    fail themselves (for example the filter P(botbottle.bottle.resolve_bottle#filter) with C(errors=report)).
  - Runs on the controller; nothing is created or changed.
author: botbottle developers (@botbottle)
attributes:
  check_mode:
    support: full
    description: Fails in check mode too.
  diff_mode:
    support: none
    description: Nothing to show, it changes nothing.
  idempotent:
    support: full
    description: It changes nothing.
options:
  msg:
    description:
      - The reason - what is wrong, where (the key), and the fix. A list is printed one item a line.
    type: raw
    required: true
  outcome:
    description:
      - What the run did, shown as the result's message.
    type: str
    default: stopped before anything was created
seealso:
  - module: ansible.builtin.fail
"""

EXAMPLES = r"""
- name: Stop on an invalid agent or policy
  botbottle.bottle.preflight_fail:
    msg: "{{ bottle_check.error }}"
  when: bottle_check.error | length > 0
"""

RETURN = r"""
msg:
  description: O(outcome).
  returned: always
  type: str
  sample: stopped before anything was created
"""
