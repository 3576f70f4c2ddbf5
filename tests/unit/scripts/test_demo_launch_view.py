# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/demo.sh's launch_view: the launch never sits silent - the task it is at, with the time so
far, at a fixed interval - while errors and the recap pass through, and the playbook's other lines do not."""

from __future__ import annotations

import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

SCRIPT = r"""
source <(sed -n '/^log()/,/^}$/p' "$1")
{
  echo "PLAY [Launch a bottle] ***"
  echo "TASK [Start the bundle] ***"
  sleep 2.5
  echo "changed: [localhost]"
  echo "TASK [Wait for the bundle to be healthy] ***"
  sleep 2.5
  echo "fatal: [localhost]: FAILED! => {\"msg\": \"boom\"}"
  echo "PLAY RECAP ***"
  echo "localhost                  : ok=3    changed=1    failed=1"
} | launch_view
"""


def test_launch_view_names_the_current_task_with_elapsed_time():
    proc = subprocess.run(["bash", "-c", SCRIPT, "view", os.path.join(ROOT, "scripts", "demo.sh")],
                          env=dict(os.environ, DEMO_PROGRESS_EVERY="2"), capture_output=True, text=True,
                          timeout=30, check=True)
    lines = proc.stdout.splitlines()
    assert "changed: [localhost]" not in lines and not any(line.startswith("PLAY [") for line in lines)
    progress = [line for line in lines if line.startswith("[demo]")]
    assert all(re.match(r"^\[demo\] 0:0[1-9] launching: (Start the bundle|Wait for the bundle to be healthy)$", line)
               for line in progress), progress
    assert progress[0].endswith("launching: Start the bundle")
    assert progress[-1].endswith("launching: Wait for the bundle to be healthy")
    assert lines[-3:] == ['fatal: [localhost]: FAILED! => {"msg": "boom"}', "PLAY RECAP ***",
                          "localhost                  : ok=3    changed=1    failed=1"]
