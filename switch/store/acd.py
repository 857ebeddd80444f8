"""Where the ACD's records live, and the one atomic operation it needs.

Every change the ACD makes is a list of writes committed together by
compare-and-set: each write names the version the stored record must still
have (0: must not exist yet) and the new record (its version one higher),
and either all of them are applied or none is (Conflict). "Reserve agent X
for caller Y" is such a commit:

    Write("entry", Y, expected=v, value=Y' (reserved, version v+1))
    Write("agent", X, expected=w, value=X' (reserved, version w+1))
    Write("reservation", R, expected=0, value=R (version 1))

so when two nodes decide from the same snapshot, the second commit finds a
version moved and fails: no caller is offered to two agents, no agent two
callers.

MemoryStore is the one-node backend: a commit is a synchronous function,
hence atomic under asyncio. RedisAcdStore (acd_redis.py) is the backend of
several nodes: the same commit as one Lua script, a local replica for the
reads, and other nodes' commits delivered to `listen`ers at `sync()`.

This protocol lives here, below switch/apps, so that the Redis backend raises
the very Conflict the engine catches; switch/apps/acd/store.py re-exports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = ["KINDS", "AcdStore", "Conflict", "Kind", "Listener", "MemoryStore", "Write"]

Kind = Literal["agent", "entry", "reservation", "queue", "served"]
KINDS: tuple[Kind, ...] = ("agent", "entry", "reservation", "queue", "served")
# Told of every record another node changed: (kind, the record before, after; None: absent).
Listener = Callable[[str, Any, Any], None]


class Conflict(Exception):
    """A commit found a record at another version than expected; nothing was written."""

    def __init__(self, kind: str, key: str, expected: int, found: int) -> None:
        self.kind, self.key, self.expected, self.found = kind, key, expected, found
        super().__init__(
            f"{kind} {key!r} is at version {found}, expected {expected}: "
            "another decision changed it first; decide again from a fresh snapshot"
        )


@dataclass(frozen=True, slots=True)
class Write:
    kind: Kind
    key: str
    expected: int | None  # the version the stored record must have; 0: absent; None: any
    value: Any  # the new record, whose version is expected + 1; None deletes


class AcdStore(Protocol):
    def get(self, kind: Kind, key: str) -> Any | None: ...

    def all(self, kind: Kind) -> Iterable[Any]: ...

    def commit(self, writes: Sequence[Write]) -> None:
        """Apply every write or none (raise Conflict)."""
        ...

    def listen(self, listener: Listener) -> None:
        """Call `listener` for each record another node changes (from `sync` or a Conflict)."""
        ...

    def sync(self) -> None:
        """Take in what other nodes committed since the last call (the engine calls it at
        each input, so that a decision starts from fresh records)."""
        ...

    def pending(self) -> bool:
        """Other nodes' changes are waiting for `sync`."""
        ...


class MemoryStore:
    """The records of one node, in dicts."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        self.commits = 0
        self.conflicts = 0

    def get(self, kind: Kind, key: str) -> Any | None:
        return self._data[kind].get(key)

    def all(self, kind: Kind) -> Iterable[Any]:
        return list(self._data[kind].values())

    def count(self, kind: Kind) -> int:
        return len(self._data[kind])

    # One node: nobody else writes, so there is never anything to take in.
    def listen(self, listener: Listener) -> None:
        pass

    def sync(self) -> None:
        pass

    def pending(self) -> bool:
        return False

    def commit(self, writes: Sequence[Write]) -> None:
        data = self._data
        for write in writes:
            if write.expected is None:
                continue
            current = data[write.kind].get(write.key)
            found = 0 if current is None else current.version
            if found != write.expected:
                self.conflicts += 1
                raise Conflict(write.kind, write.key, write.expected, found)
            if write.value is not None and write.value.version != write.expected + 1:
                raise ValueError(
                    f"{write.kind} {write.key!r}: the new record's version must be "
                    f"{write.expected + 1}, not {write.value.version}"
                )
        for write in writes:
            table = data[write.kind]
            if write.value is None:
                table.pop(write.key, None)
            else:
                table[write.key] = write.value
        self.commits += 1
