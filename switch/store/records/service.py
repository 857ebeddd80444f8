"""Records: CDRs and queue/agent events, kept through the outbox into the database.

`cdr()`, `queue_event()`, `agent_event()` and `set_disposition()` are plain
calls from the event loop: the record is appended to the outbox journal
(switch.store.records.outbox) and handed to the writer task, which writes
batches to the database off the loop (SQLite on its thread, asyncpg
natively), then acknowledges them in the journal.

When the database cannot be written (down, locked, read-only) the records
wait, in the journal and in memory, and the writer tries again with backoff
(0.5 s doubling to 30 s); one warning says so, one line says when it is back.
Calls never wait for the database.

When the outbox itself cannot be written (disk full), records are held in
memory only, up to `max_memory`; beyond that the oldest unjournaled ones
are dropped, counted, and logged. Calls go on either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from .errors import RecordsError, Unavailable
from .outbox import Outbox, Record
from .schema import JSON_COLUMNS
from .sql import BadRecord

log = logging.getLogger("switch.records")

BATCH = 500  # records per transaction
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
MAX_MEMORY = 10_000  # records held without a journal (disk full) before the oldest go


class Backend(Protocol):
    dialect: str

    async def open(self) -> None: ...
    async def write(self, records: list[Record]) -> None: ...
    async def fetch(self, table: str, limit: int = 100) -> list[dict[str, Any]]: ...
    async def version(self) -> int: ...
    async def close(self) -> None: ...


_sequence = itertools.count()


def new_id() -> str:
    """A record's id: unique across nodes and restarts, and in the order records
    were made (rows of the same time read back in that order)."""
    return f"{time.time_ns():016x}-{next(_sequence) % 16**8:08x}-{secrets.token_hex(4)}"


def open_backend(backend: str, dsn: str) -> Backend:
    """The database named by `[records]` (backend, dsn)."""
    if backend == "sqlite":
        from .sqlite import SqliteRecords

        return SqliteRecords(dsn)
    if backend == "postgresql":
        from .postgres import PostgresRecords

        return PostgresRecords(dsn)
    raise RecordsError(f'records backend {backend!r}: use "sqlite" or "postgresql"')


class Records:
    """See the module's docstring."""

    def __init__(
        self,
        backend: Backend,
        outbox: Path,
        clock: Callable[[], float] = time.time,
        max_memory: int = MAX_MEMORY,
    ) -> None:
        self.backend = backend
        self.outbox = Outbox(outbox)
        self.clock = clock
        self.max_memory = max_memory
        self._pending: list[Record] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.down: str | None = None  # why the database cannot be written, while it cannot
        self.journal_down: str | None = None  # why the outbox cannot be written
        self.dropped = 0  # records lost because neither disk nor database took them
        self.written = 0  # records written to the database by this run

    async def start(self) -> None:
        """Replay what earlier runs left in the outbox, migrate the database, start
        writing. A database that cannot be reached is retried (records wait);
        RecordsError if it can never be used as it is (schema too new)."""
        replay = self.outbox.unacknowledged()
        if replay:
            log.info("records: %d records from the outbox to write again", len(replay))
        self._pending[:0] = replay
        try:
            await self.backend.open()
        except Unavailable as exc:
            self._went_down(str(exc))
        self._task = asyncio.get_running_loop().create_task(self._writer(), name="records")
        self._kick()

    # -- adding records (from the event loop; never blocks on the database) ----------------

    def cdr(self, row: dict[str, Any]) -> str:
        """Keep a CDR (`row["id"]` its unique id; `row["legs"]` its legs). Returns the id."""
        cdr_id = str(row["id"])
        self._add(Record(cdr_id, "cdr", {k: v for k, v in row.items() if k != "id"}))
        return cdr_id

    def queue_event(self, row: dict[str, Any]) -> str:
        return self._add(Record(new_id(), "queue_event", dict(row)))

    def agent_event(self, row: dict[str, Any]) -> str:
        return self._add(Record(new_id(), "agent_event", dict(row)))

    def set_disposition(
        self, cdr_id: str, disposition: str, notes: str = "", wrapup_time: float | None = None
    ) -> str:
        """The wrap-up form of a call (disposition, notes; the wrap-up seconds if
        known): kept through the outbox like the CDR, and copied onto it (the
        latest form wins, whichever reaches the database first)."""
        if not cdr_id:
            raise ValueError("set_disposition: cdr_id is empty (the id `cdr()` returned)")
        row = {
            "cdr_id": cdr_id,
            "time": self.clock(),
            "disposition": disposition,
            "notes": notes,
            "wrapup_time": wrapup_time,
        }
        return self._add(Record(new_id(), "disposition", row))

    def _add(self, record: Record) -> str:
        try:
            self.outbox.append(record)
        except OSError as exc:
            self._journal_failed(record, exc)
        else:
            if self.journal_down is not None:
                log.warning("records: the outbox is writable again")
                self.journal_down = None
        self._pending.append(record)
        self._kick()
        return record.id

    def _journal_failed(self, record: Record, exc: OSError) -> None:
        record.segment = 0
        if self.journal_down is None:
            self.journal_down = str(exc)
            log.error(
                "records: cannot write the outbox in %s (%s): records are held in memory "
                "(at most %d) until it or the database takes them; calls go on",
                self.outbox.directory, exc, self.max_memory,
            )  # fmt: skip
        unjournaled = [r for r in self._pending if r.segment == 0]
        if len(unjournaled) >= self.max_memory:
            self._pending.remove(unjournaled[0])
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("records: %d records dropped (no disk, no database)", self.dropped)

    def _kick(self) -> None:
        if self._pending:
            self._idle.clear()
        self._wake.set()

    # -- the writer -------------------------------------------------------------------------

    async def _writer(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._pending[:BATCH]
            try:
                await asyncio.to_thread(self._sync)
                await self._write(batch)
            except Unavailable as exc:
                self._went_down(str(exc))
                if self._closing:
                    self._idle.set()  # close() stops waiting: the journal keeps them
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_FIRST
            if self.down is not None:
                log.warning(
                    "records: the database is back; writing the %d records that waited",
                    len(self._pending),
                )
                self.down = None
            done = {id(r) for r in batch}
            self._pending = [r for r in self._pending if id(r) not in done]
            self.written += len(batch)
            self.outbox.acknowledge(batch)

    def _sync(self) -> None:
        try:
            self.outbox.sync()
        except OSError as exc:
            log.warning("records: cannot fsync the outbox: %s", exc)

    async def _write(self, batch: list[Record]) -> None:
        try:
            await self.backend.write(batch)
            return
        except BadRecord:
            if len(batch) == 1:
                raise
        # One of them can never be written: write them one by one and set it aside.
        for record in batch:
            try:
                await self.backend.write([record])
            except BadRecord as exc:
                self._reject(record, str(exc))

    def _reject(self, record: Record, why: str) -> None:
        log.error("records: %s %s cannot be written (%s); kept in rejected.jsonl", record.kind,
                  record.id, why)  # fmt: skip
        try:
            with open(self.outbox.directory / "rejected.jsonl", "ab") as out:
                out.write(record.to_line())
        except OSError as exc:
            log.error("records: cannot keep rejected record %s: %s", record.id, exc)

    def _went_down(self, why: str) -> None:
        if self.down is None:
            log.warning(
                "records: the database cannot be written (%s); records wait in the outbox "
                "and are retried",
                why,
            )
        self.down = why

    # -- reading, stopping ------------------------------------------------------------------

    def waiting(self) -> int:
        """Records not yet in the database."""
        return len(self._pending)

    def status(self) -> dict[str, Any]:
        return {
            "backend": self.backend.dialect,
            "waiting": len(self._pending),
            "written": self.written,
            "database_down": self.down,
            "outbox_down": self.journal_down,
            "dropped": self.dropped,
        }

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every record is in the database (True), or `timeout`."""
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return not self._pending

    async def fetch(self, table: str, limit: int = 100) -> list[dict[str, Any]]:
        """The last `limit` rows of a table, oldest first (JSON columns decoded)."""
        rows = await self.backend.fetch(table, limit)
        return [decode(row) for row in rows]

    async def close(self, timeout: float = 5.0) -> None:
        """Write what can be written within `timeout`; the rest stays in the outbox
        for the next start."""
        self._closing = True
        if self._task is not None:
            if not await self.flush(timeout) and self._pending:
                log.warning("records: %d records left in the outbox for the next start",
                            len(self._pending))  # fmt: skip
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.outbox.close()
        await self.backend.close()


def decode(row: dict[str, Any]) -> dict[str, Any]:
    """A row as read back: JSON columns as Python values."""
    out = dict(row)
    for name in JSON_COLUMNS & out.keys():
        if isinstance(out[name], str):
            out[name] = json.loads(out[name])
    return out
