"""Records in SQLite and PostgreSQL: migrations, rows, the outbox's replay exactly once."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from switch.store.records import (
    SCHEMA_VERSION,
    Backend,
    Outbox,
    Records,
    RecordsError,
    open_backend,
)
from switch.store.records.schema import TABLES, migrations
from switch.store.records.sqlite import migrate
from tests.store.records_support import cdr_record, cdr_row, new_backend

__all__ = ["new_backend"]  # (a fixture)

NewBackend = Callable[[], Backend]


async def test_migrates_an_empty_database_to_the_latest_version(new_backend: NewBackend) -> None:
    backend = new_backend()
    await backend.open()
    assert await backend.version() == SCHEMA_VERSION == len(migrations("postgresql"))
    for table in TABLES:
        assert await backend.fetch(table) == []
    await backend.close()
    again = new_backend()  # a second start finds it migrated and changes nothing
    await again.open()
    assert await again.version() == SCHEMA_VERSION


def test_sqlite_migrates_from_the_version_before(tmp_path: Path) -> None:
    path = tmp_path / "switch.db"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, path, upto=SCHEMA_VERSION - 1)
    db.execute("INSERT INTO cdrs (id, tenant, start_time) VALUES ('old', 'demo', 1.0)")
    with pytest.raises(sqlite3.OperationalError):
        db.execute("SELECT * FROM queue_events")  # (not there yet at version N-1)
    migrate(db, path)
    assert db.execute("SELECT version FROM records_schema_version").fetchone() == (SCHEMA_VERSION,)
    assert db.execute("SELECT count(*) FROM queue_events").fetchone() == (0,)
    assert db.execute("SELECT id, tenant FROM cdrs").fetchall() == [("old", "demo")]
    db.close()


@pytest.mark.parametrize("new_backend", ["postgresql"], indirect=True)  # (SQLite: above)
async def test_postgres_migrates_from_the_version_before(new_backend: NewBackend) -> None:
    backend = new_backend()
    import asyncpg

    from switch.store.records.postgres import migrate as pg_migrate

    db = await asyncpg.connect(backend.dsn)  # type: ignore[attr-defined]
    await pg_migrate(db, upto=SCHEMA_VERSION - 1)
    await db.execute("INSERT INTO cdrs (id, tenant, start_time) VALUES ('old', 'demo', 1.0)")
    await db.close()
    await backend.open()
    assert await backend.version() == SCHEMA_VERSION
    assert [row["id"] for row in await backend.fetch("cdrs")] == ["old"]
    assert await backend.fetch("agent_events") == []


async def test_a_schema_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "switch.db"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, path)
    db.execute("UPDATE records_schema_version SET version = 99")
    db.close()
    backend = open_backend("sqlite", str(path))
    with pytest.raises(RecordsError, match=r"newer than this switch knows.*upgrade switch"):
        await backend.open()
    await backend.close()


def test_the_sqlite_file_is_shared_with_the_directory(tmp_path: Path) -> None:
    # The directory of agents keeps its own `schema_version` in the same file.
    from switch.store.directory import SCHEMA_VERSION as DIRECTORY_VERSION
    from switch.store.directory import Directory

    async def both() -> None:
        directory = await Directory.open(tmp_path / "switch.db")
        backend = open_backend("sqlite", str(tmp_path / "switch.db"))
        await backend.open()
        assert await backend.version() == SCHEMA_VERSION
        await backend.close()
        await directory.close()
        directory = await Directory.open(tmp_path / "switch.db")  # opens again, untouched
        await directory.close()

    asyncio.run(both())
    db = sqlite3.connect(tmp_path / "switch.db")
    assert db.execute("SELECT version FROM schema_version").fetchone() == (DIRECTORY_VERSION,)
    db.close()


async def test_rows_of_every_kind_are_written_and_read_back(
    new_backend: NewBackend, tmp_path: Path
) -> None:
    records = Records(new_backend(), tmp_path / "outbox")
    await records.start()
    cdr_id = records.cdr(cdr_row(1, quality={"a": {"mos": 4.1}}, mos_min=4.1))
    records.queue_event({"time": 5.0, "tenant": "demo", "queue": "support", "call_id": "1",
                         "event": "joined", "position": 1, "extra": {"priority": 0}})  # fmt: skip
    records.agent_event({"time": 6.0, "tenant": "demo", "agent": "1001", "state": "on-call",
                         "previous": "reserved", "reason": "answered"})  # fmt: skip
    assert await records.flush()
    [cdr] = await records.fetch("cdrs")
    assert cdr["id"] == cdr_id == "node1:1:1700000000000001"
    assert cdr["ivr"] == {"steps": ["menu", "sales"], "digits": "1"}
    assert cdr["quality"] == {"a": {"mos": 4.1}} and cdr["mos_min"] == 4.1
    assert cdr["disposition"] is None
    legs = await records.fetch("cdr_legs")
    assert [(leg["idx"], leg["leg"], leg["party"]) for leg in legs] == [
        (0, "a", "trunk demo/carrier"),
        (1, "b", "agent demo/1001"),
    ]
    assert all(leg["cdr_id"] == cdr_id for leg in legs)
    [joined] = await records.fetch("queue_events")
    assert (joined["event"], joined["position"], joined["extra"]) == ("joined", 1, {"priority": 0})
    [changed] = await records.fetch("agent_events")
    assert (changed["state"], changed["previous"], changed["reason"]) == (
        "on-call", "reserved", "answered",
    )  # fmt: skip
    await records.close()
    assert list((tmp_path / "outbox").glob("*.jsonl")) == []  # all in: the journal is gone


async def test_the_latest_disposition_wins_whichever_comes_first(
    new_backend: NewBackend, tmp_path: Path
) -> None:
    clock = iter([10.0, 20.0, 30.0])
    records = Records(new_backend(), tmp_path / "outbox", clock=lambda: next(clock))
    await records.start()
    records.set_disposition("node1:2:1700000000000002", "sale", "before the CDR")
    records.cdr(cdr_row(2))
    records.cdr(cdr_row(3))
    assert await records.flush()
    records.set_disposition("node1:3:1700000000000003", "callback", "first", wrapup_time=12.5)
    records.set_disposition("node1:3:1700000000000003", "sale", "second")
    assert await records.flush()
    cdrs = {row["call_id"]: row for row in await records.fetch("cdrs")}
    assert (cdrs[2]["disposition"], cdrs[2]["notes"]) == ("sale", "before the CDR")
    assert (cdrs[3]["disposition"], cdrs[3]["notes"]) == ("sale", "second")
    assert cdrs[3]["wrapup_time"] == 12.5  # the later form did not say, the earlier one did
    assert len(await records.fetch("dispositions")) == 3
    with pytest.raises(ValueError, match="cdr_id is empty"):
        records.set_disposition("", "sale")
    await records.close()


async def test_a_crash_before_the_database_write_is_replayed_once(
    new_backend: NewBackend, tmp_path: Path
) -> None:
    # The process appended to the journal and died: nothing reached the database.
    outbox = Outbox(tmp_path / "outbox")
    outbox.unacknowledged()
    for n in range(5):
        outbox.append(cdr_record(n))
    outbox.close()
    records = Records(new_backend(), tmp_path / "outbox")
    await records.start()
    assert await records.flush()
    assert sorted(row["call_id"] for row in await records.fetch("cdrs")) == [0, 1, 2, 3, 4]
    assert len(await records.fetch("cdr_legs")) == 10
    await records.close()
    assert list((tmp_path / "outbox").iterdir()) == []


async def test_a_crash_after_the_write_before_the_ack_writes_nothing_twice(
    new_backend: NewBackend, tmp_path: Path
) -> None:
    # The rows reached the database, the process died before acknowledging them.
    outbox = Outbox(tmp_path / "outbox")
    outbox.unacknowledged()
    batch = [cdr_record(n) for n in range(3)]
    for record in batch:
        outbox.append(record)
    backend = new_backend()
    await backend.open()
    await backend.write(batch)
    outbox.close()
    await backend.close()
    records = Records(new_backend(), tmp_path / "outbox")
    await records.start()
    assert await records.flush()
    assert sorted(row["call_id"] for row in await records.fetch("cdrs")) == [0, 1, 2]
    assert len(await records.fetch("cdr_legs")) == 6
    await records.close()


def test_acknowledged_records_and_cut_lines_are_not_replayed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path)
    outbox.unacknowledged()
    batch = [cdr_record(n) for n in range(4)]
    for record in batch:
        outbox.append(record)
    outbox.acknowledge(batch[:2])  # written: noted in the acks file
    outbox.close()
    [segment] = tmp_path.glob("*.jsonl")
    with open(segment, "ab") as journal:
        journal.write(b'{"id": "cut", "kind": "cdr", "ro')  # a crash in mid-write
    with caplog.at_level(logging.WARNING, "switch.records"):
        left = Outbox(tmp_path).unacknowledged()
    assert [record.id for record in left] == [batch[2].id, batch[3].id]
    assert "line 5 is unreadable" in caplog.text
    again = Outbox(tmp_path)
    replay = again.unacknowledged()
    again.acknowledge(replay)  # all in: the segment and its acks go
    assert list(tmp_path.iterdir()) == []


async def test_sqlite_locked_records_wait_and_arrive_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from switch.store.records import service, sqlite

    monkeypatch.setattr(sqlite, "BUSY_MS", 100)
    monkeypatch.setattr(service, "BACKOFF_FIRST", 0.05)
    path = tmp_path / "switch.db"
    records = Records(open_backend("sqlite", str(path)), tmp_path / "outbox")
    await records.start()
    records.cdr(cdr_row(1))
    assert await records.flush()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another writer holds the file
    with caplog.at_level(logging.INFO, "switch.records"):
        for n in range(2, 6):
            records.cdr(cdr_row(n))
        assert not await records.flush(1.0)
        assert records.down is not None and "locked" in records.down
        assert records.waiting() == 4
        assert len(list((tmp_path / "outbox").glob("*.jsonl"))) == 1  # kept on disk meanwhile
        other.execute("ROLLBACK")
        other.close()
        assert await records.flush(5.0)
    assert records.down is None
    assert caplog.text.count("the database cannot be written") == 1
    assert "the database is back" in caplog.text
    assert sorted(row["call_id"] for row in await records.fetch("cdrs")) == [1, 2, 3, 4, 5]
    await records.close()


async def test_records_outlive_a_database_that_never_came_back(tmp_path: Path) -> None:
    # The database stays unusable until the node stops: the next start writes them.
    path = tmp_path / "db-dir"
    path.mkdir()  # a directory where the file should be: SQLite cannot open it
    records = Records(open_backend("sqlite", str(path)), tmp_path / "outbox")
    await records.start()
    assert records.down is not None
    records.cdr(cdr_row(1))
    records.agent_event({"time": 1.0, "tenant": "demo", "agent": "1001", "state": "available"})
    await records.close(timeout=0.3)
    path.rmdir()
    records = Records(open_backend("sqlite", str(path)), tmp_path / "outbox")
    await records.start()
    assert await records.flush()
    assert [row["call_id"] for row in await records.fetch("cdrs")] == [1]
    assert [row["agent"] for row in await records.fetch("agent_events")] == ["1001"]
    await records.close()


async def test_a_full_disk_keeps_records_in_memory_and_calls_going(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "00000001.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
    records = Records(open_backend("sqlite", str(tmp_path / "switch.db")), outbox, max_memory=3)
    await records.start()
    with caplog.at_level(logging.INFO, "switch.records"):
        records.cdr(cdr_row(1))  # no exception for the caller
        assert records.journal_down is not None and "No space left" in records.journal_down
        assert await records.flush()
    assert [row["call_id"] for row in await records.fetch("cdrs")] == [1]
    assert "cannot write the outbox" in caplog.text and "calls go on" in caplog.text
    await records.close()


async def test_a_full_disk_and_no_database_drops_the_oldest_beyond_the_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "00000001.jsonl").symlink_to("/dev/full")
    (tmp_path / "db").mkdir()  # and a database that cannot be opened
    records = Records(open_backend("sqlite", str(tmp_path / "db")), outbox, max_memory=3)
    await records.start()
    with caplog.at_level(logging.ERROR, "switch.records"):
        for n in range(5):
            records.cdr(cdr_row(n))
    assert records.waiting() == 3 and records.dropped == 2
    assert "2 records dropped" not in caplog.text and "1 records dropped" in caplog.text
    await records.close(timeout=0.2)


async def test_a_record_that_can_never_be_written_is_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = Records(open_backend("sqlite", str(tmp_path / "switch.db")), tmp_path / "outbox")
    await records.start()
    records.cdr(cdr_row(1))
    records.queue_event({"time": 1.0, "tenant": "demo", "no_such_column": 1})
    records.cdr(cdr_row(2))
    with caplog.at_level(logging.ERROR, "switch.records"):
        assert await records.flush()
    assert sorted(row["call_id"] for row in await records.fetch("cdrs")) == [1, 2]
    rejected = (tmp_path / "outbox" / "rejected.jsonl").read_text().splitlines()
    assert json.loads(rejected[0])["row"]["no_such_column"] == 1
    assert "unknown columns ['no_such_column']" in caplog.text
    await records.close()


@pytest.mark.parametrize("new_backend", ["postgresql"], indirect=True)  # (SQLite: locked file)
async def test_postgres_down_records_wait_and_arrive_once(
    new_backend: NewBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request
) -> None:
    backend = new_backend()
    from switch.store.records import service

    monkeypatch.setattr(service, "BACKOFF_FIRST", 0.05)
    monkeypatch.setattr(service, "BACKOFF_MAX", 0.5)
    server = request.getfixturevalue("postgres")
    records = Records(backend, tmp_path / "outbox")
    await records.start()
    records.cdr(cdr_row(1))
    assert await records.flush()
    await asyncio.to_thread(server.stop)
    try:
        for n in range(2, 5):
            records.cdr(cdr_row(n))
        assert not await records.flush(1.0)
        assert records.down is not None and records.waiting() == 3
    finally:
        await asyncio.to_thread(server.start)
    assert await records.flush(10.0)
    assert sorted(row["call_id"] for row in await records.fetch("cdrs")) == [1, 2, 3, 4]
    await records.close()


async def test_events_of_the_same_time_read_back_in_the_order_made(
    new_backend: NewBackend, tmp_path: Path
) -> None:
    records = Records(new_backend(), tmp_path / "outbox")
    await records.start()
    names = ["joined", "offered", "offer_ended", "offered", "answered"] * 4
    for name in names:
        records.queue_event({"time": 7.0, "tenant": "demo", "event": name, "call_id": "1"})
    assert await records.flush()
    assert [row["event"] for row in await records.fetch("queue_events")] == names
    await records.close()


async def test_a_fuller_version_of_a_cdr_replaces_it_but_not_its_wrapup(
    new_backend: NewBackend, tmp_path: Path
) -> None:
    records = Records(new_backend(), tmp_path / "outbox")
    await records.start()
    first = cdr_row(1)
    records.cdr(first)
    records.set_disposition(first["id"], "sale", "kept")
    records.cdr({**first, "queue": "support", "wait": 31.5})  # the application finished
    records.cdr(first)  # (an older version replayed before it would be overwritten the same way)
    records.cdr({**first, "queue": "support", "wait": 31.5})
    assert await records.flush()
    [cdr] = await records.fetch("cdrs")
    assert (cdr["queue"], cdr["wait"], cdr["disposition"], cdr["notes"]) == (
        "support", 31.5, "sale", "kept",
    )  # fmt: skip
    assert len(await records.fetch("cdr_legs")) == 2
    await records.close()
