"""What each record becomes in SQL: statements with their arguments, per dialect.

Every insert is idempotent on the record's unique id, so a record written
twice (a replay of the outbox) is one row: `ON CONFLICT DO NOTHING`, except
a CDR's, which replaces the row's call columns with the same values, or
with those of a later, fuller version of the same CDR (an application that
finished after its call: the queue's outcome). Records reach the database
in the order they were made, so the fuller version is the one that stays.
A disposition is a row of its own (every wrap-up form sent is kept) and the
latest one by time is copied onto its CDR, whichever of the two arrives
first.
"""

from __future__ import annotations

import json
from typing import Any

from .outbox import Record
from .schema import TABLES, Dialect

Statement = tuple[str, tuple[Any, ...]]


class BadRecord(Exception):
    """A record that can never be written (a bug upstream); set aside, not retried."""


def _placeholders(dialect: Dialect, count: int, start: int = 1) -> list[str]:
    if dialect == "sqlite":
        return ["?"] * count
    return [f"${n}" for n in range(start, start + count)]


# What a later version of a CDR does not replace: the wrap-up form's columns.
_KEPT = frozenset({"id", "disposition", "notes", "wrapup_time"})


def _insert(dialect: Dialect, table: str, row: dict[str, Any], replace: bool = False) -> Statement:
    kinds = TABLES[table]
    unknown = set(row) - set(kinds)
    if unknown:
        raise BadRecord(f"{table}: unknown columns {sorted(unknown)}")
    columns = list(kinds)
    marks = _placeholders(dialect, len(columns))
    if replace:
        update = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in _KEPT)
        conflict = f"ON CONFLICT (id) DO UPDATE SET {update}"
    else:
        conflict = "ON CONFLICT DO NOTHING"
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(marks)}) {conflict}"
    return sql, tuple(_value(kinds[c], row.get(c), f"{table}.{c}") for c in columns)


def _value(kind: str, value: Any, where: str) -> Any:
    if value is None:
        return None
    try:
        if kind == "json":
            return json.dumps(value, default=str)
        if kind == "real":
            return float(value)
        if kind == "int":
            return int(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise BadRecord(f"{where}: {value!r} is not {kind}: {exc}") from None


def _apply_latest(dialect: Dialect, cdr_id: str) -> Statement:
    latest = "FROM dispositions d WHERE d.cdr_id = cdrs.id ORDER BY d.time DESC, d.id DESC LIMIT 1"
    a, b = _placeholders(dialect, 2)
    sql = (
        f"UPDATE cdrs SET disposition = (SELECT d.disposition {latest}), "
        f"notes = (SELECT d.notes {latest}), "
        f"wrapup_time = COALESCE((SELECT d.wrapup_time {latest}), wrapup_time) "
        f"WHERE id = {a} AND EXISTS (SELECT 1 FROM dispositions d WHERE d.cdr_id = {b})"
    )
    return sql, (cdr_id, cdr_id)


def statements(dialect: Dialect, record: Record) -> list[Statement]:
    """The statements that write `record`, to run in one transaction."""
    row = record.row
    if record.kind == "cdr":
        cdr = {k: v for k, v in row.items() if k != "legs"}
        cdr["id"] = record.id
        out = [_insert(dialect, "cdrs", cdr, replace=True)]
        for index, leg in enumerate(row.get("legs") or []):
            out.append(_insert(dialect, "cdr_legs", {**leg, "cdr_id": record.id, "idx": index}))
        out.append(_apply_latest(dialect, record.id))
        return out
    if record.kind == "disposition":
        cdr_id = row.get("cdr_id")
        if not cdr_id:
            raise BadRecord("disposition: no cdr_id")
        return [
            _insert(dialect, "dispositions", {**row, "id": record.id}),
            _apply_latest(dialect, str(cdr_id)),
        ]
    if record.kind in ("queue_event", "agent_event"):
        return [_insert(dialect, record.kind + "s", {**row, "id": record.id})]
    raise BadRecord(f"unknown record kind {record.kind!r}")
