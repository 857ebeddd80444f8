"""The demo IVR (DID 100) on a live node, called by SIPp with RFC 4733 keys.

1 lands in the support queue, 2 in sales, 3 sends the information by
e-mail (to a local SMTP sink) and hangs up; a caller who presses nothing
ends in the fallback, the support queue. The queue's waiting list shows
the caller with what the IVR learnt. DID 200 goes straight to the support
queue through the same service.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switch.config import demo_config_text, load_config
from switch.node import Node
from tests.integration.conftest import ended_calls, sip_address
from tests.support.sipp import free_port, needs_sipp, run_sipp
from tests.support.smtp import smtp_sink

PCAPS = Path("/usr/share/sip-tester")

pytestmark = [
    needs_sipp,
    pytest.mark.skipif(not (PCAPS / "dtmf_2833_1.pcap").exists(), reason="sip-tester's captures"),
]


@contextlib.asynccontextmanager
async def ivr_node(tmp_path: Path, extra: str = "") -> AsyncIterator[Node]:
    text = demo_config_text().replace("keepalive = 30 ", "keepalive = 0 ", 1) + extra
    path = tmp_path / "node.toml"
    path.write_text(text)
    config = load_config(path).with_overrides(
        sip_listen="127.0.0.1:0", http_listen="127.0.0.1:0", data_dir=tmp_path / "data"
    )
    node = Node(config)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


def _sipp(node: Node, scenario: str, stay_ms: int, did: str = "100", timeout: float = 60):
    return asyncio.ensure_future(
        run_sipp(
            scenario,
            sip_address(node),
            timeout=timeout,
            extra=[
                "-s",
                did,
                "-mi",
                "127.0.0.1",
                "-mp",
                str(free_port(socket.SOCK_DGRAM)),
                "-d",
                str(stay_ms),
            ],
        )
    )


async def _until(predicate, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(("scenario", "queue"), [("ivr_uac_press_1.xml", "support"),
                                                 ("ivr_uac_press_2.xml", "sales")])  # fmt: skip
async def test_a_key_pressed_during_the_greeting_lands_in_its_queue(tmp_path, scenario, queue):
    async with ivr_node(tmp_path) as node:
        ended = ended_calls(node)
        queues = node.queues
        sipp = _sipp(node, scenario, 8000)
        await _until(lambda: queues.waiting("demo") or sipp.done(), 20)
        assert not sipp.done(), (await sipp).output
        (waiting,) = queues.waiting("demo")
        assert waiting.queue == queue and waiting.caller == "+442079460123"
        assert waiting.variables == {"email": "caller@demo.example", "department": queue}
        assert queues.queue_state("demo", queue).waiting == 1
        result = await sipp
        assert result.ok, result.output
        await _until(lambda: bool(ended) and "queue" in ended[0].app.variables["ivr"], 5)
    assert queues.waiting("demo") == []
    summary = ended[0].app.variables["ivr"]
    assert summary["digits"] == {"support": "1", "sales": "2"}[queue]
    assert summary["outcome"] == f"enqueue:{queue}"
    assert summary["steps"][-1] == queue
    assert summary["queue"]["result"] == "abandoned" and summary["queue"]["waited"] > 1


async def test_a_caller_who_presses_nothing_ends_in_the_support_queue(tmp_path):
    async with ivr_node(tmp_path) as node:
        ended = ended_calls(node)
        queues = node.queues
        sipp = _sipp(node, "ivr_uac_silent_until_bye.xml", 0, timeout=120)
        await _until(lambda: queues.waiting("demo") or sipp.done(), 80)
        assert not sipp.done(), (await sipp).output
        (waiting,) = queues.waiting("demo")
        assert waiting.queue == "support" and waiting.variables["department"] == "support"
        assert not ended  # still waiting
        # (no agent registered: the test ends the wait from the node's side)
        (held,) = queues.callers.values()
        held.call.hangup("normal")
        result = await sipp
        assert result.ok, result.output
        await _until(lambda: bool(ended), 5)
    summary = ended[0].app.variables["ivr"]
    assert summary["digits"] == ""
    kinds = [entry["kind"] for entry in summary["trail"]]
    assert kinds.count("no_input") == 2 and "fallback" in kinds
    assert summary["outcome"] == "enqueue:support"


async def test_three_sends_the_information_by_email_and_hangs_up(tmp_path):
    async with smtp_sink() as sink:
        extra = (
            f'\n[notify]\nsmtp_host = "127.0.0.1"\nsmtp_port = {sink.port}\n'
            'from = "ivr@demo.example"\n'
        )
        async with ivr_node(tmp_path, extra) as node:
            ended = ended_calls(node)
            result = await _sipp(node, "ivr_uac_press_3.xml", 0)
            assert result.ok, result.output
            await asyncio.wait_for(sink.received.wait(), 10)
            await _until(lambda: bool(ended), 5)
    (msg,) = sink.messages
    assert msg["To"] == "caller@demo.example" and msg["From"] == "ivr@demo.example"
    assert msg["Subject"] == "Your information from the Demo Company"
    assert "+442079460123" in msg.get_content()
    assert ended[0].hangup.by == "node"
    assert ended[0].app.variables["ivr"]["outcome"] == "hangup:flow"


async def test_a_queue_did_goes_straight_to_the_queue(tmp_path):
    async with ivr_node(tmp_path) as node:
        queues = node.queues
        sipp = _sipp(node, "ivr_uac_silent.xml", 3000, did="200")
        await _until(lambda: queues.waiting("demo", "support") or sipp.done(), 10)
        (waiting,) = queues.waiting("demo", "support")
        assert waiting.variables == {}
        result = await sipp
        assert result.ok, result.output
        await _until(lambda: not queues.waiting("demo"), 5)
