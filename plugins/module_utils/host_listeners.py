# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host sockets a smolmachines VM with a loopback allow list could reach.

Linux answers on all of 127/8, so a host service listening on a wildcard
address (``0.0.0.0`` or ``::``) is reachable at the bottle's own loopback
address ``127.77.0.X`` by anything allowed to dial that address; so is anything
listening on that very address on a port the bundle does not serve.

API:
- ``Listener(proto, address, port, owner)``: one listening socket (``proto`` is
  ``tcp`` or ``udp``; ``owner`` a process name or ``inode N``, may be empty).
- ``parse_proc_net(text, proto)``: listeners of ``/proc/net/{tcp,tcp6,udp,udp6}``
  text (TCP in LISTEN, UDP unconnected), ``proto`` one of those four names.
- ``linux_listeners(root='/')``: every listener from ``/proc/net``.
- ``parse_lsof(text)``: listeners of ``lsof -nP -iTCP -sTCP:LISTEN -iUDP`` output (macOS).
- ``LSOF_ARGV``: that command.
- ``here(module)``: the listeners of this host - ``/proc/net`` on Linux, lsof elsewhere (``module``: an
  AnsibleModule or a launch phase: ``get_bin_path``, ``run_command``, ``fail_json``).
- ``reachable(listeners, address, bundle_ports)``: those a VM allowed to reach
  ``address`` could reach: on a wildcard address, or on ``address`` itself on a
  port the bundle does not serve. Sorted, without duplicates.
- ``describe(listener)`` / ``refusal(slug, address, listeners)``: text naming
  each listener and the fixes.
"""

from __future__ import annotations

import collections
import ipaddress
import os
import socket
import struct

Listener = collections.namedtuple("Listener", "proto address port owner")

WILDCARDS = ("0.0.0.0", "::")
TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"
LSOF_ARGV = ["lsof", "-nP", "-iTCP", "-sTCP:LISTEN", "-iUDP"]


def _proc_address(hex_address):
    """``'0100007F:1F90'`` -> ``('127.0.0.1', 8080)`` (IPv4 or IPv6, kernel byte order)."""
    addr_hex, _sep, port_hex = hex_address.partition(":")
    raw = bytes.fromhex(addr_hex)
    if len(raw) == 4:
        address = socket.inet_ntop(socket.AF_INET, struct.pack("<I", struct.unpack(">I", raw)[0]))
    elif len(raw) == 16:
        words = struct.unpack(">4I", raw)
        address = socket.inet_ntop(socket.AF_INET6, struct.pack("<4I", *words))
    else:
        raise ValueError("not an address: %r" % hex_address)
    return normalise(address), int(port_hex, 16)


def normalise(address):
    """An address as ``ipaddress`` writes it; an IPv4-mapped IPv6 address as IPv4."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def parse_proc_net(text, proto):
    """Listening sockets in one ``/proc/net/<proto>`` table."""
    kind = "tcp" if proto.startswith("tcp") else "udp"
    wanted = TCP_LISTEN if kind == "tcp" else UDP_UNCONNECTED
    found = []
    for line in (text or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != wanted:
            continue
        try:
            address, port = _proc_address(fields[1])
            _remote, remote_port = _proc_address(fields[2])
        except ValueError:
            continue
        if kind == "udp" and remote_port:
            continue
        found.append(Listener(kind, address, port, "inode %s" % fields[9]))
    return found


def linux_listeners(root="/"):
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(os.path.join(root, "proc/net", proto), encoding="ascii", errors="replace") as handle:
                found += parse_proc_net(handle.read(), proto)
        except OSError:
            continue
    return found


def _lsof_name(name):
    """``'*:5432'`` / ``'[::1]:631'`` / ``'127.0.0.1:53'`` -> (address, port), or None."""
    host, _sep, port = name.rpartition(":")
    if not port.isdigit():
        return None
    host = host.strip("[]")
    if host == "*":
        return "*", int(port)
    try:
        return normalise(host), int(port)
    except ValueError:
        return None


def parse_lsof(text):
    """Listeners in ``lsof -nP -iTCP -sTCP:LISTEN -iUDP`` output (``*`` is written as 0.0.0.0 / ::)."""
    found = []
    for line in (text or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 9:
            continue
        command, ip_type, node = fields[0], fields[4], fields[7]
        name = fields[8]
        if node not in ("TCP", "UDP") or "->" in name:
            continue
        if node == "TCP" and "(LISTEN)" not in line:
            continue
        parsed = _lsof_name(name)
        if parsed is None:
            continue
        address, port = parsed
        if address == "*":
            address = "::" if ip_type == "IPv6" else "0.0.0.0"
        found.append(Listener(node.lower(), address, port, "%s pid %s" % (command, fields[1])))
    return found


def reachable(listeners, address, bundle_ports):
    """Listeners a VM allowed to reach ``address`` reaches, the bundle's own ports on it aside."""
    address = normalise(address)
    ports = {int(p) for p in bundle_ports or ()}
    seen = {}
    for item in listeners:
        if item.address in WILDCARDS or (item.address == address and item.port not in ports):
            seen.setdefault((item.proto, item.address, item.port), item)
    return [seen[key] for key in sorted(seen, key=lambda k: (k[0], k[2], k[1]))]


def describe(item):
    where = "[%s]" % item.address if ":" in item.address else item.address
    owner = " (%s)" % item.owner if item.owner else ""
    return "%s %s:%d%s" % (item.proto, where, item.port, owner)


def refusal(slug, address, listeners):
    return ("bottle %s: the VM may reach %s, and these host services answer there: %s. Bind each to "
            "127.0.0.1 or a real interface instead of a wildcard address, or let the launch limit %s to the "
            "bundle's ports (-e bottle_smolvm_firewall=true, needs root), or acknowledge them with "
            "-e bottle_smolvm_wildcard_ack=true" % (slug, address, ", ".join(describe(i) for i in listeners),
                                                    address))


def here(module):
    """Listening sockets of this host: /proc/net on Linux, lsof elsewhere (macOS)."""
    if os.path.isfile("/proc/net/tcp"):
        return linux_listeners()
    lsof = module.get_bin_path("lsof")
    if not lsof:
        module.fail_json(msg="listeners: neither /proc/net nor lsof is available to list the host's listeners: "
                             "install lsof, or pass listeners=false")
    rc, out, err = module.run_command([lsof] + LSOF_ARGV[1:])
    if rc not in (0, 1):  # 1: nothing listens
        module.fail_json(msg="listeners: lsof failed (rc %d): %s" % (rc, err.strip()))
    return parse_lsof(out)
