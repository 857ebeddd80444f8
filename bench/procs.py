"""Processes of the benches: ports, CPU pinning and accounting, starting and stopping servers.

Shared by bench/register.py, bench/calls.py and bench/relay.py, which each
run our node (and Kamailio, SIPp, ...) as child processes on loopback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository: `python -m bench.X` runs here


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_toml(
    writer: str, data_dir: Path, sip_port: int, http_port: int, state: str = 'backend = "memory"'
) -> str:
    """The start of a bench node's config: one UDP listener, quiet logs, `state`.

    `writer` names the bench file in the first line; the caller appends
    its [media] and tenant tables.
    """
    return f"""# Written by bench/{writer}.
[node]
data_dir = "{data_dir}"
log_level = "warning"   # like Kamailio's debug=1: no line per request

[sip]
listen = "127.0.0.1:{sip_port}"
transports = ["udp"]

[http]
listen = "127.0.0.1:{http_port}"

[state]
{state}
"""


def cpus() -> tuple[set[int], set[int]]:
    """(cores for the server under test, cores for the load generators).

    `python -m bench` pins itself to one core: servers inherit it. The load
    generators get the rest, or share that core on a one-core machine.
    """
    server = os.sched_getaffinity(0)
    rest = set(range(os.cpu_count() or 1)) - server
    return server, rest or server


def pinned(cores: set[int]) -> Callable[[], None]:
    """A preexec_fn that moves a child process onto `cores`."""

    def pin() -> None:
        with contextlib.suppress(OSError):  # a CPU outside our cgroup: run unpinned
            os.sched_setaffinity(0, cores)

    return pin


def cpu_seconds(root: int) -> float:
    """CPU time of a process and its descendants (Kamailio forks workers)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo, seen = 0.0, [root], set()
    while todo and len(seen) < 10_000:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += times.get(pid, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL the process group this bench started for it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def switch_bin() -> Path:
    # The console script next to the interpreter running the bench (.venv).
    script = Path(sys.executable).parent / "switch"
    if not script.exists():
        raise RuntimeError(f"{script} not found: run `make install` first")
    return script


def check_config(path: Path) -> None:
    """`switch check-config` on a generated config: a bench bug, if it fails."""
    check = subprocess.run(
        [str(switch_bin()), "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    if check.returncode != 0:
        raise RuntimeError(f"bench config rejected:\n{check.stdout}{check.stderr}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def node(
    work: Path,
    config: Path,
    http_port: int,
    name: str,
    module: tuple[str, ...] = (),
    ready_within: float = 30,
) -> Iterator[tuple[int, Path]]:
    """Run our node on `config`; yields (pid, log) once /healthz says ready.

    `module`: a bench module and its arguments to run instead of `switch run`
    (`python -m MODULE CONFIG ARGS...`, e.g. bench.channelnode, which adds an
    application to the node). With SWITCH_BENCH_PROFILE=DIR the node runs
    under cProfile and writes DIR/node-<name>.prof when it stops.
    """
    if module:
        cmd = [sys.executable, "-m", module[0], str(config), *module[1:]]
        cwd = ROOT
    else:
        cmd, cwd = [str(switch_bin()), "run", "--config", str(config)], work
    profile_dir = os.environ.get("SWITCH_BENCH_PROFILE")
    if profile_dir:
        out = Path(profile_dir).resolve() / f"node-{name}.prof"
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "cProfile", "-o", str(out), *cmd[1 if module else 0 :]]
    log = work / f"node-{name}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{http_port}/healthz"
        deadline = time.monotonic() + ready_within
        while not http_ok(url):
            if proc.poll() is not None:
                raise RuntimeError(f"node exited ({proc.returncode}):\n{tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"node not ready within {ready_within:g} s:\n{tail(log)}")
            time.sleep(0.1)
        yield proc.pid, log
    finally:
        if proc.poll() is None and profile_dir and module:
            # A bench module stops cleanly (and cProfile writes) on Ctrl-C.
            proc.send_signal(signal.SIGINT)
        stop(proc)


def wait_sip(port: int, proc: subprocess.Popen, log: Path, what: str) -> None:
    """Wait until something answers an OPTIONS on 127.0.0.1:port (UDP)."""
    probe = (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbenchprobe;rport\r\n"
        "From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
        "Call-ID: benchprobe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.2)
        for _ in range(100):  # 20 s
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited ({proc.returncode}):\n{tail(log)}")
            s.sendto(probe, ("127.0.0.1", port))
            with contextlib.suppress(TimeoutError):
                if s.recv(65535).startswith(b"SIP/2.0 "):
                    return
    raise RuntimeError(f"{what} did not answer within 20 s:\n{tail(log)}")
