"""The load generator of bench/relay.py: calls through the node, then RTP both ways.

Run by bench/relay.py as a child process on the load core(s):

    python -m bench.rtpload '{"node": ["127.0.0.1", 5060], "far_port": 5090, ...}'

It prints one JSON object (a `Result`) on its last line of stdout.

It plays both ends of a trunk with plain UDP sockets on 127.0.0.1: the
carrier's side that sends CALLS INVITEs to the node (each offering one of
its RTP sockets), and the far end the node forwards them to (answering each
with 200 and an SDP naming another RTP socket). Once every call is up, each
side of each call sends one G.711 packet (12-byte RTP header + 160 bytes)
every 20 ms to the relay port the node's SDP named, for warmup + seconds,
from one timer loop for all calls (the calls are spread over SLOTS slots of
the 20 ms so that they do not all arrive at once). What comes back is
counted per direction. The node's CPU time is read from /proc around the
measured window (and for IDLE_SECONDS before the media, with the calls up).
Then every call is hung up with a BYE from the carrier side.

SIP here is the least that works against the node: its own minimal text
handling (not the node's parser), answers to retransmissions, resends of
unanswered INVITEs and BYEs. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import gc
import json
import os
import re
import resource
import secrets
import select
import socket
import struct
import sys
import time
from dataclasses import asdict, dataclass, field

PACKET_INTERVAL = 0.020  # 20 ms of G.711 per packet
PAYLOAD = b"\xff" * 160  # 20 ms of PCMU silence
PACKET_SIZE = 12 + len(PAYLOAD)
# Each 20 ms is split in this many slots, a tenth of the calls sending in
# each: phones' packets are not in step, so the node should not get them in
# one burst a period (a burst lets it relay many per wake-up).
SLOTS = 10
SETUP_RATE = 100  # INVITEs per second
RESEND_AFTER = 1.0  # seconds before an unanswered INVITE or BYE is sent again
RESENDS = 4  # at most this many times
IDLE_SECONDS = 2.0  # node CPU read with the calls up and no media, before the media
FORWARD = "4000"  # the number the node forwards the DID to (bench/relay.py's config)
# RFC 3261's compact header names, for the few headers read here.
COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact"}


@dataclass
class Plan:
    node: tuple[str, int]  # the node's SIP address
    far_port: int  # where the trunk's outbound_host points: our far end binds it
    node_pid: int
    calls: int
    seconds: float  # the measured window
    warmup: float  # media before the window, not measured
    did: str = "400"
    slots: int = SLOTS


@dataclass
class Result:
    calls_asked: int = 0
    calls_up: int = 0  # answered on the carrier's side and ACKed on the far end's
    setup_seconds: float = 0.0
    setup_failures: dict[str, int] = field(default_factory=dict)  # "486", "no answer", ...
    # Per direction: "to_far" (carrier -> relay -> far end) and "to_caller".
    sent: dict[str, int] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)
    send_errors: int = 0
    bad_packets: int = 0  # received with another size or payload than sent
    window_seconds: float = 0.0
    window_packets_sent: int = 0
    node_cpu: float = 0.0  # CPU seconds of the node in the window (user + system)
    node_cpu_system: float = 0.0  # ... of which in the kernel (system calls, UDP delivery)
    node_cpu_idle: float = 0.0  # ... in IDLE_SECONDS with the calls up and no media
    idle_seconds: float = 0.0
    generator_cpu: float = 0.0  # CPU seconds of this process in the window
    stalls: int = 0  # times the sender fell a whole 20 ms behind and skipped ahead
    worst_lateness_ms: float = 0.0
    drops_node: int = 0  # datagrams dropped at the node's relay sockets (/proc/net/udp)
    drops_ours: int = 0  # ... at this generator's RTP sockets
    hung_up: int = 0  # calls whose BYE got a 200
    unexpected: dict[str, int] = field(default_factory=dict)  # SIP we did not expect


# -- SIP, as little as works ---------------------------------------------------------


def _parse(data: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """(first line, [(lower-case name, value)], body)."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers.append((COMPACT.get(name, name), value.strip()))
    return lines[0], headers, body


def _get(headers: list[tuple[str, str]], name: str) -> str:
    return next((value for key, value in headers if key == name), "")


def _reply(
    headers: list[tuple[str, str]],
    status: str,
    to_tag: str = "",
    extra: tuple[str, ...] = (),
    body: bytes = b"",
) -> bytes:
    """A response copying Via, From, To, Call-ID and CSeq from a request."""
    lines = [f"SIP/2.0 {status}"]
    for key, value in headers:
        if key == "to" and to_tag and ";tag=" not in value:
            value = f"{value};tag={to_tag}"
        if key in ("via", "from", "to", "call-id", "cseq"):
            lines.append(f"{key.title()}: {value}")
    lines += [*extra, f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


_SDP_HOST = re.compile(rb"^c=IN IP4 (\S+)", re.MULTILINE)
_SDP_PORT = re.compile(rb"^m=audio (\d+) ", re.MULTILINE)


def _audio_at(body: bytes) -> tuple[str, int] | None:
    """Where an SDP's audio goes (its first c= line: the node sends one)."""
    host, port = _SDP_HOST.search(body), _SDP_PORT.search(body)
    if host is None or port is None or port.group(1) == b"0":
        return None
    return host.group(1).decode(), int(port.group(1))


def _sdp(user: str, port: int) -> bytes:
    return (
        f"v=0\r\no={user} 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n"
    ).encode()


def _uri(contact: str) -> str:
    return contact[contact.find("<") + 1 : contact.find(">")] if "<" in contact else contact


@dataclass
class CallerLeg:
    """One call as the carrier placing it sees it."""

    index: int
    call_id: str
    rtp: socket.socket
    state: str = "new"  # new, trying, up, failed, hanging-up, ended
    sent_at: float = 0.0
    tries: int = 0
    text: bytes = b""  # the INVITE, then the BYE: what a resend sends
    ok_headers: list[tuple[str, str]] = field(default_factory=list)
    relay: tuple[str, int] | None = None  # where its RTP goes: the node's leg A
    far: FarLeg | None = None  # the same call at the far end, paired by the caller's number

    @property
    def up(self) -> bool:
        """Answered here, ACKed there, with a relay address on both sides."""
        far = self.far
        if self.state != "up" or self.relay is None or far is None:
            return False
        return far.acked and far.relay is not None


@dataclass
class FarLeg:
    """One call as the far end answering it sees it."""

    rtp: socket.socket
    ok: bytes  # our 200, sent again for a resent INVITE
    relay: tuple[str, int] | None  # where its RTP goes: the node's leg B
    acked: bool = False
    ended: bool = False


class Phones:
    """The carrier's SIP socket and the far end's, with the calls on them."""

    def __init__(self, plan: Plan, result: Result) -> None:
        self.plan, self.result = plan, result
        self.carrier = _udp(0)
        self.far = _udp(plan.far_port)
        self.host, self.port = self.carrier.getsockname()
        tag = secrets.token_hex(4)
        self.calls = [CallerLeg(i, f"relay-{tag}-{i}", _udp(0)) for i in range(plan.calls)]
        self.by_id = {leg.call_id: leg for leg in self.calls}
        self.by_number = {_number(leg.index): leg for leg in self.calls}
        self.far_rtp = [_udp(0) for _ in range(plan.calls)]
        self.far_calls: dict[str, FarLeg] = {}

    def close(self) -> None:
        for sock in (self.carrier, self.far, *self.far_rtp, *(c.rtp for c in self.calls)):
            sock.close()

    def _unexpected(self, what: str) -> None:
        self.result.unexpected[what] = self.result.unexpected.get(what, 0) + 1

    # The carrier's side.

    def invite(self, leg: CallerLeg, now: float) -> None:
        if not leg.text:
            sdp = _sdp("carrier", leg.rtp.getsockname()[1])
            (host, port), number = self.plan.node, _number(leg.index)
            lines = [
                f"INVITE sip:{self.plan.did}@{host}:{port} SIP/2.0",
                f"Via: SIP/2.0/UDP {self.host}:{self.port};"
                f"branch=z9hG4bK{secrets.token_hex(8)};rport",
                "Max-Forwards: 70",
                f"From: <sip:{number}@{self.host}>;tag=c{leg.index}",
                f"To: <sip:{self.plan.did}@{host}>",
                f"Call-ID: {leg.call_id}",
                "CSeq: 1 INVITE",
                f"Contact: <sip:{number}@{self.host}:{self.port}>",
                "Content-Type: application/sdp",
                f"Content-Length: {len(sdp)}",
                "",
                "",
            ]
            leg.text = "\r\n".join(lines).encode() + sdp
        self._send(leg, now)

    def bye(self, leg: CallerLeg, now: float) -> None:
        h = leg.ok_headers
        leg.text = "\r\n".join(
            [
                f"BYE {_uri(_get(h, 'contact'))} SIP/2.0",
                f"Via: SIP/2.0/UDP {self.host}:{self.port};"
                f"branch=z9hG4bK{secrets.token_hex(8)};rport",
                "Max-Forwards: 70",
                f"From: {_get(h, 'from')}",
                f"To: {_get(h, 'to')}",
                f"Call-ID: {leg.call_id}",
                "CSeq: 2 BYE",
                "Content-Length: 0",
                "",
                "",
            ]
        ).encode()
        leg.state, leg.tries = "hanging-up", 0
        self._send(leg, now)

    def _send(self, leg: CallerLeg, now: float) -> None:
        self.carrier.sendto(leg.text, self.plan.node)
        leg.sent_at, leg.tries = now, leg.tries + 1

    def resend(self, now: float) -> None:
        """INVITEs and BYEs with no answer yet, again; given up after RESENDS."""
        for leg in self.calls:
            if not leg.tries:
                continue  # not placed yet
            if leg.state in ("new", "hanging-up") and now - leg.sent_at > RESEND_AFTER:
                if leg.tries > RESENDS:
                    if leg.state == "new":
                        self._failed(leg, "no answer")
                    else:
                        leg.state = "ended"
                        self._unexpected("BYE not answered")
                else:
                    self._send(leg, now)

    def _failed(self, leg: CallerLeg, why: str) -> None:
        leg.state = "failed"
        self.result.setup_failures[why] = self.result.setup_failures.get(why, 0) + 1

    def _ack(self, headers: list[tuple[str, str]], branch: str) -> None:
        via = f"SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport"
        lines = [
            f"ACK {_uri(_get(headers, 'contact')) or f'sip:{self.plan.did}@127.0.0.1'} SIP/2.0",
            f"Via: {via}",
            "Max-Forwards: 70",
            f"From: {_get(headers, 'from')}",
            f"To: {_get(headers, 'to')}",
            f"Call-ID: {_get(headers, 'call-id')}",
            f"CSeq: {_get(headers, 'cseq').split()[0]} ACK",
            "Content-Length: 0",
            "",
            "",
        ]
        self.carrier.sendto("\r\n".join(lines).encode(), self.plan.node)

    def on_carrier(self, data: bytes) -> None:
        first, headers, body = _parse(data)
        leg = self.by_id.get(_get(headers, "call-id"))
        if not first.startswith("SIP/2.0 "):  # a request from the node
            method = first.split(" ", 1)[0]
            self._unexpected(f"{method} to the carrier")
            if method != "ACK":
                self.carrier.sendto(_reply(headers, "200 OK"), self.plan.node)
            if method == "BYE" and leg is not None:
                leg.state = "ended"
            return
        if leg is None:
            return
        status = int(first.split()[1])
        method = _get(headers, "cseq").split()[-1]
        if method == "BYE" and status >= 200:
            if leg.state == "hanging-up":
                leg.state = "ended"
                self.result.hung_up += status < 300
            return
        if method != "INVITE" or status < 100:
            return
        if status < 200:
            if leg.state == "new":
                leg.state = "trying"
        elif status < 300:
            # A new branch: the ACK of a 2xx is a transaction of its own.
            self._ack(headers, f"z9hG4bK{secrets.token_hex(8)}")
            if leg.state in ("new", "trying"):
                leg.state, leg.ok_headers = "up", headers
                leg.relay = _audio_at(body)
                if leg.relay is None:
                    self._failed(leg, "200 without an audio address")
        else:
            # Non-2xx: ACKed in the INVITE's own transaction (same branch).
            via = _get(headers, "via")
            branch = re.search(r"branch=([^;\s]+)", via)
            self._ack(headers, branch.group(1) if branch else "z9hG4bKnone")
            if leg.state in ("new", "trying"):
                self._failed(leg, first.split(" ", 1)[1][:60])

    # The far end's side.

    def on_far(self, data: bytes, addr: tuple[str, int]) -> None:
        first, headers, body = _parse(data)
        if first.startswith("SIP/2.0 "):
            return  # an answer to nothing we sent
        method, call_id = first.split(" ", 1)[0], _get(headers, "call-id")
        far = self.far_calls.get(call_id)
        if method == "INVITE":
            if far is None:
                # The node passes the caller's number on in From: that pairs the legs.
                number = re.search(r"sip:([^@;>]+)@", _get(headers, "from"))
                leg = self.by_number.get(number.group(1) if number else "")
                if leg is None or leg.far is not None:
                    self.far.sendto(_reply(headers, "486 Busy Here", "busy"), addr)
                    self._unexpected("INVITE not from a call placed here")
                    return
                rtp = self.far_rtp[leg.index]
                sdp = _sdp("far", rtp.getsockname()[1])
                extra = (
                    f"Contact: <sip:{FORWARD}@127.0.0.1:{self.plan.far_port}>",
                    "Content-Type: application/sdp",
                )
                ok = _reply(headers, "200 OK", f"f{leg.index}", extra, sdp)
                far = leg.far = FarLeg(rtp, ok, _audio_at(body))
                self.far_calls[call_id] = far
            self.far.sendto(far.ok, addr)
        elif method == "ACK":
            if far is not None:
                far.acked = True
        else:  # BYE, OPTIONS, anything else: 200
            self.far.sendto(_reply(headers, "200 OK"), addr)
            if method == "BYE" and far is not None:
                far.ended = True
            elif method != "BYE":
                self._unexpected(f"{method} to the far end")

    def poll_sip(self, poller: select.epoll, timeout: float) -> None:
        for fd, _ in poller.poll(max(timeout, 0.0)):
            self.poll_sip_fd(fd)

    def poll_sip_fd(self, fd: int) -> None:
        """What waits on one of the two SIP sockets (at most 64 datagrams)."""
        sock = self.carrier if fd == self.carrier.fileno() else self.far
        for _ in range(64):
            try:
                data, addr = sock.recvfrom(65535)
            except BlockingIOError:
                break
            if sock is self.carrier:
                self.on_carrier(data)
            else:
                self.on_far(data, addr)


def _number(index: int) -> str:
    """The caller's number of call `index`: E.164 in the demo tenant's plan
    (+44), so the node passes it on in From exactly as sent."""
    return f"+44555{index:07d}"


def _udp(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def _node_cpu(pid: int) -> tuple[float, float]:
    """(utime + stime, stime) of the node (all its threads) in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, int(fields[12]) / tick


def _udp_drops() -> dict[int, int]:
    """Datagrams dropped so far at each 127.0.0.1 UDP socket, by local port."""
    drops: dict[int, int] = {}
    with open("/proc/net/udp") as table:
        for line in list(table)[1:]:
            cols = line.split()
            host, port = cols[1].split(":")
            if host == "0100007F":
                drops[int(port, 16)] = drops.get(int(port, 16), 0) + int(cols[-1])
    return drops


# -- the run ---------------------------------------------------------------------------


def _set_up(phones: Phones, result: Result) -> None:
    """Place every call at SETUP_RATE/s and wait (bounded) until they are up or failed."""
    poller = select.epoll()
    poller.register(phones.carrier.fileno(), select.EPOLLIN)
    poller.register(phones.far.fileno(), select.EPOLLIN)
    start = time.monotonic()
    deadline = start + len(phones.calls) / SETUP_RATE + RESEND_AFTER * (RESENDS + 2) + 5
    placed = 0
    while time.monotonic() < deadline:
        now = time.monotonic()
        due = min(len(phones.calls), int((now - start) * SETUP_RATE) + 1)
        for leg in phones.calls[placed:due]:
            phones.invite(leg, now)
        placed = due
        phones.resend(now)
        if placed == len(phones.calls) and all(
            leg.up or leg.state == "failed" for leg in phones.calls
        ):
            break
        phones.poll_sip(poller, 0.005)
    for leg in phones.calls:
        if leg.state == "up" and not leg.up:
            phones._failed(leg, "answered but not ACKed at the far end in time")
        elif leg.state != "failed" and not leg.up:
            phones._failed(leg, "not answered in time")
    poller.close()
    result.setup_seconds = time.monotonic() - start


def _packet(seq: int, ssrc: int) -> bytes:
    return struct.pack(">BBHII", 0x80, 0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc) + PAYLOAD


def _rtp(phones: Phones, plan: Plan, result: Result) -> None:
    """RTP both ways on every call that is up; counts, CPU, lateness."""
    # (socket that sends, direction it sends in); the receiving side counts
    # in the other direction. Connected: send() is cheaper, and only the
    # relay's port (where we send) is heard, as a symmetric RTP peer must be.
    streams: list[tuple[socket.socket, str]] = []
    legs = [leg for leg in phones.calls if leg.up]
    for leg in legs:
        assert leg.far is not None and leg.relay is not None and leg.far.relay is not None
        leg.rtp.connect(leg.relay)
        leg.far.rtp.connect(leg.far.relay)
        streams += [(leg.rtp, "to_far"), (leg.far.rtp, "to_caller")]
    direction = {sock.fileno(): d for sock, d in streams}
    receives_as = {"to_far": "to_caller", "to_caller": "to_far"}
    by_fd = {sock.fileno(): sock for sock, _ in streams}
    result.sent = {"to_far": 0, "to_caller": 0}
    result.received = {"to_far": 0, "to_caller": 0}
    poller = select.epoll()
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    sip = (phones.carrier.fileno(), phones.far.fileno())
    for fd in sip:
        poller.register(fd, select.EPOLLIN)

    def receive(timeout: float) -> None:
        for fd, _ in poller.poll(max(timeout, 0.0), 1024):
            if fd in sip:
                phones.poll_sip_fd(fd)
                continue
            try:
                data = by_fd[fd].recv(2048)
            except (BlockingIOError, ConnectionRefusedError):
                continue
            result.received[receives_as[direction[fd]]] += 1
            if len(data) != PACKET_SIZE or data[12:] != PAYLOAD:
                result.bad_packets += 1

    # Idle: the calls up, no media. What the node spends anyway.
    idle_start, (cpu, _) = time.monotonic(), _node_cpu(plan.node_pid)
    while time.monotonic() - idle_start < IDLE_SECONDS:
        receive(idle_start + IDLE_SECONDS - time.monotonic())
    result.idle_seconds = time.monotonic() - idle_start
    result.node_cpu_idle = _node_cpu(plan.node_pid)[0] - cpu

    warmup_periods = round(plan.warmup / PACKET_INTERVAL)
    periods = warmup_periods + round(plan.seconds / PACKET_INTERVAL)
    slot = PACKET_INTERVAL / plan.slots
    groups = [streams[g :: plan.slots] for g in range(plan.slots)]
    ssrc = {sock.fileno(): 0x10000 + i for i, (sock, _) in enumerate(streams)}
    gc.disable()  # no collector pauses in the sender's timing (bounded: a few minutes)
    try:
        start = time.monotonic()
        hard_stop = start + (periods * PACKET_INTERVAL) * 2 + 10
        next_at = start
        window_start = window_gen = 0.0
        window_cpu = (0.0, 0.0)
        sent_before = 0
        for period in range(periods):
            if period == warmup_periods:
                window_start, window_cpu = time.monotonic(), _node_cpu(plan.node_pid)
                window_gen = time.process_time()
                sent_before = sum(result.sent.values())
            for group in groups:
                now = time.monotonic()
                while now < next_at:  # receive until this slot is due
                    receive(next_at - now)
                    now = time.monotonic()
                late = now - next_at
                result.worst_lateness_ms = max(result.worst_lateness_ms, late * 1000)
                if late > PACKET_INTERVAL:  # a whole period behind: skip ahead, say so
                    result.stalls += 1
                    next_at = now
                for sock, d in group:
                    try:
                        sock.send(_packet(period, ssrc[sock.fileno()]))
                    except OSError:
                        result.send_errors += 1
                        continue
                    result.sent[d] += 1
                next_at += slot
            if time.monotonic() > hard_stop:
                break
        now = time.monotonic()
        while now < next_at:  # the last period's time
            receive(next_at - now)
            now = time.monotonic()
        result.window_seconds = time.monotonic() - window_start
        cpu, system = _node_cpu(plan.node_pid)
        result.node_cpu, result.node_cpu_system = cpu - window_cpu[0], system - window_cpu[1]
        result.generator_cpu = time.process_time() - window_gen
        result.window_packets_sent = sum(result.sent.values()) - sent_before
        # What is still in flight, then no more.
        drain_end = time.monotonic() + 1.0
        while sum(result.received.values()) < sum(result.sent.values()):
            if time.monotonic() > drain_end:
                break
            receive(0.05)
    finally:
        gc.enable()
        poller.close()
    drops = _udp_drops()
    ours = {sock.getsockname()[1] for sock, _ in streams}
    relay_ports = {leg.relay[1] for leg in legs if leg.relay} | {
        leg.far.relay[1] for leg in legs if leg.far and leg.far.relay
    }
    result.drops_ours = sum(drops.get(port, 0) for port in ours)
    result.drops_node = sum(drops.get(port, 0) for port in relay_ports)


def _hang_up(phones: Phones) -> None:
    poller = select.epoll()
    poller.register(phones.carrier.fileno(), select.EPOLLIN)
    poller.register(phones.far.fileno(), select.EPOLLIN)
    now = time.monotonic()
    legs = [leg for leg in phones.calls if leg.ok_headers]  # answered, up or not
    for leg in legs:
        phones.bye(leg, now)
    deadline = now + RESEND_AFTER * (RESENDS + 2) + 5
    while time.monotonic() < deadline and any(leg.state == "hanging-up" for leg in legs):
        phones.resend(time.monotonic())
        phones.poll_sip(poller, 0.02)
    poller.close()


def run(plan: Plan) -> Result:
    result = Result(calls_asked=plan.calls)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 2 * plan.calls + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * plan.calls + 64), hard))
    phones = Phones(plan, result)
    try:
        _set_up(phones, result)
        result.calls_up = sum(leg.up for leg in phones.calls)
        if result.calls_up:
            _rtp(phones, plan, result)
        _hang_up(phones)
    finally:
        phones.close()
    return result


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    spec["node"] = tuple(spec["node"])
    print(json.dumps(asdict(run(Plan(**spec)))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
