# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A desktop notification where the desktop offers one: notify-send (Linux), osascript (macOS); else nothing.

The title and body may carry what an agent wrote: both go through ``agent_text.notification`` (one line,
control characters and bidi overrides escaped, notify-send's markup characters as entities, bounded).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from ansible_collections.botbottle.bottle.plugins.module_utils import agent_text

TITLE_LIMIT = 80
BODY_LIMIT = 300


def command(title, body, which=shutil.which, platform=sys.platform):
    """The argv that shows a notification here, or None when this machine has no way to."""
    if platform == "darwin" and which("osascript"):
        title, body = agent_text.notification(title, TITLE_LIMIT, False), agent_text.notification(body, BODY_LIMIT, False)
        script = "display notification %s with title %s" % (json.dumps(body), json.dumps(title))
        return ["osascript", "-e", script]
    if which("notify-send"):
        title, body = agent_text.notification(title, TITLE_LIMIT), agent_text.notification(body, BODY_LIMIT)
        return ["notify-send", "--app-name=bot-bottle", "--", title, body]  # "--": a body is never an option
    return None


def desktop(title, body, which=shutil.which, platform=sys.platform, popen=subprocess.Popen):
    """Show a notification without waiting for it; True when one was sent."""
    argv = command(title, body, which, platform)
    if argv is None:
        return False
    try:
        popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return False
    return True
