"""Call recording's cost: the node's CPU per recorded call-second, beside relaying alone.

The relay bench (bench/relay.py) run three times on fresh nodes with the
same calls and media: CALLS calls up at once from a trunk to a DID the node
forwards out through the trunk, each side sending a G.711 packet every
20 ms for WARMUP + SECONDS:

1. the DID not recorded: the relay's own cost, for reference;
2. `record = true` on the DID, `[recording] format = "wav"`: each call's two
   legs tapped, jitter-buffered, decoded (PCMU by table) and written to a
   stereo WAV (switch.media.call_recording);
3. the same with `format = "opus"` (stereo Opus at 32 kbit/s in Ogg).

CPU per call = the node's utime + stime over the SECONDS window / (calls x
seconds), in ms of CPU per call-second (1 ms = 0.1% of one core). The
difference between a recorded run and the plain one is what recording
adds. For scale, the note gives what decoding both directions of a call by
table costs alone (measured here, in this process): the floor of any
recorder of G.711 audio.

After each recorded run, every call must have left a complete recording
(its JSON, no ".partial" file) at least as long as the media phase.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import procs
from .relay import _generate, _share
from .report import Row

BENCHMARK = "recording"
CALLS = 60  # recorded calls up at once (at least 50)
SECONDS = 20
WARMUP = 2
SMOKE_CALLS, SMOKE_SECONDS, SMOKE_WARMUP = 5, 2, 0.5
UNIT = "ms CPU per call-second"


def _extra(work: Path, fmt: str) -> str:
    return f'record = true\n\n[recording]\nformat = "{fmt}"\ndirectory = "{work / "rec"}"\n'


def _decode_floor() -> float:
    """ms of CPU per call-second to decode both directions of a PCMU call by table."""
    from switch.media import g711

    payload = bytes(range(160))
    runs = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(10_000):
            g711.ulaw_decode(payload)
        runs.append((time.process_time() - start) / 10_000)
    return min(runs) * 100 * 1000  # 100 frames per call-second (50 each way)


def _recordings(work: Path, calls: int, seconds: float) -> tuple[int, str]:
    """(complete recordings, what is wrong with the others)."""
    root = work / "rec"
    metas = [json.loads(p.read_text()) for p in root.rglob("*.json")] if root.exists() else []
    partial = list(root.rglob(".*.partial")) if root.exists() else []
    short = [m["duration"] for m in metas if m["duration"] < seconds]
    problems = []
    if len(metas) != calls:
        problems.append(f"{len(metas)}/{calls} recordings complete")
    if partial:
        problems.append(f"{len(partial)} left partial")
    if short:
        problems.append(f"{len(short)} shorter than {seconds:g} s (e.g. {short[0]} s)")
    good = len(metas) - len(short)
    return good, "; ".join(problems)


def _run(work: Path, cpus: set[int], calls: int, seconds: float, warmup: float, extra: str):
    result, node_log = _generate(work, cpus, calls, seconds, warmup, extra=extra)
    if result["calls_up"] == 0:
        raise RuntimeError(f"no call came up: {json.dumps(result)}\nnode log: {node_log}")
    return result, node_log


def _ms(r: dict) -> float:
    return _share(r["node_cpu"], r["calls_up"], r["window_seconds"]) * 10


def _lost(r: dict) -> int:
    return sum(r["sent"].values()) - sum(r["received"].values())


def run(smoke: bool) -> list[Row]:
    _, load_cpus = procs.cpus()
    calls, seconds, warmup = (
        (SMOKE_CALLS, SMOKE_SECONDS, SMOKE_WARMUP) if smoke else (CALLS, SECONDS, WARMUP)
    )
    suffix = " (smoke)" if smoke else ""
    floor = _decode_floor()
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory(prefix="switch-bench-recording-") as tmp:
            plain, _ = _run(Path(tmp), load_cpus, calls, seconds, warmup, "")
        base = _ms(plain)
        for fmt in ("wav", "opus"):
            with tempfile.TemporaryDirectory(prefix="switch-bench-recording-") as tmp:
                work = Path(tmp)
                result, node_log = _run(work, load_cpus, calls, seconds, warmup, _extra(work, fmt))
                time.sleep(0.5)  # the last commits (in the node's threads) land
                good, problems = _recordings(work, result["calls_up"], seconds)
            ms = _ms(result)
            complete = good == calls == result["calls_up"] and _lost(result) == 0
            note = (
                f"{result['calls_up']}/{calls} calls up, {good} complete recordings"
                f"{'; ' + problems if problems else ''}; {_lost(result)} packets lost; "
                f"relaying alone: {base:.2f} ms per call-second, so recording adds "
                f"{ms - base:.2f} ms ({(ms - base) / 10:.3f}% of a core per call); "
                f"decoding both directions by table alone: {floor:.3f} ms per call-second"
            )
            if node_log:
                note += f"; node log: {node_log}"
            rows.append(
                Row(
                    BENCHMARK,
                    f"Recording: CPU per recorded call (G.711, {fmt.upper()}), "
                    f"{calls} calls{suffix}",
                    ms,
                    UNIT,
                    "every call recorded, complete",
                    complete,
                    note,
                )
            )
            rows.append(
                Row(
                    BENCHMARK,
                    f"same, added to relaying ({fmt.upper()}){suffix}",
                    ms - base,
                    UNIT,
                    note=f"{ms:.2f} recorded - {base:.2f} relayed only",
                )
            )
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
        if smoke:
            raise
        print(f"bench: recording failed: {e}", file=sys.stderr)
        why = f"failed: {str(e).splitlines()[0][:200]}"
        rows.append(Row(BENCHMARK, "Recording: CPU per recorded call", None, UNIT, "", False, why))
    return rows
