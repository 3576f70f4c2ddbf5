#!/usr/bin/env python
"""Fleet cost: launch wall time for 1, 2, 3 hosts, and shipping images versus building them.

Hosts are the fleet test's (tests/integration/fleet/hosts.sh): containers with their own dockerd and
sshd on bb-fleet-net, reached over SSH. All of them share this machine's cores, so this measures the
controller's and the fleet's overhead together, not a fleet of real machines.

1. ship: fleet.yml with no agents (archive on the controller, copy + docker load on 3 hosts)
2. launch: fleet.yml (images already shipped) with fa and fb on the first 1, 2, 3 hosts; wall time and
   the per-host mean; aim: 3 hosts <= 1.5x one host
3. build: the bundle and stand-in agent images built from scratch once (what each host would pay
   instead of a load), under a bench tag that is removed afterwards
The "CPU busy" figure is the whole machine's (other users' jobs included): a launch that keeps both cores
busy cannot scale flat over hosts that share them. Prints the figures; not a test.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv", "bin")
HOSTS = ["bb-fleet-host1", "bb-fleet-host2", "bb-fleet-host3"]
INVENTORY = os.path.join(ROOT, "tests", "integration", "fleet", "inventory")
BUNDLE = os.environ.get("BB_BUNDLE_IMAGE") or "botbottle/bundle:latest"
AGENT_IMAGE = os.environ.get("BB_FLEET_AGENT_IMAGE") or "botbottle/fleet-agent:test"
EXTRA_CA = os.environ.get("EXTRA_CA") or ("/etc/ssl/certs/ca-certificates.crt"
                                          if os.path.exists("/etc/ssl/certs/ca-certificates.crt") else "")


def run(argv, env=None, check=True):
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    if check and proc.returncode != 0:
        sys.exit("%s failed:\n%s\n%s" % (" ".join(argv[:3]), proc.stdout[-3000:], proc.stderr[-2000:]))
    return proc


def timed(argv, env=None):
    start = time.monotonic()
    proc = run(argv, env=env)
    return time.monotonic() - start, proc


def playbook(env, name, *extra):
    return timed([os.path.join(VENV, "ansible-playbook"), "-i", INVENTORY, "playbooks/%s" % name] + list(extra), env)


SHIP_COPIED = re.compile(r"^\[ship\] (\S+) (\S+) copied ([0-9.]+) MB in ([0-9.]+) s", re.M)
SHIP_LOADED = re.compile(r"^\[ship\] (\S+) (\S+) loaded in ([0-9.]+) s", re.M)


def ship_per_host(output):
    """{host: [MB copied, copy seconds, load seconds]} from the [ship] lines of a fleet.yml run."""
    hosts = {}
    for host, _image, mb, seconds in SHIP_COPIED.findall(output):
        row = hosts.setdefault(host, [0.0, 0.0, 0.0])
        row[0] += float(mb)
        row[1] += float(seconds)
    for host, _image, seconds in SHIP_LOADED.findall(output):
        hosts.setdefault(host, [0.0, 0.0, 0.0])[2] += float(seconds)
    return hosts


def image_size(name):
    return int(run(["docker", "image", "inspect", "-f", "{{.Size}}", name]).stdout.strip())


def build_from_scratch(name, path, build_args):
    """``docker build --no-cache`` of a copy of the context (with the extra CA the Dockerfiles expect)."""
    context = tempfile.mkdtemp(prefix="bb-fleet-build.")
    try:
        shutil.copytree(os.path.join(ROOT, path), context, dirs_exist_ok=True)
        with open(os.path.join(context, "extra-ca.pem"), "wb") as handle:
            if EXTRA_CA:
                with open(EXTRA_CA, "rb") as source:
                    handle.write(source.read())
        argv = ["docker", "build", "--no-cache", "-q", "-t", name]
        for key, value in build_args.items():
            argv += ["--build-arg", "%s=%s" % (key, value)]
        return timed(argv + [context])[0]
    finally:
        run(["docker", "image", "rm", name], check=False)
        shutil.rmtree(context, ignore_errors=True)


def cpu_ticks():
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def main():
    env = dict(os.environ, PATH=VENV + os.pathsep + os.environ["PATH"], ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    workdir = tempfile.mkdtemp(prefix="bb-fleet-bench.")
    env["BB_FLEET_DIR"] = workdir
    rows = []
    try:
        up = timed(["bash", "tests/integration/fleet/hosts.sh", "up", workdir, str(len(HOSTS))], env)[0]
        rows.append(("3 fleet hosts up (dockerd + sshd)", up, ""))
        ship, shipped = playbook(env, "fleet.yml", "-e", '{"bottle_fleet_agents": []}')
        sizes = (image_size(BUNDLE) + image_size(AGENT_IMAGE)) / 1e6
        rows.append(("ship images to 3 hosts", ship, "archive once + copy + docker load, %.0f MB per host" % sizes))
        for host, (mb, copy_s, load_s) in sorted(ship_per_host(shipped.stdout).items()):
            rows.append(("  copy to %s" % host, copy_s, "%.0f MB at %.1f MB/s, then docker load %.1f s"
                         % (mb, mb / max(copy_s, 1e-3), load_s)))
        again = playbook(env, "fleet.yml", "-e", '{"bottle_fleet_agents": []}')[0]
        rows.append(("ship again (nothing missing)", again, "ids compared, nothing copied"))
        launches = {}
        for count in range(1, len(HOSTS) + 1):
            pattern = ":".join(HOSTS[:count])
            busy0, total0 = cpu_ticks()
            seconds, proc = playbook(env, "fleet.yml", "-e", "bottle_fleet_ship=false",
                                     "-e", "bottle_fleet_hosts=%s" % pattern)
            busy1, total1 = cpu_ticks()
            busy = 100.0 * (busy1 - busy0) / max(1, total1 - total0)
            started = len(re.findall(r"\bstarted\b", proc.stdout.split("Fleet summary")[-1]))
            launches[count] = seconds
            rows.append(("launch fa+fb on %d host%s" % (count, "s" if count > 1 else ""), seconds,
                         "%.1f s per host, %d bottles started, CPU %.0f%% busy" % (seconds / count, started, busy)))
            playbook(env, "teardown.yml", "-e", "bottle_hosts=%s" % pattern, "-e", "older_than=0s")
        ratio = launches[len(HOSTS)] / launches[1]
        rows.append(("3 hosts / 1 host", ratio, "aim <= 1.5 (%s)" % ("met" if ratio <= 1.5 else "NOT met")))
        agent_build = build_from_scratch("botbottle/fleet-agent:bench", "tests/integration/fleet/images/fleet-agent", {})
        bundle_build = build_from_scratch("botbottle/bundle:fleet-bench", "images/bundle",
                                          {"PIPELOCK_IMAGE": "ghcr.io/luckypipewrench/pipelock:2.3.0"})
        rows.append(("build bundle + agent from scratch, once", agent_build + bundle_build,
                     "docker build --no-cache: what each host would pay instead of a load (and it needs registries)"))
        rows.append(("build on 3 hosts / ship to 3 hosts", 3 * (agent_build + bundle_build) / ship,
                     "builds serialised on these 2 cores"))
    finally:
        run(["bash", "tests/integration/fleet/hosts.sh", "down"], env, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    print("fleet cost (%d cores, hosts are containers on this machine)" % os.cpu_count())
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        unit = "x" if "/" in name else "s"
        print("  %-*s  %8.1f %s  %s" % (width, name, value, unit, note))


if __name__ == "__main__":
    main()
