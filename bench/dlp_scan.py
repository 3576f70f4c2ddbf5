#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What egress's DLP scan costs per request, side by side with json.loads of the same body.

Scans a 1 MiB Claude-Code-like JSON body (prose, code, JSON tool results) ~50 times with the
firewall's real engine (kingfisher + known secrets + field extraction) and prints p50/p99,
then a small request (URL + headers + a short JSON body) in microseconds. Aim: 1 MiB <= 15 ms.

Runs from the repository (images/bundle on sys.path) or inside the bundle (bench/chain.py
copies it there and runs it with /opt/egress/bin/python in /opt/egress).
--smoke: 3 iterations (make test); --json: the figures as one JSON line at the end;
--before REF: first the same figures for the bottle_firewall of git revision REF (extracted to
a temporary directory, run in a child process), then this working copy's, both printed;
--src DIR: take bottle_firewall from DIR (what --before uses).

The scan timed is the one the addon runs: the body held to its declared type (strict) and the
known secrets over its raw bytes too (issue 20), the head with its raw fields.
"""

import argparse
import inspect
import json
import os
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = [sys.argv[sys.argv.index("--src") + 1]] if "--src" in sys.argv[:-1] else []
for candidate in SRC + [os.path.join(HERE, "..", "images", "bundle"), os.getcwd(), "/opt/egress"]:
    if os.path.isdir(os.path.join(candidate, "bottle_firewall")):
        sys.path.insert(0, os.path.abspath(candidate))
        break

from bottle_firewall import dlp  # noqa: E402

MIB = 1 << 20
PROSE = ("The failing test exercises the retry path: when the upstream answers 503 the client waits, then "
         "retries with the same idempotency key. I traced it to the backoff computation. ")


def body_of(size, seed=1):
    """A /v1/messages body of about ``size`` bytes: prose, stdlib source as code, tool results."""
    import argparse as code_a
    import textwrap as code_b
    sources = [inspect.getsource(code_a), inspect.getsource(code_b)]
    rng = random.Random(seed)
    messages, total, index = [], 0, 0
    while total < size:
        index += 1
        kind = index % 3
        if kind == 0:
            text = PROSE * rng.randint(5, 30)
        elif kind == 1:
            source = sources[index % 2]
            start = rng.randrange(0, max(1, len(source) - 20000))
            text = source[start:start + 20000]
        else:
            text = json.dumps([{"name": "test_%d" % i, "outcome": "passed", "id": "%032x" % rng.getrandbits(128)}
                               for i in range(100)])
        messages.append({"role": "user" if index % 2 else "assistant",
                         "content": [{"type": "text" if kind != 2 else "tool_result", "text": text}]})
        total += len(text) + 80
    return json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 32000, "messages": messages}).encode()


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def timed(function, runs):
    samples = []
    for _run in range(runs):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--smoke", action="store_true", help="3 iterations, to keep the code path alive")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line at the end")
    parser.add_argument("--before", metavar="REF", help="first measure the bottle_firewall of git revision REF")
    parser.add_argument("--src", metavar="DIR", help="the directory holding bottle_firewall (default: this tree)")
    args = parser.parse_args()
    runs = 3 if args.smoke else 50
    if args.before:
        before(args.before, args.smoke)

    cache = os.environ.get("BOTTLE_EGRESS_RULES_CACHE") or (
        "/opt/egress/rules-cache" if os.path.isdir("/opt/egress/rules-cache") else None)
    started = time.perf_counter()
    engine = dlp.Engine(dlp.load_kingfisher(cache))
    load_ms = (time.perf_counter() - started) * 1000.0
    engine.known.load(["bench-known-secret-value-0001", "route-token-for-the-benchmark-42"])

    body = body_of(MIB)
    every_byte = len(inspect.signature(engine.scan_body).parameters) > 2  # issue 20's engine

    def scan_body(data):
        if every_byte:
            return engine.scan_body(data, "application/json", (), True)
        return engine.scan_body(data, "application/json")
    if scan_body(body) is not None:
        raise SystemExit("the benchmark body was refused: it must be clean")
    scan = timed(lambda: scan_body(body), runs)
    baseline = timed(lambda: json.loads(body), runs)

    small_body = json.dumps({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}).encode()
    headers = [("Host", "api.anthropic.com"), ("Content-Type", "application/json"),
               ("User-Agent", "claude-cli/2.0.14 (external, cli)"), ("Anthropic-Version", "2023-06-01")]

    raw_head = [("request method", b"POST"), ("request target", b"/v1/messages?beta=true")] + [
        ("header " + name, ("%s: %s" % (name, value)).encode()) for name, value in headers]

    def small():
        if every_byte:
            engine.scan_head("/v1/messages?beta=true", headers, raw=raw_head)
        else:
            engine.scan_head("/v1/messages?beta=true", headers)
        scan_body(small_body)
    small()
    small_runs = timed(small, 20 if args.smoke else 2000)

    figures = {
        "source": os.path.dirname(os.path.abspath(dlp.__file__)),
        "every_byte": every_byte,
        "body_bytes": len(body),
        "runs": runs,
        "rules_load_ms": round(load_ms, 1),
        "scan_1mib_p50_ms": round(statistics.median(scan), 2),
        "scan_1mib_p99_ms": round(percentile(scan, 0.99), 2),
        "baseline_json_loads_p50_ms": round(statistics.median(baseline), 2),
        "small_request_scan_p50_us": round(statistics.median(small_runs) * 1000.0, 1),
        "small_request_scan_p99_us": round(percentile(small_runs, 0.99) * 1000.0, 1),
        "aim_1mib_ms": 15,
    }
    print("DLP scan of a %d-byte JSON body (%d runs): p50 %.2f ms, p99 %.2f ms (json.loads baseline p50 %.2f ms)"
          % (len(body), runs, figures["scan_1mib_p50_ms"], figures["scan_1mib_p99_ms"],
             figures["baseline_json_loads_p50_ms"]))
    print("small request (URL + headers + short JSON body): p50 %.1f us, p99 %.1f us; rules loaded in %.0f ms"
          % (figures["small_request_scan_p50_us"], figures["small_request_scan_p99_us"], load_ms))
    if args.json:
        print(json.dumps(figures, sort_keys=True))


def before(ref, smoke):
    """The figures of bottle_firewall at git revision ``ref``, measured in a child process."""
    import subprocess
    import tempfile
    repo = os.path.abspath(os.path.join(HERE, ".."))
    with tempfile.TemporaryDirectory(prefix="dlp-bench-") as directory:
        archive = subprocess.run(["git", "-C", repo, "archive", ref, "images/bundle/bottle_firewall"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", directory], input=archive, check=True)
        command = [sys.executable, os.path.abspath(__file__), "--src", os.path.join(directory, "images", "bundle")]
        result = subprocess.run(command + (["--smoke"] if smoke else []), check=True, capture_output=True, text=True)
    for line in result.stdout.splitlines():
        print("before (%s): %s" % (ref, line))


if __name__ == "__main__":
    main()
