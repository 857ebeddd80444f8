"""Callers sitting in an IVR: how many one node keeps with no audio underrun (issue #6).

The node (bench/channelnode.py: `switch run` with one more application)
answers every call to the bench DID itself: a spoken prompt in a loop
through a `Channel` (encoded once per node, sent every 20 ms from the one
media clock), barge-in on, RFC 4733 keys counted. The callers are
bench/channelload.py, a child process on the load core(s), stepping up
(STEPS: 100, 200, 300, ... callers) and, in a window of SECONDS at each
step, sending PCMU every 20 ms and a key every 3 s, and timing by the
kernel what the node sends them.

Rows:

- the largest number of callers with no underrun: no gap over 40 ms in any
  caller's stream and no packet missing, every call up (issue #6's target:
  at least 300); the note has each step's figures;
- the node's CPU per caller at that step, in ms of CPU per caller-second
  (utime + stime over the window / (callers x seconds));
- keys heard by the node against keys sent, over the steps without underrun.

The node runs on the core `python -m bench` pinned itself to, the
generator on the other(s); on a one-core machine they share it and the
note says so.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import procs
from .report import Row

ROOT = procs.ROOT
BENCHMARK = "channels"
DID = "600"
STEPS = [100, 200, 300, 400, 500, 600, 700, 800]
SECONDS, WARMUP = 10.0, 2.0
SMOKE_STEPS, SMOKE_SECONDS, SMOKE_WARMUP = [5], 2.0, 0.5
TARGET_CALLERS = 300
RTP_PORTS = (30_000, 32_000)  # below the kernel's ephemeral range, as bench/relay.py
UNIT_CPU = "ms CPU per caller-second"
FIGURE = "IVR: callers one node keeps (prompt looping, RFC 4733 keys heard), no underrun"
CPU = "IVR: node CPU per caller (at the largest step without underrun)"
KEYS = "IVR: keys the node heard / keys sent (steps without underrun)"


def _config(work: Path) -> tuple[Path, int, int]:
    sip_port, http_port = procs.free_port(), procs.free_port(socket.SOCK_STREAM)
    path = work / "node.toml"
    path.write_text(
        procs.node_toml("channels.py", work / "data", sip_port, http_port)
        + f"""
[media]
rtp_port_min = {RTP_PORTS[0]}
rtp_port_max = {RTP_PORTS[1]}
timeout = 60   # the default: its reaper's cost is part of the figure

[tenants.bench]
name = "Bench"

[tenants.bench.trunks.carrier]
inbound_from = ["127.0.0.1"]
outbound_host = "127.0.0.1:5090"
transport = "udp"
keepalive = 0

[tenants.bench.dids."{DID}"]
app = "bench"
"""
    )
    from switch.apps.builtin import builtin_apps
    from switch.config import load_config

    load_config(path, apps=[*builtin_apps(), "bench"])  # a bench bug, if it fails
    return path, sip_port, http_port


def measure(
    name: str,
    node_module: str,
    config: Callable[[Path], tuple[Path, int, int]],
    steps: list[int],
    seconds: float,
    warmup: float,
    ready_within: float = 30,
) -> tuple[dict, str]:
    """bench/channelload.py's steps against `node_module` (bench.channelnode: a
    node with the bench's application) on `config(work)`: (its figures, the
    node's first warnings). Shared with bench/ivr.py."""
    _, load_cpus = procs.cpus()
    with tempfile.TemporaryDirectory(prefix=f"switch-bench-{name}-") as tmp:
        work = Path(tmp)
        stats = work / "stats.json"
        path, sip_port, http_port = config(work)
        module = (node_module, str(stats))
        with procs.node(work, path, http_port, name, module, ready_within) as (pid, log):
            plan = {
                "node": ["127.0.0.1", sip_port], "node_pid": pid, "steps": steps,
                "seconds": seconds, "warmup": warmup, "stats": str(stats), "did": DID,
            }  # fmt: skip
            limit = len(steps) * (seconds + warmup + 30) + 120
            out = subprocess.run(
                [sys.executable, "-m", "bench.channelload", json.dumps(plan)],
                capture_output=True, text=True, cwd=ROOT, timeout=limit,
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


def _clean(step: dict) -> bool:
    return not step["underruns"] and not step["missing"] and step["up"] == step["callers"]


def _step_note(step: dict) -> str:
    callers, window = max(step["up"], 1), max(step["window_seconds"], 1e-9)
    share = step["node_cpu"] / (callers * window) * 100
    note = (
        f"{step['callers']}: {share * 10:.2f} ms/caller-s "
        f"({step['node_cpu'] / window * 100:.0f}% of the core), "
        f"{step['received']:,}/{step['expected']:,} packets, {step['underruns']} gaps > 40 ms "
        f"({step['gaps_60']} > 60), {step['missing']} missing, "
        f"worst gap {step['worst_gap_ms']:.1f} ms, "
        f"keys {step['keys_heard']}/{step['keys_sent']}"
    )
    late = step["clock_lateness"]
    note += f", node clock wake-ups late by <5/5-10/10-20/>20 ms: {'/'.join(map(str, late))}"
    if step["clock_late"]:
        note += f" ({step['clock_late']} owed 2+ frames, {step['clock_skipped']} skipped)"
    if step["gc_pauses"]:
        worst = max(ms for _, ms in step["gc_pauses"])
        note += f", {len(step['gc_pauses'])} collector pauses > 5 ms (worst {worst:.0f} ms)"
    if step["up"] < step["callers"]:
        note += f", only {step['up']} up"
    if step["stalls"]:
        note += f", generator stalled {step['stalls']}x"
    return note


def _rows(r: dict, node_log: str, smoke: bool) -> list[Row]:
    steps = r["steps"]
    clean = [s for s in steps if _clean(s)]
    best = clean[-1] if clean else None
    largest = best["callers"] if best else 0
    same_core = procs.cpus()[1] == os.sched_getaffinity(0)
    notes = " | ".join(_step_note(s) for s in steps)
    if steps and _clean(steps[-1]) and not smoke:
        notes += f" | {steps[-1]['callers']} is the largest step tried"
    if r["setup_failures"]:
        notes += f"; set-up failures: {r['setup_failures']}"
    if r["unexpected"]:
        notes += f"; unexpected: {r['unexpected']}"
    if r["drops_ours"]:
        notes += f"; {r['drops_ours']} datagrams dropped at the generator's sockets"
    if node_log:
        notes += f"; node log: {node_log[:300]}"
    if same_core:
        notes += " (one core: generator and node share it)"
    suffix = " (smoke)" if smoke else ""
    rows = [
        Row(BENCHMARK, FIGURE + suffix, float(largest), "callers",
            "" if smoke else f">= {TARGET_CALLERS}",
            None if smoke else largest >= TARGET_CALLERS, notes),
    ]  # fmt: skip
    if best is not None:
        share = best["node_cpu"] / (best["up"] * max(best["window_seconds"], 1e-9)) * 100
        note = (
            f"{best['callers']} callers: {share:.3f}% of one core per caller "
            f"({best['node_cpu']:.2f} CPU s over {best['window_seconds']:.1f} s, "
            f"{best['node_cpu_system'] / max(best['node_cpu'], 1e-9):.0%} in the kernel)"
        )
        if share > 0:
            note += f"; implies {100 / share:,.0f} callers per core"
        rows.append(Row(BENCHMARK, CPU + suffix, share * 10, UNIT_CPU, note=note))
    heard = sum(s["keys_heard"] for s in clean)
    sent = sum(s["keys_sent"] for s in clean)
    keys_note = f"{heard} heard of {sent} sent, RFC 4733, one every 3 s per caller"
    met = bool(clean) and heard == sent
    rows.append(Row(BENCHMARK, KEYS + suffix, float(heard), "keys", f"= sent ({sent})", met,
                    keys_note))  # fmt: skip
    return rows


def run(smoke: bool) -> list[Row]:
    steps, seconds, warmup = (
        (SMOKE_STEPS, SMOKE_SECONDS, SMOKE_WARMUP) if smoke else (STEPS, SECONDS, WARMUP)
    )
    if smoke:  # any error propagates: CI must see it
        result, node_log = measure("channels", "bench.channelnode", _config, steps, seconds, warmup)
        if not result["steps"] or not result["steps"][0]["received"]:
            raise RuntimeError(f"no prompt reached the callers: {json.dumps(result)[:2000]}")
        return _rows(result, node_log, smoke)
    try:
        result, node_log = measure("channels", "bench.channelnode", _config, steps, seconds, warmup)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
        print(f"bench: channels failed: {e}", file=sys.stderr)
        why = f"failed: {str(e).splitlines()[0][:200]}"
        return [Row(BENCHMARK, FIGURE, None, "callers", f">= {TARGET_CALLERS}", False, why)]
    return _rows(result, node_log, smoke)
