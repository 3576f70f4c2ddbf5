#!/usr/bin/env bash
# Set up this checkout on a fresh machine, idempotently:
#   - system packages it needs (Debian/Ubuntu: apt; elsewhere they must be present)
#   - a Docker engine that answers (starts dockerd when none does and we are root on Linux)
#   - the Python venv .venv with the pinned requirements.txt
#   - .venv-user: an Ansible user's venv, only the collection's documented meta/requirements.txt
#   - the collection link ansible and pytest import botbottle.bottle through
#   - ansible-test's pip bootstrap, for hosts that cannot reach ci-files.testing.ansible.com
# Re-running it does nothing that is already done.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf '[setup] %s\n' "$*"; }
export DEBIAN_FRONTEND=noninteractive

apt_updated=""
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing packages ${missing[*]} and no apt-get here: install them with your package manager"; exit 1
  fi
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "$apt_updated" ]; then $sudo apt-get update -qq; apt_updated=1; fi
  log "installing ${missing[*]}"
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# 1. System packages (Linux only; a Mac brings Docker Desktop and python3 itself).
if [ "$(uname -s)" = "Linux" ] && command -v dpkg >/dev/null 2>&1; then
  # ansible-test sanity lints the shell scripts with the shellcheck package (and silently skips them without it).
  pkgs=(mmdebstrap iptables git make openssl ca-certificates shellcheck)
  command -v dockerd >/dev/null 2>&1 || pkgs+=(docker.io)
  apt_install "${pkgs[@]}"
fi

# 2. A Docker engine that answers.
if ! docker info >/dev/null 2>&1; then
  if [ "$(uname -s)" = "Linux" ] && [ "$(id -u)" -eq 0 ] && command -v dockerd >/dev/null 2>&1; then
    log "no Docker engine answers: starting dockerd (log: /var/log/botbottle-dockerd.log)"
    nohup dockerd >/var/log/botbottle-dockerd.log 2>&1 </dev/null &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  fi
  docker info >/dev/null 2>&1 || {
    log "no Docker engine answers on ${DOCKER_HOST:-the default socket}: start Docker (or Docker Desktop) and re-run"; exit 1; }
fi
log "Docker engine $(docker version --format '{{.Server.Version}}') answers"

# 3. The Python venv, rebuilt only when requirements.txt (or the bundle's egress pins it includes) changed.
python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
[ -n "$python" ] || { log "no python3 found: install Python 3.11"; exit 1; }
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_install python3-venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt images/bundle/requirements-egress.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating .venv with $("$python" --version) and requirements.txt (a minute or two)"
  venv_start=$SECONDS
  "$python" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt
  echo "$want" > "$stamp"
  log ".venv ready in $((SECONDS - venv_start)) s"
fi

# 3b. An Ansible user's venv, .venv-user: only the collection's documented requirements (meta/requirements.txt)
#     at the pins of requirements.txt, for tests/integration/installed_collection.sh (a test never reaches a
#     package registry, so it is made here). Rebuilt when either file changes.
user_stamp=.venv-user/.requirements.sha256
want_user=$(cat meta/requirements.txt requirements.txt images/bundle/requirements-egress.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv-user/bin/ansible-playbook ] || [ "$(cat "$user_stamp" 2>/dev/null)" != "$want_user" ]; then
  log "creating .venv-user (an Ansible user's venv: meta/requirements.txt only)"
  venv_start=$SECONDS
  rm -rf .venv-user
  "$python" -m venv .venv-user
  # The pins as constraints only (pip would install what a nested -r of a constraints file names).
  grep -hv '^-' requirements.txt images/bundle/requirements-egress.txt > .venv-user/constraints.txt
  .venv-user/bin/pip install -q -r meta/requirements.txt -c .venv-user/constraints.txt
  echo "$want_user" > "$user_stamp"
  log ".venv-user ready in $((SECONDS - venv_start)) s"
fi

# ansible-core imports cryptography's DSA support at start (its ssh-agent client) and every command then
# prints a CryptographyDeprecationWarning a user cannot act on: filtered for the venv's Python, that
# warning from that module only (scripts/botbottle-warnings.pth, a .pth line runs at interpreter start).
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cmp -s scripts/botbottle-warnings.pth "$site/botbottle-warnings.pth" || cp scripts/botbottle-warnings.pth "$site/"

# 4. The collection link (ansible.cfg's collections_path points at it).
scripts/collection-link.sh

# 5. ansible-test seeds pip into its sanity venvs with a script it downloads from
#    ci-files.testing.ansible.com; where that host is unreachable, use our stand-in.
cache=~/.ansible/test/cache
mkdir -p "$cache"
for v in 24_2 25_1 25_2 25_3; do
  [ -s "$cache/get_pip_$v.py" ] || cp scripts/get_pip_bootstrap.py "$cache/get_pip_$v.py"
done
# sed reads all of ansible's output (head would close the pipe under it: "Broken pipe").
log "ready: .venv/bin/ansible-playbook $(.venv/bin/ansible --version | sed -n '1s/.*\[core \(.*\)\]/\1/p')"
