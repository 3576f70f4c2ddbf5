#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_state
short_description: A bottle's state directory, in one step
version_added: 0.1.0
description:
  - Creates (or removes) C(<state_root>/<slug>/) on the managed host, mode 0700, with C(bundle/) (mounted
    read-only into the bundle) and C(ca/) (where the bundle keeps the bottle CA).
  - Writes the bundle's rendered configuration files, each mode 0600, changing only those whose content
    differs, and C(meta.json) once (its creation time is kept on later runs).
  - Returns a hash of the bundle files, which M(botbottle.bottle.sidecar_bundle) takes as C(config_hash)
    to reload a running bundle when, and only when, its configuration changed.
author: botbottle developers (@botbottle)
attributes:
  check_mode:
    support: full
    description: Reports which files would change.
  diff_mode:
    support: full
    description: Shows changed non-secret files before and after.
  idempotent:
    support: full
    description: Files already right are left alone.
options:
  slug:
    description: The bottle's slug.
    type: str
    required: true
  state_root:
    description: Where bottles keep their state.
    type: path
    default: ~/.bot-bottle/state
  files:
    description: Bundle files (names inside C(bundle/)) and their content.
    type: dict
    default: {}
  private_files:
    description:
      - Files for one daemon of the bundle only, by daemon then file name (for example C(egress) then C(tokens.json)).
        Written under C(private/<daemon>/), mounted at C(/etc/bottle-private) and staged by the bundle's
        init into that daemon's directory and no other. Secret; never logged or shown in diffs.
    type: dict
    default: {}
  meta:
    description: Written to C(meta.json) when that file does not exist yet.
    type: dict
    default: {}
  state:
    description: V(absent) removes the whole state directory.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: State of bottle demo
  botbottle.bottle.bottle_state:
    slug: demo
    files:
      pipelock.yaml: "{{ lookup('ansible.builtin.template', 'pipelock.yaml.j2') }}"
    private_files:
      pipelock:
        dlp-secrets.txt: "{{ secrets | join('\n') }}"
    meta: {slug: demo, agent: demo}
  register: state
"""

RETURN = r"""
path:
  description: The bottle's state directory.
  returned: always
  type: str
config_hash:
  description: SHA-256 over the names and contents of the bundle and private files.
  returned: when state=present
  type: str
changed_files:
  description: Files written (or that would be, in check mode).
  returned: always
  type: list
  elements: str
"""

import json
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils import naming
from ansible_collections.botbottle.bottle.plugins.module_utils.bottle_config import config_hash


def read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write(path, content):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    module = AnsibleModule(argument_spec=dict(
        slug=dict(type="str", required=True),
        state_root=dict(type="path", default=naming.DEFAULT_STATE_ROOT),
        files=dict(type="dict", default={}),
        private_files=dict(type="dict", default={}, no_log=True),
        meta=dict(type="dict", default={}),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    ), supports_check_mode=True)
    p = module.params
    error = naming.slug_error(p["slug"])
    if error:
        module.fail_json(msg="slug: " + error)
    root = naming.state_dir(p["slug"], p["state_root"])

    if p["state"] == "absent":
        exists = os.path.isdir(root)
        if exists and not module.check_mode:
            shutil.rmtree(root)
        module.exit_json(changed=exists, path=root, changed_files=[root] if exists else [])

    def encode(content):
        text = "" if content is None else str(content)
        return (text if not text or text.endswith("\n") else text + "\n").encode("utf-8")

    def plain_name(name, where):
        if not name or "/" in name or name.startswith("."):
            module.fail_json(msg="%s: %r must be a plain file name" % (where, name))
        return name

    # relative path -> (content, secret)
    wanted = {}
    for name, content in p["files"].items():
        wanted["bundle/" + plain_name(name, "files")] = (encode(content), False)
    dirs = [root, os.path.join(root, "bundle"), os.path.join(root, "ca"), os.path.join(root, "private")]
    for daemon, files in p["private_files"].items():
        plain_name(daemon, "private_files")
        dirs.append(os.path.join(root, "private", daemon))
        for name, content in (files or {}).items():
            wanted["private/%s/%s" % (daemon, plain_name(name, "private_files." + daemon))] = (encode(content), True)
    changed, before, after = [], {}, {}
    for path in dirs:
        if not os.path.isdir(path):
            changed.append(path + "/")
            if not module.check_mode:
                os.makedirs(path, mode=0o700, exist_ok=True)
        elif os.stat(path).st_mode & 0o077:
            changed.append(path + "/ (mode)")
            if not module.check_mode:
                os.chmod(path, 0o700)
    for name, (content, secret) in sorted(wanted.items()):
        path = os.path.join(root, name)
        current = read(path)
        if current != content:
            changed.append(path)
            if not secret:
                before[path] = (current or b"").decode("utf-8", "replace")
                after[path] = content.decode("utf-8", "replace")
            if not module.check_mode:
                write(path, content)
    meta_path = os.path.join(root, "meta.json")
    if p["meta"] and not os.path.exists(meta_path):
        changed.append(meta_path)
        if not module.check_mode:
            write(meta_path, (json.dumps(p["meta"], indent=2, sort_keys=True) + "\n").encode())
    result = dict(changed=bool(changed), path=root, changed_files=changed,
                  config_hash=config_hash({k: v[0] for k, v in wanted.items()}))
    if module._diff:
        result["diff"] = [dict(before_header=k, after_header=k, before=before[k], after=after[k]) for k in sorted(before)]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
