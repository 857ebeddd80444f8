"""The RTP relay: media of a call flows through the node, leg to leg, undecoded.

Each leg of a call gets a pair of UDP ports from the configured range (RTP
on an even port, RTCP on the next). A packet that arrives on leg A's port
leaves from leg B's port to B's media address, and the other way round:
the fast path, no decoding, headers untouched.

When the source a phone hears changes (a transfer puts someone else on the
other leg), the relay rewrites SSRC, sequence number and timestamp so that
the phone still gets one continuous stream (`switch.media.rtp`). RTCP is
passed on while both streams are untouched and the far side sends it;
otherwise the node sends each phone reports of its own (`switch.media.rtcp`).
Either way it reads what each phone reports: `LegMedia.quality()`.

Phones behind NAT announce addresses nobody can reach, so each side
"latches" (symmetric RTP): once a packet arrives from a leg's endpoint,
its source address is where that leg's media goes, whatever its SDP said.

`anchor()` rewrites an SDP offer or answer so that the far side sends to
our port, and tells where the near side said it listens.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import random
import secrets
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..sip.sdp import STATIC_PAYLOAD_TYPES, Connection, SdpError, parse_sdp
from .quality import Estimate, QualityError, leg_estimate
from .rtcp import (
    MIN_INTERVAL,
    Bye,
    Packet,
    ReceiverReport,
    ReportBlock,
    RtcpError,
    SenderInfo,
    SenderReport,
    SourceDescription,
    build_compound,
    ntp_middle,
    ntp_timestamp,
    parse_compound,
    report_block,
    report_interval,
    round_trip,
)
from .rtp import FIXED_HEADER as _RTP_HEADER
from .rtp import Reception, Sending

log = logging.getLogger("switch.media")
_monotonic = time.monotonic
# A far side that has sent no RTCP for this long (or since the leg began)
# sends none: the node reports to this side in its place.
FAR_SILENT = 2.5 * MIN_INTERVAL
REPORT_TICK = 0.25  # seconds between looks at which legs are due an RTCP report


class RelayPort(asyncio.DatagramProtocol):
    """One UDP socket of one leg; what it receives goes out of its peer."""

    __slots__ = ("last_received", "latched", "peer", "received", "remote", "sent", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: RelayPort | None = None
        self.remote: tuple[str, int] | None = None  # where this leg's endpoint is
        self.latched = False
        self.received = 0
        self.sent = 0
        self.last_received = 0.0  # monotonic seconds; 0 = never

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        if self.remote != addr:
            # Symmetric RTP: the endpoint is where its packets come from.
            self.remote = (addr[0], addr[1])
            self.latched = True
        self.received += 1
        self.last_received = time.monotonic()
        peer = self.peer
        if peer is not None and peer.remote is not None and peer.transport is not None:
            peer.transport.sendto(data, peer.remote)
            peer.sent += 1

    def expect(self, remote: tuple[str, int]) -> None:
        """Where the SDP says this leg listens; a latched address wins over it."""
        if not self.latched:
            self.remote = remote

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[1]

    @property
    def closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class RtpPort(RelayPort):
    """A leg's RTP socket: keeps statistics on what its endpoint sends, and
    keeps what it sends to its endpoint one continuous stream.

    Two hooks let the node itself take part in a leg's media:

    - taps (`add_tap()`, `remove_tap()`): called with every RTP packet from
      this leg's endpoint, before it is relayed (a recorder, a DTMF
      detector, an application that answered the call). They must be quick
      and must not raise: they run on the fast path. A leg without taps
      pays one attribute test per packet. A tap that returns True takes
      the packet: the relay does not forward it (a DTMF bridge that drops
      or renumbers packets forwards them itself, with `emit()`).
    - `emit()`: sends a packet the node made (a prompt, a tone, a DTMF event)
      to this leg's endpoint, in the same continuous stream as what is
      relayed to it before and after.
    """

    __slots__ = ("_count", "_taps", "reception", "sending", "tap")
    peer: RtpPort | None

    def __init__(self) -> None:
        super().__init__()
        self.reception = Reception()  # the stream from this leg's endpoint
        self.sending = Sending()  # the stream to this leg's endpoint
        self._count = self.reception.update  # bound once: the fast path calls it
        self.tap: Callable[[bytes], bool | None] | None = None  # what the fast path calls
        self._taps: list[Callable[[bytes], bool | None]] = []

    def add_tap(self, tap: Callable[[bytes], bool | None]) -> None:
        """Call `tap` with each RTP packet from this leg's endpoint, from now on
        (a packet for which it returns True is not relayed)."""
        self._taps.append(tap)
        self._set_tap()

    def remove_tap(self, tap: Callable[[bytes], bool | None]) -> None:
        """Stop calling `tap` (no error if it was not there)."""
        if tap in self._taps:
            self._taps.remove(tap)
        self._set_tap()

    def _set_tap(self) -> None:
        taps = tuple(self._taps)
        if not taps:
            self.tap = None
        elif len(taps) == 1:
            self.tap = taps[0]
        else:

            def fan_out(data: bytes) -> bool:
                taken = False
                for tap in taps:
                    if tap(data):
                        taken = True
                return taken

            self.tap = fan_out

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        # The fast path: every relayed packet comes through here, so it is
        # written for speed (locals, one call on the usual way through).
        now = _monotonic()
        if self.remote != addr:
            self.remote = (addr[0], addr[1])
            self.latched = True
        self.received += 1
        self.last_received = now
        out = self.peer
        try:
            first, flags, seq, ts, ssrc = _RTP_HEADER.unpack_from(data)
        except struct.error:  # shorter than RTP's 12 bytes
            first = flags = 0
        # RTP is version 2; RTCP multiplexed on this port (RFC 5761) has a
        # packet type of 192-223 where RTP has its marker and payload type.
        if first >> 6 == 2 and not 191 < flags < 224:
            jumped = self._count(ssrc, seq, ts, flags & 0x7F, now)
            if self.tap is not None and self.tap(data):
                return  # taken: the tap forwards it itself, or not at all
            if out is None or out.remote is None or out.transport is None:
                return
            out._send(data, ssrc, seq, ts, self.reception.rate, jumped, now)
            return
        if out is None or out.remote is None or out.transport is None:
            return
        # (What is not RTP, such as STUN, a keepalive or multiplexed RTCP,
        # passes on as it came.)
        out.transport.sendto(data, out.remote)
        out.sent += 1

    def emit(self, data: bytes, rate: int) -> None:
        """Send the node's own RTP packet (`rate`: its payload's clock) to this
        leg's endpoint. Dropped while the endpoint's address is unknown."""
        if self.remote is None or self.transport is None or len(data) < 12:
            return
        _, _, seq, ts, ssrc = _RTP_HEADER.unpack_from(data)
        self._send(data, ssrc, seq, ts, rate, False, _monotonic())

    def _send(
        self, data: bytes, ssrc: int, seq: int, ts: int, rate: int, jumped: bool, now: float
    ) -> None:
        """Out to this leg's endpoint, rewritten into one stream if the source changed."""
        sending = self.sending
        if ssrc != sending.source or jumped:
            sending.switch(ssrc, seq, ts, rate, now)
        if sending.rewriting:
            data = sending.rewrite(data, seq, ts)
        sending.last = data
        sending.at = now
        sending.packets += 1
        sending.octets += len(data) - 12
        self.transport.sendto(data, self.remote)  # type: ignore[union-attr]
        self.sent += 1


class RtcpPort(RelayPort):
    """A leg's RTCP socket: reads what its endpoint reports, and passes the far
    side's reports on, or reports to its endpoint itself (see `generating`)."""

    __slots__ = (
        "_sent_srs", "cname", "due", "far_report", "generated", "last_report", "last_sr",
        "malformed", "own_ssrc", "relayed", "rtp", "rtt", "started",
    )  # fmt: skip
    peer: RtcpPort | None

    def __init__(self, cname: str = "switch") -> None:
        super().__init__()
        self.rtp: RtpPort | None = None  # the same leg's RTP socket
        self.cname = cname
        self.own_ssrc = secrets.randbits(32)  # ours, before any RTP is sent to the endpoint
        self.started = time.monotonic()
        self.malformed = 0  # packets that were not valid RTCP, dropped
        self.relayed = self.generated = 0  # reports sent to the endpoint, by whom
        self.last_report = 0.0  # when the endpoint last sent valid RTCP (monotonic)
        self.last_sr: tuple[int, float] | None = None  # its last SR: NTP middle bits, when
        self.far_report: ReportBlock | None = None  # its word on the stream it receives
        self.rtt: float | None = None  # seconds, between the node and the endpoint
        self._sent_srs: dict[int, float] = {}  # SRs sent to it: NTP middle bits -> when
        # When the next report is due (monotonic); `PortPool`'s ticker calls `tick`.
        self.due = self.started + report_interval(random.random(), initial=True)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        now = time.monotonic()
        if self.remote != addr:
            self.remote = (addr[0], addr[1])
            self.latched = True
        self.received += 1
        self.last_received = now
        try:
            packets = parse_compound(data)
        except RtcpError as exc:
            self.malformed += 1
            log.debug("RTCP from %s:%d dropped: %s", addr[0], addr[1], exc)
            return
        self.last_report = now
        self._learn(packets, now)
        peer = self.peer
        if peer is None or peer.remote is None or peer.closed or not self.untouched():
            return
        assert peer.transport is not None
        peer.transport.sendto(data, peer.remote)
        peer.sent += 1
        peer.relayed += 1
        for packet in packets:
            if isinstance(packet, SenderReport):
                peer._sent_sr(packet.info.ntp, now)

    def _learn(self, packets: list[Packet], now: float) -> None:
        for packet in packets:
            if isinstance(packet, SenderReport):
                self.last_sr = (ntp_middle(packet.info.ntp), now)
            if not isinstance(packet, SenderReport | ReceiverReport):
                continue
            for block in packet.blocks:
                sent_at = self._sent_srs.get(block.lsr) if block.lsr else None
                if sent_at is not None:
                    rtt = round_trip(sent_at, now, block.dlsr)
                    self.rtt = rtt if rtt is not None else self.rtt
                if self.rtp is not None and block.ssrc == self.rtp.sending.ssrc:
                    self.far_report = block

    def _sent_sr(self, ntp: int, now: float) -> None:
        self._sent_srs[ntp_middle(ntp)] = now
        if len(self._sent_srs) > 8:  # an echo older than that is not coming
            del self._sent_srs[next(iter(self._sent_srs))]

    def untouched(self) -> bool:
        """Neither stream of the call is rewritten: each side's RTCP is true as it stands."""
        rtp = self.rtp
        if rtp is None:
            return True
        far = rtp.peer
        return not rtp.sending.rewriting and (far is None or not far.sending.rewriting)

    def generating(self, now: float) -> bool:
        """Whether the node reports to this leg's endpoint itself: when the
        streams are rewritten (the far side's reports name SSRCs and sequence
        numbers the endpoint never saw), or when the far side sends none."""
        if not self.untouched():
            return True
        heard = max(self.peer.last_report if self.peer else 0.0, self.started)
        return now - heard > FAR_SILENT

    def report(self, now: float, wall: float) -> list[Packet]:
        """The compound packet the node sends this leg's endpoint (RFC 3550 §6.4):
        an SR for the stream it gets from the node (an RR before there is
        one), a block on the stream it sends, and a CNAME."""
        assert self.rtp is not None
        sending, reception = self.rtp.sending, self.rtp.reception
        blocks = ()
        if reception.ssrc is not None:
            blocks = (report_block(reception, self.last_sr, now),)
        first: SenderReport | ReceiverReport
        if sending.ssrc is not None and sending.packets:
            info = SenderInfo(
                ntp_timestamp(wall), sending.timestamp_at(now), sending.packets, sending.octets
            )
            first = SenderReport(sending.ssrc, info, blocks)
        else:
            first = ReceiverReport(self.own_ssrc, blocks)
        return [first, SourceDescription.cname(first.ssrc, self.cname)]

    def send_report(self, now: float, bye: bool = False) -> None:
        if self.rtp is None or self.remote is None or self.closed:
            return
        packets = self.report(now, time.time())
        first = packets[0]
        if bye:
            packets.append(Bye((first.ssrc,)))  # type: ignore[union-attr]
        assert self.transport is not None
        self.transport.sendto(build_compound(packets), self.remote)
        self.sent += 1
        self.generated += 1
        if isinstance(first, SenderReport):
            self._sent_sr(first.info.ntp, now)

    def tick(self, now: float) -> None:
        """A report is due: send one if the node speaks for the far side."""
        self.due = now + report_interval(random.random())
        if self.generating(now):
            self.send_report(now)

    def close(self) -> None:
        # RFC 3550 §6.6: the endpoint hears that the stream it got has ended.
        self.send_report(time.monotonic(), bye=True)
        super().close()


@dataclass(frozen=True, slots=True)
class LegQuality:
    """Call-quality figures of one leg, between the node and its endpoint."""

    packets_received: int  # RTP from the endpoint
    packets_lost: int  # of those, expected and not received
    jitter: float  # interarrival jitter of the endpoint's stream, seconds
    packets_sent: int  # RTP to the endpoint
    rtt: float | None  # round trip node <-> endpoint from its reports, seconds
    reported_fraction_lost: float | None  # 0..1, what the endpoint says it lost lately
    reported_jitter: float | None  # seconds, what the endpoint measures
    rtcp_malformed: int  # RTCP packets from the endpoint that were dropped
    codec: str | None = None  # SDP name of what the endpoint sends, lower case ("pcmu", "opus")

    def estimate(self) -> Estimate | None:
        """The MOS estimate of this leg (G.107, see `switch.media.quality`),
        or None for a codec the E-model has no values for."""
        try:
            return leg_estimate(self, self.codec or "pcmu")
        except QualityError:
            return None

    def to_dict(self) -> dict[str, object]:
        """For the call record and the CTI: the figures, rounded, and the MOS."""
        estimate = self.estimate()
        return {
            "codec": self.codec,
            "packets_received": self.packets_received,
            "packets_lost": self.packets_lost,
            "packets_sent": self.packets_sent,
            "jitter_ms": round(self.jitter * 1000, 1),
            "rtt_ms": round(self.rtt * 1000, 1) if self.rtt is not None else None,
            "reported_loss_percent": (
                round(100 * self.reported_fraction_lost, 2)
                if self.reported_fraction_lost is not None
                else None
            ),
            "reported_jitter_ms": (
                round(self.reported_jitter * 1000, 1) if self.reported_jitter is not None else None
            ),
            "mos": round(estimate.mos, 2) if estimate is not None else None,
        }


@dataclass
class LegMedia:
    rtp: RtpPort
    rtcp: RtcpPort
    # The endpoint's last SDP, read only when a quality report names the
    # codec (parsing it on every offer would cost the call path for nothing).
    sdp: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        self.rtcp.rtp = self.rtp

    @property
    def port(self) -> int:
        return self.rtp.port

    def expect(self, remote: tuple[str, int], clock_rates: Mapping[int, int] | None = None) -> None:
        """Where the SDP says this leg listens, and (from the same SDP, see
        `clock_rates()`) the RTP clock of its payload types, for jitter."""
        self.rtp.expect(remote)
        self.rtcp.expect((remote[0], remote[1] + 1))
        if clock_rates is not None:
            self.rtp.reception.clock_rates = clock_rates
            self.rtp.reception.payload_type = -1  # look the clock up again

    def source_changed(self) -> None:
        """From now on, what this leg's endpoint receives comes from another
        source. The relay notices a new SSRC or a sequence jump by itself;
        this is for when the call layer knows better (a re-INVITE that
        restarts a stream, say). The next packet is treated as the first of
        a new source: the endpoint still sees one stream."""
        self.rtp.sending.source = None

    def quality(self) -> LegQuality:
        reception, sending, rtcp = self.rtp.reception, self.rtp.sending, self.rtcp
        far = rtcp.far_report
        return LegQuality(
            packets_received=reception.packets,
            packets_lost=max(0, reception.lost),
            jitter=reception.jitter_seconds,
            packets_sent=sending.packets,
            rtt=rtcp.rtt,
            reported_fraction_lost=far.fraction_lost / 256 if far else None,
            reported_jitter=far.jitter / sending.rate if far else None,
            rtcp_malformed=rtcp.malformed,
            codec=codec_name(self.sdp, reception.payload_type),
        )

    def close(self) -> None:
        self.rtcp.close()
        self.rtp.close()


@dataclass
class MediaSession:
    """The relay of one call: a pair of ports per leg, joined crosswise.

    Building one from legs that already carried media (an attended transfer
    re-pairs two calls' legs) makes each leg's endpoint hear a new source:
    the relay keeps each stream continuous across the change.
    """

    a: LegMedia
    b: LegMedia
    created: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.a.rtp.peer, self.b.rtp.peer = self.b.rtp, self.a.rtp
        self.a.rtcp.peer, self.b.rtcp.peer = self.b.rtcp, self.a.rtcp
        self.a.source_changed()
        self.b.source_changed()

    def idle_for(self, now: float) -> float:
        """Seconds since RTP last came from either side (since creation if never)."""
        last = max(self.a.rtp.last_received, self.b.rtp.last_received, self.created)
        return now - last

    def close(self) -> None:
        self.a.close()
        self.b.close()


class PortPool:
    """UDP port pairs from [low, high), handed out round-robin, skipping busy ones."""

    def __init__(self, host: str, low: int, high: int) -> None:
        self.host = host
        self.low = low + (low % 2)  # RTP on even ports (RFC 3550 §11)
        self.high = high
        self._next = self.low
        self.sessions = 0
        self.cname = f"switch@{host}"  # RFC 3550 §6.5.1: user@host of the reports' sender
        # One timer for the RTCP of every leg rather than one per leg: a
        # node with its calls on hold then wakes REPORT_TICK times a second.
        self._rtcp: set[RtcpPort] = set()
        self._ticker: asyncio.TimerHandle | None = None

    async def leg(self) -> LegMedia:
        loop = asyncio.get_running_loop()
        span = max(2, self.high - self.low)
        for _ in range(span // 2):
            port = self._next
            self._next = port + 2 if port + 2 < self.high - 1 else self.low
            # A port in use is the usual failure; uvloop reports it without
            # an errno ("could not bind to local_addr"), so any bind error
            # moves on to the next pair, and only a range with none left fails.
            try:
                _, rtp = await loop.create_datagram_endpoint(RtpPort, local_addr=(self.host, port))
            except OSError:
                continue
            try:
                _, rtcp = await loop.create_datagram_endpoint(
                    lambda: RtcpPort(self.cname), local_addr=(self.host, port + 1)
                )
            except OSError:
                rtp.close()
                continue
            self.add_reports(rtcp)  # type: ignore[arg-type]
            return LegMedia(rtp, rtcp)  # type: ignore[arg-type]
        raise OSError(errno.EADDRINUSE, f"no free RTP port pair in {self.low}-{self.high}")

    async def socket(
        self, factory: Callable[[], asyncio.DatagramProtocol]
    ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
        """One UDP socket on an even port of the range, for a leg that carries
        RTP, RTCP and ICE on one port (a WebRTC leg: rtcp-mux, BUNDLE)."""
        loop = asyncio.get_running_loop()
        span = max(2, self.high - self.low)
        for _ in range(span // 2):
            port = self._next
            self._next = port + 2 if port + 2 < self.high - 1 else self.low
            try:
                return await loop.create_datagram_endpoint(factory, local_addr=(self.host, port))
            except OSError:  # in use: the next one (see `leg`)
                continue
        raise OSError(errno.EADDRINUSE, f"no free RTP port in {self.low}-{self.high}")

    def add_reports(self, rtcp: RtcpPort) -> None:
        """Call `rtcp.tick` on the pool's timer when its reports are due, until it
        is closed (for a port made elsewhere too: a WebRTC leg's, which sends
        on its ICE socket)."""
        self._rtcp.add(rtcp)
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().call_later(REPORT_TICK, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        for port in list(self._rtcp):
            if port.closed:
                self._rtcp.discard(port)
            elif now >= port.due:
                try:
                    port.tick(now)
                except Exception:  # one leg's bug must not silence every other leg
                    log.exception("RTCP report to %s failed", port.remote)
        self._ticker = None
        if self._rtcp:
            self._ticker = asyncio.get_running_loop().call_later(REPORT_TICK, self._tick)

    async def session(self) -> MediaSession:
        a = await self.leg()
        try:
            b = await self.leg()
        except OSError:
            a.close()
            raise
        self.sessions += 1
        return MediaSession(a, b)


def codec_name(body: bytes, payload_type: int | None) -> str | None:
    """The SDP encoding name (lower case) of `payload_type` in the first audio
    stream of `body`, or None when the SDP does not say."""
    if payload_type is None or payload_type < 0:
        return None
    try:
        sdp = parse_sdp(body) if body else None
    except SdpError:
        sdp = None
    for media in sdp.media if sdp is not None else ():
        if media.media == "audio":
            codec = media.rtpmaps().get(payload_type)
            if codec is not None:
                name = codec.name.lower()
                # (A stream caught between talk spurts: what it says is no codec.)
                return None if name in ("telephone-event", "cn") else name
            break
    static = STATIC_PAYLOAD_TYPES.get(payload_type)
    return static.name.lower() if static is not None else None


def clock_rates(body: bytes) -> dict[int, int]:
    """Payload type -> RTP clock rate of the first audio stream of an SDP
    (empty if it is not SDP): what `LegMedia.expect` wants to know."""
    return dict(_clock_rates(body))


@functools.lru_cache(maxsize=512)
def _clock_rates(body: bytes) -> tuple[tuple[int, int], ...]:
    # (Asked of the same offer and answer that `anchor` parses: parsed once.)
    try:
        sdp = parse_sdp(body)
    except SdpError:
        return ()
    for media in sdp.media:
        if media.media == "audio":
            return tuple(
                (pt, 8000 if codec.name.casefold() == "g722" else codec.clock_rate)
                for pt, codec in media.rtpmaps().items()
            )  # G.722's RTP clock is 8000 whatever the rtpmap says (RFC 3551 §4.5.2)
    return ()


@dataclass(slots=True)
class LegOrigin:
    """The o= line the node presents to one leg (RFC 3264 §8): one session id
    for the leg's whole life, the version up by one whenever what the leg is
    sent changes. Whoever is on the other side (after a transfer, another
    party with another o=), the leg sees one session."""

    session_id: str = field(default_factory=lambda: str(secrets.randbelow(2**62)))
    version: int = 1
    last: bytes = b""  # what was sent last, to tell a change from a repeat


def anchor(
    body: bytes, address: str, port: int, origin: LegOrigin | None = None
) -> tuple[bytes, tuple[str, int] | None]:
    """The SDP with its first audio stream moved to `address`:`port`, and where
    that stream was (None when the SDP names none, e.g. port 0 or no audio).

    Other streams (video) are refused by setting their port to 0: the relay
    carries audio only, and a call center needs nothing else. With `origin`,
    the o= line is the node's own for that leg.
    """
    try:
        sdp = parse_sdp(body)
    except SdpError:
        return body, None  # not ours to fix: the far end will say what is wrong
    remote = None
    addrtype = "IP6" if ":" in address else "IP4"
    found = False
    for media in sdp.media:
        if media.media == "audio" and not found:
            found = True
            connection = sdp.media_connection(media)
            if media.port and connection is not None:
                remote = (connection.host, media.port)
            media.port = port
            media.connection = Connection(address, addrtype=addrtype)
        else:
            media.port = 0
    if sdp.connection is not None:
        sdp.connection = Connection(address, addrtype=addrtype)
    sdp.origin.address = address
    sdp.origin.addrtype = addrtype
    if origin is None:
        return sdp.to_bytes(), remote
    sdp.origin.username, sdp.origin.sess_id = "switch", origin.session_id
    sdp.origin.sess_version = origin.version
    out = sdp.to_bytes()
    if out != origin.last:
        if origin.last:  # a change, not the first: the next version
            origin.version += 1
            sdp.origin.sess_version = origin.version
            out = sdp.to_bytes()
        origin.last = out
    return out, remote
