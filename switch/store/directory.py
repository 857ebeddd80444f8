"""The directory of agents in SQLite: who may register, and with which credentials.

It stores HA1 values, never passwords: ``HA1 = H(username:realm:password)``
for MD5 and for SHA-256 (RFC 8760), computed by
`switch.sip.digest.compute_ha1` when a password is set.

- username: the agent's extension ("1001");
- realm: the tenant id ("demo"). The registrar challenges an agent with
  realm = its tenant id, so the HA1 made here is the one it checks against.
  The realm used is stored with the HA1 values: a record whose realm differs
  from the challenge's cannot be verified and needs a new password.

Agents also come from the config file (with plain passwords there); merging
the two sources is the caller's business. This module only keeps the database.

SQLite runs in WAL mode (readers do not wait for the writer) on one worker
thread of its own: sqlite3 blocks, and a connection is used from the thread
that made it. The schema is created, or migrated forward, when the file is
opened; `schema_version` records how far it has got.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from switch.sip.digest import compute_ha1

__all__ = [
    "SCHEMA_VERSION",
    "AgentExists",
    "AgentNotFound",
    "AgentRecord",
    "Directory",
    "DirectoryError",
]

T = TypeVar("T")

# Each entry moves the schema from version i to i + 1. Append; never edit one
# that has shipped, since databases out there have already run it.
_MIGRATIONS: list[str] = [
    """
    CREATE TABLE agents (
        tenant      TEXT NOT NULL,
        extension   TEXT NOT NULL,
        name        TEXT NOT NULL DEFAULT '',
        realm       TEXT NOT NULL,
        ha1_md5     TEXT NOT NULL,
        ha1_sha256  TEXT NOT NULL,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL,
        PRIMARY KEY (tenant, extension)
    ) WITHOUT ROWID;
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)

# The extension is the digest username, and HA1 hashes "user:realm:password":
# a colon (or a space, or a slash, which separates tenant and user in an AOR)
# would make it ambiguous.
_EXTENSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")

_COLUMNS = "tenant, extension, name, realm, ha1_md5, ha1_sha256"


class DirectoryError(Exception):
    """A directory operation that cannot be done; the message is for a person."""


class AgentExists(DirectoryError):
    pass


class AgentNotFound(DirectoryError):
    pass


@dataclass(frozen=True, slots=True)
class AgentRecord:
    tenant: str
    extension: str
    name: str
    realm: str  # the realm the HA1 values were computed with (the tenant id)
    ha1_md5: str
    ha1_sha256: str

    def ha1(self, algorithm: str = "MD5") -> str:
        """The stored HA1 for a digest algorithm (a -sess variant uses its base's)."""
        base = algorithm.upper().removesuffix("-SESS")
        if base == "MD5":
            return self.ha1_md5
        if base == "SHA-256":
            return self.ha1_sha256
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")


def _check_extension(extension: str) -> None:
    if not _EXTENSION.fullmatch(extension):
        raise DirectoryError(
            f"{extension!r} is not a valid extension "
            "(letters, digits and . _ + -, starting with a letter or digit)"
        )


def _check_password(password: str) -> None:
    if not password:
        raise DirectoryError("the password must not be empty")


def _hashes(extension: str, realm: str, password: str) -> tuple[str, str]:
    return (
        compute_ha1(extension, realm, password, "MD5"),
        compute_ha1(extension, realm, password, "SHA-256"),
    )


class Directory:
    """Agents and their HA1 values, in one SQLite file. Open with `Directory.open`."""

    def __init__(self, connection: sqlite3.Connection, worker: ThreadPoolExecutor) -> None:
        self._db = connection
        self._worker = worker

    @classmethod
    async def open(cls, path: str | Path) -> Directory:
        """Open (creating it and its directory if needed) and migrate the database."""
        path = Path(path)
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="directory")
        try:
            connection = await asyncio.get_running_loop().run_in_executor(worker, _connect, path)
        except BaseException:
            worker.shutdown(wait=False)
            raise
        return cls(connection, worker)

    async def add_agent(
        self,
        tenant: str,
        extension: str,
        name: str,
        password: str,
        realm: str | None = None,
    ) -> AgentRecord:
        """Add an agent; AgentExists if the tenant already has that extension."""
        _check_extension(extension)
        _check_password(password)
        realm = tenant if realm is None else realm
        md5, sha256 = _hashes(extension, realm, password)

        def insert(db: sqlite3.Connection) -> None:
            now = time.time()
            try:
                db.execute(
                    f"INSERT INTO agents ({_COLUMNS}, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (tenant, extension, name, realm, md5, sha256, now, now),
                )
            except sqlite3.IntegrityError:
                raise AgentExists(f"agent {extension} already exists in tenant {tenant}") from None

        await self._run(insert)
        return AgentRecord(tenant, extension, name, realm, md5, sha256)

    async def set_password(
        self, tenant: str, extension: str, password: str, realm: str | None = None
    ) -> AgentRecord:
        """Replace the agent's HA1 values; the realm stays as it was unless given."""
        _check_password(password)
        record = await self.get(tenant, extension)
        if record is None:
            raise self._not_found(tenant, extension)
        realm = record.realm if realm is None else realm
        md5, sha256 = _hashes(extension, realm, password)

        def update(db: sqlite3.Connection) -> int:
            return db.execute(
                "UPDATE agents SET realm = ?, ha1_md5 = ?, ha1_sha256 = ?, updated_at = ?"
                " WHERE tenant = ? AND extension = ?",
                (realm, md5, sha256, time.time(), tenant, extension),
            ).rowcount

        if not await self._run(update):  # removed in between
            raise self._not_found(tenant, extension)
        return AgentRecord(tenant, extension, record.name, realm, md5, sha256)

    async def remove_agent(self, tenant: str, extension: str) -> None:
        """Remove an agent; AgentNotFound if there is none."""

        def delete(db: sqlite3.Connection) -> int:
            return db.execute(
                "DELETE FROM agents WHERE tenant = ? AND extension = ?", (tenant, extension)
            ).rowcount

        if not await self._run(delete):
            raise self._not_found(tenant, extension)

    async def get(self, tenant: str, extension: str) -> AgentRecord | None:
        def select(db: sqlite3.Connection) -> Any:
            return db.execute(
                f"SELECT {_COLUMNS} FROM agents WHERE tenant = ? AND extension = ?",
                (tenant, extension),
            ).fetchone()

        row = await self._run(select)
        return None if row is None else AgentRecord(*row)

    async def list(self, tenant: str | None = None) -> list[AgentRecord]:
        """Agents of one tenant, or of all; by tenant, then extension."""

        def select(db: sqlite3.Connection) -> list[Any]:
            query = f"SELECT {_COLUMNS} FROM agents"
            if tenant is None:
                return db.execute(query + " ORDER BY tenant, extension").fetchall()
            return db.execute(query + " WHERE tenant = ? ORDER BY extension", (tenant,)).fetchall()

        return [AgentRecord(*row) for row in await self._run(select)]

    async def close(self) -> None:
        await self._run(lambda db: db.close())
        self._worker.shutdown(wait=True)

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, job, self._db)

    @staticmethod
    def _not_found(tenant: str, extension: str) -> AgentNotFound:
        return AgentNotFound(f"agent {extension} not found in tenant {tenant}")


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: each write is one statement, atomic by itself; the
        # migration opens its own transaction.
        db = sqlite3.connect(path, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise DirectoryError(f"{path}: cannot open the directory database: {exc}") from None
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # durable enough with WAL, much faster
        db.execute("PRAGMA busy_timeout = 5000")  # the CLI and a node may write together
        _migrate(db, path)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise DirectoryError(f"{path}: not a usable SQLite database: {exc}") from None
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock at once, so that two processes opening a
    # new file together (a node and `switch agent add`) migrate it only once.
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    # DDL is transactional in SQLite: a failed step leaves the file as it was.
    with _transaction(db):
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            db.execute("INSERT INTO schema_version (version) VALUES (0)")
        version = 0 if row is None else row[0]
        if version > SCHEMA_VERSION:
            raise DirectoryError(
                f"{path}: the database has schema version {version}, made by a newer switch "
                f"(this one knows up to {SCHEMA_VERSION}); upgrade switch"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[target - 1].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("UPDATE schema_version SET version = ?", (target,))
