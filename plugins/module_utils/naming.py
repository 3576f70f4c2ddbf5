# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One naming rule for every object a bottle owns.

Teardown and bottle_info find a bottle's objects by the labels built here and
by nothing else, so every module that creates something takes its names and
labels from this file.
"""

from __future__ import annotations

import os
import re

LABEL_PREFIX = "io.botbottle"
LABEL_BOTTLE = LABEL_PREFIX + ".bottle"
LABEL_AGENT = LABEL_PREFIX + ".agent"
LABEL_COMPONENT = LABEL_PREFIX + ".component"
LABEL_BACKEND = LABEL_PREFIX + ".backend"
LABEL_CONFIG_HASH = LABEL_PREFIX + ".config-hash"
LABEL_INPUTS = LABEL_PREFIX + ".inputs"

COMPONENTS = ("net-int", "net-out", "bundle", "agent")
BACKENDS = ("docker", "smolmachines")

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,30}$"
_SLUG_RE = re.compile(SLUG_PATTERN)

DEFAULT_STATE_ROOT = "~/.bot-bottle/state"


def slug_error(slug):
    """Return why ``slug`` is not a valid bottle slug, or None when it is."""
    if not isinstance(slug, str) or not _SLUG_RE.match(slug):
        return (
            "bottle slug %r is invalid: use 1-31 characters of a-z, 0-9 and '-', "
            "starting with a letter or digit (it is derived from the agent name "
            "and bottle_instance)" % (slug,)
        )
    if slug.endswith("-"):
        return "bottle slug %r is invalid: it must not end with '-'" % (slug,)
    return None


def make_slug(agent, instance=""):
    """The slug of agent ``agent``'s bottle, optionally suffixed by ``instance``."""
    return "%s-%s" % (agent, instance) if instance else agent


def object_name(slug, component):
    """Docker object / smolvm machine name of ``component`` of bottle ``slug``."""
    if component not in COMPONENTS:
        raise ValueError("unknown bottle component %r (known: %s)" % (component, ", ".join(COMPONENTS)))
    return "bb-%s-%s" % (slug, component)


def labels(slug, agent, component, backend="docker"):
    """The labels every object of bottle ``slug`` carries."""
    if component not in COMPONENTS:
        raise ValueError("unknown bottle component %r (known: %s)" % (component, ", ".join(COMPONENTS)))
    return {
        LABEL_BOTTLE: slug,
        LABEL_AGENT: agent,
        LABEL_COMPONENT: component,
        LABEL_BACKEND: backend,
    }


def bottle_filter(slug=None, agent=None):
    """A docker ``filters={'label': [...]}`` value selecting bottle objects."""
    wanted = [LABEL_BOTTLE + "=" + slug] if slug else [LABEL_BOTTLE]
    if agent:
        wanted.append(LABEL_AGENT + "=" + agent)
    return {"label": wanted}


def state_dir(slug, root=DEFAULT_STATE_ROOT):
    """Absolute path of bottle ``slug``'s state directory on the managed host."""
    return os.path.join(os.path.abspath(os.path.expanduser(root)), slug)
