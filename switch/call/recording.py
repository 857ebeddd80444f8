"""Which calls are recorded, and their recordings' lives (issue #5).

`Recordings` is the call layer's side of `switch.media.call_recording`:

- Which calls: the outbound route's `record` for a call an agent placed
  through one, the DID's for a call that came in on one, else the
  tenant's `record` (off by default). Queues (#7) will use the same switch.
- When: from the answer (both legs up, `Calls._b_answered`) to the end of
  the call (`Calls._forget`: a BYE from either side, a dead call reaped, a
  session that expired, the node stopping).
- Where: ``<directory>/<tenant>/<YYYY>/<MM>/<DD>/<call-id>.<wav|opus>`` and
  its ``.json`` beside it; the date is the tenant's (its time zone: the
  folder an operator opens for "yesterday's calls of acme"), the name is
  leg A's SIP Call-ID with anything but letters, digits, "._-" turned
  into "_" ("-2", "-3"... when a file of that name exists already).
- The `Call` gets the recording's path at the start, and its paused
  intervals (seconds from the recording's start) at the end: what a CDR
  (#9) links to.
- Pause and resume by call id (`Calls.pause_recording`, for the REST API
  of #8), with `NoSuchCall` and `NotRecorded` for what cannot be paused.

Transfers. A blind transfer keeps the relay ports (the new party sends to
the port the transferor had): the recording goes on, the new party on the
transferor's channel (its new SSRC starts a new stream there). An attended
transfer joins a party of another call into this one, on that other
call's relay leg: the recording of the call that stays follows that leg
(`joined`); the other call ends, and so does its recording. When only the
call that ends was recorded, a recording of the call that stays starts
there (a new file), so that a recorded party's conversation goes on being
recorded.

At the node's start, `leftovers()` of the directory (recordings a crash
interrupted) are logged with what to do about them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..config import Config
from ..media.call_recording import CallRecording, RecordingClock
from ..media.recorder import Recorder, leftovers
from ..media.webrtc_sdp import codecs_of
from ..sip.sdp import STATIC_PAYLOAD_TYPES, Codec
from .model import Call
from .routing import Router

log = logging.getLogger("switch.call")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class RecordingError(Exception):
    """A recording cannot be paused or resumed; the message says why."""


class NoSuchCall(RecordingError):
    pass


class NotRecorded(RecordingError):
    pass


@dataclass(frozen=True, slots=True)
class RecordingStatus:
    """Where a call's recording stands (the REST API's answer)."""

    call: int  # Call.id
    path: str
    paused: bool
    paused_intervals: tuple[tuple[float, float], ...]  # seconds from its start


class Recordings:
    """The recordings of a node's calls (see the module's docstring)."""

    def __init__(self, config: Config, router: Router) -> None:
        self.config = config
        self.router = router
        settings = config.recording
        assert settings.directory is not None  # filled in at load
        self.directory = Path(settings.directory)
        self.format = settings.format
        self.clock = RecordingClock()
        self.active: dict[Call, CallRecording] = {}
        self._commits: set[asyncio.Task[None]] = set()

    def report_leftovers(self) -> list[Path]:
        """Log the recordings a crash interrupted (at the node's start)."""
        if not self.directory.exists():
            return []
        found = leftovers(self.directory)
        for path in found:
            log.warning(
                "recording %s was interrupted (the node stopped during the call): "
                "its audio up to then is in that file, without metadata. Keep it "
                "(rename it without the leading '.' and '.partial') or delete it",
                path,
            )
        return found

    # -- which calls ---------------------------------------------------------------

    def wanted(self, call: Call) -> bool:
        tenant = self.config.tenants.get(call.caller.tenant)
        if tenant is None:
            return False
        target = call.target
        if target is not None and target.route:
            route = tenant.outbound.get(target.route)
            if route is not None and route.record is not None:
                return route.record
        if call.caller.kind == "trunk":
            did = self.router.did(tenant, call.dialled)
            if did is not None and did.record is not None:
                return did.record
        return tenant.record

    # -- start and end -------------------------------------------------------------

    def answered(self, call: Call) -> None:
        """The call is answered: record it if it should be."""
        if call in self.active or call.media is None or not self.wanted(call):
            return
        self._start(call)

    def _start(self, call: Call) -> None:
        media = call.media
        assert media is not None
        try:
            recorder = self._recorder(call)
        except OSError as exc:
            log.error(
                "call %d: cannot record to %s: %s; check that the directory of "
                "[recording] exists and is writable",
                call.id, self.directory, exc,
            )  # fmt: skip
            return
        self.active[call] = CallRecording(
            recorder, media.a.rtp, media.b.rtp, lambda side: _payload_types(call, side), self.clock
        )
        call.recording_path = str(recorder.path)
        log.info("call %d: recording to %s", call.id, recorder.path)

    def _recorder(self, call: Call) -> Recorder:
        tenant = self.config.tenants[call.caller.tenant]
        started = datetime.now(UTC)
        day = started.astimezone(tenant.zone)
        folder = self.directory / tenant.id / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"
        sip_call_id = call.a_invite.call_id
        stem = _UNSAFE.sub("_", sip_call_id)[:100] or f"call-{call.id}"
        target = call.target
        extra = {
            "call": call.id,
            "caller": f"{call.caller.kind} {call.caller.tenant}/{call.caller.name}",
            "callee": f"{target.kind} {target.name} {target.uri}".strip() if target else "",
            "dialled": call.dialled,
        }
        for n in range(1, 100):
            path = folder / f"{stem}{'' if n == 1 else f'-{n}'}.{self.format}"
            if path.exists() or path.with_name(f".{path.name}.partial").exists():
                continue
            return Recorder(
                path, call_id=sip_call_id, tenant=tenant.id, start=time.monotonic(),
                started_at=started, format=self.format, extra=extra,
            )  # fmt: skip
        raise FileExistsError(f"{folder}: 99 recordings named {stem} already")

    def ended(self, call: Call) -> None:
        """The call is over: finish its recording (the disk work in a thread)."""
        recording = self.active.pop(call, None)
        if recording is None:
            return
        if recording.failed:
            # What was written is in the partial file (a leftover): the call
            # keeps no link to a recording that does not exist.
            log.error("call %d: the recording stopped early (%s); what it has is in %s",
                      call.id, recording.failed, recording.recorder.partial)  # fmt: skip
            call.recording_path = ""
            return
        try:
            meta = recording.stop()
        except Exception:
            log.exception("call %d: the recording %s could not be finished", call.id,
                          recording.path)  # fmt: skip
            return
        call.recording_paused = [(p["from"], p["to"]) for p in meta["paused"]]
        task = asyncio.get_running_loop().create_task(self._commit(call, recording))
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)

    async def _commit(self, call: Call, recording: CallRecording) -> None:
        try:
            await recording.commit()
        except OSError as exc:
            log.error("call %d: the recording %s could not be saved: %s (it stays as %s)",
                      call.id, recording.path, exc, recording.recorder.partial)  # fmt: skip

    def joined(self, call: Call, side: str, other: Call) -> None:
        """An attended transfer put `other`'s party on `call`'s leg `side`."""
        assert call.media is not None
        recording = self.active.get(call)
        port = (call.media.a if side == "a" else call.media.b).rtp
        if recording is not None:
            recording.move(side, port)
        elif other in self.active:
            self._start(call)

    # -- pause and resume ----------------------------------------------------------

    def pause(self, call: Call) -> RecordingStatus:
        recording = self._recording(call)
        recording.pause()
        return self.status(call)

    def resume(self, call: Call) -> RecordingStatus:
        recording = self._recording(call)
        recording.resume()
        return self.status(call)

    def status(self, call: Call) -> RecordingStatus:
        recording = self._recording(call)
        intervals = recording.recorder.paused_intervals()
        return RecordingStatus(
            call.id, recording.path, recording.paused, tuple((round(a, 3), round(b, 3))
                                                             for a, b in intervals)
        )  # fmt: skip

    def _recording(self, call: Call) -> CallRecording:
        recording = self.active.get(call)
        if recording is None or recording.stopped:
            raise NotRecorded(f"call {call.id} is not being recorded")
        return recording

    async def close(self) -> None:
        """The node stops: finish every recording and wait for the disk."""
        for call in list(self.active):
            self.ended(call)
        if self._commits:
            await asyncio.gather(*self._commits, return_exceptions=True)
        self.clock.close()


def _payload_types(call: Call, side: str) -> dict[int, Codec]:
    """Payload type -> codec of what leg `side` sends, as the call's SDP says.

    The leg's own SDP first, then the other's (a phone sends with the
    numbers it was offered, and they usually agree), then the static
    types. A browser's leg that transcodes hands the relay (and its tap)
    packets already in the other leg's codec: that codec comes first.
    """
    found: dict[int, Codec] = dict(STATIC_PAYLOAD_TYPES)
    own, theirs = (call.a_sdp, call.b_sdp) if side == "a" else (call.b_sdp, call.a_sdp)
    for body in (theirs, own):
        for codec in codecs_of(body) if body else ():
            if codec.payload_type is not None:
                found[codec.payload_type] = codec
    media = call.media
    if media is not None:
        inbound = getattr((media.a if side == "a" else media.b).rtp, "inbound", None)
        if inbound is not None:
            found[inbound.target_pt] = inbound.transcoder.target
    return found
