#!/usr/bin/env bash
# The operator's seat (issue 21) against a real bottle (docker backend), as a new operator walks it: every step
# must succeed on its first try.
#   1. define an agent and its policy (an inventory), launch its bottle
#   2. the test internet answers every name through its own DNS server (egress's resolv.conf points at it):
#      nothing is ever asked of this machine's resolver or of any outside address
#   3. play the agent's part over MCP from inside the bottle: it asks for hosts; the operator decides them with
#      playbooks/supervise.yml (one for every bottle of the agent); a note the shell split is refused with the fix,
#      and the quoting it names works
#   4. an approved name that does not resolve, one whose certificate fails, one answering 500: each its own
#      audit action and rule, the agent's answer ("egress allowed this; the upstream failed: ...", never
#      "blocked"), the console's count (failed, not refused); three HTTPS requests count as three
#   5. the agent asks for a route with a credential; the console (headless) modifies and approves it in one
#      step, the credential typed at its masked prompt; the upstream receives it; nothing of it is in any log,
#      the state (but egress's private tokens file), the archive, or a process listing taken during the decision
#   6. status, teardown (names the agent-wide approval it leaves, and how to take it back), the archive, the
#      take-back
# State, agents and archives live in a temporary folder (never ~/.bot-bottle); the trap removes everything.
# Run it under the Docker lock: flock /tmp/bb-docker.lock bash tests/integration/operator_seat.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
export PYTHONPATH="$root/console:$root/.build/collections${PYTHONPATH:+:$PYTHONPATH}"
run_id=$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
agent=ops instance=$run_id slug="ops-$run_id"
NET="bb-testnet-ops-$run_id" SERVER="bb-testnet-ops-$run_id-server" BT_SUBNET=172.28.247.0/24
work=$(mktemp -d /tmp/bb-operator-seat.XXXXXX)
chmod 755 "$work"
state_root="$work/state" archive_root="$work/archive" inv="$work/inventory.yml"
start=$(date +%s)
step() { printf '\n--- operator seat [%3ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }
fail() { printf 'OPERATOR SEAT TEST FAILED: %s\n' "$*" >&2; exit 1; }
# shellcheck source=tests/integration/lib/testnet.sh
. "$root/tests/integration/lib/testnet.sh"
ps_pid=""

cleanup() {
  local rc=$?
  step "cleanup (exit $rc)"
  [ -z "$ps_pid" ] || kill "$ps_pid" 2>/dev/null || true
  if docker ps -aq --filter "label=io.botbottle.bottle=$slug" | grep -q .; then
    ansible-playbook -i "$inv" playbooks/teardown.yml -e bottle="$slug" -e bottle_archive=false \
      >"$work/cleanup-teardown.log" 2>&1 || { echo "teardown failed:"; tail -20 "$work/cleanup-teardown.log"; }
  fi
  bt_testnet_remove "$NET" "$SERVER"
  mapfile -t left < <(docker ps -aq --filter "label=io.botbottle.bottle=$slug")
  [ ${#left[@]} -eq 0 ] || { echo "containers left behind: ${left[*]}"; docker rm -f "${left[@]}" >/dev/null 2>&1 || true; }
  mapfile -t left < <(docker network ls -q --filter "label=io.botbottle.bottle=$slug")
  [ ${#left[@]} -eq 0 ] || { echo "networks left behind: ${left[*]}"; docker network rm "${left[@]}" >/dev/null 2>&1 || true; }
  rm -rf "$work" 2>/dev/null || sudo -n rm -rf "$work" 2>/dev/null || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "the test internet: testnet on $NET, with its own DNS server"
# badcert.bottle.test is served with the testnet's certificate, which does not name it: TLS verify fails.
bt_testnet operator-seat "$NET" "$SERVER" "$work/ca.pem" allowed.bottle.test
server_ip=$(docker inspect --format "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$SERVER")
# gone.bottle.test is in no zone: NXDOMAIN from the test internet's server, never asked anywhere else.
zone=()
for name in allowed.bottle.test other.bottle.test api.bottle.test badcert.bottle.test pypi.org; do
  zone+=("$name=A:$server_ip")
done
docker exec -d "$SERVER" python3 /srv/testnet/dnsserver.py --listen 0.0.0.0:53 --log "${zone[@]}"
docker exec -i "$SERVER" python3 - <<'PY' || fail "the test internet's DNS server does not answer (an older testnet image?)"
import socket, struct, time
name = b"".join(bytes([len(label)]) + label.encode() for label in "allowed.bottle.test".split(".")) + b"\0"
query = struct.pack("!HHHHHH", 7, 0x100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(0.5)
for _ in range(20):
    try:
        sock.sendto(query, ("127.0.0.1", 53))
        answer = sock.recv(512)
        break
    except OSError:
        time.sleep(0.2)
else:
    raise SystemExit("no answer")
assert answer[3] & 15 == 0 and struct.unpack("!H", answer[6:8])[0] == 1, answer
PY

cat >"$inv" <<YAML
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
  vars:
    bottle_state_root: $state_root
    bottle_archive_root: $archive_root
    bottle_bundle_image: "${BB_BUNDLE_IMAGE:-botbottle/bundle:latest}"
    bottle_bundle_extra_networks: [$NET]
    bottle_ssrf_ip_allowlist: [$SUBNET]
    bottle_upstream_ca_file: $work/ca.pem
    bottle_agents:
      $agent:
        description: operator seat test agent; no LLM is ever called.
        policy: $agent
        prompt: You are the operator seat test agent of the botbottle test suite.
    bottle_policies:
      $agent:
        allowed_domains: [allowed.bottle.test]
        supervise: {wait_seconds: 1, max_pending: 10}
YAML
playbook() { ansible-playbook -i "$inv" "$@"; }

step "launch bottle $slug of agent $agent"
playbook playbooks/bottle.yml -e agent=$agent -e bottle_instance="$instance" >"$work/launch.log" 2>&1 \
  || { tail -40 "$work/launch.log"; fail "the bottle did not launch"; }
bundle="bb-$slug-bundle" agent_c="bb-$slug-agent"
# egress resolves through the test internet's DNS server from now on (it reads resolv.conf again on change).
docker exec -u root "$bundle" sh -c "printf 'nameserver %s\noptions ndots:0\n' $server_ip > /etc/resolv.conf"
in_agent() { docker exec -u agent "$agent_c" bash -c "$1"; }
bundle_ip=$(docker inspect --format "{{(index .NetworkSettings.Networks \"bb-$slug-net-int\").IPAddress}}" "$bundle")
docker exec -i -u agent "$agent_c" bash -c 'cat > /tmp/mcp_call.js' <extensions/molecule/supervise/files/mcp_call.js
mcp() { in_agent "node /tmp/mcp_call.js http://$bundle_ip:9100/mcp $1 '$2'"; }
pending_id() { python3 -c 'import json,sys; a=json.loads(sys.argv[1]); assert a["status"]=="pending", a; print(a["id"])' "$1"; }
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

step "the agent asks (MCP) for four hosts; the operator decides them with playbooks/supervise.yml"
id_gone=$(pending_id "$(mcp request_domain '{"host": "gone.bottle.test", "justification": "docs mirror"}')")
id_bad=$(pending_id "$(mcp request_domain '{"host": "badcert.bottle.test", "justification": "build cache"}')")
id_500=$(pending_id "$(mcp request_domain '{"host": "other.bottle.test", "justification": "status page"}')")
id_pypi=$(pending_id "$(mcp request_domain '{"host": "pypi.org", "justification": "python packages"}')")
playbook playbooks/supervise.yml >"$work/list.log" 2>&1 || { tail -20 "$work/list.log"; fail "listing the asks"; }
for id in "$id_gone" "$id_bad" "$id_500" "$id_pypi"; do grep -q "$id" "$work/list.log" || fail "the listing lacks ask $id"; done
playbook playbooks/supervise.yml -e decide=approve -e id="$id_gone" -e scope=agent >"$work/approve-gone.log" 2>&1 \
  || { tail -20 "$work/approve-gone.log"; fail "approving gone.bottle.test for the agent"; }
for id in "$id_bad" "$id_500"; do
  playbook playbooks/supervise.yml -e decide=approve -e id="$id" >"$work/approve-$id.log" 2>&1 \
    || { tail -20 "$work/approve-$id.log"; fail "approving ask $id"; }
done
echo "approved: gone.bottle.test (every bottle of $agent), badcert.bottle.test, other.bottle.test"

step "a note the shell split is refused with the fix; the quoting it names works"
# shellcheck disable=SC2140  # the operator's mistake, on purpose: the shell passes note=use the internal mirror
if playbook playbooks/supervise.yml -e decide=reject -e id="$id_pypi" -e note="use the internal mirror" \
  >"$work/split.log" 2>&1; then
  fail "a note the shell split was accepted"
fi
if ! { grep -q "cut at its first space" "$work/split.log" && grep -q "Quote the value twice, -e 'note=.\?\"use the internal mirror" "$work/split.log"; }; then
  tail -20 "$work/split.log"; fail "the split note's refusal does not say the fix"
fi
[ "$(field "$(mcp proposal_status "{\"id\": \"$id_pypi\"}")" status)" = pending ] || fail "the split note decided something"
playbook playbooks/supervise.yml -e decide=reject -e id="$id_pypi" -e 'note="use the internal mirror"' \
  >"$work/reject.log" 2>&1 || { tail -20 "$work/reject.log"; fail "the quoting the refusal names did not work"; }
status=$(mcp proposal_status "{\"id\": \"$id_pypi\"}")
python3 -c 'import json,sys; a=json.loads(sys.argv[1]); assert a["status"]=="rejected" and a["note"]=="use the internal mirror", a' \
  "$status" || fail "the agent did not read the whole note: $status"
echo "refused with the fix; then rejected with the whole note"

step "upstream failures after an approval: the agent's answer, the audit, the console's counts"
answer() {  # the agent's curl through egress: "CODE RULE" on the first line, then the body
  in_agent "curl -sS --max-time 20 -D /tmp/h -o /tmp/b -w '%{http_code}' '$1' 2>/dev/null; \
    printf ' %s\n' \"\$(tr -d '\r' </tmp/h | sed -n 's/^[Xx]-[Bb]ottle-[Ee]gress-[Rr]ule: //p' | head -1)\"; cat /tmp/b" || true
}
expect_failed() {  # URL RULE: 502, egress's own words naming the rule, never "blocked"
  local got
  got=$(answer "$1")
  echo "$1 -> $(head -c 300 <<<"$got")"
  [ "$(head -1 <<<"$got")" = "502 $2" ] || fail "$1: expected 502 with rule $2, got: $got"
  grep -q "^egress allowed this; the upstream failed: .*(rule $2)" <<<"$got" || fail "$1: not egress's words: $got"
  ! grep -qi blocked <<<"$got" || fail "$1: the agent reads 'blocked': $got"
}
expect_failed "https://gone.bottle.test/docs" upstream-dns
expect_failed "https://badcert.bottle.test/cache" upstream-tls
got=$(answer "https://other.bottle.test/status?code=500")
echo "https://other.bottle.test/status?code=500 -> $(head -c 200 <<<"$got")"
[ "$(head -1 <<<"$got")" = "500 " ] || fail "the upstream's 500 did not reach the agent as it was: $got"
grep -q '"status": 500' <<<"$got" || fail "the agent did not get the upstream's own answer: $got"
for n in 1 2 3; do
  [ "$(in_agent "curl -sS --max-time 20 -o /dev/null -w '%{http_code}' https://allowed.bottle.test/three-$n")" = 200 ] \
    || fail "request $n to allowed.bottle.test"
done
python3 - "$state_root/$slug/audit/egress.jsonl" <<'PY' || fail "the audit does not tell the three failures apart"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
def of(host):
    return [(l["event"], l["action"], l.get("rule"), l.get("status")) for l in lines if l.get("host") == host]
gone, bad, five = of("gone.bottle.test"), of("badcert.bottle.test"), of("other.bottle.test")
assert ("request", "upstream-error", "upstream-dns", 502) in gone and not any(a == "block" for _e, a, _r, _s in gone), gone
assert ("outcome", "upstream-error", "upstream-tls", None) in bad and not any(a == "block" for _e, a, _r, _s in bad), bad
assert ("outcome", "upstream-error", "upstream-status", 500) in five and not any(a == "block" for _e, a, _r, _s in five), five
allowed = of("allowed.bottle.test")
assert sum(e == "outcome" and a == "complete" for e, a, _r, _s in allowed) == 3, allowed
print("audit: gone %s; badcert %s; other %s" % (gone[-1], bad[-1], five[-1]))
PY
python tests/integration/operator_seat/drive.py "$state_root" "$slug" view gone.bottle.test badcert.bottle.test \
  other.bottle.test allowed.bottle.test >"$work/view.json" || { cat "$work/view.json"; fail "the console did not show the hosts"; }
python3 - "$work/view.json" <<'PY' || fail "the console's counts are not the expected ones"
import json, sys
seen = json.load(open(sys.argv[1]))
rows = {r["host"]: r for r in seen["firewall"]}
for host, rule in (("gone.bottle.test", "upstream-dns"), ("badcert.bottle.test", "upstream-tls"),
                   ("other.bottle.test", "upstream-status")):
    r = rows[host]
    assert (r["allowed"], r["refused"], r["failed"]) == (0, 0, 1) and r["failures"] == {rule: 1}, r
r = rows["allowed.bottle.test"]
assert (r["allowed"], r["refused"], r["failed"]) == (3, 0, 0), r
assert seen["agent_approvals"] == ["domain gone.bottle.test"], seen["agent_approvals"]
print("console: failed 1 each (upstream-dns, upstream-tls, upstream-status), refused 0; allowed.bottle.test allowed 3")
PY

step "a route with a credential: the console modifies and approves it in one step, the credential typed masked"
token="opsk-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
( umask 077; printf '%s' "$token" >"$work/token" )
route_ask=$(mcp request_route '{"host": "api.bottle.test", "justification": "the issue tracker API", "auth_ref": "OPS_API_TOKEN", "matches": [{"paths": [{"type": "prefix", "value": "/v1/"}], "methods": ["GET", "POST"]}]}')
id_route=$(pending_id "$route_ask")
# Every process's command line, sampled while the console decides (the credential must never be on one).
( while :; do ps -eo args >>"$work/ps.txt" 2>/dev/null; sleep 0.2; done ) &
ps_pid=$!
python tests/integration/operator_seat/drive.py "$state_root" "$slug" modify-approve "$id_route" \
  '{"matches": [{"methods": ["GET"]}]}' "$work/token" >"$work/route.json" \
  || { cat "$work/route.json"; fail "the console did not modify and approve the route"; }
kill "$ps_pid"; wait "$ps_pid" 2>/dev/null || true; ps_pid=""
python3 - "$work/route.json" <<'PY' || fail "the console's prompt or log is not the expected one"
import json, sys
seen = json.load(open(sys.argv[1]))
assert "OPS_API_TOKEN" in seen["prompt"] and "masked" in seen["prompt"], seen["prompt"]
assert seen["masked"] and not seen["token_in_log"], seen
assert "done approve" in seen["log"] and "now approved" in seen["log"], seen["log"]
PY
status=$(mcp proposal_status "{\"id\": \"$id_route\"}")
python3 -c 'import json,sys; a=json.loads(sys.argv[1]); assert a["status"]=="approved", a' "$status" \
  || fail "the agent does not see its route approved: $status"
[ "$(in_agent "curl -sS --max-time 20 -o /dev/null -w '%{http_code}' https://api.bottle.test/v1/issues")" = 200 ] \
  || fail "GET on the approved route did not reach the upstream"
got=$(in_agent "curl -sS --max-time 20 -o /dev/null -w '%{http_code}' -X POST -d x=1 https://api.bottle.test/v1/issues" || true)
[ "$got" = 403 ] || fail "POST went through a route narrowed to GET: HTTP $got"
docker exec "$SERVER" cat /var/log/testnet/requests.jsonl >"$work/upstream.jsonl"
python3 - "$work/upstream.jsonl" "$work/token" <<'PY' || fail "the upstream did not receive the credential"
import json, sys
token = open(sys.argv[2]).read().strip()
got = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
api = [r for r in got if r["host"] == "api.bottle.test"]
assert [r["method"] for r in api] == ["GET"], [(r["method"], r["path"]) for r in api]
assert api[0]["headers"].get("authorization") == "Bearer " + token, "no credential upstream"
print("the upstream received GET /v1/issues with the credential typed at the prompt; the POST never left egress")
PY

tokens_file="$state_root/$slug/private/egress/tokens.json"
[ "$(stat -c %a "$tokens_file")" = 600 ] || fail "egress's tokens file is not 0600"
leaks=$(grep -rlF "$token" "$state_root" "$work/agents" 2>"$work/grep-state.err" | grep -vxF "$tokens_file" || true)
[ ! -s "$work/grep-state.err" ] || { cat "$work/grep-state.err"; fail "part of the state could not be read for the credential"; }
grep -qF "$token" "$tokens_file" || fail "egress's tokens file does not hold the credential (the search would find nothing)"
[ -z "$leaks" ] || fail "the credential is in: $leaks"
for c in "$bundle" "$agent_c"; do
  # Read whole first: under pipefail, grep -q's early exit (a match) would SIGPIPE docker logs and '!' pass it.
  ! grep -qF "$token" <<<"$(docker logs "$c" 2>&1)" || fail "the credential is in docker logs $c"
done
! grep -qF "$token" <<<"$(in_agent "env; cat /proc/*/cmdline 2>/dev/null | tr '\\0' ' '")" || fail "the agent sees the credential"
echo "the credential is only in egress's private tokens file (0600): not in the state's other files, docker logs, the agent"

step "status: the bottle, its asks, its requests by host"
playbook playbooks/status.yml -e bottle="$slug" -e bottle_status_file="$work/status.json" >"$work/status.log" 2>&1 \
  || { tail -20 "$work/status.log"; fail "status.yml"; }
grep -E "$slug: (gone|badcert|other|allowed)\.bottle\.test" "$work/status.log" | sed 's/^ *"//; s/",\?$//'
python3 - "$work/status.json" "$slug" <<'PY' || fail "status does not count as the console does"
import json, sys
b = [b for h in json.load(open(sys.argv[1]))["hosts"] for b in h["bottles"] if b["slug"] == sys.argv[2]][0]
rows = {r["host"]: r for r in b["firewall"]}
assert all((rows[h]["refused"], rows[h]["failed"]) == (0, 1) for h in ("gone.bottle.test", "badcert.bottle.test",
                                                                       "other.bottle.test")), rows
assert rows["allowed.bottle.test"]["allowed"] == 3, rows["allowed.bottle.test"]
assert all(v == "healthy" for v in b["health"].values()), b["health"]
PY

step "teardown names the agent-wide approval it leaves, and how to take it back; the audit is archived"
playbook playbooks/teardown.yml -e bottle="$slug" >"$work/teardown.log" 2>&1 || { tail -30 "$work/teardown.log"; fail "teardown"; }
grep -o "agent $agent has no bottle left[^\"]*" "$work/teardown.log" | head -1 | tee "$work/left.txt"
if ! { grep -q "gone.bottle.test" "$work/left.txt" && grep -q "supervise.yml -e agent=$agent -e revoke=<host>" "$work/left.txt"; }; then
  fail "teardown did not name the agent-wide approval and how to take it back"
fi
[ -z "$(docker ps -aq --filter "label=io.botbottle.bottle=$slug")" ] || fail "the bottle's containers are still there"
playbook playbooks/status.yml -e archived=true -e bottle="$slug" -e bottle_status_file="$work/archived.json" \
  >"$work/archived.log" 2>&1 || { tail -20 "$work/archived.log"; fail "status.yml -e archived=true"; }
python3 - "$work/archived.json" "$slug" <<'PY' || fail "the archive does not hold the bottle's audit"
import json, sys
archives = [a for h in json.load(open(sys.argv[1]))["hosts"] for a in h["archives"]]
assert [a["slug"] for a in archives] == [sys.argv[2]], archives
a = archives[0]
assert a["asks"] == 5 and a["decisions"] >= 5 and a["failed"] == 3 and a["allowed"] >= 4, a
print("archive %s: %d asks, %d decisions, allowed %d, refused %d, failed upstream %d"
      % (a["path"], a["asks"], a["decisions"], a["allowed"], a["refused"], a["failed"]))
PY
playbook playbooks/supervise.yml -e agent=$agent -e revoke=gone.bottle.test >"$work/revoke.log" 2>&1 \
  || { tail -20 "$work/revoke.log"; fail "taking back the agent-wide approval"; }
grep -q "taken back: domain gone.bottle.test" "$work/revoke.log" || fail "the take-back did not say what it removed"
! grep -q gone.bottle.test "$work/agents/$agent/supervise-approved.json" || fail "the agent-wide approval is still there"

step "nothing of the credential in the archive, any playbook's or the console's output, or a process listing"
grep -c '^' "$work/ps.txt" | sed 's/^/process list lines sampled during the decision: /'
grep -q "drive.py" "$work/ps.txt" || fail "the process listings missed the console's run"
leaks=$(grep -rlF "$token" "$work" --exclude=token --exclude=upstream.jsonl 2>/dev/null || true)
[ -z "$leaks" ] || fail "the credential is in: $leaks"
! grep -qF "$token" <<<"$(docker logs "$SERVER" 2>&1)" || fail "the credential is in the test server's log"
echo "not in: the archive, the console's output, every playbook's output, ps (sampled), the agent's approvals"
step "passed"
