"""The load generator of bench/channels.py: callers sitting in an IVR, RTP both ways.

Run by bench/channels.py as a child process on the load core(s):

    python -m bench.channelload '{"node": ["127.0.0.1", 5060], "node_pid": 123, ...}'

It prints one JSON object (a `Result`) on its last line of stdout.

It plays a trunk's callers with plain UDP sockets on 127.0.0.1: for each
step of the plan (100, 200, 300... callers), it places calls to the bench
DID until that many are up (INVITE, 200 with the node's SDP, ACK), then
measures a window: every caller sends one PCMU packet every 20 ms (from one
timer loop, the callers spread over SLOTS slots of the 20 ms), and every
KEY_EVERY seconds a key as RFC 4733 events (start, update, three ends, as
a phone does) in place of its voice; what the node sends each caller (the
prompt) is timed by the kernel as it arrives (SO_TIMESTAMPNS, so that this
process's own scheduling does not pass for the node's) and checked:

- an underrun is a gap of more than GAP (40 ms) between two packets of one
  caller's stream: a phone's jitter buffer (40-60 ms) would have run dry;
- missing packets are sequence numbers skipped (frames the node dropped);
- keys sent in the window against keys the node heard (its bench
  application counts them in a stats file; see bench/channelnode.py).

The node's CPU time is read from /proc around each window. Callers placed
for one step stay up for the next, and keep sending. The run stops after
the first step with an underrun or a missing packet (or after the last).
Then every call is hung up with a BYE.

SIP here is the least that works against the node (bench/rtpload.py's text
handling). Every loop is bounded in count and in time.
"""

from __future__ import annotations

import gc
import json
import re
import resource
import secrets
import select
import socket
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from switch.media.dtmf.events import event_packets

from .rtpload import _audio_at, _get, _node_cpu, _parse, _reply, _udp, _udp_drops, _uri

PERIOD = 0.020
SLOTS = 10  # each 20 ms split in this many slots, a tenth of the callers in each
GAP = 0.040  # seconds between two packets of the node's stream: more is an underrun
KEY_EVERY = 3.0  # seconds between two keys of one caller, in the window
KEY_SECONDS = 0.1
SETUP_RATE = 100  # INVITEs per second
RESEND_AFTER = 1.0
RESENDS = 4
SETTLE = 0.8  # seconds after a window before the node's count of keys is read
PAYLOAD = b"\xff" * 160  # PCMU silence: the node does not decode it (RFC 4733 keys)
_HEADER = struct.Struct("!BBHII")
_TIMESPEC = struct.Struct("@qq")
_CMSG = socket.CMSG_SPACE(_TIMESPEC.size)
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


@dataclass
class Plan:
    node: tuple[str, int]
    node_pid: int
    steps: list[int]
    seconds: float  # each step's measured window
    warmup: float  # media before each window
    stats: str  # the node's stats file (bench/channelnode.py)
    did: str = "600"


@dataclass
class Step:
    callers: int  # asked for
    up: int = 0
    setup_seconds: float = 0.0
    window_seconds: float = 0.0
    node_cpu: float = 0.0
    node_cpu_system: float = 0.0
    generator_cpu: float = 0.0
    expected: int = 0  # packets the node should have sent the callers in the window
    received: int = 0
    underruns: int = 0  # gaps > GAP
    missing: int = 0  # sequence numbers skipped
    worst_gap_ms: float = 0.0
    keys_sent: int = 0
    keys_heard: int = 0
    clock_late: int = 0  # the node's media clock: late wake-ups in the window
    clock_skipped: int = 0  # ... and frames it skipped
    # Its wake-ups in the window by lateness: up to 5, 10, 20 ms, and more.
    clock_lateness: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    gaps_60: int = 0  # gaps > 60 ms (what a 60 ms jitter buffer would not absorb)
    gc_pauses: list = field(default_factory=list)  # the node's collector pauses > 5 ms: (gen, ms)
    worst_lateness_ms: float = 0.0  # this generator's own sending
    stalls: int = 0


@dataclass
class Result:
    steps: list[Step] = field(default_factory=list)
    setup_failures: dict[str, int] = field(default_factory=dict)
    unexpected: dict[str, int] = field(default_factory=dict)
    send_errors: int = 0
    hung_up: int = 0
    drops_ours: int = 0


class Caller:
    """One call, from the trunk's side."""

    __slots__ = (
        "call_id", "gaps_60", "index", "key", "key_sent", "key_ticks", "last_rx", "last_seq",
        "missing", "next_key", "ok_headers", "relay", "rx", "sent_at", "seq", "sock", "ssrc",
        "state", "text", "tries", "ts", "underruns", "worst_gap",
    )  # fmt: skip

    def __init__(self, index: int) -> None:
        self.index = index
        self.call_id = f"ivr-{secrets.token_hex(4)}-{index}"
        self.sock = _udp(0)
        self.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        self.state = "new"  # new, trying, up, failed, hanging-up, ended
        self.sent_at = 0.0
        self.tries = 0
        self.text = b""
        self.ok_headers: list[tuple[str, str]] = []
        self.relay: tuple[str, int] | None = None
        self.seq = secrets.randbits(16)
        self.ts = secrets.randbits(32)
        self.ssrc = 0x20000 + index
        self.key: list | None = None  # RFC 4733 packets of the key being sent
        self.key_sent = 0
        self.key_ticks = 0
        self.next_key = 0  # tick of the next key (window only)
        self.reset()

    def reset(self) -> None:
        self.last_rx = 0  # kernel time of the last packet, ns
        self.last_seq = -1
        self.rx = self.underruns = self.missing = self.gaps_60 = 0
        self.worst_gap = 0


def _number(index: int) -> str:
    return f"+44555{index:07d}"


class Load:
    def __init__(self, plan: Plan, result: Result) -> None:
        self.plan, self.result = plan, result
        self.sip = _udp(0)
        self.host, self.port = self.sip.getsockname()
        self.callers: list[Caller] = []
        self.by_id: dict[str, Caller] = {}
        self.by_fd: dict[int, Caller] = {}
        self.poller = select.epoll()
        self.poller.register(self.sip.fileno(), select.EPOLLIN)
        self.measuring = False
        self.keys_on = False
        self.tick = 0  # 20 ms periods since the media began
        self.keys_sent = 0
        self.lateness = 0.0
        self.stalls = 0

    def close(self) -> None:
        self.poller.close()
        for caller in self.callers:
            caller.sock.close()
        self.sip.close()

    def _unexpected(self, what: str) -> None:
        self.result.unexpected[what] = self.result.unexpected.get(what, 0) + 1

    # -- SIP ---------------------------------------------------------------------

    def invite(self, caller: Caller, now: float) -> None:
        port = caller.sock.getsockname()[1]
        sdp = (
            f"v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
        ).encode()
        (host, nport), did = self.plan.node, self.plan.did
        caller.text = "\r\n".join([
            f"INVITE sip:{did}@{host}:{nport} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{_number(caller.index)}@{self.host}>;tag=c{caller.index}",
            f"To: <sip:{did}@{host}>",
            f"Call-ID: {caller.call_id}",
            "CSeq: 1 INVITE",
            f"Contact: <sip:{_number(caller.index)}@{self.host}:{self.port}>",
            "Content-Type: application/sdp",
            f"Content-Length: {len(sdp)}",
            "",
            "",
        ]).encode() + sdp  # fmt: skip
        self._send_sip(caller, now)

    def bye(self, caller: Caller, now: float) -> None:
        h = caller.ok_headers
        caller.text = "\r\n".join([
            f"BYE {_uri(_get(h, 'contact'))} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: {_get(h, 'from')}",
            f"To: {_get(h, 'to')}",
            f"Call-ID: {caller.call_id}",
            "CSeq: 2 BYE",
            "Content-Length: 0",
            "",
            "",
        ]).encode()  # fmt: skip
        caller.state, caller.tries = "hanging-up", 0
        self._send_sip(caller, now)

    def _send_sip(self, caller: Caller, now: float) -> None:
        self.sip.sendto(caller.text, self.plan.node)
        caller.sent_at, caller.tries = now, caller.tries + 1

    def resend(self, now: float) -> None:
        for caller in self.callers:
            if caller.state in ("new", "hanging-up") and now - caller.sent_at > RESEND_AFTER:
                if caller.tries > RESENDS:
                    if caller.state == "new":
                        self._failed(caller, "no answer")
                    else:
                        caller.state = "ended"
                        self._unexpected("BYE not answered")
                else:
                    self._send_sip(caller, now)

    def _failed(self, caller: Caller, why: str) -> None:
        caller.state = "failed"
        self.result.setup_failures[why] = self.result.setup_failures.get(why, 0) + 1

    def _ack(self, headers: list[tuple[str, str]], branch: str) -> None:
        lines = [
            f"ACK {_uri(_get(headers, 'contact')) or f'sip:{self.plan.did}@127.0.0.1'} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: {_get(headers, 'from')}",
            f"To: {_get(headers, 'to')}",
            f"Call-ID: {_get(headers, 'call-id')}",
            f"CSeq: {_get(headers, 'cseq').split()[0]} ACK",
            "Content-Length: 0",
            "",
            "",
        ]
        self.sip.sendto("\r\n".join(lines).encode(), self.plan.node)

    def on_sip(self, data: bytes) -> None:
        first, headers, body = _parse(data)
        caller = self.by_id.get(_get(headers, "call-id"))
        if not first.startswith("SIP/2.0 "):
            method = first.split(" ", 1)[0]
            self._unexpected(f"{method} from the node")
            if method != "ACK":
                self.sip.sendto(_reply(headers, "200 OK"), self.plan.node)
            if method == "BYE" and caller is not None:
                caller.state = "ended"
            return
        if caller is None:
            return
        status = int(first.split()[1])
        method = _get(headers, "cseq").split()[-1]
        if method == "BYE" and status >= 200:
            if caller.state == "hanging-up":
                caller.state = "ended"
                self.result.hung_up += status < 300
            return
        if method != "INVITE" or status < 100:
            return
        if status < 200:
            if caller.state == "new":
                caller.state = "trying"
        elif status < 300:
            self._ack(headers, f"z9hG4bK{secrets.token_hex(8)}")
            if caller.state in ("new", "trying"):
                caller.ok_headers = headers
                caller.relay = _audio_at(body)
                if caller.relay is None:
                    self._failed(caller, "200 without an audio address")
                    return
                caller.state = "up"
                caller.sock.connect(caller.relay)
                self.poller.register(caller.sock.fileno(), select.EPOLLIN)
                self.by_fd[caller.sock.fileno()] = caller
        else:
            branch = re.search(r"branch=([^;\s]+)", _get(headers, "via"))
            self._ack(headers, branch.group(1) if branch else "z9hG4bKnone")
            if caller.state in ("new", "trying"):
                self._failed(caller, first.split(" ", 1)[1][:60])

    # -- media -------------------------------------------------------------------

    def send(self, caller: Caller) -> None:
        """This caller's 20 ms: a voice packet, or its key's events."""
        sock = caller.sock
        try:
            if caller.key is None and self.keys_on and self.tick >= caller.next_key:
                caller.key = event_packets(str(self.keys_sent % 10), caller.ts, KEY_SECONDS)
                caller.key_sent = caller.key_ticks = 0
                caller.next_key = self.tick + round(KEY_EVERY / PERIOD)
            if caller.key is not None:
                packets = caller.key
                elapsed = caller.key_ticks * PERIOD + 1e-9
                while caller.key_sent < len(packets) and packets[caller.key_sent].at <= elapsed:
                    p = packets[caller.key_sent]
                    flags = (0x80 if p.marker else 0) | 101
                    sock.send(_HEADER.pack(0x80, flags, caller.seq, p.timestamp, caller.ssrc)
                              + p.payload)  # fmt: skip
                    caller.seq = (caller.seq + 1) & 0xFFFF
                    caller.key_sent += 1
                caller.key_ticks += 1
                if caller.key_sent == len(packets):
                    caller.key = None
                    self.keys_sent += 1
            else:
                sock.send(_HEADER.pack(0x80, 0, caller.seq, caller.ts, caller.ssrc) + PAYLOAD)
                caller.seq = (caller.seq + 1) & 0xFFFF
        except OSError:
            self.result.send_errors += 1
        caller.ts = (caller.ts + 160) & 0xFFFFFFFF

    def receive(self, timeout: float) -> None:
        for fd, _ in self.poller.poll(max(timeout, 0.0), 1024):
            if fd == self.sip.fileno():
                for _ in range(64):
                    try:
                        data = self.sip.recv(65535)
                    except BlockingIOError:
                        break
                    self.on_sip(data)
                continue
            caller = self.by_fd.get(fd)
            if caller is None:
                continue
            for _ in range(8):
                try:
                    data, ancillary, _, _ = caller.sock.recvmsg(2048, _CMSG)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                if not self.measuring or len(data) < 12:
                    continue
                arrived = 0
                for level, kind, value in ancillary:
                    if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                        sec, nsec = _TIMESPEC.unpack(value[: _TIMESPEC.size])
                        arrived = sec * 1_000_000_000 + nsec
                seq = (data[2] << 8) | data[3]
                caller.rx += 1
                if caller.last_rx and arrived:
                    gap = arrived - caller.last_rx
                    if gap > GAP * 1e9:
                        caller.underruns += 1
                        caller.gaps_60 += gap > 0.060 * 1e9
                    caller.worst_gap = max(caller.worst_gap, gap)
                if caller.last_seq >= 0:
                    ahead = (seq - caller.last_seq) & 0xFFFF
                    if 1 < ahead < 3000:
                        caller.missing += ahead - 1
                caller.last_rx, caller.last_seq = arrived or caller.last_rx, seq

    # -- the run -------------------------------------------------------------------

    def run(self) -> None:
        """Every step, then the hang-up; one loop paced on 2 ms slots."""
        plan = self.plan
        slot = PERIOD / SLOTS
        start = time.monotonic()
        next_at = start
        phase, phase_end, step = "setup", 0.0, None
        setup_start = last_placed = start
        base = 0  # callers placed before this step
        steps = list(plan.steps)
        hard_stop = start + len(steps) * (plan.seconds + plan.warmup + 60) + 120
        window: dict = {}
        while phase != "done":
            now = time.monotonic()
            if now > hard_stop:
                self._unexpected("the run overran its time limit")
                break
            # Phases, looked at once a slot.
            if phase == "setup":
                if step is None:
                    step = Step(steps.pop(0))
                    setup_start, base = now, len(self.callers)
                want = min(step.callers, base + int((now - setup_start) * SETUP_RATE) + 1)
                while len(self.callers) < want:
                    caller = Caller(len(self.callers))
                    self.callers.append(caller)
                    self.by_id[caller.call_id] = caller
                    self.invite(caller, now)
                    last_placed = now
                self.resend(now)
                settled = all(c.state in ("up", "failed") for c in self.callers)
                too_long = now - last_placed > RESEND_AFTER * (RESENDS + 2) + 5
                if (len(self.callers) >= step.callers and settled) or too_long:
                    for caller in self.callers:
                        if caller.state not in ("up", "failed"):
                            self._failed(caller, "not answered in time")
                    step.up = sum(c.state == "up" for c in self.callers)
                    step.setup_seconds = now - setup_start
                    phase, phase_end = "warmup", now + plan.warmup
            elif phase == "warmup" and now >= phase_end:
                for caller in self.callers:
                    caller.reset()
                    caller.next_key = self.tick + 1 + (caller.index * 7) % round(KEY_EVERY / PERIOD)
                window = {"start": now, "cpu": _node_cpu(plan.node_pid),
                          "gen": time.process_time(), "keys": self.keys_sent,
                          "node": _stats(plan.stats), "tick": self.tick}  # fmt: skip
                self.measuring = self.keys_on = True
                self.lateness, self.stalls = 0.0, 0
                phase, phase_end = "window", now + plan.seconds
            elif phase == "window":
                if now >= phase_end - KEY_SECONDS * 3:
                    self.keys_on = False  # the last keys end inside the window
                if now >= phase_end and all(c.key is None for c in self.callers):
                    assert step is not None
                    self.measuring = False
                    cpu, system = _node_cpu(plan.node_pid)
                    step.window_seconds = now - window["start"]
                    step.node_cpu = cpu - window["cpu"][0]
                    step.node_cpu_system = system - window["cpu"][1]
                    step.generator_cpu = time.process_time() - window["gen"]
                    up = [c for c in self.callers if c.state == "up"]
                    step.expected = len(up) * (self.tick - window["tick"])
                    step.received = sum(c.rx for c in up)
                    step.underruns = sum(c.underruns for c in up)
                    step.gaps_60 = sum(c.gaps_60 for c in up)
                    step.missing = sum(c.missing for c in up)
                    step.worst_gap_ms = max((c.worst_gap for c in up), default=0) / 1e6
                    step.keys_sent = self.keys_sent - window["keys"]
                    step.worst_lateness_ms, step.stalls = self.lateness * 1000, self.stalls
                    phase, phase_end = "settle", now + SETTLE
            elif phase == "settle" and now >= phase_end:
                assert step is not None
                node = _stats(plan.stats)
                before = window["node"]
                step.keys_heard = node.get("keys", 0) - before.get("keys", 0)
                step.clock_late = node.get("clock_late", 0) - before.get("clock_late", 0)
                step.clock_skipped = node.get("clock_skipped", 0) - before.get("clock_skipped", 0)
                lateness = zip(
                    node.get("clock_lateness", [0] * 4), before.get("clock_lateness", [0] * 4),
                    strict=True,
                )  # fmt: skip
                step.clock_lateness = [a - b for a, b in lateness]
                step.gc_pauses = [
                    (g, ms) for t, g, ms in node.get("gc_pauses", [])
                    if window["start"] <= t <= window["start"] + step.window_seconds
                ]  # fmt: skip
                self.result.steps.append(step)
                failed = step.underruns or step.missing or step.up < step.callers
                if failed or not steps:
                    phase = "done"
                else:
                    phase, step = "setup", None
            # The period's sending, a tenth of the callers per slot.
            for s in range(SLOTS):
                now = time.monotonic()
                while now < next_at:
                    self.receive(next_at - now)
                    now = time.monotonic()
                late = now - next_at
                if self.measuring:
                    self.lateness = max(self.lateness, late)
                if late > PERIOD:
                    self.stalls += self.measuring
                    next_at = now
                for caller in self.callers[s::SLOTS]:
                    if caller.state == "up":
                        self.send(caller)
                next_at += slot
            self.tick += 1

    def hang_up(self) -> None:
        now = time.monotonic()
        legs = [c for c in self.callers if c.ok_headers and c.state == "up"]
        for caller in legs:
            self.bye(caller, now)
        deadline = now + RESEND_AFTER * (RESENDS + 2) + 5
        while time.monotonic() < deadline and any(c.state == "hanging-up" for c in legs):
            self.resend(time.monotonic())
            self.receive(0.02)


def _stats(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def run(plan: Plan) -> Result:
    result = Result()
    need = max(plan.steps) + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))
    load = Load(plan, result)
    gc.disable()  # no collector pauses in the sender's timing (bounded: a few minutes)
    try:
        load.run()
        load.hang_up()
        drops = _udp_drops()
        result.drops_ours = sum(drops.get(c.sock.getsockname()[1], 0) for c in load.callers)
    finally:
        gc.enable()
        load.close()
    return result


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    spec["node"] = tuple(spec["node"])
    print(json.dumps(asdict(run(Plan(**spec)))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
