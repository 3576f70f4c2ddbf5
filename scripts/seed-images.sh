#!/usr/bin/env bash
# Fill the local image cache with the base images our Dockerfiles start FROM, under their
# standard names, when no registry can provide them (air-gapped hosts, this project's CI):
#   debian:trixie-slim                        mmdebstrap --variant=minbase trixie | docker import
#   ghcr.io/luckypipewrench/pipelock:2.3.0    built from source (images/pipelock) with go install
# Idempotent: an image already present (with the pinned pipelock commit) is kept.
# EXTRA_CA_FILE: a CA bundle for hosts behind a TLS-intercepting proxy (default: the system bundle).
# PIPELOCK_BINARY: a pipelock 2.3.0 binary to wrap instead (default ~/.cache/botbottle/pipelock when
#   present), for hosts where neither ghcr.io nor the Go module proxy serves pipelock.
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

if have "$PIPELOCK_IMAGE"; then
  log "$PIPELOCK_IMAGE present"
elif try_pull "$PIPELOCK_IMAGE"; then
  log "$PIPELOCK_IMAGE pulled"
else
  ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
  binary=${PIPELOCK_BINARY:-$HOME/.cache/botbottle/pipelock}
  if [ -x "$binary" ]; then
    version=$("$binary" --version 2>&1 | head -1)
    case "$version" in *" 2.3."*) ;; *) log "$binary reports '$version': pipelock 2.3.x is needed"; exit 1;; esac
    log "wrapping $binary ($version) as $PIPELOCK_IMAGE"
    cp "$root/images/pipelock/Dockerfile.binary" "$ctx/Dockerfile"
    cp "$binary" "$ctx/pipelock"
    DOCKER_BUILDKIT=0 docker build -q -t "$PIPELOCK_IMAGE" "$ctx" >/dev/null
  else
    log "no registry answers: building $PIPELOCK_IMAGE from source (go install @$PIPELOCK_COMMIT)"
    cp "$root/images/pipelock/Dockerfile" "$ctx/"
    if [ -n "$EXTRA_CA_FILE" ] && [ -s "$EXTRA_CA_FILE" ]; then cp "$EXTRA_CA_FILE" "$ctx/extra-ca.pem"; else : > "$ctx/extra-ca.pem"; fi
    if ! DOCKER_BUILDKIT=0 docker build -q --build-arg PIPELOCK_COMMIT="$PIPELOCK_COMMIT" -t "$PIPELOCK_IMAGE" "$ctx" > "$ctx/build.log" 2>&1; then
      tail -n 5 "$ctx/build.log" >&2
      log "could not build pipelock: neither $PIPELOCK_IMAGE nor the Go module proxy's github.com/luckyPipewrench/pipelock@$PIPELOCK_COMMIT could be fetched."
      log "fix: load the official image (docker load), or put a pipelock 2.3.0 binary at ~/.cache/botbottle/pipelock (or set PIPELOCK_BINARY) and re-run"
      exit 1
    fi
  fi
fi
log "$(docker run --rm "$PIPELOCK_IMAGE" --version 2>&1 | head -1)"
