# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small in-memory Docker engine for the docker modules' unit tests.

It answers the SDK calls our modules make (docker.DockerClient's networks,
containers, images and the low-level ``api`` helpers) and keeps the state an
engine would report back through ``attrs``, so a module's second run sees
what its first run created. ``run_module`` runs a module's ``main()`` with
arguments and returns its result (or raises ``Failed`` with it).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import io
import json
import tarfile

from unittest import mock

from docker.errors import APIError, NotFound

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

_ids = itertools.count(1)


def new_id():
    return "%064x" % next(_ids)


class Exited(Exception):
    """exit_json was called; ``result`` holds its arguments."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


class Failed(Exception):
    """fail_json was called; ``result`` holds its arguments."""

    def __init__(self, result):
        super().__init__(result.get("msg"))
        self.result = result


def run_module(module, client, args, check=False, diff=False):
    """Run ``module.main()`` against ``client``; return the result dict or raise Failed."""
    args = dict(args)
    args["_ansible_check_mode"] = check
    args["_ansible_diff"] = diff

    def exit_json(self, **kwargs):
        raise Exited(kwargs)

    def fail_json(self, **kwargs):
        raise Failed(kwargs)

    with contextlib.ExitStack() as patches:
        patches.enter_context(patch_module_args(args))
        patches.enter_context(mock.patch.object(basic.AnsibleModule, "exit_json", exit_json))
        patches.enter_context(mock.patch.object(basic.AnsibleModule, "fail_json", fail_json))
        if hasattr(module, "get_docker_client"):  # modules without Docker (bottle_state) run as they are
            patches.enter_context(mock.patch.object(module, "get_docker_client", lambda m: client))
        try:
            module.main()
        except Exited as done:
            return done.result
    raise AssertionError("module returned without exit_json")


def _matches(labels, filters):
    for wanted in (filters or {}).get("label", []):
        key, sep, value = wanted.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


class FakeImage:
    def __init__(self, name, env=None, labels=None):
        self.id = "sha256:" + new_id()
        self.tags = [name]
        self.env = list(env or [])
        self.labels = dict(labels or {})


class FakeNetwork:
    def __init__(self, engine, name, internal=False, subnet=None, gateway=None, options=None, labels=None):
        self.engine = engine
        self.id = new_id()
        self.name = name
        config = [{"Subnet": subnet, "Gateway": gateway}] if subnet else []
        self.attrs = {"Name": name, "Id": self.id, "Internal": internal, "Options": dict(options or {}),
                      "Labels": dict(labels or {}), "IPAM": {"Config": config}, "Containers": {}}
        self.removed = False

    def reload(self):
        self.attrs["Containers"] = {c.id: {} for c in self.engine.containers.values()
                                    if self.name in c.attrs["NetworkSettings"]["Networks"]}

    def connect(self, container):
        container.attrs["NetworkSettings"]["Networks"][self.name] = {"IPAMConfig": None,
                                                                     "IPAddress": self.engine.next_ip(self)}

    def disconnect(self, container, force=False):
        cont = self.engine.container(container)
        cont.attrs["NetworkSettings"]["Networks"].pop(self.name, None)

    def remove(self):
        self.reload()
        if self.attrs["Containers"]:
            raise APIError("network %s has active endpoints" % self.name)
        del self.engine.networks[self.name]
        self.removed = True


class FakeContainer:
    def __init__(self, engine, name, attrs):
        self.engine = engine
        self.id = new_id()
        self.name = name
        self.attrs = attrs
        self.attrs["Id"] = self.id
        self.signals = []
        self.files = {}
        self.log_lines = []
        self.unhealthy = {}  # daemon -> reason reported by bottle-health
        self.restaged = True  # whether bottle-init has re-staged the configuration after a SIGHUP
        self.egress_staged = None  # egress.json as staged in the bundle (None: what the last check was given)
        self.exit_on_start = None  # an exit code: the container dies right after starting

    @property
    def status(self):
        return self.attrs["State"]["Status"]

    @property
    def labels(self):
        return dict(self.attrs["Config"]["Labels"] or {})

    def reload(self):
        pass

    def start(self):
        if self.exit_on_start is not None:
            self.attrs["State"] = {"Status": "exited", "ExitCode": self.exit_on_start}
            return
        self.attrs["State"] = {"Status": "running", "ExitCode": 0}
        ports = {}
        for spec, bindings in (self.attrs["HostConfig"].get("PortBindings") or {}).items():
            ports[spec] = [{"HostIp": b["HostIp"], "HostPort": b["HostPort"] or str(self.engine.next_port())}
                           for b in bindings]
        self.attrs["NetworkSettings"]["Ports"] = ports

    def kill(self, signal="SIGKILL"):
        self.signals.append(signal)

    def remove(self, force=False):
        del self.engine.containers[self.name]

    def logs(self, tail=None):
        lines = self.log_lines[-tail:] if tail else self.log_lines
        return "".join(line + "\n" for line in lines).encode()

    def env(self):
        return dict(item.partition("=")[::2] for item in self.attrs["Config"]["Env"])

    def get_archive(self, path):
        """The engine's archive of ``path`` (the agent's home): ``self.home`` ({relative path: bytes}) under the
        folder's own name, read in a stopped container as well."""
        buf = io.BytesIO()
        top = path.rstrip("/").rsplit("/", 1)[-1]
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for folder in (top, top + "/work"):
                info = tarfile.TarInfo(folder)
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            for rel, content in sorted(getattr(self, "home", {}).items()):
                info = tarfile.TarInfo(top + "/" + rel)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        self.engine.archives_read.append((self.name, path))
        return iter([buf.getvalue()]), {"name": top}

    def exec_run(self, argv, user="", demux=False, environment=None):
        self.engine.execs.append((self.name, list(argv), user, environment))
        code, out = self.run(list(argv))
        return mock.Mock(exit_code=code, output=(out.encode(), b""))

    def run(self, argv):
        """What the fake bundle answers to the commands modules run in it."""
        if argv[0].endswith("bottle-health"):
            daemons = self.env().get("BOTTLE_DAEMONS", "pipelock,egress").split(",")
            report = {d: self.unhealthy.get(d, "healthy") for d in daemons}
            return (0 if all(v == "healthy" for v in report.values()) else 1), json.dumps(report)
        if argv[0] == "cat":
            return (0, self.files[argv[1]]) if argv[1] in self.files else (1, "")
        if argv[:2] == ["sh", "-c"] and len(argv) == 5:  # the config-hash recorder: sh -c SCRIPT PATH VALUE
            self.files[argv[3]] = argv[4] + "\n"
            return 0, ""
        if argv[:2] == ["sh", "-c"] and "cmp -s" in argv[2]:  # bundle_config.restaged_argv
            return (0 if self.restaged else 1), ""
        if argv[0] == "/opt/egress/bin/python" and "bottle_firewall" in argv[2]:  # supervise_decide.egress_refusal
            return egress_parses(argv[3], self.files, self.egress_staged)
        return 127, ""


def egress_parses(source, files, staged):
    """egress's own parser (images/bundle/bottle_firewall/policy.py, the bundle's code) on an egress.json, as
    supervise_decide.EGRESS_CHECK runs it in the bundle: (0, "") or (3, why)."""
    import importlib
    import pathlib
    import sys
    bundle = str(pathlib.Path(__file__).resolve().parents[4] / "images" / "bundle")
    if bundle not in sys.path:
        sys.path.insert(0, bundle)
    policy = importlib.import_module("bottle_firewall.policy")
    text = staged if source.startswith("@") else source
    if text is None:
        return 0, ""
    try:
        policy.parse_config(json.loads(text))
    except (policy.ConfigError, ValueError) as exc:
        return 3, str(exc)
    return 0, ""


class FakeCollection:
    def __init__(self, engine):
        self.engine = engine


class FakeNetworks(FakeCollection):
    def get(self, name):
        for net in self.engine.networks.values():
            if name in (net.name, net.id):
                return net
        raise NotFound("network %s not found" % name)

    def list(self, filters=None):
        return [n for n in self.engine.networks.values() if _matches(n.attrs["Labels"], filters)]

    def create(self, name, driver="bridge", internal=False, ipam=None, options=None, labels=None,
               check_duplicate=None):
        if name in self.engine.networks:
            raise APIError("network with name %s already exists" % name)
        pool = (ipam or {}).get("Config", [{}])[0]
        net = FakeNetwork(self.engine, name, internal=internal, subnet=pool.get("Subnet"),
                          gateway=pool.get("Gateway"), options=options, labels=labels)
        self.engine.networks[name] = net
        self.engine.created.append(("network", name))
        return net


class FakeContainers(FakeCollection):
    def get(self, name):
        return self.engine.container(name)

    def list(self, all=False, filters=None):
        return [c for c in self.engine.containers.values() if _matches(c.labels, filters)
                and (all or c.status == "running")]


class FakeImages(FakeCollection):
    def get(self, name):
        for image in self.engine.images:
            if name in image.tags or name == image.id:
                return image
        raise NotFound("image %s not found" % name)


class FakeAPI:
    """The low-level helpers: configs are kept as given, create_container turns them into attrs."""

    def __init__(self, engine):
        self.engine = engine

    def inspect_image(self, image_id):
        image = self.engine.images_by_id(image_id)
        return {"Id": image.id, "Config": {"Env": list(image.env)}}

    @staticmethod
    def create_host_config(**kwargs):
        return dict(kwargs)

    # docker update, as resources.docker_update calls the engine (the body the CLI sends).
    @staticmethod
    def _url(path, *args):
        return path.format(*args)

    def _post_json(self, url, data=None):
        container_id = url.split("/")[2]
        container = next(c for c in self.engine.containers.values() if c.id == container_id)
        self.engine.updates.append((container.name, dict(data)))
        keys = {"Memory": "Memory", "MemorySwap": "MemorySwap", "NanoCpus": "NanoCpus", "PidsLimit": "PidsLimit"}
        for key, attr in keys.items():
            if key in data:
                container.attrs["HostConfig"][attr] = data[key]
        return None

    @staticmethod
    def _raise_for_status(response):
        return response

    @staticmethod
    def create_endpoint_config(ipv4_address=None):
        return {"ipv4_address": ipv4_address}

    @staticmethod
    def create_networking_config(endpoints):
        return dict(endpoints)

    def create_container(self, image, name=None, environment=None, labels=None, host_config=None,
                         networking_config=None, ports=None, detach=True, user=None, hostname=None):
        engine = self.engine
        if name in engine.containers:
            raise APIError("Conflict. The container name %s is already in use" % name)
        host_config = dict(host_config or {})
        network_mode = host_config.get("network_mode") or "default"
        networks = {}
        for net_name, endpoint in (networking_config or {}).items():
            net = engine.client.networks.get(net_name)
            address = endpoint.get("ipv4_address")
            networks[net_name] = {"IPAMConfig": {"IPv4Address": address} if address else None,
                                  "IPAddress": address or engine.next_ip(net)}
        if network_mode == "default":  # what Docker does without a network mode
            networks["bridge"] = {"IPAMConfig": None, "IPAddress": "172.17.0.9"}
        bindings = {}
        for spec, value in (host_config.get("port_bindings") or {}).items():
            entries = value if isinstance(value, list) else [value]  # the SDK takes a tuple or a list of them
            bindings[spec] = [{"HostIp": host_ip, "HostPort": str(host_port or "")} for host_ip, host_port in entries]
        restart = host_config.get("restart_policy") or {"Name": "no"}
        mounts = [{"Type": m["Type"], "Source": m["Source"], "Destination": m["Target"],
                   "RW": not m.get("ReadOnly", False)} for m in host_config.get("mounts") or []]
        image_env = engine.images_by_id(image).env
        env = list(image_env) + ["%s=%s" % kv for kv in (environment or {}).items()]
        attrs = {
            "Image": image,
            "Name": "/" + name,
            "Args": [],
            "Config": {"Env": env, "Labels": dict(labels or {}), "User": user or "", "Hostname": hostname},
            "HostConfig": {
                "NetworkMode": network_mode,
                "CapAdd": host_config.get("cap_add"),
                "CapDrop": host_config.get("cap_drop"),
                "SecurityOpt": host_config.get("security_opt"),
                "Init": host_config.get("init"),
                "Dns": host_config.get("dns"),
                "DnsOptions": host_config.get("dns_opt"),
                "DnsSearch": host_config.get("dns_search"),
                "PidsLimit": host_config.get("pids_limit"),
                "OomScoreAdj": host_config.get("oom_score_adj") or 0,
                "Memory": self._bytes(host_config.get("mem_limit")),
                "NanoCpus": host_config.get("nano_cpus") or 0,
                "Privileged": bool(host_config.get("privileged")),
                "PortBindings": bindings,
                "RestartPolicy": restart,
                # the engine's default driver, without options, unless the container asked for one
                "LogConfig": ({"Type": host_config["log_config"]["type"], "Config": dict(host_config["log_config"]["config"])}
                              if host_config.get("log_config") else
                              {"Type": engine.client.info()["LoggingDriver"], "Config": {}}),
            },
            "Mounts": mounts,
            "NetworkSettings": {"Networks": networks, "Ports": {}},
            "State": {"Status": "created", "ExitCode": 0},
            "ExposedPorts": ports,
        }
        container = FakeContainer(engine, name, attrs)
        engine.containers[name] = container
        engine.created.append(("container", name))
        if engine.on_create:
            engine.on_create(container)
        return {"Id": container.id}

    @staticmethod
    def _bytes(value):
        if not value:
            return 0
        from docker.utils import parse_bytes
        return parse_bytes(value)


class FakeEngine:
    """State of the fake engine; ``client`` is what modules receive."""

    def __init__(self):
        self.networks = {}
        self.containers = {}
        self.images = []
        self.created = []
        self.execs = []
        self.archives_read = []
        self.updates = []
        self.on_create = None  # called with each new container (to script its behaviour)
        self._ports = itertools.count(49153)
        self.client = mock.Mock(spec=["networks", "containers", "images", "api", "ping", "info"])
        self.client.info.return_value = {"NCPU": 4, "LoggingDriver": "json-file"}
        self.client.networks = FakeNetworks(self)
        self.client.containers = FakeContainers(self)
        self.client.images = FakeImages(self)
        self.client.api = FakeAPI(self)
        self.add_network("bridge", subnet="172.17.0.0/16", gateway="172.17.0.1")

    def add_network(self, name, subnet=None, gateway=None, internal=False, options=None, labels=None):
        self.networks[name] = FakeNetwork(self, name, internal=internal, subnet=subnet, gateway=gateway,
                                          options=options, labels=labels)
        return self.networks[name]

    def add_image(self, name, env=None, labels=None):
        """Tag a new image ``name``; an older image of that name stays, untagged (as in Docker)."""
        for old in self.images:
            if name in old.tags:
                old.tags.remove(name)
        self.images.append(FakeImage(name, env, labels))
        return self.images[-1]

    def images_by_id(self, image_id):
        for image in self.images:
            if image.id == image_id:
                return image
        raise NotFound("image %s" % image_id)

    def container(self, name):
        for cont in self.containers.values():
            if name in (cont.name, cont.id):
                return cont
        raise NotFound("container %s not found" % name)

    def next_port(self):
        return next(self._ports)

    def next_ip(self, net):
        subnet = ipaddress.ip_network(net.attrs["IPAM"]["Config"][0]["Subnet"])
        taken = {n.get("IPAddress") for c in self.containers.values()
                 for name, n in c.attrs["NetworkSettings"]["Networks"].items() if name == net.name}
        for host in list(subnet.hosts())[1:]:
            if str(host) not in taken:
                return str(host)
        raise APIError("no free address on %s" % net.name)
