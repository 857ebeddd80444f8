"""The command line and flows: check-config, run and reload refuse bad flows, saying why."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from switch.cli import main
from switch.config import Config

from .test_reload import BAD, flow_file, write_config


@pytest.fixture
def fake_node(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    started: list[Config] = []

    def run(cfg: Config) -> int:
        started.append(cfg)
        return 0

    module = types.ModuleType("switch.node")
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "switch.node", module)
    return started


def test_check_config_counts_flows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out == (
        f"{path}: OK (1 tenants, 1 agents, 0 trunks, 2 queues, 1 DIDs, 1 IVR flows)\n"
    )


def test_check_config_prints_every_flow_problem_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    flow_file(tmp_path).write_text(BAD + "  extra:\n    - plya: x\n")
    assert main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{flow_file(tmp_path)}:4:16: step 'welcome': enqueue: unknown queue 'nowhere' in tenant "
        "'default'; use one of: sales, support, or define [tenants.default.queues.nowhere]",
        f"{flow_file(tmp_path)}:6:7: step 'extra': unknown verb 'plya'; did you mean 'play'? "
        "verbs: answer, play, say, gather, menu, record, set, branch, http, enqueue, dial, "
        "voicemail, callback, notify, transfer, hangup, goto",
    ]


def test_run_refuses_a_bad_flow_like_a_bad_config(
    tmp_path: Path, fake_node: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    flow_file(tmp_path).write_text(BAD)
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{flow_file(tmp_path)}:4:16: step 'welcome': enqueue: unknown queue")
    assert fake_node == []


def test_reload_without_a_running_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert main(["reload", "--config", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"switch: error: no pid file at {tmp_path / 'data' / 'switch.pid'}: is the node running, "
        "with this config and from this directory (node.data_dir is relative to it)? "
        "Or give --pid-file\n"
    )
    stale = tmp_path / "stale.pid"
    stale.write_text("999999999\n")
    assert main(["reload", "--config", str(path), "--pid-file", str(stale)]) == 1
    assert "no process 999999999" in capsys.readouterr().err
    stale.write_text("not a pid")
    assert main(["reload", "--config", str(path), "--pid-file", str(stale)]) == 1
    assert "cannot read a pid" in capsys.readouterr().err
