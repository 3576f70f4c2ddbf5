# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import os

from ansible_collections.botbottle.bottle.plugins.module_utils import host_listeners as hl

HEAD = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
TCP = HEAD + (
    "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 111 1 0 100 0 0 10 0\n"
    "   1: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 112 1 0 100 0 0 10 0\n"
    "   2: 11004D7F:22B8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 113 1 0 100 0 0 10 0\n"
    "   3: 11004D7F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 114 1 0 100 0 0 10 0\n"
    "   4: 0100007F:EB3E 0100007F:0016 01 00000000:00000000 02:000AF512 00000000  0 0 115 4 0 20 4 1 244 -1\n")
TCP6 = HEAD + (
    "   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000"
    " 00:00000000 00000000 0 0 121 1 0 100 0 0 10 0\n"
    "   1: 0000000000000000FFFF00000100007F:1389 00000000000000000000000000000000:0000 0A 00000000:00000000"
    " 00:00000000 00000000 0 0 122 1 0 100 0 0 10 0\n")
UDP = HEAD + (
    "  10: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000  0 0 131 2 0 0\n"
    "  11: 00000000:D431 08080808:0035 01 00000000:00000000 00:00000000 00000000  0 0 132 2 0 0\n")

LSOF = """COMMAND   PID USER   FD   TYPE             DEVICE SIZE/OFF NODE NAME
postgres  501 me    7u  IPv4 0x1234567890abcdef      0t0  TCP *:5432 (LISTEN)
postgres  501 me    8u  IPv6 0x1234567890abcdf0      0t0  TCP *:5432 (LISTEN)
cupsd     100 root  5u  IPv6 0x1234567890abcdf1      0t0  TCP [::1]:631 (LISTEN)
mDNSResp  200 _mdns 9u  IPv4 0x1234567890abcdf2      0t0  UDP *:5353
Chrome    300 me   30u  IPv4 0x1234567890abcdf3      0t0  UDP 192.168.1.2:5000->8.8.8.8:53
com.docke 400 me   50u  IPv4 0x1234567890abcdf4      0t0  TCP 127.77.0.17:8888 (LISTEN)
ssh       600 me    3u  IPv4 0x1234567890abcdf5      0t0  TCP 10.0.0.2:50000->10.0.0.1:22 (ESTABLISHED)
"""


def test_parse_proc_net_reads_listening_tcp_and_unconnected_udp():
    tcp = hl.parse_proc_net(TCP, "tcp")
    assert [(i.address, i.port) for i in tcp] == [("0.0.0.0", 8080), ("127.0.0.1", 631), ("127.77.0.17", 8888),
                                                  ("127.77.0.17", 8001)]
    assert tcp[0].owner == "inode 111"
    assert [(i.address, i.port) for i in hl.parse_proc_net(TCP6, "tcp6")] == [("::", 22), ("127.0.0.1", 5001)]
    assert [(i.proto, i.address, i.port) for i in hl.parse_proc_net(UDP, "udp")] == [("udp", "0.0.0.0", 5353)]


def test_reachable_keeps_wildcards_and_other_ports_of_the_bottle_address():
    listeners = hl.parse_proc_net(TCP, "tcp") + hl.parse_proc_net(TCP6, "tcp6") + hl.parse_proc_net(UDP, "udp")
    found = hl.reachable(listeners, "127.77.0.17", [8888, 9418, 9100])
    assert [hl.describe(i) for i in found] == [
        "tcp [::]:22 (inode 121)", "tcp 127.77.0.17:8001 (inode 114)", "tcp 0.0.0.0:8080 (inode 111)",
        "udp 0.0.0.0:5353 (inode 131)"]
    assert hl.reachable(listeners, "127.77.0.99", [8888]) == [i for i in found if i.port != 8001]


def test_parse_lsof_macos():
    found = hl.parse_lsof(LSOF)
    assert [(i.proto, i.address, i.port) for i in found] == [
        ("tcp", "0.0.0.0", 5432), ("tcp", "::", 5432), ("tcp", "::1", 631), ("udp", "0.0.0.0", 5353),
        ("tcp", "127.77.0.17", 8888)]
    reach = hl.reachable(found, "127.77.0.17", [8888, 9418, 9100])
    assert [hl.describe(i) for i in reach] == ["tcp 0.0.0.0:5432 (postgres pid 501)",
                                               "tcp [::]:5432 (postgres pid 501)",
                                               "udp 0.0.0.0:5353 (mDNSResp pid 200)"]


def test_refusal_names_each_listener_and_the_fixes():
    msg = hl.refusal("demo", "127.77.0.17", [hl.Listener("udp", "0.0.0.0", 5353, "")])
    assert "udp 0.0.0.0:5353" in msg and "bottle demo" in msg
    for fix in ("127.0.0.1", "bottle_smolvm_firewall=true", "bottle_smolvm_wildcard_ack=true"):
        assert fix in msg


def test_linux_listeners_reads_a_fake_proc(tmp_path):
    os.makedirs(tmp_path / "proc" / "net")
    (tmp_path / "proc" / "net" / "tcp").write_text(TCP)
    (tmp_path / "proc" / "net" / "udp6").write_text(HEAD)
    found = hl.linux_listeners(str(tmp_path))
    assert len(found) == 4 and all(i.proto == "tcp" for i in found)
