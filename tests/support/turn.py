"""A coturn TURN/STUN server of our own on loopback, configured by flags alone.

`Coturn.start` runs /usr/bin/turnserver on a free port of 127.0.0.1 with a
small relay port range, no config file, no TLS, no CLI, its log in a file
of the test's temporary directory; either long-term credentials (user
"u", password "p") or coturn's REST API shared secret (`secret=`). The
fixtures `coturn` and `coturn_secret` skip the test, with the reason, only
when coturn is not installed.
"""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aioice import stun

TURNSERVER = "/usr/bin/turnserver"
USER, PASSWORD = "u", "p"
REALM = "switch"


def _free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (coturn listens on both)."""
    for _ in range(50):
        port = random.randrange(30000, 40000)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            try:
                udp.bind(("127.0.0.1", port))
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for coturn")


def _answers_stun(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        sock.sendto(bytes(request), ("127.0.0.1", port))
        try:
            data = sock.recv(2048)
        except OSError:
            return False
        return stun.parse_message(data).transaction_id == request.transaction_id


@dataclass
class Coturn:
    port: int
    relay_ports: tuple[int, int]
    log: Path
    secret: str  # the REST API shared secret, or "" (then USER/PASSWORD)
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def allocations(self) -> int:
        """Allocations it granted so far."""
        return self.text().count("ALLOCATE processed, success")

    def relayed_to_peers(self) -> int:
        """Packets it sent to peers from its relays, by the usage lines it logs
        (at allocation refreshes and deletions)."""
        return sum(int(n) for n in re.findall(r"peer usage: .*?sp=(\d+)", self.text()))

    @classmethod
    @contextlib.contextmanager
    def start(cls, directory: Path, secret: str = "") -> Iterator[Coturn]:
        if not Path(TURNSERVER).exists() or shutil.which(TURNSERVER) is None:
            pytest.skip(f"coturn is not installed ({TURNSERVER}): apt-get install coturn")
        port = _free_port()
        low = random.randrange(50000, 59000, 2)
        log = directory / f"coturn-{port}.log"
        auth = (
            ["--use-auth-secret", f"--static-auth-secret={secret}"]
            if secret
            else ["--lt-cred-mech", f"--user={USER}:{PASSWORD}"]
        )
        args = [
            TURNSERVER, "-n", "-v", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
            f"--listening-port={port}", f"--min-port={low}", f"--max-port={low + 199}",
            "--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls", f"--realm={REALM}",
            "--no-software-attribute", "--simple-log", f"--log-file={log}",
            f"--userdb={directory / f'coturn-{port}.db'}", f"--pidfile={directory / 'coturn.pid'}",
            *auth,
        ]  # fmt: skip
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while not _answers_stun(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"coturn did not start: {' '.join(args)}")
            yield cls(port, (low, low + 199), log, secret, process)
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    """coturn with long-term credentials: user USER, password PASSWORD."""
    with Coturn.start(tmp_path) as server:
        yield server


@pytest.fixture
def coturn_secret(tmp_path: Path) -> Iterator[Coturn]:
    """coturn with the REST API: credentials minted from the secret "s3cret"."""
    with Coturn.start(tmp_path, secret="s3cret") as server:
        yield server
