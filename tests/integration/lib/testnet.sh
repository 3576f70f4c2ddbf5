# shellcheck shell=bash
# The test internet of one integration script: the project's testnet container on a network of this run only.
# Source it after defining `fail`, then:
#   bt_testnet LABEL NET SERVER CA_OUT [ALIAS ...]
#          create network NET (subnet $BT_SUBNET when set, else a free /24 of 10.231.0.0/16 picked at random:
#          other tests run at the same time, and a subnet the engine picks itself cycles through its pools and
#          in time takes 172.29.0.0/16, every address of the bottles' own pool), run the testnet image (${BB_TESTNET_IMAGE:-botbottle/testnet:latest}) as SERVER on it,
#          answering as each ALIAS, and write its CA to CA_OUT; sets SUBNET to the network's subnet
#   bt_testnet_remove NET SERVER
#          remove both (for the script's trap; quiet when they are gone)

bt_testnet() {
  local label=$1 net=$2 server=$3 ca=$4 image=${BB_TESTNET_IMAGE:-botbottle/testnet:latest} name
  local aliases=()
  shift 4
  docker image inspect "$image" >/dev/null 2>&1 || fail "no $image image: make test-images"
  if [ -n "${BT_SUBNET:-}" ]; then
    docker network create --subnet "$BT_SUBNET" --label "io.botbottle.test=$label" "$net" >/dev/null
  else
    local try
    for try in $(seq 1 20); do
      docker network create --subnet "10.231.$((RANDOM % 250)).0/24" --label "io.botbottle.test=$label" "$net" \
        >/dev/null 2>&1 && break
      [ "$try" = 20 ] && fail "no free /24 in 10.231.0.0/16 for the test network $net"
    done
  fi
  # shellcheck disable=SC2034  # the caller's
  SUBNET=$(docker network inspect -f '{{(index .IPAM.Config 0).Subnet}}' "$net")
  for name in "$@"; do aliases+=(--network-alias "$name"); done
  docker run -d --name "$server" --label "io.botbottle.test=$label" --network "$net" "${aliases[@]}" "$image" >/dev/null
  for _ in $(seq 1 30); do
    docker exec "$server" cat /srv/testnet/ca.pem >"$ca" 2>/dev/null && grep -q 'BEGIN CERT' "$ca" && return 0
    sleep 1
  done
  fail "the testnet server $server gave no CA"
}

bt_testnet_remove() {
  docker rm -f "$2" >/dev/null 2>&1 || true
  docker network rm "$1" >/dev/null 2>&1 || true
}
