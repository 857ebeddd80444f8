"""Queue callbacks on real calls: the ACD's callback commands carried out.

The pure ACD (switch.apps.acd) decides; `AcdService._carry` hands the
callback commands here (`QueueCallbacks.carry`):

- OfferCallback (the caller's estimated wait passed the queue's
  `callback.offer_ewt`; the ACD sends it once per caller): the caller hears
  "press 1 to be called back" (speech, between the music; the key works
  from any of the channel's DTMF sources and for as long as they wait). A
  caller whose number is withheld is not offered one: there is nothing to
  call back. On the key the ACD is told at once (`request_callback`: the
  entry keeps its place and enqueue time, and the caller's hang-up from
  now on is no abandon), the caller hears the number read back, and the
  call ends with the outcome "callback".
- DialCallback, customer-first (an agent is held for the entry): the node
  calls the customer (`Calls.place`: the tenant's outbound routes, shown
  the queue's DID or the tenant's main number, for the queue's
  `dial_timeout`). Answered: the customer is a caller of the service again
  (music, `callback_result(True)`, then the ACD's Offer rings the held
  agent as for any caller). Not reached: `callback_result(False)`; the
  agent is released and the entry ends "callback failed" (an event).
- Offer of an agent-first callback: the node rings the agent (their
  devices, the offer's time); answered, the ACD says so (`answered`) and
  sends DialCallback, agent-first: the agent's leg is put through to the
  customer (`AppCall.connect`), and the outcome goes to `callback_result`.

Never dialled twice: the ACD sends one DialCallback per entry, for a held
agent; this side keeps the entries it dialled and refuses a second one (a
bug upstream, logged), and a customer-first dial for an agent who is not
held for it. A failed dial is not retried (the queue config has no retry):
the entry ends with the ACD's CallbackEnded(answered=False).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from ..call.app import AppCall, CallEnded, Connected, NotConnected
from ..call.originate import OriginateError, Placed, Runner
from ..media.dtmf.digits import Digit
from ..media.player import Clip, Player, music_on_hold
from .acd import AcdError, OfferGone
from .acd.events import Command, DialCallback, Offer, OfferCallback, StopOffer
from .queueing import EnqueueRequest, QueueOutcome

if TYPE_CHECKING:
    from .acd_service import AcdService, _Caller

log = logging.getLogger(__name__)

KEY = "1"
OFFER = "To be called back when an agent is free, keeping your place in the queue, press 1."
CONFIRM = "Thank you. We will call you back at {number}. Goodbye."
GREETING = "Hello, this is the call back you asked for. Please hold for an agent."
UNREACHED = "The customer could not be reached."
_NUMBER = re.compile(r"\+?[0-9]{3,20}")


class Dialler(Protocol):
    """The call layer as callbacks use it (`switch.call.originate.Originates`)."""

    async def place(
        self,
        tenant: str,
        first: str | Sequence[str],
        run: Runner,
        *,
        caller_id: str | None = None,
        timeout: float = 30.0,
        check: Sequence[str] = (),
        shown: str | None = None,
    ) -> Placed: ...


def callable_number(number: str) -> bool:
    """A number a callback can dial: not withheld ("anonymous", empty, a name)."""
    return bool(_NUMBER.fullmatch(number.strip()))


class QueueCallbacks:
    """The service's callbacks; see the module's docstring."""

    def __init__(self, service: AcdService) -> None:
        self.service = service
        self.dialler: Dialler | None = None  # set when the node has a call layer
        self.dialled: set[tuple[str, str]] = set()  # (tenant, caller) dialled once: never again
        self._agent_rings: dict[tuple[str, str], asyncio.Task[None]] = {}  # (tenant, reservation)
        self._to_dial: dict[tuple[str, str], DialCallback] = {}  # agent-first, once answered
        self.calls: list[int] = []  # ids of the calls placed for callbacks (the last 1,000)

    def carry(self, tenant: str, command: Command) -> bool:
        """Carry out `command` if it is a callback's (True); False: not ours."""
        if isinstance(command, OfferCallback):
            self._offer(tenant, command)
        elif isinstance(command, DialCallback):
            self._dial(tenant, command)
        elif isinstance(command, Offer) and command.callback and self._agent_first(tenant, command):
            task = self.service._spawn(self._ring_agent(tenant, command), f"callback {command}")
            self._agent_rings[(tenant, command.reservation)] = task
        elif isinstance(command, StopOffer) and (tenant, command.reservation) in self._agent_rings:
            task = self._agent_rings.pop((tenant, command.reservation))
            if task is not asyncio.current_task():
                task.cancel()
        else:
            return False
        return True

    def _agent_first(self, tenant: str, offer: Offer) -> bool:
        entry = self.service.acds[tenant].entry(offer.caller)
        callback = entry.callback if entry is not None else None
        return callback is not None and callback.mode == "agent-first"

    def _caller_id(self, tenant: str, queue: str) -> str | None:
        """What a called-back customer sees: the queue's DID, else the tenant's main number."""
        settings = self.service.config.tenants[tenant]
        for number, did in settings.dids.items():
            if did.target == ("queue", queue):
                return number
        return settings.numbers.caller_id

    def _result(self, tenant: str, caller: str, answered: bool) -> None:
        acd = self.service.acds[tenant]
        try:
            self.service._carry(tenant, acd.callback_result(caller, answered, self.service.clock()))
        except AcdError as exc:
            log.warning("acd %s: callback of %s: %s", tenant, caller, exc)

    # ------------------------------------------------------------------
    # The offer, to a caller waiting

    def _offer(self, tenant: str, command: OfferCallback) -> None:
        held = self.service.callers.get((tenant, command.caller))
        if held is None:
            return
        number = held.call.caller.number
        if not callable_number(number):
            log.info("acd %s: caller %s withholds their number: no callback offered",
                     tenant, command.caller)  # fmt: skip
            return
        if self.service.speech is None:
            log.info("acd %s: no speech on this node: no callback offered", tenant)
            return
        self.service._spawn(self._offering(held, number), f"callback offer {command.caller}")

    async def _offering(self, held: _Caller, number: str) -> None:
        """Say the offer, then listen for the key for as long as the caller waits."""
        channel = held.channel
        listening = asyncio.ensure_future(self._key(held))
        try:
            if not await self._say(held, OFFER, barge_in=True):
                return
            if not listening.done():
                channel.play(held.music or music_on_hold(channel.rate))
            pressed = await listening
        finally:
            listening.cancel()
        if not pressed or not self._waiting(held):
            return
        acd = self.service.acds[held.tenant]
        try:
            commands = acd.request_callback(held.key, self.service.clock(), number=number)
        except AcdError as exc:
            log.info("acd %s: caller %s: no callback: %s", held.tenant, held.key, exc)
            return
        held.called_back = True  # their hang-up is no abandon from now on
        self.service._carry(held.tenant, commands)
        await self._say(held, CONFIRM.format(number=" ".join(number.lstrip("+"))), force=True)
        if not held.outcome.done():
            waited = self.service.clock() - held.since
            held.outcome.set_result(QueueOutcome("callback", held.queue, waited))
        held.call.hangup("normal")

    async def _key(self, held: _Caller) -> bool:
        """True once the caller pressed KEY; False if they left the queue first."""
        channel = held.channel
        while self._waiting(held):
            event = asyncio.ensure_future(channel.events.get())
            left = asyncio.ensure_future(held.call.wait_ended())
            try:
                await asyncio.wait({event, left, held.outcome}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                left.cancel()
                if not event.done():
                    event.cancel()
            got = event.result() if event.done() and not event.cancelled() else None
            if isinstance(got, Digit) and got.digit == KEY:
                return self._waiting(held)
        return False

    def _waiting(self, held: _Caller) -> bool:
        return not (held.call.ended or held.outcome.done() or held.call.connected is not None)

    async def _say(
        self, held: _Caller, text: str, barge_in: bool = False, force: bool = False
    ) -> bool:
        """Speak `text` to the caller; False if they left (or speech failed)."""
        speech = self.service.speech
        channel = held.channel
        if speech is None:
            return False
        try:
            audio = await speech.say(text, rate=8000 if channel.rate == 8000 else 16000)
        except Exception as exc:  # the offer is a nicety; the caller keeps the music
            log.warning("acd callback speech for caller %s: %s", held.key, exc)
            return False
        if held.call.ended or channel.closed or not (force or self._waiting(held)):
            return False
        played = channel.play(Player([Clip(audio)], channel.rate), barge_in=barge_in)
        await played
        return not held.call.ended

    # ------------------------------------------------------------------
    # Dialling

    def _mine(self, call_id: int) -> None:
        """A call placed for a callback: the ACD's own (its agent is not "busy" on it)."""
        self.calls.append(call_id)
        del self.calls[:-1000]

    def _dial(self, tenant: str, command: DialCallback) -> None:
        key = (tenant, command.caller)
        if key in self.dialled:
            log.error("acd %s: callback of %s to dial again: refused (never dialled twice)",
                      tenant, command.caller)  # fmt: skip
            return
        self.dialled.add(key)
        if command.mode == "agent-first":
            self._to_dial[key] = command  # the agent's leg (answered now) dials it
            return
        acd = self.service.acds[tenant]
        try:
            agent = acd.agent(command.agent)
        except AcdError:
            agent = None
        if agent is None or agent.status != "reserved" or agent.reservation != command.reservation:
            log.error("acd %s: callback of %s: agent %s is not held for it; not dialled",
                      tenant, command.caller, command.agent)  # fmt: skip
            self._result(tenant, command.caller, False)
            return
        self.service._spawn(self._call_customer(tenant, command), f"callback {command.caller}")

    async def _call_customer(self, tenant: str, command: DialCallback) -> None:
        """customer-first: call the customer; answered, they wait for the held agent."""
        if self.dialler is None:
            log.error("acd %s: callback of %s: this node cannot place calls", tenant,
                      command.caller)  # fmt: skip
            self._result(tenant, command.caller, False)
            return

        async def on_line(call: AppCall, answered: Connected) -> None:
            await self._customer_waits(tenant, command, call)

        try:
            placed = await self.dialler.place(
                tenant, command.number, on_line, caller_id=self._caller_id(tenant, command.queue),
                timeout=command.timeout,
            )  # fmt: skip
            self._mine(placed.call_id)
        except OriginateError as exc:
            log.warning("acd %s: callback of %s not dialled: %s", tenant, command.caller, exc)
            self._result(tenant, command.caller, False)
            return
        result = await placed.answered
        if isinstance(result, NotConnected):
            log.info("acd %s: callback of %s: %s not reached: %d %s", tenant, command.caller,
                     command.number, result.status, result.reason)  # fmt: skip
            self._result(tenant, command.caller, False)

    async def _customer_waits(self, tenant: str, command: DialCallback, call: AppCall) -> None:
        """The customer answered: a caller of the service again until an agent takes them."""
        from .acd_service import _Caller  # (the service imports this module)

        service = self.service
        channel = call.channel
        assert channel is not None
        now = service.clock()
        outcome: asyncio.Future[QueueOutcome] = asyncio.get_running_loop().create_future()
        request = EnqueueRequest(tenant, command.queue)
        held = _Caller(command.caller, tenant, command.queue, call, channel, request, now, outcome)
        held.music = await service._music_player(tenant, command.queue, channel.rate)
        service.callers[(tenant, command.caller)] = held
        try:
            await self._say(held, GREETING)
            if call.ended:
                self._result(tenant, command.caller, False)
                return
            channel.play(held.music)
            self._result(tenant, command.caller, True)  # the ACD rings the held agent now
            ended = asyncio.ensure_future(call.wait_ended())
            try:
                await asyncio.wait({ended, outcome}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ended.cancel()
            if not outcome.done():
                acd = service.acds[tenant]
                with contextlib.suppress(AcdError):
                    service._carry(tenant, acd.hangup(command.caller, service.clock()))
                return
            if outcome.result().result == "answered":
                await call.wait_ended()
        finally:
            service.callers.pop((tenant, command.caller), None)
            for task in held.offers.values():
                task.cancel()

    # ------------------------------------------------------------------
    # agent-first: the agent's leg first

    async def _ring_agent(self, tenant: str, offer: Offer) -> None:
        service, acd = self.service, self.service.acds[tenant]
        entry = acd.entry(offer.caller)
        number = entry.callback.number if entry is not None and entry.callback else ""
        placed: Placed | None = None

        async def on_line(call: AppCall, answered: Connected) -> None:
            await self._agent_calls_back(tenant, offer, call, answered)

        try:
            if self.dialler is None:
                raise OriginateError("this node cannot place calls")
            placed = await self.dialler.place(
                tenant, list(offer.agents), on_line, shown=number,
                timeout=max(0.5, offer.expires_at - service.clock()),
            )  # fmt: skip
            self._mine(placed.call_id)
            result = await asyncio.shield(placed.answered)
        except OriginateError as exc:
            log.warning("acd %s: callback of %s: agents %s not rung: %s", tenant, offer.caller,
                        ", ".join(offer.agents), exc)  # fmt: skip
            result = NotConnected(480, str(exc))
        except asyncio.CancelledError:
            if placed is not None and not placed.answered.done():
                placed.cancel()  # the offer was withdrawn: CANCEL what rings
            raise
        finally:
            if self._agent_rings.get((tenant, offer.reservation)) is asyncio.current_task():
                del self._agent_rings[(tenant, offer.reservation)]
        if isinstance(result, Connected):
            return
        now = service.clock()
        if result.status in (486, 600, 603) and len(offer.agents) == 1:
            with contextlib.suppress(AcdError):
                service._carry(tenant, acd.declined(offer.caller, offer.agents[0], now))
        elif acd.reservation(offer.reservation) is not None:
            # Rang out: the offer's own timer ends it (a miss; the entry keeps its place).
            service._carry(tenant, acd.handle_timer(max(now, offer.expires_at)))

    async def _agent_calls_back(
        self, tenant: str, offer: Offer, call: AppCall, answered: Connected
    ) -> None:
        """The agent answered: the ACD hears it, then the customer is dialled on their leg."""
        service, acd = self.service, self.service.acds[tenant]
        agent = answered.name if answered.name in offer.agents else offer.agents[0]
        self._agent_rings.pop((tenant, offer.reservation), None)
        try:
            service._carry(tenant, acd.answered(offer.caller, agent, service.clock()))
        except OfferGone as exc:
            log.warning("acd %s: %s (the agent's leg ends)", tenant, exc)
            return
        try:
            command = self._to_dial.pop((tenant, offer.caller), None)
            if command is None:
                log.error("acd %s: agent %s answered the callback of %s, but no number came",
                          tenant, agent, offer.caller)  # fmt: skip
                return
            try:
                result = await call.connect(
                    command.number, timeout=command.timeout,
                    caller_id=self._caller_id(tenant, command.queue), keep_playing=False,
                )  # fmt: skip
            except (CallEnded, ValueError) as exc:
                result = NotConnected(487, f"Request Terminated ({exc})")
            self._result(tenant, offer.caller, isinstance(result, Connected))
            if isinstance(result, Connected):
                await call.wait_ended()
                return
            log.info("acd %s: callback of %s: %s not reached: %d %s", tenant, offer.caller,
                     command.number, result.status, result.reason)  # fmt: skip
            if call.channel is not None and not call.ended:
                held_like = _Speaker(call)
                await self._say(held_like, UNREACHED, force=True)  # type: ignore[arg-type]
        finally:
            with contextlib.suppress(AcdError):
                service._carry(tenant, acd.call_ended(agent, service.clock()))


class _Speaker:
    """The little of a `_Caller` that `_say` reads, for an agent's leg."""

    def __init__(self, call: AppCall) -> None:
        assert call.channel is not None
        self.call, self.channel, self.key = call, call.channel, f"agent leg {call.call_id}"
        self.outcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()
