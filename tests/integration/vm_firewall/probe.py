# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run inside a private network namespace (unshare -n) by ../vm_firewall.sh; never in the host's.

A bundle listener on ADDR:8888 (TCP and UDP), a host service on the wildcard address (TCP 7001,
UDP 7002), a blanket "-o lo -j ACCEPT" already in OUTPUT. Then bottle_loopback_firewall, run as Ansible
runs it. Checked, each with why:
- before: ADDR:7001 connects and ADDR:7002 delivers (the gap is real here);
- after: ADDR:8888 TCP and UDP still work; ADDR:7001 is refused and ADDR:7002 never delivered, while
  127.0.0.1:7001 and :7002 still work (the service is up: the rule, not the service, refused); the
  reject rules' packet counters grew; the jump is OUTPUT's first rule, above the blanket accept;
- a second run changes nothing; state=absent removes the bottle's rules and the gap is back.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading

ADDR, SLUG, PORTS = "127.77.0.17", "fw-probe", [8888, 9418, 9100]
MODULE = "ansible_collections.botbottle.bottle.plugins.modules.bottle_loopback_firewall"
received = {}


def sh(*argv):
    return subprocess.run(list(argv), capture_output=True, text=True, check=True).stdout


def tcp_server(host, port):
    srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(16)

    def loop():
        while True:
            conn, _peer = srv.accept()
            conn.sendall(b"hello from %d\n" % port)
            conn.close()
    threading.Thread(target=loop, daemon=True).start()


def udp_server(host, port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind((host, port))

    def loop():
        while True:
            data, _peer = srv.recvfrom(2048)
            received.setdefault(port, []).append(data)
    threading.Thread(target=loop, daemon=True).start()


def dial(host, port):
    """'open' (got the greeting), 'refused' (RST), or the error's name."""
    try:
        with socket.create_connection((host, port), timeout=3) as conn:
            return "open" if conn.recv(64).startswith(b"hello") else "silent"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return type(exc).__name__


def send_udp(host, port):
    """'delivered' when the server got it, else 'refused' (the send or the ICMP answer failed) or 'lost'."""
    token = os.urandom(8).hex().encode()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1)
    sock.connect((host, port))
    icmp = False
    try:
        sock.send(token)  # a REJECT in OUTPUT answers a local sender at once: EPERM
        sock.recv(64)
    except PermissionError:
        icmp = True
    except ConnectionRefusedError:
        icmp = True
    except socket.timeout:
        pass
    finally:
        sock.close()
    if token in received.get(port, []):
        return "delivered"
    return "refused" if icmp else "lost"


def module(**args):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    try:
        proc = subprocess.run([sys.executable, "-m", MODULE, handle.name], capture_output=True, text=True, check=False)
    finally:
        os.unlink(handle.name)
    result = json.loads(proc.stdout)
    assert not result.get("failed"), result
    return result


def counters():
    """Packets counted by the bottle's REJECT rules."""
    out = sh("iptables", "-w", "-L", "BOTBOTTLE-LO", "-n", "-v", "-x")
    return sum(int(line.split()[0]) for line in out.splitlines() if "REJECT" in line and ADDR in line)


def check(label, got, want):
    print("%-58s %-10s (want %s)" % (label, got, want))
    assert got == want, label


def main():
    sh("ip", "link", "set", "lo", "up")
    sh("iptables", "-w", "-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT")  # the usual blanket accept
    tcp_server(ADDR, 8888)
    udp_server(ADDR, 8888)
    tcp_server("0.0.0.0", 7001)
    udp_server("0.0.0.0", 7002)

    check("before: wildcard TCP 7001 at the bottle's address", dial(ADDR, 7001), "open")
    check("before: wildcard UDP 7002 at the bottle's address", send_udp(ADDR, 7002), "delivered")

    first = module(slug=SLUG, address=ADDR, ports=PORTS)
    check("firewall applied", first["changed"], True)
    rules = sh("iptables", "-w", "-S", "OUTPUT").splitlines()
    check("OUTPUT's first rule is the jump", rules[1], "-A OUTPUT -o lo -j BOTBOTTLE-LO")
    check("the blanket accept comes after it", rules[2], "-A OUTPUT -o lo -j ACCEPT")

    check("bundle TCP 8888 at the bottle's address", dial(ADDR, 8888), "open")
    check("bundle UDP 8888 at the bottle's address", send_udp(ADDR, 8888), "delivered")
    before = counters()
    check("wildcard TCP 7001 at the bottle's address", dial(ADDR, 7001), "refused")
    check("  ... the service is up (127.0.0.1:7001)", dial("127.0.0.1", 7001), "open")
    check("wildcard UDP 7002 at the bottle's address", send_udp(ADDR, 7002), "refused")
    check("  ... the service is up (127.0.0.1:7002)", send_udp("127.0.0.1", 7002), "delivered")
    check("nothing on TCP 9999 either (reset by the rule)", dial(ADDR, 9999), "refused")
    check("  ... refused by the bottle's REJECT rules", counters() - before >= 3, True)

    again = module(slug=SLUG, address=ADDR, ports=PORTS)
    check("second run changes nothing", (again["changed"], again["commands"]), (False, []))
    sh("iptables", "-w", "-I", "OUTPUT", "1", "-o", "lo", "-j", "ACCEPT")  # someone inserts above us
    moved = module(slug=SLUG, address=ADDR, ports=PORTS)
    check("a jump pushed down is moved back to the top", moved["changed"], True)
    check("  ... first again", sh("iptables", "-w", "-S", "OUTPUT").splitlines()[1],
          "-A OUTPUT -o lo -j BOTBOTTLE-LO")
    check("  ... and refuses again", dial(ADDR, 7001), "refused")

    gone = module(slug=SLUG, state="absent")
    check("state=absent removes the bottle's rules", gone["changed"], True)
    check("  ... and the gap is back", dial(ADDR, 7001), "open")
    print("vm_firewall: all checks passed")


if __name__ == "__main__":
    main()
