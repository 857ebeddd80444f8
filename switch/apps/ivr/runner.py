"""The IVR on a real call: one `Run` bound to an `AppCall` and its `Channel`.

The engine (`Run`) decides; the runner carries out its commands and
reports back:

- prompts: speech and files become a playlist (`Prompts`), played on the
  channel one at a time; the channel's `Played` (by play number) becomes
  `PlayDone(id)`; a prompt still being rendered when it is stopped or
  replaced is dropped and reported done;
- keys: the channel's `DigitBegin` (RFC 4733, INFO, in-band, whichever the
  trunk uses) becomes `Digit` (the begin, so barge-in and the engine agree);
- record: the channel records (beep, silence stop) into
  `<recordings>/<tenant>/<name>.wav`; its `Recorded` becomes `RecordDone`;
- http, dial: tasks whose answers come back as events; notify and
  callback: fire and forget (a failure is logged, the flow goes on);
- timers: the engine's `next_deadline()` on the event loop;
- enqueue, voicemail, transfer, hangup end the run and are carried out
  after it; the caller hanging up is `CallerHangup`.

`run.summary()` (steps, keys, variables, outcome) is kept in
`call.variables["ivr"]` for the screen pop and the call record, and
refreshed as the call goes. A command that fails is logged with the flow,
step and call, and the call ends; the node goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...call.app import AppCall, CallEnded, Connected
from ...media.channel import Channel, Closed, Played, Recorded
from ...media.dtmf.digits import DigitBegin
from ..queueing import EnqueueRequest, QueueOutcome, Queues
from . import commands as cmd
from . import events as ev
from .engine import CallInfo, Run
from .load import FlowSet
from .prompts import Prompts
from .verbs import Flow

if TYPE_CHECKING:
    from .callback import Callbacks
    from .http import HttpClient
    from .notify import Notifier
    from .voicemail import Voicemails

log = logging.getLogger("switch.ivr")

MAX_DEPTH = 3  # flows entered in a row through queue exits (ivr:<flow>)
DEFAULT_GREETING = "Please leave a message after the tone. Press hash when you have finished."

_background: set[asyncio.Task[Any]] = set()  # notify, callback: outlive the call


def _spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


@dataclass
class Services:
    """What a run may use; each injectable (tests use fakes and local servers)."""

    prompts: Prompts
    flows: Callable[[], FlowSet] = FlowSet
    queues: Queues | None = None
    http: HttpClient | None = None
    notifier: Notifier | None = None
    voicemails: Voicemails | None = None
    callbacks: Callbacks | None = None
    recordings: Path = Path("data/ivr-recordings")
    clock: Callable[[], float] = time.time
    runs: dict[int, Run] = field(default_factory=dict)  # call id -> its run, while it runs


class IvrApp:
    """The "ivr" application: the flow named by the route's argument, for the caller's tenant."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, call: AppCall) -> None:
        flow = self.services.flows().get(call.caller.tenant, call.argument)
        if flow is None:
            log.error("call %d: no IVR flow %r in tenant %r; refused", call.call_id,
                      call.argument, call.caller.tenant)  # fmt: skip
            call.hangup("unavailable")
            return
        await Runner(call, flow, self.services).run()


class _Failed(Exception):
    """A command could not be carried out; the call ends."""


class Runner:
    """One run of one flow on one call; see the module's docstring."""

    def __init__(self, call: AppCall, flow: Flow, services: Services, depth: int = 0) -> None:
        self.call = call
        self.flow = flow
        self.s = services
        self.depth = depth
        self.channel: Channel | None = call.channel
        self.inbox: asyncio.Queue[ev.Event] = asyncio.Queue()
        self.engine: Run | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pump: asyncio.Task[None] | None = None
        self._plays: dict[int, int] = {}  # channel's play number -> engine's play id
        self._want_play: int | None = None  # the engine's play that should be playing
        self._render: asyncio.Task[None] | None = None
        self._record: tuple[int, Path] | None = None
        self._dials: dict[int, asyncio.Task[Any]] = {}
        self._final: cmd.Command | None = None
        self._queued: dict[str, Any] | None = None

    # -- the loop ------------------------------------------------------------------

    async def run(self) -> None:
        call, clock = self.call, self.s.clock
        info = CallInfo(
            call.caller.tenant, call.caller.number, call.caller.name, call.did, str(call.call_id)
        )
        run = Run(self.flow, info, clock(), queue_info=self.s.queues)
        self.engine = run
        self.s.runs[call.call_id] = run
        watcher = asyncio.ensure_future(self._watch_end())
        try:
            await self._do(run.start(clock()))
            while not run.done:
                deadline = run.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - clock())
                try:
                    event = await asyncio.wait_for(self.inbox.get(), timeout)
                except TimeoutError:
                    await self._do(run.handle_timer(clock()))
                else:
                    await self._do(run.handle(event, clock()))
        except _Failed:
            pass
        finally:
            watcher.cancel()
            self._stop_listening()
            for task in (*self._tasks, *self._dials.values()):
                task.cancel()
            self._publish()
            self.s.runs.pop(call.call_id, None)
        final = self._final
        if final is not None and not call.ended:
            try:
                await self._carry_out(final)
            except CallEnded:
                pass
            except Exception:
                self._failed(final)
            self._publish()
        elif run.outcome.startswith("dial:"):
            await call.wait_ended()  # bridged to whoever answered

    async def _watch_end(self) -> None:
        await self.call.wait_ended()
        self.inbox.put_nowait(ev.CallerHangup())

    def _publish(self) -> None:
        if self.engine is not None:
            summary = self.engine.summary()
            previous = self.call.variables.get("ivr")
            if self.depth and isinstance(previous, dict):
                summary["before"] = previous  # the flow that sent the caller here
            if self._queued is not None:
                summary["queue"] = self._queued  # how the wait in the queues ended
            self.call.variables["ivr"] = summary

    def _where(self) -> str:
        step = self.engine.step if self.engine is not None else "-"
        return f"ivr {self.flow.tenant}/{self.flow.name} call {self.call.call_id} step {step!r}"

    def _failed(self, command: cmd.Command) -> None:
        log.exception("%s: %s failed; ending the call", self._where(), type(command).__name__)
        self.call.hangup("error")

    async def _do(self, commands: list[cmd.Command]) -> None:
        for command in commands:
            try:
                await self._command(command)
            except CallEnded:
                self.inbox.put_nowait(ev.CallerHangup())
            except Exception:
                self._failed(command)
                raise _Failed from None

    async def _command(self, c: cmd.Command) -> None:
        if isinstance(c, cmd.Answer):
            await self._answer()
        elif isinstance(c, cmd.Play):
            await self._play(c)
        elif isinstance(c, cmd.StopPlay):
            self._stop_play(c.id)
        elif isinstance(c, cmd.StartRecord):
            await self._start_record(c)
        elif isinstance(c, cmd.StopRecord):
            if self._record is not None and self._record[0] == c.id and self.channel is not None:
                self.channel.stop_recording()
        elif isinstance(c, cmd.HttpRequest):
            self._task(self._http(c))
        elif isinstance(c, cmd.Dial):
            task = asyncio.ensure_future(self._dial(c))
            self._dials[c.id] = task
        elif isinstance(c, cmd.CancelDial):
            task = self._dials.pop(c.id, None)
            if task is not None:
                task.cancel()
        elif isinstance(c, cmd.Notify):
            self._notify(c)
        elif isinstance(c, cmd.Callback):
            self._callback(c)
        elif isinstance(c, cmd.Enqueue | cmd.Voicemail | cmd.Transfer | cmd.Hangup):
            self._final = c  # the run is over: carried out after the loop
        else:
            raise TypeError(f"unknown command {c!r}")

    def _task(self, coro: Coroutine[Any, Any, ev.Event | None]) -> None:
        async def answer() -> None:
            event = await coro
            if event is not None:
                self.inbox.put_nowait(event)

        task = asyncio.ensure_future(answer())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the channel ---------------------------------------------------------------

    async def _answer(self) -> None:
        self.channel = await self.call.answer()
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._listen(self.channel))

    def _stop_listening(self) -> None:
        """The channel's events are for whoever takes the call next (the queue)."""
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        if self._render is not None:
            self._render.cancel()
            self._render = None

    async def _listen(self, channel: Channel) -> None:
        while True:
            event = await channel.events.get()
            if isinstance(event, DigitBegin):
                self.inbox.put_nowait(ev.Digit(event.digit))
            elif isinstance(event, Played):
                play_id = self._plays.pop(event.play, None)
                if play_id is not None:
                    if self._want_play == play_id:
                        self._want_play = None
                    self.inbox.put_nowait(ev.PlayDone(play_id))
            elif isinstance(event, Recorded):
                self._recorded(event)
            elif isinstance(event, Closed):
                # "connected": a dial put the caller through (its DialResult
                # follows); anything else, the caller is gone.
                if event.reason != "connected":
                    self.inbox.put_nowait(ev.CallerHangup())
                return

    async def _play(self, c: cmd.Play) -> None:
        channel = self.channel or await self.call.answer()
        self.channel = channel
        if self._render is not None:
            self._render.cancel()
        if self._want_play is not None and channel.playing:
            channel.stop()  # its Played reports the old id: ignored by the engine
        self._want_play = c.id
        self._render = asyncio.ensure_future(self._start_play(channel, c))

    async def _start_play(self, channel: Channel, c: cmd.Play) -> None:
        try:
            items = await self.s.prompts.items(c.items, c.loop)
        except Exception as exc:
            # A prompt that cannot be said must not leave the caller stuck in silence.
            log.warning("%s: prompt not played: %s", self._where(), exc)
            if self._want_play == c.id:
                self._want_play = None
                self.inbox.put_nowait(ev.PlayDone(c.id))
            return
        if self._want_play != c.id or channel.closed:
            return
        playback = channel.play(items, barge_in=c.barge_in, loop=c.loop == 0)
        self._plays[playback.number] = c.id
        if playback.done.done():  # (an empty playlist, or a closed channel)
            pass  # its Played event is on the channel's queue
        self._render = None

    def _stop_play(self, play_id: int) -> None:
        if self._want_play != play_id:
            return
        render = self._render
        if render is not None and not render.done():
            render.cancel()
            self._render = None
            self._want_play = None
            self.inbox.put_nowait(ev.PlayDone(play_id))
        elif self.channel is not None and self.channel.playing:
            self.channel.stop()  # Played("stopped") -> PlayDone

    async def _start_record(self, c: cmd.StartRecord) -> None:
        channel = self.channel or await self.call.answer()
        self.channel = channel
        folder = self.s.recordings / _safe(self.flow.tenant)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        path = folder / f"{_safe(c.name)}-{self.call.call_id}.wav"
        self._want_play = None  # recording stops any prompt
        self._record = (c.id, path)
        channel.record(path, max_seconds=3600.0, silence_seconds=c.silence, stop_on="", beep=c.beep)

    def _recorded(self, event: Recorded) -> None:
        if self._record is None:
            return
        record_id, _ = self._record
        self._record = None
        result = event.result
        reason = {"silence": "silence", "hangup": "hangup"}.get(result.reason, "stopped")
        if result.error:
            reason = "error"
        path = str(result.path) if result.path is not None else ""
        self.inbox.put_nowait(ev.RecordDone(record_id, path, result.seconds, reason))  # type: ignore[arg-type]

    # -- services ------------------------------------------------------------------

    async def _http(self, c: cmd.HttpRequest) -> ev.Event:
        if self.s.http is None:
            return ev.HttpFailed(c.id, "this node has no HTTP client")
        return await self.s.http.request(c)

    async def _dial(self, c: cmd.Dial) -> None:
        result = await self._connect(c.target, c.timeout, c.kind)
        answered, reason = result
        self._dials.pop(c.id, None)
        self.inbox.put_nowait(ev.DialResult(c.id, answered, reason))

    async def _connect(self, target: str, timeout: float, kind: str) -> tuple[bool, str]:
        """Put the caller through (AppCall.connect, the call layer's bridge):
        (answered, why not)."""
        try:
            result = await self.call.connect(target, timeout=timeout)
        except (RuntimeError, ValueError) as exc:  # a call that cannot be connected onward
            log.warning("%s: cannot dial %s %s: %s", self._where(), kind, target, exc)
            return False, str(exc)
        if isinstance(result, Connected):
            return True, ""
        return False, f"{result.status} {result.reason}"

    def _notify(self, c: cmd.Notify) -> None:
        notifier = self.s.notifier
        if notifier is None:
            log.warning("%s: notify %s to %s: this node has no notifier", self._where(),
                        c.channel, c.to)  # fmt: skip
            return
        _spawn(notifier.send(self.flow.tenant, c))

    def _callback(self, c: cmd.Callback) -> None:
        callbacks = self.s.callbacks
        if callbacks is None:
            log.warning("%s: callback to %s not kept: this node has no callback store",
                        self._where(), c.number)  # fmt: skip
            return
        _spawn(
            callbacks.add(self.flow.tenant, c.queue, c.number, str(self.call.call_id),
                          dict(c.variables))
        )  # fmt: skip

    # -- after the run ---------------------------------------------------------------

    async def _carry_out(self, c: cmd.Command) -> None:
        call = self.call
        if isinstance(c, cmd.Hangup):
            call.hangup("normal")
        elif isinstance(c, cmd.Enqueue):
            channel = self.channel or await call.answer()
            queues = self.s.queues
            if queues is None:
                log.error("%s: enqueue %s: this node has no queues; the call ends",
                          self._where(), c.queue)  # fmt: skip
                call.hangup("unavailable")
                return
            request = EnqueueRequest(
                self.flow.tenant, c.queue, c.priority, dict(c.skills), dict(c.variables)
            )
            outcome = await queues.enqueue(call, channel, request)
            self._note_queue(outcome)
            await after_queue(call, channel, outcome, self.s, self.depth)
        elif isinstance(c, cmd.Voicemail):
            channel = self.channel or await call.answer()
            items = await self.s.prompts.items(c.greeting) if c.greeting else None
            await voicemail(call, channel, self.s, c.mailbox, items)
            call.hangup("normal")
        elif isinstance(c, cmd.Transfer):
            answered, reason = await self._connect(c.to, 60.0, "transfer")
            if answered:
                await call.wait_ended()
            else:
                log.info("%s: transfer to %s failed (%s); the call ends", self._where(), c.to,
                         reason or "not answered")  # fmt: skip
                call.hangup("unavailable")

    def _note_queue(self, outcome: QueueOutcome) -> None:
        self._queued = {
            "result": outcome.result,
            "queue": outcome.queue,
            "waited": round(outcome.waited, 3),
            "agent": outcome.agent,
            "destination": outcome.destination,
        }
        self._publish()


async def voicemail(
    call: AppCall, channel: Channel, services: Services, mailbox: str, greeting: list | None
) -> Path | None:
    boxes = services.voicemails
    if boxes is None:
        log.error("call %d: voicemail %s: this node keeps no voicemail", call.call_id, mailbox)
        return None
    if greeting is None:
        greeting = await services.prompts.items([cmd.Speech(DEFAULT_GREETING, "en")])
    meta = {
        "call": call.call_id,
        "caller": call.caller.number,
        "name": call.caller.name,
        "did": call.did,
        "variables": (call.variables.get("ivr") or {}).get("variables", {}),
    }
    return await boxes.take(channel, call.caller.tenant, mailbox, greeting, meta)


async def after_queue(
    call: AppCall, channel: Channel, outcome: QueueOutcome, services: Services, depth: int = 0
) -> None:
    """What follows a caller's time in the queues: the exit the queue named, carried out."""
    if outcome.result == "answered":
        await call.wait_ended()
        return
    if outcome.result != "exit" or call.ended:
        return
    kind, _, value = (outcome.destination or "hangup").partition(":")
    if kind == "voicemail":
        await voicemail(call, channel, services, value, None)
    elif kind == "message" and value:
        items = await services.prompts.items([cmd.Speech(value, "en")])
        await channel.play(items, barge_in=False)
    elif kind == "ivr":
        flow = services.flows().get(call.caller.tenant, value)
        if flow is not None and depth < MAX_DEPTH:
            await Runner(call, flow, services, depth + 1).run()
            return
        log.error("call %d: queue exit to ivr %r: %s; the call ends", call.call_id, value,
                  "no such flow" if flow is None else "too many flows in a row")  # fmt: skip
    call.hangup("normal")


class QueueApp:
    """The "queue" application: a DID routed straight to a queue (`queue = "support"`)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, call: AppCall) -> None:
        queues = self.services.queues
        if queues is None:
            call.hangup("unavailable")
            return
        channel = await call.answer()
        request = EnqueueRequest(call.caller.tenant, call.argument)
        outcome = await queues.enqueue(call, channel, request)
        call.variables["queue"] = {"result": outcome.result, "queue": outcome.queue,
                                   "waited": round(outcome.waited, 3)}  # fmt: skip
        await after_queue(call, channel, outcome, self.services)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name).lstrip(".") or "_"
