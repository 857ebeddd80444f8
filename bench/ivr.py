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

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from . import channels
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


def _measure(steps: list[int], seconds: float, warmup: float) -> tuple[dict, str]:
    return channels.measure("ivr", "bench.ivrnode", _config, steps, seconds, warmup, 60)


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
        result, node_log = channels.measure(
            "ivr", "bench.ivrnode", _config, steps, seconds, warmup, 60
        )
        if not result["steps"] or not result["steps"][0]["received"]:
            raise RuntimeError(f"no prompt reached the callers: {json.dumps(result)[:2000]}")
        return _renamed(channels._rows(result, node_log, smoke))
    try:
        result, node_log = channels.measure(
            "ivr", "bench.ivrnode", _config, steps, seconds, warmup, 60
        )
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
        print(f"bench: ivr failed: {e}", file=sys.stderr)
        why = f"failed: {str(e).splitlines()[0][:200]}"
        return [Row(BENCHMARK, channels.FIGURE, None, "callers", ">= 300", False, why)]
    return _renamed(channels._rows(result, node_log, smoke))
