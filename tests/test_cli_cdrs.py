"""`switch cdrs`: the last CDRs of a data directory, as a table or JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from switch.cli import main
from switch.store.records import Records, open_backend
from tests.store.records_support import cdr_row


def _write(data: Path, count: int) -> None:
    async def write() -> None:
        records = Records(open_backend("sqlite", str(data / "switch.db")), data / "outbox")
        await records.start()
        for n in range(1, count + 1):
            records.cdr(cdr_row(n, queue="support", agent="1001", billsec=7.5))
        records.set_disposition(cdr_row(count)["id"], "sale", "called back")
        assert await records.flush()
        await records.close()

    asyncio.run(write())


def test_the_last_cdrs_as_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, 3)
    assert main(["cdrs", "--data-dir", str(tmp_path), "--last", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "START", "(UTC)", "TENANT", "DIRECTION", "CALLER", "DID", "CALLEE", "SECONDS",
        "BILLSEC", "QUEUE", "AGENT", "HANGUP", "DISPOSITION",
    ]  # fmt: skip
    assert len(lines) == 3  # the two last, oldest first
    assert lines[1].split()[:5] == ["2023-11-14", "22:13:22", "demo", "inbound", "+15551230000"]
    # (no hangup in these rows: that column is blank)
    assert lines[2].split()[-5:] == ["10.0", "7.5", "support", "1001", "sale"]


def test_the_last_cdrs_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, 2)
    assert main(["cdrs", "--data-dir", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["call_id"] for row in rows] == [1, 2]
    assert rows[1]["disposition"] == "sale" and rows[1]["notes"] == "called back"
    assert rows[0]["ivr"] == {"steps": ["menu", "sales"], "digits": "1"}


def test_no_cdrs_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cdrs", "--data-dir", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out == "no CDRs\n"
    assert main(["cdrs", "--data-dir", str(tmp_path), "--last", "0"]) == 1
    assert "--last 0: give a number of CDRs, 1 or more" in capsys.readouterr().err
    (tmp_path / "broken" / "switch.db").mkdir(parents=True)  # not a file: cannot be opened
    assert main(["cdrs", "--data-dir", str(tmp_path / "broken")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("switch: error: ") and "switch.db" in err and "Traceback" not in err


def test_the_cdrs_of_a_postgresql_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    import asyncpg

    from switch.config import demo_config_text

    server = request.getfixturevalue("postgres")
    name = f"cli{tmp_path.name[-8:].lower().replace('-', '_')}"
    dsn = server.dsn.rsplit("/", 1)[0] + "/" + name

    async def prepare() -> None:
        admin = await asyncpg.connect(server.dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        records = Records(open_backend("postgresql", dsn), tmp_path / "outbox")
        await records.start()
        records.cdr(cdr_row(7, queue="sales"))
        assert await records.flush()
        await records.close()

    asyncio.run(prepare())
    text = demo_config_text().replace(
        'backend = "sqlite"        # sqlite', f'backend = "postgresql"\ndsn = "{dsn}"\n# sqlite', 1
    )
    config = tmp_path / "switch.toml"
    config.write_text(text)
    assert main(["cdrs", "--config", str(config), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["call_id"], row["queue"], row["ivr"]["digits"]) == (7, "sales", "1")
