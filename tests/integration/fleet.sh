#!/usr/bin/env bash
# The fleet test: three hosts, each a container of ours with its own dockerd and sshd and a Python
# with the Docker SDK (tests/integration/fleet/images/fleethost), on the test network bb-fleet-net
# (172.28.240.0/24, internal: nothing leaves this machine), reached by Ansible over SSH with a key
# made for this run and host keys pinned from the containers.
#   1. fleet.yml ships the images (once: a rerun copies nothing) and launches fa and fb on every host
#   2. status.yml reports the six bottles healthy (and a pending supervise proposal where one waits)
#   3. teardown -e agent=fa removes exactly the three fa bottles (--check first removes nothing)
#   4. host3 is cut off mid-run; fleet.yml relaunches fa on host1/host2, reports host3 lost and fails;
#      a rerun reports it unreachable and changes nothing on the converged hosts
#   5. host3 back: fleet.yml converges it; orphans are found and removed; teardown leaves every host clean
# Everything it creates carries io.botbottle.test=fleet and goes in the trap, even on failure.
# Env: BB_BUNDLE_IMAGE, BB_FLEET_AGENT_IMAGE, BB_FLEETHOST_IMAGE, EXTRA_CA (CA bundle for image builds).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
export BB_FLEET_AGENT_IMAGE=${BB_FLEET_AGENT_IMAGE:-botbottle/fleet-agent:test}
NET=bb-fleet-net HOSTS=(bb-fleet-host1 bb-fleet-host2 bb-fleet-host3)
INV=tests/integration/fleet/inventory
BB_FLEET_DIR=$(mktemp -d /tmp/bb-fleet.XXXXXX)
export BB_FLEET_DIR
start=$(date +%s)
FLEET_BUNDLE=botbottle/fleet-bundle:test
step() { printf '\n--- fleet [%3ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }
fail() { printf 'FLEET TEST FAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
  local rc=$?
  step "cleanup (exit $rc)"
  bash tests/integration/fleet/hosts.sh down
  docker image rm "$FLEET_BUNDLE" >/dev/null 2>&1 || true
  rm -rf "$BB_FLEET_DIR"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The bundle image under a tag of this run: a rebuild of botbottle/bundle:latest by someone else
# during the run must not change what the fleet is expected to hold.
docker tag "${BB_BUNDLE_IMAGE:-botbottle/bundle:latest}" "$FLEET_BUNDLE"
export BB_BUNDLE_IMAGE=$FLEET_BUNDLE

playbook() { ansible-playbook -i "$INV" "$@"; }
on() { local host=$1; shift; docker exec "$host" "$@"; }
# Bottle containers on a host, as "name" lines (sorted).
bottles_on() { on "$1" docker ps -a --filter label=io.botbottle.bottle --format '{{.Names}}' | sort; }

step "three hosts on bb-fleet-net (images built on the controller once; skipped when inputs did not change)"
bash tests/integration/fleet/hosts.sh up "$BB_FLEET_DIR" 3

step "fleet.yml: ship the images, launch fa and fb on every host"
playbook playbooks/fleet.yml -e bottle_fleet_report_file="$BB_FLEET_DIR/fleet1.json" | tee "$BB_FLEET_DIR/fleet1.log" | sed -n "/TASK \[Fleet summary\]/,/^}/p"
python3 - "$BB_FLEET_DIR/fleet1.json" <<'PY'
import json, sys
hosts = json.load(open(sys.argv[1]))["hosts"]
assert [h["status"] for h in hosts] == ["done"] * 3, hosts
got = sorted((h["host"], b["slug"], b["outcome"]) for h in hosts for b in h["bottles"])
want = sorted((h, s, "started") for h in ("bb-fleet-host1", "bb-fleet-host2", "bb-fleet-host3") for s in ("fa", "fb"))
assert got == want, got
PY
for host in "${HOSTS[@]}"; do
  for image in "$BB_BUNDLE_IMAGE" "$BB_FLEET_AGENT_IMAGE"; do
    [ "$(on "$host" docker image inspect -f '{{.Id}}' "$image")" = "$(docker image inspect -f '{{.Id}}' "$image")" ] \
      || fail "$host: $image does not have the controller's image id"
  done
  on "$host" sh -c 'ls /tmp | grep -q botbottle-ship' && fail "$host: an archive directory was left in /tmp"
  [ "$(bottles_on "$host" | tr '\n' ' ')" = "bb-fa-agent bb-fa-bundle bb-fb-agent bb-fb-bundle " ] \
    || fail "$host: expected fa and fb, found: $(bottles_on "$host" | tr '\n' ' ')"
done
# Shipping said what it moved, per host, as it went: each archive's size before the copy, its rate
# after, and the load (issue 15: long work shows progress).
for host in "${HOSTS[@]}"; do
  for image in "$BB_BUNDLE_IMAGE" "$BB_FLEET_AGENT_IMAGE"; do
    for stage in 'copying [0-9.]+ MB$' 'copied [0-9.]+ MB in [0-9.]+ s \([0-9.]+ MB/s\); loading$' 'loaded in [0-9.]+ s$'; do
      grep -qE "^\[ship\] $host $image $stage" "$BB_FLEET_DIR/fleet1.log" || fail "$host: no '$stage' line for $image"
    done
  done
done
echo "ok: images shipped to 3 hosts (ids equal the controller's, a line per stage and host), 6 bottles started"

step "status.yml: six bottles healthy, one pending proposal counted"
# Two proposals as supervise writes them (16-hex id, kind, status): one pending, one decided.
# shellcheck disable=SC2016  # expanded by the host's shell
on bb-fleet-host2 sh -c 'd=/root/.bot-bottle/state/fb/supervise/proposals; mkdir -p $d;
  echo "{\"id\": \"0123456789abcdef\", \"kind\": \"domain\", \"status\": \"pending\", \"host\": \"a.test\"}" >$d/0123456789abcdef.json;
  echo "{\"id\": \"fedcba9876543210\", \"kind\": \"domain\", \"status\": \"approved\", \"host\": \"b.test\"}" >$d/fedcba9876543210.json'
playbook playbooks/status.yml -e bottle_hosts=fleet -e bottle_status_file="$BB_FLEET_DIR/status.json" | sed -n "/TASK \[Bottles\]/,/^}/p"
python3 - "$BB_FLEET_DIR/status.json" <<'PY'
import json, sys
hosts = json.load(open(sys.argv[1]))["hosts"]
rows = [(h["host"], b) for h in hosts for b in h["bottles"]]
assert len(rows) == 6, rows
for host, b in rows:
    assert b["backend"] == "docker" and b["created"] and b["agent"] == b["slug"], (host, b)
    assert b["health"] and set(b["health"].values()) == {"healthy"}, (host, b["slug"], b["health"])
    want = 1 if (host, b["slug"]) == ("bb-fleet-host2", "fb") else 0
    assert b["proposals_pending"] == want, (host, b["slug"], b["proposals_pending"])
PY
echo "ok: 6 bottles, every bundle daemon healthy, pending proposals 1 on host2/fb only"

step "engine restart on host1 (as at a reboot): its bottles stay down and status says so; one fleet.yml brings them back"
# dockerd stopped by its pid file (it stops the containers, as at a shutdown), then started as the entrypoint does.
# shellcheck disable=SC2016  # expanded by the host's shell
on bb-fleet-host1 sh -c 'kill "$(cat /var/run/docker.pid)"; for _ in $(seq 120); do [ -e /var/run/docker.pid ] || exit 0; sleep 0.25; done; exit 1' \
  || fail "host1: dockerd did not stop"
docker exec -d bb-fleet-host1 sh -c 'dockerd --storage-driver=overlay2 --userland-proxy=false >>/var/log/dockerd.log 2>&1'
for _ in $(seq 120); do on bb-fleet-host1 docker info >/dev/null 2>&1 && break; sleep 0.25; done
[ -z "$(on bb-fleet-host1 docker ps -q --filter label=io.botbottle.bottle)" ] || fail "host1: a bottle restarted by itself"
playbook playbooks/status.yml -e bottle_hosts=fleet -e bottle_status_file="$BB_FLEET_DIR/status-down.json" >"$BB_FLEET_DIR/status-down.log"
grep -Eq 'bb-fleet-host1 +fa .*DOWN: bundle not running' "$BB_FLEET_DIR/status-down.log" || fail "status does not say host1/fa is down"
python3 - "$BB_FLEET_DIR/status-down.json" <<'PY'
import json, sys
for h in json.load(open(sys.argv[1]))["hosts"]:
    for b in h["bottles"]:
        down = h["host"] == "bb-fleet-host1"
        assert (b["health"] == {}) == down, (h["host"], b["slug"], b["health"])
        assert all((c["status"] != "running") == down for c in b["containers"]), (h["host"], b["slug"], b["containers"])
PY
playbook playbooks/fleet.yml -e bottle_fleet_ship=false -e bottle_fleet_report_file="$BB_FLEET_DIR/fleet-back.json" \
  >"$BB_FLEET_DIR/fleet-back.log" || { tail -40 "$BB_FLEET_DIR/fleet-back.log"; fail "the run after the engine restart failed"; }
python3 - "$BB_FLEET_DIR/fleet-back.json" <<'PY'
import json, sys
hosts = {h["host"]: {b["slug"]: b["outcome"] for b in h["bottles"]} for h in json.load(open(sys.argv[1]))["hosts"]}
assert hosts == {"bb-fleet-host1": {"fa": "updated", "fb": "updated"}, "bb-fleet-host2": {"fa": "unchanged", "fb": "unchanged"},
                 "bb-fleet-host3": {"fa": "unchanged", "fb": "unchanged"}}, hosts
PY
# The firewall is back with it: a host off the allowlist is refused by egress, and the audit says why.
answer=$(on bb-fleet-host1 docker exec bb-fa-agent curl -s -o /dev/null -w '%{http_code} %header{x-bottle-egress-rule}' \
  http://off-list.invalid/ || true)
[ "$answer" = "403 allowlist" ] || fail "host1/fa after the restart: off-list.invalid answered '$answer', not egress's 403 allowlist"
on bb-fleet-host1 grep -q '"host":"off-list.invalid".*"rule":"allowlist"' /root/.bot-bottle/state/fa/audit/egress.jsonl \
  || fail "host1/fa: no allowlist refusal of off-list.invalid in its audit"
echo "ok: host1's bottles stayed down after its engine restart (status: DOWN), one fleet.yml run brought them back, firewall refusing"

step "teardown -e agent=fa: --check removes nothing, then exactly the fa bottles go"
playbook playbooks/teardown.yml -e bottle_hosts=fleet -e agent=fa --check >/dev/null
for host in "${HOSTS[@]}"; do [ "$(bottles_on "$host" | wc -l)" = 4 ] || fail "$host: --check removed something"; done
playbook playbooks/teardown.yml -e bottle_hosts=fleet -e agent=fa >/dev/null
for host in "${HOSTS[@]}"; do
  [ "$(bottles_on "$host" | tr '\n' ' ')" = "bb-fb-agent bb-fb-bundle " ] || fail "$host: after teardown of fa: $(bottles_on "$host")"
  on "$host" test -d /root/.bot-bottle/state/fa && fail "$host: fa's state dir is still there"
  on "$host" docker network ls --format '{{.Name}}' | grep -q '^bb-fa-' && fail "$host: fa's networks are still there"
  on "$host" test -d /root/.bot-bottle/state/fb || fail "$host: fb's state dir went too"
done
echo "ok: the three fa bottles went, the three fb bottles stayed"

step "host3 cut off mid-run (once its fa launch has begun): the others converge, host3 is reported"
playbook playbooks/fleet.yml -e bottle_fleet_report_file="$BB_FLEET_DIR/fleet3.json" >"$BB_FLEET_DIR/fleet3.log" 2>&1 &
run=$!
for _ in $(seq 240); do on bb-fleet-host3 test -d /root/.bot-bottle/state/fa && break; sleep 0.5; done
on bb-fleet-host3 test -d /root/.bot-bottle/state/fa || { kill "$run"; fail "host3 never began launching fa"; }
docker network disconnect "$NET" bb-fleet-host3
rc=0; wait "$run" || rc=$?
sed -n '/Fleet summary/,/PLAY RECAP/p' "$BB_FLEET_DIR/fleet3.log" | grep -v '^$'
[ "$rc" -ne 0 ] || fail "fleet.yml succeeded with a host unreachable"
grep -q 'hosts did not converge: bb-fleet-host3' "$BB_FLEET_DIR/fleet3.log" || fail "the failure does not name bb-fleet-host3"
python3 - "$BB_FLEET_DIR/fleet3.json" <<'PY'
import json, sys
hosts = {h["host"]: h for h in json.load(open(sys.argv[1]))["hosts"]}
assert hosts["bb-fleet-host3"]["status"] == "lost" and hosts["bb-fleet-host3"]["error"], hosts["bb-fleet-host3"]
for name in ("bb-fleet-host1", "bb-fleet-host2"):
    got = {b["slug"]: b["outcome"] for b in hosts[name]["bottles"]}
    assert hosts[name]["status"] == "done" and got == {"fa": "started", "fb": "unchanged"}, (name, hosts[name])
PY
for host in bb-fleet-host1 bb-fleet-host2; do [ "$(bottles_on "$host" | wc -l)" = 4 ] || fail "$host did not converge"; done
echo "ok: host1 and host2 relaunched fa (fb untouched), host3 reported lost mid-run, the run failed naming it"

step "fleet.yml with host3 still cut off: reported unreachable; host1/host2 ship nothing, change nothing"
set +e
playbook playbooks/fleet.yml -e bottle_fleet_report_file="$BB_FLEET_DIR/fleet3b.json" >"$BB_FLEET_DIR/fleet3b.log" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "fleet.yml succeeded with a host unreachable"
python3 - "$BB_FLEET_DIR/fleet3b.json" <<'PY'
import json, sys
hosts = {h["host"]: h for h in json.load(open(sys.argv[1]))["hosts"]}
assert hosts["bb-fleet-host3"]["status"] == "unreachable" and "172.28.240.13" in hosts["bb-fleet-host3"]["error"], hosts
for name in ("bb-fleet-host1", "bb-fleet-host2"):
    got = {b["slug"]: b["outcome"] for b in hosts[name]["bottles"]}
    assert hosts[name]["status"] == "done" and got == {"fa": "unchanged", "fb": "unchanged"}, (name, hosts[name])
PY
grep -E 'bb-fleet-host3 +- +- +unreachable' "$BB_FLEET_DIR/fleet3b.log" || fail "the summary table does not list host3 unreachable"
grep -E '^bb-fleet-host[12] +:' "$BB_FLEET_DIR/fleet3b.log"
for host in bb-fleet-host1 bb-fleet-host2; do
  grep -E "^$host +:.* changed=0 " "$BB_FLEET_DIR/fleet3b.log" >/dev/null || fail "$host: the rerun changed something"
  grep -q "^\[ship\] $host " "$BB_FLEET_DIR/fleet3b.log" && fail "$host: the rerun shipped something"
done
echo "ok: host3 unreachable from the start and named; the converged hosts shipped nothing and changed nothing"

step "host3 back: a rerun converges only what is missing"
docker network connect --ip 172.28.240.13 "$NET" bb-fleet-host3
playbook playbooks/fleet.yml -e bottle_fleet_ship=false -e bottle_fleet_report_file="$BB_FLEET_DIR/fleet4.json" >"$BB_FLEET_DIR/fleet4.log" \
  || { tail -40 "$BB_FLEET_DIR/fleet4.log"; fail "the converging rerun failed"; }
python3 - "$BB_FLEET_DIR/fleet4.json" <<'PY'
import json, sys
hosts = {h["host"]: {b["slug"]: b["outcome"] for b in h["bottles"]} for h in json.load(open(sys.argv[1]))["hosts"]}
# host3's fa: the launch is one module call (bottle_launch) that runs on host3 itself, so the cut of the
# controller's connection either stopped it half way (this rerun converges it: "updated") or let it finish
# on the host (this rerun finds it as launched, by its stamp: "unchanged"); either way it is healthy below.
assert hosts["bb-fleet-host3"]["fa"] in ("updated", "unchanged"), hosts
hosts["bb-fleet-host3"].pop("fa")
assert hosts == {"bb-fleet-host1": {"fa": "unchanged", "fb": "unchanged"},
                 "bb-fleet-host2": {"fa": "unchanged", "fb": "unchanged"},
                 "bb-fleet-host3": {"fb": "unchanged"}}, hosts
PY
playbook playbooks/status.yml -e bottle_hosts=fleet -e bottle_status_file="$BB_FLEET_DIR/status2.json" >/dev/null
python3 - "$BB_FLEET_DIR/status2.json" <<'PY'
import json, sys
rows = [(h["host"], b["slug"], sorted(set(b["health"].values()))) for h in json.load(open(sys.argv[1]))["hosts"]
        for b in h["bottles"]]
assert len(rows) == 6 and all(r[2] == ["healthy"] for r in rows), rows
PY
echo "ok: only host3's fa (cut off mid-launch) could change; six bottles healthy again"

step "orphans: a labelled network without state, a state dir without objects"
on bb-fleet-host1 docker network create --label io.botbottle.bottle=ghost --label io.botbottle.agent=fa \
  --label io.botbottle.component=net-int bb-ghost-net-int >/dev/null
on bb-fleet-host2 sh -c 'mkdir -p /root/.bot-bottle/state/husk && echo "{\"slug\": \"husk\", \"agent\": \"fb\"}" >/root/.bot-bottle/state/husk/meta.json'
playbook playbooks/teardown.yml -e bottle_hosts=fleet -e orphans=true --check | grep -E 'orphan: no-(state|objects)' \
  | grep -q ghost || fail "--check does not show the orphan network"
on bb-fleet-host1 docker network inspect bb-ghost-net-int >/dev/null || fail "--check removed the orphan network"
playbook playbooks/teardown.yml -e bottle_hosts=fleet -e orphans=true >/dev/null
on bb-fleet-host1 docker network inspect bb-ghost-net-int >/dev/null 2>&1 && fail "the orphan network is still there"
on bb-fleet-host2 test -d /root/.bot-bottle/state/husk && fail "the orphan state dir is still there"
for host in "${HOSTS[@]}"; do [ "$(bottles_on "$host" | wc -l)" = 4 ] || fail "$host: orphan cleanup removed a bottle"; done
echo "ok: both orphans removed, the six bottles untouched"

step "teardown older_than: nothing is 1 day old, everything is 1 second old"
playbook playbooks/teardown.yml -e bottle_hosts=fleet -e older_than=1d >/dev/null
for host in "${HOSTS[@]}"; do [ "$(bottles_on "$host" | wc -l)" = 4 ] || fail "$host: older_than=1d removed a bottle"; done
playbook playbooks/teardown.yml -e bottle_hosts=fleet -e older_than=1s >/dev/null
for host in "${HOSTS[@]}"; do
  [ -z "$(bottles_on "$host")" ] || fail "$host: bottles left: $(bottles_on "$host")"
  [ -z "$(on "$host" docker network ls -q --filter label=io.botbottle.bottle)" ] || fail "$host: bottle networks left"
  [ -z "$(on "$host" ls -A /root/.bot-bottle/state)" ] || fail "$host: state dirs left: $(on "$host" ls -A /root/.bot-bottle/state)"
done
echo "ok: every fleet host is clean"
step "fleet test passed"
