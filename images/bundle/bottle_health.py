#!/usr/bin/env python
"""bottle-health [--json]: is every daemon of BOTTLE_DAEMONS really serving?

Prints one line per daemon (or one JSON object with --json) and exits 0 only
when all of them are healthy. The image's HEALTHCHECK, bottle-init's hang
watch and the sidecar_bundle module use it.

Each daemon is asked through the path it serves, within DEADLINE seconds, all
at once (a listening socket alone proves nothing: the kernel accepts for a
stopped process):
- egress: a plain proxy request for bottle-health.invalid on the agent's port,
  which the firewall's own request hook answers with its readable 403 (rule
  ``health``) from the bundle's loopback only, written to no audit (it is not
  the agent's request); behind pipelock, egress's transparent port must answer
  or close;
- git-gate: a git protocol request for a repository no bottle declares, which
  git daemon answers through its access hook with an ERR line;
- supervise: an MCP ping on /mcp (port 9100), and its bundle-local release
  port (9101) answering HTTP.
"""

import json
import os
import socket
import subprocess
import sys
import threading

PIPELOCK_BIN = "/usr/local/bin/pipelock"
# egress faces the agent on 8888, or sits behind the optional pipelock on 9099.
PORTS = {"egress": 8888, "git-gate": 9418, "supervise": 9100}
# supervise also listens on the bundle's loopback for egress (held DLP hits): both must answer.
EXTRA_PORTS = {"supervise": (9101,)}
EGRESS_CHAIN_PORT = 9099
INSTALLED = {"pipelock": PIPELOCK_BIN, "egress": "/opt/egress/bin/mitmdump",
             "git-gate": "/usr/local/bin/git-gate", "supervise": "/usr/local/bin/supervise"}


# The health timing, one table: this check, the image's HEALTHCHECK (the Dockerfile must say
# docker_healthcheck(): a unit test compares) and bottle-init's hang watch (which loads this file) read it.
# Each entry: (environment variable or None, default). A hang must show within 10 s (issue 23):
#   deadline        each daemon's answer, in seconds. A busy egress on a loaded host can miss 1 s (its answer
#                   waits behind the agent's requests in its loop); bottle-init does not take a daemon that
#                   used CPU time since its last check for hung, so 1 s costs no restart mid-traffic, and 2 s
#                   put Docker's view of a real hang past 10 s (measured: 14.4 s)
#   docker_*        the HEALTHCHECK: at a 2 s interval and 2 retries a hang turns Docker's health unhealthy
#                   within about 6 s (10 s on a loaded host); its timeout leaves the deadline a second
#   watch_interval  bottle-init's own check, slower than Docker's, so Docker shows a hang before a restart
#                   clears it
#   hang_checks     failed checks in a row, with no CPU time used, that make a daemon hung (restarted)
#   busy_checks     failed checks in a row that make a daemon hung while it uses CPU time (5 minutes)
#   restarts_max    restarts of hung daemons within restart_window seconds before the bundle fails closed
#   start_grace     seconds a started daemon's failed checks do not count, unless it answered healthy before
#   stop_grace      seconds the daemons get to exit on SIGTERM before SIGKILL
TIMING = {
    "deadline": ("BOTTLE_HEALTH_DEADLINE", 1.0),
    "docker_interval": (None, 2),
    "docker_timeout": (None, 3),
    "docker_start_period": (None, 10),
    "docker_retries": (None, 2),
    "watch_interval": ("BOTTLE_HEALTH_INTERVAL", 3.0),
    "hang_checks": ("BOTTLE_HANG_CHECKS", 3),
    "busy_checks": ("BOTTLE_BUSY_CHECKS", 100),
    "restarts_max": ("BOTTLE_RESTARTS_MAX", 3),
    "restart_window": ("BOTTLE_RESTART_WINDOW", 600.0),
    "start_grace": ("BOTTLE_START_GRACE", 60.0),
    "stop_grace": ("BOTTLE_GRACE_SECONDS", 10.0),
}


def timing(name):
    """The value of ``TIMING[name]``: its environment variable's when set, else the default (same type)."""
    variable, default = TIMING[name]
    value = os.environ.get(variable) if variable else None
    return default if value is None else type(default)(value)


def docker_healthcheck():
    """The options of the image's HEALTHCHECK instruction, from the table."""
    return "--interval=%ds --timeout=%ds --start-period=%ds --retries=%d" % tuple(
        timing(n) for n in ("docker_interval", "docker_timeout", "docker_start_period", "docker_retries"))


DEADLINE = timing("deadline")
# The addon's HEALTH_HOST (bottle_firewall/addon.py); behind pipelock only the connection is asked.
EGRESS_PROBE = (b"GET http://bottle-health.invalid/ HTTP/1.1\r\nHost: bottle-health.invalid\r\n"
                b"Connection: close\r\n\r\n")
MCP_PING = b'{"jsonrpc":"2.0","id":"bottle-health","method":"ping"}'


class Unhealthy(Exception):
    pass


def tcp_open(port, host="127.0.0.1", timeout=1.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ask(port, data, deadline, until=None):
    """Send ``data`` to 127.0.0.1:``port``; what comes back before the daemon closes, ``until`` is seen
    (bytes) or ``deadline`` seconds pass. Raises ``Unhealthy`` naming the port when nothing answers in time."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=deadline)
    except socket.timeout:
        raise Unhealthy("127.0.0.1:%d did not accept within %gs" % (port, deadline))
    except OSError:
        raise Unhealthy("nothing listens on 127.0.0.1:%d" % port)
    answer = b""
    with sock:
        sock.settimeout(deadline)
        try:
            sock.sendall(data)
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
                if until and until in answer:
                    break
        except socket.timeout:
            if not answer:
                raise Unhealthy("127.0.0.1:%d accepted but did not answer within %gs (hung?)" % (port, deadline))
        except OSError as exc:
            if not answer:
                raise Unhealthy("127.0.0.1:%d: %s" % (port, exc.strerror or exc))
    return answer


def status_line(answer):
    return answer.split(b"\r\n", 1)[0].decode("latin-1", "replace")


def probe_egress(port, deadline, chained=False):
    if chained:
        # Transparent mode: a connection with no original destination is closed at once by a live egress.
        ask(port, EGRESS_PROBE, deadline)
        return
    answer = ask(port, EGRESS_PROBE, deadline, until=b"\r\n\r\n")
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    if not answer.startswith(b"HTTP/1.1 403") or b"\r\nx-bottle-egress-rule: health" not in head:
        raise Unhealthy("egress on 127.0.0.1:%d answered %r, not the firewall's 403 to a health probe"
                        % (port, status_line(answer)))


def probe_git_gate(port, deadline):
    body = b"git-upload-pack /bottle-health-probe.git\0host=127.0.0.1\0"
    answer = ask(port, b"%04x" % (len(body) + 4) + body, deadline)
    if answer[4:7] != b"ERR":
        raise Unhealthy("git-gate on 127.0.0.1:%d answered %r, not a git protocol ERR line" % (port, answer[:40]))


def probe_supervise(port, deadline):
    request = (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
               b"Accept: application/json, text/event-stream\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
               % (port, len(MCP_PING))) + MCP_PING
    answer = ask(port, request, deadline)
    if not answer.startswith(b"HTTP/1.1 200") or b'"result"' not in answer:
        raise Unhealthy("supervise on 127.0.0.1:%d did not answer the MCP ping: %r" % (port, status_line(answer)))


def probe_http(port, deadline):
    answer = ask(port, b"GET /bottle-health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", deadline,
                 until=b"\r\n")
    if not answer.startswith(b"HTTP/1."):
        raise Unhealthy("127.0.0.1:%d answered %r, not HTTP" % (port, status_line(answer)))


PROBES = {"egress": probe_egress, "git-gate": probe_git_gate, "supervise": probe_supervise}


def check(name, names=()):
    if not os.path.exists(INSTALLED.get(name, "/nonexistent")):
        return "not installed"
    if name == "pipelock":
        proc = subprocess.run([PIPELOCK_BIN, "healthcheck", "--addr", "127.0.0.1:8888"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=DEADLINE,
                              check=False)
        return "healthy" if proc.returncode == 0 else "unhealthy: " + (proc.stdout.strip() or "healthcheck failed")
    chained = name == "egress" and "pipelock" in names
    try:
        if chained:
            probe_egress(EGRESS_CHAIN_PORT, DEADLINE, chained=True)
        else:
            PROBES[name](PORTS[name], DEADLINE)
        for each in EXTRA_PORTS.get(name, ()):
            probe_http(each, DEADLINE)
    except Unhealthy as exc:
        return "unhealthy: %s" % exc
    return "healthy"


def check_all(names):
    """Every daemon checked at once (each within DEADLINE): ``{name: "healthy" | "unhealthy: ..." | ...}``."""
    report = {}

    def one(name):
        try:
            report[name] = check(name, names)
        except (OSError, subprocess.SubprocessError) as exc:
            report[name] = "unhealthy: %s" % exc
    threads = [threading.Thread(target=one, args=(name,), daemon=True) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE + 1)
    return {name: report.get(name, "unhealthy: no answer within %gs" % DEADLINE) for name in names}


def main(argv):
    names = [n.strip() for n in os.environ.get("BOTTLE_DAEMONS", "egress").split(",") if n.strip()]
    report = check_all(names)
    if "--json" in argv:
        print(json.dumps(report, sort_keys=True))
    else:
        for name, state in report.items():
            print("%s: %s" % (name, state))
    return 0 if report and all(v == "healthy" for v in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
