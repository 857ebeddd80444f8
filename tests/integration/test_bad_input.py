"""Malformed requests on a live node get the status code that names the
problem; garbage is dropped and counted; a flood leaves the node answering."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from switch.sip.message import Response, parse_message
from tests.integration.conftest import sip_address


def request(
    start: str = "OPTIONS sip:switch@127.0.0.1 SIP/2.0",
    *,
    cseq: str = "1 OPTIONS",
    extra: str = "",
    drop: str = "",
    branch: str = "z9hG4bKbad1",
) -> bytes:
    headers = {
        "Via": f"SIP/2.0/UDP 127.0.0.1:5999;branch={branch};rport",
        "Max-Forwards": "70",
        "From": "<sip:test@127.0.0.1>;tag=abc",
        "To": "<sip:switch@127.0.0.1>",
        "Call-ID": f"bad-{branch}@127.0.0.1",
        "CSeq": cseq,
    }
    headers.pop(drop, None)
    lines = [start, *(f"{k}: {v}" for k, v in headers.items())]
    if extra:
        lines.append(extra)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class UdpPeer:
    def __init__(self, target: tuple[str, int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.target = target

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    async def recv(self, timeout: float = 2.0) -> Response | None:
        loop = asyncio.get_running_loop()
        try:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), timeout)
        except TimeoutError:
            return None
        msg = parse_message(data)
        assert isinstance(msg, Response)
        return msg

    async def ask(self, data: bytes) -> Response | None:
        self.send(data)
        return await self.recv()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def peer(node):
    p = UdpPeer(sip_address(node, "udp"))
    yield p
    p.close()


async def test_good_options_gets_200(peer):
    resp = await peer.ask(request())
    assert resp is not None and resp.status == 200
    assert "OPTIONS" in resp.get("Allow")
    # rport (RFC 3581) filled in with where the request really came from.
    assert resp.top_via.params["rport"] == str(peer.sock.getsockname()[1])
    assert resp.top_via.params["received"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (request("OPTIONS sip:switch@127.0.0.1 SIP/7.0", branch="z9hG4bKv"), 505, "version"),
        (request("OPTIONS http://example.com/ SIP/2.0", branch="z9hG4bKs"), 416, ""),
        (request(extra="Require: nosuchthing", branch="z9hG4bKr"), 420, ""),
        (request(cseq="1 INVITE", branch="z9hG4bKc"), 400, "CSeq"),
        (request(cseq="99999999999 OPTIONS", branch="z9hG4bKn"), 400, "CSeq"),
        (request(drop="Max-Forwards", branch="z9hG4bKm"), 400, "Max-Forwards"),
        (request(extra="Max-Forwards: 12", branch="z9hG4bKd"), 400, "Max-Forwards"),
        (request(extra="Call-ID: second@x", branch="z9hG4bKi"), 400, "Call-ID"),
        (request("OPTIONS  sip:switch@127.0.0.1 SIP/2.0", branch="z9hG4bKw"), 400, "request line"),
        (request("FOO sip:switch@127.0.0.1 SIP/2.0", cseq="1 FOO", branch="z9hG4bKf"), 405, ""),
    ],
)
async def test_malformed_request_gets_specific_status(peer, data, status, words):
    resp = await peer.ask(data)
    assert resp is not None, "no answer"
    assert resp.status == status, resp.reason
    assert words.lower() in resp.reason.lower()
    if status == 420:
        assert resp.get("Unsupported") == "nosuchthing"
    if status == 405:
        assert "OPTIONS" in resp.get("Allow")


async def test_garbage_is_dropped_and_counted(node, peer):
    before = node.stack.stats["dropped_unparseable"]
    peer.send(b"\x00\x01garbage that is not SIP\r\n\r\n")
    peer.send(b"OPTIONS sip:x SIP/2.0\r\nVia: nonsense\r\n")  # no blank line
    assert await peer.recv(timeout=0.5) is None
    assert node.stack.stats["dropped_unparseable"] >= before + 2


async def test_flood_of_random_bytes_leaves_node_answering(node, peer):
    rng = random.Random(4475)
    seed = request()
    for i in range(3000):
        if i % 3 == 0:
            data = rng.randbytes(rng.randrange(1, 1500))
        else:
            # Near-misses: a valid request with a few bytes changed.
            buf = bytearray(seed)
            for _ in range(rng.randrange(1, 8)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            data = bytes(buf)
        peer.send(data)
        if i % 200 == 0:
            await asyncio.sleep(0)  # let the node read; UDP buffers are finite
    # Drain whatever the near-misses earned, then ask properly.
    while await peer.recv(timeout=0.3) is not None:
        pass
    resp = await peer.ask(request(branch="z9hG4bKafterflood"))
    assert resp is not None and resp.status == 200
    assert node.stack.stats["received"] > 100
