"""A small SIP client for integration tests: UDP or WebSocket, digest answers, no magic.

It plays a phone or a browser where SIPp cannot (several nodes, WebSocket,
answering the node's OPTIONS) and lets a test look at every byte.
"""

from __future__ import annotations

import asyncio
import secrets

import aiohttp

from switch.sip.digest import Credentials, compute_ha1, compute_response, parse_challenge
from switch.sip.message import Request, Response, parse_message


def register(
    user: str,
    domain: str,
    contact: str,
    via: str,
    *,
    call_id: str,
    cseq: int,
    expires: int | None = 600,
    extra: tuple[str, ...] = (),
) -> str:
    """A REGISTER for user@domain; `via` is 'SIP/2.0/UDP host:port' or similar."""
    lines = [
        f"REGISTER sip:{domain} SIP/2.0",
        f"Via: {via};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{domain}>;tag={secrets.token_hex(4)}",
        f"To: <sip:{user}@{domain}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: {contact}",
        *([f"Expires: {expires}"] if expires is not None else []),
        *extra,
        "Content-Length: 0",
    ]
    return "\r\n".join(lines) + "\r\n\r\n"


def authorization(
    challenge_response: Response,
    user: str,
    password: str,
    uri: str,
    method: str = "REGISTER",
    algorithm: str | None = None,
) -> str:
    """The Authorization value answering the 401's challenge (the first, or `algorithm`'s)."""
    values = challenge_response.get_all("WWW-Authenticate") or challenge_response.get_all(
        "Proxy-Authenticate"
    )
    challenges = [parse_challenge(v) for v in values]
    challenge = next(c for c in challenges if algorithm in (None, c.algorithm))
    ha1 = compute_ha1(user, challenge.realm, password, challenge.algorithm)
    cnonce = secrets.token_hex(4)
    response = compute_response(
        ha1, method, uri, challenge.nonce, challenge.algorithm, "auth", "00000001", cnonce
    )
    creds = Credentials(
        user, challenge.realm, challenge.nonce, uri, response, challenge.algorithm, cnonce,
        None, "auth", "00000001",
    )  # fmt: skip
    return creds.to_header_value()


class _Queue(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.messages: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.messages.put_nowait(data)


class UdpPhone:
    """A UDP socket on loopback that sends SIP to one node and queues what comes back."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host  # any of 127.0.0.0/8: to be, or not be, a trunk's address
        self._proto = _Queue()

    async def __aenter__(self) -> UdpPhone:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self._proto, local_addr=(self.host, 0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._proto.transport is not None
        self._proto.transport.close()

    @property
    def address(self) -> tuple[str, int]:
        assert self._proto.transport is not None
        return self._proto.transport.get_extra_info("sockname")[:2]

    @property
    def via(self) -> str:
        host, port = self.address
        return f"SIP/2.0/UDP {host}:{port}"

    def send(self, text: str | bytes, target: tuple[str, int] | None = None) -> None:
        assert self._proto.transport is not None
        data = text.encode() if isinstance(text, str) else text
        self._proto.transport.sendto(data, target or self.target)

    async def receive(self, timeout: float = 5.0) -> Request | Response:
        data = await asyncio.wait_for(self._proto.messages.get(), timeout)
        return parse_message(data)

    async def receive_bytes(self, timeout: float = 5.0) -> bytes:
        """The next datagram as it came (RTP, say)."""
        return await asyncio.wait_for(self._proto.messages.get(), timeout)

    async def silence(self, seconds: float) -> bool:
        """True when nothing at all arrives for `seconds`."""
        try:
            await asyncio.wait_for(self._proto.messages.get(), seconds)
        except TimeoutError:
            return True
        return False

    async def request(self, text: str, target: tuple[str, int] | None = None) -> Response:
        """Send a request and return its final response (1xx skipped)."""
        self.send(text, target)
        while True:
            msg = await self.receive()
            if isinstance(msg, Response) and msg.status >= 200:
                return msg


class WsBrowser:
    """A browser's SIP over WebSocket (RFC 7118), as JsSIP speaks it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> WsBrowser:
        self._session = aiohttp.ClientSession()
        self.ws = await self._session.ws_connect(self.url, protocols=("sip",))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._session is not None:
            await self._session.close()

    async def send(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(text)

    async def receive(self, timeout: float = 5.0) -> Request | Response:
        assert self.ws is not None
        frame = await self.ws.receive(timeout=timeout)
        data = frame.data.encode() if isinstance(frame.data, str) else frame.data
        return parse_message(data)

    async def request(self, text: str) -> Response:
        await self.send(text)
        while True:
            msg = await self.receive()
            if isinstance(msg, Response) and msg.status >= 200:
                return msg


async def register_agent(
    phone: UdpPhone,
    user: str,
    password: str,
    second_target: tuple[str, int] | None = None,
) -> tuple[Response, Response]:
    """401 from phone.target, then the answer to that challenge (sent to `second_target`)."""
    call_id = secrets.token_hex(6)
    contact = f"<sip:{user}@{phone.address[0]}:{phone.address[1]}>"
    first = await phone.request(
        register(user, "demo.invalid", contact, phone.via, call_id=call_id, cseq=1)
    )
    auth = authorization(first, user, password, "sip:demo.invalid")
    second = await phone.request(
        register(
            user, "demo.invalid", contact, phone.via, call_id=call_id, cseq=2,
            extra=(f"Authorization: {auth}",),
        ),
        second_target,
    )  # fmt: skip
    return first, second


def invite(phone: UdpPhone, user: str, cseq: int, extra: tuple[str, ...] = ()) -> str:
    host, port = phone.address
    return "\r\n".join(
        [
            "INVITE sip:200@demo.invalid SIP/2.0",
            f"Via: {phone.via};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{user}@demo.invalid>;tag=inv{cseq}",
            "To: <sip:200@demo.invalid>",
            "Call-ID: guarded-invite",
            f"CSeq: {cseq} INVITE",
            f"Contact: <sip:{user}@{host}:{port}>",
            *extra,
            "Content-Length: 0",
            "",
            "",
        ]
    )
