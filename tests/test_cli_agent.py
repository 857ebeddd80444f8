"""switch agent add / set-password / list / remove: output and exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from switch.cli import main
from switch.sip.digest import compute_ha1
from switch.store.directory import AgentRecord, Directory

pytestmark = pytest.mark.timeout(30)

CONFIG = """\
[node]
data_dir = "{data_dir}"

[tenants.acme]
name = "Acme"

[tenants.acme.agents."1001"]
name = "Config Carl"
password = "s3cret"

[tenants.beta]
name = "Beta"
"""


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "switch.toml"
    path.write_text(CONFIG.format(data_dir=tmp_path / "data"))
    return str(path)


def agent(config: str, *args: str) -> int:
    return main(["agent", *args, "--config", config])


def stored(tmp_path: Path, tenant: str, ext: str) -> AgentRecord | None:
    async def get() -> AgentRecord | None:
        directory = await Directory.open(tmp_path / "data" / "switch.db")
        try:
            return await directory.get(tenant, ext)
        finally:
            await directory.close()

    return asyncio.run(get())


@pytest.fixture
def typed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """What the operator types at the password prompts, in order."""
    answers: list[str] = []
    prompts: list[str] = []

    def fake_getpass(prompt: str = "Password: ") -> str:
        prompts.append(prompt)
        if not answers:
            raise EOFError
        return answers.pop(0)

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    yield answers
    assert not answers, "not every prepared answer was asked for"


def test_add(config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert agent(config, "add", "acme", "2001", "--name", "Dana Doe", "--password", "pw1") == 0
    assert capsys.readouterr() == ("added agent 2001 (Dana Doe) to tenant acme\n", "")
    record = stored(tmp_path, "acme", "2001")
    assert record is not None and record.name == "Dana Doe"
    assert record.ha1("MD5") == compute_ha1("2001", "acme", "pw1", "MD5")
    assert record.ha1("SHA-256") == compute_ha1("2001", "acme", "pw1", "SHA-256")


def test_add_prompts_twice(
    config: str, tmp_path: Path, typed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    typed += ["typed-pw", "typed-pw"]
    assert agent(config, "add", "beta", "3001") == 0
    assert capsys.readouterr().out == "added agent 3001 to tenant beta\n"
    record = stored(tmp_path, "beta", "3001")
    assert record is not None
    assert record.ha1_md5 == compute_ha1("3001", "beta", "typed-pw", "MD5")


def test_add_prompts_mismatch(
    config: str, tmp_path: Path, typed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    typed += ["one", "two"]
    assert agent(config, "add", "beta", "3001") == 1
    assert capsys.readouterr() == ("", "switch: error: the two passwords do not match\n")
    assert stored(tmp_path, "beta", "3001") is None


def test_add_without_a_terminal(
    config: str, typed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert agent(config, "add", "beta", "3001") == 1
    assert "no password given" in capsys.readouterr().err


def test_add_empty_password(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert agent(config, "add", "beta", "3001", "--password", "") == 1
    assert capsys.readouterr().err == "switch: error: the password must not be empty\n"


def test_add_existing(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert agent(config, "add", "acme", "2001", "--password", "pw") == 0
    capsys.readouterr()
    assert agent(config, "add", "acme", "2001", "--password", "pw") == 1
    assert capsys.readouterr() == ("", "switch: error: agent 2001 already exists in tenant acme\n")
    assert agent(config, "add", "acme", "1001", "--password", "pw") == 1
    assert capsys.readouterr().err == (
        f"switch: error: agent 1001 already exists in tenant acme (in the config file {config})\n"
    )


def test_unknown_tenant(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    expected = "switch: error: unknown tenant 'nope' (known tenants: acme, beta)\n"
    for args in (
        ["add", "nope", "1", "--password", "x"],
        ["set-password", "nope", "1", "--password", "x"],
        ["remove", "nope", "1"],
        ["list", "nope"],
    ):
        assert agent(config, *args) == 1
        assert capsys.readouterr() == ("", expected)


def test_bad_extension(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert agent(config, "add", "acme", "10:01", "--password", "pw") == 1
    err = capsys.readouterr().err
    assert err.startswith("switch: error: '10:01' is not a valid extension")
    assert err.count("\n") == 1


def test_set_password(
    config: str, tmp_path: Path, typed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert agent(config, "add", "acme", "2001", "--password", "old") == 0
    capsys.readouterr()
    typed += ["new", "new"]
    assert agent(config, "set-password", "acme", "2001") == 0
    assert capsys.readouterr() == ("changed the password of agent 2001 in tenant acme\n", "")
    record = stored(tmp_path, "acme", "2001")
    assert record is not None
    assert record.ha1_md5 == compute_ha1("2001", "acme", "new", "MD5")
    assert agent(config, "set-password", "acme", "2001", "--password", "newer") == 0
    record = stored(tmp_path, "acme", "2001")
    assert record is not None
    assert record.ha1_sha256 == compute_ha1("2001", "acme", "newer", "SHA-256")


def test_set_password_not_found(
    config: str, typed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # No prompt: the operator learns before typing anything.
    assert agent(config, "set-password", "acme", "2001") == 1
    assert capsys.readouterr() == ("", "switch: error: agent 2001 not found in tenant acme\n")
    assert agent(config, "set-password", "acme", "1001") == 1
    assert "defined in the config file" in capsys.readouterr().err


def test_remove(config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert agent(config, "add", "acme", "2001", "--password", "pw") == 0
    capsys.readouterr()
    assert agent(config, "remove", "acme", "2001") == 0
    assert capsys.readouterr() == ("removed agent 2001 from tenant acme\n", "")
    assert stored(tmp_path, "acme", "2001") is None
    assert agent(config, "remove", "acme", "2001") == 1
    assert capsys.readouterr() == ("", "switch: error: agent 2001 not found in tenant acme\n")
    assert agent(config, "remove", "acme", "1001") == 1
    assert "defined in the config file" in capsys.readouterr().err


def test_list(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert agent(config, "add", "acme", "2001", "--name", "Dana Doe", "--password", "pw") == 0
    assert agent(config, "add", "beta", "3001", "--password", "pw") == 0
    capsys.readouterr()
    assert agent(config, "list") == 0
    assert capsys.readouterr().out.splitlines() == [
        "TENANT  EXT   NAME         SOURCE",
        "acme    1001  Config Carl  config",
        "acme    2001  Dana Doe     directory",
        "beta    3001               directory",
    ]
    assert agent(config, "list", "beta") == 0
    assert capsys.readouterr().out.splitlines() == [
        "TENANT  EXT   NAME  SOURCE",
        "beta    3001        directory",
    ]


def test_list_empty(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert agent(config, "list", "beta") == 0
    assert capsys.readouterr() == ("no agents in tenant beta\n", "")


def test_demo_config_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the demo's data_dir is ./data
    assert main(["agent", "add", "demo", "2001", "--password", "pw"]) == 0
    assert (tmp_path / "data" / "switch.db").exists()
    capsys.readouterr()
    assert main(["agent", "list", "demo"]) == 0
    out = capsys.readouterr().out
    assert "demo    1001  Alice Archer" in out
    assert "demo    2001" in out


def test_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "absent.toml"
    assert main(["agent", "list", "--config", str(missing)]) == 2
    assert capsys.readouterr().err == f"{missing}: no such file\n"


def test_subcommand_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agent"]) == 2
    assert "a subcommand is required" in capsys.readouterr().err
