"""TCP and TLS connections on real loopback sockets."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from switch.sip.flow import Flow
from switch.transport.limits import Limits
from switch.transport.registry import Transports

pytestmark = pytest.mark.timeout(30)


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
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


def sip(method: str = "OPTIONS", body: bytes = b"", call_id: str = "tcp-1") -> bytes:
    return (
        f"{method} sip:switch@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


OK = b"SIP/2.0 200 OK\r\nCall-ID: tcp-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"


class Inbox:
    """The on_message callback: what the transports delivered, in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Flow]] = asyncio.Queue()

    def __call__(self, data: bytes, flow: Flow) -> None:
        self.queue.put_nowait((data, flow))

    async def get(self, timeout: float = 5.0) -> tuple[bytes, Flow]:
        return await asyncio.wait_for(self.queue.get(), timeout)


class Closed:
    """The on_connection_closed callback."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Flow] = asyncio.Queue()

    def __call__(self, flow: Flow) -> None:
        self.queue.put_nowait(flow)

    async def get(self, timeout: float = 5.0) -> Flow:
        return await asyncio.wait_for(self.queue.get(), timeout)


@pytest.fixture
async def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
async def hub(inbox: Inbox):
    transports = Transports(inbox)
    yield transports
    await transports.close()


async def read_exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(n), 5)


async def assert_closed_by_peer(reader: asyncio.StreamReader) -> None:
    try:
        rest = await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        return
    assert rest == b""


# -- receiving -----------------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
async def test_two_messages_in_one_write(host: str, hub: Transports, inbox: Inbox) -> None:
    bound = await hub.listen_tcp(host, 0)
    _, writer = await asyncio.open_connection(*bound)
    a, b = sip(body=b"v=0\r\n"), sip("INFO", call_id="tcp-2")
    writer.write(a + b)
    (data1, flow1), (data2, flow2) = await inbox.get(), await inbox.get()
    assert (data1, data2) == (a, b)
    assert flow1 == flow2
    assert flow1.transport == "tcp" and flow1.reliable and flow1.conn_id is not None
    assert flow1.remote == writer.get_extra_info("sockname")[:2]
    assert flow1.local == bound
    writer.close()


async def test_one_message_across_three_writes(hub: Transports, inbox: Inbox) -> None:
    bound = await hub.listen_tcp("127.0.0.1", 0)
    _, writer = await asyncio.open_connection(*bound)
    m = sip(body=b"a body that\r\n\r\nhas a blank line")
    for piece in (m[:10], m[10:-5]):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.02)  # separate reads on the far side
        assert inbox.queue.empty()
    writer.write(m[-5:])
    data, _ = await inbox.get()
    assert data == m
    writer.close()


async def test_keepalive_ping_gets_a_pong(hub: Transports, inbox: Inbox) -> None:
    bound = await hub.listen_tcp("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*bound)
    writer.write(b"\r\n\r\n")
    assert await read_exactly(reader, 2) == b"\r\n"
    writer.write(b"\r\n" + sip())  # a lone CRLF is not a ping
    data, _ = await inbox.get()
    assert data == sip()
    assert hub.stats["keepalives"] == 1
    writer.write(b"\r\n\r\n")
    assert await read_exactly(reader, 2) == b"\r\n"
    writer.close()


async def test_oversize_message_closes_the_connection(inbox: Inbox) -> None:
    hub = Transports(inbox, max_message_size=1000)
    try:
        bound = await hub.listen_tcp("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*bound)
        writer.write(sip() + sip(body=b"x" * 2000))
        data, _ = await inbox.get()  # the good one before it still counts
        assert data == sip()
        await assert_closed_by_peer(reader)
        assert hub.stats["dropped_too_large"] == 1
        assert hub.stats["framing_errors"] == 1
        writer.close()
    finally:
        await hub.close()


async def test_missing_content_length_closes_the_connection(hub: Transports, inbox: Inbox) -> None:
    bound = await hub.listen_tcp("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*bound)
    writer.write(b"OPTIONS sip:a SIP/2.0\r\nCall-ID: x\r\n\r\n")
    await assert_closed_by_peer(reader)
    assert hub.stats["framing_errors"] == 1
    assert inbox.queue.empty()
    writer.close()


async def test_connection_limit_per_source(inbox: Inbox) -> None:
    hub = Transports(inbox, limits=Limits(max_connections_per_source=2))
    closed = Closed()
    hub.on_connection_closed(closed)
    try:
        bound = await hub.listen_tcp("127.0.0.1", 0)
        first = await asyncio.open_connection(*bound)
        second = await asyncio.open_connection(*bound)
        third = await asyncio.open_connection(*bound)
        await assert_closed_by_peer(third[0])
        assert hub.stats["dropped_conn_limit"] == 1
        assert hub.stats["connections_open"] == 2
        assert closed.queue.empty()  # a refused connection was never a flow

        # The two accepted ones still work; closing one makes room.
        second[1].write(sip())
        await inbox.get()
        first[1].close()
        await closed.get()
        fourth = await asyncio.open_connection(*bound)
        fourth[1].write(sip())
        await inbox.get()
        for _, writer in (second, third, fourth):
            writer.close()
    finally:
        await hub.close()


async def test_idle_connection_is_closed(inbox: Inbox) -> None:
    hub = Transports(inbox, idle_timeout=0.3)
    closed = Closed()
    hub.on_connection_closed(closed)
    try:
        bound = await hub.listen_tcp("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*bound)
        loop = asyncio.get_running_loop()
        # Activity keeps it open past the timeout...
        started = loop.time()
        for _ in range(3):
            await asyncio.sleep(0.15)
            writer.write(b"\r\n\r\n")
            assert await read_exactly(reader, 2) == b"\r\n"
        assert loop.time() - started > 0.4
        # ...silence closes it.
        await assert_closed_by_peer(reader)
        flow = await closed.get()
        assert flow.transport == "tcp"
        assert hub.stats["idle_closed"] == 1
        assert hub.stats["connections_open"] == 0
        writer.close()
    finally:
        await hub.close()


# -- sending -------------------------------------------------------------------------------


async def test_send_over_the_connection_the_request_came_on(hub: Transports, inbox: Inbox) -> None:
    bound = await hub.listen_tcp("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*bound)
    writer.write(sip())
    _, flow = await inbox.get()
    assert hub.connection_for("tcp", flow.remote) == flow
    # Other spellings of the same address find it too.
    assert hub.connection_for("tcp", ("::ffff:127.0.0.1", flow.remote[1])) == flow
    assert hub.connection_for("udp", flow.remote) is None
    assert hub.send(OK, flow)
    assert await read_exactly(reader, len(OK)) == OK
    # The stack may also know only the peer's address: the open connection is reused.
    assert hub.send(OK, Flow("tcp", flow.remote))
    assert await read_exactly(reader, len(OK)) == OK
    assert hub.stats["connections_opened"] == 0
    writer.close()


async def test_closed_connection_is_reported_and_forgotten(hub: Transports, inbox: Inbox) -> None:
    closed = Closed()
    hub.on_connection_closed(closed)
    bound = await hub.listen_tcp("127.0.0.1", 0)
    _, writer = await asyncio.open_connection(*bound)
    writer.write(sip())
    _, flow = await inbox.get()
    writer.close()
    assert await closed.get() == flow
    assert hub.connection_for("tcp", flow.remote) is None
    assert hub.stats["connections_open"] == 0


async def test_outbound_connect_when_no_connection_exists(hub: Transports, inbox: Inbox) -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()
    accepted = 0

    async def trunk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        await received.put(await reader.readexactly(len(sip())))
        await received.put(await reader.readexactly(len(sip())))
        writer.write(OK)
        await writer.drain()
        await reader.read()  # until we close it
        writer.close()

    server = await asyncio.start_server(trunk, "127.0.0.1", 0)
    try:
        peer = server.sockets[0].getsockname()[:2]
        # Two sends before the connection is up share one connection.
        assert hub.send(sip(), Flow("tcp", peer))
        flow = hub.connection_for("tcp", peer)
        assert flow is not None and flow.conn_id is not None
        assert hub.send(sip(), Flow("tcp", peer))
        assert await asyncio.wait_for(received.get(), 5) == sip()
        assert await asyncio.wait_for(received.get(), 5) == sip()
        data, in_flow = await inbox.get()  # the answer comes back on that connection
        assert data == OK
        assert in_flow.conn_id == flow.conn_id and in_flow.remote == peer
        assert in_flow.local[1] != 0
        assert accepted == 1
        assert hub.stats["connections_opened"] == 1
    finally:
        await hub.close()
        server.close()
        await server.wait_closed()


async def test_outbound_connect_failure_is_reported(hub: Transports) -> None:
    closed = Closed()
    hub.on_connection_closed(closed)
    with socket.socket() as unused:  # a port that nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert hub.send(sip(), Flow("tcp", ("127.0.0.1", port)))
    flow = await closed.get()
    assert flow.remote == ("127.0.0.1", port)
    assert hub.stats["connect_failed"] == 1
    assert hub.connection_for("tcp", ("127.0.0.1", port)) is None


async def test_send_on_a_closed_connection_id_reconnects(hub: Transports, inbox: Inbox) -> None:
    bound = await hub.listen_tcp("127.0.0.1", 0)
    closed = Closed()
    hub.on_connection_closed(closed)
    _, writer = await asyncio.open_connection(*bound)
    writer.write(sip())
    _, flow = await inbox.get()
    writer.close()
    await closed.get()
    # The stack answers to the listening address (RFC 3261 §18.2.2): a new connection.
    assert hub.send(OK, Flow("tcp", bound, conn_id=flow.conn_id))
    data, back = await inbox.get()  # we connected to ourselves
    assert data == OK and back.conn_id != flow.conn_id
    assert hub.stats["connections_opened"] == 1


async def test_websocket_flows_cannot_be_opened_by_us(hub: Transports) -> None:
    assert not hub.send(OK, Flow("ws", ("127.0.0.1", 5062)))
    assert not hub.send(OK, Flow("wss", ("127.0.0.1", 5062), conn_id=12345))
    assert hub.stats["send_no_connection"] == 2


async def test_close_leaves_nothing_running(inbox: Inbox) -> None:
    hub = Transports(inbox)
    closed = Closed()
    hub.on_connection_closed(closed)
    bound = await hub.listen_tcp("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*bound)
    writer.write(sip())
    await inbox.get()
    # A connect that will never finish (a listener that does not accept).
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(0)
        hub.send(sip(), Flow("tls", blackhole.getsockname()[:2]))
        await asyncio.sleep(0.05)
        await asyncio.wait_for(hub.close(), 5)
    await assert_closed_by_peer(reader)
    assert {f.transport for f in [await closed.get(), await closed.get()]} == {"tcp", "tls"}
    assert hub.stats["connections_open"] == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}
    writer.close()


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command.

    (The `cryptography` package is not a dependency of the project.)
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = [openssl, "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=switch.test"]
    command += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    command += ["-keyout", str(key), "-out", str(cert)]
    command += ["-addext", "subjectAltName=IP:127.0.0.1,DNS:switch.test"]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    return context


def client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


async def test_tls_receive_and_answer(
    certificate: tuple[Path, Path], hub: Transports, inbox: Inbox
) -> None:
    bound = await hub.listen_tls("127.0.0.1", 0, server_context(certificate))
    reader, writer = await asyncio.open_connection(
        *bound, ssl=client_context(certificate), server_hostname="127.0.0.1"
    )
    writer.write(sip() + b"\r\n\r\n")
    data, flow = await inbox.get()
    assert data == sip()
    assert flow.transport == "tls" and flow.secure
    assert await read_exactly(reader, 2) == b"\r\n"  # pong
    assert hub.send(OK, flow)
    assert await read_exactly(reader, len(OK)) == OK
    writer.close()


async def test_tls_outbound_verifies_the_peer(certificate: tuple[Path, Path]) -> None:
    server_inbox, client_inbox = Inbox(), Inbox()
    server = Transports(server_inbox)
    trusting = Transports(client_inbox, client_ssl_context=client_context(certificate))
    default = Transports(Inbox())  # the system's CAs: our self-signed peer is refused
    try:
        bound = await server.listen_tls("127.0.0.1", 0, server_context(certificate))
        assert trusting.send(sip(), Flow("tls", bound))
        data, flow = await server_inbox.get()
        assert data == sip() and flow.transport == "tls"
        assert server.send(OK, flow)
        data, _ = await client_inbox.get()
        assert data == OK

        closed = Closed()
        default.on_connection_closed(closed)
        assert default.send(sip(), Flow("tls", bound))
        await closed.get()
        assert default.stats["connect_failed"] == 1
    finally:
        for hub in (server, trusting, default):
            await hub.close()
