"""Databases for the records tests: a SQLite file, or a fresh database on the test PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from switch.store.records import Backend, Record, Records, open_backend


@pytest.fixture(params=["sqlite", "postgresql"])
async def new_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[], Backend]]:
    """Makes backends on one database (each call: a new connection, as after a restart)."""
    made: list[Backend] = []
    if request.param == "sqlite":
        dsn = str(tmp_path / "switch.db")
    else:
        server = request.getfixturevalue("postgres")
        name = f"t{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(server.dsn)
        await admin.execute(f"CREATE DATABASE {name}")
        await admin.close()
        dsn = server.dsn.rsplit("/", 1)[0] + "/" + name

    def make() -> Backend:
        backend = open_backend(request.param, dsn)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.close()


def cdr_row(n: int, **extra: Any) -> dict[str, Any]:
    """A CDR as the builder makes it (fewer columns: the rest are NULL)."""
    return {
        "id": f"node1:{n}:{1_700_000_000_000_000 + n}",
        "node": "node1",
        "call_id": n,
        "tenant": "demo",
        "direction": "inbound",
        "caller": "+15551230000",
        "did": "+15559990000",
        "start_time": 1_700_000_000.0 + n,
        "end_time": 1_700_000_010.0 + n,
        "duration": 10.0,
        "ivr": {"steps": ["menu", "sales"], "digits": "1"},
        "transfers": [],
        "legs": [
            {
                "leg": "a",
                "party": "trunk demo/carrier",
                "ended_by": "caller",
                "status": 200,
                "reason": "BYE",
                "end_time": 1_700_000_010.0 + n,
            },
            {
                "leg": "b",
                "party": "agent demo/1001",
                "ended_by": "node",
                "status": 200,
                "reason": "BYE from the caller",
                "end_time": 1_700_000_010.0 + n,
            },
        ],
        **extra,
    }


def records_of(backend: Backend, outbox: Path, **kw: Any) -> Records:
    return Records(backend, outbox, **kw)


def cdr_record(n: int) -> Record:
    row = cdr_row(n)
    return Record(row.pop("id"), "cdr", row)
