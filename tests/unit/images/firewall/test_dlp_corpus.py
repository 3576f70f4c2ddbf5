# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The DLP corpus: provider token formats that kingfisher really detects, each in every place
and wrapping an agent could use, and the bottle's known secrets in every encoding.

The values are made up: random characters (seeded by the provider's name) in each rule's
shape, never copied from a leak. Run this module as a script to print the coverage table.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import string
import sys
from urllib.parse import quote

import pytest

if __name__ == "__main__":  # the coverage table, outside pytest (conftest puts this on sys.path)
    import pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[4] / "images" / "bundle"))

from bottle_firewall import bodies, dlp  # noqa: E402

ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
URLSAFE = ALNUM + "_-"


def fake(seed, alphabet, length):
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _index in range(length))


def jwt(seed):
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps({"sub": fake(seed, HEX, 12), "iat": 1700000000}).encode())
    return "%s.%s.%s" % (header, payload.rstrip(b"=").decode(), fake(seed, URLSAFE, 43))


def private_key(seed, kind):
    body = base64.b64encode(random.Random(seed).randbytes(400)).decode()
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return "-----BEGIN %s PRIVATE KEY-----\n%s\n-----END %s PRIVATE KEY-----" % (kind, lines, kind)


# provider -> the text an agent would send (with the context some rules need, as real files have it)
CORPUS = {
    "Anthropic": "sk-ant-api03-" + fake("anthropic", URLSAFE, 93) + "AA",
    "OpenAI": "sk-proj-" + fake("openai1", URLSAFE, 74) + "T3BlbkFJ" + fake("openai2", URLSAFE, 74),
    "GitHub classic PAT": "ghp_" + fake("github", ALNUM, 36),
    "GitHub fine-grained PAT": "github_pat_" + fake("github-fg", ALNUM + "_", 82),
    "GitLab PAT": "glpat-" + fake("gitlab", URLSAFE, 20),
    "AWS key pair": "aws_access_key_id=AKIA" + fake("aws", string.ascii_uppercase + "234567", 16)
                    + "\naws_secret_access_key=" + fake("aws-secret", ALNUM + "/+", 40),
    "Slack bot": "xoxb-" + fake("slack1", string.digits, 12) + "-" + fake("slack2", string.digits, 13) + "-"
                 + fake("slack3", ALNUM, 24),
    "Slack webhook": "https://hooks.slack.com/services/T" + fake("sw1", string.ascii_uppercase, 8) + "/B"
                     + fake("sw2", string.ascii_uppercase, 8) + "/" + fake("sw3", ALNUM, 24),
    "Stripe": "sk_live_" + fake("stripe", ALNUM, 24),
    "Google API key": "AIza" + fake("google", URLSAFE, 35),
    "Twilio": "SK" + fake("twilio", HEX, 32),
    "SendGrid": "SG." + fake("sendgrid1", URLSAFE, 22) + "." + fake("sendgrid2", URLSAFE, 43),
    "Mailgun": "MAILGUN_API_KEY=key-" + fake("mailgun", HEX, 32),
    "npm": "npm_" + fake("npm", LOWER_ALNUM, 36),
    "PyPI": "pypi-AgEIcHlwaS5vcmc" + fake("pypi", URLSAFE, 70),
    "Hugging Face": "hf_" + fake("hf", string.ascii_letters, 34),
    "Discord": "DISCORD_BOT_TOKEN=" + fake("discord", HEX, 64),
    "DigitalOcean": "dop_v1_" + fake("do", HEX, 64),
    "Databricks": "dapi" + fake("databricks", HEX, 32),
    "Shopify": "shpat_" + fake("shopify", HEX, 32),
    "Linear": "lin_api_" + fake("linear", ALNUM, 40),
    "Notion": "ntn_" + fake("notion1", string.digits, 11) + fake("notion2", ALNUM, 35),
    "Sentry": "sntryu_" + fake("sentry", HEX, 64),
    "HashiCorp Vault": "hvs." + fake("vault", URLSAFE, 95),
    "Doppler": "dp.pt." + fake("doppler", ALNUM, 43),
    "Postman": "PMAK-" + fake("postman1", HEX, 24) + "-" + fake("postman2", HEX, 34),
    "Atlassian": "ATATT3xFfGF0" + fake("atlassian", URLSAFE, 180) + "=" + fake("atl2", HEX.upper(), 8),
    "Heroku": "HRKU-AA" + fake("heroku", URLSAFE, 58),
    "Mapbox": "MAPBOX_ACCESS_TOKEN=pk." + fake("mapbox1", LOWER_ALNUM, 60) + "." + fake("mapbox2", LOWER_ALNUM, 22),
    # pscale_tkn_ alone is not reported: kingfisher's rule needs a PLANETSCALE_ID beside it.
    "PlanetScale": "pscale_pw_" + fake("planetscale", ALNUM, 43),
    "Pulumi": "pul-" + fake("pulumi", HEX, 40),
    "Grafana": "glsa_" + fake("grafana1", ALNUM, 32) + "_" + fake("grafana2", HEX, 8),
    "New Relic": "NEW_RELIC_API_KEY=NRAK-" + fake("newrelic", string.ascii_uppercase + string.digits, 27),
    "Datadog": "DATADOG_API_KEY=" + fake("datadog", LOWER_ALNUM, 32),
    "Dynatrace": "dt0c01." + fake("dyn1", string.ascii_uppercase + string.digits, 24) + "."
                 + fake("dyn2", string.ascii_uppercase + string.digits, 64),
    "Telegram bot": "TELEGRAM_BOT_TOKEN=" + fake("tg1", string.digits, 10) + ":A" + fake("tg2", URLSAFE, 34),
    "JWT": jwt("jwt"),
    "RSA private key": private_key("rsa", "RSA"),
    "OpenSSH private key": private_key("openssh", "OPENSSH"),
    "Credentials in a URL": "postgres://admin:" + fake("pg", ALNUM, 20) + "@db.prod.acme-corp.net:5432/prod",
    "Groq": "gsk_" + fake("groq", ALNUM, 52),
    "xAI": "xai-" + fake("xai", ALNUM, 80),
    "Replicate": "r8_" + fake("replicate", ALNUM, 37),
    "Together AI": "tgp_v1_" + fake("together", URLSAFE, 43),
    "Vercel": "vcp_" + fake("vercel", ALNUM, 56),
    "Supabase": "sbp_" + fake("supabase", LOWER_ALNUM, 40),
    "age": "AGE-SECRET-KEY-1" + fake("age", "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58),
}


def percent_all(text):
    return "".join("%%%02X" % byte for byte in text.encode())


def multipart(value):
    return (b"--b0undary\r\nContent-Disposition: form-data; name=\"notes\"; filename=\"notes.txt\"\r\n"
            b"Content-Type: text/plain\r\n\r\n" + value.encode() + b"\r\n--b0undary--\r\n")


# encoding -> how one request carries the value: ("head", path, headers) or ("body", bytes, type, encoding)
PLACES = {
    "query": lambda v: ("head", "/api/search?q=" + quote(v, safe=""), []),
    "header": lambda v: ("head", "/api/x", [("X-Debug-Context", v.replace("\n", " "))]),
    "json": lambda v: ("body", json.dumps({"messages": [{"role": "user", "content": v}]}).encode(),
                       "application/json", None),
    "form": lambda v: ("body", ("note=hello&data=" + quote(v, safe="")).encode(),
                       "application/x-www-form-urlencoded", None),
    "multipart": lambda v: ("body", multipart(v), "multipart/form-data; boundary=b0undary", None),
    "gzip": lambda v: ("body", gzip.compress(json.dumps({"input": v}).encode()), "application/json", "gzip"),
    "base64": lambda v: ("body", json.dumps({"blob": base64.b64encode(v.encode()).decode()}).encode(),
                         "application/json", None),
    "hex": lambda v: ("body", json.dumps({"blob": v.encode().hex()}).encode(), "application/json", None),
    "percent": lambda v: ("body", ("payload " + percent_all(v)).encode(), "text/plain", None),
}


def scan(engine, value, place):
    request = PLACES[place](value)
    if request[0] == "head":
        return engine.scan_head(request[1], request[2])
    body = bodies.decode_content(request[1], request[3], 1 << 24)
    return engine.scan_body(body, request[2])


def test_the_corpus_has_forty_distinct_providers():
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("provider", sorted(CORPUS))
def test_provider_tokens_are_blocked_everywhere(engine, provider, place):
    value = CORPUS[provider]
    hit = scan(engine, value, place)
    assert hit is not None, "%s in %s passed" % (provider, place)
    message = hit.message()
    for part in (value, value[-12:], value[4:16]):
        assert part not in message
    assert message.startswith("blocked by egress: ")


@pytest.mark.parametrize("provider", sorted(CORPUS))
def test_kingfisher_itself_names_each_provider(engine, provider):
    """The format is recognised by a provider rule (not only by the entropy fallback)."""
    hit = scan(engine, CORPUS[provider], "json")
    assert hit.rule.startswith("dlp:"), hit


KNOWN = "Tr0ub4dor&3-bottle-secret"
TOKEN = "route-token-7f3a9c1e5b"


def known_encodings(value):
    raw = value.encode()
    return {
        "raw": value,
        "base64 std padded": base64.b64encode(raw).decode(),
        "base64 std unpadded": base64.b64encode(raw).decode().rstrip("="),
        "base64 url padded": base64.urlsafe_b64encode(raw).decode(),
        "base64 url unpadded": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "base64 in a blob (+1 byte)": base64.b64encode(b"\x01" + raw + b"tail").decode(),
        "base64 in a blob (+2 bytes)": base64.b64encode(b"\x01\x02" + raw + b"tail").decode(),
        "base64 in a blob (+3 bytes)": base64.b64encode(b"\x01\x02\x03" + raw + b"tail").decode(),
        "base64url in a blob (+1 byte)": base64.urlsafe_b64encode(b"\xfb" + raw + b"tail").decode(),
        "hex lower": raw.hex(),
        "hex upper": raw.hex().upper(),
        "base32": base64.b32encode(raw).decode(),
        "percent-encoded": percent_all(value),
        "double percent-encoded": quote(percent_all(value), safe=""),
    }


@pytest.mark.parametrize("value", [KNOWN, TOKEN])
@pytest.mark.parametrize("encoding", sorted(known_encodings(KNOWN)))
@pytest.mark.parametrize("place", ["query", "header", "json", "form", "gzip"])
def test_known_secrets_are_blocked_in_every_encoding(engine, value, encoding, place):
    engine.known.load([KNOWN, TOKEN])
    wrapped = known_encodings(value)[encoding]
    hit = scan(engine, wrapped, place)
    assert hit is not None and hit.rule in ("known-secret", "entropy"), hit
    if place != "query":
        assert hit.rule == "known-secret", hit
    assert value not in hit.message() and wrapped not in hit.message()


def coverage_table():
    """provider x place: the rule that caught it ('-' when nothing did)."""
    engine = dlp.Engine(dlp.load_kingfisher())
    rows = []
    for provider in sorted(CORPUS):
        cells = []
        for place in PLACES:
            hit = scan(engine, CORPUS[provider], place)
            cells.append("-" if hit is None else ("kf" if hit.rule.startswith("dlp:") else hit.rule))
        rows.append((provider, cells))
    return rows


if __name__ == "__main__":
    print("| provider | " + " | ".join(PLACES) + " |")
    print("|---" * (len(PLACES) + 1) + "|")
    for provider, cells in coverage_table():
        print("| %s | %s |" % (provider, " | ".join(cells)))
