"""The ACD's records as JSON text, for a store that keeps them outside the process (Redis).

JSON, not pickle: another node (or a person with redis-cli) reads what one
node wrote, and a record from a node running another version of the code is
data, never code. A record is an object of its fields by name: a field the
reader does not know is dropped, a field the writer did not know takes its
default, so nodes of two versions can share a store during an upgrade.

JSON has no tuples, sets or read-only mappings: `_FIELDS` says how each
field that is one of those comes back (test_codec checks that every such
field of every record is listed, so a new one cannot be forgotten).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from .model import AgentRecord, Callback, Entry, QueueMemory, Reservation, Served, frozen_map

__all__ = ["RECORDS", "decode", "encode"]

RECORDS: dict[str, Any] = {
    "agent": AgentRecord,
    "entry": Entry,
    "reservation": Reservation,
    "queue": QueueMemory,
    "served": Served,
}


def _pairs(value: list) -> tuple[tuple[Any, ...], ...]:
    return tuple(tuple(item) for item in value)


def _optional_tuple(value: list | None) -> tuple | None:
    return None if value is None else tuple(value)


def _callback(value: dict | None) -> Callback | None:
    if value is None:
        return None
    known = {k: v for k, v in value.items() if k in Callback._fields}
    return Callback(**known)


_FIELDS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "agent": {
        "queues": frozen_map,
        "skills": frozen_map,
        "calls": frozen_map,
        "talk": frozen_map,
        "devices": frozenset,
        "resume": _optional_tuple,
    },
    "entry": {
        "skills": _pairs,
        "skip": _pairs,
        "asked": _pairs,
        "callback": _callback,
    },
    "reservation": {"agents": tuple},
    "queue": {"rr_last": _optional_tuple},
    "served": {},
}


def _default(value: Any) -> Any:
    if isinstance(value, MappingProxyType):
        return dict(value)
    if isinstance(value, frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not a type an ACD record holds")


def encode(kind: str, record: Any) -> str:
    """The record as compact JSON (an object of its fields)."""
    fields = record._asdict()
    if kind == "entry" and record.callback is not None:
        fields["callback"] = record.callback._asdict()
    return json.dumps(fields, default=_default, separators=(",", ":"))


def decode(kind: str, text: str) -> Any:
    """The record `encode` wrote (fields this version does not know are dropped)."""
    cls = RECORDS[kind]
    data = json.loads(text)
    known = cls._fields
    convert = _FIELDS[kind]
    values = {}
    for name, value in data.items():
        if name in known:
            into = convert.get(name)
            values[name] = into(value) if into is not None else value
    for name in known:
        if name not in values and name not in cls._field_defaults:
            raise ValueError(f"{kind} record without {name!r}: {text[:200]}")
    return cls(**values)
