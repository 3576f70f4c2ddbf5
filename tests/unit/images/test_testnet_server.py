# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The test "internet" server (images/testnet/server.py): what it records, and its endpoints,
served for real on 127.0.0.1 (HTTP, and HTTPS with certificates from gen-certs.sh)."""

from __future__ import annotations

import http.client
import importlib.util
import json
import pathlib
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest

TESTNET = pathlib.Path(__file__).resolve().parents[3] / "images" / "testnet"
NAMES = ["allowed.bottle.test", "other.bottle.test", "api.bottle.test", "blocked.bottle.test"]


@pytest.fixture
def server_mod(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("testnet_server_under_test", TESTNET / "server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "LOG_PATH", str(tmp_path / "requests.jsonl"))
    return module


def records(module):
    with open(module.LOG_PATH, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


# --- the record --------------------------------------------------------------------------

def test_record_fields_for_a_utf8_body(server_mod):
    headers = [("Host", "api.bottle.test:443"), ("Authorization", "Bearer t")]
    entry = server_mod.describe("POST", "/v1/x?a=1&a=2&b=", headers, "héllo".encode(), "https",
                                sni="api.bottle.test", now=12.5)
    assert entry == {
        "ts": 12.5, "scheme": "https", "sni": "api.bottle.test", "method": "POST",
        "host": "api.bottle.test", "path": "/v1/x", "query": "a=1&a=2&b=",
        "args": {"a": ["1", "2"], "b": [""]},
        "headers": {"host": "api.bottle.test:443", "authorization": "Bearer t"},
        "raw_headers": [["Host", "api.bottle.test:443"], ["Authorization", "Bearer t"]],
        "body": "héllo", "body_encoding": "utf-8", "body_bytes": 6,
    }


def test_binary_body_is_base64(server_mod):
    entry = server_mod.describe("PUT", "/", [], b"\xff\x00secret", "http")
    assert entry["body_encoding"] == "base64" and entry["body"] == "/wBzZWNyZXQ="


def test_repeated_headers_are_all_kept(server_mod):
    # A smuggled second Authorization must show up, not be hidden by the first.
    entry = server_mod.describe("GET", "/", [("Authorization", "Bearer real"), ("authorization", "Bearer smuggled")],
                                b"", "http")
    assert entry["headers"]["authorization"] == "Bearer real, Bearer smuggled"
    assert len(entry["raw_headers"]) == 2


@pytest.mark.parametrize("host, expected", [("a.test:8443", "a.test"), ("a.test", "a.test"),
                                            ("[::1]:443", "[::1]"), ("", "")])
def test_host_without_port(server_mod, host, expected):
    assert server_mod.strip_port(host) == expected


def test_concurrent_records_stay_whole_lines(server_mod):
    def write(n):
        for i in range(50):
            server_mod.record({"writer": n, "i": i, "pad": "x" * 5000})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(records(server_mod)) == 400


def test_int_arg_names_the_bad_argument(server_mod):
    assert server_mod.int_arg({"n": ["7"]}, "n", 1) == 7
    assert server_mod.int_arg({}, "n", 1) == 1
    with pytest.raises(server_mod.BadRequest, match="n='x' is not an integer"):
        server_mod.int_arg({"n": ["x"]}, "n", 1)
    with pytest.raises(server_mod.BadRequest, match="events=-1 is out of range"):
        server_mod.int_arg({"events": ["-1"]}, "events", 1, 0, 10)


# --- served for real on loopback ---------------------------------------------------------

@pytest.fixture
def http_server(server_mod):
    server = server_mod.ThreadingHTTPServer(("127.0.0.1", 0), server_mod.Handler)
    server.daemon_threads = True
    server_mod.serve(server)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def request(port, method, target, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, target, body=body, headers=headers or {})
    response = conn.getresponse()
    return response, response.read()


def test_echo_and_record(server_mod, http_server):
    response, data = request(http_server, "POST", "/echo?q=1", body=b"payload",
                             headers={"Host": "allowed.bottle.test", "X-Token": "t0k"})
    assert response.status == 200
    assert json.loads(data) == {"ok": True, "scheme": "http", "host": "allowed.bottle.test", "method": "POST",
                                "path": "/echo", "query": "q=1", "body_bytes": 7}
    (entry,) = records(server_mod)
    assert entry["headers"]["x-token"] == "t0k" and entry["body"] == "payload" and entry["sni"] is None


def test_chunked_body_is_recorded_dechunked(server_mod, http_server):
    conn = http.client.HTTPConnection("127.0.0.1", http_server, timeout=10)
    conn.request("POST", "/upload", body=iter([b"part1-", b"part2"]), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked"})
    assert conn.getresponse().status == 200
    assert records(server_mod)[0]["body"] == "part1-part2"


def test_head_has_no_body_and_keeps_the_connection_usable(server_mod, http_server):
    conn = http.client.HTTPConnection("127.0.0.1", http_server, timeout=10)
    conn.request("HEAD", "/x")
    head = conn.getresponse()
    assert head.status == 200 and head.read() == b"" and int(head.getheader("Content-Length")) > 0
    conn.request("GET", "/y")  # same connection: a stray HEAD body would corrupt this response
    assert json.loads(conn.getresponse().read())["path"] == "/y"


def test_sse_streams_each_event_as_it_happens(http_server):
    conn = http.client.HTTPConnection("127.0.0.1", http_server, timeout=10)
    conn.request("GET", "/sse?events=3&interval_ms=300")
    response = conn.getresponse()
    assert response.getheader("Content-Type") == "text/event-stream"
    start = time.monotonic()
    first = response.fp.readline()
    first_at = time.monotonic() - start
    rest = response.read()
    assert first == b"id: 0\n" and first_at < 0.25  # flushed, not held until the stream ends
    assert rest.count(b"data: ") == 3 and b"id: 2\n" in rest


def test_bytes_streams_exactly_n(http_server):
    response, data = request(http_server, "GET", "/bytes?n=200000")
    assert response.status == 200 and len(data) == 200000 and data == b"\0" * 200000


def test_bad_query_is_a_400_naming_the_argument(server_mod, http_server):
    response, data = request(http_server, "GET", "/bytes?n=lots")
    assert response.status == 400 and "n='lots' is not an integer" in json.loads(data)["error"]
    assert records(server_mod)[0]["path"] == "/bytes"  # recorded all the same


@pytest.fixture
def certs(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    subprocess.run(["sh", str(TESTNET / "gen-certs.sh"), str(tmp_path)] + NAMES, check=True)
    return tmp_path


def test_https_serves_every_name_under_the_test_ca_and_records_sni(server_mod, certs):
    server = server_mod.TLSServer(("127.0.0.1", 0), server_mod.TLSHandler, server_mod.tls_context(str(certs)))
    server_mod.serve(server)
    port = server.server_address[1]
    # A client that connects and says nothing must not block the others (handshake per thread).
    idle = socket.create_connection(("127.0.0.1", port))
    try:
        client = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        for name in NAMES:
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=client)
            conn._server_hostname = name  # pylint: disable=protected-access
            conn.sock = client.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                           server_hostname=name)
            conn.request("GET", "/tls", headers={"Host": name})
            assert json.loads(conn.getresponse().read())["scheme"] == "https"
        with pytest.raises(ssl.SSLCertVerificationError):
            client.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                               server_hostname="evil.test")
    finally:
        idle.close()
        server.shutdown()
        server.server_close()
    assert [(r["sni"], r["host"], r["scheme"]) for r in records(server_mod)] == [(n, n, "https") for n in NAMES]
    assert not (certs / "ca.srl").exists()


def test_websocket_echoes_messages_and_answers_a_close(http_server):
    """/ws: bench/soak.py's WebSocket upstream, spoken to by bench/soak_client.py's own client."""
    spec = importlib.util.spec_from_file_location("soak_client_under_test",
                                                  TESTNET.parents[1] / "bench" / "soak_client.py")
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    with socket.create_connection(("127.0.0.1", http_server), timeout=10) as sock:
        status, up, down = client.ws_session(sock, "allowed.bottle.test", messages=5, size=70000)
    assert (status, up, down) == (101, 350000, 350000)


def test_the_soak_mix_is_fixed_and_spread():
    spec = importlib.util.spec_from_file_location("soak_client_mix", TESTNET.parents[1] / "bench" / "soak_client.py")
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    assert client.expected_counts(0, 100) == dict(client.MIX)
    assert client.expected_counts(1000, 100) == dict(client.MIX)
    assert len({client.kind_of(i) for i in range(20)}) >= 4, "the kinds interleave"


def test_status_answers_the_code_asked(http_server):
    response, data = request(http_server, "GET", "/status?code=500")
    assert response.status == 500 and json.loads(data)["status"] == 500
    response, _data = request(http_server, "GET", "/status?code=99")
    assert response.status == 400
