"""Gate: the local ban list (with a fake clock) and the scanner screen."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from switch.config import RegistrarConfig
from switch.registrar.gate import Gate
from switch.sip.flow import Flow
from switch.sip.message import Request, parse_message
from switch.store.bans import MemoryBanStore

pytestmark = pytest.mark.timeout(30)

NOW = 1_700_000_000.0
SCANNERS = ("friendly-scanner", "sipvicious", "sipcli", "VaxSIPUserAgent", "pplsip")
SCANNER_LINE = re.compile(r"scanner dropped: ip=(\S+) port=(\d+) user_agent=(\S+)")


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def options(user_agent: str | None) -> Request:
    lines = [
        "OPTIONS sip:100@192.0.2.10 SIP/2.0",
        "Via: SIP/2.0/UDP 203.0.113.66:5070;branch=z9hG4bK-scan-1",
        "Max-Forwards: 70",
        "From: <sip:100@192.0.2.10>;tag=s1",
        "To: <sip:100@192.0.2.10>",
        "Call-ID: scan-1",
        "CSeq: 1 OPTIONS",
    ]
    if user_agent is not None:
        lines.append(f"User-Agent: {user_agent}")
    msg = parse_message(("\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def flow(ip: str = "203.0.113.66", port: int = 5070) -> Flow:
    return Flow("udp", (ip, port), ("192.0.2.10", 5060))


def scanner_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, ...]]:
    out = []
    for record in caplog.records:
        if record.name == "switch.auth" and record.getMessage().startswith("scanner"):
            match = SCANNER_LINE.fullmatch(record.getMessage())
            assert match is not None, record.getMessage()
            out.append(match.groups())
    return out


# -- bans -----------------------------------------------------------------------------


def test_a_local_ban_holds_until_it_ends() -> None:
    clock = Clock()
    gate = Gate(MemoryBanStore(), SCANNERS, clock=clock)
    assert not gate.banned("198.51.100.7")
    gate.add("198.51.100.7", NOW + 10)
    assert gate.banned("198.51.100.7")
    assert not gate.banned("198.51.100.8")
    clock.now = NOW + 9.999
    assert gate.banned("198.51.100.7")
    clock.now = NOW + 10  # the ban ends at `until`
    assert not gate.banned("198.51.100.7")
    clock.now = NOW  # and once seen over, it is forgotten
    assert not gate.banned("198.51.100.7")


async def test_sync_takes_the_store_list_including_unbans() -> None:
    clock = Clock()
    store = MemoryBanStore()
    gate = Gate(store, SCANNERS, clock=clock)
    await store.ban("198.51.100.7", 60, NOW)
    await store.ban("198.51.100.8", 5, NOW - 10)  # already over
    assert not gate.banned("198.51.100.7")  # not before a sync
    await gate.sync()
    assert gate.banned("198.51.100.7") and not gate.banned("198.51.100.8")
    # An operator lifts the ban on another node: the next sync lifts it here.
    await store.unban("198.51.100.7")
    await gate.sync()
    assert not gate.banned("198.51.100.7")


async def test_sync_asks_the_store_with_the_gate_clock() -> None:
    asked: list[float] = []

    class Store(MemoryBanStore):
        async def bans(self, now: float) -> dict[str, float]:
            asked.append(now)
            return {"198.51.100.9": now + 1}

    clock = Clock(NOW + 123)
    gate = Gate(Store(), SCANNERS, clock=clock)
    await gate.sync()
    assert asked == [NOW + 123]
    assert gate.banned("198.51.100.9")
    clock.now += 1
    assert not gate.banned("198.51.100.9")


class FlakyStore(MemoryBanStore):
    """bans() fails `failures` times, then answers from the memory store."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    async def bans(self, now: float) -> dict[str, float]:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("redis is away")
        return await super().bans(now)


async def wait_until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


async def test_run_survives_a_failing_store_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="switch.auth")
    store = FlakyStore(failures=4)
    await store.ban("198.51.100.7", 3600, NOW)
    gate = Gate(store, SCANNERS, refresh=0.01, clock=Clock())
    task = asyncio.get_running_loop().create_task(gate.run())
    try:
        await wait_until(lambda: store.calls >= 3)
        assert not task.done()  # still refreshing
        assert not gate.banned("198.51.100.7")
        await wait_until(lambda: store.calls >= 6)
        assert gate.banned("198.51.100.7")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
    messages = [r.getMessage() for r in caplog.records if r.name == "switch.auth"]
    assert messages == [
        "cannot refresh the ban list: redis is away",
        "ban list refreshed again",
    ]
    assert [r.levelno for r in caplog.records if r.name == "switch.auth"] == [
        logging.WARNING,
        logging.INFO,
    ]


async def test_run_keeps_the_last_list_while_the_store_is_away() -> None:
    store = FlakyStore(failures=0)
    await store.ban("198.51.100.7", 3600, NOW)
    gate = Gate(store, SCANNERS, refresh=0.01, clock=Clock())
    task = asyncio.get_running_loop().create_task(gate.run())
    try:
        await wait_until(lambda: gate.banned("198.51.100.7"))
        store.failures = store.calls + 1000  # the store goes away
        seen = store.calls
        await wait_until(lambda: store.calls >= seen + 3)
        assert gate.banned("198.51.100.7")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)


# -- scanners ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user_agent",
    [
        "friendly-scanner",
        "Friendly-Scanner",
        "sipvicious 0.3.4",
        "SIPVicious",
        "sipcli/v1.8",
        "SIPCLI",
        "VaxSIPUserAgent/3.1",
        "vaxsipuseragent",
        "PPLSIP",
        "something pplsip-based",
    ],
)
def test_scanner_user_agents_are_dropped(user_agent: str) -> None:
    gate = Gate(MemoryBanStore(), SCANNERS)
    assert gate.screen(options(user_agent), flow()) == "scanner"


@pytest.mark.parametrize(
    "user_agent", [None, "", "Yealink SIP-T46S 66.86.0.15", "JsSIP 3.10.1", "friendly", "sip"]
)
def test_other_user_agents_are_served(user_agent: str | None) -> None:
    gate = Gate(MemoryBanStore(), SCANNERS)
    assert gate.screen(options(user_agent), flow()) is None


def test_the_configured_default_scanners_are_the_known_ones() -> None:
    gate = Gate(MemoryBanStore(), RegistrarConfig().scanners)
    for name in SCANNERS:
        assert gate.screen(options(f"x {name.upper()} y"), flow()) == "scanner"
    assert gate.screen(options("Grandstream GXP2170"), flow()) is None


def test_no_scanners_configured_drops_nothing() -> None:
    gate = Gate(MemoryBanStore(), ["", ""])
    assert gate.screen(options("friendly-scanner"), flow()) is None


def test_each_scanner_address_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switch.auth")
    gate = Gate(MemoryBanStore(), SCANNERS)
    for port in (5070, 5071, 5072):
        assert gate.screen(options("friendly-scanner"), flow(port=port)) == "scanner"
    assert gate.screen(options("sipvicious"), flow("203.0.113.67", 6000)) == "scanner"
    assert gate.screen(options("sipvicious"), flow("203.0.113.67", 6001)) == "scanner"
    assert gate.screen(options("Yealink"), flow("203.0.113.68")) is None
    assert scanner_lines(caplog) == [
        ("203.0.113.66", "5070", "friendly-scanner"),
        ("203.0.113.67", "6000", "sipvicious"),
    ]
