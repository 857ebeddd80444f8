"""A WebRTC media leg: the node's end of a browser's ICE + DTLS-SRTP audio stream.

The browser reaches one UDP port of the node's media range (or the node's
TURN relay), which carries ICE checks (STUN), the DTLS handshake, SRTP and
SRTCP (rtcp-mux, BUNDLE of the single audio stream). The pieces come from
aiortc's stack, but not its per-frame track pipeline (an OS thread and a
decode per receiver):

- ICE: aioice's agent (`_IceAgent`). Its candidates: the host candidate of
  a socket of the `PortPool` (advertised at the configured media address),
  a server-reflexive one from each STUN server and a relay one from each
  TURN server of `IceSettings` (`[media]` stun_servers, turn_servers;
  aioice's own STUN and TURN clients), gathered in parallel within
  `GATHER_TIMEOUT`: a dead server is logged once and left out for a while
  (`switch.media.ice.ServerHealth`), the call goes on with what there is.
  `ice_policy = "relay"` advertises the relay candidates alone (a node
  behind a NAT it cannot open). Full ICE, controlling when the node
  offered and controlled when it answered (RFC 8445 §6.1.1); or ICE-lite
  (`ice_lite`, RFC 8445 §2.5: host candidate only, a=ice-lite, never
  controlling, no checks of its own: the browser's check with USE-CANDIDATE
  selects the pair), which aioice lacks and `_IceAgent` adds.
- ICE restarts (RFC 8445 §9): new ice-ufrag/ice-pwd from the browser make a
  new agent on the same sockets and candidates, with new credentials of the
  node's own for its answer; media stays on the old pair until the new one
  is nominated, and the DTLS association and SRTP keys stay. A new
  a=fingerprint makes a new DTLS handshake (and new keys).
- DTLS-SRTP (RFC 5764): aiortc's `RTCDtlsTransport` does the handshake,
  checks the browser's certificate against the a=fingerprint of its SDP and
  keys two libsrtp sessions; the node's certificate is made once per process.
- After the handshake, a packet from the browser is unprotected by libsrtp
  right in the socket's `datagram_received` (`_MediaSocket`: no STUN parse,
  no queue, no coroutine per packet; for a relayed pair aioice's TURN client
  hands it the ChannelData's payload) and handed to the relay as if it had
  come in on a plain `RtpPort`; what the relay sends toward the browser is
  protected and sent straight out of the selected pair's transport
  (`_SrtpOut.sendto`: the socket, or for a relayed pair aioice's
  `TurnTransport`, which wraps it in the TURN channel).
- RTCP (rtcp-mux): the browser's reports are read for call quality
  (`LegMedia.quality`: its loss and jitter figures, RTT from LSR/DLSR), and
  the node sends it SR/RR reports of its own, as SRTCP on the same path
  (`_BrowserRtcp`, on the `PortPool`'s report timer).

To the relay a `WebRtcLeg` is a `LegMedia` whose RTP port is a
`WebRtcPort`: pass-through needs nothing more. When the two legs share no
codec, `WebRtcLeg.transcode` puts a `PacketTranscoder` on each direction
(Opus from the browser to PCMU/PCMA for the trunk and back).

Not done here: TURN over TLS (turns:) is passed to aioice but untested;
the browser's TCP candidates are ignored; no trickle ICE (the node gathers
before it sends its SDP, and reads the browser's candidates from its SDP
alone); the node starts no ICE restart itself; sending through a TURN
relay costs a task per packet (aioice's `TurnTransport.sendto`); the SRs
of a transcoded stream give the figures (RTP clock, octets) of the stream
before transcoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

from aioice import Candidate, Connection, TransportPolicy, stun
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import (
    ICE_COMPLETED,
    ICE_FAILED,
    CandidatePair,
    StunProtocol,
    relayed_candidate,
    server_reflexive_candidate,
)
from aioice.utils import random_string
from aiortc.rtcdtlstransport import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
)
from pylibsrtp import Error as SrtpError
from pylibsrtp import Session

from .clock import media_clock
from .ice import IceServer, IceSettings
from .packet_transcoder import PacketTranscoder
from .relay import LegMedia, PortPool, RtcpPort, RtpPort
from .rtcp import Bye, RtcpError, SenderReport, build_compound, parse_compound
from .transcode import CodecChoice
from .webrtc_sdp import LocalTransport, RemoteTransport

log = logging.getLogger("switch.media")
CONNECT_TIMEOUT = 20.0  # seconds for ICE and DTLS together, as a browser's own ICE gives up
GATHER_TIMEOUT = 2.0  # seconds the STUN and TURN servers have to answer, all together
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
    A relay candidate's protocol is one too: aioice's TURN client calls it
    with what the browser sent through the relay.
    """

    srtp: Callable[[bytes], None] | None = None

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        srtp = self.srtp
        if srtp is not None and data and 127 < data[0] < 192:  # type: ignore[operator]
            srtp(data)  # type: ignore[arg-type]
        else:
            super().datagram_received(data, addr)


def _failure(exc: BaseException) -> str:
    """Why a STUN or TURN server gave no candidate, and what to check."""
    if isinstance(exc, stun.TransactionFailed):
        code, reason = exc.response.attributes.get("ERROR-CODE", (0, "error"))
        if code == 401:
            return (
                f"refused the node's credentials ({code} {reason}): check the server's "
                "username and password in [media] turn_servers, or turn_secret"
            )
        return f"refused the request ({code} {reason})"
    if isinstance(exc, stun.TransactionTimeout):
        return "no answer"
    return f"{type(exc).__name__}: {exc}"


class _IceAgent(Connection):
    """aioice's agent on the node's sockets: a host candidate from the media
    range (aioice would bind every interface on an ephemeral port; a node
    has one configured media address and a firewall that opens only its
    media range), plus what its STUN and TURN servers give (`IceSettings`).

    Also: ICE-lite (`lite`), DTLS records handed to `sink` (the leg's current
    DTLS association) instead of aioice's queue, and `successor` for an ICE
    restart on the same sockets.
    """

    def __init__(self, pool: PortPool, settings: IceSettings) -> None:
        relay = settings.policy == "relay"
        # (The relay policy also makes aioice ignore the browser's mDNS
        # candidates: relaying to one would reveal its address to the TURN server.)
        policy = TransportPolicy.RELAY if relay else TransportPolicy.ALL
        super().__init__(ice_controlling=False, components=1, transport_policy=policy)
        self._pool = pool
        self.settings = settings
        self.lite = settings.lite
        self.host: _MediaSocket | None = None  # the socket of the host candidate
        self.sink: Callable[[bytes], None] | None = None

    async def gather_candidates(self) -> None:
        if self._local_candidates_start:
            return
        self._local_candidates_start = True
        transport, protocol = await self._pool.socket(lambda: _MediaSocket(self))
        host, port = transport.get_extra_info("sockname")[:2]
        self.host = protocol  # type: ignore[assignment]
        protocol.local_candidate = Candidate(  # type: ignore[attr-defined]
            foundation=candidate_foundation("host", "udp", host),
            component=1,
            transport="udp",
            priority=candidate_priority(1, "host"),
            host=host,
            port=port,
            type="host",
        )
        try:
            reflexive, relays = await self._ask_servers(protocol)  # type: ignore[arg-type]
        except BaseException:
            transport.close()  # (cancelled: the call went away while gathering)
            raise
        relayed = [p.local_candidate for p in relays]
        if self.settings.policy == "relay" and relays:
            # Only the relays are paired and advertised; the host socket
            # stays the leg's port of the media range, unused.
            self._protocols = list(relays)
            self._local_candidates = relayed
        else:
            if self.settings.policy == "relay":
                log.warning(
                    'ICE: ice_policy = "relay" but no TURN relay was allocated: '
                    "the leg on port %d advertises its host candidate", port,
                )  # fmt: skip
            self._protocols = [protocol, *relays]  # type: ignore[list-item]
            self._local_candidates = [protocol.local_candidate, *reflexive, *relayed]  # type: ignore[attr-defined]
        self._local_candidates_end = True

    async def _ask_servers(self, host: _MediaSocket) -> tuple[list[Candidate], list[_MediaSocket]]:
        """Server-reflexive candidates (STUN, through the host socket) and relay
        sockets (TURN allocations), from the servers that answer in time."""
        settings = self.settings
        if settings.lite:
            return [], []  # a lite agent has its host candidate only (RFC 8445 §2.5)
        jobs: dict[asyncio.Future[tuple[Candidate, Any]], IceServer] = {}
        if settings.policy == "all":
            for server in settings.stun:
                if settings.health.usable(server):
                    ask = server_reflexive_candidate(host, (server.host, server.port))
                    jobs[asyncio.ensure_future(ask)] = server
        for server in settings.turn:
            if settings.health.usable(server):
                username, password = settings.node_login(server)
                allocate = relayed_candidate(
                    component=1,
                    hide_related_address=settings.policy == "relay",
                    protocol_factory=lambda: _MediaSocket(self),
                    turn_server=(server.host, server.port),
                    turn_username=username,
                    turn_password=password,
                    turn_ssl=server.scheme == "turns",
                    turn_transport=server.transport,
                )
                jobs[asyncio.ensure_future(allocate)] = server
        if not jobs:
            return [], []
        try:
            _, pending = await asyncio.wait(jobs, timeout=GATHER_TIMEOUT)
        except BaseException:
            for job in jobs:
                job.cancel()
            for job in jobs:  # allocations made meanwhile are given back
                if job.done() and not job.cancelled() and job.exception() is None:
                    relay = job.result()[1]
                    if relay is not None:
                        relay.transport.close()
            raise
        for job in pending:
            job.cancel()
        if pending:
            await asyncio.wait(pending)  # (a cancelled allocation closes its socket)
        reflexive: list[Candidate] = []
        relays: list[_MediaSocket] = []
        for job, server in jobs.items():
            if job in pending:
                settings.health.failed(server, f"no answer within {GATHER_TIMEOUT:g} s")
            elif job.exception() is not None:
                settings.health.failed(server, _failure(job.exception()))  # type: ignore[arg-type]
            else:
                settings.health.worked(server)
                candidate, relay = job.result()
                if relay is None:
                    reflexive.append(candidate)
                else:
                    relays.append(relay)
        return reflexive, relays

    @property
    def host_address(self) -> tuple[str, int]:
        assert self.host is not None
        candidate = self.host.local_candidate
        return candidate.host, candidate.port

    # -- ICE-lite (RFC 8445 §2.5): aioice implements full ICE only ---------------------------

    async def connect(self) -> None:
        if not self.lite:
            await super().connect()
            return
        if self.remote_username is None or self.remote_password is None:
            raise ConnectionError("Remote username or password is missing")
        # No checks of our own, no consent checks: the full agent checks and
        # nominates; a lite agent answers (aioice's request_received) and
        # takes the pair the full agent nominated.
        self._early_checks_done = True
        for check in self._early_checks:
            self.check_incoming(*check)
        self._early_checks.clear()
        if await self._check_list_state.get() != ICE_COMPLETED:
            raise ConnectionError("ICE negotiation failed")

    def check_incoming(
        self, message: stun.Message, addr: tuple[str, int], protocol: StunProtocol
    ) -> None:
        if not self.lite:
            super().check_incoming(message, addr, protocol)
            return
        # RFC 8445 §7.3.1.5 for a lite agent: a valid check with USE-CANDIDATE
        # selects its pair; lite agents make no triggered checks.
        if "USE-CANDIDATE" not in message.attributes or self._check_list_done:
            return
        component = protocol.local_candidate.component
        remote = Candidate(
            foundation=random_string(10),
            component=component,
            transport="udp",
            priority=message.attributes["PRIORITY"],
            host=addr[0],
            port=addr[1],
            type="prflx",
        )
        pair = CandidatePair(protocol, remote)
        pair.state = CandidatePair.State.SUCCEEDED
        pair.nominated = True
        self._nominated[component] = pair
        self._check_list_done = True
        self._check_list_state.put_nowait(ICE_COMPLETED)

    # -- DTLS records and ICE restarts ----------------------------------------------------

    def data_received(self, data: bytes, component: int) -> None:
        if self.sink is not None:
            self.sink(data)
        else:
            super().data_received(data, component)

    def successor(self, keep_credentials: bool = False) -> _IceAgent:
        """The agent of a new ICE session (a restart, RFC 8445 §9) on this one's
        sockets and candidates, with new local credentials unless kept; the
        roles stay. This one stops checking (its sockets are the new one's)."""
        new = _IceAgent(self._pool, self.settings)
        if keep_credentials:
            new._local_username, new._local_password = self._local_username, self._local_password
        new.ice_controlling, new.lite, new.sink = self.ice_controlling, self.lite, self.sink
        new._tie_breaker = self._tie_breaker
        new.host, self.host = self.host, None
        new._protocols, self._protocols = self._protocols, []
        new._local_candidates, self._local_candidates = self._local_candidates, []
        new._local_candidates_start = new._local_candidates_end = True
        for protocol in {*new._protocols, new.host}:
            protocol.receiver = new  # type: ignore[union-attr]
        self.retire()
        return new

    def retire(self) -> None:
        """No more checks nor consent checks (whose failure would close the
        sockets this agent has handed on)."""
        self._closing = True
        if self._query_consent_task is not None:
            self._query_consent_task.cancel()
            self._query_consent_task = None
        for pair in self._check_list:
            if pair.task is not None:
                pair.task.cancel()
        if not self._check_list_done:
            self._check_list_done = True
            self._check_list_state.put_nowait(ICE_FAILED)

    async def close(self) -> None:
        host = self.host
        await super().close()
        if host is not None and not host.transport.is_closing():
            await host.close()  # (with the relay policy it is not among the protocols)


class _IceLink:
    """What `RTCDtlsTransport` wants of an ICE transport: a role, receive and
    send. One per DTLS association: the leg's ICE agent may change (a
    restart) under it; a new fingerprint makes a new association and link."""

    def __init__(self, leg: WebRtcLeg) -> None:
        self.leg = leg
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    @property
    def role(self) -> str:
        return "controlling" if self.leg.agent.ice_controlling else "controlled"

    async def _recv(self) -> bytes:
        data = await self.queue.get()
        if data is None:
            raise ConnectionError("the DTLS association was replaced")
        return data

    async def _send(self, data: bytes) -> None:
        pair = self.leg.pair
        if pair is None:
            raise ConnectionError("ICE is not connected")
        await pair.protocol.send_data(data, pair.remote_addr)


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
    """The `transport` a relay port sends to: protect, then out of the selected
    pair's transport (a socket, or aioice's `TurnTransport` for a relayed pair)."""

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
            self.protected(packet)

    def protected(self, packet: bytes) -> None:
        """Protect one packet and send it to the browser, as it is."""
        port = self.port
        session, socket = port.srtp_out, port.socket
        if session is None or socket is None or self.closing:
            return
        try:
            # (bytes(): a rewritten stream's packets are bytearrays, which
            # libsrtp refuses; for bytes it is the same object.)
            socket.sendto(session.protect(bytes(packet)), port.remote)
        except SrtpError as exc:  # e.g. a replayed or malformed packet
            log.debug("SRTP protect failed: %s", exc)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.port.agent_sockname if name == "sockname" else default

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


class _SrtcpOut(_SrtpOut):
    """The `transport` of a WebRTC leg's RTCP port: SRTCP on the same path."""

    def sendto(self, data: bytes, addr: object = None) -> None:
        port = self.port
        session, socket = port.srtp_out, port.socket
        if session is None or socket is None or self.closing:
            return
        try:
            socket.sendto(session.protect_rtcp(data), port.remote)
        except SrtpError as exc:
            log.debug("SRTCP protect failed: %s", exc)


class _BrowserRtcp(RtcpPort):
    """The RTCP of a WebRTC leg, multiplexed on its ICE path (rtcp-mux).

    The node terminates the browser's SRTP session, so it reports to the
    browser itself (SR/RR and CNAME, protected: `_SrtcpOut`), on the
    `PortPool`'s report timer, and never passes on the far side's reports
    (of another stream when transcoding). The browser's reports are read in
    `WebRtcPort.rtcp_from_browser`.

    `remote` stays None: the far side's `RtcpPort` then relays nothing into
    this one; and `last_report` stays 0, since the browser's reports are not
    relayed to the far side, whose port must keep reporting on its own.
    """

    rtp: WebRtcPort | None

    def generating(self, now: float) -> bool:
        return True

    def send_report(self, now: float, bye: bool = False) -> None:
        rtp = self.rtp
        if rtp is None or rtp.remote is None or rtp.srtp_out is None or self.closed:
            return  # not connected (yet)
        packets = self.report(now, time.time())
        first = packets[0]
        if bye:
            packets.append(Bye((first.ssrc,)))  # type: ignore[union-attr]
        assert self.transport is not None
        self.transport.sendto(build_compound(packets), None)  # type: ignore[arg-type]
        self.sent += 1
        self.generated += 1
        if isinstance(first, SenderReport):
            self._sent_sr(first.info.ntp, now)


class WebRtcPort(RtpPort):
    """The RTP port of a WebRTC leg, as the relay sees it (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.transport = _SrtpOut(self)  # type: ignore[assignment]
        self.srtp_out = None  # libsrtp session toward the browser, after the handshake
        # The selected pair's way out: its socket, or aioice's TurnTransport (relayed).
        self.socket: asyncio.DatagramTransport | None = None
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

    def tick(self, now: float, send: int, skip: int) -> None:
        """The media clock's 20 ms: the transcoded frames due, both ways
        (their jitter buffers decide what is due, whatever the clock owes)."""
        inbound, outbound = self.inbound, self.outbound
        if inbound is not None:
            addr = self.remote or ("0.0.0.0", 0)
            for packet in inbound.tick(now):
                self.datagram_received(packet, addr)
        if outbound is not None:
            out = self.transport
            for packet in outbound.tick(now):
                out.protected(packet)

    def rtcp_from_browser(self, data: bytes) -> None:
        """Decrypted RTCP: read for call quality (reception figures, RTT)."""
        rtcp = self.rtcp
        if rtcp is None:
            return
        now = time.monotonic()  # (when it came: the RTT is measured to this moment)
        rtcp.received += 1
        rtcp.last_received = now
        try:
            rtcp._learn(parse_compound(data), now)
        except RtcpError as exc:
            rtcp.malformed += 1
            log.debug("RTCP from the browser dropped: %s", exc)

    def expect(self, remote: tuple[str, int]) -> None:
        """The browser's address comes from ICE, not from its SDP's c= line."""

    @property
    def port(self) -> int:
        assert self.agent_sockname is not None
        return self.agent_sockname[1]


class WebRtcLeg(LegMedia):
    """One call's leg toward a browser. Make one with `open`, give its
    `local` end to the browser in SDP, `start` it with the browser's end
    (and again with each new SDP of the browser: ICE restarts)."""

    rtp: WebRtcPort

    def __init__(self, rtp: WebRtcPort, rtcp: RtcpPort, agent: _IceAgent) -> None:
        super().__init__(rtp, rtcp)
        rtp.rtcp = rtcp
        self.agent = agent  # the agent of the current ICE session (a restart makes another)
        agent.sink = self._dtls_data
        self.pair: CandidatePair | None = None  # where media flows: the selected pair
        self.link = _IceLink(self)
        self.dtls = _Dtls(self.link, rtp)
        self.remote: RemoteTransport | None = None  # the browser's end, as last started
        self.task: asyncio.Task[None] | None = None  # the (last) connection or restart
        self.connected = asyncio.get_running_loop().create_future()
        self.failure = ""  # why the connection failed, for the log and tests
        self.choice: CodecChoice | None = None  # what `transcode` was told last
        self.restarts = 0  # ICE restarts begun
        self._role_set = False  # by the first SDP (`local`), for the session
        self._rx: Session | None = None  # libsrtp session from the browser, once keyed

    @classmethod
    async def open(cls, pool: PortPool, ice: IceSettings | None = None) -> WebRtcLeg:
        """A leg with its ICE socket bound in the media range (OSError if none is
        free) and its candidates gathered (at most GATHER_TIMEOUT for servers)."""
        agent = _IceAgent(pool, ice if ice is not None else IceSettings())
        await agent.gather_candidates()
        rtp = WebRtcPort()
        rtp.agent_sockname = agent.host_address
        # RTCP is multiplexed on the one port: this port has no socket of its
        # own; it reads what the browser reports and reports to it.
        rtcp = _BrowserRtcp(pool.cname)
        rtcp.transport = _SrtcpOut(rtp)  # type: ignore[assignment]
        pool.add_reports(rtcp)
        return cls(rtp, rtcp, agent)

    def local(self, address: str, setup: str) -> LocalTransport:
        """The node's end for the SDP sent to the browser; `address` is the
        configured media address (what the browser can reach): the host
        candidate is advertised there.

        The ICE role goes with the first one (RFC 8445 §6.1.1): controlling
        when the node offers (`setup` actpass), controlled when it answers
        or runs ICE-lite; it stays for the session, restarts included (§9).
        It must be right before the other side's first check arrives, which
        can be before `start` (a browser answering starts its checks at once).
        """
        agent = self.agent
        if not self._role_set:
            agent.ice_controlling = setup == "actpass" and not agent.lite
            self._role_set = True
        host = agent.host_address
        lines = []
        for candidate in agent.local_candidates:
            if candidate.type == "host":
                candidate = Candidate(
                    foundation=candidate.foundation,
                    component=1,
                    transport="udp",
                    priority=candidate.priority,
                    host=address,
                    port=candidate.port,
                    type="host",
                )
            elif candidate.type == "srflx" and (candidate.host, candidate.port) == (
                address,
                host[1],
            ):
                continue  # the advertised host candidate already (RFC 8445 §5.1.3)
            lines.append(candidate.to_sdp())
        return LocalTransport(
            ufrag=agent.local_username,
            pwd=agent.local_password,
            fingerprint=fingerprint(),
            setup=setup,
            candidates=tuple(lines),
            ice_lite=agent.lite,
        )

    def answer_setup(self) -> str:
        """The a=setup of the node's answer to the browser: "active" (the node
        takes the DTLS client role, RFC 5763 §5), unless the association
        already made it the server (the browser answered the node's offer with
        "active"): a browser's later offer (hold, resume) then gets "passive",
        since the roles of an association do not change (RFC 8842 §5.5);
        Chromium rejects an answer that would swap them."""
        return "passive" if self.dtls._role == "server" else "active"

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
        clock = media_clock()
        if choice is None or choice.passthrough:
            self.rtp.inbound = self.rtp.outbound = None
            self.rtp._count = self.rtp.reception.update
            clock.remove(self.rtp.tick)
            return
        # Buffered: decoding wants each direction's frames in order, losses
        # concealed; the media clock plays them out (see packet_transcoder).
        self.rtp.inbound = PacketTranscoder(
            choice.a, choice.b, choice.a_event, choice.b_event, buffered=True
        )
        self.rtp.outbound = PacketTranscoder(
            choice.b, choice.a, choice.b_event, choice.a_event, buffered=True
        )
        last = self.rtp.sending.last
        if last is not None:
            # The browser's stream goes on where it left off (a channel's
            # prompts, say): a sequence number behind it would be taken for a
            # replay by SRTP (RFC 3711 §3.3.2) and dropped for minutes.
            self.rtp.outbound.seq = (_HEADER.unpack_from(last)[2] + 1) & 0xFFFF
        self.rtp._count = _counted  # `WebRtcPort.from_browser` counts the originals
        clock.remove(self.rtp.tick)
        clock.add(self.rtp.tick)

    def start(self, remote: RemoteTransport, offerer: bool) -> None:
        """Connect to the browser: ICE, then DTLS; `offerer`: the node sent the offer.

        Again with the same ICE and DTLS end (a 183 then a 200, a re-INVITE
        for hold): nothing changes. With a new ice-ufrag/ice-pwd: an ICE
        restart (RFC 8445 §9), with new credentials of the node's own for
        its answer (call `local` after this), the DTLS association and SRTP
        keys kept. With a new a=fingerprint: a new DTLS handshake.
        """
        if self.rtp.transport.closing:
            return
        current = self.remote
        self.remote = remote
        if current is None:
            self.task = asyncio.ensure_future(self._connect(remote, offerer, True, True))
            return
        restart = (remote.ufrag, remote.pwd) != (current.ufrag, current.pwd)
        redo_dtls = set(remote.fingerprints) != set(current.fingerprints)
        if not restart and not redo_dtls:
            return
        if self.task is not None and not self.task.done():
            self.task.cancel()  # (a connection or restart still under way: this one replaces it)
        ice = restart or self.pair is None
        if ice:
            # The offerer's credentials are in its offer already; an
            # answerer restarting gets new ones (RFC 8839 §4.4.1.1.1).
            self.agent = self.agent.successor(keep_credentials=offerer or not restart)
            self.restarts += restart
            log.info("WebRTC leg on port %d: ICE restart", self.port)
        handshake = redo_dtls or self._rx is None
        if handshake and self.dtls.state != "new":
            # A new DTLS association: its records go to a new link from now on.
            old, self.link = self.link, _IceLink(self)
            old.queue.put_nowait(None)
            self.dtls = _Dtls(self.link, self.rtp)
        self.task = asyncio.ensure_future(self._connect(remote, offerer, ice, handshake))

    async def _connect(
        self, remote: RemoteTransport, offerer: bool, ice: bool, handshake: bool
    ) -> None:
        self.failure = ""
        try:
            await asyncio.wait_for(self._negotiate(remote, offerer, ice, handshake),
                                   CONNECT_TIMEOUT)  # fmt: skip
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            self.failure = f"no ICE and DTLS connection within {CONNECT_TIMEOUT:g} s"
        except Exception as exc:  # a browser that fails to connect is logged, not raised
            self.failure = self.failure or f"{type(exc).__name__}: {exc}"
        if self.failure:
            if self._rx is not None:
                self.failure += " (media stays on the previous path)"
            log.warning("WebRTC leg on port %d: %s", self.port, self.failure)
            if not self.connected.done():
                self.connected.set_result(False)

    async def _negotiate(
        self, remote: RemoteTransport, offerer: bool, ice: bool, handshake: bool
    ) -> None:
        if ice:
            agent = self.agent
            await self._ice(agent, remote)  # ConnectionError when no pair works
            pair = agent._nominated[1]
            self.pair = pair
            self.rtp.remote = pair.remote_addr
            # The pair's own way out: a socket, or the TURN channel of a relay.
            self.rtp.socket = pair.protocol.transport
            if self._rx is not None:
                self._fast_path()
                log.info("WebRTC leg on port %d: ICE restarted, media via %s to %s:%d",
                         self.port, pair.local_candidate.type, *pair.remote_addr)  # fmt: skip
        if handshake:
            await self._handshake(remote, offerer)

    async def _ice(self, agent: _IceAgent, remote: RemoteTransport) -> None:
        agent.remote_username, agent.remote_password = remote.ufrag, remote.pwd
        if remote.ice_lite:  # the full agent controls (RFC 8445 §6.1.1)
            agent.remote_is_lite, agent.lite, agent.ice_controlling = True, False, True
        for line in remote.candidates:
            try:
                candidate = Candidate.from_sdp(line)
            except (ValueError, IndexError):
                log.debug("ICE candidate ignored: %r", line)
                continue
            if candidate.transport.lower() == "udp":
                await agent.add_remote_candidate(candidate)
        await agent.add_remote_candidate(None)
        await agent.connect()

    async def _handshake(self, remote: RemoteTransport, offerer: bool) -> None:
        # RFC 5763 §5: the answerer is the DTLS client when it said "active"
        # (which the node does), the server when the browser said so.
        client = remote.setup == "passive" or (remote.setup == "actpass" and not offerer)
        dtls = self.dtls
        dtls._set_role("client" if client else "server")
        fingerprints = [RTCDtlsFingerprint(a, v) for a, v in remote.fingerprints]
        await dtls.start(RTCDtlsParameters(fingerprints=fingerprints))
        if dtls.state != "connected":
            self.failure = "DTLS handshake failed (certificate does not match a=fingerprint?)"
            return
        self._rx = dtls._rx_srtp
        self.rtp.srtp_out = dtls._tx_srtp
        self._fast_path()
        if not self.connected.done():
            self.connected.set_result(True)
        assert self.pair is not None
        log.info("WebRTC leg on port %d connected to %s:%d (%s)", self.port,
                 *self.pair.remote_addr, self.pair.local_candidate.type)  # fmt: skip

    def _fast_path(self) -> None:
        """SRTP from the browser straight to `_srtp_in`, on every socket of the
        agent (the browser may switch pairs, a restart before the node)."""
        for protocol in self.agent._protocols:
            protocol.srtp = self._srtp_in  # type: ignore[attr-defined]

    def _dtls_data(self, data: bytes) -> None:
        """What the agent received that is neither STUN nor (after the handshake) SRTP."""
        self.link.queue.put_nowait(data)

    def _srtp_in(self, data: bytes) -> None:
        """The fast path in: an SRTP or SRTCP packet from the browser (RFC 5761 §4)."""
        session = self._rx
        try:
            if 191 < data[1] < 224 if len(data) > 1 else False:
                self.rtp.rtcp_from_browser(session.unprotect_rtcp(data))  # type: ignore[union-attr]
            else:
                self.rtp.from_browser(session.unprotect(data))  # type: ignore[union-attr]
        except SrtpError as exc:  # forged, replayed or damaged: dropped
            self.rtp.srtp_errors += 1
            log.debug("SRTP from the browser dropped: %s", exc)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # no loop: the process is ending
            media_clock().remove(self.rtp.tick)
        self.rtcp.close()  # a BYE to the browser (RFC 3550 §6.6), while the path is up
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
