"""The outbox: records on local disk before they go to the database.

A record is appended as one JSON line to the current segment file
(`<dir>/<seq>.jsonl`) with one `os.write` before anyone is told it is kept:
the kernel has it then, so a crash of the process (SIGKILL included) cannot
lose it. The writer fsyncs the segment (`sync`, off the event loop) before
the rows go to the database, so a power cut cannot either.

Once rows are in the database they are acknowledged: their ids are appended
to `<seq>.acks`, and a segment whose every record is in is deleted with its
acks. At start, `unacknowledged()` reads what is left: the records to write
again. Writing them twice is harmless, since every insert is idempotent on
the record's id; so a crash between the database's commit and the
acknowledgement only costs a replay.

A last line cut short (a crash in the middle of a write, a full disk) is
skipped with a warning: it was never reported kept.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("switch.records")


@dataclass(slots=True)
class Record:
    """One row (or a CDR with its legs, or a disposition) on its way to the database."""

    id: str  # unique: what makes a replay idempotent
    kind: str  # "cdr", "queue_event", "agent_event", "disposition"
    row: dict[str, Any]
    segment: int = 0  # the journal segment it is in; 0: not journaled (the disk failed)

    def to_line(self) -> bytes:
        text = json.dumps({"id": self.id, "kind": self.kind, "row": self.row}, default=str)
        return text.encode() + b"\n"


@dataclass(slots=True)
class _Segment:
    seq: int
    ids: set[str] = field(default_factory=set)  # records in it not yet acknowledged


class Outbox:
    """The journal directory; used from one thread (the event loop's), bar `sync`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._segments: dict[int, _Segment] = {}
        self._fd: int | None = None
        self._seq = 0
        self._dirty = False  # appended since the last sync

    # -- start ------------------------------------------------------------------------

    def unacknowledged(self) -> list[Record]:
        """The records of earlier runs not known to be in the database, oldest first.
        Call once, before the first `append`."""
        records: list[Record] = []
        seqs = sorted(
            int(path.stem)
            for path in self.directory.glob("*.jsonl")
            if path.stem.isdigit() and path.is_file()
        )
        for seq in seqs:
            segment = _Segment(seq)
            acked = self._acks(seq)
            for record in self._read(seq):
                if record.id not in acked and record.id not in segment.ids:
                    record.segment = seq
                    segment.ids.add(record.id)
                    records.append(record)
            if segment.ids:
                self._segments[seq] = segment
            else:
                self._remove(seq)
        self._seq = seqs[-1] if seqs else 0
        return records

    def _read(self, seq: int) -> list[Record]:
        path = self.directory / f"{seq:08d}.jsonl"
        out = []
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            try:
                item = json.loads(line)
                out.append(Record(str(item["id"]), str(item["kind"]), dict(item["row"])))
            except (ValueError, KeyError, TypeError):
                log.warning("records: %s line %d is unreadable (cut short?); skipped", path, number)
        return out

    def _acks(self, seq: int) -> set[str]:
        path = self.directory / f"{seq:08d}.acks"
        try:
            return set(path.read_text().split())
        except FileNotFoundError:
            return set()

    # -- writing ----------------------------------------------------------------------

    def append(self, record: Record) -> None:
        """Keep `record` in the journal. Raises OSError (disk full, ...): the
        caller decides what then."""
        if self._fd is None:
            self._open_next()
        assert self._fd is not None
        line = record.to_line()
        written = os.write(self._fd, line)
        if written != len(line):  # a short write: the disk filled up on the way
            raise OSError(28, "short write to the outbox (disk full?)")
        self._dirty = True
        record.segment = self._seq
        self._segments.setdefault(self._seq, _Segment(self._seq)).ids.add(record.id)

    def _open_next(self) -> None:
        self._seq += 1
        path = self.directory / f"{self._seq:08d}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def sync(self) -> None:
        """fsync the current segment (thread-safe against `append`; not against
        `acknowledge`, which the writer calls between syncs)."""
        fd = self._fd
        if fd is not None and self._dirty:
            self._dirty = False
            os.fsync(fd)

    def acknowledge(self, records: list[Record]) -> None:
        """These records are in the database: forget them on disk."""
        by_seq: dict[int, list[str]] = {}
        for record in records:
            segment = self._segments.get(record.segment)
            if segment is not None and record.id in segment.ids:
                segment.ids.discard(record.id)
                by_seq.setdefault(record.segment, []).append(record.id)
        for seq, ids in by_seq.items():
            if self._segments[seq].ids:
                self._note_acks(seq, ids)
            else:  # all in (the current segment too: the next record opens a new one)
                self._retire(seq)

    def _note_acks(self, seq: int, ids: list[str]) -> None:
        try:
            with open(self.directory / f"{seq:08d}.acks", "a") as acks:
                acks.write("".join(f"{i}\n" for i in ids))
        except OSError as exc:
            # Harmless: unacknowledged rows are written again, idempotently.
            log.warning("records: cannot note acknowledgements in the outbox: %s", exc)

    def _retire(self, seq: int) -> None:
        if seq == self._seq and self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._dirty = False
        self._segments.pop(seq, None)
        self._remove(seq)

    def _remove(self, seq: int) -> None:
        for suffix in ("jsonl", "acks"):
            try:
                (self.directory / f"{seq:08d}.{suffix}").unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("records: cannot remove outbox segment %d: %s", seq, exc)

    def waiting(self) -> int:
        """Records in the journal not yet acknowledged."""
        return sum(len(segment.ids) for segment in self._segments.values())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
