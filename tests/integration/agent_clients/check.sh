#!/usr/bin/env bash
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Runs inside the agent image (root, --network none), with the CA variables the backends set. A
# local HTTPS server on 127.0.0.1:8443 holds a certificate issued by a throwaway "bottle CA", as
# egress's are. The CA is put where bottle_provision puts it (then update-ca-certificates):
#   1. a wrong CA there: every client must refuse the server (verification is on);
#   2. the right one: every client must get through TLS and reach HTTP (a 404 is fine).
# One line per client and phase, then "N passed, N failed".
set -u -o pipefail
passed=0 failed=0
work=$(mktemp -d)
cd "$work" || exit 1
ca_target=/usr/local/share/ca-certificates/bottle-ca.crt

make_ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=$1" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$1.key" -out "$1.crt" 2>/dev/null
}
make_ca bottle-ca
make_ca wrong-ca
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
  -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext.cnf
openssl x509 -req -in server.csr -CA bottle-ca.crt -CAkey bottle-ca.key -CAcreateserial -days 2 \
  -extfile ext.cnf -out server.crt 2>/dev/null
mkdir www
python3 - >/dev/null 2>&1 <<'PY' &
import http.server, ssl, functools
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory="www")
server = http.server.ThreadingHTTPServer(("127.0.0.1", 8443), handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("server.crt", "server.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
PY
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/8443) 2>/dev/null && break; sleep 0.1; done
python3 -m venv venv >/dev/null
cat >urlcheck.py <<'PY'
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1])
except urllib.error.HTTPError as exc:
    print("http", exc.code)
PY

url=https://localhost:8443
# name | command | what a verified TLS connection then answers | what a refused certificate says
clients=(
  "curl|curl -sS -o /dev/null -w %{http_code} $url/nothing|^404$|SSL certificate problem"
  "python urllib|python3 urlcheck.py $url/nothing|http 404|CERTIFICATE_VERIFY_FAILED"
  "pip (in a venv)|venv/bin/pip download --no-deps --retries 0 --timeout 5 -d dl --index-url $url/simple/ nosuchpkg|No matching distribution found|CERTIFICATE_VERIFY_FAILED"
  "npm|npm view nosuchpkg --registry $url/ --fetch-retries 0|E404|UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify|unable to get local issuer"
  "git over HTTPS|git ls-remote $url/repo.git|not found|server verification failed|server certificate verification failed|SSL certificate problem"
)

phase() {
  local which=$1 expect=$2 entry name command ok refused output
  rm -f /usr/local/share/ca-certificates/*.crt
  cp "$which.crt" "$ca_target"
  update-ca-certificates --fresh >/dev/null 2>&1
  for entry in "${clients[@]}"; do
    IFS='|' read -r name command ok refused <<<"$entry"
    refused=${entry#*|*|*|}
    output=$(eval "$command" 2>&1)
    if [[ $expect == trusted ]] && grep -Eq "$ok" <<<"$output" && ! grep -Eq "$refused" <<<"$output"; then
      echo "ok   $name verifies the bottle CA and gets through"; passed=$((passed + 1))
    elif [[ $expect == refused ]] && grep -Eq "$refused" <<<"$output"; then
      echo "ok   $name refuses a certificate of another CA"; passed=$((passed + 1))
    else
      echo "FAIL $name with $which ($expect expected):"; tail -n 8 <<<"$output" | while IFS= read -r line; do echo "    $line"; done
      failed=$((failed + 1))
    fi
  done
}

phase wrong-ca refused
phase bottle-ca trusted
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
