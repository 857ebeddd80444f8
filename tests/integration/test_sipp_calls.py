"""Call flows through a live node with SIPp at the ends (issue #4's bar).

SIPp plays the trunk's caller (uac) on one side and the trunk's far end
(uas) on the other; the scenarios (sipp-scenarios/, each says what it
checks) cover the message flow and SDP, SIPp's exit status says whether it
went as written, and each test also checks what the node recorded (the
call's hangup cause, the trunk it ended on) and, where it matters, the RTP
that came through the relay. The caller's side comes from 127.0.0.1, the
demo trunk's `inbound_from`; a phone that is not the trunk uses 127.0.0.2.

The plain flows (forwarded out, CANCEL, BYE from either side, 486) are in
test_calls.py; here are hold and resume, early media, PRACK, failover,
404, 403 and the transfers.
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.parse
from pathlib import Path

import pytest

from switch.call.b2bua import Call, Hangup
from switch.node import Node
from tests.integration.conftest import ended_calls, running_node, sip_address
from tests.integration.test_calls import PCAP, _pcap_rtp_payloads
from tests.support.sipclient import UdpPhone
from tests.support.sipp import SippResult, free_port, needs_sipp, run_sipp, start_far_end

pytestmark = needs_sipp

TIMEOUT = 20  # seconds a SIPp run may take: generous, for a loaded machine


def _trunk_at(port: int) -> dict[str, str]:
    """Config changes that point the demo trunk at a far end on `port`."""
    return {'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{port}"'}


async def _far_end(scenario: str, port: int, *extra: str) -> asyncio.Future[SippResult]:
    """A SIPp answering on `port`, running in the background once it listens."""
    return await start_far_end(scenario, port, list(extra), timeout=TIMEOUT)


async def _settle(node: Node, ended: list[Call], count: int) -> None:
    """Wait (briefly) until `count` calls have ended and the node holds none."""
    assert node.calls is not None
    deadline = asyncio.get_running_loop().time() + 3
    while len(ended) < count or len(node.calls):
        assert asyncio.get_running_loop().time() < deadline, (len(ended), len(node.calls))
        await asyncio.sleep(0.05)


def _passed(*results: SippResult) -> None:
    for result in results:
        assert result.ok, result.output


@pytest.mark.parametrize(
    ("caller_scenario", "callee_scenario"),
    [
        # The caller holds: SIPp checks the directions both ways (sendonly ->
        # recvonly, then sendrecv) and that every SDP names the node's relay.
        ("call_uac_hold.xml", "call_uas_hold.xml"),
        # The same the other way: the re-INVITEs come from the far end's side.
        ("call_uac_held.xml", "call_uas_holds.xml"),
    ],
    ids=["caller-holds", "callee-holds"],
)
async def test_hold_and_resume_with_reinvites(tmp_path, caller_scenario, callee_scenario):
    far_end = free_port(socket.SOCK_DGRAM)
    async with running_node(tmp_path, changes=_trunk_at(far_end)) as node:
        ended = ended_calls(node)
        callee = await _far_end(callee_scenario, far_end)
        caller = await run_sipp(
            caller_scenario, sip_address(node), timeout=TIMEOUT, extra=["-s", "400"]
        )
        _passed(caller, await callee)
        await _settle(node, ended, 1)
        [call] = ended
        assert call.hangup == Hangup("caller", 200, "BYE")
        assert call.answered_at is not None


async def _catch_rtp(audio: UdpPhone, into: list[tuple[float, bytes]]) -> None:
    """Keep (arrival time, payload) of every RTP packet `audio` receives, until cancelled."""
    while True:
        try:
            packet = await audio.receive_bytes(timeout=TIMEOUT)
        except TimeoutError:
            continue
        into.append((time.time(), packet[12:]))


@pytest.mark.skipif(not PCAP.exists(), reason=f"{PCAP} is missing (apt-get install sip-tester)")
async def test_early_media_reaches_the_caller_before_the_answer(tmp_path):
    far_end = free_port(socket.SOCK_DGRAM)
    async with (
        running_node(tmp_path, changes=_trunk_at(far_end)) as node,
        UdpPhone(("127.0.0.1", 9)) as audio,  # where the caller's offer says it listens
    ):
        ended = ended_calls(node)
        heard: list[tuple[float, bytes]] = []
        catching = asyncio.ensure_future(_catch_rtp(audio, heard))
        try:
            callee = await _far_end("call_uas_early_media.xml", far_end)
            caller = await run_sipp(
                "call_uac_early_media.xml", sip_address(node), timeout=TIMEOUT,
                extra=["-s", "400", "-key", "rtp_port", str(audio.address[1])],
            )  # fmt: skip
            _passed(caller, await callee)
            await _settle(node, ended, 1)
        finally:
            catching.cancel()
        [call] = ended
        assert call.hangup == Hangup("caller", 200, "BYE")
        assert call.answered_at is not None
        # The far end's announcement, unchanged, and before the answer.
        expected = _pcap_rtp_payloads(PCAP)
        early = [payload for at, payload in heard if at < call.answered_at]
        assert len(early) >= 10, f"{len(early)} packets before the answer"
        assert [payload for _, payload in heard] == expected[: len(heard)]


async def test_a_trunk_that_requires_100rel_is_pracked(tmp_path):
    # The far end waits for the node's PRACK (RAck: 1 1 INVITE) before it
    # answers; the caller gets the 183 with SDP, then the 200.
    far_end = free_port(socket.SOCK_DGRAM)
    async with (
        running_node(tmp_path, changes=_trunk_at(far_end)) as node,
        UdpPhone(("127.0.0.1", 9)) as audio,  # the caller's media address: nothing is checked
    ):
        ended = ended_calls(node)
        callee = await _far_end("call_uas_prack.xml", far_end)
        caller = await run_sipp(
            "call_uac_early_media.xml", sip_address(node), timeout=TIMEOUT,
            extra=["-s", "400", "-key", "rtp_port", str(audio.address[1])],
        )  # fmt: skip
        _passed(caller, await callee)
        await _settle(node, ended, 1)
        [call] = ended
        assert call.hangup == Hangup("caller", 200, "BYE")
        assert call.pracked == {"1"}


async def test_an_unknown_did_gets_404(tmp_path):
    async with (
        UdpPhone(("127.0.0.1", 9)) as carrier,
        running_node(tmp_path, changes=_trunk_at(carrier.address[1])) as node,
    ):
        ended = ended_calls(node)
        caller = await run_sipp(
            "call_uac_unknown_did.xml", sip_address(node), timeout=TIMEOUT, extra=["-s", "999"]
        )
        _passed(caller)
        await _settle(node, ended, 1)
        [call] = ended
        assert call.hangup == Hangup("node", 404, "Not Found (no DID '999')")
        assert await carrier.silence(0.2)  # nothing went out


async def test_a_stranger_gets_403(tmp_path):
    async with (
        UdpPhone(("127.0.0.1", 9)) as carrier,
        running_node(tmp_path, changes=_trunk_at(carrier.address[1])) as node,
    ):
        ended = ended_calls(node)
        # 127.0.0.2 is not the demo trunk's address, and no agent registered from it.
        caller = await run_sipp(
            "call_uac_unauthorized.xml", sip_address(node), timeout=TIMEOUT,
            extra=["-s", "400"], local_ip="127.0.0.2",
        )  # fmt: skip
        _passed(caller)
        assert await carrier.silence(0.2)  # the DID's forward was not placed
        assert ended == [] and len(node.calls) == 0  # refused before it was a call


def _with_backup(first: int, backup: int) -> dict[str, str]:
    """Config changes: demo-trunk's far end on `first`, and the agents' outbound
    route failing over to a second trunk, "backup", whose far end is on `backup`."""
    return {
        **_trunk_at(first),
        'trunk = "demo-trunk"\nallow_international = false': (
            'trunk = "demo-trunk"\ntrunks = ["backup"]\nallow_international = false'
        ),
        "[tenants.demo.outbound.external]": (
            f'[tenants.demo.trunks.backup]\noutbound_host = "127.0.0.1:{backup}"'
            "\nkeepalive = 0\n\n[tenants.demo.outbound.external]"
        ),
    }


# Agent 1001's phone, on an address that is not the demo trunk's.
AGENT = ["-key", "ext", "1001", "-au", "1001", "-ap", "agent1001", "-key", "domain", "demo.invalid"]


async def test_a_trunk_answering_503_fails_over_to_the_next(tmp_path):
    first, backup = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    async with running_node(tmp_path, changes=_with_backup(first, backup)) as node:
        ended = ended_calls(node)
        broken = await _far_end("call_uas_unavailable.xml", first)
        working = await _far_end("call_uas.xml", backup)
        agent = await run_sipp(
            "call_uac_agent.xml", sip_address(node), timeout=TIMEOUT,
            extra=["-s", "95551234", *AGENT], local_ip="127.0.0.2",
        )  # fmt: skip
        _passed(agent, await broken, await working)
        await _settle(node, ended, 1)
        [call] = ended
        assert call.target is not None and call.target.name == "backup"
        assert call.hangup == Hangup("caller", 200, "BYE")
        assert node.calls.trunk_calls == {}


async def test_a_busy_callee_is_not_failed_over(tmp_path):
    first = free_port(socket.SOCK_DGRAM)
    async with (
        UdpPhone(("127.0.0.1", 9)) as backup,
        running_node(tmp_path, changes=_with_backup(first, backup.address[1])) as node,
    ):
        ended = ended_calls(node)
        busy = await _far_end("call_uas_busy.xml", first)
        agent = await run_sipp(
            "call_uac_agent_busy.xml", sip_address(node), timeout=TIMEOUT,
            extra=["-s", "95551234", *AGENT], local_ip="127.0.0.2",
        )  # fmt: skip
        _passed(agent, await busy)
        await _settle(node, ended, 1)
        [call] = ended
        # 486 is the callee's answer, not a trunk failure: the caller hears it.
        assert call.hangup == Hangup("callee", 486, "Busy Here")
        assert call.target is not None and call.target.name == "demo-trunk"
        assert await backup.silence(0.3)  # the backup was never tried


def _with_transfer_target(first: int, target: int) -> dict[str, str]:
    """Config changes: demo-trunk's far end on `first`, and DID 500 forwarded
    to 5000 through a second trunk, "onward", whose far end is on `target`."""
    return {
        **_trunk_at(first),
        "[tenants.demo.outbound.external]": (
            f'[tenants.demo.trunks.onward]\noutbound_host = "127.0.0.1:{target}"'
            '\nkeepalive = 0\n\n[tenants.demo.dids."500"]\nforward = "5000"\ntrunk = "onward"'
            "\n\n[tenants.demo.outbound.external]"
        ),
    }


def _a_stretch_of(heard: list[bytes], expected: list[bytes]) -> bool:
    """Whether `heard` is `expected[k : k + len(heard)]` for some k: in order, none lost."""
    return any(expected[k : k + len(heard)] == heard for k in range(len(expected) - len(heard) + 1))


@pytest.mark.skipif(not PCAP.exists(), reason=f"{PCAP} is missing (apt-get install sip-tester)")
async def test_the_callee_transfers_the_caller_blind_by_refer(tmp_path):
    first, target = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    async with (
        running_node(tmp_path, changes=_with_transfer_target(first, target)) as node,
        UdpPhone(("127.0.0.1", 9)) as audio,  # where the target says it listens
    ):
        ended = ended_calls(node)
        heard: list[tuple[float, bytes]] = []
        catching = asyncio.ensure_future(_catch_rtp(audio, heard))
        try:
            transferor = await _far_end(
                "call_uas_blind_transfer.xml", first, "-key", "refer_to", "500"
            )
            taker = await _far_end(
                "call_uas_transfer_target.xml", target, "-key", "rtp_port", str(audio.address[1])
            )
            caller = await run_sipp(
                "call_uac_transferee.xml", sip_address(node), timeout=TIMEOUT, extra=["-s", "400"]
            )
            _passed(caller, await transferor, await taker)
            await _settle(node, ended, 1)
        finally:
            catching.cancel()
        [call] = ended
        assert call.target is not None and call.target.name == "onward"
        assert call.hangup == Hangup("caller", 200, "BYE")
        assert node.calls.trunk_calls == {}
        # The caller's audio reaches the new party, through the same relay port.
        payloads = [payload for _, payload in heard]
        assert len(payloads) >= 10, f"{len(payloads)} packets reached the target"
        assert _a_stretch_of(payloads, _pcap_rtp_payloads(PCAP))


async def _logged_replaces(log: Path, consult: asyncio.Future[SippResult]) -> str:
    """The Replaces value (escaped for a URI header) of the consultation call
    that call_uac_consult.xml wrote to its actions log once it was answered."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        lines = log.read_text().split("\n") if log.exists() else []
        found = [line.split() for line in lines if line.startswith("replaces ")]
        if found:
            _, call_id, to_tag, from_tag = found[0]
            quoted = [urllib.parse.quote(value, safe="") for value in (call_id, to_tag, from_tag)]
            return "{}%3Bto-tag%3D{}%3Bfrom-tag%3D{}".format(*quoted)
        if consult.done():
            raise AssertionError(f"the consultation call ended first: {consult.result().output}")
        assert asyncio.get_running_loop().time() < deadline, "the consultation call never answered"
        await asyncio.sleep(0.05)


@pytest.mark.skipif(not PCAP.exists(), reason=f"{PCAP} is missing (apt-get install sip-tester)")
async def test_the_callee_transfers_the_caller_attended_with_replaces(tmp_path):
    # The far end of demo-trunk (the transferor) first calls DID 500, which the
    # node forwards through "onward" to the target; then it answers a call from
    # the caller (DID 400) and joins the caller to the target: REFER with
    # Replaces naming its first call. Two SIPp play the transferor's two calls.
    first, target = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    log = tmp_path / "consult.log"
    async with (
        running_node(tmp_path, changes=_with_transfer_target(first, target)) as node,
        UdpPhone(("127.0.0.1", 9)) as audio,  # where the target says it listens
    ):
        ended = ended_calls(node)
        heard: list[tuple[float, bytes]] = []
        catching = asyncio.ensure_future(_catch_rtp(audio, heard))
        try:
            taker = await _far_end(
                "call_uas_transfer_target.xml", target, "-key", "rtp_port", str(audio.address[1])
            )
            consult = asyncio.ensure_future(
                run_sipp(
                    "call_uac_consult.xml", sip_address(node), timeout=TIMEOUT,
                    extra=["-s", "500", "-trace_logs", "-log_file", str(log)],
                )
            )  # fmt: skip
            replaces = await _logged_replaces(log, consult)
            transferor = await _far_end(
                "call_uas_attended_transfer.xml", first,
                "-key", "refer_to", "500", "-key", "replaces", replaces,
            )  # fmt: skip
            caller = await run_sipp(
                "call_uac_transferee.xml", sip_address(node), timeout=TIMEOUT, extra=["-s", "400"]
            )
            _passed(caller, await transferor, await consult, await taker)
            await _settle(node, ended, 2)
        finally:
            catching.cancel()
        consultation, transferred = ended
        assert consultation.dialled == "500" and transferred.dialled == "400"
        assert consultation.hangup == Hangup("caller", 200, "transferred (attended)")
        # The caller ended up talking to the target, and hung up on it.
        assert transferred.target is not None and transferred.target.name == "onward"
        assert transferred.hangup == Hangup("caller", 200, "BYE")
        assert node.calls.trunk_calls == {}
        # The caller's audio reached the target once the calls were joined.
        payloads = [payload for _, payload in heard]
        assert len(payloads) >= 10, f"{len(payloads)} packets reached the target"
        assert _a_stretch_of(payloads, _pcap_rtp_payloads(PCAP))
