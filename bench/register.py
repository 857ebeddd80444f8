"""Registrations per second with digest auth, from SIPp, for one node process.

Each registration is two round trips (REGISTER, 401, REGISTER with
credentials, 200: sipp-scenarios/bench_register.xml) for one of USERS agents
taken in turn, so most are refreshes of an existing binding, as in real life.

Two figures per server:

- the target check: SIPp offers a fixed rate (open loop, 10% above the
  target) for about SECONDS; the figure is successful registrations over
  SIPp's elapsed time, and the target is met only with zero failures;
- the most it can do: SIPp asks for far more than any server here can take
  but keeps at most CAPACITY_OUTSTANDING registrations in flight (closed
  loop), so the server runs flat out without its socket overflowing.

Kamailio (Debian's package, bench/kamailio/kamailio.cfg) gets the second
measurement with the same scenario and users, for scale. The node and
Kamailio run on the core `python -m bench` pinned itself to; SIPp and Redis
run on the other core(s). Everything listens on 127.0.0.1 only.

Set SWITCH_BENCH_PROFILE=DIR to run the node under cProfile; the profiles
are written to DIR/node-<backend>.prof when the node stops.
"""

from __future__ import annotations

import contextlib
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import procs
from .report import Row

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCENARIO = ROOT / "sipp-scenarios" / "bench_register.xml"
KAMAILIO_CFG = HERE / "kamailio" / "kamailio.cfg"
BENCHMARK = "registration"

FIRST_EXT = 2000
USERS = 1000
TARGETS = {"memory": 3_000, "redis": 1_500}  # successful registrations/s, issue #3
OFFER = 1.1  # the target check offers this much more than the target
SECONDS = 10  # about this long per measured run
# In flight in a capacity run: enough that SIPp's own turnaround does not
# set the pace, few enough that requests fit in the servers' socket buffers.
CAPACITY_OUTSTANDING = 300
# Registrations asked for in a capacity run: about SECONDS at the rate each
# server is expected to reach. A faster or slower server only makes the run
# shorter or longer (never past the SIPp timeout).
CAPACITY_GUESS = {"memory": 4_000, "redis": 2_000, "kamailio": 8_000}
KAMAILIO_WORKERS = 2  # UDP worker processes (-n), on the one core
SMOKE_COUNT, SMOKE_RATE = 200, 100


@dataclass
class SippRun:
    offered: str  # what SIPp was asked for, for the note
    count: int
    successful: int
    failed: int
    retransmissions: int
    elapsed: float  # seconds, from SIPp's own start and end times
    server_cpu: float  # CPU seconds the server used during the run
    sipp_cpu: float  # CPU seconds SIPp used
    errors: str  # the commonest events in SIPp's error log, when something failed

    @property
    def rate(self) -> float:
        return self.successful / self.elapsed if self.elapsed > 0 else 0.0

    def note(self) -> str:
        elapsed = max(self.elapsed, 1e-9)
        server, sipp = self.server_cpu / elapsed * 100, self.sipp_cpu / elapsed * 100
        text = (
            f"{self.offered}; {self.successful:,}/{self.count:,} ok, {self.failed:,} failed, "
            f"{self.retransmissions:,} retransmissions in {self.elapsed:.1f} s; "
            f"CPU: server {server:.0f}%, SIPp {sipp:.0f}% of a core"
        )
        if sipp >= 90:  # SIPp is one thread: the load generator is the limit
            text += " (SIPp-bound: a lower bound for the server)"
        elif "in flight" in self.offered and server < 90:
            text += " (server not saturated: a lower bound)"
        return f"{text}; SIPp errors: {self.errors}" if self.errors else text


# -- helpers ---------------------------------------------------------------


class _NotRun(Exception):
    """A figure that cannot be measured here; the message says why."""


def _error_summary(path: Path) -> str:
    """The two commonest kinds of event in SIPp's error log, counted."""
    try:
        with path.open(errors="replace") as log:
            text = log.read(4 << 20)
    except OSError:
        return ""
    kinds: Counter[str] = Counter()
    # Each event starts "<date>\t<time>\t<epoch>: ", not always on a new line.
    for event in re.split(r"\d{4}-\d\d-\d\d\t[\d:.]+\t\d+\.\d+: ", text)[1:]:
        first = event.splitlines()[0] if event else ""
        if not first.startswith("Dead call"):  # a late answer to a finished call
            # Call-IDs differ per call: drop them so that events group.
            kinds[re.sub(r"'?[^\s']+@[^\s']+'?", "_", first)[:120]] += 1
    return "; ".join(f"{n:,} x {kind}" for kind, n in kinds.most_common(2))


def _users_csv(work: Path) -> Path:
    path = work / "users.csv"
    lines = ["SEQUENTIAL"]
    for ext in range(FIRST_EXT, FIRST_EXT + USERS):
        lines.append(f"{ext};[authentication username={ext} password=pw{ext}]")
    path.write_text("\n".join(lines) + "\n")
    return path


# -- the servers -----------------------------------------------------------


def _node_config(work: Path, backend: str, redis_url: str) -> tuple[Path, int, int]:
    sip_port, http_port = procs.free_port(), procs.free_port(socket.SOCK_STREAM)
    state = f'backend = "{backend}"\n' + (f'redis_url = "{redis_url}"' if redis_url else "")
    agents = "".join(
        f'[tenants.bench.agents."{ext}"]\npassword = "pw{ext}"\n'
        for ext in range(FIRST_EXT, FIRST_EXT + USERS)
    )
    path = work / f"node-{backend}.toml"
    path.write_text(
        procs.node_toml("register.py", work / f"data-{backend}", sip_port, http_port, state)
        + f"""
[registrar]
# MD5 first: SIPp 3.6 answers only the first challenge and knows only MD5.
auth_algorithms = ["MD5", "SHA-256"]

[tenants.bench]
name = "Bench"

{agents}"""
    )
    procs.check_config(path)
    return path, sip_port, http_port


@contextlib.contextmanager
def _node(work: Path, backend: str, redis_url: str = "") -> Iterator[tuple[int, int]]:
    """Run our node; yields (SIP port, pid) once /healthz says ready."""
    config, sip_port, http_port = _node_config(work, backend, redis_url)
    with procs.node(work, config, http_port, backend) as (pid, _log):
        yield sip_port, pid


def _redis_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def _redis(work: Path, cpus: set[int]) -> Iterator[str]:
    port = procs.free_port(socket.SOCK_STREAM)
    log = work / "redis.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                *("redis-server", "--bind", "127.0.0.1", "--port", str(port)),
                *("--save", "", "--appendonly", "no", "--dir", str(work)),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=procs.pinned(cpus),
        )
    try:
        deadline = time.monotonic() + 10
        for _ in range(100):
            if _redis_ok(port) or proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if not _redis_ok(port):
            raise RuntimeError(f"redis-server did not start:\n{procs.tail(log)}")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        procs.stop(proc)


def _ensure_package(name: str) -> None:
    """Install a missing Debian package as root (else the script says how)."""
    script = ROOT / "scripts" / "ensure-packages.sh"
    subprocess.run(["bash", str(script), name], timeout=600, check=False)


def _kamailio_bin() -> str | None:
    return shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/sbin")


def _ensure_kamailio() -> tuple[str | None, str]:
    """(path, version) or (None, why not), installing the Debian package as root."""
    if _kamailio_bin() is None:
        _ensure_package("kamailio")
    binary = _kamailio_bin()
    if binary is None:
        return None, "not run: kamailio is not installed (apt-get install kamailio, as root)"
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=30).stdout
    # "version: kamailio 5.6.3 (x86_64/linux) "
    version = out.split()[2] if out.startswith("version:") else "?"
    return binary, version


@contextlib.contextmanager
def _kamailio(work: Path, binary: str) -> Iterator[tuple[int, int]]:
    """Run Kamailio in the foreground; yields (SIP port, main pid)."""
    port = procs.free_port()
    run_dir = work / "kamailio"
    run_dir.mkdir()
    log = work / "kamailio.log"
    cmd = [
        binary, "-f", str(KAMAILIO_CFG), "-l", f"udp:127.0.0.1:{port}",
        "-n", str(KAMAILIO_WORKERS), "-DD", "-E", "-Y", str(run_dir),
        "-P", str(run_dir / "kamailio.pid"), "-m", "256", "-M", "16",
        "-A", f"FIRST_EXT={FIRST_EXT}", "-A", f"LAST_EXT={FIRST_EXT + USERS - 1}",
    ]  # fmt: skip
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=run_dir, start_new_session=True
        )
    try:
        procs.wait_sip(port, proc, log, "kamailio")
        yield port, proc.pid
    finally:
        procs.stop(proc)


# -- SIPp ------------------------------------------------------------------


def _sipp(
    work: Path,
    port: int,
    server_pid: int,
    cpus: set[int],
    count: int,
    rate: int,
    outstanding: int = 0,
) -> SippRun:
    """Run the scenario `count` times at `rate`/s (at most `outstanding` in flight)."""
    sipp = shutil.which("sipp")
    if sipp is None:
        raise RuntimeError("sipp is not installed: apt-get install sip-tester (make bench does)")
    stats, errors = work / "sipp-stats.csv", work / "sipp-errors.log"
    for path in (stats, errors):
        path.unlink(missing_ok=True)
    # Far more than the run needs at the offered rate: a hard bound, never hit
    # when the server keeps up.
    limit = int(count / rate * 3) + 30
    cmd = [
        sipp, "-sf", str(SCENARIO), f"127.0.0.1:{port}", "-t", "u1",
        "-i", "127.0.0.1", "-p", str(procs.free_port()),
        "-inf", str(_users_csv(work)),
        "-m", str(count), "-r", str(rate), "-rp", "1000",
        # A registration not answered within 5 s fails (retransmissions go on
        # until then), so a stalled server ends the run quickly.
        "-recv_timeout", "5000",
        "-timeout", f"{limit}s", "-timeout_error",
        "-buff_size", str(4 << 20),
        "-nostdin", "-trace_stat", "-stf", str(stats),
        "-trace_err", "-error_file", str(errors),
    ]  # fmt: skip
    if outstanding:
        cmd += ["-l", str(outstanding)]
    cpu_before = procs.cpu_seconds(server_pid)
    # SIPp is the only child this process waits for during the run.
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
    sipp_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sipp_cpu = (sipp_after.ru_utime + sipp_after.ru_stime) - (
        sipp_before.ru_utime + sipp_before.ru_stime
    )
    try:
        lines = [line for line in stats.read_text().splitlines() if line.strip()]
        last = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
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
    offered = f"offered {rate:,}/s" + (f", at most {outstanding} in flight" if outstanding else "")
    return SippRun(
        offered,
        count,
        successful,
        failed,
        retransmissions,
        end - start,
        server_cpu,
        sipp_cpu,
        error_text,
    )


# -- the benchmark ---------------------------------------------------------


def _warm_up(work: Path, port: int, pid: int, cpus: set[int]) -> None:
    """Register every user once, so the measured runs see refreshes."""
    _sipp(work, port, pid, cpus, count=USERS, rate=1_000)


def _ours(work: Path, backend: str, cpus: set[int], redis_url: str = "") -> list[Row]:
    target = TARGETS[backend]
    offered = int(target * OFFER)
    with _node(work, backend, redis_url) as (port, pid):
        _warm_up(work, port, pid, cpus)
        check = _sipp(work, port, pid, cpus, count=offered * SECONDS, rate=offered)
        most = _sipp(
            work, port, pid, cpus, count=CAPACITY_GUESS[backend] * SECONDS, rate=50_000,
            outstanding=CAPACITY_OUTSTANDING,
        )  # fmt: skip
    met = check.failed == 0 and check.rate >= target
    return [
        Row(
            BENCHMARK,
            f"registrations with digest auth, {backend} backend",
            check.rate,
            "reg/s",
            f">= {target:,}, 0 failed",
            met,
            f"one node process, one core; {check.note()}",
        ),
        Row(
            BENCHMARK,
            f"same, {backend} backend, the most it does",
            most.rate,
            "reg/s",
            note=most.note(),
        ),
    ]


def _theirs(work: Path, cpus: set[int]) -> Row:
    binary, version = _ensure_kamailio()
    figure = "Kamailio, same scenario, the most it does"
    if binary is None:
        return Row(BENCHMARK, figure, None, "reg/s", note=version)
    figure = f"Kamailio {version}, same scenario, the most it does"
    with _kamailio(work, binary) as (port, pid):
        _warm_up(work, port, pid, cpus)
        most = _sipp(
            work, port, pid, cpus, count=CAPACITY_GUESS["kamailio"] * SECONDS, rate=50_000,
            outstanding=CAPACITY_OUTSTANDING,
        )  # fmt: skip
    note = (
        f"{KAMAILIO_WORKERS} UDP workers on the node's one core, usrloc in memory, "
        f"htable users; {most.note()}"
    )
    return Row(BENCHMARK, figure, most.rate, "reg/s", note=note)


def _smoke(work: Path, cpus: set[int]) -> list[Row]:
    with _node(work, "memory") as (port, pid):
        run = _sipp(work, port, pid, cpus, count=SMOKE_COUNT, rate=SMOKE_RATE)
    if run.successful == 0:
        logs = procs.tail(work / "node-memory.log")
        raise RuntimeError(f"the node registered nobody: {run.note()}\nnode log:\n{logs}")
    skipped = "not run in smoke"
    redis = "registrations with digest auth, redis backend"
    return [
        Row(
            BENCHMARK,
            "registrations with digest auth, memory backend (smoke)",
            run.rate,
            "reg/s",
            "0 failed",
            run.failed == 0,
            run.note(),
        ),
        Row(BENCHMARK, redis, None, "reg/s", note=skipped),
        Row(BENCHMARK, "Kamailio, same scenario", None, "reg/s", note=skipped),
    ]


def _ours_on(work: Path, backend: str, cpus: set[int]) -> list[Row]:
    """_ours, with a Redis of its own for the redis backend."""
    if backend == "memory":
        return _ours(work, backend, cpus)
    if shutil.which("redis-server") is None:
        _ensure_package("redis-server")
    if shutil.which("redis-server") is None:
        raise _NotRun("redis-server is not installed (apt-get install redis-server)")
    with _redis(work, cpus) as url:
        return _ours(work, backend, cpus, url)


def run(smoke: bool) -> list[Row]:
    _, load_cpus = procs.cpus()
    with tempfile.TemporaryDirectory(prefix="switch-bench-register-") as tmp:
        work = Path(tmp)
        if smoke:
            return _smoke(work, load_cpus)  # any error propagates: CI must see it
        rows: list[Row] = []
        for backend, target in TARGETS.items():
            # One backend failing must not cost the figures of the others.
            try:
                rows += _ours_on(work, backend, load_cpus)
            except (_NotRun, RuntimeError, subprocess.TimeoutExpired) as e:
                why = "not run" if isinstance(e, _NotRun) else "failed"
                print(f"bench: register, {backend} backend {why}: {e}", file=sys.stderr)
                rows.append(
                    Row(
                        BENCHMARK,
                        f"registrations with digest auth, {backend} backend",
                        None,
                        "reg/s",
                        f">= {target:,}, 0 failed",
                        None if isinstance(e, _NotRun) else False,
                        f"{why}: {str(e).splitlines()[0][:200]}",
                    )
                )
        try:
            rows.append(_theirs(work, load_cpus))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"bench: register, Kamailio failed: {e}", file=sys.stderr)
            rows.append(
                Row(
                    BENCHMARK,
                    "Kamailio, same scenario",
                    None,
                    "reg/s",
                    note=f"failed: {str(e).splitlines()[0][:200]}",
                )
            )
        return rows
