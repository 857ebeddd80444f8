"""The node's queue service, first version: callers wait with music, no agents yet.

Implements the `Queues` contract of `switch.apps.queueing`. A caller
given to `enqueue` (by the IVR's `enqueue` verb, or a DID routed straight
to a queue) is checked against the queue's rules (`QueueRules` of the
ACD: hours, max_len, join_empty), hears the queue's music on hold
(`music = "default"`: the generated melody; else a mono WAV file), is
listed by `waiting()` with what the IVR learnt, hears its position every
`announce_every` seconds (when the node has speech), and leaves:

- at the queue's `max_wait`, to `exits.max_wait` (another queue: the caller
  moves there keeping the time they joined; otherwise the outcome names
  the destination for the caller of `enqueue`: "voicemail:<box>",
  "ivr:<flow>", "message:<text>", "hangup");
- when the caller hangs up ("abandoned", with the wait);
- when an agent takes the call: `_Entry.take(agent)` is the one place
  where that happens. No agent is offered callers yet: the next step is
  the ACD engine (`switch.apps.acd.Acd`) deciding, and `AppCall.connect`
  ringing the agent and bridging, then calling `take`.

Until then no agent is ever available: `join_empty = false` sends every
caller to `exits.empty`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config, ExitTarget
from ..media.player import Player, music_on_hold
from ..media.wav import Audio, WavError, read_prompt
from .acd.rules import QueueRules
from .ivr.conditions import QueueState
from .queueing import EnqueueRequest, QueueOutcome, Waiting

if TYPE_CHECKING:
    from ..call.app import AppCall
    from ..media.channel import Channel
    from ..media.tts import Speech

log = logging.getLogger("switch.queues")

MAX_HOPS = 5  # queue-to-queue exits followed for one caller before giving up


def _future() -> asyncio.Future[str]:
    return asyncio.get_running_loop().create_future()


@dataclass(eq=False)
class _Entry:
    call: AppCall
    channel: Channel
    request: EnqueueRequest
    queue: str
    since: float  # joined the first queue
    joined: float  # joined this one
    taken: asyncio.Future[str] = field(default_factory=lambda: _future())

    def take(self, agent: str) -> None:
        """An agent has the call (bridged): the wait ends "answered"."""
        if not self.taken.done():
            self.taken.set_result(agent)

    def as_waiting(self) -> Waiting:
        req = self.request
        return Waiting(
            self.call.call_id, req.tenant, self.queue, self.since, req.priority,
            dict(req.skills), dict(req.variables), self.call.caller.number,
        )  # fmt: skip


class QueueService:
    """One per node; see the module's docstring."""

    def __init__(
        self,
        config: Config,
        speech: Speech | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.speech = speech
        self.clock = clock
        self._entries: dict[tuple[str, str], list[_Entry]] = {}
        self._music: dict[str, Audio] = {}

    def configure(self, config: Config) -> None:
        """A reloaded config: new callers follow its queues."""
        self.config = config
        self._music.clear()

    # -- the Queues protocol ---------------------------------------------------------

    def waiting(self, tenant: str, queue: str | None = None) -> list[Waiting]:
        out = [
            entry.as_waiting()
            for (t, q), entries in self._entries.items()
            if t == tenant and (queue is None or q == queue)
            for entry in entries
        ]
        return sorted(out, key=lambda w: w.since)

    def queue_state(self, tenant: str, queue: str) -> QueueState:
        # No agents yet (see the module's docstring); the estimate needs them.
        return QueueState(agents_available=0, waiting=len(self._entries.get((tenant, queue), ())))

    def agents_available(self, tenant: str, queue: str) -> int:
        return 0  # the ACD's agent state, once it runs on the node

    async def enqueue(
        self, call: AppCall, channel: Channel, request: EnqueueRequest
    ) -> QueueOutcome:
        since = self.clock()
        queue = request.queue
        for _ in range(MAX_HOPS):
            rules = self._rules(request.tenant, queue)
            if rules is None:
                log.error("call %d: no queue %r in tenant %r; the call ends",
                          call.call_id, queue, request.tenant)  # fmt: skip
                return QueueOutcome("exit", queue, 0.0, destination="hangup")
            refused = self._refusal(request.tenant, queue, rules)
            if refused is None:
                result, waited = await self._wait(call, channel, request, queue, since, rules)
                if result != "max_wait":
                    return result_outcome(result, queue, waited)
                refused = "max_wait"
            target = rules.exit(refused)
            log.info("call %d: leaves queue %s/%s (%s) to %s", call.call_id, request.tenant,
                     queue, refused, describe(target))  # fmt: skip
            if target.kind != "queue":
                return QueueOutcome(
                    "exit", queue, self.clock() - since, destination=destination(target)
                )
            queue = target.value
        log.warning("call %d: more than %d queue exits in a row; the call ends", call.call_id,
                    MAX_HOPS)  # fmt: skip
        return QueueOutcome("exit", queue, self.clock() - since, destination="hangup")

    # -- inside ----------------------------------------------------------------------

    def _rules(self, tenant: str, queue: str) -> QueueRules | None:
        tconf = self.config.tenants.get(tenant)
        qconf = tconf.queues.get(queue) if tconf is not None else None
        if qconf is None:
            return None
        return QueueRules.from_config(queue, qconf, tconf)

    def _refusal(self, tenant: str, queue: str, rules: QueueRules) -> str | None:
        if rules.calendar is not None and not rules.calendar.is_open(self.clock()):
            return "closed"
        if rules.max_len and len(self._entries.get((tenant, queue), ())) >= rules.max_len:
            return "full"
        if not rules.join_empty and self.agents_available(tenant, queue) == 0:
            return "empty"
        return None

    async def _wait(
        self,
        call: AppCall,
        channel: Channel,
        request: EnqueueRequest,
        queue: str,
        since: float,
        rules: QueueRules,
    ) -> tuple[str, float]:
        """("answered:<agent>" | "abandoned" | "max_wait", seconds waited in all)."""
        entry = _Entry(call, channel, request, queue, since, self.clock())
        key = (request.tenant, queue)
        self._entries.setdefault(key, []).append(entry)
        ended = asyncio.ensure_future(call.wait_ended())
        log.info("call %d: waits in queue %s/%s", call.call_id, request.tenant, queue)
        try:
            if call.ended or channel.closed:
                return "abandoned", self.clock() - since
            music = await self._music_player(request.tenant, queue, channel.rate)
            channel.play(music, barge_in=False)
            deadline = entry.joined + rules.max_wait if rules.max_wait else None
            next_announce = entry.joined + rules.announce_every if rules.announce_every else None
            while True:
                wakes = [t for t in (deadline, next_announce) if t is not None]
                timeout = max(0.0, min(wakes) - self.clock()) if wakes else None
                done, _ = await asyncio.wait(
                    {ended, entry.taken}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if entry.taken in done:
                    return f"answered:{entry.taken.result()}", self.clock() - since
                if ended in done or call.ended:
                    return "abandoned", self.clock() - since
                now = self.clock()
                if deadline is not None and now >= deadline:
                    return "max_wait", now - since
                if next_announce is not None and now >= next_announce:
                    next_announce = now + rules.announce_every
                    await self._announce(entry, channel, music)
        finally:
            log.info("call %d: out of queue %s/%s after %.1f s", call.call_id, request.tenant,
                     queue, self.clock() - entry.joined)  # fmt: skip
            ended.cancel()
            entries = self._entries.get(key, [])
            if entry in entries:
                entries.remove(entry)
            if not entries:
                self._entries.pop(key, None)
            if not channel.closed:
                channel.stop()

    async def _music_player(self, tenant: str, queue: str, rate: int) -> Player:
        qconf = self.config.tenants[tenant].queues[queue]
        if qconf.music == "default":
            return music_on_hold(rate)
        audio = self._music.get(qconf.music)
        if audio is None:
            try:
                audio = await asyncio.to_thread(read_prompt, Path(qconf.music))
            except (OSError, WavError) as exc:
                log.warning("queue %s/%s: music %s cannot be played (%s); the default plays",
                            tenant, queue, qconf.music, exc)  # fmt: skip
                return music_on_hold(rate)
            self._music[qconf.music] = audio
        return music_on_hold(rate, audio)

    async def _announce(self, entry: _Entry, channel: Channel, music: Player) -> None:
        """The caller's position, then the music again (from where it was)."""
        if self.speech is None or channel.closed:
            return
        ahead = [e for e in self._entries.get((entry.request.tenant, entry.queue), [])]
        position = ahead.index(entry) + 1 if entry in ahead else 1
        try:
            audio = await self.speech.say(f"You are number {position} in the queue.")
        except Exception as exc:
            log.info("queue announcement not said: %s", exc)
            return
        if channel.closed or entry.taken.done():
            return
        await channel.play([audio], barge_in=False)
        if not channel.closed and not entry.taken.done():
            channel.play(music, barge_in=False)


def result_outcome(result: str, queue: str, waited: float) -> QueueOutcome:
    if result.startswith("answered:"):
        return QueueOutcome("answered", queue, waited, agent=result.split(":", 1)[1])
    return QueueOutcome("abandoned", queue, waited)


def destination(target: ExitTarget) -> str:
    """An exit as a QueueOutcome's destination: "voicemail:box", "ivr:flow", "message:..."."""
    if target.kind == "message":
        return f"message:{target.value}" if target.value else "hangup"
    return f"{target.kind}:{target.value}"


def describe(target: ExitTarget) -> str:
    return f"{target.kind} {target.value!r}" if target.value else "hang up"
