"""Call recording: one stereo WAV per call, caller left, agent right.

Two parts:

- `Tracks`, pure: each side of the call is fed 20 ms frames of linear PCM
  with the time each frame starts (seconds since the recording began, from
  the media clock: RTP timestamps, or the relay's clock). A gap between
  frames (lost packets, silence suppression, a side on hold) becomes
  silence, so the two channels stay aligned to the sample: what was said at
  t = 1 s on the left and at t = 2 s on the right lands exactly one second
  apart. Out comes interleaved stereo, as soon as both sides have reached a
  point; a side that sends nothing for longer than `max_skew` is filled
  with silence so that the other does not wait for it forever. Timing
  jitter of up to 10 ms is taken as contiguous (no click of silence in the
  middle of a word); audio stamped before what a side has already
  recorded is cut, and a frame stamped more than MAX_GAP (10 minutes) past
  anything recorded is refused (its time is broken). The times come from
  the node's clock (the relay's monotonic time of the frame, or an RTP
  timestamp it has unwrapped against that clock), so gaps stay within the
  call's duration.
- `Recorder`: `Tracks` writing to a file, and its metadata.

Pause and resume (an agent takes a card number): everything stamped from
the pause to the resume is recorded as silence, and frames arriving while
paused are dropped before they reach any buffer, so the paused audio never
touches the disk. Silence rather than a cut, so that the recording keeps
the call's timeline (a supervisor's note "at 3:12" and the CDR's events
line up), and the metadata lists the paused intervals.

Atomic: the WAV is written to a hidden temporary file (".NAME.partial") in
the same directory, synced, and renamed to its final name only when the
call ends; its metadata (NAME.json: call id, tenant, start and end, paused
intervals, channels) is written the same way and renamed last, so a
recording is complete when its JSON exists. A crash midway leaves a
".partial" file and nothing under the final names; `leftovers()` lists
those, for the node to report (and the operator to keep or delete) when it
starts again.
"""

from __future__ import annotations

import json
import os
import sys
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from .wav import HEADER_SIZE, SAMPLE_WIDTH, SUPPORTED_RATES, header

CALLER = 0  # left channel
AGENT = 1  # right channel
CHANNEL_NAMES = ("caller", "agent")
JITTER = 0.010  # seconds: a frame this close to where its side ended follows on
MAX_SKEW = 1.0  # seconds one side may run ahead of a silent other
# A frame stamped this many seconds past anything recorded has a broken
# time (a source's timestamps jumped): it is refused, or its gap of silence
# would take the memory of hours of audio.
MAX_GAP = 600.0


def interleave(left: bytes, right: bytes) -> bytes:
    """Two mono linear buffers of equal length as one stereo buffer."""
    out = array("h", bytes(2 * len(left)))
    out[0::2] = array("h", left)
    out[1::2] = array("h", right)
    return out.tobytes()


class Tracks:
    """Aligns the two sides of a call into stereo; see the module's docstring."""

    def __init__(self, rate: int = 8000, max_skew: float = MAX_SKEW) -> None:
        if rate not in SUPPORTED_RATES:
            raise ValueError(f"recordings are made at 8000, 16000 or 48000 Hz, not {rate}")
        self.rate = rate
        self.max_skew = max_skew
        self.emitted = 0  # samples per channel handed out so far
        self.paused_at: int | None = None  # sample where the current pause began
        self.paused: list[tuple[int, int]] = []  # (from, to) samples
        self._floor = 0  # nothing before this sample is recorded (the last resume)
        self._pending = (bytearray(), bytearray())  # per channel, from `emitted` on
        self.refused = 0  # frames refused for a time too far ahead (MAX_GAP)

    def _end(self, channel: int) -> int:
        return self.emitted + len(self._pending[channel]) // SAMPLE_WIDTH

    def feed(self, channel: int, t: float, pcm: bytes) -> bytes:
        """A frame of `channel` starting at `t` seconds; returns the stereo
        audio that is now complete (often empty)."""
        if self.paused_at is not None:
            return b""
        buf = self._pending[channel]
        end = self._end(channel)
        start = round(t * self.rate)
        if start - max(self._end(CALLER), self._end(AGENT), self._floor) > MAX_GAP * self.rate:
            self.refused += 1
            return b""
        if abs(start - end) <= JITTER * self.rate:
            start = end
        start_floor = max(end, self._floor)
        if start < start_floor:  # already recorded (or paused): cut its head
            pcm = pcm[(start_floor - start) * SAMPLE_WIDTH :]
            start = start_floor
        if start > end:
            buf.extend(bytes((start - end) * SAMPLE_WIDTH))
        buf.extend(pcm)
        return self._emit()

    def _emit(self, until: int | None = None) -> bytes:
        left, right = self._pending
        ends = (self._end(CALLER), self._end(AGENT))
        if until is None:
            # The side that lags by more than max_skew is silent: fill it in.
            until = max(ends) - int(self.max_skew * self.rate)
        for buf, end in zip(self._pending, ends, strict=True):
            if end < until:
                buf.extend(bytes((until - end) * SAMPLE_WIDTH))
        n = min(len(left), len(right))
        if not n:
            return b""
        out = interleave(bytes(left[:n]), bytes(right[:n]))
        del left[:n], right[:n]
        self.emitted += n // SAMPLE_WIDTH
        return out

    def pause(self, t: float) -> bytes:
        """Stop recording at `t`: from there on, silence until `resume`."""
        if self.paused_at is not None:
            return b""
        at = max(round(t * self.rate), self.emitted)
        for channel, buf in enumerate(self._pending):
            # Audio already received but stamped after the pause goes too.
            keep = max(at - self.emitted, 0) * SAMPLE_WIDTH
            if self._end(channel) > at:
                del buf[keep:]
        self.paused_at = at
        return self._emit(until=at)

    def resume(self, t: float) -> None:
        """Record again from `t`."""
        if self.paused_at is None:
            return
        at = max(round(t * self.rate), self.paused_at)
        self.paused.append((self.paused_at, at))
        self._floor = at
        self.paused_at = None

    def finish(self, t: float | None = None) -> bytes:
        """The rest, both channels padded with silence to the longer one (or
        to `t`, the end of the call, if later)."""
        if self.paused_at is not None:
            self.resume(t if t is not None else self.paused_at / self.rate)
        until = max(self._end(CALLER), self._end(AGENT), self._floor)
        if t is not None:
            until = max(until, round(t * self.rate))
        return self._emit(until=until)


class Recorder:
    """Records one call to `path` (a .wav) with `path`.json beside it.

    Times given to `feed`, `pause`, `resume` and `close` are on the caller's
    clock (monotonic seconds); `start` is that clock's reading when the
    recording began and `started_at` the wall-clock time of that instant.
    File writes are small and buffered; `close` syncs to disk and may be
    run in a thread (`asyncio.to_thread`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        call_id: str,
        tenant: str,
        start: float,
        rate: int = 8000,
        started_at: datetime | None = None,
        max_skew: float = MAX_SKEW,
    ) -> None:
        self.path = Path(path)
        self.meta_path = self.path.with_name(self.path.name + ".json")
        self.call_id = call_id
        self.tenant = tenant
        self.start = start
        self.started_at = started_at or datetime.now(UTC)
        self.tracks = Tracks(rate, max_skew)
        self.closed = False
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        if self.path.exists():  # a recording is evidence: never overwrite one
            raise FileExistsError(f"a recording {self.path} exists already: choose another name")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(self.partial, "wb")  # noqa: SIM115 (open until close)
        self._file.write(header(rate, 2, 0))  # sizes are filled in at the end
        self._size = 0

    def _write(self, stereo: bytes) -> None:
        if stereo:
            if sys.byteorder == "big":  # pragma: no cover
                swapped = array("h", stereo)
                swapped.byteswap()
                stereo = swapped.tobytes()
            self._file.write(stereo)
            self._size += len(stereo)

    def feed(self, channel: int, now: float, pcm: bytes) -> None:
        """A 20 ms frame of `channel` (CALLER or AGENT) that started at `now`."""
        if not self.closed:
            self._write(self.tracks.feed(channel, now - self.start, pcm))

    def pause(self, now: float) -> None:
        if not self.closed:
            self._write(self.tracks.pause(now - self.start))

    def resume(self, now: float) -> None:
        if not self.closed:
            self.tracks.resume(now - self.start)

    def flush(self) -> None:
        self._file.flush()

    def close(self, now: float) -> dict:
        """Finish the file, write the metadata, and give both their final
        names. Returns the metadata."""
        if self.closed:
            raise RuntimeError(f"the recording {self.path} is already closed")
        self._write(self.tracks.finish(now - self.start))
        self.closed = True
        f = self._file
        f.seek(0)
        f.write(header(self.tracks.rate, 2, self._size))
        f.flush()
        os.fsync(f.fileno())
        f.close()
        meta = self.metadata()
        meta_partial = self.meta_path.with_name(f".{self.meta_path.name}.partial")
        with open(meta_partial, "w", encoding="utf-8") as out:
            json.dump(meta, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        self.partial.replace(self.path)
        meta_partial.replace(self.meta_path)  # last: its presence says "complete"
        return meta

    def abort(self) -> None:
        """Throw the recording away (the call failed before anyone spoke)."""
        if not self.closed:
            self.closed = True
            self._file.close()
            self.partial.unlink(missing_ok=True)

    def metadata(self) -> dict:
        rate = self.tracks.rate
        samples = (self._size) // (2 * SAMPLE_WIDTH)
        duration = samples / rate
        ended_at = self.started_at + timedelta(seconds=duration)
        return {
            "call_id": self.call_id,
            "tenant": self.tenant,
            "file": self.path.name,
            "format": "wav",
            "rate": rate,
            "channels": list(CHANNEL_NAMES),
            "started_at": self.started_at.isoformat(),
            "ended_at": ended_at.isoformat(),
            "duration": round(duration, 3),
            "paused": [
                {"from": round(a / rate, 3), "to": round(b / rate, 3)}
                for a, b in self.tracks.paused
            ],
            "bytes": HEADER_SIZE + self._size,
        }


def leftovers(directory: str | Path) -> list[Path]:
    """The temporary files of recordings interrupted by a crash, under
    `directory` (at any depth), oldest first."""
    found = [p for p in Path(directory).rglob(".*.partial") if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime)
