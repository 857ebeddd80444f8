"""The node's queue service: the pure ACD (switch.apps.acd) on real calls.

One `AcdService` per node, for every tenant with queues. It implements
`Queues` (switch.apps.queueing): `enqueue` keeps a caller (music on hold,
position announcements) until an agent answers, the caller hangs up or a
limit sends them elsewhere. It carries out the ACD's commands:

- Offer: `call.connect(agents, timeout=until the offer expires,
  keep_playing=True)` in a task per offer (the caller keeps the music);
  Connected -> `answered`, and the call's end -> `call_ended` (wrap-up);
  NotConnected -> `declined` (a refusal) or the offer's timer (no answer).
- StopOffer: cancels that task (which CANCELs what rings).
- SendTo: `enqueue` returns QueueOutcome("exit", destination).
- Announce: the caller hears position and wait (TTS), then the music again.
- OfferCallback, DialCallback, and the Offer of an agent-first callback:
  `switch.apps.acd_callbacks` (the key press, and the calls the node places).

Agents: those listed in a tenant's config are logged in at start. Presence
follows registrations by the location store's events (switch.apps.acd_presence):
a REGISTER, a closed WebSocket or TCP flow, a lapsed registration reach
`seen` at once: no binding -> not ready "disconnected" (the ACD's
device_down, which also pulls back an offer ringing the agent), a binding
back -> restored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..call.app import CallEnded, Connected
from ..media.player import Clip, Player, music_on_hold
from ..media.wav import Audio, WavError, read_prompt
from ..store.acd_redis import RedisAcdStore
from .acd import Acd, AcdError, AcdStore, AgentRecord, Conflict, OfferGone, codec
from .acd.events import Announce, Command, Moved, NotifyAgent, Offer, SendTo, StopOffer
from .acd_busy import AcdBusy
from .acd_callbacks import QueueCallbacks
from .acd_presence import AcdPresence
from .ivr.conditions import QueueState
from .queueing import EnqueueRequest, QueueOutcome, Waiting

if TYPE_CHECKING:
    from ..call.agent_calls import AgentOnCall
    from ..call.app import AppCall
    from ..config import Config, ExitTarget, Hours
    from ..media.channel import Channel
    from ..media.tts import Speech
    from ..store.location import LocationStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Caller:
    """A caller the service holds, from enqueue to its outcome."""

    key: str
    tenant: str
    queue: str
    call: AppCall
    channel: Channel
    request: EnqueueRequest
    since: float
    outcome: asyncio.Future[QueueOutcome]
    offers: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # reservation -> task
    music: Player | None = None
    called_back: bool = False  # asked for a callback: hanging up is no abandon


class AcdService:
    """Queues with agents, for every tenant of the node; see the module's docstring."""

    def __init__(
        self,
        config: Config,
        locations: LocationStore,
        speech: Speech | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.locations = locations
        self.speech = speech
        self.clock = clock
        self._wake = asyncio.Event()
        self._stores: list[RedisAcdStore] = []
        # Each tenant's calendars, updated in place by a reload (queues read their hours here).
        self.calendars: dict[str, dict[str, Hours]] = {
            tid: dict(tenant.hours) for tid, tenant in config.tenants.items()
        }
        shared = config.state.backend == "redis"  # node-unique reservation ids then
        self.acds: dict[str, Acd] = {
            tid: Acd.from_config(
                tenant,
                calendars=self.calendars[tid],
                store=self._store(tid),
                node=config.node.name if shared else "",
            )
            for tid, tenant in config.tenants.items()
            if tenant.queues
        }
        self.callers: dict[tuple[str, str], _Caller] = {}
        self.events: list[Any] = []  # the ACD's events, newest last (reports, tests)
        self._agent_calls: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running = False
        self._music: dict[str, Audio] = {}
        self.presence = AcdPresence(self, locations)
        self.busy_calls = AcdBusy(self)
        self.callbacks = QueueCallbacks(self)  # its `dialler` is the node's call layer
        self._listeners: list[Callable[[str, Any], None]] = []  # add_listener
        self._muted: set[tuple[str, str]] = set()  # set_muted

    def _store(self, tenant: str) -> AcdStore | None:
        """The tenant's ACD records: in this process (None: the ACD's own MemoryStore), or
        in Redis with `[state] backend = "redis"`, shared with the other nodes
        (switch/store/acd_redis.py: agents shared, each node deciding for its own callers)."""
        state = self.config.state
        if state.backend != "redis":
            return None
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None

        def wake() -> None:
            # From the store's subscriber thread: another node changed records
            # (an agent it freed, say); take them in and route, on the loop.
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._remote_changes, tenant)

        store = RedisAcdStore(
            state.redis_url,
            tenant,
            self.config.node.name,
            encode=codec.encode,
            decode=codec.decode,
            prefix=state.key_prefix,
            wake=wake,
        )
        self._stores.append(store)
        return store

    def _remote_changes(self, tenant: str) -> None:
        acd = self.acds.get(tenant)
        if acd is not None and acd.store.pending():
            try:
                self._carry(tenant, acd.handle_timer(self.clock()))
            except (AcdError, Conflict) as exc:
                log.warning("acd %s: other nodes' changes: %s", tenant, exc)

    def configure(self, config: Config) -> list[str]:
        """A reloaded config: its calendars (the queues' hours) and music files.

        Queues, agents and their rules stay as the node started with them: the
        ACD's state (who waits, who is reserved, wrap-up timers) is not rebuilt
        under live callers. Returns what changed that needs a restart, to log.
        """
        stale = []
        for tid, tenant in config.tenants.items():
            old = self.config.tenants.get(tid)
            if tid in self.calendars:
                self.calendars[tid].clear()
                self.calendars[tid].update(tenant.hours)
            if old is None:
                if tenant.queues:
                    stale.append(f"tenant {tid!r} is new")
                continue
            for kind in ("queues", "agents"):
                if _dump(getattr(old, kind)) != _dump(getattr(tenant, kind)):
                    stale.append(f"tenant {tid!r}: {kind} changed")
            if old.acd != tenant.acd:
                stale.append(f"tenant {tid!r}: acd settings changed")
        stale += [f"tenant {tid!r} was removed" for tid in self.acds if tid not in config.tenants]
        self.config = config
        self._music.clear()
        return stale

    async def _music_player(self, tenant: str, queue: str, rate: int) -> Player:
        """The queue's music file, or the default melody (also when the file is bad)."""
        music = self.config.tenants[tenant].queues[queue].music
        if music == "default":
            return music_on_hold(rate)
        audio = self._music.get(music)
        if audio is None:
            try:
                audio = await asyncio.to_thread(read_prompt, Path(music))
            except (OSError, WavError) as exc:
                log.warning("queue %s/%s: music %s cannot be played (%s); the default plays",
                            tenant, queue, music, exc)  # fmt: skip
                return music_on_hold(rate)
            self._music[music] = audio
        return music_on_hold(rate, audio)

    # ------------------------------------------------------------------
    # Life

    async def start(self) -> None:
        """Log in the configured agents with the devices registered now; run the timers."""
        now = self.clock()
        self.presence.start()
        for tid, acd in self.acds.items():
            for ext in self.config.tenants[tid].agents:
                devices = await self.presence.read(tid, ext, now)
                try:
                    self._carry(tid, acd.login(ext, now, devices=devices))
                except (AcdError, Conflict) as exc:
                    # Logged in already by another node sharing the store (Redis).
                    log.info("acd %s: agent %s not logged in at start: %s", tid, ext, exc)
        self._running = True
        self._spawn(self._timers(), "acd timers")

    async def stop(self) -> None:
        self._running = False
        self.presence.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for store in self._stores:
            await asyncio.to_thread(store.close)  # joins its subscriber thread
        self._stores.clear()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    async def _timers(self) -> None:
        """Fire the ACDs' timers when due (offers ringing out, wrap-ups, waits)."""
        while True:
            deadlines = [d for acd in self.acds.values() if (d := acd.next_deadline()) is not None]
            wait = max(0.0, min(deadlines) - self.clock()) if deadlines else 60.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(wait, 60.0))
            now = self.clock()
            for tid, acd in self.acds.items():
                deadline = acd.next_deadline()
                if deadline is not None and deadline <= now:
                    self._carry(tid, acd.handle_timer(now))

    # ------------------------------------------------------------------
    # Presence from registrations

    async def refresh(self, tenant: str, ext: str) -> None:
        """Bring agent `ext`'s devices in the ACD in line with their registrations."""
        if self._agent(tenant, ext) is None:
            return
        self.seen(tenant, ext, await self.presence.read(tenant, ext, self.clock()))

    def seen(self, tenant: str, ext: str, contacts: Iterable[str]) -> None:
        """Agent `ext`'s registered devices are now `contacts` (the location
        store's event, or a read of it): devices that came or went
        are told to the ACD. Cheap when nothing changed: a REGISTER refresh
        costs a set comparison, no store lookup."""
        acd = self.acds.get(tenant)
        live = set(contacts)
        if (tenant, ext) in self._muted:
            live = set()  # the agent's browser has no microphone (set_muted)
        for attempt in range(2):
            record = self._agent(tenant, ext)
            if acd is None or record is None or live == record.devices:
                return
            now = self.clock()
            try:
                for device in sorted(live - record.devices):
                    self._carry(tenant, acd.device_up(ext, device, now))
                for device in sorted(record.devices - live):
                    self._carry(tenant, acd.device_down(ext, device, now))
                return
            except Conflict as exc:
                # Another node sharing the store (Redis) changed the agent at
                # the same moment (the conflict brought its record here):
                # compare again, once.
                if attempt:
                    log.warning("acd %s: agent %s presence not applied: %s", tenant, ext, exc)

    def agent_call(self, event: AgentOnCall) -> None:
        """The call layer's word that an agent is on a call, or off it: a call the
        ACD did not give them makes them busy (switch.apps.acd_busy)."""
        self.busy_calls.agent_call(event)

    def owns(self, tenant: str, call_id: int) -> bool:
        """Whether call `call_id` is the ACD's: a caller it holds (an entry is
        keyed by its first call's id; a callback's customer comes back on
        another) or a call it placed for a callback."""
        if (tenant, str(call_id)) in self.callers or call_id in self.callbacks.calls:
            return True
        return any(
            held.call.call_id == call_id
            for (t, _), held in self.callers.items()
            if t == tenant  # (a tenant's waiting callers: a short list)
        )

    def _agent(self, tenant: str, ext: str) -> AgentRecord | None:
        """The ACD's record of a logged-in agent, or None."""
        acd = self.acds.get(tenant)
        if acd is None:
            return None
        try:
            record = acd.agent(ext)
        except AcdError:
            return None
        return None if record.status == "logged-out" else record

    # ------------------------------------------------------------------
    # Queues (switch.apps.queueing)

    async def enqueue(
        self, call: AppCall, channel: Channel, request: EnqueueRequest
    ) -> QueueOutcome:
        acd = self.acds.get(request.tenant)
        if acd is None or request.queue not in acd.queues:
            log.error("call %d: no queue %r in tenant %r; the call ends",
                      call.call_id, request.queue, request.tenant)  # fmt: skip
            return QueueOutcome("exit", request.queue, 0.0, destination="hangup")
        key = str(call.call_id)
        now = self.clock()
        outcome: asyncio.Future[QueueOutcome] = asyncio.get_running_loop().create_future()
        caller = _Caller(key, request.tenant, request.queue, call, channel, request, now, outcome)
        self.callers[(request.tenant, key)] = caller
        caller.music = await self._music_player(request.tenant, request.queue, channel.rate)
        channel.play(caller.music)
        try:
            try:
                commands = acd.join(
                    key,
                    request.queue,
                    now,
                    number=call.caller.number,
                    priority=request.priority,
                    skills=dict(request.skills),
                )
            except AcdError as exc:  # a bad priority or skill from the IVR, say
                log.error("call %d: not queued: %s; the call ends", call.call_id, exc)
                return QueueOutcome("exit", request.queue, 0.0, destination="hangup")
            self._carry(request.tenant, commands)
            ended = asyncio.ensure_future(call.wait_ended())
            try:
                await asyncio.wait({ended, outcome}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ended.cancel()
            if not outcome.done() and caller.called_back:
                outcome.set_result(QueueOutcome("callback", caller.queue, self.clock() - now))
            if not outcome.done():
                self._carry(request.tenant, acd.hangup(key, self.clock()))
                if not outcome.done():
                    outcome.set_result(QueueOutcome("abandoned", caller.queue, self.clock() - now))
            return outcome.result()
        finally:
            self.callers.pop((request.tenant, key), None)
            if not channel.closed and call.connected is None:
                channel.stop()  # the music: what comes next (an exit's message) plays alone
            for task in caller.offers.values():
                task.cancel()
            self._wake.set()

    def waiting(self, tenant: str, queue: str | None = None) -> list[Waiting]:
        acd = self.acds.get(tenant)
        if acd is None:
            return []
        names = [queue] if queue is not None else list(acd.queues)
        out = []
        for name in names:
            if name not in acd.queues:
                continue
            for key in acd.waiting(name):
                held = self.callers.get((tenant, key))
                entry = acd.entry(key)
                if held is None or entry is None:
                    continue
                req = held.request
                out.append(
                    Waiting(
                        held.call.call_id, tenant, name, entry.enqueued_at, req.priority,
                        req.skills, req.variables, held.call.caller.number,
                    )
                )  # fmt: skip
        return out

    def queue_state(self, tenant: str, queue: str) -> QueueState:
        acd = self.acds.get(tenant)
        if acd is None or queue not in acd.queues:
            return QueueState()
        available = sum(
            1
            for ext in self.config.tenants[tenant].agents
            if (rec := acd.agent(ext)).status == "available" and queue in rec.queues
        )
        waiting = acd.waiting(queue)
        ewt = None
        if waiting:
            with contextlib.suppress(AcdError):
                ewt = acd.estimate_wait(waiting[-1], self.clock())
        elif available:
            ewt = 0.0
        return QueueState(available, len(waiting), ewt)

    # ------------------------------------------------------------------
    # Agents (the REST API of #8) and supervisors

    def login(self, tenant: str, ext: str) -> None:
        """Log agent `ext` in with the devices they registered (none: not ready)."""
        acd = self._acd(tenant)
        # The bindings are read at once (a task); later changes come as events.
        self._carry(tenant, acd.login(ext, self.clock(), devices=[]))
        self._spawn(self.refresh(tenant, ext), f"acd refresh {tenant}/{ext}")

    def logout(self, tenant: str, ext: str) -> None:
        self._carry(tenant, self._acd(tenant).logout(ext, self.clock()))

    def set_ready(self, tenant: str, ext: str) -> None:
        self._carry(tenant, self._acd(tenant).set_ready(ext, self.clock()))

    def set_not_ready(self, tenant: str, ext: str, reason: str) -> None:
        self._carry(tenant, self._acd(tenant).set_not_ready(ext, reason, self.clock()))

    def snapshot(self, tenant: str) -> dict[str, Any]:
        """Agents with their state, and the callers waiting, for supervisors."""
        acd = self._acd(tenant)
        agents = {}
        for ext in self.config.tenants[tenant].agents:
            rec = acd.agent(ext)
            agents[ext] = {
                "status": rec.status,
                "reason": rec.reason,
                "since": rec.since,
                "devices": sorted(rec.devices),
                "queues": dict(rec.queues),
            }
        waiting = [
            {"call_id": w.call_id, "queue": w.queue, "since": w.since, "caller": w.caller}
            for w in self.waiting(tenant)
        ]
        return {"agents": agents, "waiting": waiting}

    def _acd(self, tenant: str) -> Acd:
        acd = self.acds.get(tenant)
        if acd is None:
            raise AcdError(f"tenant {tenant!r} has no queues")
        return acd

    # ------------------------------------------------------------------
    # The ACD's commands

    def _carry(self, tenant: str, commands: list[Command]) -> None:
        acd = self.acds[tenant]
        for command in commands:
            if self.callbacks.carry(tenant, command):
                continue
            held = self.callers.get((tenant, getattr(command, "caller", "")))
            if isinstance(command, Offer):
                if held is None:
                    log.warning("acd %s: offer of caller %s, who is gone", tenant, command.caller)
                    continue
                task = self._spawn(self._ring(held, command), f"offer {command.reservation}")
                held.offers[command.reservation] = task
            elif isinstance(command, StopOffer):
                if held is not None:
                    task = held.offers.pop(command.reservation, None)
                    if task is not None and task is not asyncio.current_task():
                        task.cancel()
            elif isinstance(command, SendTo):
                if held is not None and not held.outcome.done():
                    held.outcome.set_result(
                        QueueOutcome(
                            "exit",
                            command.queue,
                            self.clock() - held.since,
                            destination=destination(command.target),
                        )
                    )
            elif isinstance(command, Moved):
                if held is not None:
                    held.queue = command.new
            elif isinstance(command, Announce):
                if held is not None and self.speech is not None:
                    self._spawn(self._announce(held, command), f"announce {command.caller}")
            elif isinstance(command, NotifyAgent):
                log.info("acd %s: agent %s: %s", tenant, command.agent, command.message)
        events = acd.take_events()
        self.events.extend(events)
        del self.events[:-1000]
        self._tell(tenant, events, commands)
        self._wake.set()
        self.busy_calls.settle()  # an agent still on a direct call is not offered callers

    async def _ring(self, held: _Caller, offer: Offer) -> None:
        """Ring the offer's agents; the answer or the failure goes to the ACD."""
        acd, tenant = self.acds[held.tenant], held.tenant
        timeout = max(0.5, offer.expires_at - self.clock())
        try:
            result = await held.call.connect(list(offer.agents), timeout=timeout, keep_playing=True)
        except CallEnded:
            return  # enqueue sees the end: an abandon
        finally:
            if held.offers.get(offer.reservation) is asyncio.current_task():
                del held.offers[offer.reservation]
        now = self.clock()
        if isinstance(result, Connected):
            agent = result.name if result.name in offer.agents else offer.agents[0]
            try:
                self._carry(tenant, acd.answered(held.key, agent, now))
            except OfferGone as exc:
                log.warning("acd %s: %s (the call stays bridged)", tenant, exc)
            if not held.outcome.done():
                held.outcome.set_result(
                    QueueOutcome("answered", held.queue, now - held.since, agent=agent)
                )
            self._spawn(self._on_call(held, agent), f"acd call {tenant}/{agent}")
            return
        if held.call.ended:
            return
        if result.status in (486, 600, 603) and len(offer.agents) == 1:
            with contextlib.suppress(AcdError):
                self._carry(tenant, acd.declined(held.key, offer.agents[0], now))
            return
        # Rang out or unreachable: the offer's own timer ends it (a miss,
        # the caller back at their place); fire it now if connect gave up first.
        if acd.reservation(offer.reservation) is not None:
            self._carry(tenant, acd.handle_timer(max(now, offer.expires_at)))

    async def _on_call(self, held: _Caller, agent: str) -> None:
        """Until the agent's call ends; then wrap-up."""
        await held.call.wait_ended()
        with contextlib.suppress(AcdError):
            self._carry(held.tenant, self.acds[held.tenant].call_ended(agent, self.clock()))

    async def _announce(self, held: _Caller, command: Announce) -> None:
        assert self.speech is not None
        text = f"You are number {command.position} in the queue."
        if command.ewt is not None:
            minutes = max(1, round(command.ewt / 60))
            text += f" Your expected wait is about {minutes} minute{'s' if minutes > 1 else ''}."
        try:
            audio = await self.speech.say(text, rate=8000 if held.channel.rate == 8000 else 16000)
        except Exception as exc:  # the announcement is a nicety; the caller keeps the music
            log.warning("acd announcement for caller %s: %s", held.key, exc)
            return
        if held.call.ended or held.call.connected is not None or held.outcome.done():
            return
        spoken = held.channel.play(Player([Clip(audio)], held.channel.rate, interruptible=False))
        if await spoken == "end" and not held.outcome.done() and not held.call.ended:
            held.channel.play(held.music or music_on_hold(held.channel.rate))

    # ------------------------------------------------------------------
    # Listeners (the CTI feed of switch.web) and supervisors' moves

    def add_listener(self, listener: Callable[[str, Any], None]) -> None:
        """Call `listener(tenant, item)` with every ACD event, and every Offer
        command (the screen pop), as they happen. A listener must not block;
        one that raises is logged and the others still hear."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str, Any], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _tell(self, tenant: str, events: list[Any], commands: list[Command]) -> None:
        if not self._listeners:
            return
        items = [*events, *(c for c in commands if isinstance(c, Offer))]
        for listener in list(self._listeners):
            for item in items:
                try:
                    listener(tenant, item)
                except Exception:
                    log.exception("acd listener %r failed on %s", listener, type(item).__name__)

    def move(
        self, tenant: str, call_id: int, queue: str | None = None, front: bool = False
    ) -> None:
        """Move waiting caller `call_id` to `queue` and/or its front (Acd.move)."""
        self._carry(tenant, self._acd(tenant).move(str(call_id), self.clock(), queue, front))

    def caller_info(self, tenant: str, caller: str) -> dict[str, Any] | None:
        """What the service holds of a caller (by the ACD's key): number, name,
        DID, queue, when they came, the IVR's variables (screen pop)."""
        held = self.callers.get((tenant, caller))
        if held is None:
            return None
        return {
            "call_id": held.call.call_id,
            "number": held.call.caller.number,
            "name": held.call.caller.name,
            "did": held.call.did,
            "queue": held.queue,
            "since": held.since,
            "variables": dict(held.request.variables),
            "ivr": held.call.variables.get("ivr"),
        }

    def set_muted(self, tenant: str, ext: str, muted: bool) -> None:
        """The agent's browser lost (True) or regained (False) its microphone.

        While muted the agent counts as having no device (not ready
        "disconnected", an offer ringing them pulled back); unmuted, their
        registrations count again and they get back what they had."""
        if muted:
            self._muted.add((tenant, ext))
            self.seen(tenant, ext, ())
        elif (tenant, ext) in self._muted:
            self._muted.discard((tenant, ext))
            self._spawn(self.refresh(tenant, ext), f"acd refresh {tenant}/{ext}")


def _dump(objects: dict[str, Any]) -> dict[str, Any]:
    return {name: item.model_dump() for name, item in objects.items()}


def destination(target: ExitTarget) -> str:
    """An exit as a QueueOutcome's destination: "voicemail:box", "ivr:flow", "message:..."."""
    if target.kind == "message":
        return f"message:{target.value}" if target.value else "hangup"
    return f"{target.kind}:{target.value}"
