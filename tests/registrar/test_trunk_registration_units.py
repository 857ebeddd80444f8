"""Trunks known by registration: the guard's carrier calls, trunk accounts, trunk contacts."""

from __future__ import annotations

from pathlib import Path

from switch.config import load_config
from switch.registrar.accounts import Accounts
from switch.registrar.guard import Caller, Guard
from switch.sip.digest import compute_ha1
from switch.sip.flow import Flow
from switch.sip.message import parse_message
from switch.store.location import MemoryLocationStore
from tests.test_config import write

CONFIG = """
[agents."1001"]
password = "agent-secret"
[trunks.carrier]
inbound_from = ["203.0.113.0/24"]
outbound_host = "198.51.100.1"
username = "acct"
password = "secret"
register = true
contact_user = "inbound"
[trunks.plain]
inbound_from = ["192.0.2.7"]
[trunks.pbx]
inbound_register = { username = "pbx1", password = "pbx-secret" }
"""


def invite(uri: str, to: str) -> bytes:
    return (
        f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKx\r\n"
        f"From: <sip:5551234@carrier.example>;tag=a\r\nTo: <{to}>\r\nCall-ID: c\r\n"
        "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def check(guard: Guard, data: bytes, ip: str) -> object:
    req = parse_message(data)
    return await guard.check(req, Flow("udp", (ip, 5060)))  # type: ignore[arg-type]


async def test_calls_to_our_contact_user_take_the_did_from_to(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CONFIG))
    accounts = Accounts(config)
    locations = MemoryLocationStore()
    guard = Guard(
        config, accounts, None, locations,  # type: ignore[arg-type]
        carrier_for=lambda ip, user: (
            ("default", "carrier", "inbound") if ip == "198.51.100.1" else None
        ),
    )  # fmt: skip
    # From the registrar's address, to our contact user: the number is in To.
    to_contact = invite("sip:inbound@192.0.2.10:5060", "sip:+15550100@carrier.example")
    assert await check(guard, to_contact, "198.51.100.1") == Caller(
        "default", "trunk", "carrier", "+15550100"
    )
    # From one of its inbound_from addresses: the same.
    assert await check(guard, to_contact, "203.0.113.9") == Caller(
        "default", "trunk", "carrier", "+15550100"
    )
    # A carrier that puts the DID in the Request-URI keeps it there.
    by_uri = invite("sip:+15550100@192.0.2.10", "sip:someone@carrier.example")
    assert await check(guard, by_uri, "198.51.100.1") == Caller("default", "trunk", "carrier")
    # A trunk that does not register: the Request-URI, as before.
    assert await check(guard, to_contact, "192.0.2.7") == Caller("default", "trunk", "plain")


def test_a_pbx_trunk_is_an_account_of_its_tenant(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CONFIG))
    accounts = Accounts(config)
    assert accounts.trunk_accounts == {("default", "pbx1"): "pbx"}
    assert accounts.tenant_for("pbx1", "anything.example") == "default"


async def test_the_pbx_account_has_the_tenant_realm(tmp_path: Path) -> None:
    accounts = Accounts(load_config(write(tmp_path, CONFIG)))
    ha1s = await accounts.ha1s("default", "pbx1")
    assert ha1s is not None
    assert ha1s["MD5"] == compute_ha1("pbx1", "default", "pbx-secret", "MD5")


def test_a_pbx_account_names_its_tenant_among_several(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
            [tenants.a]
            name = "A"
            [tenants.a.trunks.pbx]
            inbound_register = { username = "pbx1", password = "p" }
            [tenants.b]
            name = "B"
            [tenants.b.agents."1001"]
            password = "x"
            """,
        )
    )
    accounts = Accounts(config)
    assert accounts.tenant_for("pbx1", "anything.example") == "a"
    assert accounts.tenant_for("1001", "anything.example") == "b"
