"""The processes of bench/webrtc.py: the media host, the load generator, aiortc's pair.

    python -m bench.webrtcload host       # the node's media: WebRTC leg + RTP leg per call
    python -m bench.webrtcload generator  # browsers and trunk ends driving them
    python -m bench.webrtcload aiortc SECONDS CODEC  # one aiortc call, both ends

`host` and `generator` speak JSON lines on stdin/stdout; bench/webrtc.py
passes the SDP between them and reads the host's CPU over the window.

The host runs the node's own media classes (switch.media.webrtc.WebRtcLeg
joined to a relay `LegMedia` in a `MediaSession`), one pair per call, as
the b2bua sets them up for a browser calling through a trunk: the node
offers WebRTC (Opus and PCMU) to the browser. SIP is left out: its cost is
bench/calls.py's, and what is measured here is the media path per packet.

The generator's browsers are lean DTLS-SRTP ends of our own (also a
`WebRtcLeg`: aioice + aiortc's DTLS keying + libsrtp; no aiortc tracks), so
that 50 of them fit on the load core; its trunk ends are plain UDP sockets.
Each side of each call sends one packet every 20 ms: Opus (20 ms, a tone
encoded once and looped) or PCMU from the browser, PCMU from the trunk.
Received packets are counted per direction; latency through the node is
the k-th packet received against the k-th sent of the same stream (on
loopback nothing is reordered), the median over all streams.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import struct
import sys
import time

import numpy as np

from switch.media import g711
from switch.media.opus import OpusEncoder
from switch.media.relay import MediaSession, PortPool, anchor
from switch.media.transcode import CodecChoice
from switch.media.webrtc import WebRtcLeg
from switch.media.webrtc_sdp import WEBRTC_EXTRA, remote_transport, to_webrtc
from switch.sip.sdp import Codec

INTERVAL = 0.020
HOST_PORTS = (30_000, 31_000)
BROWSER_PORTS = (31_000, 32_000)
OPUS = Codec("opus", 48000, 2, 111)
PCMU = Codec("PCMU", 8000, 1, 0)
TRUNK_OFFER = (
    b"v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n"
)


def _send(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _receive() -> dict:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line:
        raise SystemExit("the runner went away")
    return json.loads(line)


def _run(coro) -> None:  # type: ignore[no-untyped-def]
    try:
        import uvloop  # the node's loop, when it has it
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


# -- the host: the node's media ----------------------------------------------------------


async def host() -> None:
    order = await _receive()
    calls, transcode = order["calls"], order["transcode"]
    pool = PortPool("127.0.0.1", *HOST_PORTS)
    sessions, legs, plains = [], [], []
    for _ in range(calls):
        leg = await WebRtcLeg.open(pool)
        plain = await pool.leg()
        sessions.append(MediaSession(leg, plain))
        legs.append(leg)
        plains.append(plain)
    offers = [
        anchor(to_webrtc(TRUNK_OFFER, leg.local("127.0.0.1", "actpass"), WEBRTC_EXTRA),
               "127.0.0.1", leg.port)[0].decode()
        for leg in legs
    ]  # fmt: skip
    _send({"offers": offers, "plain_ports": [p.port for p in plains]})
    reply = await _receive()
    for leg, plain, answer, addr in zip(legs, plains, reply["answers"], reply["plain_addrs"],
                                        strict=True):  # fmt: skip
        leg.start(remote_transport(answer.encode()), offerer=True)
        leg.transcode(CodecChoice(OPUS, PCMU) if transcode else None)
        plain.expect(tuple(addr))
    done = await asyncio.wait_for(asyncio.gather(*(leg.connected for leg in legs)), 60)
    failures = [leg.failure for leg in legs if leg.failure]
    _send({"connected": sum(done), "failures": failures[:3]})
    await _receive()  # "quit"
    for session in sessions:
        session.close()
    await asyncio.sleep(0.2)


# -- the generator: browsers and trunk ends -----------------------------------------------


class _Counter:
    """Stands in for a browser leg's port: what the host sends it, counted and timed."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def from_browser(self, data: bytes) -> None:
        self.times.append(time.monotonic())

    def rtcp_from_browser(self, data: bytes) -> None:
        pass


class _TrunkEnd(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.times: list[float] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.times.append(time.monotonic())


def _payloads(transcode: bool) -> list[bytes]:
    """One second of a 1 kHz tone, 20 ms payloads: Opus or PCMU."""
    t = np.arange(8000) / 8000
    pcm = (8000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes()
    frames = [pcm[i : i + 320] for i in range(0, len(pcm), 320)]
    if not transcode:
        return [g711.ulaw_encode(f) for f in frames]
    encoder = OpusEncoder(8000)
    return [encoder.encode(f) for f in frames]


def _rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def _latency(sent: list[float], received: list[float]) -> float | None:
    n = min(len(sent), len(received))
    return (
        statistics.median(r - s for s, r in zip(sent[:n], received[:n], strict=True)) if n else None
    )


async def generator() -> None:
    order = await _receive()
    calls, transcode = order["calls"], order["transcode"]
    seconds, warmup = order["seconds"], order["warmup"]
    loop = asyncio.get_running_loop()
    pool = PortPool("127.0.0.1", *BROWSER_PORTS)
    browsers, counters, trunks, answers = [], [], [], []
    codec_line = "111 opus/48000/2" if transcode else "0 PCMU/8000"
    pt = 111 if transcode else 0
    for offer in order["offers"]:
        leg = await WebRtcLeg.open(pool)
        counter = _Counter()
        leg.dtls._port = counter  # type: ignore[assignment]
        leg.rtp.from_browser = counter.from_browser  # type: ignore[method-assign]
        plain = (
            f"v=0\r\no=browser 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio 9 RTP/AVP {pt}\r\na=rtpmap:{codec_line}\r\n"
        ).encode()
        answer = to_webrtc(plain, leg.local("127.0.0.1", "active"))
        answers.append(anchor(answer, "127.0.0.1", leg.port)[0].decode())
        leg.start(remote_transport(offer.encode()), offerer=False)
        browsers.append(leg)
        counters.append(counter)
        _, trunk = await loop.create_datagram_endpoint(_TrunkEnd, local_addr=("127.0.0.1", 0))
        trunks.append(trunk)
    _send({"answers": answers,
           "plain_addrs": [t.transport.get_extra_info("sockname") for t in trunks]})  # fmt: skip
    await asyncio.wait_for(asyncio.gather(*(leg.connected for leg in browsers)), 60)
    await _receive()  # "go": the host is connected too
    relay = [("127.0.0.1", port) for port in order["plain_ports"]]
    browser_audio, trunk_audio = _payloads(transcode), _payloads(False)
    sent_up: list[list[float]] = [[] for _ in range(calls)]  # browser -> trunk
    sent_down: list[list[float]] = [[] for _ in range(calls)]  # trunk -> browser
    start = loop.time()
    total = int((warmup + seconds) / INTERVAL)
    window_at, lateness, usage0 = int(warmup / INTERVAL), 0.0, None
    for tick in range(total):
        if tick == window_at:
            _send({"window": "start"})
            usage0 = resource.getrusage(resource.RUSAGE_SELF)
        now = time.monotonic()
        ts_b, ts_t = tick * (960 if transcode else 160), tick * 160
        for i in range(calls):
            payload = browser_audio[tick % 50]
            browsers[i].rtp.transport.sendto(_rtp(pt, tick, ts_b, 0x1000 + i, payload))
            sent_up[i].append(now)
            trunks[i].transport.sendto(_rtp(0, tick, ts_t, 0x2000 + i, trunk_audio[tick % 50]),
                                       relay[i])  # fmt: skip
            sent_down[i].append(now)
        due = start + (tick + 1) * INTERVAL
        lateness = max(lateness, loop.time() - due)
        await asyncio.sleep(max(0.0, due - loop.time()))
    _send({"window": "end"})
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(1.0)  # the last packets
    up = [_latency(s, t.times) for s, t in zip(sent_up, trunks, strict=True)]
    down = [_latency(s, c.times) for s, c in zip(sent_down, counters, strict=True)]
    cpu = 0.0
    if usage0 is not None:
        cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    _send({
        "calls": calls,
        "sent_up": sum(len(s) for s in sent_up), "received_up": sum(len(t.times) for t in trunks),
        "sent_down": sum(len(s) for s in sent_down),
        "received_down": sum(len(c.times) for c in counters),
        "latency_up_ms": 1000 * statistics.median([x for x in up if x is not None] or [0]),
        "latency_down_ms": 1000 * statistics.median([x for x in down if x is not None] or [0]),
        "worst_lateness_ms": 1000 * lateness, "generator_cpu": cpu,
    })  # fmt: skip
    for leg in browsers:
        leg.close()
    await asyncio.sleep(0.2)


# -- aiortc's own pipeline, for comparison -----------------------------------------------


async def aiortc_pair(seconds: float, codec: str) -> None:
    """Two aiortc peers in this process, each sending a tone and decoding what it
    gets (its track pipeline). The runner reads this process's CPU."""
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.rtcrtpsender import RTCRtpSender

    from tests.support.browser import ToneTrack, loopback_candidates

    async def drain(track) -> None:  # type: ignore[no-untyped-def]
        while True:
            await track.recv()

    peers = [RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2)]
    readers = []
    for pc in peers:
        transceiver = pc.addTransceiver(ToneTrack(1000.0), direction="sendrecv")
        wanted = [c for c in RTCRtpSender.getCapabilities("audio").codecs
                  if c.name.casefold() == codec]  # fmt: skip
        transceiver.setCodecPreferences(wanted)
        pc.on("track", lambda track: readers.append(asyncio.ensure_future(drain(track))))
    with loopback_candidates():
        await peers[0].setLocalDescription(await peers[0].createOffer())
        await peers[1].setRemoteDescription(peers[0].localDescription)
        await peers[1].setLocalDescription(await peers[1].createAnswer())
    await peers[0].setRemoteDescription(peers[1].localDescription)
    await asyncio.sleep(1.0)  # connected and flowing
    _send({"window": "start"})
    await asyncio.sleep(seconds)
    _send({"window": "end"})
    for task in readers:
        task.cancel()
    for pc in peers:
        await pc.close()


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    mode = sys.argv[1]
    if mode == "host":
        _run(host())
    elif mode == "generator":
        _run(generator())
    else:
        _run(aiortc_pair(float(sys.argv[2]), sys.argv[3]))
