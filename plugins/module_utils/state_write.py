# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a bottle's state directory (module bottle_state, state=present; phase of bottle_launch).

API:
- ``STATE_SPEC``: bottle_state's options.
- ``STORE_MODE`` / ``supervise_store(root, check_mode)``: supervise's proposal store.
- ``present(module)``: render the bundle's files from ``module.params`` (policy, options, secrets, tokens,
  meta) and write what differs into the state directory; the result (changed, path, changed_files,
  config_hash, policy_changes and, with diff, diff).
"""

from __future__ import annotations

import json
import os

from ansible_collections.botbottle.bottle.plugins.module_utils import audit_archive
from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config as bc
from ansible_collections.botbottle.bottle.plugins.module_utils import naming, state_meta
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as sv

# bottle_state's options (also the state phase of bottle_launch).
STATE_SPEC = dict(
    slug=dict(type="str", required=True),
    state_root=dict(type="path", default=naming.DEFAULT_STATE_ROOT),
    policy=dict(type="dict"),
    # The options and their defaults are bundle_config's (OPTION_DEFAULTS), the renderer's own.
    options=dict(type="dict", default={}, apply_defaults=True, options=bc.option_spec()),
    secrets=dict(type="list", elements="str", default=[], no_log=True),
    tokens=dict(type="dict", default={}, no_log=True),
    meta=dict(type="dict", default={}),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    **audit_archive.ARCHIVE_SPEC,
)


# supervise's proposal store: setgid and group-writable. Its owner is not managed here: the bundle sets it.
STORE_MODE = 0o2770


def supervise_store(root, check_mode):
    """Create ``<root>/supervise`` (mode 2770) or repair its mode; what changed, as changed_files entries."""
    store = os.path.join(root, "supervise")
    if not os.path.isdir(store):
        if not check_mode:
            os.makedirs(store, exist_ok=True)
            os.chmod(store, STORE_MODE)
        return [store + "/"]
    if os.stat(store).st_mode & 0o7777 != STORE_MODE:
        if not check_mode:
            os.chmod(store, STORE_MODE)
        return [store + "/ (mode)"]
    return []


def agent_origins(params, root):
    """The --diff lines that come from the bottle's agent's agent-wide approvals (``bc.approval_origins``)."""
    agent = (params.get("meta") or {}).get("agent") or sv.bottle_agent(root)
    if not agent:
        return {}
    try:
        path = sv.agent_approved_path(params["state_root"], agent)
        return bc.approval_origins(sv.read_agent_approved(params["state_root"], agent), path)
    except sv.SuperviseError:
        return {}


def present(module):
    """Write the state directory as ``module.params`` say (state=present); the result."""
    p = module.params
    root = naming.state_dir(p["slug"], p["state_root"])
    try:
        files = bc.render(p["policy"], p["options"])
        files.update(bc.render_private({"pipelock": p["options"]["pipelock"], "secrets": p["secrets"],
                                        "tokens": p["tokens"]}))
        source = bc.source_bytes(p["policy"], p["options"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    changed = []
    for path in (root, os.path.join(root, "bundle"), os.path.join(root, "ca"), os.path.join(root, "private")):
        if not os.path.isdir(path):
            changed.append(path + "/")
            if not module.check_mode:
                os.makedirs(path, mode=0o700, exist_ok=True)
        elif os.stat(path).st_mode & 0o077:
            changed.append(path + "/ (mode)")
            if not module.check_mode:
                os.chmod(path, 0o700)
    # egress's audit (JSON lines of its decisions), mounted read-write into the bundle, whose init
    # hands it to egress's uid: created here, its owner and mode are then the bundle's business.
    audit = os.path.join(root, "audit")
    if not os.path.isdir(audit):
        changed.append(audit + "/")
        if not module.check_mode:
            os.makedirs(audit, mode=0o700, exist_ok=True)
    if p["options"]["supervise_enabled"]:
        changed.extend(supervise_store(root, module.check_mode))
    try:
        before_policy = bc.read_source(root)[0] if os.path.exists(os.path.join(root, bc.SOURCE)) else None
    except ValueError:
        before_policy = None  # unreadable: shown as nothing before, and rewritten below
    after_policy = bc.bundle_policy(p["policy"])
    write = bc.StateWrite(root, dict(files, **{bc.SOURCE: source}))
    changed.extend(write.paths)
    if not module.check_mode:
        write.apply()
    meta_path = state_meta.meta_path(root)
    if p["meta"] and not os.path.exists(meta_path):
        changed.append(meta_path)
        if not module.check_mode:
            bc.write_atomic(meta_path, (json.dumps(p["meta"], indent=2, sort_keys=True) + "\n").encode())
    config_hash = bc.files_hash(files) if module.check_mode else bc.config_hash(root)
    result = dict(changed=bool(changed), path=root, changed_files=changed, config_hash=config_hash,
                  policy_changes=bc.policy_changes(before_policy, after_policy))
    if module._diff:
        result["diff"] = [bc.policy_diff(root, before_policy, after_policy, agent_origins(p, root))] + write.diff()
    return result
