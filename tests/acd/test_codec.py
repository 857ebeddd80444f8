"""Records as JSON (for the Redis store): every field of every record comes back as it was."""

from __future__ import annotations

import json

import pytest

from switch.apps.acd.codec import RECORDS, decode, encode
from switch.apps.acd.model import (
    AgentRecord,
    Callback,
    Entry,
    QueueMemory,
    Reservation,
    Served,
    frozen_map,
)

FULL = {
    "agent": AgentRecord(
        "1001", frozen_map({"sales": 1, "support": 2}), frozen_map({"en": 7, "fr": 3}), 3, 4,
        "not-ready", "lunch", 12.5, 9, frozenset({"ws:1", "sip:2"}), 3.25, 2,
        frozen_map({"sales": 4}), frozen_map({"sales": 61.5}), "r7@n1.0a", "sales", 10.0,
        20.0, 30.0, ("not-ready", "break"),
    ),
    "entry": Entry(
        "call-9", "sales", 1.0, 2.0, 17, 3, (("en", 5), ("fr", 3)), -58.0, "+4420", "reserved",
        "r3", "1001", 40.0, (("1002", 50.0),), Callback("+4420", "customer-first", 5.0, True),
        True, 33.5, 2, (("en", 7),), 6,
    ),
    "reservation": Reservation(
        "r3", "call-9", "sales", ("1001", "1002"), 5.0, 25.0, "callback", "dialling", 2
    ),
    "queue": QueueMemory("sales", (3, "1001"), 4),
    "served": Served("+4420", "1001", 99.0, 2),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(RECORDS))
def test_every_field_comes_back_equal(kind: str) -> None:
    record = FULL[kind]
    assert type(record) is RECORDS[kind]
    # Every field set away from its default, so a field the codec mishandles shows.
    defaults = type(record)._field_defaults
    assert all(getattr(record, f) != defaults[f] for f in defaults if f != "queues"), kind
    back = decode(kind, encode(kind, record))
    assert back == record
    assert type(back) is type(record)
    for name in record._fields:  # the same types too: tuples stay tuples, sets stay sets
        assert type(getattr(back, name)) is type(getattr(record, name)), name


@pytest.mark.parametrize("kind", sorted(RECORDS))
def test_defaults_come_back_equal(kind: str) -> None:
    # A new tuple field forgotten in codec._FIELDS comes back a list, and fails here.
    cls = type(FULL[kind])
    required = [f for f in cls._fields if f not in cls._field_defaults]
    record = cls(**{f: getattr(FULL[kind], f) for f in required})
    assert decode(kind, encode(kind, record)) == record


def test_json_not_pickle_and_unknown_fields_are_dropped() -> None:
    text = encode("served", FULL["served"])
    data = json.loads(text)
    assert data == {"number": "+4420", "agent": "1001", "at": 99.0, "version": 2}
    # A node of a newer version wrote a field this one does not know; an older
    # one left out a field: the record is still read.
    data["mood"] = "happy"
    del data["version"]
    assert decode("served", json.dumps(data)) == Served("+4420", "1001", 99.0, 0)
    del data["agent"]
    with pytest.raises(ValueError, match="served record without 'agent'"):
        decode("served", json.dumps(data))
