#!/usr/bin/env python
"""What the proxy chain costs, side by side with a direct baseline, in one run.

Three clients talk to the same test server (our own container, on our own network):
  direct  a container on the test network itself, no proxy (the baseline)
  plain   a bottle's agent to an allowlisted host: agent -> pipelock (TLS intercepted) -> egress (passthrough)
  route   the same agent to a route host: pipelock intercepts, egress intercepts again and adds the token
Figures: p50/p99 of 200 small HTTPS requests over one keep-alive connection, throughput of a
100 MB download, time to the first server-sent event. Printed as a table with the ratios.
Targets (issue): p50 added <= 5 ms, p99 added <= 20 ms, throughput >= 50% of direct,
first SSE event <= 20 ms later than direct.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
INVENTORY = os.path.join(ROOT, "molecule", "default", "inventory.yml")
NET, SERVER, SUBNET = "bb-testnet", "bb-testnet-server", "172.28.253.0/24"
SLUG = "probe-bench"
AGENT = "bb-%s-agent" % SLUG
BASELINE = "bb-bench-direct"
REQUESTS = 200
DOWNLOAD = 100 * 1024 * 1024


def sh(argv, check=True, **kw):
    return subprocess.run(argv, check=check, capture_output=True, text=True, cwd=ROOT, **kw)


def setup(ephemeral):
    if sh(["docker", "network", "inspect", NET], check=False).returncode != 0:
        sh(["docker", "network", "create", "--subnet", SUBNET, "--label", "io.botbottle.test=1", NET])
    if sh(["docker", "inspect", SERVER], check=False).returncode != 0:
        aliases = []
        for host in ("allowed.bottle.test", "other.bottle.test", "api.bottle.test", "blocked.bottle.test"):
            aliases += ["--network-alias", host]
        sh(["docker", "run", "-d", "--name", SERVER, "--label", "io.botbottle.test=1", "--network", NET]
           + aliases + ["botbottle/testnet:latest"])
    for _attempt in range(50):
        ca = sh(["docker", "exec", SERVER, "cat", "/srv/testnet/ca.pem"], check=False)
        if "BEGIN CERTIFICATE" in ca.stdout:
            break
    with open(os.path.join(ephemeral, "testnet-ca.pem"), "w") as handle:
        handle.write(ca.stdout)
    env = dict(os.environ, MOLECULE_EPHEMERAL_DIRECTORY=ephemeral, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    launch = sh([PLAYBOOK, "playbooks/bottle.yml", "-i", INVENTORY, "-e", "agent=probe", "-e", "bottle_instance=bench"],
                check=False, env=env)
    if launch.returncode != 0:
        sys.exit("launching the bench bottle failed:\n" + launch.stdout[-3000:])
    sh(["docker", "rm", "-f", BASELINE], check=False)
    sh(["docker", "run", "-d", "--name", BASELINE, "--network", NET, "botbottle/agent:latest"])
    sh(["docker", "cp", os.path.join(ephemeral, "testnet-ca.pem"), BASELINE + ":/tmp/testnet-ca.pem"])
    return env


def teardown(env):
    sh(["docker", "rm", "-f", BASELINE], check=False)
    sh([PLAYBOOK, "playbooks/teardown.yml", "-i", INVENTORY, "-e", "bottle=" + SLUG], check=False, env=env)


def run_in(container, script):
    proc = sh(["docker", "exec", "-u", "agent", container, "bash", "-c", script], check=False)
    if proc.returncode != 0:
        raise RuntimeError("%s: %s" % (container, proc.stderr.strip() or proc.stdout.strip()))
    return proc.stdout


def measure(container, host, curl_opts):
    base = "curl -s %s" % curl_opts
    # One curl, 200 URLs: curl reuses the connection (and the proxy tunnel) between them.
    times = [float(t) for t in run_in(container, "%s -o /dev/null -w '%%{time_total}\\n' "
                                      "'https://%s/v1/bench/[1-%d]'" % (base, host, REQUESTS)).split()]
    speed = float(run_in(container, "%s -o /dev/null -w '%%{speed_download}' 'https://%s/bytes?n=%d'"
                         % (base, host, DOWNLOAD)))
    # The event stream ends by closing the connection, which curl reports as exit 18 or 56:
    # the figure is the time to its first byte, so only a missing figure is a failure.
    first = [float(run_in(container, "%s -N -o /dev/null -w '%%{time_starttransfer}' "
                          "'https://%s/sse?events=1&interval_ms=0'; case $? in 0|18|56) ;; *) exit 1;; esac"
                          % (base, host)))
             for _run in range(5)]
    if min(first) <= 0:
        raise RuntimeError("%s: no server-sent event from %s" % (container, host))
    times.sort()
    return {
        "p50_ms": statistics.median(times) * 1000,
        "p99_ms": times[int(len(times) * 0.99) - 1] * 1000,
        "mb_s": speed / 1e6,
        "sse_first_ms": statistics.median(first) * 1000,
    }


def main():
    ephemeral = tempfile.mkdtemp(prefix="bb-bench-chain-")
    env = setup(ephemeral)
    try:
        results = {
            "direct": measure(BASELINE, "allowed.bottle.test", "--cacert /tmp/testnet-ca.pem"),
            "plain": measure(AGENT, "allowed.bottle.test", ""),
            "route": measure(AGENT, "api.bottle.test", "-H 'Authorization: Bearer placeholder'"),
        }
    finally:
        teardown(env)
    d = results["direct"]
    print("chain cost (%d requests, %d MB download, %d cores)" % (REQUESTS, DOWNLOAD // 2**20, os.cpu_count()))
    print("  %-8s %10s %10s %12s %14s" % ("client", "p50 ms", "p99 ms", "MB/s", "1st SSE ms"))
    for name, r in results.items():
        print("  %-8s %10.2f %10.2f %12.1f %14.2f" % (name, r["p50_ms"], r["p99_ms"], r["mb_s"], r["sse_first_ms"]))
    for name in ("plain", "route"):
        r = results[name]
        print("  %-8s added p50 %+.2f ms (aim <= 5), p99 %+.2f ms (aim <= 20), throughput %.0f%% of direct "
              "(aim >= 50%%), 1st SSE %+.2f ms (aim <= 20)" % (
                  name, r["p50_ms"] - d["p50_ms"], r["p99_ms"] - d["p99_ms"], 100 * r["mb_s"] / d["mb_s"],
                  r["sse_first_ms"] - d["sse_first_ms"]))
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
