"""Calls per second through the routing path, from SIPp, for one node process.

A trunk delivers calls (SIPp, sipp-scenarios/bench_call_uac.xml) to a DID
the node forwards out through the same trunk to its far end (another SIPp,
bench_call_uas.xml): INVITE with SDP, 180, 200, ACK, 500 ms of call, BYE,
200. Signaling only: no RTP flows, but the node still anchors each call's
media (its relay binds two port pairs and rewrites the SDP both ways). The
node is a B2BUA, so every call is two dialogs.

Figures:

- the target check: SIPp offers a fixed rate (open loop, 10% above the
  target) for about SECONDS; the figure is completed calls over SIPp's
  elapsed time, and the target is met only with zero failed calls;
- the most our node does: SIPp asks for far more than it can take but keeps
  at most CAPACITY_OUTSTANDING calls up (closed loop), so the node runs
  flat out; a call lasts 500 ms plus its set-up, which caps that figure at
  under twice CAPACITY_OUTSTANDING per second;
- for scale, the target check's caller and callee at the same offered rate
  through sippy's B2BUA (b2bua_simple from .venv-bench, every call to the
  callee) and through Kamailio as a stateful proxy (bench/kamailio/proxy.cfg:
  t_relay, record-route, loose_route for ACK and BYE), which does less per
  call than a B2BUA.

For each server the callee SIPp starts first (it also answers the node's
OPTIONS keepalive to the trunk), then the server, then the caller SIPp for
each run. Each server runs on the core `python -m bench` pinned itself to;
both SIPps run on the other core(s). Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import procs
from .register import _ensure_kamailio, _NotRun
from .report import Row

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
UAC = ROOT / "sipp-scenarios" / "bench_call_uac.xml"
UAS = ROOT / "sipp-scenarios" / "bench_call_uas.xml"
PROXY_CFG = HERE / "kamailio" / "proxy.cfg"
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
BENCHMARK = "calls"

DID, FORWARD = "400", "4000"  # the trunk's call to DID goes out to FORWARD
TARGET = 500  # completed calls/s with zero failed, issue #4
OFFER = 1.1  # the target check offers this much more than the target
SECONDS = 10  # about this long per measured run
# Calls up at once in the capacity run: enough that the node, not the
# 500 ms the calls last, sets the pace. The rate asked for spreads the first
# of them over a fraction of a second instead of one burst.
CAPACITY_OUTSTANDING = 800
CAPACITY_RATE = 5_000
# Calls asked for in the capacity run: about SECONDS at the rate the node is
# expected to reach; a faster or slower node only makes the run shorter or
# longer (never past the SIPp timeout, which allows a quarter of this rate).
CAPACITY_GUESS = 700
KAMAILIO_WORKERS = 2  # UDP worker processes (-n), on the one core
RTP_PORTS = (20_000, 30_000)  # the node's relay: 2,500 calls up at once
SMOKE_COUNT, SMOKE_RATE = 20, 10

FIGURE = f"calls/s through the routing path (B2BUA, trunk in, DID {DID}, trunk out), 500 ms calls"
SIPPY = "sippy B2BUA (b2bua_simple), same calls, same offered rate"
KAMAILIO = "Kamailio as a stateful proxy (less work than a B2BUA), same calls, same offered rate"


@dataclass
class CallRun:
    offered: str  # what SIPp was asked for, for the note
    count: int
    successful: int
    failed: int
    retransmissions: int
    elapsed: float  # seconds, from the caller SIPp's own start and end times
    server_cpu: float  # CPU seconds the server used during the run
    sipp_cpu: float  # CPU seconds both SIPps used during the run
    errors: str  # the commonest events in the caller's error log, when calls failed
    answered: str = "?"  # the callee's count of its calls
    callee_errors: str = ""
    server_log: str = ""  # warnings and errors the server logged during the run

    @property
    def rate(self) -> float:
        return self.successful / self.elapsed if self.elapsed > 0 else 0.0

    def note(self) -> str:
        elapsed = max(self.elapsed, 1e-9)
        server, sipp = self.server_cpu / elapsed * 100, self.sipp_cpu / elapsed * 100
        text = (
            f"{self.offered}; {self.successful:,}/{self.count:,} calls ok, {self.failed:,} failed, "
            f"{self.retransmissions:,} retransmissions in {self.elapsed:.1f} s "
            f"(callee: {self.answered}); "
            f"CPU: server {server:.0f}%, SIPp caller + callee {sipp:.0f}% of a core"
        )
        if sipp >= 90:  # the two SIPps share the load core: they are the limit
            text += " (SIPp-bound: a lower bound for the server)"
        elif "up at once" in self.offered and server < 90:
            text += " (server not saturated: a lower bound)"
        if self.errors:
            text += f"; caller SIPp errors: {self.errors}"
        if self.callee_errors:
            text += f"; callee SIPp errors: {self.callee_errors}"
        if self.server_log:
            text += f"; server log: {self.server_log}"
        return text


# -- SIPp ----------------------------------------------------------------------


def _sipp_bin() -> str:
    sipp = shutil.which("sipp")
    if sipp is None:
        raise RuntimeError("sipp is not installed: apt-get install sip-tester (make bench does)")
    return sipp


def _last_stats(path: Path) -> dict[str, str]:
    """The last line of a SIPp -trace_stat file, by column name."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))


def _error_summary(path: Path, offset: int = 0) -> str:
    """The two commonest kinds of event in a SIPp error log from `offset` on, counted.

    As bench/register.py's, with any Call-ID dropped (the node's have no
    "@") and room for the first line of the message SIPp did not expect.
    """
    try:
        with path.open("rb") as log:
            log.seek(offset)
            text = log.read(4 << 20).decode(errors="replace")
    except OSError:
        return ""
    kinds: Counter[str] = Counter()
    # Each event starts "<date>\t<time>\t<epoch>: ", not always on a new line.
    for event in re.split(r"\d{4}-\d\d-\d\d\t[\d:.]+\t\d+\.\d+: ", text)[1:]:
        first = event.splitlines()[0] if event else ""
        # A late copy to a finished call; an OPTIONS answered (-aa): no failures.
        if not first.startswith(("Dead call", "Automatic response mode")):
            kinds[re.sub(r"Call-Id:? '?[^\s']+'?", "Call-Id _", first)[:200]] += 1
    return "; ".join(f"{n:,} x {kind}" for kind, n in kinds.most_common(2))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _bound(port: int) -> bool:
    """Is a UDP socket bound to 127.0.0.1:port? (Asked without sending to it.)"""
    wanted = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/udp") as table:
            return any(line.split()[1] == wanted for line in list(table)[1:])
    except OSError:
        return True  # no /proc: carry on, SIPp binds within milliseconds


@dataclass
class Callee:
    """The far end of the trunk, a SIPp that answers every call sent to it."""

    pid: int
    stats: Path  # cumulative counters, a line a second (-fd 1)
    errors: Path

    def counts(self) -> tuple[int, int]:
        """Calls it has completed and failed so far."""
        try:
            last = _last_stats(self.stats)
            return int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])
        except (OSError, IndexError, KeyError, ValueError):
            return 0, 0

    def settle(self, before: tuple[int, int], count: int) -> tuple[int, int]:
        """Its completed and failed calls since `before`, once `count` are done.

        Its calls end 2 s after their BYE (bench_call_uas.xml) and its
        counters are written each second: waits for them, 10 s at most.
        """
        ok, failed = 0, 0
        deadline = time.monotonic() + 10
        for _ in range(50):
            now = self.counts()
            ok, failed = now[0] - before[0], now[1] - before[1]
            if ok + failed >= count or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        return ok, failed


@contextlib.contextmanager
def _callee(work: Path, port: int, cpus: set[int], limit: int) -> Iterator[Callee]:
    """The far end of the trunk: SIPp answering on `port` until the block ends.

    One for all the runs against a server, started before it: it answers
    the node's OPTIONS keepalive to the trunk (-aa) from the first one on.
    Its statistics are read run by run (Callee.settle), so it is simply
    stopped at the end (each OPTIONS leaves it a call that never ends); it
    stops after `limit` seconds whatever happens.
    """
    stats, errors, log = work / "uas-stats.csv", work / "uas-errors.log", work / "uas.log"
    for path in (stats, errors):
        path.unlink(missing_ok=True)
    cmd = [
        _sipp_bin(), "-sf", str(UAS), "-t", "u1", "-i", "127.0.0.1", "-p", str(port),
        # 200 to OPTIONS (the trunk keepalive), INFO, NOTIFY, UPDATE. A call
        # without ACK or BYE fails after 10 s (timeouts in the scenario).
        "-aa",
        "-timeout", f"{limit}s",
        "-buff_size", str(4 << 20),
        "-nostdin", "-trace_stat", "-fd", "1", "-stf", str(stats),
        "-trace_err", "-error_file", str(errors),
    ]  # fmt: skip
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            cmd,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=work,
            start_new_session=True,
            preexec_fn=procs.pinned(cpus),
        )
    try:
        deadline = time.monotonic() + 10
        for _ in range(100):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the callee SIPp exited ({proc.returncode}):\n{procs.tail(log)}"
                )
            if _bound(port) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if not _bound(port):
            raise RuntimeError(f"the callee SIPp did not bind 127.0.0.1:{port}:\n{procs.tail(log)}")
        yield Callee(proc.pid, stats, errors)
    finally:
        procs.stop(proc)


def _caller(
    work: Path,
    server: tuple[int, int, Path],
    callee_pid: int,
    cpus: set[int],
    count: int,
    rate: int,
    outstanding: int,
    limit: int,
) -> CallRun:
    """Place `count` calls at `rate`/s, at most `outstanding` up, to the server."""
    port, server_pid, _ = server
    stats, errors = work / "uac-stats.csv", work / "uac-errors.log"
    for path in (stats, errors):
        path.unlink(missing_ok=True)
    cmd = [
        _sipp_bin(), "-sf", str(UAC), f"127.0.0.1:{port}", "-t", "u1",
        "-i", "127.0.0.1", "-p", str(procs.free_port()), "-s", DID,
        "-m", str(count), "-r", str(rate), "-rp", "1000", "-l", str(outstanding),
        # A call not answered within 5 s fails (retransmissions go on until
        # then), so a stalled server ends the run quickly.
        "-recv_timeout", "5000",
        "-timeout", f"{limit}s", "-timeout_error",
        "-buff_size", str(4 << 20),
        "-nostdin", "-trace_stat", "-stf", str(stats),
        "-trace_err", "-error_file", str(errors),
    ]  # fmt: skip
    cpu_before = procs.cpu_seconds(server_pid)
    callee_before = procs.cpu_seconds(callee_pid)
    # The caller is the only child this process waits for during the run.
    sipp_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=work,
        timeout=limit + 30,
        preexec_fn=procs.pinned(cpus),
    )
    server_cpu = procs.cpu_seconds(server_pid) - cpu_before
    callee_cpu = procs.cpu_seconds(callee_pid) - callee_before
    sipp_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sipp_cpu = (sipp_after.ru_utime + sipp_after.ru_stime) - (
        sipp_before.ru_utime + sipp_before.ru_stime
    )
    try:
        last = _last_stats(stats)
        # "2026-11-23\t10:42:32.531884\t1795430552.531884": the epoch is last.
        start, end = (float(last[key].split("\t")[-1]) for key in ("StartTime", "CurrentTime"))
        successful = int(last["SuccessfulCall(C)"])
        failed = int(last["FailedCall(C)"])
        retransmissions = int(last["Retransmissions(C)"])
    except (OSError, IndexError, KeyError, ValueError) as e:
        raise RuntimeError(
            f"SIPp gave no statistics ({e!r}), exit {out.returncode}:\n"
            f"{out.stdout[-2000:]}{out.stderr[-2000:]}"
        ) from None
    error_text = ""
    if failed or out.returncode not in (0, 1):
        error_text = _error_summary(errors) or f"exit {out.returncode}"
    offered = f"offered {rate:,}/s"
    if outstanding < count:
        offered += f", at most {outstanding:,} up at once"
    return CallRun(
        offered,
        count,
        successful,
        failed,
        retransmissions,
        end - start,
        server_cpu,
        sipp_cpu + callee_cpu,
        error_text,
    )


def _limit(count: int, pace: int) -> int:
    """Seconds the caller SIPp may take for `count` calls at `pace` calls/s at worst."""
    return int(count / max(pace, 1)) + 30


def _measure(
    work: Path,
    server: tuple[int, int, Path],
    callee: Callee,
    cpus: set[int],
    count: int,
    rate: int,
    outstanding: int = 0,
    pace: int = 0,
) -> CallRun:
    """One run of the caller; its verdict, the callee's and the server's log.

    `pace` is the slowest rate (calls/s) the run is bounded for (default:
    the offered rate); the caller's SIPp timeout follows from it.
    """
    log_lines = len(_read_lines(server[2]))
    before, errors_from = callee.counts(), _size(callee.errors)
    run = _caller(
        work, server, callee.pid, cpus, count, rate, outstanding or count,
        _limit(count, pace or rate),
    )  # fmt: skip
    ok, failed = callee.settle(before, count)
    run.answered = f"{ok:,} ok, {failed:,} failed"
    if ok + failed < count:
        run.answered += f", {count - ok - failed:,} not reached or not ended"
    if failed:
        run.callee_errors = _error_summary(callee.errors, errors_from)
    run.server_log = _log_summary(_read_lines(server[2])[log_lines:])
    return run


def _read_lines(path: Path) -> list[str]:
    try:
        with path.open(errors="replace") as log:
            return log.read(16 << 20).splitlines()
    except OSError:
        return []


_PROBLEM = re.compile(r"\b(WARNING|WARN|ERROR|CRITICAL|CRIT)\b|Traceback")


def _log_summary(lines: list[str]) -> str:
    """How many warnings and errors a server logged, and the two commonest."""
    kinds: Counter[str] = Counter()
    for line in lines:
        if _PROBLEM.search(line):
            # Drop the time stamp, then numbers (call ids, ports) so that lines group.
            text = re.sub(r"^\S+ [\d:,.]+ ", "", line.strip())
            kinds[re.sub(r"\d+", "N", text)[:160]] += 1
    if not kinds:
        return ""
    common = "; ".join(f"{n:,} x {kind}" for kind, n in kinds.most_common(2))
    return f"{sum(kinds.values()):,} warning/error lines ({common})"


# -- the servers ---------------------------------------------------------------

# A server under test, given the callee's port: yields (SIP port, pid, log file).
Server = Callable[[Path, int], contextlib.AbstractContextManager[tuple[int, int, Path]]]


def _node_config(work: Path, callee_port: int) -> tuple[Path, int, int]:
    sip_port, http_port = procs.free_port(), procs.free_port(socket.SOCK_STREAM)
    path = work / "node.toml"
    path.write_text(
        procs.node_toml("calls.py", work / "data", sip_port, http_port)
        + f"""
# The RTP relay takes two port pairs per call. Not the default 10000-20000,
# which nodes started by the test suite on this machine may hold.
[media]
rtp_port_min = {RTP_PORTS[0]}
rtp_port_max = {RTP_PORTS[1]}

[tenants.bench]
name = "Bench"

# The carrier: sends calls from 127.0.0.1 (the caller SIPp) and takes
# calls at the callee SIPp.
[tenants.bench.trunks.carrier]
inbound_from = ["127.0.0.1"]
outbound_host = "127.0.0.1:{callee_port}"
transport = "udp"
max_calls = 0

[tenants.bench.dids."{DID}"]
forward = "{FORWARD}"
trunk = "carrier"
"""
    )
    procs.check_config(path)
    return path, sip_port, http_port


@contextlib.contextmanager
def _node(work: Path, callee_port: int) -> Iterator[tuple[int, int, Path]]:
    """Run our node; yields (SIP port, pid, log) once /healthz says ready."""
    config, sip_port, http_port = _node_config(work, callee_port)
    with procs.node(work, config, http_port, "calls") as (pid, log):
        yield sip_port, pid, log


def _sippy_version() -> str:
    """sippy's version in .venv-bench; _NotRun when it cannot be run."""
    if not BENCH_PYTHON.exists():
        raise _NotRun(f"{BENCH_PYTHON.relative_to(ROOT)} does not exist (the bench venv)")
    check = subprocess.run(
        [
            str(BENCH_PYTHON),
            "-c",
            "import importlib.metadata as m, sippy.b2bua_simple; print(m.version('sippy'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check.returncode != 0:
        why = (check.stderr.strip().splitlines() or ["?"])[-1]
        raise _NotRun(f"sippy.b2bua_simple does not import in .venv-bench: {why}")
    return check.stdout.strip()


@contextlib.contextmanager
def _sippy(work: Path, callee_port: int) -> Iterator[tuple[int, int, Path]]:
    """sippy's b2bua_simple, every call to the callee; yields (SIP port, pid, log)."""
    port = procs.free_port()
    log = work / "sippy.log"
    cmd = [
        str(BENCH_PYTHON), "-m", "sippy.b2bua_simple", "-f",
        "-l", "127.0.0.1", "-p", str(port), "-n", f"127.0.0.1:{callee_port}",
    ]  # fmt: skip
    # Warnings and errors only, like our node: no line per message.
    env = {**os.environ, "SIPLOG_BEND": "stderr", "SIPLOG_LVL": "WARN"}
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=work, env=env, start_new_session=True
        )
    try:
        procs.wait_sip(port, proc, log, "sippy's b2bua_simple")
        yield port, proc.pid, log
    finally:
        procs.stop(proc)


def _kamailio(binary: str) -> Server:
    @contextlib.contextmanager
    def run(work: Path, callee_port: int) -> Iterator[tuple[int, int, Path]]:
        """Kamailio in the foreground; yields (SIP port, main pid, log)."""
        port = procs.free_port()
        run_dir = work / "kamailio-proxy"
        run_dir.mkdir(exist_ok=True)
        log = work / "kamailio-proxy.log"
        cmd = [
            binary, "-f", str(PROXY_CFG), "-l", f"udp:127.0.0.1:{port}",
            "-n", str(KAMAILIO_WORKERS), "-DD", "-E", "-Y", str(run_dir),
            "-P", str(run_dir / "kamailio.pid"), "-m", "256", "-M", "16",
            "-A", f"UAS_PORT={callee_port}",
        ]  # fmt: skip
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=run_dir, start_new_session=True
            )
        try:
            procs.wait_sip(port, proc, log, "kamailio")
            yield port, proc.pid, log
        finally:
            procs.stop(proc)

    return run


# -- the benchmark -------------------------------------------------------------


def _offered() -> int:
    return int(TARGET * OFFER)


def _ours(work: Path, cpus: set[int]) -> list[Row]:
    offered = _offered()
    check_run = (offered * SECONDS, offered, 0, offered // 3)
    most_run = (
        CAPACITY_GUESS * SECONDS, CAPACITY_RATE, CAPACITY_OUTSTANDING, CAPACITY_GUESS // 4
    )  # fmt: skip
    limit = sum(_limit(count, pace) for count, _, _, pace in (check_run, most_run)) + 60
    port = procs.free_port()
    with _callee(work, port, cpus, limit) as callee, _node(work, port) as server:
        count, rate, outstanding, pace = check_run
        check = _measure(work, server, callee, cpus, count, rate, outstanding, pace)
        count, rate, outstanding, pace = most_run
        most = _measure(work, server, callee, cpus, count, rate, outstanding, pace)
    met = check.failed == 0 and check.rate >= TARGET
    return [
        Row(
            BENCHMARK,
            FIGURE,
            check.rate,
            "calls/s",
            f">= {TARGET:,}, 0 failed",
            met,
            f"one node process, one core; {check.note()}",
        ),
        Row(BENCHMARK, "same, the most it does", most.rate, "calls/s", note=most.note()),
    ]


def _theirs(work: Path, cpus: set[int], figure: str, server: Server, what: str) -> Row:
    offered = _offered()
    count, pace = offered * SECONDS, offered // 10  # bounded for a server 10 times slower
    port = procs.free_port()
    with _callee(work, port, cpus, _limit(count, pace) + 60) as callee, server(work, port) as up:
        run = _measure(work, up, callee, cpus, count, offered, pace=pace)
    return Row(BENCHMARK, figure, run.rate, "calls/s", note=f"{what}; {run.note()}")


def _sippy_row(work: Path, cpus: set[int]) -> Row:
    try:
        version = _sippy_version()
    except _NotRun as e:
        return Row(BENCHMARK, SIPPY, None, "calls/s", note=f"not run: {e}")
    what = (
        f"sippy {version}, python -m sippy.b2bua_simple -n <callee> from .venv-bench, "
        "SIPLOG_LVL=WARN, one process on the node's one core"
    )
    return _theirs(work, cpus, SIPPY.replace("sippy", f"sippy {version}", 1), _sippy, what)


def _kamailio_row(work: Path, cpus: set[int]) -> Row:
    binary, version = _ensure_kamailio()
    if binary is None:
        return Row(BENCHMARK, KAMAILIO, None, "calls/s", note=version)
    what = (
        f"{KAMAILIO_WORKERS} UDP workers on the node's one core, tm + rr, bench/kamailio/proxy.cfg"
    )
    figure = KAMAILIO.replace("Kamailio", f"Kamailio {version}", 1)
    return _theirs(work, cpus, figure, _kamailio(binary), what)


def _smoke(work: Path, cpus: set[int]) -> list[Row]:
    port = procs.free_port()
    with _callee(work, port, cpus, _limit(SMOKE_COUNT, 1) + 60) as callee, _node(work, port) as up:
        run = _measure(work, up, callee, cpus, SMOKE_COUNT, SMOKE_RATE, pace=1)
    if run.successful == 0:
        logs = procs.tail(work / "node-calls.log")
        raise RuntimeError(
            f"no call went through the node: {run.note()}\nnode log:\n{logs}\n"
            f"caller SIPp errors:\n{procs.tail(work / 'uac-errors.log')}\n"
            f"callee SIPp errors:\n{procs.tail(work / 'uas-errors.log')}"
        )
    skipped = "not run in smoke"
    return [
        Row(
            BENCHMARK,
            f"{FIGURE} (smoke)",
            run.rate,
            "calls/s",
            "0 failed",
            run.failed == 0,
            run.note(),
        ),
        Row(BENCHMARK, SIPPY, None, "calls/s", note=skipped),
        Row(BENCHMARK, KAMAILIO, None, "calls/s", note=skipped),
    ]


def _failed(figure: str, e: Exception, target: str = "") -> Row:
    why = "not run" if isinstance(e, _NotRun) else "failed"
    print(f"bench: calls, {figure}: {why}: {e}", file=sys.stderr)
    return Row(
        BENCHMARK,
        figure,
        None,
        "calls/s",
        target,
        None if isinstance(e, _NotRun) or not target else False,
        f"{why}: {str(e).splitlines()[0][:200]}",
    )


def run(smoke: bool) -> list[Row]:
    _, load_cpus = procs.cpus()
    with tempfile.TemporaryDirectory(prefix="switch-bench-calls-") as tmp:
        work = Path(tmp)
        if smoke:
            return _smoke(work, load_cpus)  # any error propagates: CI must see it
        rows: list[Row] = []
        # One server failing must not cost the figures of the others.
        errors = (_NotRun, RuntimeError, subprocess.TimeoutExpired)
        try:
            rows += _ours(work, load_cpus)
        except errors as e:
            rows.append(_failed(FIGURE, e, f">= {TARGET:,}, 0 failed"))
        try:
            rows.append(_sippy_row(work, load_cpus))
        except errors as e:
            rows.append(_failed(SIPPY, e))
        try:
            rows.append(_kamailio_row(work, load_cpus))
        except errors as e:
            rows.append(_failed(KAMAILIO, e))
        return rows
