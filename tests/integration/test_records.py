"""CDRs of real calls (SIPp through a live node), and the records' bars of issue #9:
SIGKILL right after calls end loses none; a read-only or locked SQLite file, or a
stopped PostgreSQL, during calls delays them; none is written twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switch.config import demo_config_text
from tests.integration.conftest import ended_calls, running_node, sip_address
from tests.support.sipp import free_port, free_sip_port, needs_sipp, run_sipp

pytestmark = needs_sipp

TIMEOUT = 20


def _trunk_at(port: int) -> dict[str, str]:
    return {'outbound_host = "127.0.0.1:5090"': f'outbound_host = "127.0.0.1:{port}"'}


async def _calls(node_sip: tuple[str, int], far_end: int, count: int) -> None:
    """`count` calls to DID 400, forwarded out through the demo trunk to a SIPp far end."""
    callee = asyncio.ensure_future(
        run_sipp("call_uas.xml", ("127.0.0.1", 9), calls=count, timeout=TIMEOUT, port=far_end)
    )
    await asyncio.sleep(0.3)  # the far end listens before the calls come
    caller = await run_sipp(
        "call_uac.xml", node_sip, calls=count, rate=10, timeout=TIMEOUT, extra=["-s", "400"]
    )
    answered = await callee
    assert caller.ok, caller.output
    assert answered.ok, answered.output


async def test_calls_through_the_node_have_their_cdrs(tmp_path: Path) -> None:
    far_end = free_port(socket.SOCK_DGRAM)
    async with running_node(tmp_path, changes=_trunk_at(far_end)) as node:
        ended = ended_calls(node)
        await _calls(sip_address(node), far_end, 2)
        unknown = await run_sipp("call_uac_unknown_did.xml", sip_address(node), timeout=TIMEOUT)
        assert unknown.ok, unknown.output
        assert node.records is not None
        assert await node.records.flush()
        cdrs = await node.records.fetch("cdrs")
        legs = await node.records.fetch("cdr_legs")
        assert len(ended) == 3
    assert sorted(row["call_id"] for row in cdrs) == sorted(call.id for call in ended)
    answered = [row for row in cdrs if row["answer_time"] is not None]
    [refused] = [row for row in cdrs if row["answer_time"] is None]
    assert len(answered) == 2
    for row in answered:
        assert row["id"].startswith(f"{node.config.node.name}:")
        assert (row["tenant"], row["direction"], row["trunk"]) == ("demo", "inbound", "demo-trunk")
        assert (row["did"], row["callee"]) == ("400", "+444000")  # 4000, as E.164
        assert row["caller"] == "5551234"  # the From user of call_uac.xml
        assert (row["hangup_by"], row["hangup_code"], row["hangup_reason"]) == (
            "caller", 200, "BYE",
        )  # fmt: skip
        assert row["start_time"] <= row["answer_time"] <= row["end_time"]
        assert row["billsec"] == pytest.approx(row["end_time"] - row["answer_time"])
        assert row["sip_call_id"]
        mine = [leg for leg in legs if leg["cdr_id"] == row["id"]]
        assert sorted(leg["leg"] for leg in mine) == ["a", "b"]
        assert set(row["quality"]) == {"a", "b"}  # the relay's figures of both legs
    assert (refused["hangup_code"], refused["did"], refused["billsec"]) == (
        404, ended[-1].dialled, 0.0,
    )  # fmt: skip


async def test_a_held_call_has_its_hold_time(tmp_path: Path) -> None:
    far_end = free_port(socket.SOCK_DGRAM)
    async with running_node(tmp_path, changes=_trunk_at(far_end)) as node:
        callee = asyncio.ensure_future(
            run_sipp("call_uas_hold.xml", ("127.0.0.1", 9), timeout=TIMEOUT, port=far_end)
        )
        await asyncio.sleep(0.3)
        caller = await run_sipp(
            "call_uac_hold.xml", sip_address(node), timeout=TIMEOUT, extra=["-s", "400"]
        )
        assert caller.ok, caller.output
        assert (await callee).ok
        assert node.records is not None
        assert await node.records.flush()
        [cdr] = await node.records.fetch("cdrs")
    # The caller holds (sendonly), pauses 100 ms after the answer's ACK, resumes.
    assert 0.1 <= cdr["hold_time"] < 2
    assert cdr["talk_time"] == pytest.approx(cdr["billsec"] - cdr["hold_time"], abs=0.002)


def _immutable(paths: list[Path], on: bool) -> None:
    for path in paths:
        if path.exists():
            subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)


async def test_a_read_only_sqlite_file_during_calls_delays_the_cdrs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from switch.store.records import service, sqlite

    monkeypatch.setattr(sqlite, "BUSY_MS", 200)
    monkeypatch.setattr(service, "BACKOFF_MAX", 0.5)
    if shutil.which("chattr") is None:
        pytest.skip(
            "chattr not found (e2fsprogs): root ignores file modes, so +i makes it read-only"
        )
    far_end = free_port(socket.SOCK_DGRAM)
    async with running_node(tmp_path, changes=_trunk_at(far_end)) as node:
        assert node.records is not None
        db = Path(node.config.records.dsn)
        # Not the -shm file: SQLite maps it in memory, and a write to a page an
        # immutable file cannot back is SIGBUS (a fault no disk really makes).
        files = [db, Path(f"{db}-wal"), db.parent]
        try:
            _immutable(files, True)
        except subprocess.CalledProcessError:
            pytest.skip(f"chattr +i is refused on {db.parent} (file system or capability)")
        try:
            await _calls(sip_address(node), far_end, 3)
            assert not await node.records.flush(1.5)
            assert node.records.down is not None
            assert node.records.waiting() >= 3  # the CDRs (and the agents' events)
            assert len(node.calls) == 0  # the calls went on regardless
        finally:
            _immutable(files, False)
        assert await node.records.flush(10)
        cdrs = await node.records.fetch("cdrs")
    assert len(cdrs) == 3 and len({row["id"] for row in cdrs}) == 3
    assert all(row["answer_time"] is not None for row in cdrs)


# -- SIGKILL: `switch run` as a subprocess ----------------------------------------------------


def _config(tmp_path: Path, sip_port: int, http_port: int, far_end: int, extra: str = "") -> Path:
    text = demo_config_text()
    for old, new in {
        'listen = "127.0.0.1:5060"': f'listen = "127.0.0.1:{sip_port}"',
        'listen = "127.0.0.1:8080"': f'listen = "127.0.0.1:{http_port}"',
        'data_dir = "./data"': f'data_dir = "{tmp_path / "data"}"',
        'name = "node1"': 'name = "node1"',
        "keepalive = 30 ": "keepalive = 0 ",
        **_trunk_at(far_end),
    }.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "switch.toml"
    path.write_text(text + extra)
    return path


def _status(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


@contextlib.asynccontextmanager
async def _switch(config: Path, http_port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    log = open(config.parent / "switch.log", "ab")  # noqa: SIM115 - closed below
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switch", "run", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=log,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )  # fmt: skip
    pid_file = config.parent / "data" / "switch.pid"
    url = f"http://127.0.0.1:{http_port}/healthz"
    deadline = asyncio.get_running_loop().time() + 60  # (a loaded machine starts Python slowly)
    try:
        while True:
            with contextlib.suppress(OSError, ValueError):
                # (ours: another process could have taken the port meanwhile)
                ours = pid_file.exists() and pid_file.read_text().strip() == str(proc.pid)
                if ours and (await asyncio.to_thread(_status, url)).get("ready"):
                    break
            assert proc.returncode is None, (config.parent / "switch.log").read_text()
            assert asyncio.get_running_loop().time() < deadline, "switch run did not get ready"
            await asyncio.sleep(0.1)
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()


def _cdr_ids(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM cdrs")]
    finally:
        conn.close()


async def _until_ids(db: Path, count: int, seconds: float = 30) -> list[str]:
    ids: list[str] = []
    for _ in range(int(seconds * 10)):
        ids = _cdr_ids(db)
        if len(ids) >= count:
            break
        await asyncio.sleep(0.1)
    return ids


@pytest.mark.parametrize("locked", [False, True], ids=["sigkill", "sigkill-with-db-locked"])
async def test_sigkill_right_after_calls_end_loses_no_cdr(tmp_path: Path, locked: bool) -> None:
    # locked: another writer holds the SQLite file during the calls, so at the
    # kill every CDR is in the outbox only; the restart must write them once.
    sip_port, http_port = free_sip_port(), free_port(socket.SOCK_STREAM)
    far_end = free_port(socket.SOCK_DGRAM)
    config = _config(tmp_path, sip_port, http_port, far_end)
    db = tmp_path / "data" / "switch.db"
    holder: sqlite3.Connection | None = None
    async with _switch(config, http_port) as proc:
        if locked:
            holder = sqlite3.connect(db, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
        try:
            await _calls(("127.0.0.1", sip_port), far_end, 3)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{(tmp_path / 'switch.log').read_text()}") from None
        proc.send_signal(signal.SIGKILL)  # right after SIPp saw the last BYE answered
        await proc.wait()
    if holder is not None:
        assert [row[0] for row in holder.execute("SELECT count(*) FROM cdrs")] == [0]
        holder.execute("ROLLBACK")
        holder.close()
        journal = [json.loads(line) for f in (tmp_path / "data" / "outbox").glob("*.jsonl")
                   for line in f.read_text().splitlines()]  # fmt: skip
        assert [item["kind"] for item in journal].count("cdr") == 3
    async with _switch(config, http_port) as proc:
        ids = await _until_ids(db, 3)
        await asyncio.sleep(0.5)  # (a second replay would show now)
        ids = _cdr_ids(db)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    assert len(ids) == 3 and len(set(ids)) == 3, ids
    assert _cdr_ids(db) == ids
    assert list((tmp_path / "data" / "outbox").glob("*.jsonl")) == []


async def test_postgres_stopped_during_calls_then_started(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncpg

    from switch.store.records import service

    monkeypatch.setattr(service, "BACKOFF_MAX", 0.5)
    server = request.getfixturevalue("postgres")
    name = f"calls{os.getpid()}"
    admin = await asyncpg.connect(server.dsn)
    await admin.execute(f"DROP DATABASE IF EXISTS {name}")
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    dsn = server.dsn.rsplit("/", 1)[0] + "/" + name
    far_end = free_port(socket.SOCK_DGRAM)
    changes = {
        **_trunk_at(far_end),
        'backend = "sqlite"        # sqlite': f'backend = "postgresql"\ndsn = "{dsn}"\n# sqlite',
    }
    async with running_node(tmp_path, changes=changes) as node:
        assert node.records is not None and node.records.backend.dialect == "postgresql"
        await asyncio.to_thread(server.stop)
        try:
            await _calls(sip_address(node), far_end, 3)
            assert not await node.records.flush(1.0)
            assert node.records.down is not None and node.records.waiting() >= 3
        finally:
            await asyncio.to_thread(server.start)
        assert await node.records.flush(15)
        cdrs = await node.records.fetch("cdrs")
    assert len(cdrs) == 3 and len({row["id"] for row in cdrs}) == 3
    assert {row["trunk"] for row in cdrs} == {"demo-trunk"}
