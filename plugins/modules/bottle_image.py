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
    hash of its inputs - the relative path, content and executable bits of every context file the
    engine would receive (C(.dockerignore) applied with the engine's rules), the Dockerfile, the build
    arguments, the labels, the extra CA bundle and the ids of the base images the C(FROM) lines name
    (with C(ARG) defaults and build arguments substituted).
  - Base images must already be in the local image cache (nothing is pulled); a missing one fails
    before any build with the hint to run C(scripts/seed-images.sh).
  - The build uses the engine's legacy builder and streams its output; a failed build reports its
    last 40 lines.
  - With O(progress_file) each build step is appended to that file as it starts (one JSON line each),
    so that M(botbottle.bottle.bottle_follow) can print the build's progress while the module runs in
    the background (C(async) with C(poll) set to 0); see the playbook C(botbottle.bottle.images).
  - O(extra_ca_file) is copied into the build context as C(extra-ca.pem) (an empty file when unset)
    without touching the source tree; the Dockerfiles use it for their downloads only.
  - A symlink in the context that points at a file is sent as that file (its content and executable
    bits are the input), the way M(ansible.builtin.copy) ships a context to a managed host; so a
    context can take one file from the collection without a second copy (the bundle's
    C(agent_text.py) is C(plugins/module_utils/agent_text.py)). A symlink that points nowhere, or at
    a directory, fails the build naming it.
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
    description:
      - Extra image labels (part of the inputs). C(io.botbottle.inputs) is reserved for the module.
    type: dict
    default: {}
  keep_previous:
    description:
      - Keep the image a rebuild replaced. By default it is removed when no other tag names it and
        no container uses it, so repeated rebuilds do not pile up untagged images.
    type: bool
    default: false
  build_timeout:
    description:
      - Seconds a build may stay silent (one long C(RUN) step) before it is given up.
    type: int
    default: 3600
  progress_file:
    description:
      - A file on the managed host to append progress events to (a build starting, each step), for
        M(botbottle.bottle.bottle_follow). Unset means none.
    type: path
  force:
    description: Build even when the inputs did not change.
    type: bool
    default: false
  state:
    description: V(absent) removes the image (its tag O(name)).
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Build the agent image behind a TLS-intercepting proxy
  botbottle.bottle.bottle_image:
    name: botbottle/agent:latest
    path: /opt/botbottle/images/agent
    extra_ca_file: /etc/ssl/certs/ca-certificates.crt

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
  contains:
    name:
      description: The image reference.
      type: str
    id:
      description: The image id (null in check mode when a build would run).
      type: str
    inputs_hash:
      description: The hash of the inputs, also the image's C(io.botbottle.inputs) label.
      type: str
built:
  description: Whether a build ran.
  returned: always
  type: bool
removed_previous:
  description: Whether the image a rebuild replaced was removed (see O(keep_previous)).
  returned: when a build replaced an existing image
  type: bool
build_steps:
  description: The build's steps, and how many came from the engine's cache.
  returned: when a build ran
  type: dict
  sample: {steps: 12, cached: 7}
build_log:
  description: The last 40 lines of build output.
  returned: when the build failed
  type: list
  elements: str
missing_base_images:
  description: Base images that are not in the local image cache.
  returned: when a base image is missing
  type: list
  elements: str
"""

import fnmatch
import hashlib
import io
import os
import re
import stat
import tarfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils import naming
from ansible_collections.botbottle.bottle.plugins.module_utils.progress import BuildSteps, ProgressFile
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, DockerException, find_image, get_docker_client)

try:
    from docker.utils.build import exclude_paths
except ImportError:  # pragma: no cover - the module fails in get_docker_client first
    exclude_paths = None

EXTRA_CA_NAME = "extra-ca.pem"
SEED_HINT = "run scripts/seed-images.sh on that host (or docker pull it where a registry answers)"
# What the engine says when the legacy builder tried to pull a base it could not find.
PULL_FAILURE = re.compile(r"pull access denied|manifest unknown|repository does not exist|"
                          r"no such image|not found: manifest|failed to resolve", re.I)
_ARG_REF = re.compile(r"\$(?:\{(\w+)(?::?([-+])([^}]*))?\}|(\w+))")


def ignore_patterns(path):
    """The .dockerignore patterns of a context, in the engine's form (comments and blanks dropped)."""
    try:
        with open(os.path.join(path, ".dockerignore"), encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")]
    except OSError:
        return []


def context_files(path, dockerfile="Dockerfile"):
    """Relative paths of the files the engine would receive, sorted.

    .dockerignore semantics (``**``, ``!`` exceptions, directories) are the docker SDK's own; the
    Dockerfile is always kept, as the engine does. A stray ``extra-ca.pem`` in the source tree is
    left out: the module supplies that file itself."""
    patterns = ignore_patterns(path)
    if exclude_paths is not None:
        kept = exclude_paths(path, list(patterns), dockerfile=dockerfile)
    else:  # only reached by callers that bypass get_docker_client (none in the module)
        kept = set()
        for root, _dirs, files in os.walk(path):
            for name in files:
                rel = os.path.relpath(os.path.join(root, name), path)
                if rel == dockerfile or not any(fnmatch.fnmatch(rel, p) for p in patterns):
                    kept.add(rel)
    out = []
    for rel in kept:
        full = os.path.join(path, rel)
        if rel == EXTRA_CA_NAME or (os.path.isdir(full) and not os.path.islink(full)):
            continue
        out.append(rel)
    return sorted(out)


def unusable_links(path, files):
    """The context's symlinks that do not point at a file (dangling, or a directory): each one a reason."""
    out = []
    for rel in files:
        full = os.path.join(path, rel)
        if os.path.islink(full) and not os.path.isfile(full):
            out.append("%s -> %s (%s)" % (rel, os.readlink(full),
                                          "a directory" if os.path.isdir(full) else "points nowhere"))
    return out


def _substitute(text, args):
    def one(match):
        name = match.group(1) or match.group(4)
        value = args.get(name, "")
        if match.group(2) == "-":
            return value or match.group(3)
        if match.group(2) == "+":
            return match.group(3) if value else ""
        return value
    return _ARG_REF.sub(one, text)


def base_images(dockerfile_text, build_args):
    """Names of the images the FROM lines start from, with ARG defaults and build args substituted.

    Only ARGs declared before the first FROM apply to FROM lines (Dockerfile scoping); stage
    names, ``scratch`` and references that stay unresolved are skipped."""
    args, stages, bases, seen_from = {}, set(), [], False
    text = re.sub(r"\\\r?\n", " ", dockerfile_text)
    for line in text.splitlines():
        words = line.strip().split()
        if len(words) < 2 or words[0].startswith("#"):
            continue
        keyword = words[0].upper()
        if keyword == "ARG" and not seen_from:
            for decl in words[1:]:
                key, _sep, default = decl.partition("=")
                args[key] = build_args.get(key, _substitute(default.strip("\"'"), args))
        elif keyword == "FROM":
            seen_from = True
            rest = [w for w in words[1:] if not w.startswith("--")]
            if not rest:
                continue
            ref = _substitute(rest[0], args)
            if ref and "$" not in ref and ref not in stages and ref.lower() != "scratch" and ref not in bases:
                bases.append(ref)
            if len(rest) >= 3 and rest[1].upper() == "AS":
                stages.add(rest[2])
    return bases


def inputs_hash(path, files, dockerfile, build_args, labels, extra_ca, base_ids):
    """sha256 over everything that decides what a build produces."""
    digest = hashlib.sha256()
    for rel in files:
        full = os.path.join(path, rel)
        mode = os.stat(full).st_mode  # a symlink is sent as the file it points at
        with open(full, "rb") as handle:
            content = handle.read()
        # The executable bits survive COPY, so they are an input too.
        digest.update(("file %s %o\0" % (rel, stat.S_IMODE(mode) & 0o111)).encode())
        digest.update(hashlib.sha256(content).digest())
    digest.update(("dockerfile=%s\0" % dockerfile).encode())
    for key in sorted(build_args):
        digest.update(("arg %s=%s\0" % (key, build_args[key])).encode())
    for key in sorted(labels):
        digest.update(("label %s=%s\0" % (key, labels[key])).encode())
    digest.update(b"extra-ca\0" + hashlib.sha256(extra_ca).digest())
    for name, image_id in base_ids:
        digest.update(("base %s=%s\0" % (name, image_id)).encode())
    return digest.hexdigest()


def context_tar(path, files, extra_ca):
    """The build context as an in-memory tar: the kept files plus our extra-ca.pem."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", dereference=True) as tar:
        for rel in files:
            tar.add(os.path.join(path, rel), arcname=rel, recursive=False)
        info = tarfile.TarInfo(EXTRA_CA_NAME)
        info.size, info.mode = len(extra_ca), 0o644
        tar.addfile(info, io.BytesIO(extra_ca))
    buf.seek(0)
    return buf


class ImageManager:
    """Decides whether image O(name) must be built (or removed) and does it."""

    def __init__(self, module, client):
        self.module, self.client, self.p = module, client, module.params
        self.check_mode = module.check_mode
        self.existing = find_image(client, self.p["name"])
        labels = (self.existing.labels or {}) if self.existing is not None else {}
        self.current = labels.get(naming.LABEL_INPUTS) or ""
        self.result = dict(changed=False, built=False)
        self.progress = ProgressFile(self.p.get("progress_file"))

    def fail(self, msg, **extra):
        self.module.fail_json(msg=msg, **extra)

    def absent(self):
        if self.existing is None:
            self.result["diff"] = dict(before={}, after={})
            return
        if not self.check_mode:
            try:
                self.client.images.remove(self.p["name"])
            except DockerException as exc:
                self.fail("cannot remove image %s: %s. Remove the containers still using it first "
                          "(docker ps -a --filter ancestor=%s)" % (self.p["name"], exc, self.p["name"]))
        self.result.update(changed=True, diff=dict(before={"inputs_hash": self.current}, after={}))

    def _extra_ca(self):
        ca_file = self.p["extra_ca_file"]
        if not ca_file:
            return b""
        if not os.path.isfile(ca_file):
            self.fail("extra_ca_file %s is not a file on the managed host: give a PEM bundle there "
                      "(for example /etc/ssl/certs/ca-certificates.crt) or leave extra_ca_file empty" % ca_file)
        with open(ca_file, "rb") as handle:
            return handle.read()

    def _base_ids(self, dockerfile_text, build_args):
        found, missing = [], []
        for base in base_images(dockerfile_text, build_args):
            image = find_image(self.client, base)
            if image is None:
                missing.append(base)
            else:
                found.append((base, image.id))
        if missing:
            self.fail("base image(s) %s of %s not in the local image cache: %s"
                      % (", ".join(missing), self.p["name"], SEED_HINT), missing_base_images=missing)
        return found

    def present(self):
        p = self.p
        path = p["path"]
        dockerfile_path = os.path.join(path, p["dockerfile"])
        if not os.path.isdir(path):
            self.fail("path %s is not a directory on the managed host: point path at an image's build context" % path)
        if not os.path.isfile(dockerfile_path):
            self.fail("path %s has no %s (dockerfile): point path at an image's build context, or set "
                      "dockerfile to the Dockerfile's path relative to it" % (path, p["dockerfile"]))
        extra_ca = self._extra_ca()
        build_args = dict((k, str(v)) for k, v in (p["build_args"] or {}).items())
        labels = dict((k, str(v)) for k, v in (p["labels"] or {}).items())
        if naming.LABEL_INPUTS in labels:
            self.fail("labels: %s is set by the module itself; remove it from labels" % naming.LABEL_INPUTS)
        with open(dockerfile_path, encoding="utf-8") as handle:
            base_ids = self._base_ids(handle.read(), build_args)
        files = context_files(path, p["dockerfile"])
        broken = unusable_links(path, files)
        if broken:
            self.fail("the build context %s has symlinks that do not point at a file: %s; point each at a "
                      "file or remove it" % (path, ", ".join(broken)))
        wanted = inputs_hash(path, files, p["dockerfile"], build_args, labels, extra_ca, base_ids)
        self.result["diff"] = dict(before={"inputs_hash": self.current}, after={"inputs_hash": wanted})
        image = {"name": p["name"], "id": self.existing.id if self.existing is not None else None,
                 "inputs_hash": wanted}
        self.result["image"] = image
        if self.current == wanted and not p["force"]:
            return
        self.result["changed"] = True
        if self.check_mode:
            image["id"] = None
            return
        labels[naming.LABEL_INPUTS] = wanted
        self.progress.emit("build", reason="no image %s yet" % p["name"] if self.existing is None else
                           "forced" if self.current == wanted else "its inputs changed")
        self._build(path, files, extra_ca, build_args, labels)
        built = find_image(self.client, p["name"])
        image["id"] = built.id if built is not None else None
        self.result["built"] = True
        if self.existing is not None and self.existing.id != image["id"] and not p["keep_previous"]:
            self.result["removed_previous"] = self._remove_untagged(self.existing.id)

    def _remove_untagged(self, image_id):
        """Remove the image a rebuild replaced, if nothing else names or runs it; True if removed."""
        previous = find_image(self.client, image_id)
        if previous is None or previous.tags:
            return False
        try:
            self.client.images.remove(image_id)
        except DockerException:  # a container still uses it: it stays, as docker build leaves it
            return False
        return True

    def _build(self, path, files, extra_ca, build_args, labels):
        p = self.p
        log, error = [], None
        steps = BuildSteps(self.progress)
        try:
            # The legacy builder (no BuildKit on the engines we target), streamed so a failure can
            # show its last lines; pull=False: bases come from the local cache, checked above.
            stream = self.client.api.build(
                fileobj=context_tar(path, files, extra_ca), custom_context=True, tag=p["name"],
                dockerfile=p["dockerfile"], buildargs=build_args, labels=labels, rm=True, forcerm=True,
                pull=False, decode=True, timeout=p["build_timeout"])
            for chunk in stream:
                if "stream" in chunk:
                    lines = chunk["stream"].rstrip("\n").splitlines()
                    for line in lines:
                        steps.feed(line)
                    log.extend(lines)
                if "error" in chunk:
                    error = chunk["error"]
                    log.extend(str(error).rstrip("\n").splitlines())
        except OSError as exc:  # a read timeout of a silent build step surfaces as a socket error
            error = "%s (a build step stayed silent longer than build_timeout=%s seconds: raise build_timeout)" % (
                exc, p["build_timeout"])
        except DockerException as exc:
            error = str(exc)
        self.result["build_steps"] = {"steps": steps.steps, "cached": steps.cached}
        if error:
            hint = ""
            if PULL_FAILURE.search(str(error)):
                hint = "; a base image is missing: " + SEED_HINT
            tail = log[-40:]
            self.fail("building %s failed: %s%s\n--- last %d lines of build output ---\n%s"
                      % (p["name"], str(error).strip(), hint, len(tail), "\n".join(tail)), build_log=tail)


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        path=dict(type="path"),
        dockerfile=dict(type="str", default="Dockerfile"),
        build_args=dict(type="dict", default={}),
        extra_ca_file=dict(type="path"),
        labels=dict(type="dict", default={}),
        force=dict(type="bool", default=False),
        keep_previous=dict(type="bool", default=False),
        build_timeout=dict(type="int", default=3600),
        progress_file=dict(type="path"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    argument_spec.update(DOCKER_COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[("state", "present", ["path"])])
    client = get_docker_client(module)
    try:
        manager = ImageManager(module, client)
        getattr(manager, module.params["state"])()
    except DockerException as exc:
        module.fail_json(msg="docker engine error for image %s: %s" % (module.params["name"], exc))
    result = manager.result
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
