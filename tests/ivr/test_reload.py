"""Reloading flows: a bad flow never replaces a good one; a call finishes on its version.

From the rule (reload_flows), through a node (Node.reload), to a real
`switch run` told by `switch reload` and by SIGHUP.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from switch.apps.ivr import FlowSet, load_flows, reload_flows
from switch.apps.ivr import commands as cmd
from switch.cli import main
from switch.config import load_config
from switch.node import Node
from tests.support.sipp import free_port, free_sip_port

from .caller import Caller, spoken

GOOD_V1 = """\
steps:
  welcome:
    - say: Version one
    - enqueue: support
"""
GOOD_V2 = """\
steps:
  welcome:
    - say: Version two
    - enqueue: sales
"""
BAD = """\
steps:
  welcome:
    - say: Version three
    - enqueue: nowhere
"""


def write_config(tmp_path: Path, sip_port: int = 0, http_port: int = 0) -> Path:
    (tmp_path / "flows").mkdir(exist_ok=True)
    (tmp_path / "flows" / "main.yaml").write_text(GOOD_V1)
    path = tmp_path / "switch.toml"
    path.write_text(
        textwrap.dedent(f"""
            [node]
            data_dir = "{tmp_path / "data"}"
            [sip]
            listen = "127.0.0.1:{sip_port}"
            [http]
            listen = "127.0.0.1:{http_port}"
            [agents."1001"]
            password = "not-a-demo-one"
            [queues.support]
            [queues.sales]
            [ivr.main]
            file = "flows/main.yaml"
            [dids."100"]
            ivr = "main"
        """)
    )
    return path


def flow_file(tmp_path: Path) -> Path:
    return tmp_path / "flows" / "main.yaml"


def test_reload_swaps_only_a_good_set_and_a_call_keeps_its_version(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    first = load_flows(config)
    assert first.version == 1 and len(first) == 1
    caller = Caller(first.get("default", "main"))
    assert spoken(caller.start()) == ["Version one"]

    flow_file(tmp_path).write_text(BAD)
    kept, problems = reload_flows(first, config)
    assert kept is first
    assert problems == [
        f"{flow_file(tmp_path)}:4:16: step 'welcome': enqueue: unknown queue 'nowhere' in tenant "
        "'default'; use one of: sales, support, or define [tenants.default.queues.nowhere]"
    ]

    flow_file(tmp_path).write_text(GOOD_V2)
    second, problems = reload_flows(first, config)
    assert problems == [] and second.version == 2
    assert spoken(Caller(second.get("default", "main")).start()) == ["Version two"]
    # The call that started on version one ends on it.
    out = caller.finish_play()
    assert out == [cmd.Enqueue("support", 0, {}, {})]


async def test_node_reload_keeps_its_flows_on_a_bad_file(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    node = Node(load_config(path))
    await node.start()
    try:
        first = node.flows
        assert node.status()["ivr"] == {"flows": 1, "version": 1, "reload_problems": []}

        flow_file(tmp_path).write_text(BAD)
        problems = node.reload()
        assert len(problems) == 1 and "unknown queue 'nowhere'" in problems[0]
        assert node.flows is first
        assert node.status()["ivr"]["reload_problems"] == problems

        good = path.read_text()
        path.write_text(good + "\n[queues.support\n")  # a TOML error is refused too
        problems = node.reload()
        assert problems and "TOML syntax error" in problems[0]
        assert node.flows is first

        path.write_text(good)
        flow_file(tmp_path).write_text(GOOD_V2)
        assert node.reload() == []
        assert node.flows.version == 2
        assert node.status()["ivr"] == {"flows": 1, "version": 2, "reload_problems": []}
    finally:
        await node.stop()


async def test_a_node_refuses_to_start_with_a_bad_flow(tmp_path: Path) -> None:
    from switch.node import StartError

    path = write_config(tmp_path)
    flow_file(tmp_path).write_text(BAD)
    node = Node(load_config(path))
    with pytest.raises(StartError) as caught:
        await node.start()
    assert str(caught.value).splitlines() == [
        "IVR flows:",
        f"{flow_file(tmp_path)}:4:16: step 'welcome': enqueue: unknown queue 'nowhere' in "
        "tenant 'default'; use one of: sales, support, or define [tenants.default.queues.nowhere]",
    ]
    assert node.flows == FlowSet()


def _healthz(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


async def _until(url: str, check, seconds: float = 20.0) -> dict:
    body: dict = {}
    for _ in range(int(seconds * 10)):
        try:
            body = await asyncio.to_thread(_healthz, url)
            if check(body):
                return body
        except (ConnectionError, urllib.error.URLError, OSError):
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"not reached within {seconds} s: {body}")


async def test_switch_reload_and_sighup_on_a_running_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    http_port = free_port(socket.SOCK_STREAM)
    path = write_config(tmp_path, free_sip_port(), http_port)
    url = f"http://127.0.0.1:{http_port}/healthz"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switch", "run", "--config", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await _until(url, lambda body: body.get("ready"))
        pid_file = tmp_path / "data" / "switch.pid"
        assert int(pid_file.read_text()) == proc.pid

        # A bad flow: `switch reload` says why, and does not disturb the node.
        flow_file(tmp_path).write_text(BAD)
        assert main(["reload", "--config", str(path)]) == 1
        err = capsys.readouterr().err
        assert "unknown queue 'nowhere'" in err
        assert "the node was not asked to reload" in err

        # SIGHUP with the bad flow (as `kill -HUP` would): refused, version 1 kept.
        os.kill(proc.pid, signal.SIGHUP)
        body = await _until(url, lambda body: body["ivr"]["reload_problems"])
        assert body["ivr"]["version"] == 1
        assert "unknown queue 'nowhere'" in body["ivr"]["reload_problems"][0]

        flow_file(tmp_path).write_text(GOOD_V2)
        assert main(["reload", "--config", str(path)]) == 0
        assert f"asked the node (pid {proc.pid}) to reload" in capsys.readouterr().out
        body = await _until(url, lambda body: body["ivr"]["version"] == 2)
        assert body["ivr"]["reload_problems"] == []
        assert body["ready"] is True

        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = stderr.decode()
    assert proc.returncode == 0, log
    assert "reload refused, the flows in use are kept" in log
    assert "reload: 1 IVR flows, version 2" in log
    assert "Traceback" not in log
    assert not pid_file.exists()


async def test_reload_changes_a_queues_hours_and_names_what_needs_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monday = 1_767_000_000  # 2025-12-29 09:20 UTC
    path = write_config(tmp_path)
    base = path.read_text().replace("[queues.support]\n", '[queues.support]\nhours = "office"\n')
    path.write_text(base + '[hours.office]\nmon = "09:00-17:00"\n')
    node = Node(load_config(path))
    await node.start()
    try:
        assert node.queues is not None
        rules = node.queues.acds["default"].queues["support"]
        assert rules.calendar is not None and rules.calendar.is_open(monday)
        # The office now opens at ten: the running queue follows at once.
        path.write_text(base + '[hours.office]\nmon = "10:00-17:00"\n')
        assert node.reload() == []
        assert not rules.calendar.is_open(monday)
        # A queue's rules are not rebuilt under live callers: a restart is asked for.
        changed = base.replace("[queues.sales]\n", "[queues.sales]\nwrapup = 99\n")
        path.write_text(changed + '[hours.office]\nmon = "10:00-17:00"\n')
        with caplog.at_level("WARNING", logger="switch.node"):
            assert node.reload() == []
        assert "reload: tenant 'default': queues changed; restart the node to apply it" in (
            caplog.text
        )
    finally:
        await node.stop()
