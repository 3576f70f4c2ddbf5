#!/usr/bin/env bash
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# bottle-init's privileged writes, as root in the bundle image ($BUNDLE_IMAGE, default
# botbottle/bundle:latest) with the real daemon uids: each daemon uid plants symlinks (to
# /etc/shadow, to /etc) at the paths root writes in its directories, and a re-stage (what SIGHUP
# runs) must refuse, naming the path, with /etc/shadow and /etc untouched. The working copy is
# mounted read-only, no network, a short --rm container; nothing is built.
# Last line: "N passed, N failed"; exit status non-zero when anything failed.
set -u -o pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
image="${BUNDLE_IMAGE:-botbottle/bundle:latest}"

if ! docker image inspect "$image" >/dev/null 2>&1; then
    echo "image $image not found (set BUNDLE_IMAGE)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

timeout 300 docker run --rm --network none --user 0 \
    -e PYTHONDONTWRITEBYTECODE=1 \
    -v "$repo/images/bundle:/src:ro" -v "$here/bottle_init_symlinks:/t:ro" \
    --entrypoint python3 "$image" /t/run_as_root.py
