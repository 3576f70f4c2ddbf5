#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_work
short_description: Take a copy of an agent's work (unpushed commits, uncommitted and loose files) out of a bottle
version_added: 0.1.0
description:
  - Reads the home of bottle O(slug)'s agent - a docker container (running, stopped or crashed, through the engine's
    archive API) or a smolvm machine (through its transport, C(smolvm machine exec)) - and keeps, for each git
    repository under it, its commits that no remote-tracking ref contains (a C(git bundle)), its uncommitted changes and
    untracked files that are not ignored (a binary patch), and the other files of C(~/work) (C(loose.tar.gz)), under
    O(max_bytes), with C(RESTORE.txt) (the commands that bring it back) and C(MANIFEST.json).
  - The bottle keeps running and nothing in it changes (the playbook C(botbottle.bottle.snapshot)). The snapshot goes to
    C(<archive_root>/snapshots/<slug>-<YYYYMMDDTHHMMSSZ>/) (audit archives and their retention ignore that folder), or
    to O(dest).
  - The teardown of a smolmachines bottle uses it to keep the work before the VM goes (O(dest) under the archive root,
    then M(botbottle.bottle.bottle_remove) O(botbottle.bottle.bottle_remove#module:work_dir) moves it into the archive).
  - The agent's repositories are copied to the managed host and read there by C(git) with their configuration
    replaced by its harmless keys, so nothing the agent wrote runs on the host.
author: botbottle developers (@botbottle)
extends_documentation_fragment:
  - botbottle.bottle.docker
attributes:
  check_mode:
    support: full
    description: Reads the work and says what would be kept (RV(lines)); writes nothing.
  diff_mode:
    support: none
    description: A snapshot creates files; there is no before and after to show.
  idempotent:
    support: none
    description: Each run takes a new snapshot.
options:
  slug:
    description: The bottle's slug.
    type: str
    required: true
  backend:
    description: Where the agent runs.
    type: str
    choices: [docker, smolmachines]
    default: docker
  archive_root:
    description: The snapshot goes to C(<archive_root>/snapshots/<slug>-<UTC time>/) (unless O(dest)).
    type: path
    default: ~/.bot-bottle/archive
  dest:
    description: The folder to write the snapshot to instead (created; must not hold a C(work) folder already).
    type: path
  max_bytes:
    description: The most the kept work may take; what would pass it is skipped and listed with why.
    type: int
    default: 268435456
  home:
    description: The agent's home inside the agent.
    type: str
    default: /home/agent
  smolvm_path:
    description: The smolvm CLI (O(backend=smolmachines)); found as M(botbottle.bottle.smolvm_machine) finds it when unset.
    type: path
  smolvm_state_dir:
    description: smolvm's state folder (O(backend=smolmachines)).
    type: path
"""

EXAMPLES = r"""
- name: Take the work out of the running bottle demo-1
  botbottle.bottle.bottle_work:
    slug: demo-1
  register: snapshot

- name: Say what was kept
  ansible.builtin.debug:
    msg: "{{ snapshot.lines }}"
"""

RETURN = r"""
path:
  description: The snapshot's folder (in check mode, where it would go); V(null) when there was nothing to keep.
  returned: always
  type: str
lines:
  description: One line per repository (and one for the loose files), what was kept and what was skipped and why.
  returned: always
  type: list
  elements: str
restore:
  description: The file of the commands that bring the work back (C(RESTORE.txt)); V(null) when nothing was kept.
  returned: always
  type: str
work:
  description: What M(botbottle.bottle.bottle_remove) returns as RV(botbottle.bottle.bottle_remove#module:work).
  returned: always
  type: dict
"""

import datetime
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils import agent_work, naming, smolvm
from ansible_collections.botbottle.bottle.plugins.module_utils.agent_transport import TransportError
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, find_container, get_docker_client)
from ansible_collections.botbottle.bottle.plugins.module_utils.smolvm_transport import SmolvmTransport

SNAPSHOTS = "snapshots"


def snapshot_name(slug, now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return "%s-%s" % (slug, now.strftime("%Y%m%dT%H%M%SZ"))


def read_work(module, dest):
    """Snapshot the agent of the bottle into ``dest``; the result of ``agent_work``, or None without an agent."""
    p = module.params
    name = naming.object_name(p["slug"], "agent")
    if p["backend"] == "docker":
        container = find_container(get_docker_client(module), name)
        if container is None:
            return None
        if (container.labels or {}).get(naming.LABEL_BOTTLE) != p["slug"]:
            module.fail_json(msg="container %s does not carry label %s=%s: not reading what is not the bottle's"
                                 % (name, naming.LABEL_BOTTLE, p["slug"]))
        return agent_work.snapshot_container(container, dest, p["max_bytes"], p["home"])
    try:
        binary = smolvm.find_smolvm(p["smolvm_path"], which=module.get_bin_path)
    except smolvm.SmolvmError as exc:
        module.fail_json(msg=str(exc))
    cli = smolvm.SmolvmCLI(smolvm.module_runner(module), binary, state_dir=p["smolvm_state_dir"])
    try:
        machine = cli.get_machine(name)
    except smolvm.SmolvmError as exc:
        module.fail_json(msg="cannot list smolvm machines: %s" % exc)
    if machine is None:
        return None
    if machine.get("state") == "created":
        # Created and never started (a host where guests cannot boot, or a launch cut short): no agent ever ran in
        # it, so it holds no work; the teardown says so and goes on.
        module.warn("smolvm machine %s was created but never started: it holds no agent work to keep" % name)
        return None
    if machine.get("state") != "running":
        raise agent_work.WorkError(
            "smolvm machine %s is %s: its files are read from inside it. Fix: start it (the playbook "
            "botbottle.bottle.bottle relaunches it), or discard the work explicitly with -e bottle_archive_work=false" % (name, machine.get("state")))
    return agent_work.snapshot_transport(SmolvmTransport(cli, name, require_running=False), dest, p["max_bytes"],
                                         p["home"])


def main():
    spec = dict(
        slug=dict(type="str", required=True),
        backend=dict(type="str", choices=["docker", "smolmachines"], default="docker"),
        archive_root=dict(type="path", default="~/.bot-bottle/archive"),
        dest=dict(type="path"),
        max_bytes=dict(type="int", default=agent_work.DEFAULT_MAX_BYTES),
        home=dict(type="str", default=agent_work.HOME),
        smolvm_path=dict(type="path"),
        smolvm_state_dir=dict(type="path"),
    )
    spec.update(DOCKER_COMMON_ARGS)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    error = naming.slug_error(p["slug"])
    if error:
        module.fail_json(msg="slug: " + error)
    if p["max_bytes"] <= 0:
        module.fail_json(msg="max_bytes (bottle_archive_work_max_bytes): %s is not a size; give the most bytes the "
                             "agent's work may take (default 268435456)" % p["max_bytes"])
    dest = os.path.abspath(p["dest"] or os.path.join(p["archive_root"], SNAPSHOTS, snapshot_name(p["slug"])))
    if os.path.lexists(os.path.join(dest, "work")):
        module.fail_json(msg="dest: %s already holds a work folder; give a new folder" % dest)
    parent = os.path.dirname(dest)
    made_dest = not os.path.lexists(dest)
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix=".snapshot-", dir=parent) if module.check_mode else None
        try:
            work = read_work(module, os.path.join(scratch, "d") if scratch else dest)
        finally:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
    except (agent_work.WorkError, TransportError, OSError) as exc:
        if made_dest and os.path.isdir(dest):
            shutil.rmtree(dest, ignore_errors=True)
        module.fail_json(msg="bottle %s: cannot take the agent's work: %s" % (p["slug"], exc))
    kept = work is not None and bool(work["lines"]) and (module.check_mode or os.path.isdir(os.path.join(dest, "work")))
    if not kept and not module.check_mode and made_dest and os.path.isdir(dest):
        shutil.rmtree(dest, ignore_errors=True)
    lines = ["%s%s" % ("would keep " if module.check_mode else "kept ",
                       line.replace("-> work/", "-> %s/work/" % dest, 1)) for line in (work or {}).get("lines", [])]
    module.exit_json(changed=kept, path=dest if kept else None, lines=lines, work=work,
                     restore=os.path.join(dest, "work", "RESTORE.txt") if kept and not module.check_mode else None)


if __name__ == "__main__":
    main()
