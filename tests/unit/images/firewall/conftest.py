# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The egress firewall's tests: ``images/bundle`` on sys.path, the real DLP engine (loaded
once), the fake DNS and a Firewall over temporary files (fakes.py has the fake flows)."""

from __future__ import annotations

import json
import sys

import pytest

from fakes import BASE_CONFIG, BUNDLE, HDR_TOKEN, KNOWN_SECRET, ROUTE_TOKEN, Proxy, Sink, make_response

if str(BUNDLE) not in sys.path:
    sys.path.insert(0, str(BUNDLE))

from bottle_firewall import addon, dlp  # noqa: E402


@pytest.fixture(scope="session")
def rules_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("kingfisher-rules")
    path.chmod(0o700)
    return str(path)


@pytest.fixture(scope="session")
def scanner(rules_cache):
    """The real kingfisher scanner, loaded once for the whole run."""
    return dlp.load_kingfisher(rules_cache)


@pytest.fixture
def engine(scanner):
    return dlp.Engine(scanner)


@pytest.fixture
def write_config(tmp_path):
    def write(data, name="egress.json"):
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
        return str(path)
    return write


@pytest.fixture
def resolver():
    """A fake DNS: host -> addresses; unknown names do not resolve."""
    table = {
        "api.github.com": ["140.82.112.6"],
        "api.anthropic.com": ["160.79.104.10"],
        "hdr.example.com": ["93.184.216.36"],
        "allowed.example.com": ["93.184.216.34"],
        "www.example.com": ["93.184.216.34"],
        "example.com": ["93.184.216.34"],
        "files.example.org": ["93.184.216.35"],
        "internal.example.org": ["10.1.2.3"],
        "rebind.example.com": ["93.184.216.34", "127.0.0.1"],
        "metadata.example.com": ["169.254.169.254"],
        "testnet.example.com": ["172.30.0.5"],
        "v6.example.com": ["2606:2800:220:1:248:1893:25c8:1946"],
        "v6local.example.com": ["fd00::1"],
    }

    async def resolve(host, port):
        if host not in table:
            raise OSError("Name or service not known")
        return list(table[host])
    resolve.table = table
    return resolve


@pytest.fixture
def firewall_factory(tmp_path, write_config, engine, resolver):
    """A Firewall over files in tmp_path, with the real DLP engine and the fake DNS."""
    def make(config=None, tokens=None, secrets=None, audit=True, **kwargs):
        config_path = write_config(BASE_CONFIG if config is None else config)
        tokens_path = write_config({"GITHUB_TOKEN": ROUTE_TOKEN, "HDR": HDR_TOKEN} if tokens is None else tokens,
                                   "tokens.json")
        secrets_path = write_config([KNOWN_SECRET] if secrets is None else secrets, "secrets.json")
        kwargs.setdefault("audit_path", str(tmp_path / "audit.jsonl") if audit else "")
        kwargs.setdefault("audit_stream", Sink())
        closed = []
        fw = addon.Firewall(config_path, tokens_path, secrets_path, engine=dlp.Engine(engine.scanner),
                            resolver=resolver, respond=make_response, close_client=closed.append, **kwargs)
        fw.closed = closed
        return fw
    return make


@pytest.fixture
def proxy(firewall_factory):
    return Proxy(firewall_factory())
