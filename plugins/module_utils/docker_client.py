# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way our modules talk to a Docker engine.

API:
- ``DOCKER_COMMON_ARGS``: merge into a module's argument_spec (documented by
  the ``botbottle.bottle.docker`` doc fragment).
- ``get_docker_client(module)``: a ``docker.DockerClient``, or the module fails
  with what to install or start.
- ``find_container(client, name)`` / ``find_network(client, name)``: the object
  or None.
- ``exec_in(container, argv, user=None)``: run argv in a running container,
  return ``(rc, stdout, stderr)`` as text.
- ``log_tail(container, lines)``: the container's last log lines as text.
"""

from __future__ import annotations

import os
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

try:
    import docker
    from docker.errors import DockerException, NotFound
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised by the sanity import test
    docker = None
    DockerException = NotFound = Exception
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

DOCKER_COMMON_ARGS = dict(
    docker_host=dict(type="str", fallback=(env_fallback, ["DOCKER_HOST"])),
    timeout=dict(type="int", default=60),
)

# Where Docker Desktop puts its socket when /var/run/docker.sock is not linked.
_DESKTOP_SOCKETS = ("~/.docker/run/docker.sock", "~/.docker/desktop/docker.sock")


def default_docker_host():
    """The engine URL to use when neither docker_host nor DOCKER_HOST is set."""
    if os.path.exists("/var/run/docker.sock"):
        return "unix:///var/run/docker.sock"
    for candidate in _DESKTOP_SOCKETS:
        path = os.path.expanduser(candidate)
        if os.path.exists(path):
            return "unix://" + path
    return "unix:///var/run/docker.sock"


def get_docker_client(module):
    """A connected docker client, or fail the module saying what to fix."""
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)
    host = module.params.get("docker_host") or default_docker_host()
    try:
        client = docker.DockerClient(base_url=host, timeout=module.params.get("timeout") or 60)
        client.ping()
    except DockerException as exc:
        module.fail_json(
            msg="no Docker engine answers at %s (docker_host): %s. Start Docker (or Docker Desktop), "
                "or point docker_host / DOCKER_HOST at a running engine." % (host, exc))
    return client


def find_container(client, name):
    try:
        return client.containers.get(name)
    except NotFound:
        return None


def find_network(client, name):
    try:
        return client.networks.get(name)
    except NotFound:
        return None


def find_image(client, name):
    try:
        return client.images.get(name)
    except NotFound:
        return None


def exec_in(container, argv, user=None, environment=None):
    """Run ``argv`` in ``container``; return (rc, stdout, stderr) as text."""
    result = container.exec_run(argv, user=user or "", demux=True, environment=environment)
    out, err = result.output if isinstance(result.output, tuple) else (result.output, b"")
    return (result.exit_code,
            (out or b"").decode("utf-8", "replace"),
            (err or b"").decode("utf-8", "replace"))


def log_tail(container, lines=30):
    try:
        return container.logs(tail=lines).decode("utf-8", "replace")
    except DockerException as exc:
        return "(logs unavailable: %s)" % exc
