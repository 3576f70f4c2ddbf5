#!/usr/bin/env bash
# Fill the local image cache with the base images our Dockerfiles start FROM, under their
# standard names, when no registry can provide them (air-gapped hosts, this project's CI):
#   debian:trixie-slim                        mmdebstrap --variant=minbase trixie | docker import
#   ghcr.io/luckypipewrench/pipelock:2.3.0    built from source (images/pipelock) with go install
# Idempotent: an image already present (with the pinned pipelock commit) is kept.
# EXTRA_CA_FILE: a CA bundle for hosts behind a TLS-intercepting proxy (default: the system bundle).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '[seed] %s\n' "$*"; }
DEBIAN_IMAGE=${DEBIAN_IMAGE:-debian:trixie-slim}
PIPELOCK_IMAGE=${PIPELOCK_IMAGE:-ghcr.io/luckypipewrench/pipelock:2.3.0}
PIPELOCK_COMMIT=7a3b7de4a5552b4e756eb930256468b7cbd616b1
EXTRA_CA_FILE=${EXTRA_CA_FILE:-/etc/ssl/certs/ca-certificates.crt}

have() { docker image inspect "$1" >/dev/null 2>&1; }
try_pull() { timeout 20 docker pull -q "$1" >/dev/null 2>&1; }

if have "$DEBIAN_IMAGE"; then
  log "$DEBIAN_IMAGE present"
elif try_pull "$DEBIAN_IMAGE"; then
  log "$DEBIAN_IMAGE pulled"
else
  command -v mmdebstrap >/dev/null 2>&1 || {
    log "installing mmdebstrap"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null; }
  log "no registry answers: building $DEBIAN_IMAGE with mmdebstrap"
  mmdebstrap --variant=minbase --quiet trixie - "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
    | docker import -c 'CMD ["bash"]' - "$DEBIAN_IMAGE" >/dev/null
fi

current=$(docker image inspect -f '{{ index .Config.Labels "io.botbottle.pipelock-commit" }}' "$PIPELOCK_IMAGE" 2>/dev/null || true)
if have "$PIPELOCK_IMAGE" && { [ "$current" = "$PIPELOCK_COMMIT" ] || [ -z "$current" ]; }; then
  log "$PIPELOCK_IMAGE present"
elif try_pull "$PIPELOCK_IMAGE"; then
  log "$PIPELOCK_IMAGE pulled"
else
  log "no registry answers: building $PIPELOCK_IMAGE from source (go install @$PIPELOCK_COMMIT)"
  ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
  cp "$root/images/pipelock/Dockerfile" "$ctx/"
  if [ -n "$EXTRA_CA_FILE" ] && [ -s "$EXTRA_CA_FILE" ]; then cp "$EXTRA_CA_FILE" "$ctx/extra-ca.pem"; else : > "$ctx/extra-ca.pem"; fi
  DOCKER_BUILDKIT=0 docker build -q --build-arg PIPELOCK_COMMIT="$PIPELOCK_COMMIT" -t "$PIPELOCK_IMAGE" "$ctx" >/dev/null
fi
log "$(docker run --rm "$PIPELOCK_IMAGE" --version 2>&1 | head -1)"
