"""Run SIPp against a node under test and read its verdict."""

from __future__ import annotations

import asyncio
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

SCENARIOS = Path(__file__).resolve().parents[2] / "sipp-scenarios"
SIPP = shutil.which("sipp")

needs_sipp = pytest.mark.skipif(
    SIPP is None,
    reason="sipp is not installed: run `sudo apt-get install sip-tester` (make test does as root)",
)


@dataclass
class SippResult:
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_sip_port() -> int:
    """A port free for both UDP and TCP (a node's SIP listener takes both)."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free for both UDP and TCP in 50 tries")


async def run_sipp(
    scenario: str,
    target: tuple[str, int],
    transport: str = "u1",
    calls: int = 1,
    rate: float = 10,
    timeout: float = 30,
    extra: list[str] | None = None,
    port: int | None = None,
    local_ip: str = "127.0.0.1",
) -> SippResult:
    """Run one SIPp scenario to completion; SIPp exits 0 only if every call passed.

    `local_ip`: the loopback address SIPp sends from (e.g. 127.0.0.2 for a
    phone that is not the demo trunk, whose address is 127.0.0.1).
    """
    assert SIPP is not None
    kind = socket.SOCK_DGRAM if transport.startswith("u") else socket.SOCK_STREAM
    args = [
        SIPP,
        "-sf",
        str(SCENARIOS / scenario),
        f"{target[0]}:{target[1]}",
        "-t",
        transport,
        "-i",
        local_ip,
        "-p",
        str(port or free_port(kind)),
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        "-nostdin",
        "-trace_err",
        "-error_file",
        "/dev/stderr",
        *(extra or []),
    ]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout + 10)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        return SippResult(-1, out.decode(errors="replace") + "\n(killed: SIPp overran)")
    return SippResult(proc.returncode or 0, out.decode(errors="replace"))


def udp_port_taken(port: int) -> bool:
    """Whether some IPv4 socket holds UDP `port` (a SIPp started in the background, say).

    Read from /proc/net/udp rather than tried with a bind of our own, which
    for its moment would take the port from the SIPp starting up.
    """
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        local = line.split()[1]  # e.g. "0100007F:1F90": address and port in hex
        if int(local.rpartition(":")[2], 16) == port:
            return True
    return False


async def start_far_end(
    scenario: str, port: int, extra: list[str] | None = None, timeout: float = 30
) -> asyncio.Future[SippResult]:
    """Run a SIPp answering on UDP `port` (a trunk's far end) in the background,
    and return once it listens there, so that nothing sent to it meets a
    closed port: await the result when the calls are over."""
    # The far end answers; the address it would call is never used.
    run = asyncio.ensure_future(
        run_sipp(scenario, ("127.0.0.1", 9), timeout=timeout, extra=extra, port=port)
    )
    deadline = asyncio.get_running_loop().time() + 10
    while not udp_port_taken(port):
        if run.done() or asyncio.get_running_loop().time() > deadline:
            break  # it failed to start: its result says why
        await asyncio.sleep(0.02)
    return run
