"""switch.cli: exit codes and what the operator reads."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

import switch
from switch.cli import main
from switch.config import Config, demo_config_text

GOOD = """\
[agents."1001"]
password = "s3cret"
queues = ["support"]

[queues.support]

[trunks.carrier]
inbound_from = ["203.0.113.0/24"]

[dids."200"]
queue = "support"

[tenants.acme.queues.sales]
"""

BAD = """\
[queues.support]
strategy = "longest"

[dids."200"]
queue = "suport"
"""


@pytest.fixture
def fake_node(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    """Stands in for switch.node, recording the config it is asked to run."""
    started: list[Config] = []

    def run(cfg: Config) -> int:
        started.append(cfg)
        return 7

    module = types.ModuleType("switch.node")
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "switch.node", module)
    return started


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "switch.toml"
    path.write_text(GOOD)
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK (2 tenants, 1 agents, 1 trunks, 2 queues, 1 DIDs, 0 IVR flows)\n"
    assert err == ""


def test_check_config_demo_copy_warns_about_passwords(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "demo.toml"
    path.write_text(demo_config_text())
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK (1 tenants, 5 agents, 1 trunks, 2 queues, 4 DIDs, 1 IVR flows)\n"
    assert "demo passwords" in err


def test_check_config_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "switch.toml"
    path.write_text(BAD)
    assert main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}: queues.support.strategy: 'longest' is not one of ringall, longest-idle, "
        "round-robin, fewest-calls, least-talk-time, random, linear, weighted-random",
        f"{path}: dids.200.queue: queue 'suport' does not exist in tenant 'default' "
        "(queues: support)",
    ]
    assert "Traceback" not in err


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.toml"
    assert main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err == f"{path}: no such file\n"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out == f"switch {switch.__version__}\n"


@pytest.mark.parametrize(
    "argv",
    [["bogus"], [], ["run", "--no-such-flag"], ["check-config"]],
    ids=["unknown-command", "no-command", "bad-flag", "missing-file-argument"],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: switch" in capsys.readouterr().err


def test_run_uses_the_demo_and_applies_overrides(
    tmp_path: Path, fake_node: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--sip-listen", "127.0.0.1:5070", "--http-listen", "127.0.0.1:8090"]
    assert main([*argv, "--data-dir", str(tmp_path)]) == 7
    (cfg,) = fake_node
    assert cfg.source == "<demo>"
    assert str(cfg.sip.listen) == "127.0.0.1:5070"
    assert str(cfg.http.listen) == "127.0.0.1:8090"
    assert cfg.records.dsn == str(tmp_path / "switch.db")
    assert "demo configuration" in capsys.readouterr().err


def test_run_with_config_file(tmp_path: Path, fake_node: list[Config]) -> None:
    path = tmp_path / "switch.toml"
    path.write_text(GOOD)
    assert main(["run", "--config", str(path)]) == 7
    assert fake_node[0].source == str(path)
    assert sorted(fake_node[0].tenants) == ["acme", "default"]


def test_run_with_bad_config_exits_2(
    tmp_path: Path, fake_node: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "switch.toml"
    path.write_text(BAD)
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith(f"{path}: queues.support.strategy: 'longest'")
    assert "Traceback" not in err
    assert fake_node == []


def test_run_with_bad_sip_listen_exits_2(
    fake_node: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--sip-listen", "localhost"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "--sip-listen: 'localhost' is not HOST:PORT (e.g. 0.0.0.0:5060 or [::]:5060)"
    )
    assert fake_node == []


def test_demo_config_command_prints_the_embedded_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo-config"]) == 0
    assert capsys.readouterr().out == demo_config_text()


def test_python_dash_m_switch() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "switch", "version"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[1],  # the checkout, so `switch` imports
    )
    assert (done.returncode, done.stdout) == (0, f"switch {switch.__version__}\n")
