"""A WebRTC media leg: the node's end of a browser's ICE + DTLS-SRTP audio stream.

The browser reaches one UDP port of the node's media range, which carries
ICE checks (STUN), the DTLS handshake, SRTP and SRTCP (rtcp-mux, BUNDLE of
the single audio stream). The pieces come from aiortc's stack, but not its
per-frame track pipeline (an OS thread and a decode per receiver):

- ICE: aioice's agent, with one host candidate of our own making (the
  configured media address, a port from the `PortPool`), full ICE as the
  controlling agent when the node offered and the controlled one when it
  answered (RFC 8445 §6.1.1).
- DTLS-SRTP (RFC 5764): aiortc's `RTCDtlsTransport` does the handshake,
  checks the browser's certificate against the a=fingerprint of its SDP and
  keys two libsrtp sessions; the node's certificate is made once per process.
- After the handshake, a packet from the browser is unprotected by libsrtp
  right in the socket's `datagram_received` (`_MediaSocket`: no STUN parse,
  no queue, no coroutine per packet) and handed to the relay as if it had
  come in on a plain `RtpPort`; what
  the relay sends toward the browser is protected and sent straight out of
  the ICE socket (`_SrtpOut.sendto`, no coroutine on the way out).

To the relay a `WebRtcLeg` is a `LegMedia` whose RTP port is a
`WebRtcPort`: pass-through needs nothing more. When the two legs share no
codec, `WebRtcLeg.transcode` puts a `PacketTranscoder` on each direction
(Opus from the browser to PCMU/PCMA for the trunk and back).

Not done here yet: TURN/STUN servers (the node advertises its host
candidate only), RTCP reports toward the browser (the node reads the
browser's reports for call quality but sends none back), ICE restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

from aioice import Candidate, Connection
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import StunProtocol
from aiortc.rtcdtlstransport import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
)
from pylibsrtp import Error as SrtpError

from .packet_transcoder import PacketTranscoder
from .relay import LegMedia, PortPool, RtcpPort, RtpPort
from .rtcp import RtcpError, parse_compound
from .transcode import CodecChoice
from .webrtc_sdp import LocalTransport, RemoteTransport

log = logging.getLogger("switch.media")
CONNECT_TIMEOUT = 20.0  # seconds for ICE and DTLS together, as a browser's own ICE gives up
FINGERPRINT_ALGORITHM = "sha-256"
_certificate: RTCCertificate | None = None
_stopping: set[asyncio.Task[None]] = set()  # legs' DTLS and ICE shutting down


def certificate() -> RTCCertificate:
    """The node's DTLS certificate (ECDSA P-256, self-signed: WebRTC trusts the
    fingerprint in SDP, not a CA), made once per process."""
    global _certificate
    if _certificate is None:
        _certificate = RTCCertificate.generateCertificate()
    return _certificate


def fingerprint() -> tuple[str, str]:
    """(algorithm, digest) of the node's certificate, as a=fingerprint states it."""
    for f in certificate().getFingerprints():
        if f.algorithm == FINGERPRINT_ALGORITHM:
            return f.algorithm, f.value
    raise RuntimeError("aiortc offers no sha-256 fingerprint")  # pragma: no cover


class _MediaSocket(StunProtocol):
    """aioice's socket protocol, with a fast path for SRTP once the leg is up.

    aioice tries every datagram as STUN (a parse and an exception for each
    media packet), then queues it for aiortc's receive coroutine. After the
    handshake, SRTP and SRTCP (first byte 128-191, RFC 7983) go straight to
    `srtp` instead; STUN (consent checks) and DTLS still take aioice's way.
    """

    srtp: Callable[[bytes], None] | None = None

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        srtp = self.srtp
        if srtp is not None and data and 127 < data[0] < 192:  # type: ignore[operator]
            srtp(data)  # type: ignore[arg-type]
        else:
            super().datagram_received(data, addr)


class _IceAgent(Connection):
    """aioice's agent with one host candidate: a socket of the media range.

    (aioice would bind every interface on an ephemeral port and ask a STUN
    server; a node has one configured media address and a firewall that
    opens only its media range.)
    """

    def __init__(self, pool: PortPool) -> None:
        super().__init__(ice_controlling=False, components=1)
        self._pool = pool

    async def gather_candidates(self) -> None:
        if self._local_candidates_start:
            return
        self._local_candidates_start = True
        transport, protocol = await self._pool.socket(lambda: _MediaSocket(self))
        host, port = transport.get_extra_info("sockname")[:2]
        protocol.local_candidate = Candidate(  # type: ignore[attr-defined]
            foundation=candidate_foundation("host", "udp", host),
            component=1,
            transport="udp",
            priority=candidate_priority(1, "host"),
            host=host,
            port=port,
            type="host",
        )
        self._protocols.append(protocol)  # type: ignore[arg-type]
        self._local_candidates.append(protocol.local_candidate)  # type: ignore[attr-defined]
        self._local_candidates_end = True


class _IceLink:
    """What `RTCDtlsTransport` wants of an ICE transport: a role, receive and send."""

    def __init__(self, agent: _IceAgent) -> None:
        self.agent = agent
        self._recv = agent.recv
        self._send = agent.send

    @property
    def role(self) -> str:
        return "controlling" if self.agent.ice_controlling else "controlled"


class _Dtls(RTCDtlsTransport):
    """aiortc's DTLS transport, its decrypted packets handed to our port
    rather than parsed into objects for its track pipeline."""

    def __init__(self, link: _IceLink, port: WebRtcPort) -> None:
        super().__init__(link, [certificate()])  # type: ignore[arg-type]
        self._port = port

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        self._port.from_browser(data)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        self._port.rtcp_from_browser(data)


_HEADER = struct.Struct("!BBHII")


def _counted(ssrc: int, seq: int, ts: int, payload_type: int, now: float) -> bool:
    """The relay's count of a transcoded packet: done already, on the original."""
    return False


class _SrtpOut:
    """The `transport` a relay port sends to: protect, then out of the ICE socket."""

    def __init__(self, port: WebRtcPort) -> None:
        self.port = port
        self.closing = False

    def sendto(self, data: bytes, addr: object = None) -> None:
        port = self.port
        session, socket = port.srtp_out, port.socket
        if session is None or socket is None or self.closing:
            return  # not connected yet: nothing can reach the browser
        packets = port.outbound.convert(data) if port.outbound is not None else (data,)
        for packet in packets:
            try:
                socket.sendto(session.protect(packet), port.remote)
            except SrtpError as exc:  # e.g. a replayed or malformed packet
                log.debug("SRTP protect failed: %s", exc)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.port.agent_sockname if name == "sockname" else default

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


class WebRtcPort(RtpPort):
    """The RTP port of a WebRTC leg, as the relay sees it (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.transport = _SrtpOut(self)  # type: ignore[assignment]
        self.srtp_out = None  # libsrtp session toward the browser, after the handshake
        self.socket: asyncio.DatagramTransport | None = None  # the ICE pair's socket
        self.agent_sockname: tuple[str, int] | None = None
        self.inbound: PacketTranscoder | None = None  # browser -> the other leg
        self.outbound: PacketTranscoder | None = None  # the other leg -> browser
        self.rtcp: RtcpPort | None = None
        self.srtp_errors = 0  # packets that failed authentication, dropped

    def from_browser(self, data: bytes) -> None:
        """A decrypted RTP packet from the browser: into the relay."""
        addr = self.remote or ("0.0.0.0", 0)
        if self.inbound is None:
            self.datagram_received(data, addr)
            return
        # Transcoding: the leg's statistics are of the browser's own stream
        # (its sequence numbers and clock), counted here; what it becomes is
        # relayed without being counted again (see `WebRtcLeg.transcode`).
        try:
            _, flags, seq, ts, ssrc = _HEADER.unpack_from(data)
        except struct.error:
            return
        if flags & 0x7F in (self.inbound.source_pt, self.inbound.source_event_pt):
            self.reception.update(ssrc, seq, ts, flags & 0x7F, time.monotonic())
        for packet in self.inbound.convert(data):
            self.datagram_received(packet, addr)

    def rtcp_from_browser(self, data: bytes) -> None:
        """Decrypted RTCP: read for call quality (reception figures, RTT)."""
        if self.rtcp is None:
            return
        try:
            self.rtcp._learn(parse_compound(data), self.last_received)
        except RtcpError as exc:
            self.rtcp.malformed += 1
            log.debug("RTCP from the browser dropped: %s", exc)

    def expect(self, remote: tuple[str, int]) -> None:
        """The browser's address comes from ICE, not from its SDP's c= line."""

    @property
    def port(self) -> int:
        assert self.agent_sockname is not None
        return self.agent_sockname[1]


class WebRtcLeg(LegMedia):
    """One call's leg toward a browser. Make one with `open`, give its
    `local` end to the browser in SDP, `start` it with the browser's end."""

    rtp: WebRtcPort

    def __init__(self, rtp: WebRtcPort, rtcp: RtcpPort, agent: _IceAgent) -> None:
        super().__init__(rtp, rtcp)
        rtp.rtcp = rtcp
        self.agent = agent
        self.dtls = _Dtls(_IceLink(agent), rtp)
        self.task: asyncio.Task[None] | None = None
        self.connected = asyncio.get_running_loop().create_future()
        self.failure = ""  # why the connection failed, for the log and tests
        self.choice: CodecChoice | None = None  # what `transcode` was told last

    @classmethod
    async def open(cls, pool: PortPool) -> WebRtcLeg:
        """A leg with its ICE socket bound in the media range (OSError if none is free)."""
        agent = _IceAgent(pool)
        await agent.gather_candidates()
        rtp = WebRtcPort()
        rtp.agent_sockname = agent.local_candidates[0].host, agent.local_candidates[0].port
        # RTCP is multiplexed on the one port: this RtcpPort has no socket of
        # its own; it keeps what the browser reports (`LegMedia.quality`).
        return cls(rtp, RtcpPort(pool.cname), agent)

    def local(self, address: str, setup: str) -> LocalTransport:
        """The node's end for the SDP sent to the browser; `address` is the
        configured media address (what the browser can reach).

        The ICE role goes with it (RFC 8445 §6.1.1): controlling when the
        node offers (`setup` actpass), controlled when it answers. It must
        be right before the other side's first check arrives, which can be
        before `start` (a browser answering starts its checks at once).
        """
        self.agent.ice_controlling = setup == "actpass"
        candidate = self.agent.local_candidates[0]
        advertised = Candidate(
            foundation=candidate.foundation,
            component=1,
            transport="udp",
            priority=candidate.priority,
            host=address,
            port=candidate.port,
            type="host",
        )
        return LocalTransport(
            ufrag=self.agent.local_username,
            pwd=self.agent.local_password,
            fingerprint=fingerprint(),
            setup=setup,
            candidates=(advertised.to_sdp(),),
        )

    def expect(self, remote: tuple[str, int], clock_rates: object = None) -> None:
        if clock_rates is not None:
            self.rtp.reception.clock_rates = clock_rates  # type: ignore[assignment]
            self.rtp.reception.payload_type = -1

    def transcode(self, choice: CodecChoice | None) -> None:
        """`choice.a`: this leg's codec, `choice.b`: the other leg's. Pass-through
        (or None) relays packets as they are. The same choice again (a 183's
        answer, then the 200's) keeps the transcoders: the streams go on."""
        if choice == self.choice:
            return
        self.choice = choice
        if choice is None or choice.passthrough:
            self.rtp.inbound = self.rtp.outbound = None
            self.rtp._count = self.rtp.reception.update
            return
        self.rtp.inbound = PacketTranscoder(choice.a, choice.b, choice.a_event, choice.b_event)
        self.rtp.outbound = PacketTranscoder(choice.b, choice.a, choice.b_event, choice.a_event)
        self.rtp._count = _counted  # `WebRtcPort.from_browser` counts the originals

    def start(self, remote: RemoteTransport, offerer: bool) -> None:
        """Connect to the browser: ICE, then DTLS. Once; later calls (a 183 then
        a 200 with the same SDP, a re-INVITE) change nothing."""
        if self.task is None:
            self.task = asyncio.ensure_future(self._connect(remote, offerer))

    async def _connect(self, remote: RemoteTransport, offerer: bool) -> None:
        try:
            await asyncio.wait_for(self._handshake(remote, offerer), CONNECT_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a browser that fails to connect is logged, not raised
            self.failure = self.failure or f"{type(exc).__name__}: {exc}"
        if self.failure:
            log.warning("WebRTC leg on port %d: %s", self.port, self.failure)
            if not self.connected.done():
                self.connected.set_result(False)

    async def _handshake(self, remote: RemoteTransport, offerer: bool) -> None:
        agent = self.agent
        agent.remote_username, agent.remote_password = remote.ufrag, remote.pwd
        agent.remote_is_lite = remote.ice_lite
        for line in remote.candidates:
            try:
                candidate = Candidate.from_sdp(line)
            except (ValueError, IndexError):
                log.debug("ICE candidate ignored: %r", line)
                continue
            if candidate.transport.lower() == "udp":
                await agent.add_remote_candidate(candidate)
        await agent.add_remote_candidate(None)
        await agent.connect()  # ConnectionError when no pair works
        # RFC 5763 §5: the answerer is the DTLS client when it said "active"
        # (which the node does), the server when the browser said so.
        client = remote.setup == "passive" or (remote.setup == "actpass" and not offerer)
        self.dtls._set_role("client" if client else "server")
        fingerprints = [RTCDtlsFingerprint(a, v) for a, v in remote.fingerprints]
        await self.dtls.start(RTCDtlsParameters(fingerprints=fingerprints))
        if self.dtls.state != "connected":
            self.failure = "DTLS handshake failed (certificate does not match a=fingerprint?)"
            return
        pair = agent._nominated[1]
        self.rtp.remote = pair.remote_addr
        self.rtp.socket = pair.protocol.transport
        self.rtp.srtp_out = self.dtls._tx_srtp
        pair.protocol.srtp = self._srtp_in
        self.connected.set_result(True)
        log.info("WebRTC leg on port %d connected to %s:%d", self.port, *pair.remote_addr)

    def _srtp_in(self, data: bytes) -> None:
        """The fast path in: an SRTP or SRTCP packet from the browser (RFC 5761 §4)."""
        session = self.dtls._rx_srtp
        try:
            if 191 < data[1] < 224 if len(data) > 1 else False:
                self.rtp.rtcp_from_browser(session.unprotect_rtcp(data))
            else:
                self.rtp.from_browser(session.unprotect(data))
        except SrtpError as exc:  # forged, replayed or damaged: dropped
            self.rtp.srtp_errors += 1
            log.debug("SRTP from the browser dropped: %s", exc)

    def close(self) -> None:
        self.rtp.transport.close()
        if self.task is not None:
            self.task.cancel()
        if not self.connected.done():
            self.connected.set_result(False)
        with contextlib.suppress(RuntimeError):  # no loop: the process is ending
            task = asyncio.get_running_loop().create_task(self._stop())
            _stopping.add(task)  # (a task nobody holds may be collected unfinished)
            task.add_done_callback(_stopping.discard)

    async def _stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.dtls.stop()
        with contextlib.suppress(Exception):
            await self.agent.close()
