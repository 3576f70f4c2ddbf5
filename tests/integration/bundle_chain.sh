#!/usr/bin/env bash
# The bundle by hand, with plain docker: client -> egress (8888: the bottle's firewall) -> a test
# HTTPS server of our own. Nothing here talks to any address outside this machine: both networks
# are `internal`, the "internet" is one container with a test CA.
#
#   net-int (internal):  client  <->  bundle
#   net-out (internal):               bundle  <->  server (allowed/blocked/api.bottle.test)
#
# The bundle's files are rendered by the collection's own renderer (module_utils/bundle_config),
# exactly as bottle_state writes them. Checks: health; an allowlisted HTTPS request passes (the
# client trusts the bottle CA) and is audited; a host off the allowlist gets a readable 403 inside
# the TLS tunnel, naming the rule and supervise's request_domain, and the server never sees it; an
# allowlisted name that leads to loopback is refused (SSRF); DLP blocks a GitHub-PAT-shaped token
# and a known secret in the query and in a POST body before they reach the server; a route injects
# its credential into a POST with a body, replacing the agent's, and refuses a POST outside its
# matches; no port but 8888 answers the agent; SIGHUP reloads the allowlist in place; with egress
# dead nothing reaches the server and the bundle stops non-zero, naming it.
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
  # tar -h: the context's symlinks (agent_text.py) go in as the files they point at, as bottle_image sends them.
  tar -chf - -C images/bundle . | DOCKER_BUILDKIT=0 docker build -q -t "$BUNDLE_IMAGE" - >"$tmp/build.log" 2>&1 \
    || die "docker build images/bundle: $(tail -5 "$tmp/build.log")"
fi

# --- test CA, server certificate, the server and the client --------------------------------
mkdir -p "$tmp/certs" "$tmp/etc" "$tmp/ca" "$tmp/bin"
(
  cd "$tmp/certs"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$prefix test CA" \
    -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=allowed.bottle.test" -keyout server.key -out server.csr
  printf 'subjectAltName=DNS:allowed.bottle.test,DNS:blocked.bottle.test,DNS:api.bottle.test\nextendedKeyUsage=serverAuth\n' >ext.cnf
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
                          "authorization": self.headers.get("Authorization"),
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
#   get URL | post URL BODY [Header: value ...] | connect HOST:PORT | tcp HOST:PORT
import os, socket, ssl, sys, urllib.error, urllib.request
mode, target = sys.argv[1], sys.argv[2]
proxy = os.environ["HTTPS_PROXY"]
if mode in ("get", "post"):
    context = ssl.create_default_context(cafile="/ca/bottle-ca.pem")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"https": proxy, "http": proxy}),
                                         urllib.request.HTTPSHandler(context=context))
    request = urllib.request.Request(target)
    if mode == "post":
        request.data = sys.argv[3].encode()
        for header in sys.argv[4:]:
            name, value = header.split(": ", 1)
            request.add_header(name, value)
    try:
        with opener.open(request, timeout=20) as response:
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
  --network-alias allowed.bottle.test --network-alias blocked.bottle.test --network-alias api.bottle.test \
  -v "$tmp/certs:/certs:ro" -v "$tmp/bin:/opt/test:ro" --entrypoint python3 "$BUNDLE_IMAGE" \
  -u /opt/test/server.py >/dev/null || die "server"

# --- the bundle's files, rendered by the collection's renderer ------------------------------
secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
known_secret="bbchain-known-$secret"
route_token="bbchain-route-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkdir -p "$tmp/state" "$tmp/audit"
# render <allowed hosts, comma-separated>: bundle/ and private/ under $tmp/state, as bottle_state does.
render() {
  PYTHONPATH="$root/.build/collections" "$root/.venv/bin/python" - "$tmp/state" "$1" "$out_subnet" \
    "$tmp/certs/ca.pem" "$known_secret" "$route_token" <<'PY'
import sys
from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config
state, hosts, subnet, ca, known, token = sys.argv[1:]
policy = {"allowed_domains": hosts.split(","),
          "egress": {"routes": [{"host": "api.bottle.test", "auth": {"scheme": "Bearer", "token_ref": "ROUTE_TOKEN"},
                                 "matches": [{"paths": [{"type": "prefix", "value": "/v1/"}],
                                              "methods": ["GET", "POST"]}]}]}}
with open(ca, encoding="utf-8") as handle:
    options = {"ssrf_ip_allowlist": [subnet], "upstream_ca": handle.read()}
files = bundle_config.render(policy, options)
files.update(bundle_config.render_private({"secrets": [known], "tokens": {"ROUTE_TOKEN": token}}))
bundle_config.StateWrite(state, files).apply()
PY
}
render allowed.bottle.test,localhost || die "render the bundle's files"
chmod -R a+rX "$tmp/state"

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
docker create --name "$prefix-bundle" --network "$prefix-int" --network-alias bundle \
  --cap-add NET_ADMIN --security-opt no-new-privileges -e BOTTLE_GRACE_SECONDS=3 \
  -v "$tmp/state/bundle:/etc/bottle:ro" -v "$tmp/state/private:/etc/bottle-private:ro" \
  -v "$tmp/ca:/var/lib/bottle/ca" -v "$tmp/audit:/var/lib/bottle/audit" "$BUNDLE_IMAGE" >/dev/null || die "create bundle"
docker network connect "$prefix-out" "$prefix-bundle" || die "connect bundle to net-out"
start_bundle || die "bundle did not become healthy"

health=$(docker exec "$prefix-bundle" bottle-health --json)
expect "bottle-health reports egress healthy, and nothing else runs" "$health" '^\{"egress": "healthy"\}$'
expect "the bottle CA key is private to the bundle (0600)" "$(stat -c '%a' "$tmp/ca/bottle-ca.key")" '^600$'
expect "the bottle CA is an EC key made without pipelock" "$(head -1 "$tmp/ca/bottle-ca.key")" 'BEGIN EC PRIVATE KEY'

# The client: the agent's position, on net-int only, no capabilities, not root.
docker run -d --name "$prefix-client" --network "$prefix-int" --user 65534:65534 --cap-drop ALL \
  -e HTTPS_PROXY=http://bundle:8888 -v "$tmp/ca:/ca:ro" -v "$tmp/bin:/opt/test:ro" \
  --entrypoint sleep "$BUNDLE_IMAGE" infinity >/dev/null || die "client"
client() { docker exec "$prefix-client" python3 /opt/test/client.py "$@" 2>&1; }
server_log() { docker logs "$prefix-server" 2>&1; }

# --- the firewall ---------------------------------------------------------------------------
out=$(client get https://allowed.bottle.test/hello)
expect "allowlisted HTTPS through egress reaches the server" "$out" '^STATUS 200'
expect "the answer is the test server's" "$out" 'hello from allowed.bottle.test /hello'
expect "the server saw the request" "$(server_log)" '"path": ?"/hello"'
expect "egress's audit (JSON on its log) records the allowed request" \
  "$(docker logs "$prefix-bundle" 2>&1 | grep '^\[egress\] {')" '"host": ?"allowed.bottle.test"'
expect "... and keeps it in the audit directory of the state" "$(cat "$tmp"/audit/* 2>/dev/null)" '"path": ?"/hello"'

out=$(client get https://blocked.bottle.test/nope)
expect "HTTPS to a host off the allowlist: a readable 403 inside the tunnel" "$out" '^STATUS 403'
expect "... naming the rule" "$out" "blocked by egress: host blocked.bottle.test is not on this bottle's allowlist"
expect "... and where to ask" "$out" 'request_domain'
out=$(client get http://blocked.bottle.test/plain)
expect "plain HTTP to a host off the allowlist: 403 with the reason" "$out" "^STATUS 403"
expect "... the body names the rule" "$out" "not on this bottle's allowlist"
refute "the server never saw blocked.bottle.test" "$(server_log)" 'blocked.bottle.test'
out=$(client get https://localhost/inside)
expect "an allowlisted name that leads to loopback is refused (SSRF)" "$out" '^STATUS 403'
expect "... naming why" "$out" 'blocked by egress: .*(ssrf|loopback)'

pat="ghp_$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 36)"
out=$(client get "https://allowed.bottle.test/search?q=$pat")
expect "a GitHub-PAT-shaped token in a query is blocked by DLP" "$out" '^STATUS 403'
expect "... the reason names the rule, never the value" "$out" 'blocked by egress: .*github'
refute "... and does not echo the token" "$out" "$pat"
out=$(client post https://allowed.bottle.test/upload "{\"note\": \"$pat\"}" "Content-Type: application/json")
expect "the same token in a JSON POST body is blocked" "$out" '^STATUS 403'
out=$(client get "https://allowed.bottle.test/search?q=$known_secret")
expect "a known secret (the agent's secret_env) in a query is blocked" "$out" '^STATUS 403'
out=$(client post https://allowed.bottle.test/upload "data=$(printf %s "$known_secret" | base64 -w0)" \
  "Content-Type: application/x-www-form-urlencoded")
expect "the known secret base64-encoded in a form body is blocked" "$out" '^STATUS 403'
refute "no secret reached the server" "$(server_log)" "$pat|$known_secret|/upload"

out=$(client post https://api.bottle.test/v1/items '{"a": 1}' "Content-Type: application/json" \
  "Authorization: Bearer placeholder-agent")
expect "a route POST with a body goes through" "$out" '^STATUS 200'
expect "... carrying the route's credential, not the agent's" "$(server_log | grep '/v1/items')" \
  "\"authorization\": \"Bearer $route_token\""
refute "... and the agent's placeholder never arrived" "$(server_log | grep '/v1/items')" 'placeholder-agent'
out=$(client post https://api.bottle.test/v2/items '{"a": 1}' "Content-Type: application/json")
expect "a route POST outside the route's matches is refused before anything is sent" "$out" '^STATUS 403'
expect "... naming the route" "$out" 'route api.bottle.test does not allow POST /v2/items'
refute "the server never saw /v2/items" "$(server_log)" '/v2/items'
refute "no audit line holds the route token" "$(docker logs "$prefix-bundle" 2>&1; cat "$tmp"/audit/*)" "$route_token"

expect "egress listens for the agent on 8888" "$(client tcp bundle:8888)" '^open'
for port in 9099 9090 8080 8081; do
  expect "nothing else answers the agent network (port $port)" "$(client tcp bundle:$port)" '^closed'
done

# --- SIGHUP: a re-rendered allowlist takes effect without a restart ----------------------
render allowed.bottle.test,localhost,blocked.bottle.test || die "re-render"
docker kill -s HUP "$prefix-bundle" >/dev/null
out=""
for _ in $(seq 1 20); do
  out=$(client get https://blocked.bottle.test/after-reload)
  case "$out" in "STATUS 200"*) break ;; esac
  sleep 0.5
done
expect "after SIGHUP the newly allowed host passes" "$out" '^STATUS 200'
expect "... bottle-init logged the reload" "$(docker logs "$prefix-bundle" 2>&1)" '\[bottle-init\] SIGHUP: reloading configuration'

# --- egress dead: nothing reaches the server, the bundle stops naming it ------------------
requests_before=$(server_log | grep -c '"path"')
egress_pid=$(docker top "$prefix-bundle" -eo pid,args | awk '/mitmdump/ && !/awk/ {print $1; exit}')
kill -KILL "$egress_pid"
out=$(client get https://allowed.bottle.test/after-egress-died)
expect "with egress dead the request fails" "$out" '^ERROR'
code=$(timeout 20 docker wait "$prefix-bundle")
expect "bottle-init fails closed when egress dies (exit non-zero)" "$code" '^[1-9]'
expect "... and its log names the dead daemon" "$(docker logs "$prefix-bundle" 2>&1)" '\[bottle-init\] egress exited with -9'
expect "the server saw nothing after egress died" "$(server_log | grep -c '"path"')" "^$requests_before\$"
expect "the agent-facing proxy is gone" "$(client tcp bundle:8888)" '^closed'

printf '%s passed, %s failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
