# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The life cycle of one named bottle container (the bundle, the agent).

After community.docker's ``module_container``: one manager holds the life
cycle, each compared setting is an ``Option`` that knows how to want it and how
to read it back. A module subclasses ``ContainerManager`` with its options and
its specifics; the engine calls stay here.

API:
- ``Option(name, want, have, secret=False)``: ``want(manager)`` is the desired
  value, ``have(manager, attrs)`` the container's, normalised the same way.
  ``secret`` options (a dict) are shown by their keys only in diff output.
- ``IMAGE`` / ``ENV`` / ``LABELS`` / ``NETWORKS``: the options every bottle
  container has (environment and labels compared only on the keys the module
  sets; environment the image sets itself is not ours).
- ``pinned_ip(name, ip_param, network_param)``: the address pinned on a network.
- ``argument_spec(**options)``: a container module's argument spec - ``slug``,
  ``agent``, ``name``, ``image``, ``state`` and the module's own ``options``.
- ``ContainerManager``: ``present()`` (create, recreate on a difference, start a
  stopped container, then ``finish()``), ``absent()`` (only a container labelled
  as the bottle's), ``create()`` (create, start, remove again if it does not
  start). Subclasses set ``kind``, ``options``, ``required``, ``ip_param`` and
  ``network_param``, and give ``desired_env()``, ``desired_labels()``,
  ``desired_networks()``, ``host_config(want)``; hooks have defaults.
"""

from __future__ import annotations

from ansible_collections.botbottle.bottle.plugins.module_utils import naming
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DockerException, env_list_to_dict, find_container, find_image)


class Option:
    """One compared setting of a container."""

    def __init__(self, name, want, have, secret=False):
        self.name = name
        self.want = want
        self.have = have
        self.secret = secret

    def differs(self, have, want):
        return have != want


def _current_env(manager, attrs):
    image_config = manager.client.api.inspect_image(attrs["Image"]).get("Config") or {}
    image_env = env_list_to_dict(image_config.get("Env"))
    wanted = manager.desired_env()
    env = env_list_to_dict((attrs.get("Config") or {}).get("Env"))
    return {k: v for k, v in env.items() if image_env.get(k) != v or k in wanted}


def _current_labels(manager, attrs):
    wanted = manager.desired_labels()
    return {k: v for k, v in ((attrs.get("Config") or {}).get("Labels") or {}).items() if k in wanted}


def _networks(attrs):
    return (attrs.get("NetworkSettings") or {}).get("Networks") or {}


IMAGE = Option("image", lambda m: m.image_id, lambda m, attrs: attrs.get("Image"))
ENV = Option("env", lambda m: m.desired_env(), _current_env, secret=True)
LABELS = Option("labels", lambda m: m.desired_labels(), _current_labels)
NETWORKS = Option("networks", lambda m: sorted(m.desired_networks()), lambda m, attrs: sorted(_networks(attrs)))


def pinned_ip(name, ip_param, network_param):
    """The address pinned (IPAM) on the network ``network_param`` names; ``""`` for none."""
    def have(manager, attrs):
        endpoint = _networks(attrs).get(manager.p[network_param] or "") or {}
        return (endpoint.get("IPAMConfig") or {}).get("IPv4Address") or ""
    return Option(name, lambda m: m.p[ip_param] or "", have)


def argument_spec(**options):
    """The options every bottle container module has, around the module's own."""
    spec = dict(
        slug=dict(type="str", required=True),
        agent=dict(type="str"),
        name=dict(type="str"),
        image=dict(type="str"),
    )
    spec.update(options)
    spec["state"] = dict(type="str", choices=["present", "absent"], default="present")
    return spec


class ContainerManager:
    kind = None            # "bundle", "agent": the component, in names and messages
    options = ()           # the compared settings, in diff order
    required = ()          # parameters state=present needs
    ip_param = network_param = None   # the pinned address and its network

    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.p = module.params
        self.check_mode = module.check_mode
        self.name = self.p["name"] or naming.object_name(self.p["slug"], self.kind)
        self.container = find_container(client, self.name)
        self.image_id = None
        self.result = dict(changed=False, created=False, container={"id": None, "name": self.name},
                           diff=dict(before={}, after={}))

    # -- what the module says ------------------------------------------
    def desired_env(self):
        raise NotImplementedError

    def desired_labels(self):
        raise NotImplementedError

    def desired_networks(self):
        raise NotImplementedError

    def host_config(self, want):
        """Keyword arguments of ``create_host_config`` besides the network mode."""
        raise NotImplementedError

    def check_present(self):
        """Fail on parameters that do not go together (after the required ones are checked)."""

    def creation_labels(self, want):
        return dict(want["labels"])

    def container_args(self, want):
        """Further keyword arguments of ``create_container``."""
        return {}

    def connect_networks(self):
        """Join networks beyond the one the container is created on (before it starts)."""

    def start_failure_hint(self):
        return ""

    def diff_state(self, settings, container=None):
        """The settings as shown in the diff; ``container`` is the existing one (None: the wanted state)."""
        return settings

    def updatable(self, diffs, want):
        """Whether every one of ``diffs`` can be applied to the existing container in place (none by default)."""
        return False

    def update_in_place(self, diffs, want):
        """Apply ``diffs`` (settings ``updatable`` accepted) to the existing container."""

    def before_recreate(self, diffs):
        """Before a container that differs by ``diffs`` is removed to be made again (in check mode too: it would be)."""

    def converge(self, before, after):
        """Nothing to recreate: start the container if it is stopped."""
        self.start_if_stopped()

    def finish(self):
        """After a real (not check mode) run with a container: report it."""
        self.report()

    # -- comparison ----------------------------------------------------
    def desired(self, image_id):
        self.image_id = image_id
        return {o.name: o.want(self) for o in self.options}

    def current(self):
        attrs = self.container.attrs
        return {o.name: o.have(self, attrs) for o in self.options}

    def differences(self, have, want):
        return sorted(o.name for o in self.options if o.differs(have.get(o.name), want.get(o.name)))

    def redact(self, state):
        """A copy fit for diff output: secret settings as their keys only."""
        if not state:
            return state
        shown = dict(state)
        for option in self.options:
            if option.secret:
                shown[option.name] = sorted(state.get(option.name, {}))
        return shown

    # -- life cycle ----------------------------------------------------
    def present(self):
        for key in self.required:
            if not self.p[key]:
                self.module.fail_json(msg="%s is required when state=present" % key)
        self.check_present()
        image = find_image(self.client, self.p["image"])
        if image is None:
            self.module.fail_json(msg="%s image %s is not in the local image cache: build it with `make images` "
                                      "(the playbook botbottle.bottle.images)" % (self.kind, self.p["image"]))
        want = self.desired(image.id)
        after = self.diff_state(want)
        if self.container is None:
            self.result.update(changed=True, created=True, diff=dict(before={}, after=self.redact(after)))
            if not self.check_mode:
                self.create(want)
        else:
            have = self.current()
            before = self.diff_state(have, self.container)
            self.result["diff"] = dict(before=self.redact(before), after=self.redact(after))
            diffs = self.differences(have, want)
            if diffs and self.updatable(diffs, want):
                # Limits alone changed: applied to the running container (docker update), nothing recreated;
                # then as with no difference (a stopped container started, a bundle's new configuration loaded).
                self.result.update(changed=True, updated_in_place=diffs)
                if not self.check_mode:
                    try:
                        self.update_in_place(diffs, want)
                    except DockerException as exc:
                        self.module.fail_json(msg="could not change %s of %s %s in place (docker update): %s"
                                                  % (", ".join(diffs), self.kind, self.name, exc))
                self.converge(before, after)
            elif diffs:
                self.result.update(changed=True, recreated_for=diffs)
                self.before_recreate(diffs)
                if not self.check_mode:
                    self.container.remove(force=True)
                    self.create(want)
            else:
                self.converge(before, after)
        if self.container is not None and not self.check_mode:
            self.finish()

    def start_if_stopped(self):
        """Start a stopped container (reported as ``restarted``); whether it was running."""
        if self.container.status == "running":
            return True
        self.result.update(changed=True, restarted=True)
        if not self.check_mode:
            self.container.start()
        return False

    def create(self, want):
        primary = self.desired_networks()[0]
        address = (self.p[self.ip_param] or None) if primary == self.p[self.network_param] else None
        networking = self.client.api.create_networking_config({
            primary: self.client.api.create_endpoint_config(ipv4_address=address)})
        # Without a network mode Docker would also attach the default bridge.
        host_config = self.client.api.create_host_config(network_mode=primary, **self.host_config(want))
        created = self.client.api.create_container(
            want["image"], name=self.name, environment=want["env"], labels=self.creation_labels(want),
            host_config=host_config, networking_config=networking, detach=True, **self.container_args(want))
        self.container = self.client.containers.get(created["Id"])
        try:
            self.connect_networks()
            self.container.start()
        except DockerException as exc:
            self.container.remove(force=True)
            self.container = None
            self.module.fail_json(msg="could not start %s %s: %s%s" % (self.kind, self.name, exc,
                                                                       self.start_failure_hint()))

    def report(self):
        self.container.reload()
        self.result["container"] = {"id": self.container.id, "name": self.name}
        self.result["ip"] = (_networks(self.container.attrs).get(self.p[self.network_param]) or {}).get("IPAddress")

    def check_absent(self):
        """Fail unless the container (when there is one) carries the bottle's label: before removing anything."""
        if self.container is not None and (self.container.labels or {}).get(naming.LABEL_BOTTLE) != self.p["slug"]:
            self.module.fail_json(msg="container %s does not carry label %s=%s: not removing what is not the bottle's"
                                      % (self.name, naming.LABEL_BOTTLE, self.p["slug"]))

    def absent(self):
        if self.container is None:
            return
        self.check_absent()
        self.result["changed"] = True
        self.result["container"]["id"] = self.container.id
        self.result["diff"] = dict(before={"name": self.name, "status": self.container.status}, after={})
        if not self.check_mode:
            self.container.remove(force=True)
