"""Records in PostgreSQL (several nodes, one database), with asyncpg.

One connection per node, opened on first use and again after a failure.
Migrations run in one transaction under an advisory lock, so nodes starting
together migrate once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from .errors import RecordsError, Unavailable
from .outbox import Record
from .schema import ORDER, SCHEMA_VERSION, TABLES, VERSION_TABLE, migrations
from .sql import BadRecord, statements

CONNECT_TIMEOUT = 5.0
_LOCK = 0x5357_4344  # pg_advisory_xact_lock key of the records' migrations

# Errors that mean "the database cannot take it now", as opposed to "this row is wrong".
_DOWN = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidCatalogNameError,
)


class PostgresRecords:
    dialect = "postgresql"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._db: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    async def _connected(self) -> asyncpg.Connection:
        if self._db is not None and not self._db.is_closed():
            return self._db
        try:
            db = await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT)
        except _DOWN as exc:
            raise Unavailable(f"PostgreSQL: cannot connect: {_text(exc)}") from None
        except asyncpg.PostgresError as exc:
            raise Unavailable(f"PostgreSQL: {_text(exc)}") from None
        try:
            await migrate(db)
        except BaseException:
            await db.close()
            raise
        self._db = db
        return db

    async def open(self) -> None:
        async with self._lock:
            await self._connected()

    async def write(self, records: list[Record]) -> None:
        work = [stmt for record in records for stmt in statements("postgresql", record)]
        async with self._lock:
            db = await self._connected()
            try:
                async with db.transaction():
                    for sql, args in work:
                        await db.execute(sql, *args)
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                raise BadRecord(_text(exc)) from None
            except (*_DOWN, asyncpg.PostgresError) as exc:
                await self._drop()
                raise Unavailable(f"PostgreSQL: {_text(exc)}") from None

    async def fetch(self, table: str, limit: int = 100) -> list[dict[str, Any]]:
        if table not in TABLES:
            raise ValueError(f"no table {table!r} (one of {', '.join(TABLES)})")
        desc = ", ".join(f"{c.strip()} DESC" for c in ORDER[table].split(","))
        async with self._lock:
            db = await self._connected()
            rows = await db.fetch(f"SELECT * FROM {table} ORDER BY {desc} LIMIT $1", limit)
        return [dict(row) for row in reversed(rows)]

    async def version(self) -> int:
        async with self._lock:
            db = await self._connected()
            return int(await db.fetchval(f"SELECT version FROM {VERSION_TABLE}") or 0)

    async def _drop(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                await asyncio.wait_for(db.close(), 2.0)
            except Exception:
                db.terminate()

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


async def migrate(db: asyncpg.Connection, upto: int = SCHEMA_VERSION) -> None:
    """Bring the database's records schema to version `upto`, once across nodes."""
    async with db.transaction():
        await db.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        await db.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version integer NOT NULL)")
        version = await db.fetchval(f"SELECT version FROM {VERSION_TABLE}")
        if version is None:
            await db.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (0)")
            version = 0
        if version > SCHEMA_VERSION:
            raise RecordsError(
                f"PostgreSQL: records schema version {version} is newer than this switch "
                f"knows ({SCHEMA_VERSION}); upgrade switch"
            )
        for number, steps in enumerate(migrations("postgresql")[version:upto], version + 1):
            for sql in steps:
                await db.execute(sql)
            await db.execute(f"UPDATE {VERSION_TABLE} SET version = $1", number)


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
