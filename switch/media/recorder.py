"""Call recording: one stereo file per call, caller left, agent right.

Three parts:

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
- The file formats: WAV (16-bit linear PCM, as recorded) or Opus in Ogg
  (RFC 7845, `switch.media.ogg`), about eight times smaller.
- `Recorder`: `Tracks` writing to a file of either format, and its metadata.

Opus settings, and why. A call's audio is telephone band (8 kHz: at least
one side is a trunk or a G.711 phone, and a browser's Opus is decoded at
8 kHz for the recording), so libopus is given the 8 kHz stereo as it is:
it codes narrowband and the stream decodes at 48 kHz like any Opus (its
granule positions are at 48 kHz; OpusHead says the input was 8 kHz).
Resampling to 48 kHz first with switch.media.resample and encoding at
48 kHz costs three times as much for the same narrowband content
(measured, 60 ms frames: 1.1% of a core per call against 0.34%). 32 kbit/s
for the two channels: SILK narrowband speech is near transparent at about
16 kbit/s, and the two voices share nothing to save on. The VoIP
application mode (tuned for speech intelligibility), complexity 1 (the
audio is band-limited speech; 5 costs twice as much and sounds the same
here), 60 ms frames (the largest Opus frame: fewer packets and calls into
libopus, and latency means nothing in a file), no FEC (a file loses no
packets).

Pause and resume (an agent takes a card number): everything stamped from
the pause to the resume is recorded as silence, and frames arriving while
paused are dropped before they reach any buffer, so the paused audio never
touches the disk. Silence rather than a cut, so that the recording keeps
the call's timeline (a supervisor's note "at 3:12" and the CDR's events
line up), and the metadata lists the paused intervals.

Atomic: the recording is written to a hidden temporary file
(".NAME.partial") in the same directory, synced, and renamed to its final
name only when the call ends; its metadata (NAME.json: call id, tenant,
start and end, format, durations, paused intervals, channels) is written
the same way and renamed last, so a recording is complete when its JSON
exists. A crash midway leaves a ".partial" file and nothing under the
final names; `leftovers()` lists those, for the node to report (and the
operator to keep or delete) when it starts again.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from array import array
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from .ogg import GRANULE_RATE, OggOpusWriter
from .opus import OpusEncoder
from .opus import version as opus_version
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


class WavFile:
    """The WAV format: the stereo samples as they are, the header's sizes
    filled in at the end."""

    extension = "wav"
    codec = "pcm_s16le"

    def __init__(self, file: BinaryIO, rate: int) -> None:
        self.file, self.rate = file, rate
        file.write(header(rate, 2, 0))  # sizes are filled in at the end
        self.size = 0  # bytes of audio

    def write(self, stereo: bytes) -> None:
        if sys.byteorder == "big":  # pragma: no cover
            swapped = array("h", stereo)
            swapped.byteswap()
            stereo = swapped.tobytes()
        self.file.write(stereo)
        self.size += len(stereo)

    def finish(self) -> None:
        self.file.seek(0)
        self.file.write(header(self.rate, 2, self.size))
        self.file.seek(0, os.SEEK_END)

    @property
    def bytes(self) -> int:
        return HEADER_SIZE + self.size

    def details(self) -> dict:
        return {}


class OpusFile:
    """Opus in Ogg: stereo frames of FRAME_MS encoded as they fill (see the
    module's docstring for the settings)."""

    extension = "opus"
    codec = "opus"
    FRAME_MS = 60
    BITRATE = 32000
    COMPLEXITY = 1

    def __init__(self, file: BinaryIO, rate: int, vendor: str = "switch") -> None:
        self.rate = rate
        self.encoder = OpusEncoder(
            rate,
            channels=2,
            bitrate=self.BITRATE,
            complexity=self.COMPLEXITY,
            fec=False,
            expected_loss=0,
        )
        self.scale = GRANULE_RATE // rate  # 48 kHz granules per input sample
        self.frame_bytes = rate * self.FRAME_MS // 1000 * 2 * SAMPLE_WIDTH
        self.ogg = OggOpusWriter(
            file,
            channels=2,
            pre_skip=self.encoder.lookahead * self.scale,
            input_rate=rate,
            vendor=f"{vendor} ({opus_version()})",
            serial=secrets.randbits(32),
        )
        self._pending = bytearray()
        self.samples = 0  # per channel, written so far
        self.encoded = 0  # per channel, through the encoder so far

    def write(self, stereo: bytes) -> None:
        pending = self._pending
        pending += stereo
        self.samples += len(stereo) // (2 * SAMPLE_WIDTH)
        size = self.frame_bytes
        whole = len(pending) - len(pending) % size
        for i in range(0, whole, size):
            self._encode(bytes(pending[i : i + size]))
        del pending[:whole]

    def _encode(self, frame: bytes) -> None:
        samples = len(frame) // (2 * SAMPLE_WIDTH)
        self.ogg.write(self.encoder.encode(frame), samples * self.scale)
        self.encoded += samples

    def finish(self) -> None:
        # The encoder delays its input by its lookahead (the pre-skip): the
        # last of the audio comes out only once that much more has gone in.
        # So silence follows, in whole frames (at least one: the last page
        # must carry a packet), and the end is trimmed back to the true length.
        pending = self._pending
        need = self.samples + self.encoder.lookahead
        while self.encoded + len(pending) // (2 * SAMPLE_WIDTH) < need or not pending:
            pending += bytes(self.frame_bytes - len(pending) % self.frame_bytes)
        for i in range(0, len(pending), self.frame_bytes):
            self._encode(bytes(pending[i : i + self.frame_bytes]))
        pending.clear()
        self.ogg.close(self.samples * self.scale)

    @property
    def bytes(self) -> int:
        return self.ogg.bytes

    def details(self) -> dict:
        return {"bitrate": self.BITRATE, "frame_ms": self.FRAME_MS, "decoded_rate": GRANULE_RATE}


FORMATS: dict[str, type[WavFile] | type[OpusFile]] = {"wav": WavFile, "opus": OpusFile}


class Recorder:
    """Records one call to `path` (a .wav or .opus file, as `format` says)
    with `path`.json beside it.

    Times given to `feed`, `pause`, `resume` and `close` are on the caller's
    clock (monotonic seconds); `start` is that clock's reading when the
    recording began and `started_at` the wall-clock time of that instant.
    File writes are small and buffered. `close` is `finish` (the last
    audio, the metadata: quick) then `commit` (sync to disk and rename:
    slow on a busy disk), which may run in a thread (`asyncio.to_thread`)
    since nothing touches the recorder after `finish`. `extra` is added to
    the metadata (who the parties were, say).
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
        format: str = "wav",
        extra: Mapping[str, object] | None = None,
    ) -> None:
        if format not in FORMATS:
            raise ValueError(f"recordings are {' or '.join(FORMATS)}, not {format!r}")
        self.path = Path(path)
        self.meta_path = self.path.with_name(self.path.name + ".json")
        self.call_id = call_id
        self.tenant = tenant
        self.start = start
        self.started_at = started_at or datetime.now(UTC)
        self.format = format
        self.extra = dict(extra or {})
        self.tracks = Tracks(rate, max_skew)
        self.closed = False
        self.meta: dict | None = None  # once finished
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        if self.path.exists():  # a recording is evidence: never overwrite one
            raise FileExistsError(f"a recording {self.path} exists already: choose another name")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(self.partial, "wb")  # noqa: SIM115 (open until close)
        try:
            self.sink = FORMATS[format](self._file, rate)
        except BaseException:
            self._file.close()
            self.partial.unlink(missing_ok=True)
            raise

    def _write(self, stereo: bytes) -> None:
        if stereo:
            self.sink.write(stereo)

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

    @property
    def paused(self) -> bool:
        return self.tracks.paused_at is not None

    def paused_intervals(self) -> list[tuple[float, float]]:
        """(from, to) seconds since the start, of every pause so far (one
        still going counts to where the recording has got)."""
        rate = self.tracks.rate
        spans = [(a / rate, b / rate) for a, b in self.tracks.paused]
        if self.tracks.paused_at is not None:
            at = self.tracks.paused_at
            spans.append((at / rate, max(at, self.tracks.emitted) / rate))
        return spans

    def flush(self) -> None:
        self._file.flush()

    def finish(self, now: float) -> dict:
        """The last of the audio and the metadata; returns the metadata.
        Then `commit` (it may run in a thread)."""
        if self.closed:
            raise RuntimeError(f"the recording {self.path} is already closed")
        self._write(self.tracks.finish(now - self.start))
        self.closed = True
        self.sink.finish()
        self.meta = self.metadata()
        return self.meta

    def commit(self) -> None:
        """Sync the file and its metadata to disk and give both their final names."""
        assert self.meta is not None, "finish() first"
        f = self._file
        f.flush()
        os.fsync(f.fileno())
        f.close()
        meta_partial = self.meta_path.with_name(f".{self.meta_path.name}.partial")
        with open(meta_partial, "w", encoding="utf-8") as out:
            json.dump(self.meta, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        self.partial.replace(self.path)
        meta_partial.replace(self.meta_path)  # last: its presence says "complete"

    def close(self, now: float) -> dict:
        """`finish` and `commit` in one. Returns the metadata."""
        meta = self.finish(now)
        self.commit()
        return meta

    def abort(self) -> None:
        """Throw the recording away (the call failed before anyone spoke)."""
        if not self.closed:
            self.closed = True
            self._file.close()
            self.partial.unlink(missing_ok=True)

    def abandon(self) -> None:
        """Stop writing and leave the partial file as it is (after an error:
        the operator decides, as after a crash; `leftovers()` lists it)."""
        if not self.closed:
            self.closed = True
            try:
                self._file.close()
            except OSError:
                pass

    def metadata(self) -> dict:
        rate = self.tracks.rate
        duration = self.tracks.emitted / rate
        ended_at = self.started_at + timedelta(seconds=duration)
        paused = [(round(a / rate, 3), round(b / rate, 3)) for a, b in self.tracks.paused]
        return {
            "call_id": self.call_id,
            "tenant": self.tenant,
            "file": self.path.name,
            "format": self.format,
            "codec": self.sink.codec,
            "rate": rate,
            "channels": list(CHANNEL_NAMES),
            "started_at": self.started_at.isoformat(),
            "ended_at": ended_at.isoformat(),
            "duration": round(duration, 3),
            "paused_duration": round(sum(b - a for a, b in self.tracks.paused) / rate, 3),
            "paused": [{"from": a, "to": b} for a, b in paused],
            "bytes": self.sink.bytes,
            **self.sink.details(),
            **self.extra,
        }


def leftovers(directory: str | Path) -> list[Path]:
    """The temporary files of recordings interrupted by a crash, under
    `directory` (at any depth), oldest first."""
    found = [p for p in Path(directory).rglob(".*.partial") if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime)
