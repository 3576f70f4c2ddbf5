# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 21 item 7: no command prints a CryptographyDeprecationWarning the user cannot act on.

ansible-core's ssh-agent client imports cryptography's DSA support, which warns at import; scripts/setup.sh puts
scripts/botbottle-warnings.pth into the venv, whose line filters that warning, from that module only."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PTH = ROOT / "scripts" / "botbottle-warnings.pth"
IMPORT = "import ansible._internal._ssh._ssh_agent"


def run(code):
    return subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True,
                          check=True, cwd=str(ROOT)).stderr


def test_the_warning_is_there_without_the_filter_and_gone_with_it():
    line = PTH.read_text().strip()
    assert line.startswith("import ") and "\n" not in line  # a .pth runs a line only if it starts with import
    without = run("import warnings; warnings.resetwarnings(); warnings.simplefilter('default'); " + IMPORT)
    with_filter = run("import warnings; warnings.resetwarnings(); warnings.simplefilter('default'); " + line + "; "
                      + IMPORT)
    if "DSA is deprecated" not in without:
        return  # this cryptography no longer warns: the filter has nothing to do (it stays harmless)
    assert "DSA is deprecated" not in with_filter, with_filter


def test_setup_installs_the_filter_into_the_venv():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "scripts/botbottle-warnings.pth" in setup and 'get_paths()["purelib"]' in setup
