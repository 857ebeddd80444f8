"""Calls the node places itself: click-to-call (`POST /api/calls`) and queue callbacks.

Part of `Calls` (a mixin). `originate(tenant, first, second)` rings `first`
(the names `AppCall.connect` takes: an agent's extension rings every device
they registered, an external number goes out by the tenant's outbound
routes, a SIP URI) and, once it answers, puts it through to `second` with
the very `connect` an application uses: the result is an ordinary bridged
call (recording, DTMF, transfers, session timers), like an IVR caller put
through.

How: the first party's answered leg becomes leg A of a `Call` (a dialog we
made, as leg A is after a transfer by the caller's side), with a `Channel`
on it and an `AppCall` handle, as if they had called an application. `place`
hands that handle to a runner: originate's connects it to `second`; the
queue callbacks (`switch.apps.acd_callbacks`) hold a customer for an agent,
or dial the customer for an agent. The INVITEs are connect's own
(`switch.call.connect`: fallback trunks, PRACK, CANCEL, setup timeouts), so
there is one dialling code, not two.

Who each side sees: the first party is shown `caller_id`; without one, an
agent sees who they are about to be put through to, and an external number
the tenant's main number (`numbers.caller_id`; with neither, originate
refuses rather than show the customer their own number). The second party
sees `caller_id` when given, else what the first party presents when they
call (an agent's own caller-ID rules; a customer's number).

A browser agent is offered WebRTC (the node's ICE and DTLS end, G.711 and
Opus): the first party's leg is then a WebRTC leg, its channel speaks
what the browser chose, and the bridge transcodes toward a G.711 second
party as for a browser caller. The runner starts once the browser's
media is connected (ICE, DTLS), or the call ends.

Unknown targets, an unknown tenant, an agent with no registered device
raise `OriginateError` before anything is dialled.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from ..config import Tenant
from ..media.channel import Channel
from ..media.relay import LegMedia, MediaSession, anchor, clock_rates
from ..media.webrtc import WebRtcLeg
from ..media.webrtc_sdp import WEBRTC_EXTRA, is_webrtc, remote_transport, to_plain, to_webrtc
from ..numbers import to_e164
from ..registrar.guard import Caller
from ..sip.dialog import Dialog
from ..sip.errors import ParseError
from ..sip.message import Request, Response
from ..sip.offer_answer import LocalMedia, OfferAnswerError, make_offer
from ..sip.sdp import SdpError
from ..sip.transaction import ServerTransaction, new_branch
from ..sip.uri import parse_uri
from .app import AppCall, Connected, NotConnected, Party
from .app_calls import CONNECT_TIMEOUT
from .app_sdp import CODECS, answer_offer
from .connect import _Branch, _Connect, _Invite, _worst
from .model import Call, Hangup
from .refresh import allows_update
from .routing import Rejection, Target
from .webrtc_legs import WebRtcState

log = logging.getLogger("switch.call")

# What the node offers a party it calls: G.711 (and telephone-event), which
# every phone and trunk speaks; the bridge transcodes where the other leg differs.
_OFFERED = [c for c in CODECS if c.name in ("PCMU", "PCMA")]

# What the node does with the first party once they answered: the handle on
# their leg (an application's), and who answered (`Connected.name`: the agent).
Runner = Callable[[AppCall, Connected], Awaitable[None]]


class OriginateError(ValueError):
    """The call cannot be placed; nothing was dialled. The message says what to change."""


@dataclass(eq=False)
class Placed:
    """A call the node placed: its id, and what became of its first party."""

    call_id: int
    answered: asyncio.Future[Connected | NotConnected]  # the first party answered, or not
    # originate's put-through to the second party (left pending by other runners).
    connected: asyncio.Future[Connected | NotConnected]
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def cancel(self) -> None:
        """Give up: CANCEL what rings, hang up what answered and is not put through."""
        if self.task is not None and not self.task.done():
            self.task.cancel()


class Originates:
    """Part of `Calls` (a mixin): its helpers (`_branch`, `_give_up`, ...) are used here."""

    async def originate(
        self,
        tenant: str,
        first: str,
        second: str,
        *,
        caller_id: str | None = None,
        timeout: float = 30,
        second_timeout: float = 30,
    ) -> int:
        """Ring `first`; when it answers, put it through to `second`. The call's
        id, as soon as `first` is being rung (`placed(id)` follows it).
        OriginateError for a target that cannot be called, before any dialling."""
        if not isinstance(second, str) or not second.strip():
            raise OriginateError(
                "originate needs a second target: an extension, a number or a SIP URI"
            )
        if second_timeout <= 0:
            raise OriginateError(f"second_timeout is in seconds, more than 0, not {second_timeout}")
        connected: asyncio.Future[Connected | NotConnected] = (
            asyncio.get_running_loop().create_future()
        )

        async def put_through(handle: AppCall, answered: Connected) -> None:
            try:
                result = await handle.connect(
                    second.strip(), timeout=second_timeout, caller_id=caller_id,
                    keep_playing=False,
                )  # fmt: skip
            except BaseException:
                if not connected.done():
                    connected.set_result(NotConnected(487, "Request Terminated (withdrawn)"))
                raise
            if not connected.done():
                connected.set_result(result)
            if isinstance(result, NotConnected):
                log.info("call %d: %s answered, %s did not: %d %s", handle.call_id,
                         answered.target, second, result.status, result.reason)  # fmt: skip

        placed = await self.place(
            tenant, first, put_through, caller_id=caller_id, timeout=timeout, check=[second],
            shown=caller_id or second.strip(),
        )  # fmt: skip
        placed.connected = connected
        return placed.call_id

    def placed(self, call_id: int) -> Placed | None:
        """A call placed by `place` or `originate`, while it lasts."""
        return self._placed_calls.get(call_id)  # type: ignore[attr-defined]

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
    ) -> Placed:
        """Ring `first` (several names ring at once; the first to answer wins)
        for up to `timeout` seconds; once answered, `run` has the call.

        `caller_id`: what an external first party is shown (default the
        tenant's main number); `shown`: what an agent first is shown.
        `check`: names that must be callable too (the second party).
        OriginateError before anything is dialled when something cannot be."""
        config = self.router.config  # type: ignore[attr-defined]
        settings = config.tenants.get(tenant)
        if settings is None:
            known = ", ".join(sorted(config.tenants)) or "none"
            raise OriginateError(f"no tenant {tenant!r} on this node (it has: {known})")
        if self.media is None:  # type: ignore[attr-defined]
            raise OriginateError("this node relays no media, so it cannot place calls")
        names = [first] if isinstance(first, str) else list(first)
        if not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise OriginateError("originate needs a target: an extension, a number or a SIP URI")
        if timeout <= 0:
            raise OriginateError(f"the timeout is in seconds, more than 0, not {timeout}")
        targets: list[tuple[str, Target]] = []
        for name in (n.strip() for n in names):
            targets += [(name, t) for t in await self._callable(tenant, name)]
        for name in check:
            await self._callable(tenant, name.strip())
        caller, number = _first_party(settings, names[0].strip(), targets[0][1])
        if caller.kind == "agent":
            shows = shown or caller_id
        else:
            shows = caller_id or settings.numbers.caller_id
            if not shows:
                raise OriginateError(
                    f"calling {names[0]!r} first needs a caller_id to show them (or the "
                    f"tenant's numbers.caller_id): set caller_id"
                )
        call = _placed_call(caller, number, names[0].strip(), targets[0][1])
        loop = asyncio.get_running_loop()
        placed = Placed(call.id, loop.create_future(), loop.create_future())
        self._by_invite[call.a_txn] = call  # type: ignore[attr-defined]
        self._placed_calls[call.id] = placed  # type: ignore[attr-defined]
        task = loop.create_task(self._placing(call, targets, run, placed, timeout, shows))
        placed.task = task
        self._tasks.add(task)  # type: ignore[attr-defined]
        task.add_done_callback(self._tasks.discard)  # type: ignore[attr-defined]
        log.info("call %d: placed by the node for tenant %s: %s", call.id, tenant,
                 ", ".join(names))  # fmt: skip
        return placed

    async def _callable(self, tenant: str, name: str) -> list[Target]:
        found = await self._targets_named(tenant, name, 0)  # type: ignore[attr-defined]
        if isinstance(found, Rejection):
            raise OriginateError(f"{name[:64]!r} cannot be called: {found.status} {found.reason}")
        return cast(list[Target], found)

    async def _placing(
        self, call: Call, targets: list[tuple[str, Target]], run: Runner, placed: Placed,
        timeout: float, shows: str | None,
    ) -> None:  # fmt: skip
        loop = asyncio.get_running_loop()
        pending = _Connect(call, [], loop.create_future())
        pending.offer = self._placing_offer
        pending.live = lambda: call.state == "calling"
        pending.take = lambda branch, invite, resp: self._first_answered(
            pending, branch, invite, resp
        )
        refusals: list[tuple[int, str]] = []
        try:
            try:
                for name, target in targets:
                    branch = await self._branch(call, pending, name, target, shows)  # type: ignore[attr-defined]
                    if isinstance(branch, NotConnected):
                        refusals.append((branch.status, branch.reason))
                if not pending.branches:
                    result: Connected | NotConnected = NotConnected(*_worst(refusals))
                else:
                    try:
                        result = await asyncio.wait_for(asyncio.shield(pending.result), timeout)
                    except TimeoutError:
                        why = f"no answer within {timeout:g} s"
                        self._give_up(pending, why)  # type: ignore[attr-defined]
                        result = NotConnected(480, f"Temporarily Unavailable ({why})")
                    if isinstance(result, NotConnected) and refusals:
                        result = NotConnected(*_worst([*refusals, (result.status, result.reason)]))
            except asyncio.CancelledError:
                self._give_up(pending, "the call was withdrawn")  # type: ignore[attr-defined]
                if call.state == "calling":
                    self._placed_failed(call, NotConnected(487, "Request Terminated (withdrawn)"))
                if not placed.answered.done():
                    placed.answered.set_result(NotConnected(487, "Request Terminated (withdrawn)"))
                raise
            if not placed.answered.done():
                placed.answered.set_result(result)
            if isinstance(result, NotConnected):
                self._placed_failed(call, result)
                return
            handle = call.app
            assert handle is not None
            if not await self._media_up(call):
                return
            try:
                await self._run_app(call, handle, lambda h: run(h, result))  # type: ignore[attr-defined]
            except asyncio.CancelledError:
                if call.state == "answered" and handle.connected is None:
                    self._hang_up(call, "the call was withdrawn")  # type: ignore[attr-defined]
                raise
        finally:
            if call.state == "ended":
                self._placed_calls.pop(call.id, None)  # type: ignore[attr-defined]
            else:
                handle = call.app
                if handle is not None:
                    ended = asyncio.ensure_future(handle.wait_ended())
                    ended.add_done_callback(
                        lambda _: self._placed_calls.pop(call.id, None)  # type: ignore[attr-defined]
                    )

    def _placing_offer(self, leg: LegMedia, browser: bool) -> bytes:
        address = self.media_address  # type: ignore[attr-defined]
        local = LocalMedia(
            address,
            leg.port,
            list(_OFFERED),
            session_id="0",
            rtcp_mux=False,  # the relay's leg has its RTCP on the next port
        )
        plain = make_offer(local).to_bytes()
        if not browser:
            return plain
        return to_webrtc(plain, _webrtc(leg).local(address, "actpass"), WEBRTC_EXTRA)

    async def _media_up(self, call: Call) -> bool:
        """A browser's leg connected (ICE, DTLS) in time; else the call is hung up."""
        leg = call.media.a if call.media is not None else None
        if not isinstance(leg, WebRtcLeg):
            return True
        try:
            ok = await asyncio.wait_for(asyncio.shield(leg.connected), CONNECT_TIMEOUT)
        except TimeoutError:
            ok = False
        if call.state != "answered":
            return False
        if not ok:
            log.warning("call %d: the browser's media did not connect: %s", call.id,
                        leg.failure or f"nothing in {CONNECT_TIMEOUT:g} s")  # fmt: skip
            self._hang_up(call, "media did not connect (ICE/DTLS)")  # type: ignore[attr-defined]
            return False
        return True

    def _placed_failed(self, call: Call, result: NotConnected) -> None:
        """The first party did not answer: the call is over, with why."""
        if call.state == "ended":
            return
        by = "node" if result.status in (480, 487) else "callee"
        call.hangup = Hangup(by, result.status, result.reason)
        call.state = "ended"
        log.info("call %d: the first party did not answer: %d %s", call.id, result.status,
                 result.reason)  # fmt: skip
        self._forget(call)  # type: ignore[attr-defined]

    def _first_answered(
        self, pending: _Connect, branch: _Branch, invite: _Invite, resp: Response
    ) -> str | None:
        """The first party answered: their leg is leg A, with a channel and an
        application's handle on it. Why it cannot be, or None."""
        call = pending.call
        body = resp.body
        if not body:
            return "Not Acceptable Here (the answer has no SDP)"
        leg = branch.leg
        address = self.media_address  # type: ignore[attr-defined]
        try:
            browser = branch.browser and is_webrtc(body)
            plain = to_plain(body) if browser else body
            remote = remote_transport(body) if browser else None
            ours, media_format = answer_offer(plain, address, leg.port)
            dialog = Dialog.from_uac_response(invite.request, resp)
        except (OfferAnswerError, SdpError) as exc:
            return f"Not Acceptable Here ({exc})"
        except (ParseError, ValueError) as exc:
            return f"Bad Gateway (the answer cannot be used: {exc})"
        flow = invite.target.flow
        ack = dialog.create_ack(invite.request.cseq.number)
        ack.add("Via", self._via(flow), first=True)  # type: ignore[attr-defined]
        invite.ack = bytes(ack)
        self._send_stateless(invite.ack, flow)  # type: ignore[attr-defined]
        if remote is not None:
            _webrtc(leg).start(remote, offerer=True)
            # What a session refresh offers the browser again: its own kind.
            ours = to_webrtc(ours, _webrtc(leg).local(address, "actpass"))
            call.webrtc = WebRtcState(frozenset("a"), sent={"a": branch.offer})
            call.webrtc.remote["a"] = remote
        else:
            _, where = anchor(body, address, leg.port)
            if where is not None:
                leg.expect(where, clock_rates(body))
        leg.sdp = plain
        call.media = MediaSession(leg, leg)
        leg.rtp.peer = leg.rtcp.peer = None  # nothing is relayed: the channel is the far end
        call.a_dialog, call.a_flow = dialog, flow
        call.a_key = (invite.request.call_id, invite.request.from_.tag or "")
        self._by_leg[call.a_key] = call  # type: ignore[attr-defined]
        call.a_invite.set_body(body, "application/sdp")
        call.a_sdp = body
        call.b_sdp = ours  # what the node agreed with leg A (connect offers on from it)
        call.origins["a"] = branch.origin
        call.allows_update["a"] = allows_update(resp)
        call.state, call.answered_at = "answered", time.time()
        call.b_expires = self.session_expires  # type: ignore[attr-defined]
        channel = Channel(leg, media_format, self._dtmf_mode(call), browser=remote is not None)  # type: ignore[attr-defined]

        async def answered() -> Channel:
            return channel

        handle = AppCall(
            "originate",
            "",
            Party(self._number_of(call, True), "", call.caller.tenant),  # type: ignore[attr-defined]
            call.dialled,
            call.id,
            answer=answered,
            hangup=lambda cause, status: self._app_hangup(call, cause, status),  # type: ignore[attr-defined]
            connect=lambda targets, timeout, caller_id, keep: self._app_connect(  # type: ignore[attr-defined]
                call, targets, timeout, caller_id, keep
            ),
        )
        handle.channel, handle.answered = channel, True
        call.app = handle
        log.info("call %d: %s %s answered", call.id, invite.target.kind, invite.target.uri)
        return None


def _webrtc(leg: LegMedia) -> WebRtcLeg:
    assert isinstance(leg, WebRtcLeg)
    return leg


def _first_party(tenant: Tenant, name: str, target: Target) -> tuple[Caller, str]:
    """Who the first party is as a caller (an agent, or a number on a trunk), and their number."""
    if target.kind == "agent":
        return Caller(tenant.id, "agent", name), name
    try:
        user = getattr(parse_uri(target.uri), "user", None) or name
    except ParseError:
        user = name
    number = to_e164(user, tenant.numbers.plan) or user
    return Caller(tenant.id, target.kind, target.name), number


class _NoTransaction:
    """The key of a placed call among the calls (`Calls._by_invite`): no INVITE came in."""


def _placed_call(caller: Caller, number: str, dialled: str, target: Target) -> Call:
    """A call whose leg A the node is about to make: its INVITE stands for the
    first party's own (who they are, for leg B's caller ID and the records)."""
    headers: list[tuple[str, object]] = [
        ("Via", f"SIP/2.0/UDP switch.invalid;branch={new_branch()}"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:{number}@{caller.tenant}.invalid>;tag={secrets.token_hex(6)}"),
        ("To", f"<{target.uri}>"),
        ("Call-ID", secrets.token_hex(16)),
        ("CSeq", "1 INVITE"),
    ]
    invite = Request("INVITE", target.uri, headers)
    txn = cast(ServerTransaction, _NoTransaction())
    call = Call(caller, dialled, invite, target.flow, txn)
    call.state = "calling"
    return call
