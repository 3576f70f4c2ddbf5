# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The retention of audit archives (module_utils/audit_archive.py ARCHIVE_SPEC), for the modules that archive."""

    DOCUMENTATION = r"""
options:
  archive_keep_days:
    description: With O(archive_root), remove archives (of every bottle) archived more than this many days ago. V(0) keeps them.
    type: int
    default: 0
  archive_keep:
    description: With O(archive_root), keep only this many archives (of every bottle, the newest). V(0) sets no limit.
    type: int
    default: 0
"""
