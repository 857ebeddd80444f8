"""Parse + header access + serialise rate of a typical INVITE, beside sippy's.

"Header access" is what a B2BUA reads from every INVITE: the top Via's branch,
the From and To tags, Call-ID, CSeq, Contact and Max-Forwards. A second figure
also changes the message the way a proxy would (a new top Via, Max-Forwards
decremented) so that serialising cannot reuse the received bytes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from switch.sip.message import parse_message

from .messages import INVITE
from .report import Row

HERE = Path(__file__).resolve().parent
SIPPY_VENV = HERE.parent / ".venv-bench"
SIPPY_VERSION = "2.5.0"
TARGET = 45_000


def _read_only() -> bytes:
    msg = parse_message(INVITE)
    msg.top_via.branch  # noqa: B018
    msg.from_.tag  # noqa: B018
    msg.to.tag  # noqa: B018
    msg.call_id  # noqa: B018
    msg.cseq  # noqa: B018
    msg.contact  # noqa: B018
    msg.max_forwards  # noqa: B018
    return bytes(msg)


def _proxied() -> bytes:
    msg = parse_message(INVITE)
    msg.top_via.branch  # noqa: B018
    msg.from_.tag  # noqa: B018
    msg.to.tag  # noqa: B018
    msg.call_id  # noqa: B018
    msg.cseq  # noqa: B018
    msg.contact  # noqa: B018
    hops = msg.max_forwards or 70
    msg.add("Via", "SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKbench", first=True)
    msg.set("Max-Forwards", hops - 1)
    return bytes(msg)


def _rate(fn, seconds: float) -> float:
    fn()
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(500):
            fn()
        n += 500
    return n / (time.perf_counter() - start)


def _sippy_rate(seconds: float) -> tuple[float | None, str]:
    python = SIPPY_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SIPPY_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import sippy"], capture_output=True)
    if probe.returncode != 0:
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"sippy=={SIPPY_VERSION}"],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0:
            return None, f"sippy could not be installed: {install.stderr.strip()[-200:]}"
    run = subprocess.run(
        [str(python), str(HERE / "sippy_parser.py"), str(HERE), str(seconds)],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        return None, f"sippy run failed: {run.stderr.strip()[-200:]}"
    return json.loads(run.stdout)["rate"], f"sippy {SIPPY_VERSION}, same message, same run"


def run(smoke: bool) -> list[Row]:
    seconds = 0.3 if smoke else 5.0
    ours = _rate(_read_only, seconds)
    proxied = _rate(_proxied, seconds)
    rows = [
        Row(
            "sip parser",
            "INVITE parse + header access + serialise",
            ours,
            "msg/s",
            f">= {TARGET:,}",
            ours >= TARGET,
            "one core; 11 headers + SDP",
        ),
        Row(
            "sip parser",
            "same, changed like a proxy (new Via, Max-Forwards - 1)",
            proxied,
            "msg/s",
        ),
    ]
    if smoke:
        rows.append(Row("sip parser", "sippy, same work", None, "msg/s", note="not run in smoke"))
    else:
        theirs, note = _sippy_rate(seconds)
        rows.append(Row("sip parser", "sippy, same work", theirs, "msg/s", note=note))
        if theirs:
            ratio = ours / theirs
            rows.append(Row("sip parser", "ours / sippy", ratio, "x", ">= 5", ratio >= 5))
    return rows
