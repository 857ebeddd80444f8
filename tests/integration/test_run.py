"""`switch run` as a user starts it: ready on /healthz, clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import urllib.error
import urllib.request

import pytest

from tests.support.sipp import free_port, free_sip_port


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_run_serves_healthz_and_stops_on_sigterm(tmp_path):
    sip_port = free_sip_port()
    http_port = free_port(socket.SOCK_STREAM)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switch",
        "run",
        "--sip-listen",
        f"127.0.0.1:{sip_port}",
        "--http-listen",
        f"127.0.0.1:{http_port}",
        "--data-dir",
        str(tmp_path / "data"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{http_port}/healthz"
        status, body = 0, {}
        for _ in range(100):
            try:
                status, body = await asyncio.to_thread(_get, url)
                if status == 200:
                    break
            except (ConnectionError, urllib.error.URLError, OSError):
                pass
            await asyncio.sleep(0.1)
        assert status == 200, body
        assert body["ready"] is True
        assert f"udp:127.0.0.1:{sip_port}" in body["sip_listeners"]
        assert f"tcp:127.0.0.1:{sip_port}" in body["sip_listeners"]
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    stdout = out.decode()
    assert f"http://127.0.0.1:{http_port}/" in stdout
    assert "demo passwords" in err.decode()
    assert "Traceback" not in err.decode()


async def test_run_with_bad_config_explains_and_exits_2(tmp_path):
    bad = tmp_path / "switch.toml"
    bad.write_text('[queues.support]\nstrategy = "longest"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switch",
        "run",
        "--config",
        str(bad),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 2
    text = err.decode()
    assert "queues.support.strategy: 'longest' is not one of" in text
    assert "Traceback" not in text


@pytest.mark.parametrize("kind", [socket.SOCK_DGRAM, socket.SOCK_STREAM], ids=["udp", "tcp"])
async def test_port_in_use_is_a_clear_error(tmp_path, kind):
    """The SIP port taken for UDP or for TCP alone: the node does not start
    (it once started with no SIP listener at all when only TCP's was taken)."""
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "switch",
            "run",
            "--sip-listen",
            f"127.0.0.1:{port}",
            "--http-listen",
            f"127.0.0.1:{free_port(socket.SOCK_STREAM)}",
            "--data-dir",
            str(tmp_path / "data"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 1, err.decode()
    name = "udp" if kind == socket.SOCK_DGRAM else "tcp"
    assert f"cannot start: sip.listen: cannot listen on 127.0.0.1:{port} ({name})" in err.decode()
    assert "another program may have that port" in err.decode()
    assert "Traceback" not in err.decode()
