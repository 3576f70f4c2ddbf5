#!/usr/bin/env python
"""Does a bottle run for days? A bounded soak through one bottle, egress's memory and descriptors watched.

One bottle (bench/chain.py's set-up: the test server as allowed/blocked.bottle.test on our own network,
nothing else) with WebSocket allowed to allowed.bottle.test and the audit rotating small, so that the
run rotates it many times. bench/soak_client.py, inside the agent, sends a fixed mix through egress:
small GETs, 16 KiB POST bodies, downloads, server-sent event streams, WebSocket sessions (10 messages
each), requests to a host off the allowlist and POSTs carrying a provider token (DLP), in three phases
(warm-up, to the middle, to the end). After each phase, with the agent's connections closed, it reads
egress's RSS and open file descriptors in the bundle.

Figures (aims of issue 23): RSS growth from warm-up to end <= 10%, no growth in descriptors; the audit
bytes and lines per million requests, the disk its rotated files take, and whether every decision is
still there: the audit, read across its rotated files by the collection's own reader
(module_utils/audit_log.py), must count exactly the requests the client made, by host and by rule.
Also the per-line cost of the audit writer with rotation, side by side with the writer before
rotation (git show BASELINE_REV) and with no rotation reached, and the bundle's docker log per million
requests (its stdout carries every audit line too).

--smoke: the same path with a few thousand requests (part of make bench-smoke, under a minute);
--requests N sets the full run's size (default 300000). Everything it starts is removed at the end.
"""

import argparse
import glob
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chain  # noqa: E402  (the bottle, the test server and their teardown: one set-up for the benchmarks)

ROOT = chain.ROOT
CLIENT = os.path.join(ROOT, "bench", "soak_client.py")
WRITER = os.path.join(ROOT, "images", "bundle", "bottle_firewall", "audit.py")
READER = os.path.join(ROOT, "plugins", "module_utils", "audit_log.py")
BASELINE_REV = "854ff8a"  # the audit writer before numbered rotation (one .1 file, a stat a line)
STATE_ROOT = os.path.expanduser("~/.bot-bottle/state")
CHAIN_FIREWALL = "        firewall:\n          requests_per_minute: 1000000\n"
SOAK_FIREWALL = ("        firewall:\n          requests_per_minute: 1000000\n"
                 "          websocket_hosts: [allowed.bottle.test]\n"
                 "          audit_rotate_bytes: %d\n          audit_keep: 0\n")


# What the loaded files import: the collection's module_utils (the checkout, linked by scripts/collection-link.sh)
# and the bundle's shared formats (images/bundle/bundle_format.py, as the image has them beside the package).
for _path in (os.path.join(ROOT, ".build", "collections"), os.path.join(ROOT, "images", "bundle")):
    if _path not in sys.path:
        sys.path.insert(0, _path)


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Names of this benchmark's own (chain.py's are in use by a chain or tools run at the same time).
chain.NET, chain.SERVER, chain.BASELINE, chain.SUBNET = "bb-soak-net", "bb-soak-server", "bb-soak-direct", "172.28.245.0/24"


class Soak(chain.Bench):
    def __init__(self, smoke, requests, rotate_bytes, download_bytes):
        super().__init__(smoke)
        self.total = requests
        self.rotate_bytes = rotate_bytes
        self.download_bytes = download_bytes

    def setup(self):
        super().setup()
        if CHAIN_FIREWALL not in chain.INVENTORY:
            raise chain.BenchError("bench/chain.py's inventory no longer has the firewall block soak.py extends")
        with open(self.inventory, "w") as handle:
            handle.write(chain.INVENTORY.replace(CHAIN_FIREWALL, SOAK_FIREWALL % self.rotate_bytes)
                         % {"token": chain.TOKEN, "net": chain.NET, "subnet": chain.SUBNET, "ca": self.ca_file})
        # The test server records every request with its body: not for a soak of GBs (its disk).
        chain.sh(["docker", "exec", chain.SERVER, "ln", "-sf", "/dev/null", "/var/log/testnet/requests.jsonl"])

    def egress(self, bundle):
        """(RSS MB, open descriptors) of egress's processes in the bundle."""
        script = (r'for p in /proc/[0-9]*; do case "$(tr "\0" " " < $p/cmdline 2>/dev/null)" in *mitmdump*) '
                  r'echo "$(awk "/^VmRSS/ {print \$2}" $p/status) $(ls $p/fd | wc -l)";; esac; done')
        out = chain.sh(["docker", "exec", bundle, "sh", "-c", script]).stdout.split()
        if not out:
            raise chain.BenchError("no egress process in %s" % bundle)
        rss_kb, fds = sum(int(v) for v in out[0::2]), sum(int(v) for v in out[1::2])
        return rss_kb / 1024.0, fds

    def load(self, agent, start, count):
        argv = ["docker", "exec", "-u", "agent", agent, "python3", "/tmp/soak_client.py", "--start", str(start),
                "--count", str(count), "--download-bytes", str(self.download_bytes)]
        proc = chain.sh(argv, timeout=3600)
        return json.loads(proc.stdout.strip().splitlines()[-1])


def writer_cost(lines):
    """Seconds a line of the audit writer (file and a /dev/null stream, as egress writes both), per variant."""
    variants = {}
    new = load(WRITER, "soak_audit_new")
    base_src = subprocess.run(["git", "show", "%s:images/bundle/bottle_firewall/audit.py" % BASELINE_REV],
                              cwd=ROOT, capture_output=True, text=True, check=False)
    makers = {"rotating (1 MiB files, 4 kept)": lambda path, sink: new.Audit(path, sink, 1024 * 1024, 4),
              "never rotating (64 MiB)": new.Audit}
    if base_src.returncode == 0:
        folder = tempfile.mkdtemp(prefix="bb-soak-old-")
        with open(os.path.join(folder, "old_audit.py"), "w") as handle:
            handle.write(base_src.stdout)
        old = load(os.path.join(folder, "old_audit.py"), "soak_audit_old")
        makers["before (a stat a line, one .1)"] = lambda path, sink: old.Audit(path, sink, 1024 * 1024)
    for _round in range(2):  # interleaved twice, the better of the two: less noise from a shared machine
        for name, make in makers.items():
            with tempfile.TemporaryDirectory(prefix="bb-soak-writer-") as folder, open(os.devnull, "w") as sink:
                audit = make(os.path.join(folder, "egress.jsonl"), sink)
                began = time.perf_counter()
                for n in range(lines):
                    audit.record("request", "allowed.bottle.test", 443, "GET", "/v1/soak/%d?q=x" % n, nbytes=0,
                                 flow="f%d" % n)
                took = (time.perf_counter() - began) / lines
                variants[name] = min(variants.get(name, took), took)
    return variants


def audit_figures(state_dir, requests):
    reader = load(READER, "soak_audit_log")
    files = reader.egress_files(state_dir)
    sizes = [os.path.getsize(os.path.join(state_dir, rel)) for rel in files]
    lines = 0
    for rel in files:
        with open(os.path.join(state_dir, rel), "rb") as handle:
            lines += sum(1 for _line in handle)
    rows = {row["host"]: row for row in reader.firewall_by_host(state_dir, max_bytes=None)}
    return {"files": len(files), "bytes": sum(sizes), "largest": max(sizes) if sizes else 0, "lines": lines,
            "bytes_per_million": sum(sizes) * 1e6 / requests, "lines_per_request": lines / requests, "rows": rows}


def check_counts(sent, rows):
    """Every decision kept: the audit's counts (across rotated files) equal what the client did."""
    problems = []
    allowed = sum(sent.get(k, {}).get(s, 0) for k, s in (("get", "200"), ("post", "200"), ("download", "200"),
                                                         ("sse", "200"), ("websocket", "101")))
    host = rows.get("allowed.bottle.test", {})
    dlp = sent.get("dlp", {}).get("403", 0)
    if host.get("allowed") != allowed or host.get("refused") != dlp or host.get("failed"):
        problems.append("allowed.bottle.test: audit allowed %s refused %s failed %s, the client had %d allowed and "
                        "%d DLP refusals" % (host.get("allowed"), host.get("refused"), host.get("failed"), allowed, dlp))
    blocked = rows.get("blocked.bottle.test", {})
    refused = sent.get("refused", {}).get("403", 0)
    if blocked.get("refused") != refused or blocked.get("rules") != {"allowlist": refused}:
        problems.append("blocked.bottle.test: audit refused %s (%s), the client had %d refusals"
                        % (blocked.get("refused"), blocked.get("rules"), refused))
    return problems


def merge(into, more):
    for kind, table in more["kinds"].items():
        for status, n in table.items():
            into["kinds"].setdefault(kind, {})[status] = into["kinds"].get(kind, {}).get(status, 0) + n
    into["up"] += more["up"]
    into["down"] += more["down"]
    into["errors"] += more["errors"]
    into["seconds"] += more["seconds"]


def expected_status(sent):
    want = {"get": "200", "post": "200", "download": "200", "sse": "200", "websocket": "101", "refused": "403",
            "dlp": "403"}
    return ["%s: %s" % (kind, table) for kind, table in sorted(sent.items()) if set(table) != {want[kind]}]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--smoke", action="store_true", help="2400 requests (one rotation of a 1 MiB audit): the whole path")
    parser.add_argument("--requests", type=int, default=300000, help="requests of the full run (default 300000)")
    parser.add_argument("--testnet-image", default=os.environ.get("BB_TESTNET_IMAGE", chain.TESTNET_IMAGE),
                        help="the test server's image, with /ws (default $BB_TESTNET_IMAGE or %s)" % chain.TESTNET_IMAGE)
    parser.add_argument("--download-bytes", type=int, default=None,
                        help="the size of each download (default 1 MiB; 256 KiB with --smoke)")
    parser.add_argument("--bundle-image", default=os.environ.get("BB_BUNDLE_IMAGE", "botbottle/bundle:latest"),
                        help="the bundle image (default $BB_BUNDLE_IMAGE or botbottle/bundle:latest)")
    args = parser.parse_args()
    total = 2400 if args.smoke else args.requests
    chain.TESTNET_IMAGE = args.testnet_image
    rotate = 1024 * 1024 if args.smoke or total < 100000 else 8 * 1024 * 1024
    download = args.download_bytes or (256 * 1024 if args.smoke else 1024 * 1024)
    soak = Soak(args.smoke, total, rotate, download)
    samples, sent, problems = [], {"kinds": {}, "up": 0, "down": 0, "errors": [], "seconds": 0.0}, []
    began = time.monotonic()
    try:
        soak.setup()
        slug = soak.launch("soak", "-e", "bottle_bundle_image=" + args.bundle_image)
        agent, bundle = "bb-%s-agent" % slug, "bb-%s-bundle" % slug
        chain.sh(["docker", "cp", CLIENT, agent + ":/tmp/soak_client.py"])
        log_path = chain.sh(["docker", "inspect", "-f", "{{.LogPath}}", bundle]).stdout.strip()
        log_start = os.path.getsize(log_path) if os.path.exists(log_path) else None
        marks = [("warm-up", total // 5 if args.smoke else total // 10), ("middle", total // 2), ("end", total)]
        done = 0
        for phase, upto in marks:
            merge(sent, soak.load(agent, done, upto - done))
            done = upto
            time.sleep(1.0)  # the agent's connections closed: what egress still holds is its own
            rss, fds = soak.egress(bundle)
            samples.append((phase, done, rss, fds))
        audit = audit_figures(os.path.join(STATE_ROOT, slug), total)
        log_bytes = (os.path.getsize(log_path) - log_start) if log_start is not None else None
        # Docker rotates the bundle's json-file log (sidecar_bundle log_max_size): what it keeps, all files.
        rotated = glob.glob(log_path + ".*") if log_start is not None else []
        log_kept = log_bytes + log_start + sum(os.path.getsize(p) for p in rotated) if log_start is not None else None
        if rotated:
            log_bytes = None  # the growth of the live file no longer says what was written
        problems += expected_status(sent["kinds"]) + check_counts(sent["kinds"], audit["rows"])
    except (chain.BenchError, KeyboardInterrupt) as exc:
        print("bench/soak.py: %s" % (exc or "interrupted"), file=sys.stderr)
        soak.teardown()
        return 1
    except Exception:
        soak.teardown()  # a crash leaves no bottle behind (a rerun would add to its audit)
        raise
    soak.teardown()
    wall = time.monotonic() - began
    cost = writer_cost(20000 if args.smoke else 200000)

    print("soak through one bottle (%d requests, %.2f GB down, %.2f GB up, %d cores%s)"
          % (total, sent["down"] / 1e9, sent["up"] / 1e9, os.cpu_count(),
             ", SMOKE: figures not meaningful" if args.smoke else ""))
    print("  mix: %s" % ", ".join("%s %d" % (k, sum(t.values())) for k, t in sorted(sent["kinds"].items())))
    print("  load %.0f s (%.0f requests/s), whole run %.0f s" % (sent["seconds"], total / sent["seconds"], wall))
    print("  %-8s %10s %10s %8s" % ("phase", "requests", "RSS MB", "fds"))
    for phase, done, rss, fds in samples:
        print("  %-8s %10d %10.1f %8d" % (phase, done, rss, fds))
    warm, end = samples[0], samples[-1]
    growth = (end[2] - warm[2]) / warm[2] * 100
    print("  egress RSS growth after warm-up %+.1f%% (aim <= 10%%), descriptors %+d (aim 0)" % (growth, end[3] - warm[3]))
    print("  audit: %d lines (%.2f a request), %.1f MB in %d files (rotating at %d MiB, every file kept, largest %.1f MB)"
          % (audit["lines"], audit["lines_per_request"], audit["bytes"] / 1e6, audit["files"], rotate // 2**20,
             audit["largest"] / 1e6))
    per_million = audit["bytes_per_million"]
    print("  audit volume: %.0f MB per million requests; at the defaults (64 MiB files, 16 kept: %.2f GiB at most) "
          "the audit holds the last %.1f million requests" % (per_million / 1e6, 17 * 64 / 1024.0,
                                                              17 * 64 * 2**20 / per_million))
    if log_bytes is not None:
        print("  the bundle's docker log grew %.0f MB per million requests before any rotation (json-file: Docker "
              "rotates it at the bundle's log_max_size, 10m x 3 files)" % (log_bytes * 1e6 / total / 1e6))
    if log_kept is not None:
        print("  the bundle's docker log keeps %.1f MB in %d file(s)" % (log_kept / 1e6, 1 + len(rotated)))
    print("  audit writer, per line (file + stdout):  %s" % ", ".join("%s %.1f us" % (name, took * 1e6)
                                                                      for name, took in cost.items()))
    print("  every decision kept (audit counts across rotated files = client's): %s"
          % ("yes" if not check_counts(sent["kinds"], audit["rows"]) else "NO"))
    for problem in problems + sent["errors"]:
        print("  PROBLEM: %s" % problem)
    print(json.dumps({"requests": total, "sent": sent, "samples": samples, "rss_growth_pct": growth,
                      "audit": {k: v for k, v in audit.items() if k != "rows"}, "docker_log_bytes": log_bytes,
                      "docker_log_kept": log_kept,
                      "writer_us": {k: v * 1e6 for k, v in cost.items()}, "problems": problems}, sort_keys=True))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
