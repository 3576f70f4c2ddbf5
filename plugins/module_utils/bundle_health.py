# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one reader of a running bundle's health: ``bottle-health --json`` inside it.

API:
- ``HEALTH_COMMAND``: the argv run in the bundle container.
- ``read_health(container) -> (rc, report, output)``: ``rc`` is bottle-health's exit code
  (0 when every daemon is healthy); ``report`` is ``{daemon: "healthy" | reason}`` (keys and
  values as text) when it printed a JSON object, else None; ``output`` is what it printed
  (stdout, then stderr, as text, stripped), for a message when there is no report.
  Engine errors (``docker.errors.DockerException``) are the caller's to handle.
"""

from __future__ import annotations

import json

HEALTH_COMMAND = ["bottle-health", "--json"]


def read_health(container):
    result = container.exec_run(HEALTH_COMMAND, demux=True)
    out, err = result.output if isinstance(result.output, tuple) else (result.output, b"")
    out = (out or b"").decode("utf-8", "replace")
    try:
        report = json.loads(out)
    except ValueError:
        report = None
    if isinstance(report, dict):
        report = {str(k): str(v) for k, v in report.items()}
    else:
        report = None
    return result.exit_code, report, (out + (err or b"").decode("utf-8", "replace")).strip()
