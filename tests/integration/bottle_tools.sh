#!/usr/bin/env bash
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Real work from inside the agent of a real bottle (docker backend), against the test internet's
# registries (botbottle/testregistries, built by make test-images: Verdaccio as registry.bottle.test,
# pypiserver as pypi.bottle.test:8443, git's smart HTTP as git.bottle.test:8443), with the bundle's
# resolver pointed at the dropping DNS server of that container (images/testnet/dnsserver.py, half of
# the queries arriving together dropped):
#   1. name lookups: three bursts of 18 parallel HTTPS requests (new tunnels) to the three names, the
#      third after the TTL. Egress sends one lookup per name per TTL (the DNS server's own log, with
#      times: a lookup's queries, retries included, then none until its answer's TTL is over; a new
#      lookup in the third burst), some queries are dropped, and no lookup takes 1 s from its first
#      query to its A answer.
#   2. TLS is verified with the bottle's CA, and only with it: with another CA in its place in the
#      agent's trust store (where bottle_provision puts it), npm ci, pip install and git clone fail,
#      each with a certificate verification error; nothing in the agent turns verification off.
#   3. with the bottle's CA back: npm ci of a fixed lockfile, pip install -r of a fixed requirements
#      file (into a venv) and git clone over HTTPS succeed, and what they installed is what was asked.
# (tests/integration/agent_clients.sh proves the same clients' CA variables offline in the bare
# image; bench/tools.py measures these installs' speed. This is the path through egress.)
# Nothing leaves this machine: the bundle joins a network of this run only. Everything it creates
# is removed in the trap. Last line: "N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
run_id=$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
slug="tools-it$run_id"
NET="bb-tools-it-$run_id" REGISTRIES="bb-tools-it-$run_id-registries" SUBNET=
REGISTRIES_IMAGE=${TESTREGISTRIES_IMAGE:-botbottle/testregistries:latest}
TTL=6
work=$(mktemp -d /tmp/bb-tools-it.XXXXXX)
chmod 755 "$work"
passed=0 failed=0
start=$(date +%s)
step() { printf '\n--- bottle_tools [%3ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
fatal() { bad "$*"; exit 1; }

cleanup() {
  local rc=$?
  step "cleanup"
  ansible-playbook -i "$work/inventory.yml" playbooks/teardown.yml -e bottle="$slug" -e bottle_archive=false \
    >"$work/teardown.log" 2>&1 || { echo "teardown failed:"; tail -20 "$work/teardown.log"; }
  docker rm -f "$REGISTRIES" >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
  mapfile -t left < <(docker ps -aq --filter "label=io.botbottle.bottle=$slug")
  [ ${#left[@]} -eq 0 ] || { echo "containers left behind: ${left[*]}"; docker rm -f "${left[@]}" >/dev/null 2>&1 || true; }
  rm -rf "$HOME/.bot-bottle/archive/$slug-"* "$work" 2>/dev/null || true
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ] && [ "$rc" -eq 0 ] && exit 0
  exit 1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "the test registries on $NET (dropping DNS server on :53, TTL $TTL s)"
for image in "$REGISTRIES_IMAGE" "${BB_BUNDLE_IMAGE:-botbottle/bundle:latest}" "${AGENT_IMAGE:-botbottle/agent:latest}"; do
  docker image inspect "$image" >/dev/null 2>&1 || fatal "no $image: make test-images builds it"
done
# The first of these subnets no other network holds (another run beside this one may hold one).
made=""
for SUBNET in ${BOTTLE_TOOLS_SUBNET:-172.28.245.0/24 172.28.244.0/24 172.28.243.0/24 172.28.242.0/24}; do
  if docker network create --subnet "$SUBNET" --label io.botbottle.test=bottle_tools "$NET" >/dev/null 2>&1; then
    made=1; break
  fi
done
[ -n "$made" ] || fatal "network $NET: every candidate subnet is taken (set BOTTLE_TOOLS_SUBNET)"
docker run -d --name "$REGISTRIES" --label io.botbottle.test=bottle_tools --network "$NET" \
  --network-alias registry.bottle.test --network-alias pypi.bottle.test --network-alias git.bottle.test \
  -e DNS_DROP_SHARE=0.5 -e DNS_TTL=$TTL -e DNS_WINDOW=0.1 -e DNS_LOG=1 "$REGISTRIES_IMAGE" >/dev/null \
  || fatal "the registries container did not start"
up=""
for _ in $(seq 1 180); do
  if docker exec "$REGISTRIES" sh -c 'curl -sf --cacert /srv/registries/ca.pem --resolve registry.bottle.test:443:127.0.0.1 https://registry.bottle.test/-/ping >/dev/null && curl -sf --cacert /srv/registries/ca.pem --resolve git.bottle.test:8443:127.0.0.1 "https://git.bottle.test:8443/project.git/info/refs?service=git-upload-pack" >/dev/null'; then
    up=1; break
  fi
  sleep 1
done
[ -n "$up" ] || { docker logs "$REGISTRIES" 2>&1 | tail -20; fatal "the registries did not answer in 180 s"; }
docker exec "$REGISTRIES" cat /srv/registries/ca.pem >"$work/registries-ca.pem"
registries_ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$REGISTRIES")
mkdir -p "$work/project"
for path in /srv/seed/npm/package-lock.json /srv/seed/pip/requirements.txt; do
  docker cp "$REGISTRIES:$path" "$work/" >/dev/null || fatal "no $path in $REGISTRIES_IMAGE"
done
# The fixed projects: express and what it needs, out of the seeded lockfile (npm ci of that
# lockfile); requests and its dependencies, pinned as the seeded requirements pin them.
python3 - "$work/package-lock.json" "$work/project" <<'PY' || fatal "could not cut the fixed lockfile"
import json, os, sys
lock = json.load(open(sys.argv[1]))
packages = lock["packages"]
wanted, todo = {}, ["node_modules/express"]
while todo:
    path = todo.pop()
    if path in wanted:
        continue
    wanted[path] = packages[path]
    for dep in packages[path].get("dependencies", {}):
        # Node's lookup: a nested node_modules first, then each parent's, then the top.
        base = path
        while True:
            candidate = base + "/node_modules/" + dep
            if candidate in packages:
                break
            if "/node_modules/" not in base:
                candidate = "node_modules/" + dep
                break
            base = base.rsplit("/node_modules/", 1)[0]
        todo.append(candidate)
version = packages["node_modules/express"]["version"]
root = {"name": "bottle-tools-test", "version": "1.0.0", "dependencies": {"express": version}}
lock_out = {"name": root["name"], "version": root["version"], "lockfileVersion": 3, "requires": True,
            "packages": dict([("", root)] + sorted(wanted.items()))}
json.dump(dict(root, private=True), open(os.path.join(sys.argv[2], "package.json"), "w"), indent=2)
json.dump(lock_out, open(os.path.join(sys.argv[2], "package-lock.json"), "w"), indent=2)
assert all(p["resolved"].startswith("https://registry.bottle.test/") for p in wanted.values())
print("npm project: express %s, %d packages" % (version, len(wanted)))
PY
grep -iE '^(requests|urllib3|idna|certifi|charset[-_]normalizer)==' "$work/requirements.txt" >"$work/project/requirements.txt"
[ "$(wc -l <"$work/project/requirements.txt")" -eq 5 ] || fatal "the seeded requirements lack requests' five files"
express_version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dependencies"]["express"])' "$work/project/package.json")
requests_version=$(grep -i '^requests==' "$work/project/requirements.txt" | cut -d= -f3)
git_head=$(docker exec "$REGISTRIES" git --git-dir=/srv/git/project.git rev-parse main)

cat >"$work/inventory.yml" <<YAML
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
  vars:
    ANTHROPIC_API_KEY: tools-test-model-key-not-real
    bottle_bundle_image: "${BB_BUNDLE_IMAGE:-botbottle/bundle:latest}"
    bottle_agent_image: "${AGENT_IMAGE:-botbottle/agent:latest}"
    bottle_bundle_extra_networks: [$NET]
    bottle_ssrf_ip_allowlist: [$SUBNET]
    bottle_upstream_ca_file: $work/registries-ca.pem
    bottle_supervise_enabled: false
    bottle_agents:
      tools:
        description: bottle_tools test agent; no model is called.
        policy: tools
    bottle_policies:
      tools:
        model: {credential: api_key}
        allowed_domains: [registry.bottle.test, pypi.bottle.test, git.bottle.test]
        firewall:
          ports: [443, 8443]
YAML

step "launch bottle $slug"
ansible-playbook -i "$work/inventory.yml" playbooks/bottle.yml -e agent=tools -e bottle_instance="it$run_id" \
  >"$work/launch.log" 2>&1 || { tail -40 "$work/launch.log"; fatal "the bottle did not launch"; }
agent="bb-$slug-agent" bundle="bb-$slug-bundle"
in_agent() { docker exec -u agent -w /home/agent/work "$agent" bash -c "$1"; }
docker exec -u agent "$agent" mkdir -p /home/agent/work/project
for name in package.json package-lock.json requirements.txt; do
  chmod 644 "$work/project/$name"
  docker cp "$work/project/$name" "$agent:/home/agent/work/project/$name" >/dev/null
done

step "egress's resolver -> the dropping DNS server ($registries_ip)"
# The bundle's resolv.conf, as a container's dns: setting writes it; egress reads it again when it
# changes. Docker's embedded DNS would answer the registries' network aliases itself.
docker exec -u root "$bundle" sh -c "printf 'nameserver %s\noptions ndots:0\n' $registries_ip > /etc/resolv.conf" \
  || fatal "could not point the bundle's resolver at the dropping DNS server"

urls=(https://registry.bottle.test/-/ping https://pypi.bottle.test:8443/simple/
      "https://git.bottle.test:8443/project.git/info/refs?service=git-upload-pack")
# burst N: 18 requests at once (6 per name), each a new tunnel; one line "code seconds" each.
burst() {
  local script="" url
  for _ in 1 2 3 4 5 6; do
    for url in "${urls[@]}"; do
      script+="curl -s --max-time 20 -o /dev/null -w '%{http_code} %{time_total}\n' '$url' & "
    done
  done
  in_agent "${script} wait" >"$work/burst-$1.txt" 2>&1
  local codes slowest
  codes=$(cut -d' ' -f1 "$work/burst-$1.txt" | sort | uniq -c | tr -s ' ' | tr '\n' ';')
  slowest=$(sort -k2 -n "$work/burst-$1.txt" | tail -1 | cut -d' ' -f2)
  if [ "$(grep -c '^200 ' "$work/burst-$1.txt")" -eq 18 ]; then
    ok "burst $1: 18 parallel requests over new tunnels answered 200 (slowest ${slowest} s)"
  else
    bad "burst $1: not every request answered 200 (codes: $codes)"
  fi
}
step "name lookups under a dropping resolver"
mark() { date +%s.%N; }
b1=$(mark); burst 1; burst 2
# The third burst once the first burst's answers have expired: TTL s after the last of them came.
last_answer=$(docker logs "$REGISTRIES" 2>/dev/null | awk -v b1="$b1" '$1 == "dns" && $2 >= b1 && $5 == "answered" {t = $2} END {printf "%.3f\n", t}')
sleep "$(python3 -c "import time; print('%.2f' % max(0.0, $last_answer + $TTL + 0.5 - time.time()))")"
b3=$(mark); burst 3
docker logs "$REGISTRIES" 2>/dev/null | grep '^dns ' >"$work/dns.log"
python3 - "$work/dns.log" "$b1" "$b3" "$TTL" <<'PY' >"$work/dns-check.txt"
import sys
b1, b3, ttl = (float(x) for x in sys.argv[2:5])
names = ["registry.bottle.test", "pypi.bottle.test", "git.bottle.test"]
rows = sorted((float(t), name, qtype, verdict) for _dns, t, name, qtype, verdict in
              (line.split() for line in open(sys.argv[1])) if float(t) >= b1)
# One lookup's attempts follow each other within 0.8 s (waits of 0.2, 0.4, 0.8 s; a starved egress
# also retries an answer it read late); a new lookup of the name may start only once the answer's
# TTL (6 s) is over. So a query within GAP s of the one before belongs to the same lookup.
GAP = 1.5
dropped = sum(1 for row in rows if row[3] == "dropped")
for name in names:
    lookups = []  # [first query, [(t, type, verdict)]]
    for t, qname, qtype, verdict in rows:
        if qname != name:
            continue
        if lookups and t - lookups[-1][1][-1][0] <= GAP:
            lookups[-1][1].append((t, qtype, verdict))
        else:
            lookups.append([t, [(t, qtype, verdict)]])
    problems, answered = [], []
    for first, queries in lookups:
        a = [t for t, qtype, verdict in queries if qtype == "A" and verdict == "answered"]
        if not a:
            problems.append("a lookup at %.3f got no A answer: %r" % (first, queries))
            continue
        if a[0] - first >= 1.0:
            problems.append("a lookup took %.3f s (over 1 s): %r" % (a[0] - first, queries))
        if answered and first < answered[-1] + ttl:
            problems.append("a lookup at %.3f, %.3f s after the previous answer: within its TTL (%g s)"
                            % (first, first - answered[-1], ttl))
        answered.append(a[0])
    if not any(first < b3 for first, _q in lookups):
        problems.append("no lookup during the first two bursts")
    if not any(first >= b3 for first, _q in lookups):
        problems.append("no new lookup in the third burst, after the TTL")
    if problems:
        print("FAIL %s: %s" % (name, "; ".join(problems)))
    else:
        print("ok   %s: %d lookups for 54 tunnels, each its TTL after the one before, each answered within "
              "%.3f s (%s queries)" % (name, len(lookups), max(t - f for (f, _q), t in zip(lookups, answered)),
                                         "+".join(str(len(q)) for _f, q in lookups)))
if dropped:
    print("ok   the DNS server dropped %d queries of these bursts: egress's retries were exercised" % dropped)
else:
    print("FAIL the DNS server dropped no query: the retry path was not exercised")
PY
while IFS= read -r line; do
  case $line in ok*) ok "${line#ok   }" ;; *) bad "${line#FAIL }" ;; esac
done <"$work/dns-check.txt"

step "nothing in the agent turns TLS verification off"
# shellcheck disable=SC2016  # the agent's shell expands it
off=$(in_agent 'env | grep -E "^(GIT_SSL_NO_VERIFY|NODE_TLS_REJECT_UNAUTHORIZED|PIP_TRUSTED_HOST|PYTHONHTTPSVERIFY|CURL_INSECURE)=" ;
  [ "$(npm config get strict-ssl)" = true ] || echo "npm strict-ssl $(npm config get strict-ssl)";
  [ "$(git config --get http.sslVerify || echo unset)" != false ] || echo "git http.sslVerify false";
  python3 -m pip config list 2>/dev/null | grep -i trusted-host || true' 2>&1)
if [ -z "$off" ]; then ok "no variable or setting of npm, pip or git turns verification off"; else bad "verification off: $off"; fi

npm_ci="cd project && rm -rf node_modules && npm ci --no-fund --no-audit --registry https://registry.bottle.test/ --fetch-retries 0 --cache /tmp/npm-cache-\$RANDOM"
pip_install="rm -rf /tmp/venv && python3 -m venv /tmp/venv && /tmp/venv/bin/pip install --no-cache-dir --retries 0 --timeout 20 --index-url https://pypi.bottle.test:8443/simple/ -r project/requirements.txt"
git_clone="rm -rf clone && git clone https://git.bottle.test:8443/project.git clone"
# name | command | a certificate verification error as the client words it
clients=(
  "npm ci|$npm_ci|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|unable to get local issuer certificate|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE"
  "pip install|$pip_install|CERTIFICATE_VERIFY_FAILED"
  "git clone|$git_clone|SSL certificate problem|server certificate verification failed|server verification failed: certificate signer not trusted"
)

step "another CA in the bottle CA's place: every client refuses egress's certificate"
ca_path=/usr/local/share/ca-certificates/bottle-ca.crt
docker exec -u root "$agent" cat "$ca_path" >"$work/bottle-ca.crt" || fatal "no bottle CA at $ca_path in the agent"
set_ca() {
  docker exec -i -u root "$agent" sh -c "cat > $ca_path && update-ca-certificates --fresh >/dev/null 2>&1" <"$1" \
    || fatal "could not install $1 in the agent's trust store"
}
# The wrong CA: the registries' own (the upstream's CA, which egress does not present to the agent).
set_ca "$work/registries-ca.pem"
for entry in "${clients[@]}"; do
  IFS='|' read -r name command _ <<<"$entry"
  why=${entry#*|*|}
  out=$(timeout 180 docker exec -u agent -w /home/agent/work "$agent" bash -c "$command" 2>&1); rc=$?
  if [ "$rc" -ne 0 ] && grep -Eq "$why" <<<"$out"; then
    ok "$name with another CA fails on certificate verification ($(grep -Eo "$why" <<<"$out" | head -1))"
  else
    bad "$name with another CA: rc $rc, no certificate verification error:"; tail -8 <<<"$out" | sed 's/^/    /'
  fi
done

step "the bottle's CA back: npm ci, pip install -r and git clone over HTTPS"
set_ca "$work/bottle-ca.crt"
for entry in "${clients[@]}"; do
  IFS='|' read -r name command _ <<<"$entry"
  t0=$(mark)
  out=$(timeout 600 docker exec -u agent -w /home/agent/work "$agent" bash -c "$command" 2>&1); rc=$?
  took=$(python3 -c "import time; print('%.1f' % (time.time() - $t0))")
  if [ "$rc" -eq 0 ]; then ok "$name through the bottle (${took} s)"; else bad "$name failed (rc $rc):"; tail -12 <<<"$out" | sed 's/^/    /'; fi
done
got=$(in_agent "node -p 'require(\"./project/node_modules/express/package.json\").version'; /tmp/venv/bin/python -c 'import requests; print(requests.__version__)'; git -C clone rev-parse HEAD; head -1 clone/README.md" 2>&1)
want=$(printf '%s\n%s\n%s\n%s' "$express_version" "$requests_version" "$git_head" "# project")
if [ "$got" = "$want" ]; then
  ok "installed: express $express_version, requests $requests_version; cloned $git_head"
else
  bad "what was installed is not what was asked: got [$got], wanted [$want]"
fi
refused=$(docker logs "$bundle" 2>&1 | grep -c '"rule":"rate-limit"')
if [ "$refused" -eq 0 ]; then ok "no request of these met the rate limit"; else bad "$refused requests refused by the rate limit"; fi
