# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-bottle loopback address of the smolmachines backend.

A smolmachines bottle's bundle publishes its agent-facing ports on one
address ``127.0.0.X`` of its own, and the agent VM may reach exactly that
address (``--allow-cidr 127.0.0.X/32``). Two bottles must never share one.

API:
- ``DEFAULT_POOL``: ``127.77.0.0/16``.
- ``check_address(text)``: the address as a string, or raises ``LoopbackError``:
  IPv4, inside 127.0.0.0/8, never 127.0.0.1 (every host service listens there),
  never the network or broadcast address of 127/8.
- ``parse_pool(text)``: the pool as an ``IPv4Network`` inside 127/8 with room for
  at least two addresses, or ``LoopbackError``.
- ``allocate(slug, pool, used)``: the first free address of ``pool`` in an order
  that starts at a hash of ``slug`` (deterministic, spreads bottles apart).
- ``published_addresses(attrs)``: loopback addresses a container's port bindings use.
- ``bundle_addresses(client)``: ``{address: slug}`` over every container
  labelled as a bottle's bundle (running or not).
- ``machine_addresses(machines)``: ``{network: owner}`` over every smolvm machine
  whose allow list reaches into 127/8 (``machine ls --json`` entries; the owner
  is the ``io.botbottle.bottle`` label, else the machine's name).
- ``meta_addresses(state_root)``: ``{address: [slugs]}`` from every bottle's
  ``meta.json`` under ``state_root`` (an address two bottles claim lists both).
- ``for_bottle(client, slug, state_root, pool, machines=())``: ``choose`` with what the host records - the
  address in the bottle's ``meta.json`` and every other bottle's.
- ``choose(slug, pool, client, meta_address=None, machines=(), metas=None)``: the
  address bottle ``slug`` gets and why: its bundle's current one (a rerun keeps
  it), else the one in its state ``meta.json``, else a fresh allocation; never
  one another bottle holds - a bundle publishing on it, a VM (of any bottle, or
  none, and even one that outlived its bundle) allowed to reach it, or another
  bottle's ``meta.json``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os

from ansible_collections.botbottle.bottle.plugins.module_utils import naming, state_meta

DEFAULT_POOL = "127.77.0.0/16"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
SHARED = ipaddress.ip_address("127.0.0.1")


class LoopbackError(ValueError):
    """A bad address or pool, or a full pool; the message names the fix."""


def check_address(text):
    """``text`` as a normalised address string, if a bottle may use it."""
    try:
        address = ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise LoopbackError("%r is not an IP address: use one of 127.0.0.0/8 such as 127.77.0.17" % (text,))
    if address.version != 4 or address not in LOOPBACK:
        raise LoopbackError("%s is not a loopback address: the bundle of a smolmachines bottle publishes on "
                            "127.0.0.0/8 only (for example 127.77.0.17), never on a routable address" % address)
    if address == SHARED:
        raise LoopbackError("127.0.0.1 is shared by every service of the host: give the bottle an address of its "
                            "own in 127.0.0.0/8 (for example 127.77.0.17)")
    if address in (LOOPBACK.network_address, LOOPBACK.broadcast_address):
        raise LoopbackError("%s is the network or broadcast address of 127.0.0.0/8: choose another" % address)
    return str(address)


def parse_pool(text):
    """``text`` as an IPv4Network inside 127.0.0.0/8 with at least two usable addresses."""
    try:
        pool = ipaddress.ip_network(str(text).strip(), strict=False)
    except ValueError as exc:
        raise LoopbackError("loopback pool %r is not a CIDR (%s): write it like 127.77.0.0/16" % (text, exc))
    if pool.version != 4 or not pool.subnet_of(LOOPBACK):
        raise LoopbackError("loopback pool %s is not inside 127.0.0.0/8: use a range such as 127.77.0.0/16" % pool)
    if pool.prefixlen > 30:
        raise LoopbackError("loopback pool %s is too small: use a prefix of /30 or shorter (127.77.0.0/16)" % pool)
    return pool


def candidates(pool):
    """Addresses of ``pool`` a bottle may get, in address order."""
    return [str(a) for a in pool.hosts() if a != SHARED]


def allocate(slug, pool, used):
    """The address of ``pool`` bottle ``slug`` gets when ``used`` (a set of strings) is taken."""
    hosts = candidates(pool)
    start = int(hashlib.sha256(slug.encode("utf-8")).hexdigest(), 16) % len(hosts)
    for address in hosts[start:] + hosts[:start]:
        if address not in used:
            return address
    raise LoopbackError("loopback pool %s has no free address left (%d in use by other bundles): widen "
                        "bottle_smolvm_loopback_pool or tear down unused bottles" % (pool, len(used)))


def published_addresses(attrs):
    """Loopback addresses (not 127.0.0.1) the container's port bindings use."""
    found = set()
    sources = [((attrs or {}).get("HostConfig") or {}).get("PortBindings") or {},
               ((attrs or {}).get("NetworkSettings") or {}).get("Ports") or {}]
    for bindings in sources:
        for entries in bindings.values():
            for entry in entries or []:
                try:
                    found.add(check_address(entry.get("HostIp") or ""))
                except LoopbackError:
                    continue
    return found


def bundle_addresses(client):
    """``{address: slug}`` for every bottle bundle's published loopback address."""
    taken = {}
    bundles = client.containers.list(all=True, filters={"label": [naming.LABEL_COMPONENT + "=bundle"]})
    for container in bundles:
        slug = (container.labels or {}).get(naming.LABEL_BOTTLE, container.name)
        for address in published_addresses(container.attrs):
            taken.setdefault(address, slug)
    return taken


class Taken:
    """Addresses other bottles hold: single addresses and, from a VM's allow list, whole ranges."""

    def __init__(self, addresses=(), networks=()):
        self.addresses = set(addresses)
        self.networks = list(networks)

    def __contains__(self, address):
        if address in self.addresses:
            return True
        ip = ipaddress.ip_address(address)
        return any(ip in net for net in self.networks)

    def __len__(self):
        return len(self.addresses) + sum(net.num_addresses for net in self.networks)


def machine_addresses(machines):
    """``{network: owner}`` for every loopback range (mostly a /32) in a smolvm machine's allow list."""
    taken = {}
    for machine in machines or []:
        owner = (machine.get("labels") or {}).get(naming.LABEL_BOTTLE) or machine.get("name") or "?"
        for cidr in machine.get("allowed_cidrs") or []:
            try:
                net = ipaddress.ip_network(str(cidr), strict=False)
            except ValueError:
                continue
            if net.version == 4 and net.overlaps(LOOPBACK):
                taken.setdefault(net, owner)
    return taken


def meta_addresses(state_root):
    """``{address: [slugs]}`` from the ``loopback_address`` of every bottle's ``meta.json``."""
    taken = {}
    try:
        entries = sorted(os.listdir(state_root))
    except OSError:
        return taken
    for entry in entries:
        meta = state_meta.read_meta(os.path.join(state_root, entry))
        if not meta.get("loopback_address"):
            continue
        try:
            address = check_address(meta["loopback_address"])
        except LoopbackError:
            continue
        taken.setdefault(address, []).append(entry)
    return taken


def choose(slug, pool, client, meta_address=None, machines=(), metas=None):
    """``(address, source)`` for bottle ``slug``; source is ``bundle``, ``meta`` or ``allocated``."""
    pool = parse_pool(pool) if not isinstance(pool, ipaddress.IPv4Network) else pool
    taken = bundle_addresses(client)
    own = sorted(a for a, owner in taken.items() if owner == slug)
    others = {a for a, owner in taken.items() if owner != slug}
    others |= {a for a, owners in (metas or {}).items() if any(owner != slug for owner in owners)}
    others = Taken(others, [net for net, owner in machine_addresses(machines).items() if owner != slug])
    for address in own:
        if address not in others:
            return address, "bundle"
    if meta_address:
        try:
            address = check_address(meta_address)
        except LoopbackError:
            address = None
        if address and address not in others:
            return address, "meta"
    return allocate(slug, pool, others), "allocated"


def for_bottle(client, slug, state_root, pool, machines=()):
    """``(address, source)`` for bottle ``slug``: taken are other bundles' addresses, every VM's allow list and
    every other bottle's meta.json; raises LoopbackError."""
    meta = state_meta.read_meta(naming.state_dir(slug, state_root))
    return choose(slug, pool, client, meta_address=meta.get("loopback_address"), machines=machines,
                  metas=meta_addresses(state_root))
