"""Callers sitting in the real IVR: how many one node keeps with no audio underrun (issue #6).

The same measure as bench/channels.py (the load generator
bench/channelload.py: steps of callers sending PCMU and an RFC 4733 key
every 3 s, timing what the node sends them), but every call runs the IVR
itself: the runner, the engine and a flow (bench/ivrnode.py) whose menu
prompt (espeak-ng) loops with barge-in until a key, which a gather takes
before the menu starts again. Rows: the largest step with no underrun
(target at least 300), the node's CPU per caller there, keys heard by the
flows against keys sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from . import channels, procs
from .ivrnode import PROMPT
from .report import Row

BENCHMARK = "ivr"
FLOW = f"""# Written by bench/ivr.py: a menu looping until a key, then again.
start: menu
steps:
  menu:
    - say: {{text: "{PROMPT}", loop: 0, barge_in: true}}
    - gather: {{into: key, max: 1, first_digit_timeout: 10, retries: 0, next: menu, fallback: menu}}
"""


def _config(work: Path) -> tuple[Path, int, int]:
    path, sip_port, http_port = channels._config(work)
    (work / "bench.yaml").write_text(FLOW)
    text = path.read_text().replace(
        'app = "bench"', 'ivr = "bench"\n\n[tenants.bench.ivr.bench]\nfile = "bench.yaml"'
    )
    path.write_text(text)
    from switch.config import load_config

    load_config(path)  # a bench bug, if it fails
    return path, sip_port, http_port


@contextlib.contextmanager
def _node(work: Path, config: Path, http_port: int, stats: Path) -> Iterator[tuple[int, Path]]:
    log = work / "node-ivr.log"
    cmd = [sys.executable, "-m", "bench.ivrnode", str(config), str(stats)]
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=channels.ROOT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{http_port}/healthz"
        deadline = time.monotonic() + 60
        while not procs.http_ok(url):
            if proc.poll() is not None:
                raise RuntimeError(f"node exited ({proc.returncode}):\n{procs.tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"node not ready within 60 s:\n{procs.tail(log)}")
            time.sleep(0.1)
        yield proc.pid, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        procs.stop(proc)


def _measure(steps: list[int], seconds: float, warmup: float) -> tuple[dict, str]:
    _, load_cpus = procs.cpus()
    with tempfile.TemporaryDirectory(prefix="switch-bench-ivr-") as tmp:
        work = Path(tmp)
        stats = work / "stats.json"
        config, sip_port, http_port = _config(work)
        with _node(work, config, http_port, stats) as (pid, log):
            plan = {
                "node": ["127.0.0.1", sip_port], "node_pid": pid, "steps": steps,
                "seconds": seconds, "warmup": warmup, "stats": str(stats),
                "did": channels.DID,
            }  # fmt: skip
            limit = len(steps) * (seconds + warmup + 30) + 120
            out = subprocess.run(
                [sys.executable, "-m", "bench.channelload", json.dumps(plan)],
                capture_output=True, text=True, cwd=channels.ROOT, timeout=limit,
                preexec_fn=procs.pinned(load_cpus),
            )  # fmt: skip
            lines = out.stdout.strip().splitlines()
            if out.returncode != 0 or not lines:
                raise RuntimeError(
                    f"bench/channelload.py exited {out.returncode}:\n{out.stderr[-3000:]}\n"
                    f"node log:\n{procs.tail(log)}"
                )
            time.sleep(0.3)
            problems = [
                line for line in log.read_text(errors="replace").splitlines()
                if " ERROR " in line or " WARNING " in line or "Traceback" in line
            ]  # fmt: skip
            return json.loads(lines[-1]), "; ".join(problems[:3])


def _renamed(rows: list[Row]) -> list[Row]:
    out = []
    for row in rows:
        figure = row.figure.replace("IVR:", "IVR (real flow, runner):", 1)
        out.append(dataclasses.replace(row, benchmark=BENCHMARK, figure=figure))
    return out


def run(smoke: bool) -> list[Row]:
    steps, seconds, warmup = (
        (channels.SMOKE_STEPS, channels.SMOKE_SECONDS, channels.SMOKE_WARMUP)
        if smoke
        else (channels.STEPS, channels.SECONDS, channels.WARMUP)
    )
    if os.environ.get("SWITCH_BENCH_IVR_STEPS"):
        steps = [int(n) for n in os.environ["SWITCH_BENCH_IVR_STEPS"].split(",")]
    if smoke:
        result, node_log = _measure(steps, seconds, warmup)
        if not result["steps"] or not result["steps"][0]["received"]:
            raise RuntimeError(f"no prompt reached the callers: {json.dumps(result)[:2000]}")
        return _renamed(channels._rows(result, node_log, smoke))
    try:
        result, node_log = _measure(steps, seconds, warmup)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
        print(f"bench: ivr failed: {e}", file=sys.stderr)
        why = f"failed: {str(e).splitlines()[0][:200]}"
        return [Row(BENCHMARK, channels.FIGURE, None, "callers", ">= 300", False, why)]
    return _renamed(channels._rows(result, node_log, smoke))
