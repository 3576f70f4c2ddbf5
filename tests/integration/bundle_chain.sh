#!/usr/bin/env bash
# The proxy chain by hand, with plain docker: client -> pipelock (8888) -> egress (9099) ->
# a test HTTPS server of our own. Nothing here talks to any address outside this machine:
# both networks are `internal`, the "internet" is one container with a test CA.
#
#   net-int (internal):  client  <->  bundle
#   net-out (internal):               bundle  <->  server (allowed.bottle.test, blocked.bottle.test)
#
# Checks: health; an allowlisted HTTPS request passes (client trusts the bottle CA); a host
# off the allowlist gets pipelock's 403 with its reason; DLP blocks a GitHub-PAT-shaped token
# and a known secret from dlp-secrets.txt before they reach the server; egress and pipelock's
# metrics are not reachable from the agent network; with egress dead pipelock's upstream
# fails and nothing reaches the server; a dead daemon stops the bundle non-zero, naming it.
#
# BUNDLE_IMAGE: the bundle image to test (default: built from images/bundle as
# bbchain-bundle:test, with the layer cache). Prints "N passed, N failed"; exit 1 on failure.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
export ANSIBLE_CONFIG="$root/ansible.cfg"
prefix="bbchain-$$-$RANDOM"
tmp=$(mktemp -d "/tmp/$prefix.XXXX")
passed=0 failed=0

cleanup() {
  docker rm -f "$prefix-client" "$prefix-bundle" "$prefix-server" >/dev/null 2>&1
  docker network rm "$prefix-int" "$prefix-out" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
nok() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$1"; [ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/      | /' | head -20; }
# expect <name> <output> <grep -E pattern>: the output must match the pattern.
expect() { if printf '%s' "$2" | grep -qE -- "$3"; then ok "$1"; else nok "$1 (wanted /$3/)" "$2"; fi; }
refute() { if printf '%s' "$2" | grep -qE -- "$3"; then nok "$1 (unwanted /$3/)" "$2"; else ok "$1"; fi; }
die() { printf 'setup failed: %s\n' "$*" >&2; printf '%s passed, %s failed\n' "$passed" $((failed + 1)); exit 1; }

# --- image ---------------------------------------------------------------------------------
if [ -z "${BUNDLE_IMAGE:-}" ]; then
  BUNDLE_IMAGE=bbchain-bundle:test
  [ -f images/bundle/extra-ca.pem ] || cp "${EXTRA_CA_FILE:-/etc/ssl/certs/ca-certificates.crt}" images/bundle/extra-ca.pem 2>/dev/null \
    || : >images/bundle/extra-ca.pem
  DOCKER_BUILDKIT=0 docker build -q -t "$BUNDLE_IMAGE" images/bundle >"$tmp/build.log" 2>&1 \
    || die "docker build images/bundle: $(tail -5 "$tmp/build.log")"
fi

# --- test CA, server certificate, the server and the client --------------------------------
mkdir -p "$tmp/certs" "$tmp/etc" "$tmp/ca" "$tmp/bin"
(
  cd "$tmp/certs"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$prefix test CA" \
    -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=allowed.bottle.test" -keyout server.key -out server.csr
  printf 'subjectAltName=DNS:allowed.bottle.test,DNS:blocked.bottle.test\nextendedKeyUsage=serverAuth\n' >ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out server.pem
  chmod 0644 server.key
) >"$tmp/openssl.log" 2>&1 || die "openssl: $(tail -5 "$tmp/openssl.log")"

cat >"$tmp/bin/server.py" <<'EOF'
# Test "internet": answers HTTPS for any name on its certificate, logs each request as JSON.
import http.server, json, ssl
class Handler(http.server.BaseHTTPRequestHandler):
    def serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        print(json.dumps({"method": self.command, "host": self.headers.get("Host"), "path": self.path,
                          "body": body.decode("utf-8", "replace")}), flush=True)
        out = ("hello from %s %s\n" % (self.headers.get("Host"), self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = serve
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("0.0.0.0", 443), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/certs/server.pem", "/certs/server.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
print("listening", flush=True)
server.serve_forever()
EOF

cat >"$tmp/bin/client.py" <<'EOF'
# The agent's side: requests through HTTPS_PROXY trusting the bottle CA, raw CONNECT, TCP probes.
import os, socket, ssl, sys, urllib.error, urllib.request
mode, target = sys.argv[1], sys.argv[2]
proxy = os.environ["HTTPS_PROXY"]
if mode == "get":
    context = ssl.create_default_context(cafile="/ca/bottle-ca.pem")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"https": proxy, "http": proxy}),
                                         urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(target, timeout=20) as response:
            print("STATUS %d" % response.status)
            print(response.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        print("STATUS %d" % exc.code)
        print(exc.read().decode("utf-8", "replace"))
    except (OSError, ssl.SSLError) as exc:
        print("ERROR %s" % exc)
elif mode == "connect":
    host, port = proxy.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        sock.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) == 0:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        print(data.decode("utf-8", "replace"))
elif mode == "tcp":
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        print("open")
    except OSError as exc:
        print("closed: %s" % exc)
EOF

# --- networks and the server ---------------------------------------------------------------
docker network create --internal --label "io.botbottle.test=$prefix" "$prefix-int" >/dev/null || die "network int"
docker network create --internal --label "io.botbottle.test=$prefix" "$prefix-out" >/dev/null || die "network out"
out_subnet=$(docker network inspect -f '{{ (index .IPAM.Config 0).Subnet }}' "$prefix-out")
docker run -d --name "$prefix-server" --network "$prefix-out" \
  --network-alias allowed.bottle.test --network-alias blocked.bottle.test \
  -v "$tmp/certs:/certs:ro" -v "$tmp/bin:/opt/test:ro" --entrypoint python3 "$BUNDLE_IMAGE" \
  -u /opt/test/server.py >/dev/null || die "server"

# --- the bundle's /etc/bottle, rendered from the role's template ---------------------------
secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
known_secret="bbchain-known-$secret"
cat >"$tmp/vars.json" <<EOF
{"bottle_slug": "$prefix",
 "bottle_policy": {"allowed_domains": ["allowed.bottle.test"], "pipelock": {}, "egress": {"routes": []}},
 "bottle_ssrf_ip_allowlist": ["$out_subnet"]}
EOF
"$root/.venv/bin/ansible" localhost -o -m ansible.builtin.template \
  -a "src=$root/roles/bottle/templates/pipelock.yaml.j2 dest=$tmp/etc/pipelock.yaml mode=0644" \
  -e "@$tmp/vars.json" >"$tmp/render.log" 2>&1 || die "render pipelock.yaml: $(tail -3 "$tmp/render.log")"
printf '{"routes": []}\n' >"$tmp/etc/egress.json"
cp "$tmp/certs/ca.pem" "$tmp/etc/upstream-ca.pem"
printf '%s\n' "$known_secret" >"$tmp/etc/dlp-secrets.txt"

start_bundle() {
  docker start "$prefix-bundle" >/dev/null || return 1
  local health
  for _ in $(seq 1 60); do
    health=$(docker exec "$prefix-bundle" bottle-health --json 2>/dev/null) && return 0
    [ "$(docker inspect -f '{{.State.Running}}' "$prefix-bundle")" = true ] || break
    sleep 0.5
  done
  printf 'bundle not healthy: %s\n' "${health:-}"; docker logs "$prefix-bundle" 2>&1 | tail -20
  return 1
}
# Created once, started twice (the second run follows the fail-closed check); a connected
# network survives docker start.
docker create --name "$prefix-bundle" --network "$prefix-int" --network-alias bundle \
  --cap-add NET_ADMIN --security-opt no-new-privileges -e BOTTLE_GRACE_SECONDS=3 \
  -v "$tmp/etc:/etc/bottle:ro" -v "$tmp/ca:/var/lib/bottle/ca" "$BUNDLE_IMAGE" >/dev/null || die "create bundle"
docker network connect "$prefix-out" "$prefix-bundle" || die "connect bundle to net-out"
start_bundle || die "bundle did not become healthy"

health=$(docker exec "$prefix-bundle" bottle-health --json)
expect "bottle-health reports pipelock and egress healthy" "$health" '^\{"egress": "healthy", "pipelock": "healthy"\}$'
expect "the bottle CA key is private to the bundle (0600)" "$(stat -c '%a' "$tmp/ca/bottle-ca.key")" '^600$'

# The client: the agent's position, on net-int only, no capabilities, not root.
docker run -d --name "$prefix-client" --network "$prefix-int" --user 65534:65534 --cap-drop ALL \
  -e HTTPS_PROXY=http://bundle:8888 -v "$tmp/ca:/ca:ro" -v "$tmp/bin:/opt/test:ro" \
  --entrypoint sleep "$BUNDLE_IMAGE" infinity >/dev/null || die "client"
client() { docker exec "$prefix-client" python3 /opt/test/client.py "$@" 2>&1; }
server_log() { docker logs "$prefix-server" 2>&1; }

# --- the chain -----------------------------------------------------------------------------
out=$(client get https://allowed.bottle.test/hello)
expect "allowlisted HTTPS through pipelock and egress reaches the server" "$out" '^STATUS 200'
expect "the answer is the test server's" "$out" 'hello from allowed.bottle.test /hello'
expect "the server saw the request" "$(server_log)" '"path": "/hello"'
expect "pipelock audit log (JSON, prefixed) records the allowed request" \
  "$(docker logs "$prefix-bundle" 2>&1 | grep '^\[pipelock\] {')" 'allowed.bottle.test'

out=$(client connect blocked.bottle.test:443)
expect "CONNECT to a host off the allowlist: pipelock answers 403" "$out" '^HTTP/1.1 403'
expect "... with its reason" "$out" '^CONNECT blocked: domain not in allowlist: blocked.bottle.test'
out=$(client get http://blocked.bottle.test/plain)
expect "plain HTTP to a host off the allowlist: 403 blocked: <reason>" "$out" '^STATUS 403'
expect "... the body names the reason" "$out" 'blocked: .*(allowlist|not in)'
refute "the server never saw blocked.bottle.test" "$(server_log)" 'blocked.bottle.test'

pat="ghp_$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 36)"
out=$(client get "https://allowed.bottle.test/search?q=$pat")
[ -z "${VERBOSE:-}" ] || printf "%s\n" "$out"
expect "a GitHub-PAT-shaped token in a query is blocked by DLP" "$out" '^STATUS 403'
expect "... and the reason names the DLP rule" "$out" '^blocked: .*DLP match: GitHub Token'
out=$(client get "https://allowed.bottle.test/search?q=$known_secret")
[ -z "${VERBOSE:-}" ] || printf "%s\n" "$out"
expect "a secret from dlp-secrets.txt in a query is blocked" "$out" '^STATUS 403'
expect "... as a known secret" "$out" '^blocked: known secret leak'
refute "neither secret reached the server" "$(server_log)" "$pat|$known_secret"

expect "egress (9099) is not reachable from the agent network" "$(client tcp bundle:9099)" '^closed'
expect "pipelock metrics (9090) are not reachable from the agent network" "$(client tcp bundle:9090)" '^closed'

# pipelock's uid reaches nothing off-box except through egress (REJECT is immediate).
out=$(docker exec -u 10001 "$prefix-bundle" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
try:
    s.sendto(b"x", ("'"$(docker inspect -f "{{ (index .NetworkSettings.Networks \"$prefix-out\").IPAddress }}" "$prefix-server")"'", 53)); s.recv(1); print("udp answered")
except OSError as exc: print("udp refused:", exc)
print("dns", socket.gethostbyname("allowed.bottle.test"))' 2>&1)
expect "pipelock's uid cannot send UDP off-box" "$out" 'udp refused'
expect "pipelock's uid still resolves names through docker's DNS" "$out" 'dns [0-9.]+'

# --- SIGHUP: a re-rendered allowlist takes effect without a restart ----------------------
cat >"$tmp/vars.json" <<EOF
{"bottle_slug": "$prefix",
 "bottle_policy": {"allowed_domains": ["allowed.bottle.test", "blocked.bottle.test"]},
 "bottle_ssrf_ip_allowlist": ["$out_subnet"]}
EOF
"$root/.venv/bin/ansible" localhost -o -m ansible.builtin.template \
  -a "src=$root/roles/bottle/templates/pipelock.yaml.j2 dest=$tmp/etc/pipelock.yaml mode=0644" \
  -e "@$tmp/vars.json" >"$tmp/render.log" 2>&1 || die "re-render pipelock.yaml: $(tail -3 "$tmp/render.log")"
docker kill -s HUP "$prefix-bundle" >/dev/null
out=""
for _ in $(seq 1 20); do
  out=$(client get https://blocked.bottle.test/after-reload)
  case "$out" in "STATUS 200"*) break ;; esac
  sleep 0.5
done
expect "after SIGHUP the newly allowed host passes" "$out" '^STATUS 200'
expect "... bottle-init logged the reload" "$(docker logs "$prefix-bundle" 2>&1)" '\[bottle-init\] SIGHUP: reloading configuration'

# --- egress dead: pipelock's upstream fails, nothing reaches the server --------------------
# Freeze bottle-init so that it does not fail closed at once, kill egress, probe, thaw.
init_pid=$(docker inspect -f '{{.State.Pid}}' "$prefix-bundle")
egress_pid=$(docker top "$prefix-bundle" -eo pid,args | awk '/mitmdump/ && !/awk/ {print $1; exit}')
requests_before=$(server_log | grep -c '"path"')
kill -STOP "$init_pid" && kill -KILL "$egress_pid"
sleep 0.5
out=$(client get https://allowed.bottle.test/after-egress-died)
[ -z "${VERBOSE:-}" ] || printf "%s\n" "$out"
expect "with egress dead pipelock cannot open the upstream tunnel (502)" "$out" 'Tunnel connection failed: 502'
out=$(docker exec -u 10001 "$prefix-bundle" python3 -c '
import socket
try: socket.create_connection(("allowed.bottle.test", 443), timeout=3).close(); print("connected")
except OSError as exc: print("refused:", exc)' 2>&1)
expect "with egress dead pipelock's uid cannot connect upstream (redirect to a dead port)" "$out" '^refused'
expect "the server saw nothing after egress died" "$(server_log | grep -c '"path"')" "^$requests_before\$"
kill -CONT "$init_pid"
code=$(timeout 20 docker wait "$prefix-bundle")
expect "bottle-init fails closed when egress dies (exit non-zero)" "$code" '^[1-9]'
expect "... and its log names the dead daemon" "$(docker logs "$prefix-bundle" 2>&1)" '\[bottle-init\] egress exited with'

# --- pipelock dead: the bundle exits non-zero, naming it ----------------------------------
start_bundle || die "bundle did not restart"
pipelock_pid=$(docker top "$prefix-bundle" -eo pid,args | awk '/pipelock run/ && !/awk/ {print $1; exit}')
kill -KILL "$pipelock_pid"
code=$(timeout 20 docker wait "$prefix-bundle")
expect "bottle-init fails closed when pipelock dies (exit non-zero)" "$code" '^[1-9]'
logs=$(docker logs "$prefix-bundle" 2>&1)
expect "... its log names the dead daemon" "$logs" '\[bottle-init\] pipelock exited with -9'
expect "... and it stopped egress too" "$logs" '\[bottle-init\] stopping \(pipelock died\)'
expect "the agent-facing proxy is gone" "$(client tcp bundle:8888)" '^closed'

printf '%s passed, %s failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
