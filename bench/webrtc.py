"""WebRTC legs' cost: the node's CPU per call-second for browser <-> trunk audio (issue #5).

Two figures, each with CALLS calls up at once and driven from another
process (bench/webrtcload.py has the details):

- (a) WebRTC(Opus) <-> RTP(PCMU), transcoded: target at most 1% of one core
  per call (10 ms of CPU per call-second);
- (b) WebRTC(PCMU) <-> RTP(PCMU), pass-through: target at most 0.3% (3 ms).

The media host (the node's `WebRtcLeg` + relay classes, no SIP) runs on the
core `python -m bench` pinned itself to; the generator (lean DTLS-SRTP
browsers and trunk sockets) on the other. CPU is the host's utime + stime
over the window, per call-second; each row's note has the loss and the
median latency added through the node each way. Beside each, aiortc's own
pipeline for one call end (RTCPeerConnection with its track: encode,
decode per frame), measured as two aiortc peers in one process, halved.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from . import procs
from .report import Row

ROOT = Path(__file__).resolve().parent.parent
BENCHMARK = "webrtc"
CALLS, SECONDS, WARMUP = 50, 20, 2
SMOKE_CALLS, SMOKE_SECONDS, SMOKE_WARMUP = 3, 2, 0.5
UNIT = "ms CPU per call-second"
CASES = {
    # name -> (transcode, target ms per call-second, aiortc codec, figure)
    "opus": (True, 10.0, "opus", "WebRTC(Opus) <-> RTP(PCMU) transcoded: CPU per call"),
    "pcmu": (False, 3.0, "pcmu", "WebRTC(PCMU) <-> RTP(PCMU) pass-through: CPU per call"),
}


def _start(mode: str, cpus: set[int], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.webrtcload", mode, *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT, preexec_fn=procs.pinned(cpus),
    )  # fmt: skip


def _say(proc: subprocess.Popen, obj: dict) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(obj) + "\n")
    proc.stdin.flush()


def _hear(proc: subprocess.Popen) -> dict:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        _, err = proc.communicate(timeout=5)
        raise RuntimeError(f"bench/webrtcload.py exited {proc.returncode}: {err[-2000:]}")
    return json.loads(line)


def _measure(transcode: bool, calls: int, seconds: float, warmup: float) -> dict:
    node_cpus, load_cpus = procs.cpus()
    host = _start("host", node_cpus)
    gen = _start("generator", load_cpus)
    try:
        _say(host, {"calls": calls, "transcode": transcode})
        offered = _hear(host)
        _say(gen, {"calls": calls, "transcode": transcode, "seconds": seconds,
                   "warmup": warmup, **offered})  # fmt: skip
        _say(host, _hear(gen))
        connected = _hear(host)
        if connected["connected"] != calls:
            raise RuntimeError(f"only {connected['connected']}/{calls} legs connected: "
                               f"{connected['failures']}")  # fmt: skip
        _say(gen, {"go": True})
        assert _hear(gen) == {"window": "start"}
        cpu0 = procs.cpu_seconds(host.pid)
        assert _hear(gen) == {"window": "end"}
        cpu1 = procs.cpu_seconds(host.pid)
        result = _hear(gen)
        _say(host, {"quit": True})
        host.wait(timeout=10)
        gen.wait(timeout=10)
    finally:
        for proc in (host, gen):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    result["node_cpu"] = cpu1 - cpu0
    result["window"] = seconds
    return result


def _aiortc(codec: str, seconds: float) -> float:
    """ms of CPU per call-second of one aiortc call end."""
    node_cpus, _ = procs.cpus()
    proc = _start("aiortc", node_cpus, str(seconds), codec)
    try:
        assert _hear(proc) == {"window": "start"}
        cpu0 = procs.cpu_seconds(proc.pid)
        assert _hear(proc) == {"window": "end"}
        cpu1 = procs.cpu_seconds(proc.pid)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return (cpu1 - cpu0) / 2 / seconds * 1000


def _rows(name: str, r: dict, aiortc_ms: float | None, smoke: bool) -> list[Row]:
    _, target, _, figure = CASES[name]
    calls, window = r["calls"], r["window"]
    ms = r["node_cpu"] / (calls * window) * 1000
    # A transcoded stream goes through an adaptive jitter buffer, which may
    # add a concealed frame while it grows its delay: more frames out than
    # in is not loss, and is reported apart.
    up, down = r["sent_up"] - r["received_up"], r["sent_down"] - r["received_down"]
    lost_up, lost_down = max(up, 0), max(down, 0)
    lost = lost_up + lost_down
    extra = f" ({-up} frames more than sent, concealment)" if up < 0 else ""
    extra_down = f" ({-down} frames more than sent, concealment)" if down < 0 else ""
    note = (
        f"{ms / 10:.3f}% of one core per call (host {r['node_cpu']:.2f} CPU s over {window:.0f} s "
        f"x {calls} calls); lost browser->trunk {lost_up}/{r['sent_up']}{extra}, trunk->browser "
        f"{lost_down}/{r['sent_down']}{extra_down}; latency added through the node (median) "
        f"{r['latency_up_ms']:.2f} ms browser->trunk, {r['latency_down_ms']:.2f} ms "
        f"trunk->browser; generator worst lateness {r['worst_lateness_ms']:.1f} ms"
    )
    if aiortc_ms is not None:
        note += f"; aiortc's own pipeline for one call end: {aiortc_ms:.1f} ms per call-second"
    suffix = " (smoke)" if smoke else ""
    return [
        Row(BENCHMARK, f"{figure}, {calls} calls{suffix}", ms, UNIT,
            "" if smoke else f"<= {target:.1f} ({target / 10:g}% of a core per call)",
            None if smoke else (ms <= target and lost == 0), note),
        Row(BENCHMARK, f"aiortc's pipeline, the same call end ({name}){suffix}", aiortc_ms,
            UNIT, note="RTCPeerConnection with its track: encode and decode per frame, for "
            "comparison with the row above"),
    ]  # fmt: skip


def run(smoke: bool) -> list[Row]:
    calls, seconds, warmup = (
        (SMOKE_CALLS, SMOKE_SECONDS, SMOKE_WARMUP) if smoke else (CALLS, SECONDS, WARMUP)
    )
    rows: list[Row] = []
    for name, (transcode, _, codec, figure) in CASES.items():
        try:
            result = _measure(transcode, calls, seconds, warmup)
            if result["received_up"] == 0 or result["received_down"] == 0:
                raise RuntimeError(f"no audio crossed the node both ways: {result}")
            aiortc_ms = _aiortc(codec, seconds)
        except (RuntimeError, AssertionError, subprocess.TimeoutExpired, ValueError) as e:
            if smoke:
                raise
            print(f"bench: webrtc {name} failed: {e}", file=sys.stderr)
            rows.append(Row(BENCHMARK, figure, None, UNIT, "", False, f"failed: {str(e)[:200]}"))
            continue
        rows.extend(_rows(name, result, aiortc_ms, smoke))
    return rows
