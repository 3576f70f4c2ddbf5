# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way our modules talk to a Docker engine.

API:
- ``DOCKER_COMMON_ARGS``: merge into a module's argument_spec (documented by
  the ``botbottle.bottle.docker`` doc fragment).
- ``get_docker_client(module)``: a ``docker.DockerClient``, or the module fails
  with what to install or start (``engine_hint``: a socket the user may not use is
  answered with the docker group / Docker Desktop user, never with become).
- ``connect(docker_host=None, timeout=60)``: the same client without a module (code shared
  with a program that is not a module, e.g. the operator's console); raises
  ``EngineUnavailable`` with the same hint.
- ``find_container(client, name)`` / ``find_network(client, name)`` /
  ``find_image(client, name)``: the object or None.
- ``bottle_containers(client, slug=None, agent=None)`` /
  ``bottle_networks(client, slug=None, agent=None)``: the objects carrying the
  bottle labels of ``naming.bottle_filter`` (containers in any state).
- ``exec_in(container, argv, user=None, environment=None)``: run argv in a
  running container, return ``(rc, stdout, stderr)`` as text. ``environment``
  (a dict) travels through the API, never on a command line.
- ``log_tail(container, lines=30)``: the container's last log lines as text
  (never raises).
- ``run_manager(argument_spec, manager_class, what, get_client)``: the shared main() of the
  slug-keyed modules (bottle_network, sidecar_bundle, bottle_agent).
- ``env_list_to_dict(items)``: Docker's ``["K=V"]`` environment as a dict.
- ``DockerException`` / ``NotFound``: the SDK's errors (plain ``Exception``
  when the SDK is missing, so ``except`` clauses still import).
"""

from __future__ import annotations

import os
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.botbottle.bottle.plugins.module_utils import naming

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


def run_manager(argument_spec, manager_class, what, get_client=None):
    """The main() of a slug-keyed docker module: parse, check the slug, connect, let
    ``manager_class(module, client)`` do ``present()``/``absent()``, exit with its ``result``.

    ``get_client`` defaults to ``get_docker_client``; modules pass their own reference so
    tests can swap the client where the module looks it up."""
    from ansible.module_utils.basic import AnsibleModule
    from ansible_collections.botbottle.bottle.plugins.module_utils import naming

    spec = dict(argument_spec)
    spec.update(DOCKER_COMMON_ARGS)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    error = naming.slug_error(module.params["slug"])
    if error:
        module.fail_json(msg="slug: " + error)
    client = (get_client or get_docker_client)(module)
    try:
        manager = manager_class(module, client)
        getattr(manager, module.params["state"])()
    except DockerException as exc:
        module.fail_json(msg="docker engine error for %s of bottle %s: %s" % (what, module.params["slug"], exc))
    result = manager.result
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


def default_docker_host():
    """The engine URL to use when neither docker_host nor DOCKER_HOST is set."""
    if os.path.exists("/var/run/docker.sock"):
        return "unix:///var/run/docker.sock"
    for candidate in _DESKTOP_SOCKETS:
        path = os.path.expanduser(candidate)
        if os.path.exists(path):
            return "unix://" + path
    return "unix:///var/run/docker.sock"


class EngineUnavailable(Exception):
    """No usable Docker engine (or no Docker SDK); the message says what to fix."""


def connect(docker_host=None, timeout=60):
    """A connected docker client for ``docker_host`` (default: DOCKER_HOST, else the local socket)."""
    if not HAS_DOCKER:
        raise EngineUnavailable(missing_required_lib("docker"))
    host = docker_host or os.environ.get("DOCKER_HOST") or default_docker_host()
    try:
        client = docker.DockerClient(base_url=host, timeout=timeout or 60)
        client.ping()
    except DockerException as exc:
        raise EngineUnavailable(engine_hint(host, exc))
    return client


def get_docker_client(module):
    """A connected docker client, or fail the module saying what to fix."""
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)
    try:
        # docker_host falls back to DOCKER_HOST in the argument spec already.
        return connect(module.params.get("docker_host") or default_docker_host(), module.params.get("timeout"))
    except EngineUnavailable as exc:
        module.fail_json(msg=str(exc))


def engine_hint(host, exc):
    """Why no engine answers at ``host`` and what to do; the collection never needs become for it."""
    if "Permission denied" in str(exc) or "PermissionError" in str(exc):
        return ("the Docker engine at %s refused this user (%s): on Linux add the user to the docker group "
                "(usermod -aG docker <user>, then log in again); on macOS use the user who runs Docker Desktop. "
                "The collection needs no become for Docker." % (host, exc))
    return ("no Docker engine answers at %s (docker_host): %s. Start Docker (or Docker Desktop), "
            "or point docker_host / DOCKER_HOST at a running engine." % (host, exc))


def find_container(client, name):
    """The container called (or with id) ``name``, or None."""
    try:
        return client.containers.get(name)
    except NotFound:
        return None


def find_network(client, name):
    """The network called (or with id) ``name``, or None."""
    try:
        return client.networks.get(name)
    except NotFound:
        return None


def find_image(client, name):
    """The local image ``name`` (reference or id), or None."""
    try:
        return client.images.get(name)
    except NotFound:
        return None


def bottle_containers(client, slug=None, agent=None):
    """Containers (running or not) of bottle ``slug`` (or of every bottle), by label."""
    return client.containers.list(all=True, filters=naming.bottle_filter(slug, agent))


def bottle_networks(client, slug=None, agent=None):
    """Networks of bottle ``slug`` (or of every bottle), by label."""
    return client.networks.list(filters=naming.bottle_filter(slug, agent))


def exec_in(container, argv, user=None, environment=None):
    """Run ``argv`` in ``container``; return (rc, stdout, stderr) as text."""
    result = container.exec_run(argv, user=user or "", demux=True, environment=environment)
    out, err = result.output if isinstance(result.output, tuple) else (result.output, b"")
    return (result.exit_code,
            (out or b"").decode("utf-8", "replace"),
            (err or b"").decode("utf-8", "replace"))


def env_list_to_dict(items):
    """Docker's ["K=V", ...] environment as a dict."""
    out = {}
    for item in items or []:
        key, _sep, value = item.partition("=")
        out[key] = value
    return out


def log_tail(container, lines=30):
    """The last ``lines`` lines of the container's log; a note instead of an error."""
    try:
        return container.logs(tail=lines).decode("utf-8", "replace")
    except DockerException as exc:
        return "(logs unavailable: %s)" % exc
