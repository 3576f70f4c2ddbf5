# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two networks of a docker-backend bottle (module bottle_network, phase of bottle_launch)."""

from __future__ import annotations

import hashlib
import ipaddress

from ansible_collections.botbottle.bottle.plugins.module_utils import naming
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import find_network

INHIBIT_IPV4 = "com.docker.network.bridge.inhibit_ipv4"


def slot_order(slug, pool, prefix):
    """The pool's subnets in the order this slug tries them: from a hash-chosen start."""
    subnets = list(pool.subnets(new_prefix=prefix))
    start = int(hashlib.sha256(slug.encode()).hexdigest(), 16) % len(subnets)
    return subnets[start:] + subnets[:start]


def used_subnets(networks):
    used = []
    for net in networks:
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            try:
                used.append((net.name, ipaddress.ip_network(cfg.get("Subnet"), strict=False)))
            except (TypeError, ValueError):
                continue
    return used


def choose_subnets(slug, pool, prefix, used, count):
    """``count`` free subnets for ``slug``, and the slots skipped for overlapping ``used``."""
    chosen, skipped = [], []
    for candidate in slot_order(slug, pool, prefix):
        clash = [name for name, net in used if net.version == 4 and candidate.overlaps(net)]
        if clash:
            skipped.append("%s (overlaps %s)" % (candidate, ", ".join(sorted(set(clash)))))
            continue
        chosen.append(candidate)
        used.append(("(chosen)", candidate))
        if len(chosen) == count:
            return chosen, skipped
    return None, skipped


def describe(net, internal):
    cfg = ((net.attrs.get("IPAM") or {}).get("Config") or [{}])[0]
    subnet = ipaddress.ip_network(cfg.get("Subnet"), strict=False)
    hosts = list(subnet.hosts())
    out = {"name": net.name, "id": net.id, "subnet": str(subnet)}
    if internal:
        out.update(gateway=str(hosts[0]), bundle_ip=str(hosts[1]), agent_ip=str(hosts[2]))
    return out


class NetworkManager:
    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.p = module.params
        self.check_mode = module.check_mode
        self.names = {
            "internal": naming.object_name(self.p["slug"], "net-int"),
            "egress": naming.object_name(self.p["slug"], "net-out"),
        }
        if self.p["state"] == "present" and not self.p["internal"]:
            del self.names["internal"]
        self.existing = {k: find_network(client, v) for k, v in self.names.items()}
        self.result = dict(changed=False, networks={}, skipped_subnets=[], diff=dict(before={}, after={}))

    def labels(self, component):
        merged = dict(self.p["labels"] or {})
        merged.update(naming.labels(self.p["slug"], self.p["agent"], component, self.p["backend"]))
        return merged

    # What each network must be, beyond its name; a network of the bottle that differs is recreated.
    # Options are compared on the keys we set only (Docker adds its own).
    WANTED = {
        "internal": {"internal": True, "options": {INHIBIT_IPV4: "true"}},
        "egress": {},
    }

    def check_ours(self, net):
        """Fail unless ``net`` carries the bottle's label: a network of that name is never taken over."""
        labels = net.attrs.get("Labels") or {}
        if labels.get(naming.LABEL_BOTTLE) != self.p["slug"]:
            self.module.fail_json(
                msg="docker network %s exists but does not belong to bottle %s (label %s=%r): "
                    "remove or rename it, or choose another bottle_instance"
                    % (net.name, self.p["slug"], naming.LABEL_BOTTLE, labels.get(naming.LABEL_BOTTLE)))

    def has_different_config(self, key, net):
        """``(different, differences)``: each setting of ``WANTED[key]`` that ``net`` does not have, as
        ``{setting: (have, want)}``, both sides normalised the same way."""
        attrs = net.attrs
        differences = {}
        for setting, want in self.WANTED[key].items():
            if setting == "internal":
                have = bool(attrs.get("Internal"))
            else:  # options: only the keys we set
                options = attrs.get("Options") or {}
                have = {k: options.get(k) for k in want}
            if have != want:
                differences[setting] = (have, want)
        return bool(differences), differences

    def present(self):
        if not self.p["agent"]:
            self.module.fail_json(msg="agent is required when state=present")
        try:
            pool = ipaddress.ip_network(self.p["pool"], strict=False)
        except ValueError as exc:
            self.module.fail_json(msg="pool %r is not an IPv4 CIDR: %s" % (self.p["pool"], exc))
        if pool.version != 4 or not pool.prefixlen <= self.p["prefix"] <= 29:
            self.module.fail_json(msg="prefix %d does not fit pool %s: use a prefix between the pool's (/%d) and 29"
                                  % (self.p["prefix"], pool, pool.prefixlen))
        differences = {}
        for key, net in self.existing.items():
            if net is not None:
                self.check_ours(net)
                different, found = self.has_different_config(key, net)
                if different:
                    differences[key] = found
        missing = [k for k in ("internal", "egress")
                   if k in self.names and (self.existing[k] is None or k in differences)]
        before = {k: (describe(v, k == "internal") if v else None) for k, v in self.existing.items()}
        if missing:
            used = used_subnets([n for n in self.client.networks.list()
                                 if n.name not in [self.names[k] for k in missing]])
            subnets, skipped = choose_subnets(self.p["slug"], pool, self.p["prefix"], used, len(missing))
            self.result["skipped_subnets"] = skipped
            if subnets is None:
                self.module.fail_json(msg="pool %s has no free /%d left for bottle %s (%d slots overlap existing "
                                          "networks): widen pool or remove unused networks"
                                          % (pool, self.p["prefix"], self.p["slug"], len(skipped)),
                                      skipped_subnets=skipped)
            self.result["changed"] = True
            for key, subnet in zip(missing, subnets):
                if not self.check_mode:
                    if key in differences:
                        self.existing[key].remove()
                    self.existing[key] = self.create(key, subnet)
                else:
                    self.result["networks"][key] = {"name": self.names[key], "id": None, "subnet": str(subnet)}
                    if key == "internal":
                        hosts = list(subnet.hosts())
                        self.result["networks"][key].update(
                            gateway=str(hosts[0]), bundle_ip=str(hosts[1]), agent_ip=str(hosts[2]))
        for key, net in self.existing.items():
            if net is not None and (key not in missing or not self.check_mode):
                net.reload()
                self.result["networks"][key] = describe(net, key == "internal")
        after = dict(self.result["networks"])
        # Each difference that recreates a network shows in the diff, its value before and after.
        for key, found in differences.items():
            before[key] = dict(before[key], **{setting: have for setting, (have, _want) in found.items()})
            after[key] = dict(after[key], **{setting: want for setting, (_have, want) in found.items()})
        self.result["diff"] = dict(before=before, after=after)

    def create(self, key, subnet):
        from docker.types import IPAMConfig, IPAMPool
        internal = key == "internal"
        hosts = list(subnet.hosts())
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=str(hosts[0]))])
        options = {INHIBIT_IPV4: "true"} if internal else {}
        return self.client.networks.create(
            self.names[key], driver="bridge", internal=internal, ipam=ipam, options=options,
            labels=self.labels("net-int" if internal else "net-out"), check_duplicate=True)

    def check_absent(self):
        """Fail unless every network found carries the bottle's label: before removing any."""
        for net in self.existing.values():
            if net is not None and (net.attrs.get("Labels") or {}).get(naming.LABEL_BOTTLE) != self.p["slug"]:
                self.module.fail_json(msg="docker network %s does not carry label %s=%s: not removing what is not "
                                          "the bottle's" % (net.name, naming.LABEL_BOTTLE, self.p["slug"]))

    def absent(self):
        self.check_absent()
        self.result["diff"]["before"] = {k: (describe(v, k == "internal") if v else None)
                                         for k, v in self.existing.items()}
        self.result["diff"]["after"] = {k: None for k in self.existing}
        for key, net in self.existing.items():
            if net is None:
                continue
            self.result["changed"] = True
            if not self.check_mode:
                net.reload()
                for container in (net.attrs.get("Containers") or {}):
                    net.disconnect(container, force=True)
                net.remove()


# The module's options (also a phase of botbottle.bottle.bottle_launch).
NETWORK_SPEC = dict(
    slug=dict(type="str", required=True),
    agent=dict(type="str"),
    pool=dict(type="str", default="172.29.0.0/16"),
    prefix=dict(type="int", default=28),
    internal=dict(type="bool", default=True),
    backend=dict(type="str", default="docker", choices=list(naming.BACKENDS)),
    labels=dict(type="dict", default={}),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)
