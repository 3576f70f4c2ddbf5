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
- ``wait_healthy(container, timeout, name=None) -> report``: poll ``read_health`` until every daemon is
  healthy; raises ``BundleUnhealthy`` when the bundle exits or ``timeout`` seconds pass. Its message names
  the unhealthy daemons and shows their own log lines and the last lines of the bundle's log; its
  ``details`` (health, unhealthy, logs, container) are for the module's result.
"""

from __future__ import annotations

import json
import time

from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import DockerException, log_tail

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


class BundleUnhealthy(Exception):
    """The bundle did not report every daemon healthy: ``str()`` says why, ``details`` is for the result."""

    def __init__(self, message, details):
        super().__init__(message)
        self.details = details


def wait_healthy(container, timeout, name=None, interval=0.1):
    """The health report once every daemon of ``container`` (a bundle) is healthy; see the module doc."""
    deadline = time.monotonic() + timeout
    report = {}
    while True:
        container.reload()
        if container.status not in ("running", "created"):
            raise _unhealthy(container, name, "the bundle exited (status %s, exit code %s)" % (
                container.status, (container.attrs.get("State") or {}).get("ExitCode")), report)
        if container.status == "running":
            try:
                rc, report, output = read_health(container)
                if report is None:
                    report = {"bottle-health": output or "no output (rc %s)" % rc}
            except DockerException as exc:
                rc, report = 1, {"bottle-health": str(exc)}
            if rc == 0:
                return report
        if time.monotonic() > deadline:
            raise _unhealthy(container, name, "not every daemon was healthy within %ss (health_timeout)" % timeout,
                             report)
        time.sleep(interval)


def _unhealthy(container, name, why, report):
    name = name or container.name
    bad = sorted(k for k, v in (report or {}).items() if v != "healthy")
    lines = log_tail(container, 400).splitlines()
    # bottle-init prefixes each daemon's output with "[<daemon>] ": show the failing ones' own words.
    own = [line for line in lines if any(line.startswith("[%s] " % d) for d in bad)][-30:]
    tail = lines[-30:]
    parts = ["bundle %s is not healthy: %s." % (name, why),
             "Unhealthy: %s." % (", ".join(bad) or "unknown (no health report)"),
             "bottle-health --json: %s" % json.dumps(report or {}, sort_keys=True)]
    if own:
        parts.append("Their log lines:\n" + "\n".join(own))
    parts.append("Last %d lines of docker logs %s:\n%s" % (len(tail), name, "\n".join(tail)))
    details = dict(health=report, unhealthy=bad, logs=tail, container={"id": container.id, "name": name})
    return BundleUnhealthy("\n".join(parts), details)
