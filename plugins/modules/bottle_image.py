#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_image
short_description: Build a bottle image, only when its inputs changed
version_added: 0.1.0
description:
  - Builds image O(name) from the context directory O(path) on the managed host.
  - The build is skipped when an image of that name carries label C(io.botbottle.inputs) equal to the
    hash of its inputs - every context file (minus C(.dockerignore) matches), the Dockerfile, the
    build arguments, the extra CA bundle and the ids of the base images the C(FROM) lines name.
  - O(extra_ca_file) is copied into the build context as C(extra-ca.pem) (an empty file when unset)
    without touching the source tree; the Dockerfiles use it for their downloads only.
author: botbottle developers (@botbottle)
extends_documentation_fragment:
  - botbottle.bottle.docker
attributes:
  check_mode:
    support: full
    description: Reports whether a build would happen.
  diff_mode:
    support: full
    description: Shows the inputs hash before and after.
  idempotent:
    support: full
    description: An image whose inputs did not change is not rebuilt.
options:
  name:
    description: Image name with tag, for example V(botbottle/bundle:latest).
    type: str
    required: true
  path:
    description: The build context directory. Required with O(state=present).
    type: path
  dockerfile:
    description: The Dockerfile, relative to O(path).
    type: str
    default: Dockerfile
  build_args:
    description: Build arguments.
    type: dict
    default: {}
  extra_ca_file:
    description:
      - A CA bundle on the managed host for builds behind a TLS-intercepting proxy; becomes C(extra-ca.pem)
        in the context. Empty means none.
    type: path
  labels:
    description: Extra image labels.
    type: dict
    default: {}
  force:
    description: Build even when the inputs did not change.
    type: bool
    default: false
  state:
    description: V(absent) removes the image.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Build the bundle image
  botbottle.bottle.bottle_image:
    name: botbottle/bundle:latest
    path: "{{ playbook_dir }}/../images/bundle"
    build_args:
      PIPELOCK_IMAGE: ghcr.io/luckypipewrench/pipelock:2.3.0
    extra_ca_file: /etc/ssl/certs/ca-certificates.crt
"""

RETURN = r"""
image:
  description: The image.
  returned: when state=present
  type: dict
  sample: {name: botbottle/bundle:latest, id: "sha256:2f47...", inputs_hash: 9b1c...}
built:
  description: Whether a build ran.
  returned: always
  type: bool
"""

import fnmatch
import hashlib
import io
import os
import re
import tarfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils import naming
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, DockerException, find_image, get_docker_client)

EXTRA_CA_NAME = "extra-ca.pem"


def ignore_patterns(path):
    try:
        with open(os.path.join(path, ".dockerignore"), encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def context_files(path):
    """Relative paths of the context's files, sorted; .dockerignore and extra-ca.pem left out."""
    patterns = ignore_patterns(path)
    out = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), path)
            if rel == EXTRA_CA_NAME or any(fnmatch.fnmatch(rel, p) for p in patterns):
                continue
            out.append(rel)
    return sorted(out)


def base_images(dockerfile_text, build_args):
    """Names of the images the FROM lines refer to (ARG defaults and build args substituted)."""
    args, stages, bases = {}, set(), []
    for line in dockerfile_text.splitlines():
        words = line.strip().split()
        if len(words) >= 2 and words[0].upper() == "ARG":
            key, _sep, default = words[1].partition("=")
            args.setdefault(key, build_args.get(key, default))
        elif len(words) >= 2 and words[0].upper() == "FROM":
            ref = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), words[1])
            if ref not in stages and ref.lower() != "scratch":
                bases.append(ref)
            if len(words) >= 4 and words[2].upper() == "AS":
                stages.add(words[3])
    return bases


def inputs_hash(path, dockerfile, build_args, extra_ca, base_ids):
    digest = hashlib.sha256()
    for rel in context_files(path):
        digest.update(rel.encode() + b"\0")
        with open(os.path.join(path, rel), "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
    digest.update(("dockerfile=%s\0" % dockerfile).encode())
    for key in sorted(build_args):
        digest.update(("arg %s=%s\0" % (key, build_args[key])).encode())
    digest.update(b"extra-ca\0" + hashlib.sha256(extra_ca).digest())
    for name, image_id in base_ids:
        digest.update(("base %s=%s\0" % (name, image_id)).encode())
    return digest.hexdigest()


def context_tar(path, extra_ca):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in context_files(path):
            tar.add(os.path.join(path, rel), arcname=rel, recursive=False)
        info = tarfile.TarInfo(EXTRA_CA_NAME)
        info.size, info.mode = len(extra_ca), 0o644
        tar.addfile(info, io.BytesIO(extra_ca))
    buf.seek(0)
    return buf


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        path=dict(type="path"),
        dockerfile=dict(type="str", default="Dockerfile"),
        build_args=dict(type="dict", default={}),
        extra_ca_file=dict(type="path"),
        labels=dict(type="dict", default={}),
        force=dict(type="bool", default=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    argument_spec.update(DOCKER_COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[("state", "present", ["path"])])
    p = module.params
    client = get_docker_client(module)
    existing = find_image(client, p["name"])
    current = ((existing.labels or {}).get(naming.LABEL_INPUTS) if existing else None) or ""

    if p["state"] == "absent":
        if existing is not None and not module.check_mode:
            try:
                client.images.remove(p["name"])
            except DockerException as exc:
                module.fail_json(msg="cannot remove image %s: %s (is a container still using it?)" % (p["name"], exc))
        module.exit_json(changed=existing is not None, built=False,
                         diff=dict(before={"inputs_hash": current}, after={}))

    path = p["path"]
    dockerfile_path = os.path.join(path, p["dockerfile"])
    if not os.path.isfile(dockerfile_path):
        module.fail_json(msg="path %s has no %s (dockerfile): point path at an image's build context"
                         % (path, p["dockerfile"]))
    extra_ca = b""
    if p["extra_ca_file"]:
        if not os.path.isfile(p["extra_ca_file"]):
            module.fail_json(msg="extra_ca_file %s does not exist: give a PEM bundle or leave it empty" % p["extra_ca_file"])
        with open(p["extra_ca_file"], "rb") as handle:
            extra_ca = handle.read()
    build_args = {k: str(v) for k, v in (p["build_args"] or {}).items()}
    with open(dockerfile_path, encoding="utf-8") as handle:
        bases = base_images(handle.read(), build_args)
    base_ids = []
    for base in bases:
        image = find_image(client, base)
        if image is None:
            module.fail_json(msg="base image %s of %s is not in the local image cache: run scripts/seed-images.sh "
                                 "(or docker pull it)" % (base, p["name"]))
        base_ids.append((base, image.id))
    wanted = inputs_hash(path, p["dockerfile"], build_args, extra_ca, base_ids)
    diff = dict(before={"inputs_hash": current}, after={"inputs_hash": wanted})
    if current == wanted and not p["force"]:
        module.exit_json(changed=False, built=False, diff=diff,
                         image={"name": p["name"], "id": existing.id, "inputs_hash": wanted})
    if module.check_mode:
        module.exit_json(changed=True, built=False, diff=diff, image={"name": p["name"], "id": None, "inputs_hash": wanted})

    labels = dict(p["labels"] or {})
    labels[naming.LABEL_INPUTS] = wanted
    log, error = [], None
    try:
        for chunk in client.api.build(fileobj=context_tar(path, extra_ca), custom_context=True, tag=p["name"],
                                      dockerfile=p["dockerfile"], buildargs=build_args, labels=labels,
                                      rm=True, forcerm=True, decode=True):
            if "stream" in chunk:
                log.extend(chunk["stream"].rstrip("\n").splitlines())
            if "error" in chunk:
                error = chunk["error"]
    except DockerException as exc:
        error = str(exc)
    if error:
        module.fail_json(msg="building %s failed: %s" % (p["name"], error.strip()), build_log=log[-40:])
    image = find_image(client, p["name"])
    module.exit_json(changed=True, built=True, diff=diff,
                     image={"name": p["name"], "id": image.id if image else None, "inputs_hash": wanted})


if __name__ == "__main__":
    main()
