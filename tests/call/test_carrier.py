"""The registration runner with the SIP stack faked: what it sends, and to whom."""

from __future__ import annotations

import asyncio
from pathlib import Path

from switch.call.carrier import CarrierRegistrations
from switch.config import load_config
from switch.sip.flow import Flow
from switch.sip.message import Request, Response, make_response
from tests.test_config import write

CONFIG = """
[trunks.t1]
outbound_host = "198.51.100.1"
username = "a1"
password = "p1"
register = true
[trunks.t2]
registrar = "198.51.100.1:5080"
transport = "tcp"
username = "a2"
password = "p2"
register = true
register_retry = 1
[trunks.plain]
inbound_from = ["192.0.2.7"]
"""


class FakeCarrier:
    """Stands for the node's SIP stack and the carrier behind it: 200 to all."""

    def __init__(self) -> None:
        self.sent: list[tuple[Request, Flow]] = []
        self.broken = False

    async def send(self, req: Request, flow: Flow) -> Response:
        self.sent.append((req, flow))
        if self.broken:
            raise ConnectionError("boom")
        contact = f"{req.get('Contact')};expires={req.get('Expires')}"
        return make_response(req, 200, to_tag="c", headers=[("Contact", contact)])


async def wait_until(condition) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


async def test_each_trunk_registers_over_its_transport_and_unregisters(tmp_path: Path) -> None:
    carrier = FakeCarrier()
    regs = CarrierRegistrations(
        load_config(write(tmp_path, CONFIG)), carrier.send, lambda flow: "192.0.2.10:5060"
    )
    task = asyncio.create_task(regs.run())
    try:
        await wait_until(lambda: all(s["registered"] for s in regs.status().values()))
        assert set(regs.status()) == {"default/t1", "default/t2"}
        flows = {req.get("To"): flow for req, flow in carrier.sent}
        assert flows["<sip:a1@198.51.100.1>"] == Flow("udp", ("198.51.100.1", 5060))
        assert flows["<sip:a2@198.51.100.1:5080>"] == Flow("tcp", ("198.51.100.1", 5080))
        # Two accounts at one carrier: the Request-URI's user tells them apart.
        assert regs.carrier_for("198.51.100.1", "a2") == ("default", "t2", "a2")
        assert regs.carrier_for("198.51.100.1", "a1") == ("default", "t1", "a1")
        assert regs.carrier_for("198.51.100.1", "+15550100") is not None
        assert regs.carrier_for("192.0.2.7", "a1") is None
        carrier.sent.clear()
        await regs.stop()
        assert sorted(req.get("Expires") for req, _ in carrier.sent) == ["0", "0"]
        assert all(s["state"] == "stopped" for s in regs.status().values())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_send_that_fails_is_retried_later(tmp_path: Path) -> None:
    carrier = FakeCarrier()
    carrier.broken = True
    regs = CarrierRegistrations(
        load_config(write(tmp_path, CONFIG)), carrier.send, lambda flow: "192.0.2.10:5060"
    )
    task = asyncio.create_task(regs.run())
    try:
        await wait_until(lambda: regs.status()["default/t2"].get("last_status") == 503)
        assert regs.status()["default/t2"]["state"] == "failed"
        carrier.broken = False
        # t2 retries after 1 s (register_retry) and gets in.
        await wait_until(lambda: regs.status()["default/t2"]["registered"])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
