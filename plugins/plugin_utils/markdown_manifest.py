# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Agent and policy definitions written as Markdown manifests.

A manifest is a file ``<name>.md``: YAML front matter between ``---`` lines holding the definition's
keys, then a Markdown body. For an agent the body is its ``prompt``; for a policy it is its
``description``. Each definition is validated by ``manifest.check_agent`` / ``manifest.check_policy``,
the same checks inventory definitions get, and every error names the file and the key.

API:
- ``parse(text, source, kind)``: ``(name, definition)`` of one manifest (``source`` is its path).
- ``load_dir(path, kind)``: ``{name: definition}`` of every ``*.md`` file of directory ``path``.
- ``ManifestError``: ``manifest.ManifestError``.
"""

from __future__ import annotations

import os

import yaml

from ansible_collections.botbottle.bottle.plugins.module_utils import manifest
from ansible_collections.botbottle.bottle.plugins.module_utils.manifest import ManifestError

KINDS = {
    "agents": ("bottle_agents", "prompt", manifest.check_agent),
    "policies": ("bottle_policies", "description", manifest.check_policy),
}


def split_front_matter(text, source):
    """(front matter text, body) of a manifest; the front matter is required."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise ManifestError("%s: no front matter: start the file with a line '---', the YAML keys, and another "
                            "'---' line before the Markdown body" % source)
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            return "".join(lines[1:index]), "".join(lines[index + 1:])
    raise ManifestError("%s: the front matter is not closed: add a line '---' after its YAML keys" % source)


def parse(text, source, kind="agents"):
    if kind not in KINDS:
        raise ManifestError("kind %r: use agents or policies" % (kind,))
    root, body_key, check = KINDS[kind]
    name = os.path.splitext(os.path.basename(source))[0]
    if not manifest.NAME_RE.match(name):
        raise ManifestError("%s: %r is not a valid %s name (the file name without .md): use a-z, 0-9 and '-', "
                            "at most 31 characters" % (source, name, kind[:-1]))
    front, body = split_front_matter(text, source)
    try:
        data = yaml.safe_load(front)
    except yaml.YAMLError as exc:
        raise ManifestError("%s: the front matter is not valid YAML: %s" % (source, exc))
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ManifestError("%s: the front matter must be a mapping of %s keys, not %s"
                            % (source, kind[:-1], manifest.type_name(data)))
    body = body.strip("\n")
    if body.strip():
        if body_key in data:
            raise ManifestError("%s: %s.%s.%s is given twice (front matter and body): keep one (the body is the %s)"
                                % (source, root, name, body_key, body_key))
        data[body_key] = body + "\n"
    try:
        check(data, "%s.%s" % (root, name))
    except ManifestError as exc:
        raise ManifestError("%s: %s" % (source, exc))
    return name, data


def load_dir(path, kind="agents"):
    """Every ``*.md`` manifest of ``path`` (not recursive), by name."""
    if not os.path.isdir(path):
        raise ManifestError("%s is not a directory of <name>.md %s manifests: fix the path" % (path, kind))
    out = {}
    for entry in sorted(os.listdir(path)):
        if not entry.endswith(".md"):
            continue
        source = os.path.join(path, entry)
        try:
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError("%s: cannot read it (%s)" % (source, exc))
        name, data = parse(text, source, kind)
        out[name] = data
    return out
