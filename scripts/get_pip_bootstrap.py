"""Stand-in for ansible-test's pip bootstrap script (get-pip-<version>.py).

ansible-test downloads get-pip from ci-files.testing.ansible.com to seed pip
into the empty virtual environments its sanity tests use. Where that host is
unreachable (air-gapped machines, this project's CI), scripts/setup.sh installs
this file under the cache name ansible-test looks for. It does what get-pip
does, from sources this machine has: ``ensurepip`` seeds pip from the wheel
bundled with CPython, then pip installs the requested packages (for example
``pip==24.2``) from the package index like any other requirement.
"""

import runpy
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"],
                      stdout=subprocess.DEVNULL)
# get-pip's own flags, which plain pip does not know: nothing to do, ensurepip
# installed neither setuptools nor wheel.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install"] + args
runpy.run_module("pip", run_name="__main__", alter_sys=True)
