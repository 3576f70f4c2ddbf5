# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/seed-images.sh on a new machine (no registry): a line per mmdebstrap stage with the elapsed
time, plain lines (no carriage returns), and a closing line with the imported image's size.
docker and mmdebstrap are fakes on PATH; nothing touches the real engine."""

from __future__ import annotations

import os
import re
import stat
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

FAKE_DOCKER = """#!/bin/bash
state=%(state)s
case "$1 $2" in
  "image inspect") [ -f "$state/imported" ] || exit 1; case "$*" in *Size*) echo 80123456;; esac ;;
  "pull "*|"pull -q") exit 1 ;;
  "import -c") cp "$4" "$state/imported"; echo sha256:feed ;;
  *) echo "fake docker: unexpected $*" >&2; exit 2 ;;
esac
"""

# mmdebstrap's stage lines go to stderr (a progress bar only when stderr is a terminal), the tar to the
# target file (its third argument here).
FAKE_MMDEBSTRAP = """#!/bin/bash
if [ -t 2 ]; then printf 'progress bar\\r' >&2; fi
echo "I: chroot architecture amd64 is equal to the host's architecture" >&2
echo "I: running apt-get update..." >&2
sleep 1.2
echo "I: downloading packages with apt..." >&2
echo "I: extracting archives..." >&2
echo "I: success in 1.2 seconds" >&2
printf 'tar-bytes' >"$3"
"""


def executable(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_seeding_prints_a_line_per_stage_with_elapsed_time(tmp_path):
    bindir, state = tmp_path / "bin", tmp_path / "state"
    bindir.mkdir()
    state.mkdir()
    executable(bindir / "docker", FAKE_DOCKER % {"state": state})
    executable(bindir / "mmdebstrap", FAKE_MMDEBSTRAP)
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]), EXTRA_CA_FILE="", PULL_TIMEOUT="2")
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "seed-images.sh")], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "\r" not in proc.stdout and "progress bar" not in proc.stdout
    assert all(re.match(r"^\[seed\] \d+:\d\d ", line) for line in lines), lines
    text = [line.split(" ", 2)[2] for line in lines]
    assert text[0].startswith("no registry answers: building debian:trixie-slim with mmdebstrap")
    stages = [t.strip() for t in text if t.startswith("  I: ")]
    assert stages == ["I: chroot architecture amd64 is equal to the host's architecture",
                      "I: running apt-get update...", "I: downloading packages with apt...",
                      "I: extracting archives...", "I: success in 1.2 seconds"]
    assert "debian:trixie-slim imported (80 MB)" in text
    assert (state / "imported").read_text() == "tar-bytes"
