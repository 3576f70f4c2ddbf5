#!/usr/bin/env bash
# The smolmachines path to the bundle, end to end without a boot (guests cannot boot on this host):
#   1. a real smolmachines launch in create-only mode (bottle_smolvm_boot=false, a private smolvm
#      --state-dir): the bundle on its loopback address, the bottle's host socket relay, the VM created
#      with the three mounted sockets, its guest relay as workload and the guest env (smolvm's record);
#   2. a stand-in for the booted guest: a container of botbottle/agent with --network none, the host
#      socket directory bind-mounted at /run/bottle (where smolvm's vsock relay would put them), running
#      the command and env smolvm recorded for the VM;
#   3. from inside it, as the agent: an allowed testnet host through 127.0.0.1:8888 answers; a refused
#      host gets egress's 403 and the audit says why (rule allowlist); git ls-remote through
#      127.0.0.1:9418 is answered by git-gate; supervise answers an MCP ping at 127.0.0.1:9100; nothing
#      else is reachable, each refusal checked for its reason (no interface but lo, no resolver, no route);
#   4. the relay's lifecycle through the role: a killed relay is started again by the next launch (the
#      guest's connections work again), teardown stops it and removes its sockets.
# The launch is one module call (bottle_launch, the smolmachines plan), counted as the run happens by a
# callback plugin (tests/integration/lib/callback_plugins/module_calls.py); its rerun is one call that takes
# the stamp's shortcut (nothing changed), and a rerun after the relay was killed takes the full path.
# Nothing talks to any address outside this machine (the "internet" is the testnet and testgit containers
# of a network of this run only). Everything it creates goes in the trap.
set -euo pipefail
run_id=$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
AGENT=vmr SLUG="vmr-$run_id"
# shellcheck source=tests/integration/lib/bottle_test.sh
. "$(dirname "$0")/lib/bottle_test.sh"
bt_init "vm relay"
# shellcheck source=tests/integration/lib/testnet.sh
. "$(dirname "$0")/lib/testnet.sh"
NET="bb-testnet-vmr-$run_id" SERVER="bb-testnet-vmr-$run_id-server" GIT="bb-testnet-vmr-$run_id-git"
STANDIN="bb-vmr-$run_id-standin"
SMOLVM_STATE=$D/smolvm
chmod 755 "$D"

cleanup() {
  local rc=$?
  set +e  # the trap runs to its end whatever fails in it
  docker rm -f "$STANDIN" "$GIT" >/dev/null 2>&1 || true
  (exit "$rc")
  bt_cleanup_vm
}
# bt_cleanup tears the bottle down (VM included: the inventory names the smolvm state dir), then the network.
bt_cleanup_vm() {
  local rc=$?
  step "cleanup (exit $rc)"
  ansible-playbook -i "$INV" playbooks/teardown.yml -e "bottle=$SLUG" -e bottle_archive=false >/dev/null 2>&1 || true
  docker ps -aq --filter "label=io.botbottle.bottle=$SLUG" | grep -q . && echo "WARNING: containers of $SLUG left"
  pgrep -f "$STATE/$SLUG/relay/socket_relay.py" >/dev/null && echo "WARNING: the socket relay of $SLUG still runs"
  bt_testnet_remove "$NET" "$SERVER"
  rm -rf "$D"
  exit "$rc"
}
trap cleanup EXIT
bt_on_fail() {
  echo "--- relay log"; tail -20 "$STATE/$SLUG/relay/relay.log" 2>/dev/null
  echo "--- stand-in log"; docker logs "$STANDIN" 2>&1 | tail -20
}

step "the test internet: testnet and testgit on $NET"
for image in botbottle/testgit:latest botbottle/agent:latest debian:trixie-slim; do
  docker image inspect "$image" >/dev/null || fail "no $image: make test-images"
done
bt_testnet vm-relay "$NET" "$SERVER" "$D/ca.pem" allowed.bottle.test blocked.bottle.test
ssh-keygen -q -t ed25519 -N '' -C bottle-test-gate -f "$D/gate-identity"
docker run -d --name "$GIT" --label io.botbottle.test=vm-relay --network "$NET" --network-alias git.bottle.test \
  -e TESTGIT_REPOS=project -e TESTGIT_AUTHORIZED_KEY="$(cat "$D/gate-identity.pub")" botbottle/testgit:latest >/dev/null
for _ in $(seq 1 30); do
  docker exec "$GIT" cat /etc/ssh/ssh_host_ed25519_key.pub >"$D/git-host-key.pub" 2>/dev/null \
    && grep -q ssh-ed25519 "$D/git-host-key.pub" && break
  sleep 1
done
grep -q ssh-ed25519 "$D/git-host-key.pub" || fail "the testgit server gave no host key"
# The image as it is now, by id: another build may move the shared tag during the run.
AGENT_IMAGE=$(docker image inspect -f '{{.Id}}' "${BB_AGENT_IMAGE:-botbottle/agent:latest}")
docker run --rm --network none --entrypoint test "$AGENT_IMAGE" -f /usr/local/lib/bottle/bottle_relay.py \
  || fail "${BB_AGENT_IMAGE:-botbottle/agent:latest} has no guest relay (/usr/local/lib/bottle/bottle_relay.py): make test-images"
SERVER_IP=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$SERVER")

cat >"$INV" <<YAML
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
  vars:
    bottle_state_root: $STATE
    bottle_archive_root: $ARCHIVE
    bottle_backend: smolmachines
    # No guest boots here: the VM is created, not started; the stand-in container plays the guest.
    bottle_smolvm_boot: false
    bottle_smolvm_state_dir: $SMOLVM_STATE
    bottle_smolvm_image_cache: $D/images
    # The VM's image is never booted here: a small one keeps the archive step short.
    bottle_agent_image: debian:trixie-slim
    # Test hosts run services on wildcard addresses; this test must not change the host's firewall.
    bottle_smolvm_wildcard_ack: true
    bottle_bundle_extra_networks: [$NET]
    bottle_ssrf_ip_allowlist: [$SUBNET]
    bottle_upstream_ca_file: $D/ca.pem
    bottle_agents:
      $AGENT:
        description: vm relay test agent; no LLM is ever called.
        policy: $AGENT
        prompt: You are the vm relay test agent.
    bottle_policies:
      $AGENT:
        allowed_domains: [allowed.bottle.test]
        git_gate:
          user: {name: Relay Probe, email: probe@bottle.test}
          repos:
            project:
              url: ssh://git@git.bottle.test/srv/git/project.git
              identity: $D/gate-identity
              host_key: "$(cat "$D/git-host-key.pub")"
YAML

n=0
launch() {
  n=$((n + 1))
  BB_MODULE_CALLS_FILE=$D/calls$n.json ANSIBLE_CALLBACK_PLUGINS="$root/tests/integration/lib/callback_plugins" \
    ANSIBLE_CALLBACKS_ENABLED=module_calls playbook playbooks/bottle.yml -e "agent=$AGENT" -e "bottle_instance=$run_id" "$@"
}
# The module calls of the last launch: exactly one, bottle_launch.
one_launch_call() {
  local got
  got=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["count"], json.dumps(d["calls"]))' "$D/calls$n.json")
  echo "module calls: $got"
  if [ "${got%% *}" != 1 ] || [[ "$got" != *'"botbottle.bottle.bottle_launch"'* ]]; then
    fail "$1: expected one module call (bottle_launch), got $got"
  fi
}
relay_pid() { cat "$STATE/$SLUG/relay/relay.pid" 2>/dev/null || true; }
smolvm=$(.venv/bin/python -c 'from ansible_collections.botbottle.bottle.plugins.module_utils import smolvm; print(smolvm.find_smolvm())' 2>/dev/null \
  || PYTHONPATH=.build/collections .venv/bin/python -c 'from ansible_collections.botbottle.bottle.plugins.module_utils import smolvm; print(smolvm.find_smolvm())')

step "0. --check: one module call, says what it would create, creates nothing"
launch --check >"$D/launch0.log" 2>&1 || { tail -40 "$D/launch0.log"; fail "the check-mode launch failed"; }
one_launch_call "the check-mode launch"
grep -q "check mode: bottle $SLUG (agent $AGENT, policy $AGENT) would be created: networks, state directory (hosts +allowed.bottle.test), agent image archive, sidecar bundle, socket relay, agent VM; nothing was changed" "$D/launch0.log" \
  || { grep -i "check mode" "$D/launch0.log"; fail "the check-mode launch did not say what it would create"; }
[ ! -e "$STATE/$SLUG" ] || fail "the check-mode launch left a state directory"
[ -z "$(docker ps -aq --filter "label=io.botbottle.bottle=$SLUG")" ] || fail "the check-mode launch created a container"
[ -z "$(docker network ls -q --filter "label=io.botbottle.bottle=$SLUG")" ] || fail "the check-mode launch created a network"
"$smolvm" --state-dir "$SMOLVM_STATE" machine ls --json 2>/dev/null | grep -q "bb-$SLUG-agent" && fail "the check-mode launch created a VM"

step "1. launch $SLUG (create-only VM)"
launch >"$D/launch1.log" 2>&1 || { tail -40 "$D/launch1.log"; fail "the launch failed"; }
one_launch_call "the first launch"
grep -q "is running (created" "$D/launch1.log" || fail "no 'is running (created' line"
pid1=$(relay_pid)
if [ -z "$pid1" ] || ! kill -0 "$pid1"; then fail "no socket relay runs after the launch"; fi
for name in proxy git-gate supervise; do
  sock="$STATE/$SLUG/sockets/$name.sock"
  [ -S "$sock" ] || fail "no socket $sock"
  [ "$(stat -c %a "$sock")" = 600 ] || fail "$sock is mode $(stat -c %a "$sock"), not 600"
done
[ "$(stat -c %a "$STATE/$SLUG/sockets")" = 700 ] || fail "the socket directory is not 0700"
addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["loopback_address"])' "$STATE/$SLUG/meta.json")
grep -q "\"host\": \"$addr\"" "$STATE/$SLUG/relay/relay.json" || fail "the relay does not dial $addr"

step "1b. the rerun: one module call, the stamp's shortcut"
launch >"$D/launch2.log" 2>&1 || { tail -40 "$D/launch2.log"; fail "the rerun failed"; }
one_launch_call "the rerun"
grep -q "is running (nothing changed)" "$D/launch2.log" || { grep -i "running\|reason" "$D/launch2.log" | tail -5; fail "the rerun changed something"; }
[ "$(relay_pid)" = "$pid1" ] || fail "the rerun restarted the relay"

step "2. the VM smolvm recorded: no network, the three sockets, the guest relay, the guest env"
"$smolvm" --state-dir "$SMOLVM_STATE" machine ls --json >"$D/ls.json" 2>/dev/null
"$smolvm" --state-dir "$SMOLVM_STATE" machine ls --verbose >"$D/ls.txt" 2>/dev/null
python3 - "$D" "bb-$SLUG-agent" "$STATE/$SLUG" <<'PY' || fail "the VM is not as designed (above)"
import json, sqlite3, sys
d, name, state = sys.argv[1:]
machine = [m for m in json.load(open(d + "/ls.json")) if m["name"] == name][0]
assert machine["network"] is False and not machine.get("allowed_cidrs"), machine
want_cmd = ["python3", "/usr/local/lib/bottle/bottle_relay.py", "guest", "proxy", "git-gate", "supervise"]
assert machine["cmd"] == want_cmd, machine["cmd"]
db = sqlite3.connect("file:%s/.local/share/smolvm/server/smolvm.db?mode=ro" % (d + "/smolvm"), uri=True)
rec = json.loads(db.execute("select data from vms where name = ?", (name,)).fetchone()[0])
socks = sorted((s["host_path"], s["guest_path"], s["direction"]) for s in rec["published_sockets"])
assert socks == sorted(("%s/sockets/%s.sock" % (state, n), "/run/bottle/%s.sock" % n, "mount")
                       for n in ("proxy", "git-gate", "supervise")), socks
env, current = {}, None
for line in open(d + "/ls.txt").read().splitlines():
    if line and not line[0].isspace():
        current = line.split()[0]
    elif current == name and line.strip().startswith("Env: "):
        key, _, value = line.strip()[5:].partition("=")
        env[key] = value
for key in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
    assert env[key] == "http://127.0.0.1:8888", (key, env)
assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1", env
assert env["NODE_EXTRA_CA_CERTS"] == "/usr/local/share/ca-certificates/bottle-ca.crt", env
with open(d + "/guest.env", "w") as out:
    out.writelines("%s=%s\n" % kv for kv in sorted(env.items()))
json.dump(machine["cmd"], open(d + "/guest.cmd", "w"))
print("VM %s: network false, cmd %s, sockets %s, %d env variables" % (name, machine["cmd"], len(socks), len(env)))
PY

step "3. the stand-in guest: botbottle/agent, --network none, the host sockets at /run/bottle"
mapfile -t guest_cmd < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))))' "$D/guest.cmd")
# The workload runs as root, as the VM's does (smolvm_machine user: root).
docker run -d --name "$STANDIN" --label io.botbottle.test=vm-relay --network none --user 0 \
  --env-file "$D/guest.env" -v "$STATE/$SLUG/sockets:/run/bottle" \
  -v "$STATE/$SLUG/ca/bottle-ca.pem:/usr/local/share/ca-certificates/bottle-ca.crt:ro" \
  "$AGENT_IMAGE" "${guest_cmd[@]}" >/dev/null
for _ in $(seq 1 50); do grep -q "ready pid" <<<"$(docker logs "$STANDIN" 2>&1)" && break; sleep 0.2; done
grep -q "ready pid" <<<"$(docker logs "$STANDIN" 2>&1)" || fail "the guest relay did not start"
in_guest() { docker exec -u agent "$STANDIN" bash -c "$1"; }
# A Python probe on stdin, as the agent.
probe_guest() { docker exec -i -u agent "$STANDIN" python3 - "$@"; }

step "4. through the relays: the proxy, git-gate, supervise"
code=$(in_guest "curl -sS --max-time 20 -o /dev/null -w '%{http_code}' --cacert /usr/local/share/ca-certificates/bottle-ca.crt \
  https://allowed.bottle.test/vm-relay-$run_id") || fail "curl to the allowed host failed"
[ "$code" = 200 ] || fail "the allowed host answered $code, not 200"
blocked=$(in_guest "curl -sS --max-time 20 -w '\n%{http_code}' http://blocked.bottle.test/vm-relay-$run_id") || true
[ "$(tail -n1 <<<"$blocked")" = 403 ] || fail "the refused host answered: $blocked"
grep -qi "blocked.bottle.test" <<<"$blocked" || fail "egress's 403 does not name the host: $blocked"
for _ in $(seq 1 20); do
  grep -q "\"host\":\"blocked.bottle.test\".*\"rule\":\"allowlist\"" "$STATE/$SLUG/audit/egress.jsonl" 2>/dev/null && break
  sleep 0.5
done
grep "vm-relay-$run_id" "$STATE/$SLUG/audit/egress.jsonl" | grep -q '"host":"blocked.bottle.test".*"rule":"allowlist"' \
  || fail "the audit has no allowlist refusal of blocked.bottle.test for this probe"
grep "vm-relay-$run_id" "$STATE/$SLUG/audit/egress.jsonl" | grep -q '"host":"allowed.bottle.test"' \
  || fail "the audit has no record of the allowed request: it did not go through egress"
in_guest "git ls-remote git://127.0.0.1:9418/project.git" >"$D/ls-remote.txt" 2>&1 \
  || { cat "$D/ls-remote.txt"; fail "git ls-remote through 127.0.0.1:9418 failed"; }
echo "git ls-remote git://127.0.0.1:9418/project.git: $(wc -l <"$D/ls-remote.txt") refs"
missing=$(in_guest "git ls-remote git://127.0.0.1:9418/nothing-here.git 2>&1" || true)
grep -q "remote error: no such repository: /nothing-here.git" <<<"$missing" \
  || fail "git-gate did not refuse an unknown repository in its own words: $missing"
ping=$(in_guest "curl -sS --max-time 10 -X POST http://127.0.0.1:9100/mcp -H 'Content-Type: application/json' \
  -H 'Accept: application/json, text/event-stream' -d '{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}'") \
  || fail "supervise did not answer at 127.0.0.1:9100"
if ! grep -q '"id":7' <<<"$ping" || ! grep -q '"result"' <<<"$ping"; then fail "supervise's answer to an MCP ping: $ping"; fi
echo "supervise at 127.0.0.1:9100/mcp, ping: $ping"

step "5. nothing else: each refusal for its reason"
probe_guest "$SERVER_IP" "$addr" <<'PY' >"$D/probe.txt" 2>&1 || { cat "$D/probe.txt"; fail "the stand-in guest reached something it should not"; }
import errno, os, socket, sys
server, addr = sys.argv[1:]
assert sorted(os.listdir("/sys/class/net")) == ["lo"], os.listdir("/sys/class/net")
def tcp(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "connected"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc))
got = {
    "testnet server %s:443 (no route)" % server: (tcp(server, 443), "ENETUNREACH"),
    "bundle address %s:8888 (the guest's own loopback)" % addr: (tcp(addr, 8888), "ECONNREFUSED"),
    "127.0.0.1:22": (tcp("127.0.0.1", 22), "ECONNREFUSED"),
    "127.0.0.1:9101": (tcp("127.0.0.1", 9101), "ECONNREFUSED"),
}
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    udp.sendto(b"probe", (server, 53))
    got["UDP %s:53" % server] = ("sent", "ENETUNREACH")
except OSError as exc:
    got["UDP %s:53" % server] = (errno.errorcode.get(exc.errno, str(exc)), "ENETUNREACH")
try:
    socket.getaddrinfo("allowed.bottle.test", 443)
    got["resolve allowed.bottle.test"] = ("resolved", "no resolver")
except socket.gaierror:
    got["resolve allowed.bottle.test"] = ("no resolver", "no resolver")
for what, (have, want) in got.items():
    print("%-55s %s" % (what, have))
bad = {k: v for k, v in got.items() if v[0] != v[1]}
assert not bad, bad
print("PROBE DONE")
PY
cat "$D/probe.txt"
grep -q "PROBE DONE" "$D/probe.txt" || fail "the probe did not run to its end"
direct=$(in_guest "curl -sS --noproxy '*' --max-time 5 https://allowed.bottle.test/ 2>&1" || true)
grep -q "Could not resolve host" <<<"$direct" || fail "a direct request (no proxy) did not fail for want of a resolver: $direct"

# (A rerun that finds the relay running changes nothing: the module's unit test and Molecule's idempotence.)
step "6. the relay through the role: a killed one is started again by the next launch"
kill "$pid1"
for _ in $(seq 1 50); do case "$(ps -o stat= -p "$pid1" 2>/dev/null)" in ''|Z*) break ;; esac; sleep 0.1; done
launch >"$D/launch3.log" 2>&1 || { tail -40 "$D/launch3.log"; fail "the launch after a killed relay failed"; }
pid2=$(relay_pid)
if [ -z "$pid2" ] || [ "$pid2" = "$pid1" ] || ! kill -0 "$pid2"; then fail "the killed relay was not started again"; fi
one_launch_call "the launch after a killed relay"
grep -q "bottle $SLUG (agent $AGENT, policy $AGENT) is running (changed: socket relay started)" "$D/launch3.log" \
  || { grep "is running" "$D/launch3.log"; fail "the launch after a killed relay did not say it started the relay again"; }
code=$(in_guest "curl -sS --max-time 20 -o /dev/null -w '%{http_code}' --cacert /usr/local/share/ca-certificates/bottle-ca.crt \
  https://allowed.bottle.test/vm-relay-again-$run_id") || fail "curl after the relay restart failed"
[ "$code" = 200 ] || fail "after the relay restart the allowed host answered $code"

step "7. teardown stops the relay and removes its sockets"
docker rm -f "$STANDIN" >/dev/null
playbook playbooks/teardown.yml -e "bottle=$SLUG" -e bottle_archive=false >"$D/teardown.log" 2>&1 \
  || { tail -30 "$D/teardown.log"; fail "teardown failed"; }
grep -q "Stop the socket relay and remove the sockets of bottle $SLUG" "$D/teardown.log" || fail "teardown ran no relay task"
# Gone, or a zombie its new parent has not reaped yet (it ran detached: the module that started it exited).
case "$(ps -o stat= -p "$pid2" 2>/dev/null)" in ''|Z*) ;; *) fail "the relay still runs after teardown" ;; esac
[ ! -e "$STATE/$SLUG" ] || fail "the state directory (sockets) is left: $(ls -R "$STATE/$SLUG")"
step "passed"
