"""Records in SQLite (the embedded default): WAL mode, on a thread of its own.

sqlite3 blocks, and a connection is used from the thread that made it, so
every call runs on one worker thread; the event loop only awaits. The file
is opened (and migrated) on first use and again after a failure, so a file
that was unreadable at start is picked up once it is fixed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .errors import RecordsError, Unavailable
from .outbox import Record
from .schema import ORDER, SCHEMA_VERSION, TABLES, VERSION_TABLE, migrations
from .sql import BadRecord, statements

T = TypeVar("T")

BUSY_MS = 2000  # how long a write waits for another writer (the CLI, a locked file)


class SqliteRecords:
    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="records")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def open(self) -> None:
        """Connect and migrate. Unavailable if the file cannot be used now;
        RecordsError if its schema is newer than this code."""
        await self._run(self._connected)

    async def write(self, records: list[Record]) -> None:
        """Write the records in one transaction. Unavailable: retry later;
        BadRecord: one of them can never be written."""
        await self._run(self._write, records)

    async def fetch(self, table: str, limit: int = 100) -> list[dict[str, Any]]:
        """The last `limit` rows of `table`, oldest first, as dicts (JSON as text)."""
        if table not in TABLES:
            raise ValueError(f"no table {table!r} (one of {', '.join(TABLES)})")
        return await self._run(self._fetch, table, limit)

    async def version(self) -> int:
        return await self._run(lambda: _version(self._connected()))

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await self._run(db.close)
        self._worker.shutdown(wait=True)

    # -- on the worker thread -----------------------------------------------------------

    def _connected(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_MS / 1000)
        except (OSError, sqlite3.Error) as exc:
            raise Unavailable(f"{self.path}: cannot open: {exc}") from None
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # the outbox has the records until commit
            db.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
            migrate(db, self.path)
        except sqlite3.Error as exc:
            db.close()
            raise Unavailable(f"{self.path}: {exc}") from None
        except RecordsError:
            db.close()
            raise
        self._db = db
        return db

    def _write(self, records: list[Record]) -> None:
        work = [stmt for record in records for stmt in statements("sqlite", record)]
        db = self._connected()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in work:
                    db.execute(sql, args)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            self._drop()  # reopen next time: the file may have been replaced or fixed
            raise Unavailable(f"{self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.IntegrityError | sqlite3.InterfaceError):
                raise BadRecord(str(exc)) from None
            self._drop()
            raise Unavailable(f"{self.path}: {exc}") from None

    def _drop(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    def _fetch(self, table: str, limit: int) -> list[dict[str, Any]]:
        db = self._connected()
        order = ORDER[table]
        desc = ", ".join(f"{c.strip()} DESC" for c in order.split(","))
        cursor = db.execute(f"SELECT * FROM {table} ORDER BY {desc} LIMIT ?", (limit,))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in reversed(cursor.fetchall())]


def _version(db: sqlite3.Connection) -> int:
    row = db.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone()
    return 0 if row is None else int(row[0])


def migrate(db: sqlite3.Connection, path: Path | str, upto: int = SCHEMA_VERSION) -> None:
    """Bring the file's records schema to version `upto` (DDL is transactional in
    SQLite: a failed step leaves the file as it was)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER NOT NULL)")
        row = db.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone()
        if row is None:
            db.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (0)")
        version = 0 if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise RecordsError(
                f"{path}: records schema version {version} is newer than this switch "
                f"knows ({SCHEMA_VERSION}); upgrade switch"
            )
        for number, steps in enumerate(migrations("sqlite")[version:upto], version + 1):
            for sql in steps:
                db.execute(sql)
            db.execute(f"UPDATE {VERSION_TABLE} SET version = ?", (number,))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
