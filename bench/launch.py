#!/usr/bin/env python
"""Launch cost of a bottle, side by side with its floor, in one run.

1. `playbooks/bottle.yml` for a fresh bottle, images cached     -> launch time
2. the same playbook again at once                             -> rerun time, changed count
3. `playbooks/teardown.yml` for that bottle                    -> teardown time
4. a plain shell script creating the same docker objects from the
   same rendered configs (networks, bundle waited healthy, agent,
   provisioned: CA in its trust store, and the same prompt, skills
   and Claude Code settings in one copy) with no Ansible at all  -> the floor
5. N bottles launched one after another (N=10; --smoke: 2)     -> first and last launch
Prints the figures and their ratios. Aims: launch <= 1.5x floor, rerun changes nothing and
takes <= 0.3x a launch, teardown <= 0.5x a launch, the Nth launch no slower than the first.
--smoke: the whole code path once, with 2 bottles in step 5 (part of make bench-smoke).
--baseline DIR: instead, the launch and the rerun of this checkout side by side with another checkout's (DIR, set up
the same way: .venv and scripts/collection-link.sh; for example `git worktree add /tmp/base main`), each launched
--runs times (default 5, --smoke 1), the two taking turns, each launch from nothing (torn down after): the
medians and their ratio (aim: this checkout's launch <= 1.10x the baseline's).
Every wait has a deadline; the bottles it launched are torn down at the end, also on failure.
"""

import json
import os
import re
import statistics
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGENT = os.environ.get("BENCH_AGENT", "demo")
INSTANCE = "bench"
SLUG = "%s-%s" % (AGENT, INSTANCE)
FLOOR_SLUG = "floor"
STATE_ROOT = os.path.expanduser("~/.bot-bottle/state")


def run(argv, check=True, timeout=600, cwd=ROOT, **kw):
    try:
        return subprocess.run(argv, cwd=cwd, check=check, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        sys.exit("%s did not finish within %d s" % (" ".join(argv[:3]), timeout))


def playbook(name, *extra, root=ROOT):
    start = time.monotonic()
    # The demo policy's model route needs a credential on the controller: any value does here (no
    # model is called by a launch).
    env = dict(os.environ, ANTHROPIC_API_KEY=os.environ.get("ANTHROPIC_API_KEY") or "bench-no-model-called",
               ANSIBLE_CONFIG=os.path.join(root, "ansible.cfg"))
    proc = run([os.path.join(root, ".venv", "bin", "ansible-playbook"), "playbooks/%s" % name, "-e", "agent=%s" % AGENT,
                "-e", "bottle_instance=%s" % INSTANCE] + list(extra), check=False, env=env, cwd=root)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit("%s failed:\n%s\n%s" % (name, proc.stdout[-3000:], proc.stderr[-2000:]))
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", proc.stdout))
    return elapsed, changed


def inspect(name):
    return json.loads(run(["docker", "inspect", name]).stdout)[0]


FLOOR_SCRIPT = r"""
set -euo pipefail
slug=$1 state=$2 bundle_image=$3 agent_image=$4 int_subnet=$5 out_subnet=$6 bundle_ip=$7 agent_ip=$8 extra_net=$9 daemons=${10}
home=${11}
lbl="--label io.botbottle.bottle=$slug --label io.botbottle.agent=floor"
docker network create --internal --subnet "$int_subnet" $lbl "bb-$slug-net-int" >/dev/null
docker network create --subnet "$out_subnet" $lbl "bb-$slug-net-out" >/dev/null
mkdir -p "$state/audit" "$state/supervise"
store=""; case ",$daemons," in *,supervise,*) store="-v $state/supervise:/var/lib/bottle/supervise";; esac
docker create --name "bb-$slug-bundle" $lbl --cap-add NET_ADMIN -e BOTTLE_DAEMONS="$daemons" \
  -v "$state/bundle:/etc/bottle:ro" -v "$state/ca:/var/lib/bottle/ca" -v "$state/private:/etc/bottle-private:ro" \
  -v "$state/audit:/var/lib/bottle/audit" $store \
  --network "bb-$slug-net-int" --ip "$bundle_ip" "$bundle_image" >/dev/null
docker network connect "bb-$slug-net-out" "bb-$slug-bundle"
[ -n "$extra_net" ] && docker network connect "$extra_net" "bb-$slug-bundle"
docker start "bb-$slug-bundle" >/dev/null
# A deadline, and what the bundle said when it is missed.
deadline=$((SECONDS + 90))
until docker exec "bb-$slug-bundle" bottle-health >/dev/null 2>&1; do
  if [ $SECONDS -ge $deadline ] || [ "$(docker inspect -f '{{.State.Running}}' "bb-$slug-bundle")" != true ]; then
    echo "floor: bundle bb-$slug-bundle not healthy within 90 s; its last lines:" >&2
    docker logs --tail 30 "bb-$slug-bundle" >&2; exit 1
  fi
  sleep 0.2
done
docker run -d --name "bb-$slug-agent" $lbl --network "bb-$slug-net-int" --ip "$agent_ip" \
  --user 1000:1000 --cap-drop ALL --security-opt no-new-privileges --init --dns 127.0.0.1 \
  -e HTTPS_PROXY="http://$bundle_ip:8888" -e HTTP_PROXY="http://$bundle_ip:8888" "$agent_image" >/dev/null
docker cp "$state/ca/bottle-ca.pem" "bb-$slug-agent:/usr/local/share/ca-certificates/bottle-ca.crt"
docker exec -u root "bb-$slug-agent" update-ca-certificates >/dev/null 2>&1
# The prompt, skills and settings the launch wrote into its agent, in one archive owned by the agent user.
tar -C "$home" --owner=1000 --group=1000 -cf - . | docker cp - "bb-$slug-agent:/home/agent/"
"""


def agent_files(slug, dest):
    """What the launch provisioned into its agent's home (outside any timing): the floor copies the same."""
    os.makedirs(dest)
    for name in (".claude", ".claude.json"):
        run(["docker", "cp", "bb-%s-agent:/home/agent/%s" % (slug, name), dest])
    return dest


def floor(state_copy, bundle, agent, home):
    # Shift the floor's subnets away from the bench bottle's (which is torn down by now,
    # but keep them distinct anyway): take two /28s at the top of the default pool.
    args = [FLOOR_SLUG, state_copy, bundle["Config"]["Image"], agent["Config"]["Image"],
            "172.29.255.224/28", "172.29.255.240/28", "172.29.255.226", "172.29.255.227",
            next((n for n in bundle["NetworkSettings"]["Networks"] if not n.startswith("bb-%s-" % SLUG)), ""),
            next((e.split("=", 1)[1] for e in bundle["Config"]["Env"] if e.startswith("BOTTLE_DAEMONS=")), "egress"),
            home]
    start = time.monotonic()
    proc = run(["bash", "-c", FLOOR_SCRIPT, "floor"] + args, check=False)
    elapsed = time.monotonic() - start
    cleanup_floor()
    if proc.returncode != 0:
        sys.exit("floor script failed:\n%s" % proc.stderr[-2000:])
    return elapsed


def cleanup_floor():
    for c in ("agent", "bundle"):
        run(["docker", "rm", "-f", "bb-%s-%s" % (FLOOR_SLUG, c)], check=False)
    for n in ("net-int", "net-out"):
        run(["docker", "network", "rm", "bb-%s-%s" % (FLOOR_SLUG, n)], check=False)


def teardown(slug, check=True, root=ROOT):
    start = time.monotonic()
    # The audit is archived as in real use, but not into the operator's ~/.bot-bottle/archive.
    proc = run([os.path.join(root, ".venv", "bin", "ansible-playbook"), "playbooks/teardown.yml", "-e", "bottle=%s" % slug,
                "-e", "bottle_archive_root=" + os.path.join(tempfile.gettempdir(), "bb-bench-archive")],
               check=False, timeout=300, cwd=root, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(root, "ansible.cfg")))
    if check and proc.returncode != 0:
        sys.exit("teardown of %s failed:\n%s" % (slug, proc.stdout[-2000:]))
    return time.monotonic() - start


def series(count):
    """Launch ``count`` bottles one after another: the time of each launch."""
    times = []
    for index in range(1, count + 1):
        elapsed, _changed = playbook("bottle.yml", "-e", "bottle_instance=%s-%d" % (INSTANCE, index))
        times.append(elapsed)
    return times


def against_baseline(base, runs):
    """This checkout's launch and rerun side by side with checkout ``base``'s, taking turns: the medians."""
    base = os.path.abspath(base)
    if not os.path.exists(os.path.join(base, ".venv", "bin", "ansible-playbook")):
        sys.exit("%s has no .venv/bin/ansible-playbook: link one (ln -s %s/.venv %s/.venv) and run "
                 "scripts/collection-link.sh there" % (base, ROOT, base))
    times = {"baseline": {"launch": [], "rerun": []}, "this": {"launch": [], "rerun": []}}
    teardown(SLUG, check=False)
    try:
        for index in range(runs):
            # The two take turns, the first alternating, so a drift of the machine weighs on both alike.
            order = [("baseline", base), ("this", ROOT)]
            for label, root in order if index % 2 == 0 else order[::-1]:
                times[label]["launch"].append(playbook("bottle.yml", root=root)[0])
                times[label]["rerun"].append(playbook("bottle.yml", root=root)[0])
                teardown(SLUG, root=root)
    finally:
        teardown(SLUG, check=False)
    print("launch cost against a baseline (agent %s, %d cores, median of %d; baseline %s)"
          % (AGENT, os.cpu_count(), runs, base))
    for what in ("launch", "rerun"):
        old, new = statistics.median(times["baseline"][what]), statistics.median(times["this"][what])
        print("  %-7s baseline %6.2f s  this %6.2f s  %.3fx%s   (each: %s | %s)" % (
            what, old, new, new / old, "  aim <= 1.10x" if what == "launch" else "",
            " ".join("%.2f" % t for t in times["baseline"][what]), " ".join("%.2f" % t for t in times["this"][what])))


def main():
    smoke = "--smoke" in sys.argv[1:]
    if "--baseline" in sys.argv[1:]:
        args = sys.argv[1:]
        runs = int(args[args.index("--runs") + 1]) if "--runs" in args else (1 if smoke else 5)
        if smoke:
            print("SMOKE run: the code path, not meaningful figures")
        against_baseline(args[args.index("--baseline") + 1], runs)
        return
    count = 2 if smoke else 10
    series_slugs = ["%s-%s-%d" % (AGENT, INSTANCE, i) for i in range(1, count + 1)]
    cleanup_floor()
    for slug in [SLUG] + series_slugs:
        teardown(slug, check=False)
    try:
        launch, launch_changed = playbook("bottle.yml")
        rerun, rerun_changed = playbook("bottle.yml")
        bundle, agent = inspect("bb-%s-bundle" % SLUG), inspect("bb-%s-agent" % SLUG)
        tmp = tempfile.mkdtemp(prefix="bb-bench-")
        state_copy = os.path.join(tmp, "state")
        shutil.copytree(os.path.join(STATE_ROOT, SLUG), state_copy)
        home = agent_files(SLUG, os.path.join(tmp, "home"))
        down = teardown(SLUG)
        try:
            floor_time = floor(state_copy, bundle, agent, home)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        launches = series(count)
    finally:
        for slug in [SLUG] + series_slugs:
            teardown(slug, check=False)
    rows = [
        ("launch (bottle.yml, images cached)", "%.1f s" % launch, "changed=%d" % launch_changed),
        ("floor (plain shell script, same objects)", "%.1f s" % floor_time, ""),
        ("launch / floor", "%.2fx" % (launch / floor_time), "aim <= 1.50x"),
        ("rerun (bottle.yml again)", "%.1f s" % rerun, "changed=%d (aim 0)" % rerun_changed),
        ("rerun / launch", "%.2fx" % (rerun / launch), "aim <= 0.30x"),
        ("teardown (teardown.yml, one bottle)", "%.1f s" % down, ""),
        ("teardown / launch", "%.2fx" % (down / launch), "aim <= 0.50x"),
        ("%d bottles one after another: first" % count, "%.1f s" % launches[0], ""),
        ("... last (with %d running)" % (count - 1), "%.1f s" % launches[-1],
         "%.2fx the first (aim <= 1.00x, within noise)" % (launches[-1] / launches[0])),
    ]
    if smoke:
        print("SMOKE run: the code path, not meaningful figures")
    width = max(len(r[0]) for r in rows)
    print("launch cost (agent %s, %d cores)" % (AGENT, os.cpu_count()))
    for name, value, note in rows:
        print("  %-*s  %9s  %s" % (width, name, value, note))


if __name__ == "__main__":
    main()
