#!/usr/bin/env python
"""What the bottle's way out costs, side by side with a direct baseline, in one run.

Clients talk to the same test server (our own container, on our own network; nothing else):
  direct    a container on the test network itself, no proxy (the baseline)
  plain     a bottle's agent to an allowlisted host: one interception, in egress (the default path)
  route     the same agent to a route host: egress scans, then adds the route's credential
  pipelock  a bottle with the optional pipelock hop in front of egress (only where its image exists)
Requests use HTTP/1.1, as Claude Code's HTTP client (Node's undici) does; one more row measures an
HTTP/2 client (curl's default): mitmproxy never reuses an upstream HTTP/1.1 connection for an HTTP/2
client (a deliberate choice in its http layer: "h2_to_h1"), so against the test server, which speaks
HTTP/1.1 only, every such request opens a new upstream TLS connection; upstreams that speak HTTP/2 (the
model APIs, package registries, code hosts) are multiplexed instead.
Also the wall time of one scripted agent turn by each agent kind's real CLI - Claude Code (claude -p) and
Codex (codex exec, its model API a WebSocket) - with the test server playing the model API, in a bottle
against the same turn in a plain container of the same image on the test network (aim <= 1.2x), and the
size of each kind's agent image.
Figures: p50/p99 of small HTTPS requests over one keep-alive connection, throughput of a download,
time to the first server-sent event (on a new connection, and on a warm one), egress's DLP scan of a 1 MiB JSON body (bench/dlp_scan.py run
inside the bundle with egress's own Python), and the RSS of each bundle daemon idle and under load.
Aims (issue "One hop out"): p50 added <= 3 ms, p99 <= 10 ms, route no slower than plain,
download >= 150 MB/s, first SSE <= +10 ms, 1 MiB scan <= 15 ms.

--compare-image IMAGE: a second bottle whose bundle is IMAGE (e.g. one with an older egress addon)
is measured in the same run (plain, route, DLP scan, RSS), printed beside the first.
--smoke: the same code path with tiny sizes (a few requests, a 1 MB download), for `make test`.
Every wait has a deadline; everything the benchmark starts is removed at the end, also on failure.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The set-up shared with bench/tools.py (soak.py reaches it through this module: chain.sh, chain.BenchError).
from testbed import INVENTORY_HEAD, ROOT, BenchError, Testbed, sh  # noqa: E402

NET, SERVER, SUBNET = "bb-bench-net", "bb-bench-server", "172.28.248.0/24"
HOSTS = ("allowed.bottle.test", "api.bottle.test", "api.anthropic.com", "api.openai.com")
BASELINE = "bb-bench-direct"
CODEX_BASELINE = "bb-bench-direct-codex"
AGENT_IMAGES = {"claude-code": "botbottle/agent:latest", "codex": "botbottle/agent-codex:latest"}
CODEX_SCENARIO = os.path.join(ROOT, "extensions", "molecule", "agent", "scenarios", "codex-fetch.json")
BUNDLE_IMAGE = "botbottle/bundle:latest"
PIPELOCK_BUNDLE_IMAGE = "botbottle/bundle-pipelock:latest"
TESTNET_IMAGE = "botbottle/testnet:latest"
TOKEN = "bbtok-bench-0f1e2d3c4b5a69788796"

# The benchmark's own inventory: no git-gate, no supervise, nothing but the way out.
INVENTORY = INVENTORY_HEAD + """    bb_bench_token: %(token)s
    OPENAI_API_KEY: bench-openai-key-not-real
    bottle_agents:
      bench:
        description: Benchmark client; no model is called.
        policy: bench
      benchcodex:
        description: The same with Codex (its agent image, OpenAI's API from the test server).
        kind: codex
        policy: bench
    bottle_policies:
      bench:
        # The model API is the test server's scripted stand-in (images/testnet/model.py).
        model: {credential: api_key}
        allowed_domains: [allowed.bottle.test]
        env:
          CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1"
        firewall:
          requests_per_minute: 1000000
        pipelock:
          max_response_bytes: 134217728
          max_requests_per_minute: 1000000
        egress:
          routes:
            - host: api.bottle.test
              auth: {scheme: Bearer, token_ref: bb_bench_token}
"""


class Bench(Testbed):
    def __init__(self, smoke):
        archive_root = os.path.join(tempfile.gettempdir(), "bb-bench-archive")
        super().__init__("bb-bench-chain-", ["-e", "bottle_archive_root=" + archive_root])
        self.smoke = smoke
        self.requests = 5 if smoke else 200
        self.download = (1 if smoke else 100) * 1024 * 1024

    # -- set-up ------------------------------------------------------------------------------
    def setup(self):
        self.network(NET, SUBNET)
        self.server(SERVER, TESTNET_IMAGE, NET, HOSTS)
        self.ca_file = self.server_ca(SERVER, "/srv/testnet/ca.pem", "testnet-ca.pem")
        self.inventory = self.write("inventory.yml", INVENTORY % {"token": TOKEN, "net": NET, "subnet": SUBNET,
                                                                  "ca": self.ca_file})
        for name, image in ((BASELINE, AGENT_IMAGES["claude-code"]), (CODEX_BASELINE, AGENT_IMAGES["codex"])):
            self.plain(name, image, NET)
            sh(["docker", "cp", self.ca_file, name + ":/tmp/testnet-ca.pem"])

    def launch(self, instance, *extra, agent="bench"):
        return self.launch_bottle(self.inventory, agent, instance, extra)

    # -- measurements ------------------------------------------------------------------------
    @staticmethod
    def run_in(container, script, timeout=600):
        proc = sh(["docker", "exec", "-u", "agent", container, "bash", "-c", script], check=False, timeout=timeout)
        if proc.returncode != 0:
            raise BenchError("%s: %s" % (container, proc.stderr.strip() or proc.stdout.strip()))
        return proc.stdout

    def measure(self, container, host, curl_opts):
        base = "curl -s --max-time 300 %s" % curl_opts
        # One curl, N URLs: curl reuses the connection (and the proxy tunnel) between them.
        out = self.run_in(container, "%s -o /dev/null -w '%%{http_code} %%{time_total}\\n' "
                                     "'https://%s/v1/bench/[1-%d]'" % (base, host, self.requests))
        codes = [line.split()[0] for line in out.splitlines()]
        if set(codes) != {"200"}:
            raise BenchError("%s -> %s answered %s" % (container, host, sorted(set(codes))))
        times = sorted(float(line.split()[1]) for line in out.splitlines())
        speed = float(self.run_in(container, "%s -o /dev/null -w '%%{speed_download}' 'https://%s/bytes?n=%d'"
                                  % (base, host, self.download)))
        # The event stream ends by closing the connection (curl exit 18 or 56): the figure is the
        # time to its first byte, so only a missing figure is a failure.
        first = [float(self.run_in(container, "%s -N -o /dev/null -w '%%{time_starttransfer}' "
                                   "'https://%s/sse?events=1&interval_ms=0'; case $? in 0|18|56) ;; *) exit 1;; esac"
                                   % (base, host)))
                 for _run in range(3 if self.smoke else 7)]
        if min(first) <= 0:
            raise BenchError("%s: no server-sent event from %s" % (container, host))
        # The same on a warm connection (a request first, then the stream on the same tunnel): what an
        # agent waits for on each model call, its HTTP client keeping the connection alive.
        warm = []
        for _run in range(3 if self.smoke else 7):
            out = self.run_in(container, "%s -N -o /dev/null -w '%%{time_starttransfer}\\n' 'https://%s/v1/warm' "
                                         "'https://%s/sse?events=1&interval_ms=0'; case $? in 0|18|56) ;; *) exit 1;; esac"
                              % (base, host, host))
            warm.append(float(out.split()[-1]))
        return {
            "p50_ms": statistics.median(times) * 1000,
            "p99_ms": times[max(0, int(len(times) * 0.99) - 1)] * 1000,
            "mb_s": speed / 1e6,
            "sse_first_ms": statistics.median(first) * 1000,
            "sse_warm_ms": statistics.median(warm) * 1000,
        }

    @staticmethod
    def daemon_rss(bundle):
        """RSS in MB of each daemon process group of the bundle (by its command line)."""
        script = (r'for p in /proc/[0-9]*; do c=$(tr "\0" " " < $p/cmdline 2>/dev/null); '
                  r'r=$(awk "/^VmRSS/ {print \$2}" $p/status 2>/dev/null); [ -n "$r" ] && echo "$r $c"; done')
        out = sh(["docker", "exec", bundle, "sh", "-c", script], check=False).stdout
        rss = {}
        for line in out.splitlines():
            kb, _sep, cmd = line.partition(" ")
            name = ("egress" if "mitmdump" in cmd else "pipelock" if "pipelock" in cmd else
                    "git-gate" if "git-gate" in cmd else "supervise" if "supervise" in cmd else
                    "bottle-init" if "bottle-init" in cmd else None)
            if name:
                rss[name] = rss.get(name, 0) + int(kb) / 1024
        return rss

    def agent_turn(self, container, baseline=False):
        """Wall time of one scripted agent turn (model answer -> Bash tool call -> tool result -> answer)
        by the real Claude Code: median of a few runs."""
        sh(["docker", "exec", SERVER, "cp", "/srv/testnet/scenarios/fetch.json", "/srv/testnet/scenario.json"])
        prefix = ["docker", "exec", "-u", "agent", "-w", "/home/agent/work"]
        if baseline:
            prefix += ["-e", "ANTHROPIC_API_KEY=bench-model-key-not-real", "-e", "NODE_EXTRA_CA_CERTS=/tmp/testnet-ca.pem",
                       "-e", "CURL_CA_BUNDLE=/tmp/testnet-ca.pem", "-e", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1"]
        times = []
        for _run in range(1 if self.smoke else 5):
            start = time.monotonic()
            proc = sh(prefix + [container, "timeout", "120", "claude", "-p", "fetch the page", "--output-format", "json",
                                "--allowedTools", "Bash"], check=False, timeout=180)
            elapsed = time.monotonic() - start
            if proc.returncode != 0 or "The page https://allowed.bottle.test/hello answered" not in proc.stdout:
                raise BenchError("%s: the scripted turn did not complete (rc %d): %s %s"
                                 % (container, proc.returncode, proc.stdout[-600:], proc.stderr[-600:]))
            times.append(elapsed)
        return statistics.median(times)

    def codex_turn(self, container, baseline=False):
        """The same turn by the real Codex (codex exec: model over a WebSocket -> exec -> model), median of a
        few runs. The plain container gets the bottle's own ~/.codex/config.toml (its MCP servers left out: no
        supervise there), the key itself and the test CA, and no proxy."""
        sh(["docker", "cp", CODEX_SCENARIO, SERVER + ":/srv/testnet/scenario.json"])
        prefix = ["docker", "exec", "-u", "agent", "-w", "/home/agent/work"]
        if baseline:
            prefix += ["-e", "OPENAI_API_KEY=bench-openai-key-not-real", "-e", "SSL_CERT_FILE=/tmp/testnet-ca.pem",
                       "-e", "CURL_CA_BUNDLE=/tmp/testnet-ca.pem"]
        times = []
        for _run in range(1 if self.smoke else 5):
            start = time.monotonic()
            proc = sh(prefix + [container, "timeout", "120", "codex", "exec", "--json", "--skip-git-repo-check",
                                "fetch the page"], check=False, timeout=180, stdin=subprocess.DEVNULL)
            elapsed = time.monotonic() - start
            if proc.returncode != 0 or "The page https://allowed.bottle.test/hello answered" not in proc.stdout:
                raise BenchError("%s: the scripted codex turn did not complete (rc %d): %s %s"
                                 % (container, proc.returncode, proc.stdout[-600:], proc.stderr[-600:]))
            times.append(elapsed)
        return statistics.median(times)

    def codex_baseline_config(self, bottle_agent):
        """The bottle agent's ~/.codex/config.toml without its [mcp_servers.*] tables, into the plain container."""
        text = sh(["docker", "exec", "-u", "agent", bottle_agent, "cat", "/home/agent/.codex/config.toml"]).stdout
        text = text.split("\n[mcp_servers", 1)[0]
        path = os.path.join(self.tmp, "codex-config.toml")
        with open(path, "w") as handle:
            handle.write(text)
        sh(["docker", "exec", CODEX_BASELINE, "mkdir", "-p", "/home/agent/.codex"])
        sh(["docker", "cp", path, CODEX_BASELINE + ":/home/agent/.codex/config.toml"])
        sh(["docker", "exec", "-u", "root", CODEX_BASELINE, "chown", "-R", "agent:agent", "/home/agent/.codex"])

    @staticmethod
    def image_sizes():
        """Each kind's agent image, MB on disk (docker image inspect .Size); None where it is not built."""
        sizes = {}
        for kind, image in AGENT_IMAGES.items():
            proc = sh(["docker", "image", "inspect", "--format", "{{.Size}}", image], check=False)
            sizes[kind] = int(proc.stdout.strip()) / 1e6 if proc.returncode == 0 else None
        return sizes

    def dlp_scan(self, bundle):
        """bench/dlp_scan.py inside the bundle, with egress's Python, engine and rules."""
        sh(["docker", "cp", os.path.join(ROOT, "bench", "dlp_scan.py"), bundle + ":/tmp/dlp_scan.py"])
        argv = ["docker", "exec", "-w", "/opt/egress", bundle, "/opt/egress/bin/python", "/tmp/dlp_scan.py", "--json"]
        proc = sh(argv + (["--smoke"] if self.smoke else []), timeout=300)
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: the whole code path in about a minute")
    parser.add_argument("--image", metavar="IMAGE", help="the bundle image of the measured bottle (default: the role's)")
    parser.add_argument("--compare-image", metavar="IMAGE",
                        help="also measure a bottle whose bundle is IMAGE (plain, route, scan, RSS) in the same run")
    args = parser.parse_args()
    bench = Bench(args.smoke)
    results, rss, notes = {}, {}, []
    try:
        bench.setup()
        slug = bench.launch("default", *(["-e", "bottle_bundle_image=" + args.image] if args.image else []))
        agent, bundle = "bb-%s-agent" % slug, "bb-%s-bundle" % slug
        rss["idle"] = bench.daemon_rss(bundle)
        results["direct"] = bench.measure(BASELINE, "allowed.bottle.test", "--http1.1 --cacert /tmp/testnet-ca.pem")
        results["plain"] = bench.measure(agent, "allowed.bottle.test", "--http1.1")
        results["route"] = bench.measure(agent, "api.bottle.test", "--http1.1 -H 'Authorization: Bearer placeholder'")
        results["plain h2"] = bench.measure(agent, "allowed.bottle.test", "--http2")
        rss["after load"] = bench.daemon_rss(bundle)
        scan = bench.dlp_scan(bundle)
        compared = None
        if args.compare_image:
            other = bench.launch("compare", "-e", "bottle_bundle_image=" + args.compare_image)
            other_agent, other_bundle = "bb-%s-agent" % other, "bb-%s-bundle" % other
            rss["compare idle"] = bench.daemon_rss(other_bundle)
            # Interleaved with the first bottle's rows again, so both saw the same machine.
            for name, host, opts in (("plain", "allowed.bottle.test", "--http1.1"),
                                     ("route", "api.bottle.test", "--http1.1 -H 'Authorization: Bearer placeholder'")):
                results[name + " cmp"] = bench.measure(other_agent, host, opts)
                results[name + " again"] = bench.measure(agent, host, opts)
            rss["compare after load"] = bench.daemon_rss(other_bundle)
            compared = bench.dlp_scan(other_bundle)
        turn = {"plain container": bench.agent_turn(BASELINE, baseline=True), "bottle": bench.agent_turn(agent)}
        codex_slug = bench.launch("default", agent="benchcodex")
        bench.codex_baseline_config("bb-%s-agent" % codex_slug)
        turn["codex plain container"] = bench.codex_turn(CODEX_BASELINE, baseline=True)
        turn["codex bottle"] = bench.codex_turn("bb-%s-agent" % codex_slug)
        sizes = bench.image_sizes()
        if sh(["docker", "image", "inspect", PIPELOCK_BUNDLE_IMAGE], check=False).returncode == 0:
            pl = bench.launch("pipelock", "-e", "bottle_pipelock=true")
            results["pipelock"] = bench.measure("bb-%s-agent" % pl, "allowed.bottle.test", "--http1.1")
            rss["pipelock chain"] = bench.daemon_rss("bb-%s-bundle" % pl)
        else:
            notes.append("pipelock chain: NOT MEASURED (no %s on this machine: scripts/seed-images.sh --pipelock "
                         "says how to provide one)" % PIPELOCK_BUNDLE_IMAGE)
    except BenchError as exc:
        print("bench/chain.py: %s" % exc, file=sys.stderr)
        bench.teardown()
        return 1
    bench.teardown()

    d = results["direct"]
    print("chain cost (%d requests, %d MB download, %d cores%s)"
          % (bench.requests, bench.download // 2**20, os.cpu_count(), ", SMOKE: figures not meaningful" if args.smoke else ""))
    print("  %-9s %10s %10s %12s %16s %16s" % ("client", "p50 ms", "p99 ms", "MB/s", "1st SSE cold ms",
                                               "1st SSE warm ms"))
    for name, r in results.items():
        print("  %-9s %10.2f %10.2f %12.1f %16.2f %16.2f" % (name, r["p50_ms"], r["p99_ms"], r["mb_s"], r["sse_first_ms"],
                                                             r["sse_warm_ms"]))
    for name in [n for n in results if n != "direct"]:
        r = results[name]
        print("  %-9s added p50 %+.2f ms (aim <= 3), p99 %+.2f ms (aim <= 10), download %.0f MB/s (aim >= 150), "
              "1st SSE %+.2f ms on a warm connection (aim <= 10), %+.2f ms on a new one"
              % (name, r["p50_ms"] - d["p50_ms"], r["p99_ms"] - d["p99_ms"], r["mb_s"],
                 r["sse_warm_ms"] - d["sse_warm_ms"], r["sse_first_ms"] - d["sse_first_ms"]))
    print("  route vs plain: p50 %+.2f ms (aim <= 0 within noise)" % (results["route"]["p50_ms"] - results["plain"]["p50_ms"]))
    print("  (plain h2: an HTTP/2 client against the HTTP/1.1-only test server: a new upstream connection per request)")
    print("  DLP scan of a 1 MiB JSON body in the bundle: p50 %.2f ms, p99 %.2f ms (aim <= 15); json.loads alone %.2f ms"
          % (scan["scan_1mib_p50_ms"], scan["scan_1mib_p99_ms"], scan["baseline_json_loads_p50_ms"]))
    if compared is not None:
        print("  compared with %s (rows 'cmp'; 'again': this bundle measured right after it):" % args.compare_image)
        for name in ("plain", "route"):
            mine, again, other = results[name], results[name + " again"], results[name + " cmp"]
            print("    %-5s added p50 %+.2f ms and %+.2f ms here, %+.2f ms there; download %.0f and %.0f MB/s here, "
                  "%.0f MB/s there" % (name, mine["p50_ms"] - d["p50_ms"], again["p50_ms"] - d["p50_ms"],
                                       other["p50_ms"] - d["p50_ms"], mine["mb_s"], again["mb_s"], other["mb_s"]))
        print("    DLP scan of 1 MiB there: p50 %.2f ms" % compared["scan_1mib_p50_ms"])
    print("  one scripted agent turn (claude -p: model -> Bash -> model): %.2f s in a bottle, %.2f s in a plain container "
          "= %.2fx (aim <= 1.2x)" % (turn["bottle"], turn["plain container"], turn["bottle"] / turn["plain container"]))
    print("  one scripted agent turn (codex exec: model over a WebSocket -> exec -> model): %.2f s in a bottle, %.2f s in "
          "a plain container = %.2fx (aim <= 1.2x)" % (turn["codex bottle"], turn["codex plain container"],
                                                       turn["codex bottle"] / turn["codex plain container"]))
    print("  agent images: %s" % ", ".join("%s %s" % (kind, "%.0f MB" % mb if mb else "not built")
                                           for kind, mb in sizes.items()))
    for phase, table in rss.items():
        print("  RSS %-15s %s" % (phase, ", ".join("%s %.0f MB" % kv for kv in sorted(table.items()))))
    for note in notes:
        print("  " + note)
    print(json.dumps({"results": results, "dlp_scan": scan, "rss_mb": rss, "agent_turn_s": turn, "notes": notes,
                      "agent_image_mb": sizes,
                      "compared": {"image": args.compare_image, "dlp_scan": compared} if compared else None},
                     sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
