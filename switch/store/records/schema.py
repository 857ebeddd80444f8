"""The records' tables, and the migrations that make them, per SQL dialect.

Migration N (counting from 1) moves a database from version N-1 to N; each
is a list of statements for "sqlite" and one for "postgresql". Append new
migrations; never edit one that has shipped, since databases out there have
already run it. The version reached is kept in `records_schema_version`
(not `schema_version`: the SQLite file is shared with the directory of
agents, whose own table has that name).

Times are epoch seconds (REAL / double precision) in both dialects, so a row
reads the same from either; JSON columns are TEXT in SQLite and jsonb in
PostgreSQL.
"""

from __future__ import annotations

from typing import Literal

Dialect = Literal["sqlite", "postgresql"]

VERSION_TABLE = "records_schema_version"

# Column types by dialect.
_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"text": "TEXT", "real": "REAL", "int": "INTEGER", "json": "TEXT"},
    "postgresql": {"text": "text", "real": "double precision", "int": "bigint", "json": "jsonb"},
}

# Version 1, frozen: the tables a call makes.
_CDRS_V1: tuple[tuple[str, str], ...] = (
    ("id", "text"),  # globally unique: "<node>:<call number>:<start in microseconds>"
    ("node", "text"),
    ("call_id", "int"),  # the node's number for the call (its logs)
    ("sip_call_id", "text"),  # the caller's Call-ID
    ("tenant", "text"),
    ("direction", "text"),  # inbound, outbound, internal
    ("trunk", "text"),
    ("caller", "text"),  # ANI
    ("caller_name", "text"),
    ("did", "text"),  # DNIS
    ("callee", "text"),
    ("app", "text"),
    ("start_time", "real"),
    ("answer_time", "real"),
    ("end_time", "real"),
    ("duration", "real"),
    ("billsec", "real"),
    ("ivr", "json"),
    ("queue", "text"),
    ("wait", "real"),
    ("agent", "text"),
    ("ring_time", "real"),
    ("talk_time", "real"),
    ("hold_time", "real"),
    ("wrapup_time", "real"),
    ("disposition", "text"),
    ("notes", "text"),
    ("transfers", "json"),
    ("hangup_by", "text"),
    ("hangup_code", "int"),
    ("hangup_reason", "text"),
    ("reason_header", "text"),
    ("recording", "text"),
    ("quality", "json"),
    ("mos_min", "real"),
)

_LEGS_V1: tuple[tuple[str, str], ...] = (
    ("cdr_id", "text"),
    ("idx", "int"),  # the leg's place in the call, from 0
    ("leg", "text"),  # "a" (the caller's side) or "b"
    ("party", "text"),
    ("ended_by", "text"),
    ("status", "int"),
    ("reason", "text"),
    ("reason_header", "text"),
    ("end_time", "real"),
)

# Version 2, frozen: the ACD's rows, and wrap-up forms.
_QUEUE_EVENTS_V2: tuple[tuple[str, str], ...] = (
    ("id", "text"),
    ("time", "real"),
    ("tenant", "text"),
    ("queue", "text"),
    ("call_id", "text"),  # the ACD's caller key (the node's call number)
    ("agent", "text"),
    ("event", "text"),
    ("wait", "real"),
    ("position", "int"),
    ("reason", "text"),
    ("extra", "json"),
)

_AGENT_EVENTS_V2: tuple[tuple[str, str], ...] = (
    ("id", "text"),
    ("time", "real"),
    ("tenant", "text"),
    ("agent", "text"),
    ("state", "text"),
    ("previous", "text"),
    ("reason", "text"),
    ("queue", "text"),
)

_DISPOSITIONS_V2: tuple[tuple[str, str], ...] = (
    ("id", "text"),
    ("cdr_id", "text"),
    ("time", "real"),
    ("disposition", "text"),
    ("notes", "text"),
    ("wrapup_time", "real"),
)


def _create(dialect: Dialect, table: str, columns: tuple[tuple[str, str], ...], key: str) -> str:
    types = _TYPES[dialect]
    body = ",\n    ".join(f"{name} {types[kind]}" for name, kind in columns)
    return f"CREATE TABLE {table} (\n    {body},\n    PRIMARY KEY ({key})\n)"


def _v1(dialect: Dialect) -> list[str]:
    return [
        _create(dialect, "cdrs", _CDRS_V1, "id"),
        _create(dialect, "cdr_legs", _LEGS_V1, "cdr_id, idx"),
        "CREATE INDEX cdrs_tenant_start ON cdrs (tenant, start_time)",
    ]


def _v2(dialect: Dialect) -> list[str]:
    return [
        _create(dialect, "queue_events", _QUEUE_EVENTS_V2, "id"),
        _create(dialect, "agent_events", _AGENT_EVENTS_V2, "id"),
        # Every wrap-up form sent, in order; the latest is copied onto the CDR.
        _create(dialect, "dispositions", _DISPOSITIONS_V2, "id"),
        "CREATE INDEX queue_events_tenant_time ON queue_events (tenant, time)",
        "CREATE INDEX agent_events_tenant_time ON agent_events (tenant, time)",
        "CREATE INDEX dispositions_cdr ON dispositions (cdr_id, time)",
    ]


def migrations(dialect: Dialect) -> list[list[str]]:
    """Migration N is entry N-1: the statements that take version N-1 to N."""
    return [_v1(dialect), _v2(dialect)]


SCHEMA_VERSION = len(migrations("sqlite"))

# The columns written today, and their kinds, per table (the newest version's).
TABLES: dict[str, dict[str, str]] = {
    "cdrs": dict(_CDRS_V1),
    "cdr_legs": dict(_LEGS_V1),
    "queue_events": dict(_QUEUE_EVENTS_V2),
    "agent_events": dict(_AGENT_EVENTS_V2),
    "dispositions": dict(_DISPOSITIONS_V2),
}
# How `fetch` orders a table's rows (oldest first).
ORDER: dict[str, str] = {
    "cdrs": "start_time, id",
    "cdr_legs": "cdr_id, idx",
    "queue_events": "time, id",
    "agent_events": "time, id",
    "dispositions": "time, id",
}
JSON_COLUMNS: frozenset[str] = frozenset(
    name for columns in TABLES.values() for name, kind in columns.items() if kind == "json"
)
