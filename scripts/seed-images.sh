#!/usr/bin/env bash
# Fill the local image cache with the base images our Dockerfiles start FROM, under their
# standard names, when no registry can provide them (air-gapped hosts, this project's CI):
#   debian:trixie-slim                        pull, else mmdebstrap --variant=minbase trixie | docker import
# That is all the default path needs. With --pipelock (or SEED_PIPELOCK=1), also the image of the
# optional pipelock hop (bottle_pipelock: true):
#   ghcr.io/luckypipewrench/pipelock:2.3.0    pull, else built FROM scratch (images/pipelock) with the
#                                             Go module proxy, else wrapped around PIPELOCK_BINARY
# Idempotent: an image already present is kept when it is the pinned pipelock (label
# io.botbottle.pipelock-commit), a wrapped 2.3.0 binary, or a pulled/loaded official 2.3.0.
# Run as root (or a docker-group user with sudo for apt-get) on a fresh machine.
#
# Environment:
#   EXTRA_CA_FILE    CA bundle for hosts behind a TLS-intercepting proxy, used by the pipelock
#                    build stage only (default: /etc/ssl/certs/ca-certificates.crt when present)
#   PIPELOCK_BINARY  a pipelock 2.3.x binary to wrap as the last resort
#                    (default ~/.cache/botbottle/pipelock when present)
#   DEBIAN_IMAGE, PIPELOCK_IMAGE, DEBIAN_MIRROR, PULL_TIMEOUT (seconds, default 20)
set -euo pipefail
SEED_PIPELOCK=${SEED_PIPELOCK:-}
[ "${1:-}" = "--pipelock" ] && SEED_PIPELOCK=1
root=$(cd "$(dirname "$0")/.." && pwd)
# Every line says how long the seeding has run (m:ss): the mmdebstrap and build stages take minutes
# on a new machine, and whole lines (no carriage returns) read the same in a terminal and a CI log.
seed_start=$SECONDS
elapsed() { local s=$((SECONDS - seed_start)); printf '%d:%02d' $((s / 60)) $((s % 60)); }
log() { printf '[seed] %s %s\n' "$(elapsed)" "$*"; }
# Each line of a long command's output (stage lines: mmdebstrap's "I: ...", a build's "Step N/M"),
# prefixed like log; read from a pipe, so the tools print lines, not progress bars.
stage_lines() { local line; while IFS= read -r line; do [ -n "$line" ] && log "  $line"; done; return 0; }
DEBIAN_IMAGE=${DEBIAN_IMAGE:-debian:trixie-slim}
PIPELOCK_IMAGE=${PIPELOCK_IMAGE:-ghcr.io/luckypipewrench/pipelock:2.3.0}
PIPELOCK_COMMIT=7a3b7de4a5552b4e756eb930256468b7cbd616b1
PIPELOCK_VERSION=2.3.0
PULL_TIMEOUT=${PULL_TIMEOUT:-20}
if [ -z "${EXTRA_CA_FILE+x}" ] && [ -s /etc/ssl/certs/ca-certificates.crt ]; then
  EXTRA_CA_FILE=/etc/ssl/certs/ca-certificates.crt
fi
EXTRA_CA_FILE=${EXTRA_CA_FILE:-}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

have() { docker image inspect "$1" >/dev/null 2>&1; }
label() { docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }
try_pull() { timeout "$PULL_TIMEOUT" docker pull -q "$1" >/dev/null 2>&1; }
# The legacy builder: docker 20.10 without buildx. Each step prints as it starts; a failed build
# shows its last lines.
build() {
  local dir=$1; shift
  if ! DOCKER_BUILDKIT=0 docker build "$@" "$dir" 2>&1 | tee "$ctx/build.log" \
      | { grep --line-buffered '^Step ' || true; } | stage_lines; then
    tail -n 8 "$ctx/build.log" >&2
    return 1
  fi
}

# --- debian:trixie-slim ------------------------------------------------------------------
if have "$DEBIAN_IMAGE"; then
  log "$DEBIAN_IMAGE present"
elif try_pull "$DEBIAN_IMAGE"; then
  log "$DEBIAN_IMAGE pulled"
else
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    log "installing mmdebstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
  fi
  log "no registry answers: building $DEBIAN_IMAGE with mmdebstrap (a few minutes; a line per stage)"
  # To a file, not a pipe into docker import: its stage lines then have stdout to themselves, in order.
  mmdebstrap --variant=minbase trixie "$ctx/debian.tar" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" 2>&1 \
    | stage_lines
  docker import -c 'CMD ["bash"]' "$ctx/debian.tar" "$DEBIAN_IMAGE" >/dev/null
  rm -f "$ctx/debian.tar"
  log "$DEBIAN_IMAGE imported ($(( $(docker image inspect -f '{{.Size}}' "$DEBIAN_IMAGE") / 1000000 )) MB)"
fi

# --- pipelock (optional) ----------------------------------------------------------------------
if [ -z "$SEED_PIPELOCK" ]; then
  log "pipelock: not needed (the optional hop; run scripts/seed-images.sh --pipelock to provide it)"
  exit 0
fi

pipelock_reusable() {
  have "$PIPELOCK_IMAGE" || return 1
  local commit source
  commit=$(label "$PIPELOCK_IMAGE" io.botbottle.pipelock-commit)
  source=$(label "$PIPELOCK_IMAGE" io.botbottle.pipelock-source)
  if [ "$commit" = "$PIPELOCK_COMMIT" ]; then
    log "$PIPELOCK_IMAGE present (built from $PIPELOCK_COMMIT, ${source:-unknown source})"
    return 0
  fi
  if [ -n "$commit" ] && [ "$commit" != "<no value>" ]; then
    log "$PIPELOCK_IMAGE was built from commit $commit, not $PIPELOCK_COMMIT: rebuilding"
    return 1
  fi
  # A wrapped binary, or the official image (pulled or docker-loaded): trust its version.
  if docker run --rm "$PIPELOCK_IMAGE" --version 2>/dev/null | grep -qF " $PIPELOCK_VERSION"; then
    log "$PIPELOCK_IMAGE present (${source:-official}, version $PIPELOCK_VERSION)"
    return 0
  fi
  log "$PIPELOCK_IMAGE does not report version $PIPELOCK_VERSION: rebuilding"
  return 1
}

pipelock_context() {
  rm -rf "${ctx:?}/pl" && mkdir -p "$ctx/pl"
  cp "$root/images/pipelock/Dockerfile" "$ctx/pl/"
  if [ -n "$EXTRA_CA_FILE" ] && [ -s "$EXTRA_CA_FILE" ]; then
    cp "$EXTRA_CA_FILE" "$ctx/pl/extra-ca.pem"
  else
    : >"$ctx/pl/extra-ca.pem"
  fi
}

build_from_proxy() {
  log "building $PIPELOCK_IMAGE from source: go install ...@$PIPELOCK_COMMIT (Go module proxy)"
  pipelock_context
  build "$ctx/pl" --build-arg PIPELOCK_COMMIT="$PIPELOCK_COMMIT" --build-arg PIPELOCK_SOURCE=go-install \
    -t "$PIPELOCK_IMAGE"
}

wrap_binary() {
  local binary=$1 version
  version=$("$binary" --version 2>&1 | head -1)
  case "$version" in
    *" $PIPELOCK_VERSION"*) ;;
    *) log "$binary reports '$version': pipelock $PIPELOCK_VERSION is needed"; return 1 ;;
  esac
  log "wrapping $binary ($version) as $PIPELOCK_IMAGE"
  rm -rf "${ctx:?}/bin" && mkdir -p "$ctx/bin"
  cp "$root/images/pipelock/Dockerfile.binary" "$ctx/bin/Dockerfile"
  cp "$binary" "$ctx/bin/pipelock"
  build "$ctx/bin" --build-arg PIPELOCK_VERSION="$PIPELOCK_VERSION" -t "$PIPELOCK_IMAGE"
}

binary=${PIPELOCK_BINARY:-$HOME/.cache/botbottle/pipelock}
if pipelock_reusable; then
  :
elif try_pull "$PIPELOCK_IMAGE"; then
  log "$PIPELOCK_IMAGE pulled"
elif build_from_proxy; then
  :
elif [ -x "$binary" ] && wrap_binary "$binary"; then
  :
else
  log "could not provide $PIPELOCK_IMAGE: no registry served it, the Go module proxy did not serve"
  log "github.com/luckyPipewrench/pipelock@$PIPELOCK_COMMIT, and no binary was given."
  log "fix: docker load the official image, or set PIPELOCK_BINARY to a pipelock $PIPELOCK_VERSION binary"
  log "     (default ~/.cache/botbottle/pipelock), and re-run; or launch without it (bottle_pipelock: false,"
  log "     the default: egress is the bottle's firewall)"
  exit 1
fi
log "$(docker run --rm "$PIPELOCK_IMAGE" --version 2>&1 | head -1)"
