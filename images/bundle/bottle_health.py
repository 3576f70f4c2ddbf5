#!/usr/bin/env python
"""bottle-health [--json]: is every daemon of BOTTLE_DAEMONS really serving?

Prints one line per daemon (or one JSON object with --json) and exits 0 only
when all of them are healthy. The image's HEALTHCHECK and the sidecar_bundle
module both use it.
"""

import json
import os
import socket
import subprocess
import sys

PIPELOCK_BIN = "/usr/local/bin/pipelock"
# egress faces the agent on 8888, or sits behind the optional pipelock on 9099.
PORTS = {"egress": 8888, "git-gate": 9418, "supervise": 9100}
# supervise also listens on the bundle's loopback for egress (held DLP hits): both must answer.
EXTRA_PORTS = {"supervise": (9101,)}
EGRESS_CHAIN_PORT = 9099
INSTALLED = {"pipelock": PIPELOCK_BIN, "egress": "/opt/egress/bin/mitmdump",
             "git-gate": "/usr/local/bin/git-gate", "supervise": "/usr/local/bin/supervise"}


def tcp_open(port, host="127.0.0.1", timeout=1.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check(name, names=()):
    if not os.path.exists(INSTALLED.get(name, "/nonexistent")):
        return "not installed"
    if name == "pipelock":
        proc = subprocess.run([PIPELOCK_BIN, "healthcheck", "--addr", "127.0.0.1:8888"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=5, check=False)
        return "healthy" if proc.returncode == 0 else "unhealthy: " + (proc.stdout.strip() or "healthcheck failed")
    port = EGRESS_CHAIN_PORT if name == "egress" and "pipelock" in names else PORTS[name]
    for each in (port,) + EXTRA_PORTS.get(name, ()):
        if not tcp_open(each):
            return "unhealthy: nothing listens on 127.0.0.1:%d" % each
    return "healthy"


def main(argv):
    names = [n.strip() for n in os.environ.get("BOTTLE_DAEMONS", "egress").split(",") if n.strip()]
    report = {}
    for name in names:
        try:
            report[name] = check(name, names)
        except (OSError, subprocess.SubprocessError) as exc:
            report[name] = "unhealthy: %s" % exc
    if "--json" in argv:
        print(json.dumps(report, sort_keys=True))
    else:
        for name, state in report.items():
            print("%s: %s" % (name, state))
    return 0 if report and all(v == "healthy" for v in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
