"""The SQLite directory of agents: HA1 values only, persisted, migrated at open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from switch.sip.digest import compute_ha1
from switch.store.directory import (
    SCHEMA_VERSION,
    AgentExists,
    AgentNotFound,
    AgentRecord,
    Directory,
    DirectoryError,
)

pytestmark = pytest.mark.timeout(30)

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def directory(tmp_path: Path):
    d = await Directory.open(tmp_path / "data" / "switch.db")
    yield d
    await d.close()


async def test_add_and_get(directory: Directory) -> None:
    added = await directory.add_agent("demo", "1001", "Alice Archer", PASSWORD)
    got = await directory.get("demo", "1001")
    assert got == added
    assert got is not None
    assert (got.tenant, got.extension, got.name, got.realm) == (
        "demo",
        "1001",
        "Alice Archer",
        "demo",
    )
    # HA1 = H(extension:tenant:password): the registrar challenges with realm = tenant.
    assert got.ha1("MD5") == compute_ha1("1001", "demo", PASSWORD, "MD5")
    assert got.ha1("SHA-256") == compute_ha1("1001", "demo", PASSWORD, "SHA-256")
    assert got.ha1("sha-256-sess") == got.ha1_sha256
    assert got.ha1() == got.ha1_md5
    with pytest.raises(ValueError):
        got.ha1("SHA-512-256")
    assert await directory.get("demo", "1002") is None
    assert await directory.get("other", "1001") is None


async def test_explicit_realm(directory: Directory) -> None:
    await directory.add_agent("demo", "1001", "", PASSWORD, realm="sip.example.com")
    got = await directory.get("demo", "1001")
    assert got is not None and got.realm == "sip.example.com"
    assert got.ha1_md5 == compute_ha1("1001", "sip.example.com", PASSWORD, "MD5")


async def test_add_twice_is_refused(directory: Directory) -> None:
    await directory.add_agent("demo", "1001", "Alice", PASSWORD)
    with pytest.raises(AgentExists, match="agent 1001 already exists in tenant demo"):
        await directory.add_agent("demo", "1001", "Alice again", "other")
    await directory.add_agent("acme", "1001", "Another Alice", PASSWORD)  # other tenant


@pytest.mark.parametrize("extension", ["", "10:01", "a b", "demo/1001", "-1"])
async def test_bad_extension_is_refused(directory: Directory, extension: str) -> None:
    with pytest.raises(DirectoryError, match="not a valid extension"):
        await directory.add_agent("demo", extension, "", PASSWORD)


async def test_empty_password_is_refused(directory: Directory) -> None:
    with pytest.raises(DirectoryError, match="empty"):
        await directory.add_agent("demo", "1001", "", "")


async def test_set_password_changes_ha1(directory: Directory) -> None:
    before = await directory.add_agent("demo", "1001", "Alice", PASSWORD)
    after = await directory.set_password("demo", "1001", "new secret")
    assert after.ha1_md5 != before.ha1_md5
    assert after == await directory.get("demo", "1001")
    assert after.ha1("MD5") == compute_ha1("1001", "demo", "new secret", "MD5")
    assert after.ha1("SHA-256") == compute_ha1("1001", "demo", "new secret", "SHA-256")
    assert after.name == "Alice"
    with pytest.raises(AgentNotFound, match="agent 1002 not found in tenant demo"):
        await directory.set_password("demo", "1002", "x")


async def test_remove(directory: Directory) -> None:
    await directory.add_agent("demo", "1001", "Alice", PASSWORD)
    await directory.remove_agent("demo", "1001")
    assert await directory.get("demo", "1001") is None
    with pytest.raises(AgentNotFound):
        await directory.remove_agent("demo", "1001")


async def test_list(directory: Directory) -> None:
    for tenant, ext in [("demo", "1002"), ("acme", "2001"), ("demo", "1001")]:
        await directory.add_agent(tenant, ext, f"agent {ext}", PASSWORD)
    everyone = await directory.list()
    assert [(a.tenant, a.extension) for a in everyone] == [
        ("acme", "2001"),
        ("demo", "1001"),
        ("demo", "1002"),
    ]
    assert all(isinstance(a, AgentRecord) for a in everyone)
    assert [a.extension for a in await directory.list("demo")] == ["1001", "1002"]
    assert await directory.list("nobody") == []


async def test_reopen_keeps_agents(tmp_path: Path) -> None:
    path = tmp_path / "switch.db"
    first = await Directory.open(path)
    added = await first.add_agent("demo", "1001", "Alice", PASSWORD)
    await first.close()
    second = await Directory.open(path)
    try:
        assert await second.get("demo", "1001") == added
    finally:
        await second.close()


async def test_no_plain_password_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "switch.db"
    d = await Directory.open(path)
    await d.add_agent("demo", "1001", "Alice", "first-Pa55word-xyzzy")
    await d.set_password("demo", "1001", "second-Pa55word-plugh")
    await d.close()  # checkpoints the WAL into the file
    files = [p for p in tmp_path.iterdir() if p.name.startswith("switch.db")]
    data = b"".join(p.read_bytes() for p in files)
    assert b"Alice" in data  # what we look for would be found if it were there
    assert b"first-Pa55word-xyzzy" not in data
    assert b"second-Pa55word-plugh" not in data


async def test_schema_is_wal_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "switch.db"
    await (await Directory.open(path)).close()
    await (await Directory.open(path)).close()  # a second open migrates nothing
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        db.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "switch.db"
    await (await Directory.open(path)).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE schema_version SET version = 999")
    db.close()
    with pytest.raises(DirectoryError, match="schema version 999, made by a newer switch"):
        await Directory.open(path)


async def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "switch.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DirectoryError, match="not a usable SQLite database"):
        await Directory.open(path)
