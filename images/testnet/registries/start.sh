#!/bin/sh
# The registries of the test internet, and (DNS_DROP_SHARE set) a DNS server that drops that share of
# the queries arriving together, answering the registries' names with this container's address.
set -eu
addr=$(hostname -i | awk '{print $1}')
if [ -n "${DNS_DROP_SHARE:-}" ]; then
  python3 /srv/registries/dnsserver.py --listen 0.0.0.0:53 --ttl "${DNS_TTL:-60}" --drop-share "$DNS_DROP_SHARE" \
    --window "${DNS_WINDOW:-0.05}" ${DNS_LOG:+--log} \
    registry.bottle.test=A:"$addr" pypi.bottle.test=A:"$addr" git.bottle.test=A:"$addr" &
fi
/opt/pypi/bin/gunicorn --bind 0.0.0.0:8443 --workers 4 --threads 4 --certfile /srv/registries/server.pem \
  --keyfile /srv/registries/server.key --chdir /srv/registries pypi_wsgi:application &
# Verdaccio answers registry.bottle.test on 443; pypi.bottle.test and git.bottle.test are on 8443 (one
# address, three names).
exec verdaccio --config /srv/registries/verdaccio.yaml
