"""UDP listener on real loopback sockets, and the per-source limits."""

from __future__ import annotations

import asyncio
import socket

import pytest

from switch.sip.flow import Flow
from switch.transport.limits import Limits
from switch.transport.registry import Transports

pytestmark = pytest.mark.timeout(20)


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HOSTS = [
    "127.0.0.1",
    pytest.param(
        "::1",
        marks=pytest.mark.skipif(
            not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)"
        ),
    ),
]

OPTIONS = (
    b"OPTIONS sip:switch@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
    b"Call-ID: udp-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)
OK = b"SIP/2.0 200 OK\r\nCall-ID: udp-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"


class Inbox:
    """The on_message callback: what the transports delivered, in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Flow]] = asyncio.Queue()

    def __call__(self, data: bytes, flow: Flow) -> None:
        self.queue.put_nowait((data, flow))

    async def get(self, timeout: float = 5.0) -> tuple[bytes, Flow]:
        return await asyncio.wait_for(self.queue.get(), timeout)


class Peer(asyncio.DatagramProtocol):
    """A phone on the other end."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        self.queue.put_nowait((data, addr[:2]))

    async def get(self, timeout: float = 5.0) -> tuple[bytes, tuple[str, int]]:
        return await asyncio.wait_for(self.queue.get(), timeout)


async def open_peer(host: str) -> tuple[asyncio.DatagramTransport, Peer, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(Peer, local_addr=(host, 0))
    return transport, peer, transport.get_extra_info("sockname")[:2]


@pytest.fixture
async def inbox() -> Inbox:
    return Inbox()


@pytest.mark.parametrize("host", HOSTS)
async def test_receive_and_answer(host: str, inbox: Inbox) -> None:
    hub = Transports(inbox)
    try:
        bound = await hub.listen_udp(host, 0)
        assert bound[0] == host and bound[1] > 0
        transport, peer, peer_addr = await open_peer(host)
        transport.sendto(OPTIONS, bound)
        data, flow = await inbox.get()
        assert data == OPTIONS
        assert flow == Flow("udp", peer_addr, bound)
        assert not flow.reliable

        assert hub.send(OK, flow)
        assert await peer.get() == (OK, bound)
        assert hub.stats["received"] == 1 and hub.stats["sent"] == 1
        transport.close()
    finally:
        await hub.close()


async def test_send_to_a_peer_first(inbox: Inbox) -> None:
    """Requests from the switch (no earlier datagram from that peer)."""
    hub = Transports(inbox)
    try:
        bound = await hub.listen_udp("127.0.0.1", 0)
        transport, peer, peer_addr = await open_peer("127.0.0.1")
        assert hub.send(OPTIONS, Flow("udp", peer_addr))  # no local: the first listener
        assert await peer.get() == (OPTIONS, bound)
        transport.sendto(OK, bound)
        data, _ = await inbox.get()
        assert data == OK
        transport.close()
    finally:
        await hub.close()


async def test_sends_of_one_loop_iteration_leave_together_in_order(inbox: Inbox) -> None:
    # Batched to the end of the iteration: a peer woken by the first datagram
    # finds the rest waiting. A plain socket shows what has left, when.
    hub = Transports(inbox)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        try:
            await hub.listen_udp("127.0.0.1", 0)
            flow = Flow("udp", peer.getsockname())
            for i in range(50):
                assert hub.send(b"%d" % i, flow)
            with pytest.raises(BlockingIOError):
                peer.recv(100)  # nothing has left during this iteration
            await asyncio.sleep(0.05)
            received = [peer.recv(100) for _ in range(50)]
            assert received == [b"%d" % i for i in range(50)]
        finally:
            await hub.close()


async def test_send_picks_the_listener_of_flow_local(inbox: Inbox) -> None:
    hub = Transports(inbox)
    try:
        await hub.listen_udp("127.0.0.1", 0)
        second = await hub.listen_udp("127.0.0.1", 0)
        transport, peer, peer_addr = await open_peer("127.0.0.1")
        assert hub.send(OPTIONS, Flow("udp", peer_addr, second))
        assert (await peer.get())[1] == second
        transport.close()
    finally:
        await hub.close()


async def test_oversize_datagram_is_dropped_and_counted(inbox: Inbox) -> None:
    hub = Transports(inbox, max_message_size=1000)
    try:
        bound = await hub.listen_udp("127.0.0.1", 0)
        transport, _, _ = await open_peer("127.0.0.1")
        transport.sendto(OPTIONS + b"x" * 1000, bound)
        transport.sendto(OPTIONS, bound)  # datagrams arrive in order on loopback
        data, _ = await inbox.get()
        assert data == OPTIONS
        assert hub.stats["dropped_too_large"] == 1
        assert hub.stats["received"] == 1
        transport.close()
    finally:
        await hub.close()


async def test_crlf_keepalive_datagrams_are_ignored(inbox: Inbox) -> None:
    hub = Transports(inbox)
    try:
        bound = await hub.listen_udp("127.0.0.1", 0)
        transport, peer, _ = await open_peer("127.0.0.1")
        for blank in (b"\r\n\r\n", b"\r\n", b" \t\r\n"):
            transport.sendto(blank, bound)
        # asyncio will not send an empty datagram: a plain socket does.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
            plain.sendto(b"", bound)
        transport.sendto(OPTIONS, bound)
        data, _ = await inbox.get()
        assert data == OPTIONS
        assert hub.stats["keepalives"] == 4
        assert peer.queue.empty()  # nothing answered
        transport.close()
    finally:
        await hub.close()


async def test_datagram_passed_whole(inbox: Inbox) -> None:
    """Cutting the body to Content-Length is the SIP stack's job, not the transport's."""
    hub = Transports(inbox)
    try:
        bound = await hub.listen_udp("127.0.0.1", 0)
        transport, _, _ = await open_peer("127.0.0.1")
        transport.sendto(OPTIONS + b"trailing junk", bound)
        data, _ = await inbox.get()
        assert data == OPTIONS + b"trailing junk"
        transport.close()
    finally:
        await hub.close()


async def test_rate_limit_drops_and_counts(inbox: Inbox) -> None:
    now = [100.0]
    limits = Limits(max_requests_per_second_per_source=2, burst=3, clock=lambda: now[0])
    hub = Transports(inbox, limits=limits)
    try:
        bound = await hub.listen_udp("127.0.0.1", 0)
        transport, _, _ = await open_peer("127.0.0.1")
        for _ in range(5):
            transport.sendto(OPTIONS, bound)
        transport.sendto(OK, bound)  # responses are not rate limited
        got = [(await inbox.get())[0] for _ in range(4)]
        assert got == [OPTIONS, OPTIONS, OPTIONS, OK]
        assert hub.stats["dropped_rate_limited"] == 2

        now[0] += 1.0  # two more tokens
        for _ in range(3):
            transport.sendto(OPTIONS, bound)
        transport.sendto(OK, bound)
        got = [(await inbox.get())[0] for _ in range(3)]
        assert got == [OPTIONS, OPTIONS, OK]
        assert hub.stats["dropped_rate_limited"] == 3
        transport.close()
    finally:
        await hub.close()


async def test_handler_error_does_not_stop_the_listener() -> None:
    inbox = Inbox()
    calls = 0

    def on_message(data: bytes, flow: Flow) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bug in the stack")
        inbox(data, flow)

    hub = Transports(on_message)
    try:
        bound = await hub.listen_udp("127.0.0.1", 0)
        transport, _, _ = await open_peer("127.0.0.1")
        transport.sendto(OPTIONS, bound)
        transport.sendto(OK, bound)
        data, _ = await inbox.get()
        assert data == OK
        assert hub.stats["handler_errors"] == 1
        transport.close()
    finally:
        await hub.close()


async def test_send_refuses_unresolved_names_and_missing_listeners(inbox: Inbox) -> None:
    hub = Transports(inbox)
    try:
        assert not hub.send(OPTIONS, Flow("udp", ("127.0.0.1", 5060)))  # no listener yet
        await hub.listen_udp("127.0.0.1", 0)
        # A name would be resolved synchronously by sendto(): refused.
        assert not hub.send(OPTIONS, Flow("udp", ("localhost", 5060)))
    finally:
        await hub.close()


async def test_close_leaves_nothing_running(inbox: Inbox) -> None:
    hub = Transports(inbox)
    bound = await hub.listen_udp("127.0.0.1", 0)
    await hub.close()
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert not hub.send(OPTIONS, Flow("udp", ("127.0.0.1", bound[1])))
    await hub.close()  # twice is harmless


# -- Limits, with a fake clock ---------------------------------------------------------------


def test_token_bucket() -> None:
    now = [0.0]
    limits = Limits(max_requests_per_second_per_source=10, burst=5, clock=lambda: now[0])
    assert [limits.allow_request("192.0.2.1") for _ in range(6)] == [True] * 5 + [False]
    assert limits.allow_request("192.0.2.2")  # another source is not affected
    now[0] += 0.1  # one token back
    assert limits.allow_request("192.0.2.1")
    assert not limits.allow_request("192.0.2.1")
    now[0] += 100  # never more than the burst
    assert [limits.allow_request("192.0.2.1") for _ in range(6)] == [True] * 5 + [False]


def test_unlimited_rate_and_exempt_sources() -> None:
    limits = Limits(max_requests_per_second_per_source=0)
    assert all(limits.allow_request("192.0.2.1") for _ in range(1000))
    assert limits.tracked_sources == 0
    limits = Limits(max_requests_per_second_per_source=1, exempt=["192.0.2.9"])
    assert all(limits.allow_request("192.0.2.9") for _ in range(100))


def test_bucket_memory_is_bounded() -> None:
    now = [0.0]
    limits = Limits(
        max_requests_per_second_per_source=1, burst=1, max_sources=100, clock=lambda: now[0]
    )
    for i in range(10_000):
        limits.allow_request(f"10.0.{i // 256}.{i % 256}")
    assert limits.tracked_sources <= 100
    # Sources idle long enough to have refilled are forgotten as new ones come.
    now[0] += 10
    for i in range(50):
        limits.allow_request(f"10.1.0.{i}")
    assert limits.tracked_sources <= 100


def test_connection_counts() -> None:
    limits = Limits(max_connections_per_source=2)
    assert limits.connection_opened("192.0.2.1")
    assert limits.connection_opened("192.0.2.1")
    assert not limits.connection_opened("192.0.2.1")
    assert limits.connection_opened("192.0.2.2")
    limits.connection_closed("192.0.2.1")
    assert limits.connections("192.0.2.1") == 1
    assert limits.connection_opened("192.0.2.1")
    for _ in range(5):
        limits.connection_closed("192.0.2.2")
    assert limits.connections("192.0.2.2") == 0
