"""Supervision of a live call: a supervisor listens, whispers or barges (issue #7).

Part of `Calls` (a mixin). `await calls.supervise(call_id, to, mode)` dials
the supervisor (`to`: what `AppCall.connect` takes: an agent's extension,
every device of it ringing at once, an external number, a SIP URI; all
rung at once, the first to answer wins, the others get CANCEL) with an
offer of the node's own (PCMU, PCMA and telephone-event; a browser's leg
WebRTC with Opus as well), and once answered puts a
`switch.media.supervision.SupervisionMedia` on the call's legs: the
supervisor hears both parties, and in "whisper" the agent hears the
supervisor too, in "barge" both parties do.

The agent's side is leg B (the callee's: an ACD or a connect put the
agent there) unless `agent` names the agent whose leg it is. The
supervisor's leg is a dialog of the node's own, not a leg of the call: it
ends by itself when the call ends (BYE to the supervisor), when the
supervisor hangs up (the call goes on), when `stop()` is called, or when
the call's media is replaced (a transfer joined other legs).

Errors are `SupervisionError`s that say what to do: `NoSuchCall`,
`NotAnswered`, `AlreadySupervised`, `BadMode`, `BadRequest`, `NoAgentLeg`,
`SupervisorUnreachable` (with the SIP status that decided it),
`SupervisionEnded` (a mode change after the end).

A call whose legs carry DTMF differently has a DTMF bridge
(`switch.call.dtmf_calls`) that makes the stream toward a leg itself: while
a supervisor is heard on that leg the mix is its stream, and the bridge's
packets toward it are dropped (`DtmfLink.muted`): keys converted for that
leg are lost for as long.

Not done: the supervisor's re-INVITEs (hold, a new codec) are refused with
488 and the supervision goes on as it was; the supervisor's DTMF is not
passed to anyone.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..media.relay import LegMedia, LegOrigin, anchor, clock_rates
from ..media.supervision import MODES, SupervisionMedia
from ..media.webrtc import WebRtcLeg
from ..media.webrtc_sdp import WEBRTC_EXTRA, codecs_of, remote_transport, to_plain, to_webrtc
from ..sip.dialog import Dialog
from ..sip.errors import ParseError
from ..sip.message import Request, Response
from ..sip.offer_answer import LocalMedia, make_offer
from ..sip.sdp import Codec, SdpError
from ..sip.transaction import ClientTransaction, Event, ResponseReceived, new_branch
from .recording import _payload_types
from .routing import Rejection, Target
from .webrtc_legs import BROWSER_TRANSPORTS

if TYPE_CHECKING:
    from .model import Call

log = logging.getLogger("switch.call")
_ids = itertools.count(1)
_OFFERED = [Codec("PCMU", 8000, 1, 0), Codec("PCMA", 8000, 1, 8)]


class SupervisionError(Exception):
    """A supervision cannot be started or changed; the message says why.

    Each kind is also the builtin its meaning matches, which is what callers
    such as the REST API (switch.web.ports) map to a status: LookupError (no
    such call), ValueError (a request this call cannot take now),
    ConnectionError (the supervisor's phone refused or did not answer)."""


class NoSuchCall(SupervisionError, LookupError):
    pass


class NotAnswered(SupervisionError, ValueError):
    pass


class AlreadySupervised(SupervisionError, ValueError):
    pass


class BadMode(SupervisionError, ValueError):
    pass


class BadRequest(SupervisionError, ValueError):
    """`to` or `timeout` is not what `supervise` takes."""


class NoAgentLeg(SupervisionError, ValueError):
    pass


class SupervisionEnded(SupervisionError, ValueError):
    pass


class SupervisorUnreachable(SupervisionError, ConnectionError):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"the supervisor was not reached: {status} {reason}")
        self.status = status
        self.reason = reason


def _checked_mode(mode: str) -> str:
    if mode not in MODES:
        raise BadMode(f"mode {mode!r} is not one of {', '.join(MODES)}")
    return mode


@dataclass(eq=False)
class Supervision:
    """One supervisor on one call; `set_mode` and `stop` act on it live."""

    call_id: int
    to: tuple[str, ...]  # the targets as asked for
    mode: str
    agent: str  # the agent's side of the call, "a" or "b"
    id: int = field(default_factory=lambda: next(_ids))
    since: float = field(default_factory=time.time)  # epoch seconds of the answer
    target: str = ""  # the URI that answered
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    end_reason: str = ""
    # Set by the call layer once answered.
    _calls: Supervisions | None = field(default=None, repr=False)
    _call: Call | None = field(default=None, repr=False)
    _media: SupervisionMedia | None = field(default=None, repr=False)
    _leg: LegMedia | None = field(default=None, repr=False)
    _dialog: Dialog | None = field(default=None, repr=False)
    _flow: object = field(default=None, repr=False)
    _key: tuple[str, str] = ("", "")
    _ack: bytes = field(default=b"", repr=False)  # to the supervisor's 2xx, sent again if it is
    _answered: asyncio.Future | None = field(default=None, repr=False)  # while it rings

    @property
    def live(self) -> bool:
        return not self.ended.is_set()

    def set_mode(self, mode: str) -> None:
        """Listen, whisper or barge, live, without dialling again."""
        _checked_mode(mode)
        if not self.live or self._media is None:
            raise SupervisionEnded(
                f"supervision {self.id} has ended ({self.end_reason}): start a new one"
            )
        assert self._call is not None and self._calls is not None
        self._media.set_mode(mode)
        self.mode = mode
        self._calls._sup_mute(self._call)
        log.info("call %d: supervision %d now %s", self.call_id, self.id, mode)

    def stop(self) -> None:
        """Hang up the supervisor; the call goes on as a plain relayed call."""
        if self.live and self._calls is not None:
            self._calls._end_supervision(self, "stopped", bye=True)

    def to_dict(self) -> dict[str, object]:
        """For the REST API and the CTI."""
        return {
            "id": self.id, "call": self.call_id, "mode": self.mode, "to": list(self.to),
            "target": self.target, "since": self.since,
        }  # fmt: skip


@dataclass(eq=False)
class _Ring:
    """One INVITE toward the supervisor."""

    target: Target
    request: Request
    leg: LegMedia
    browser: bool
    txn: ClientTransaction | None = None
    provisional: bool = False
    state: str = "ringing"  # ringing, answered, failed, abandoned, hung-up
    failure: tuple[int, str] | None = None


class Supervisions:
    """Part of `Calls` (a mixin): its `_connect_targets`, `_send_request`, `_bye`... are used."""

    supervising: dict[int, list[Supervision]]  # Call.id -> live ones (set in Calls.__init__)
    _supervisor_legs: dict[tuple[str, str], Supervision]  # (Call-ID, our tag) -> supervision

    async def supervise(
        self,
        call_id: int,
        to: list[str],
        mode: str,
        *,
        agent: str | None = None,
        timeout: float = 30,
    ) -> Supervision:
        """Dial `to` (connect's targets, rung at once) and, once answered, let them
        hear call `call_id` in `mode` ("listen", "whisper", "barge")."""
        _checked_mode(mode)
        if isinstance(to, str) or not to or not all(isinstance(t, str) and t.strip() for t in to):
            raise BadRequest(f"to={to!r}: give a list of one or more targets, e.g. ['1003']")
        if not isinstance(timeout, int | float) or not 0 < timeout <= 300:
            raise BadRequest(f"timeout={timeout!r}: give the seconds to ring, over 0, 300 at most")
        names = tuple(t.strip() for t in to)
        call = self._supervised_call(call_id)
        side = self._agent_side(call, agent)
        for other in self.supervising.get(call.id, []):
            if set(other.to) & set(names):
                raise AlreadySupervised(
                    f"call {call_id} is already supervised by {', '.join(other.to)} "
                    f"(supervision {other.id}): change its mode or stop it"
                )
        sup = Supervision(call.id, names, mode, side)
        self.supervising.setdefault(call.id, []).append(sup)  # (a second ask is refused now)
        try:
            await self._dial_supervisor(call, sup, timeout)
        except BaseException as exc:
            self._sup_drop(sup)
            log.info("call %d: supervision %d by %s not started: %s", call.id, sup.id,
                     ", ".join(names), exc or type(exc).__name__)  # fmt: skip
            raise
        return sup

    def supervisions(self, call_id: int) -> list[Supervision]:
        """The live supervisions of call `call_id` (empty if none, or no such call)."""
        return [s for s in self.supervising.get(call_id, []) if s.live and s._media is not None]

    # -- checks ------------------------------------------------------------------------------

    def _supervised_call(self, call_id: int) -> Call:
        call = next((c for c in self._by_invite.values() if c.id == call_id), None)  # type: ignore[attr-defined]
        if call is None or call.state == "ended":
            raise NoSuchCall(f"no call {call_id} on this node (it may have ended)")
        media = call.media
        if call.state != "answered" or media is None:
            raise NotAnswered(f"call {call_id} is not answered yet: supervise it once it is")
        if media.a is media.b or (call.app is not None and call.app.connected is None):
            raise NotAnswered(
                f"call {call_id} is with an application, not yet with an agent: "
                "supervise it once it is connected"
            )
        return call

    def _agent_side(self, call: Call, agent: str | None) -> str:
        if agent is None:
            return "b"
        target = call.target
        if target is not None and target.kind == "agent" and target.name == agent:
            return "b"
        if call.caller.kind == "agent" and call.caller.name == agent:
            return "a"
        raise NoAgentLeg(
            f"agent {agent!r} is on no leg of call {call.id}; leave agent out for the callee's leg"
        )

    # -- dialling ----------------------------------------------------------------------------

    async def _dial_supervisor(self, call: Call, sup: Supervision, timeout: float) -> None:
        targets: list[Target] = []
        refusals: list[tuple[int, str]] = []
        for name in sup.to:
            found = await self._connect_targets(call, name)  # type: ignore[attr-defined]
            if isinstance(found, Rejection):
                refusals.append((found.status, found.reason))
            else:
                targets += found
        if not targets:
            raise SupervisorUnreachable(*_first(refusals))
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[tuple[_Ring, Response]] = loop.create_future()
        sup._answered = answered  # (the call's end fails it: what rings is CANCELled)
        rings: list[_Ring] = []
        try:
            for target in targets:
                ring = await self._ring_supervisor(call, sup, target, answered, rings)
                if isinstance(ring, tuple):
                    refusals.append(ring)
            if not rings:
                raise SupervisorUnreachable(*_first(refusals))
            try:
                ring, resp = await asyncio.wait_for(asyncio.shield(answered), timeout)
            except TimeoutError:
                raise SupervisorUnreachable(
                    480, f"Temporarily Unavailable (no answer within {timeout:g} s)"
                ) from None
        except BaseException:
            self._sup_abandon_rings(rings)
            if not answered.done():
                answered.cancel()
            elif not answered.cancelled() and answered.exception() is None:
                self._sup_hang_up(*answered.result())  # answered as the ask was withdrawn
            raise
        for other in rings:
            if other is not ring:
                self._sup_abandon_ring(other)
        if call.state != "answered" or call.media is None:
            self._sup_hang_up(ring, resp)
            raise NoSuchCall(f"call {call.id} ended while the supervisor was rung")
        try:
            self._supervisor_answered(call, sup, ring, resp)
        except SupervisionError:
            self._sup_hang_up(ring, resp)
            raise

    async def _ring_supervisor(
        self, call: Call, sup: Supervision, target: Target,
        answered: asyncio.Future[tuple[_Ring, Response]], rings: list[_Ring],
    ) -> _Ring | tuple[int, str]:  # fmt: skip
        browser = target.kind == "agent" and target.flow.transport in BROWSER_TRANSPORTS
        try:
            leg: LegMedia = await (
                WebRtcLeg.open(self.media, self.ice)  # type: ignore[attr-defined]
                if browser
                else self.media.leg()  # type: ignore[attr-defined]
            )
        except OSError as exc:
            log.warning("call %d: no media port for a supervisor: %s", call.id, exc)
            return 503, "Service Unavailable (no free media ports)"
        address = self.media_address  # type: ignore[attr-defined]
        session = str(secrets.randbelow(2**62))
        local = LocalMedia(address, leg.port, list(_OFFERED), session_id=session, rtcp_mux=False)
        plain = make_offer(local).to_bytes()
        body = plain
        if browser:
            body = to_webrtc(plain, leg.local(address, "actpass"), WEBRTC_EXTRA)  # type: ignore[attr-defined]
        body = anchor(body, address, leg.port, LegOrigin())[0]
        sent_by = self._sent_by(target.flow)  # type: ignore[attr-defined]
        headers: list[tuple[str, object]] = [
            ("Via", f"SIP/2.0/{target.flow.via_transport} {sent_by};branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f'"Supervision" <sip:supervise@{sent_by}>;tag={secrets.token_hex(6)}'),
            ("To", f"<{target.uri}>"),
            ("Call-ID", secrets.token_hex(16)),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:switch@{sent_by}>"),
            ("User-Agent", self.server),  # type: ignore[attr-defined]
        ]
        request = Request("INVITE", target.uri, headers)
        request.set_body(body, "application/sdp")
        ring = _Ring(target, request, leg, browser)
        rings.append(ring)
        ring.txn = self._send_request(  # type: ignore[attr-defined]
            request, target.flow, lambda event: self._sup_ring_event(ring, rings, answered, event)
        )
        log.info("call %d: supervision %d rings %s", call.id, sup.id, target.uri)
        return ring

    def _sup_ring_event(
        self, ring: _Ring, rings: list[_Ring],
        answered: asyncio.Future[tuple[_Ring, Response]], event: Event,
    ) -> None:  # fmt: skip
        if not isinstance(event, ResponseReceived):
            if ring.state == "ringing":  # a timeout or transport error
                ring.state = "failed"
                ring.failure = (408, "Request Timeout (the supervisor's device did not answer)")
                ring.leg.close()
                self._sup_all_failed(rings, answered, ring.failure)
            return
        resp = event.response
        if resp.status < 200:
            if resp.status > 100:
                ring.provisional = True
                if ring.state == "abandoned":
                    self._send_cancel(ring.request, ring.target.flow)  # type: ignore[attr-defined]
            return
        if resp.status >= 300:
            if ring.state == "ringing":
                ring.state = "failed"
                ring.failure = (resp.status, resp.reason)
                ring.leg.close()
                self._sup_all_failed(rings, answered, (resp.status, resp.reason))
            return
        if ring.state == "ringing" and not answered.done():
            ring.state = "answered"
            answered.set_result((ring, resp))
        elif ring.state != "answered":
            self._sup_hang_up(ring, resp)  # a late answer nobody wants

    def _sup_all_failed(
        self, rings: list[_Ring], answered: asyncio.Future, failure: tuple[int, str]
    ) -> None:
        if answered.done() or any(r.state in ("ringing", "answered") for r in rings):
            return
        failures = [r.failure or failure for r in rings]
        answered.set_exception(SupervisorUnreachable(*_first(failures)))

    def _sup_abandon_rings(self, rings: list[_Ring]) -> None:
        for ring in rings:
            self._sup_abandon_ring(ring)  # (an answered one is hung up by who holds its answer)

    def _sup_abandon_ring(self, ring: _Ring) -> None:
        if ring.state == "ringing":
            ring.state = "abandoned"
            if ring.provisional:
                self._send_cancel(ring.request, ring.target.flow)  # type: ignore[attr-defined]
            ring.leg.close()

    def _sup_hang_up(self, ring: _Ring, resp: Response) -> None:
        """ACK and BYE a 2xx the node does not use."""
        first = ring.state != "hung-up"
        what = "a supervisor's answer"
        if self._ack_and_bye(ring.request, resp, ring.target, what, bye=first):  # type: ignore[attr-defined]
            ring.state = "hung-up"
            ring.leg.close()

    def _supervisor_answered(
        self, call: Call, sup: Supervision, ring: _Ring, resp: Response
    ) -> None:
        body = resp.body
        try:
            dialog = Dialog.from_uac_response(ring.request, resp)
            plain = to_plain(body) if ring.browser else body
            answered = codecs_of(plain)
            codec = next((c for c in answered if c.name.casefold() != "telephone-event"), None)
            remote = remote_transport(body) if ring.browser else None
        except (ParseError, ValueError, SdpError) as exc:
            raise SupervisorUnreachable(488, f"Not Acceptable Here ({exc})") from None
        if codec is None:
            raise SupervisorUnreachable(488, "Not Acceptable Here (the answer names no codec)")
        flow = ring.target.flow
        ack = dialog.create_ack(ring.request.cseq.number)
        ack.add("Via", self._via(flow), first=True)  # type: ignore[attr-defined]
        sup._ack = bytes(ack)
        self._send_stateless(sup._ack, flow)  # type: ignore[attr-defined]
        ring.state = "hung-up"  # (from here on the supervision's BYE ends it)
        leg = ring.leg
        if remote is not None:
            leg.start(remote, offerer=True)  # type: ignore[attr-defined]
        else:
            _, where = anchor(body, self.media_address, leg.port)  # type: ignore[attr-defined]
            if where is not None:
                leg.expect(where, clock_rates(body))
        leg.sdp = body
        media = call.media
        assert media is not None
        try:
            sup._media = SupervisionMedia(
                media.a.rtp, media.b.rtp, leg.rtp, lambda side: _payload_types(call, side),
                codec, sup.mode, sup.agent,
                on_lost=lambda why: self._end_supervision(sup, why, bye=True),
                s_types={c.payload_type: c for c in answered if c.payload_type is not None},
            )  # fmt: skip
        except Exception as exc:  # (a bug too: the supervisor must not stay up, unheard)
            self._bye(dialog, flow)  # type: ignore[attr-defined]
            leg.close()
            if not isinstance(exc, ValueError):
                raise
            raise SupervisorUnreachable(488, f"Not Acceptable Here ({exc})") from None
        sup._calls, sup._call, sup._leg, sup._dialog, sup._flow = self, call, leg, dialog, flow
        sup._key = (ring.request.call_id, ring.request.from_.tag or "")
        sup.target = ring.target.uri
        sup.since = time.time()
        self._supervisor_legs[sup._key] = sup
        self._sup_mute(call)
        log.info("call %d: supervision %d (%s) by %s", call.id, sup.id, sup.mode, sup.target)

    # -- the end -----------------------------------------------------------------------------

    def _supervisor_request(self, req: Request) -> bool:
        """A request inside a supervisor's dialog: True when it was one (answered here)."""
        sup = self._supervisor_legs.get((req.call_id, req.to.tag or ""))
        if sup is None:
            return False
        if req.method == "BYE":
            self._answer(req, 200, "OK")  # type: ignore[attr-defined]
            self._end_supervision(sup, "the supervisor hung up", bye=False)
        elif req.method in ("OPTIONS", "INFO"):
            self._answer(req, 200, "OK")  # type: ignore[attr-defined]
        else:
            self._answer(req, 488, "Not Acceptable Here (a supervision keeps its media as set up)")  # type: ignore[attr-defined]
        return True

    def _end_supervision(self, sup: Supervision, why: str, bye: bool) -> None:
        if not sup.live:
            return
        if sup._media is not None:
            sup._media.close()
        if bye and sup._dialog is not None:
            self._bye(sup._dialog, sup._flow)  # type: ignore[attr-defined]
        if sup._leg is not None:
            sup._leg.close()
        self._supervisor_legs.pop(sup._key, None)
        self._sup_drop(sup)
        sup.end_reason = why
        sup.ended.set()
        log.info("call %d: supervision %d ended: %s", sup.call_id, sup.id, why)

    def _sup_drop(self, sup: Supervision) -> None:
        live = self.supervising.get(sup.call_id)
        if live is not None and sup in live:
            live.remove(sup)
            if not live:
                del self.supervising[sup.call_id]
        if sup._call is not None:
            self._sup_mute(sup._call)

    def _supervised_sides(self, call: Call) -> set[str]:
        """The legs of `call` that hear a supervisor now (their stream is the mix)."""
        sides: set[str] = set()
        for sup in self.supervising.get(call.id, []):
            if sup._media is not None and not sup._media.closed:
                sides |= sup._media.hearing
        return sides

    def _sup_mute(self, call: Call) -> None:
        """A DTMF bridge on the call sends nothing to a leg that hears the mix."""
        state = call.dtmf
        if state is not None and state.link is not None:
            state.link.muted = self._supervised_sides(call)

    def _supervisions_ended(self, call: Call, why: str = "the call ended") -> None:
        """The call is over (or its media replaced): every supervisor is hung up."""
        for sup in list(self.supervising.get(call.id, [])):
            if sup._media is not None:
                self._end_supervision(sup, why, bye=True)
            elif sup._answered is not None and not sup._answered.done():
                sup._answered.set_exception(
                    NoSuchCall(f"call {call.id} ended while the supervisor was rung")
                )

    def _supervisor_stray(self, resp: Response) -> bool:
        """A 2xx retransmitted by a supervisor's device (our ACK was lost): ACK again."""
        sup = self._supervisor_legs.get((resp.call_id, resp.from_.tag or ""))
        if sup is None:
            return False
        if 200 <= resp.status < 300 and sup._ack:
            self._send_stateless(sup._ack, sup._flow)  # type: ignore[attr-defined]
        return True


def _first(failures: list[tuple[int, str]]) -> tuple[int, str]:
    """The failure to report: a busy first, then the first that came."""
    if not failures:
        return 480, "Temporarily Unavailable"
    return next((f for f in failures if f[0] == 486), failures[0])
