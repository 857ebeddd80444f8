"""An application's caller put through to someone else: `AppCall.connect`.

Part of `Calls` (a mixin). The caller's leg A is already answered by the
node (an application's channel on it, `app_calls`). Connecting dials leg B
to one or more targets at once (an agent's every registered device, the
ACD's ring-all, an external number through the tenant's outbound routes, a
SIP URI), each INVITE offering what leg A negotiated, anchored on a relay
port of its own (the node is a B2BUA: nobody sees the other's addresses).
When the caller is a browser speaking Opus, the offer adds PCMU and PCMA
and the browser's leg transcodes; toward a browser agent the offer is
WebRTC (with Opus added, transcoded on the agent's leg if it chooses it).

The first 2xx wins: it is ACKed, the others are CANCELled (or, answered
too, ACKed and sent BYE); the channel lets go of leg A, the relay joins
leg A to the winner's leg (its `Sending` keeps the caller's stream one
stream), and the call is an ordinary bridged call from then on (`Call`
fields as `_b_answered` sets them: BYE, re-INVITE, REFER, session timers,
recording, DTMF bridge, quality, `Call.legs`).

Failures (every target refused, nobody answered within the timeout, the
caller hung up) leave leg A with the application as it was. A trunk that
fails with 408/5xx, or sends nothing within its `setup_timeout`, hands
that branch to the route's next trunk, as for any call (issue #4).
Cancelling the task that awaits the connect CANCELs every INVITE still
ringing (RFC 3261 §9.1: once a provisional response came; an INVITE that
has had none is CANCELled when one comes, and one answered after all gets
ACK and BYE).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..media.channel import Channel
from ..media.player import ToneItem
from ..media.relay import LegMedia, LegOrigin, MediaSession, anchor, clock_rates
from ..media.tones import progress_tone
from ..media.webrtc import WebRtcLeg
from ..media.webrtc_sdp import (
    PLAIN_EXTRA,
    WEBRTC_EXTRA,
    answer_codecs,
    codecs_of,
    is_webrtc,
    remote_transport,
    to_plain,
    to_webrtc,
)
from ..sip import session_timer
from ..sip.dialog import Dialog
from ..sip.errors import ParseError
from ..sip.flow import Flow
from ..sip.message import Request, Response
from ..sip.offer_answer import restrict_codecs
from ..sip.sdp import SdpError, parse_sdp
from ..sip.transaction import (
    ClientTransaction,
    Event,
    ResponseReceived,
    TransactionTimeout,
    TransportError,
)
from ..sip.uri import SipURI, parse_uri
from .app import Connected, NotConnected
from .model import Call, LegEnd
from .refresh import allows_update
from .routing import App, Rejection, Target
from .webrtc_legs import BROWSER_TRANSPORTS, WebRtcState

CALL_HEADER = "X-Switch-Call"  # on INVITEs to agents' devices: the node's call id
log = logging.getLogger("switch.call")
# Ringback by the tenant's country code (the tones of switch.media.tones).
_RINGBACK = {"1": "us", "44": "uk", "86": "cn"}


@dataclass(eq=False)
class _Invite:
    """One INVITE of a connect: to one device or one trunk server."""

    target: Target
    request: Request
    txn: ClientTransaction | None = None
    provisional: bool = False  # a CANCEL may go (RFC 3261 §9.1)
    pracked: set[str] = field(default_factory=set)
    state: str = "ringing"  # ringing, answered, failed, abandoned
    cancel_sent: bool = False
    timer: asyncio.TimerHandle | None = None  # the trunk's setup timeout
    ack: bytes | None = None  # our ACK to its 2xx, resent as is if the 2xx comes again


@dataclass(eq=False)
class _Branch:
    """One target of a connect (a device, a number): its relay leg and INVITEs."""

    name: str  # the target as the application named it
    leg: LegMedia
    browser: bool
    origin: LegOrigin
    offer: bytes  # what leg B was offered, before anchoring
    fallbacks: list[Target]
    invite: _Invite | None = None
    failure: tuple[int, str] | None = None


@dataclass(eq=False)
class _Connect:
    """A connect under way."""

    call: Call
    branches: list[_Branch]
    result: asyncio.Future[Connected | NotConnected]
    started: float = field(default_factory=time.monotonic)
    over: bool = False
    # A call the node places itself (switch.call.originate) has no caller
    # yet: these say what its first party is offered, when it is still
    # wanted, and what its answer does (default: leg A's, bridged).
    offer: Callable[[LegMedia, bool], bytes] | None = None
    live: Callable[[], bool] | None = None
    take: Callable[[_Branch, _Invite, Response], str | None] | None = None

    def wanted(self) -> bool:
        return self.live() if self.live is not None else self.call.state == "answered"


class AppConnects:
    """Part of `Calls` (a mixin): its helpers (`_b_invite`, `_send_request`, ...) are used here."""

    async def _app_connect(
        self, call: Call, names: list[str], timeout: float, caller_id: str | None,
        keep_playing: bool,
    ) -> Connected | NotConnected:  # fmt: skip
        handle = call.app
        assert handle is not None
        channel = handle.channel
        if call.state != "answered" or channel is None or call.media is None:
            return NotConnected(487, "Request Terminated (the caller hung up)")
        targets: list[tuple[str, Target]] = []
        refusals: list[tuple[int, str]] = []
        for name in names:
            found = await self._connect_targets(call, name.strip())
            if isinstance(found, Rejection):
                refusals.append((found.status, found.reason))
            else:
                targets += [(name, t) for t in found]
        if call.state != "answered":
            return NotConnected(487, "Request Terminated (the caller hung up)")
        if not targets:
            return NotConnected(*_worst(refusals))
        pending = _Connect(call, [], asyncio.get_running_loop().create_future())
        ringing = None
        if not keep_playing:
            ringing = channel.play([ToneItem(self._ringback(call))], barge_in=False)
        try:
            for name, target in targets:
                branch = await self._branch(call, pending, name, target, caller_id)
                if isinstance(branch, NotConnected):
                    refusals.append((branch.status, branch.reason))
            if not pending.branches:
                return NotConnected(*_worst(refusals))
            ended = asyncio.ensure_future(handle.wait_ended())
            try:
                await asyncio.wait(
                    (pending.result, ended), timeout=timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )  # fmt: skip
            finally:
                ended.cancel()
            if pending.result.done():
                result = pending.result.result()
                if isinstance(result, NotConnected):
                    refusals.append((result.status, result.reason))
                    return NotConnected(*_worst(refusals))
                return result
            if handle.ended or call.state != "answered":
                self._give_up(pending, "the caller hung up")
                return NotConnected(487, "Request Terminated (the caller hung up)")
            self._give_up(pending, f"no answer within {timeout:g} s")
            return NotConnected(480, f"Temporarily Unavailable (no answer within {timeout:g} s)")
        except BaseException:
            self._give_up(pending, "the application withdrew the call")
            raise
        finally:
            if ringing is not None and handle.connected is None and not channel.closed:
                channel.stop()

    def _ringback(self, call: Call):  # type: ignore[no-untyped-def]
        tenant = self.router.config.tenants[call.caller.tenant]  # type: ignore[attr-defined]
        country = _RINGBACK.get(tenant.numbers.country_code, "eu")
        return progress_tone(country, "ringback")

    async def _connect_targets(self, call: Call, name: str) -> list[Target] | Rejection:
        """What `name` (an extension, a number, a SIP URI) rings."""
        return await self._targets_named(call.caller.tenant, name, call.id)

    async def _targets_named(
        self, tenant_id: str, name: str, call_id: int
    ) -> list[Target] | Rejection:
        """What `name` rings for tenant `tenant_id` (an application's connect, originate)."""
        tenant = self.router.config.tenants[tenant_id]  # type: ignore[attr-defined]
        if name.lower().startswith(("sip:", "sips:")):
            return _uri_target(name)
        if name in tenant.agents:
            devices = await self.router.devices(tenant_id, name)  # type: ignore[attr-defined]
            if not devices:
                return Rejection(480, f"Temporarily Unavailable (agent {name} is not registered)")
            return devices
        try:
            found = await self.router.from_app(tenant_id, name)  # type: ignore[attr-defined]
        except Exception:
            log.exception("call %d: routing %r failed", call_id, name[:32])
            return Rejection(500, "Server Internal Error (routing failed)")
        if isinstance(found, App):
            return Rejection(404, f"Not Found ({name[:32]!r} is an application, not a party)")
        return found if isinstance(found, Rejection) else [found]

    # -- dialling --------------------------------------------------------------------------

    async def _branch(
        self, call: Call, pending: _Connect, name: str, target: Target, caller_id: str | None
    ) -> _Branch | NotConnected:
        """Leg B's relay port and first INVITE toward `target`."""
        browser = target.kind == "agent" and target.flow.transport in BROWSER_TRANSPORTS
        try:
            leg: LegMedia = await (
                WebRtcLeg.open(self.media, self.ice)  # type: ignore[attr-defined]
                if browser
                else self.media.leg()  # type: ignore[attr-defined]
            )
        except OSError as exc:
            log.warning("call %d: no media ports to connect: %s", call.id, exc)
            return NotConnected(503, "Service Unavailable (no free media ports)")
        if pending.over or not pending.wanted():
            leg.close()
            return NotConnected(487, "Request Terminated (the caller hung up)")
        try:
            if pending.offer is not None:
                offer = pending.offer(leg, browser)
            else:
                offer = self._connect_offer(call, leg, browser)
        except SdpError as exc:
            leg.close()
            log.warning("call %d: leg A's SDP cannot be offered on: %s", call.id, exc)
            return NotConnected(488, f"Not Acceptable Here ({exc})")
        branch = _Branch(name, leg, browser, LegOrigin(), offer, list(target.fallbacks))
        pending.branches.append(branch)
        self._ring(pending, branch, target, caller_id)
        return branch

    def _connect_offer(self, call: Call, leg: LegMedia, browser: bool) -> bytes:
        """What leg B is offered: the codec leg A agreed (the node's answer to
        the caller), with what a WebRTC leg can transcode to."""
        assert call.media is not None
        ours = call.b_sdp  # the node's answer to the caller (switch.call.app_calls)
        a_browser = isinstance(call.media.a, WebRtcLeg)
        plain = to_plain(ours, PLAIN_EXTRA if a_browser and not browser else ()) if (
            is_webrtc(ours)
        ) else ours  # fmt: skip
        if not browser:
            return plain
        local = leg.local(self.media_address, "actpass")  # type: ignore[attr-defined]
        return to_webrtc(plain, local, () if a_browser else WEBRTC_EXTRA)

    def _ring(
        self, pending: _Connect, branch: _Branch, target: Target, caller_id: str | None
    ) -> None:
        """An INVITE to `target` on `branch` (or its next fallback with room)."""
        call = pending.call
        while target.kind == "trunk" and self._trunk_full(call.caller.tenant, target.name):  # type: ignore[attr-defined]
            if not branch.fallbacks:
                full = "Service Unavailable (the trunk is at its call limit)"
                self._branch_failed(pending, branch, target, 503, full)
                return
            target = branch.fallbacks.pop(0)
        body = self._trunk_codecs(call, target, branch.offer)
        if body is None:
            refused = f"Not Acceptable Here (no codec is allowed by {target.name})"
            self._branch_failed(pending, branch, target, 488, refused)
            return
        body = self._dtmf_offer_to(call, target, body)  # type: ignore[attr-defined]
        invite_req = self._b_invite(call, target, call.a_invite.max_forwards, caller_id)  # type: ignore[attr-defined]
        anchored = anchor(body, self.media_address, branch.leg.port, branch.origin)[0]  # type: ignore[attr-defined]
        invite_req.set_body(anchored, "application/sdp")
        if target.kind == "trunk":
            self._take_trunk(call, target.name)  # type: ignore[attr-defined]
        else:
            # The node's id of the call, for an agent's webphone to match the INVITE
            # with the screen pop (CTI call.offered's call_id). Not told to carriers.
            invite_req.set(CALL_HEADER, call.id)
        invite = _Invite(target, invite_req)
        branch.invite = invite
        invite.txn = self._send_request(  # type: ignore[attr-defined]
            invite_req, target.flow, lambda event: self._on_ring(pending, branch, invite, event)
        )
        if target.setup_timeout > 0:
            invite.timer = asyncio.get_running_loop().call_later(
                target.setup_timeout, self._ring_silent, pending, branch, invite
            )
        log.info("call %d: connecting to %s %s", call.id, target.kind, target.uri)

    def _trunk_codecs(self, call: Call, target: Target, body: bytes) -> bytes | None:
        """`body` cut to the target trunk's `codecs` (None: none left). The
        caller's own trunk had its say when leg A was answered."""
        tenant = self.router.config.tenants[call.caller.tenant]  # type: ignore[attr-defined]
        trunk = tenant.trunks.get(target.name) if target.kind == "trunk" else None
        if trunk is None:
            return body
        try:
            restricted = restrict_codecs(parse_sdp(body), trunk.codecs)
        except SdpError:
            return body  # not ours to judge: the far end says what is wrong
        return restricted.to_bytes() if restricted is not None else None

    def _on_ring(self, pending: _Connect, branch: _Branch, invite: _Invite, event: Event) -> None:
        try:
            self._ring_event(pending, branch, invite, event)
        except Exception:
            log.exception("call %d: bad response from %s", pending.call.id, invite.target.uri)
            if invite.state == "ringing":
                invite.state = "failed"
                self._branch_failed(pending, branch, invite.target, 502,
                                    "Bad Gateway (the answer cannot be used)")  # fmt: skip

    def _ring_event(
        self, pending: _Connect, branch: _Branch, invite: _Invite, event: Event
    ) -> None:
        if isinstance(event, TransactionTimeout | TransportError):
            if invite.state == "ringing":
                invite.state = "failed"
                self._stop_ring_timer(invite)
                status = 408 if isinstance(event, TransactionTimeout) else 503
                self._ring_failed(pending, branch, invite, status,
                                  "Request Timeout" if status == 408 else
                                  "Service Unavailable (the target cannot be reached)")  # fmt: skip
            return
        if not isinstance(event, ResponseReceived):
            return
        resp = event.response
        status = resp.status
        if status == 100:
            self._stop_ring_timer(invite)
            return
        if status < 200:
            self._stop_ring_timer(invite)
            invite.provisional = True
            if invite.state == "abandoned":
                self._cancel_invite(invite)
            elif invite.state == "ringing":
                self._ring_prack(invite, resp)
            return
        self._stop_ring_timer(invite)
        if status < 300:
            self._ring_answered(pending, branch, invite, resp)
            return
        if invite.state != "ringing":
            return  # the 487 to our CANCEL, or a late failure
        invite.state = "failed"
        self._ring_failed(pending, branch, invite, status, resp.reason)

    def _ring_prack(self, invite: _Invite, resp: Response) -> None:
        """PRACK a reliable provisional response (RFC 3262), as `_prack` does for leg B."""
        requires = {tag.strip().lower() for tag in resp.get_all("Require")}
        rseq = (resp.get("RSeq") or "").strip()
        if "100rel" not in requires or not rseq.isdigit() or not resp.to.tag:
            return
        if rseq in invite.pracked:
            return
        invite.pracked.add(rseq)
        dialog = Dialog.from_uac_response(invite.request, resp)
        prack = dialog.create_request(
            "PRACK", headers=[("RAck", f"{rseq} {invite.request.cseq.number} INVITE")]
        )
        prack.add("Via", self._via(invite.target.flow), first=True)  # type: ignore[attr-defined]
        self._send_request(prack, invite.target.flow, lambda event: None)  # type: ignore[attr-defined]

    def _ring_silent(self, pending: _Connect, branch: _Branch, invite: _Invite) -> None:
        """Not even a 100 Trying within the trunk's setup_timeout: its next server or trunk."""
        invite.timer = None
        if invite.state != "ringing" or pending.over:
            return
        invite.state = "abandoned"  # CANCELled if it wakes up (RFC 3261 §9.1)
        target = invite.target
        log.warning("call %d: %s sent nothing in %g s", pending.call.id, target.uri,
                    target.setup_timeout)  # fmt: skip
        self._ring_failed(pending, branch, invite, 408,
                          f"no response in {target.setup_timeout:g} s")  # fmt: skip

    def _ring_failed(
        self, pending: _Connect, branch: _Branch, invite: _Invite, status: int, reason: str
    ) -> None:
        call, target = pending.call, invite.target
        if target.kind == "trunk":
            self._release_trunk(call, target)  # type: ignore[attr-defined]
        if branch.fallbacks and not pending.over and (status == 408 or 500 <= status < 600):
            # The trunk failed, not the callee: the route's next one (issue #4).
            _ended(call, target, "callee", status, reason)
            self._ring(pending, branch, branch.fallbacks.pop(0), None)
            return
        self._branch_failed(pending, branch, target, status, reason)

    def _branch_failed(
        self, pending: _Connect, branch: _Branch, target: Target, status: int, reason: str
    ) -> None:
        call = pending.call
        _ended(call, target, "callee", status, reason)
        branch.failure = (status, reason)
        branch.leg.close()
        log.info("call %d: %s did not take the call: %d %s", call.id, target.uri, status, reason)
        if pending.over:
            return
        if all(b.failure is not None for b in pending.branches):
            pending.over = True
            worst = _worst([b.failure for b in pending.branches if b.failure is not None])
            if not pending.result.done():
                pending.result.set_result(NotConnected(*worst))

    def _stop_ring_timer(self, invite: _Invite) -> None:
        if invite.timer is not None:
            invite.timer.cancel()
            invite.timer = None

    # -- the end of a connect ------------------------------------------------------------------

    def _give_up(self, pending: _Connect, why: str) -> None:
        """Nobody is wanted any more: CANCEL what rings, hang up a late answer."""
        if pending.over:
            return
        pending.over = True
        for branch in pending.branches:
            if branch.failure is None:
                self._abandon(pending, branch, why)
        if not pending.result.done():
            pending.result.set_result(NotConnected(487, f"Request Terminated ({why})"))

    def _cancel_invite(self, invite: _Invite) -> None:
        if invite.cancel_sent:
            return
        invite.cancel_sent = True
        self._send_cancel(invite.request, invite.target.flow)  # type: ignore[attr-defined]

    def _hang_up_late(self, invite: _Invite, resp: Response) -> None:
        """A 2xx nobody wants (another target answered first, or it is over): ACK, BYE."""
        first = invite.state != "answered-late"
        if self._ack_and_bye(invite.request, resp, invite.target, "a late answer", bye=first):
            invite.state = "answered-late"

    def _ack_and_bye(
        self, request: Request, resp: Response, target: Target, what: str, bye: bool = True
    ) -> bool:
        """ACK a 2xx to `request` that the node does not use, and BYE it (`bye`
        False: a retransmitted 2xx, BYE already sent). False if the answer is too
        broken to make a dialog of (logged; nothing sent)."""
        try:
            dialog = Dialog.from_uac_response(request, resp)
        except (ParseError, ValueError):
            log.warning("%s from %s cannot be hung up", what, target.uri)
            return False
        flow = target.flow
        ack = dialog.create_ack(request.cseq.number)
        ack.add("Via", self._via(flow), first=True)  # type: ignore[attr-defined]
        self._send_stateless(bytes(ack), flow)  # type: ignore[attr-defined]
        if bye:
            self._bye(dialog, flow)  # type: ignore[attr-defined]
        return True

    def _ring_answered(
        self, pending: _Connect, branch: _Branch, invite: _Invite, resp: Response
    ) -> None:
        call = pending.call
        if invite.state == "answered":
            # The 2xx again (our ACK was lost): the same ACK again.
            if invite.ack is not None:
                self._send_stateless(invite.ack, invite.target.flow)  # type: ignore[attr-defined]
            return
        if invite.state != "ringing" or pending.over or not pending.wanted():
            self._hang_up_late(invite, resp)
            if invite.state == "ringing":
                invite.state = "answered-late"
            return
        invite.state = "answered"
        if pending.take is not None:
            problem = pending.take(branch, invite, resp)
        else:
            problem = self._bridge(pending, branch, invite, resp)
        if problem is not None:
            # Answered with something we cannot use: hang it up, as a failure of its own.
            self._hang_up_late(invite, resp)
            self._branch_failed(pending, branch, invite.target, 488, problem)
            return
        pending.over = True
        for other in pending.branches:
            if other is not branch and other.failure is None:
                self._abandon(pending, other, "another party answered first")
        target = invite.target
        connected = Connected(
            branch.name, target.kind, target.name, target.uri, time.time(),
            time.monotonic() - pending.started,
        )  # fmt: skip
        if call.app is not None and pending.take is None:
            call.app.connected = connected  # from now on an ordinary bridged call
        if not pending.result.done():
            pending.result.set_result(connected)

    def _abandon(self, pending: _Connect, branch: _Branch, why: str) -> None:
        invite = branch.invite
        if invite is not None and invite.state == "ringing":
            invite.state = "abandoned"
            self._stop_ring_timer(invite)
            if invite.provisional:
                self._cancel_invite(invite)
            _ended(pending.call, invite.target, "node", 487, f"cancelled: {why}")
            if invite.target.kind == "trunk":
                self._release_trunk(pending.call, invite.target)  # type: ignore[attr-defined]
        branch.failure = (487, why)
        branch.leg.close()

    def _bridge(
        self, pending: _Connect, branch: _Branch, invite: _Invite, resp: Response
    ) -> str | None:
        """Join leg A to the answered leg B; why it cannot be, or None."""
        call = pending.call
        handle, media = call.app, call.media
        assert handle is not None and media is not None
        body = resp.body
        if not body:
            return "Not Acceptable Here (the answer has no SDP)"
        a_leg = media.a
        a_browser = isinstance(a_leg, WebRtcLeg)
        try:
            plain = to_plain(body) if branch.browser and is_webrtc(body) else body
            theirs = to_plain(call.b_sdp) if is_webrtc(call.b_sdp) else call.b_sdp
            a_codecs = codecs_of(theirs)
            _, choice = answer_codecs(plain, a_codecs)
            remote = remote_transport(body) if branch.browser else None
        except SdpError as exc:
            return f"Not Acceptable Here ({exc})"
        if choice is None:
            return "Not Acceptable Here (no codec of the answer can reach the caller)"
        if not choice.passthrough and not (a_browser or branch.browser):
            return "Not Acceptable Here (the answer names a codec the caller does not speak)"
        try:
            dialog = Dialog.from_uac_response(invite.request, resp)
        except (ParseError, ValueError) as exc:
            return f"Bad Gateway (the answer cannot be used: {exc})"
        if not choice.passthrough:
            if a_browser:
                a_leg.transcode(choice)  # type: ignore[attr-defined]
            else:
                branch.leg.transcode(choice.reversed())  # type: ignore[attr-defined]
        flow = invite.target.flow
        ack = dialog.create_ack(invite.request.cseq.number)
        ack.add("Via", self._via(flow), first=True)  # type: ignore[attr-defined]
        call.b_ack = invite.ack = bytes(ack)
        self._send_stateless(call.b_ack, flow)  # type: ignore[attr-defined]
        # The channel lets go of leg A: the relay's stream takes over.
        channel: Channel | None = handle.channel
        if channel is not None:
            channel.close("connected")
        b_leg = branch.leg
        if remote is not None:
            b_leg.start(remote, offerer=True)  # type: ignore[attr-defined]
        else:
            _, where = anchor(body, self.media_address, b_leg.port)  # type: ignore[attr-defined]
            if where is not None:
                b_leg.expect(where, clock_rates(body))
        b_leg.sdp = body
        ours_to_a = call.b_sdp
        call.media = MediaSession(a_leg, b_leg)
        if a_browser or branch.browser:
            browsers = frozenset(
                ({"a"} if a_browser else set()) | ({"b"} if branch.browser else set())
            )
            state = WebRtcState(browsers)
            old = call.webrtc
            if old is not None:
                state.sent.update(old.sent)
            if a_browser and a_leg.remote is not None:  # type: ignore[attr-defined]
                state.remote["a"] = a_leg.remote  # type: ignore[attr-defined]
            if remote is not None:
                state.remote["b"] = remote
                state.sent["b"] = branch.offer
            state.sent.setdefault("a", ours_to_a)  # what a refresh offers the caller again
            state.offered = {"a": codecs_of(call.a_sdp), "b": codecs_of(branch.offer)}
            call.webrtc = state
        dtmf = self._dtmf_state(call)  # type: ignore[attr-defined]
        dtmf.offered["b"] = codecs_of(branch.offer)
        dtmf.offered.setdefault("a", codecs_of(call.a_sdp))
        target = invite.target
        call.target = target
        call.b_invite, call.b_txn, call.b_dialog = invite.request, invite.txn, dialog
        call.b_key = (invite.request.call_id, invite.request.from_.tag or "")
        self._by_leg[call.b_key] = call  # type: ignore[attr-defined]
        call.b_sdp = body
        call.origins["b"] = branch.origin
        call.allows_update["b"] = allows_update(resp)
        if self.session_expires:  # type: ignore[attr-defined]
            timer = session_timer.from_response(resp, call.b_expires)
            self._set_timer(call, "b", timer, timer.refresher == "uac")  # type: ignore[attr-defined]
        log.info("call %d: connected to %s %s", call.id, target.kind, target.uri)
        if self.recordings is not None:  # type: ignore[attr-defined]
            self.recordings.answered(call)  # type: ignore[attr-defined]
        self._dtmf_start(call)  # type: ignore[attr-defined]
        self._agents_update(call)  # type: ignore[attr-defined]
        return None


def _ended(call: Call, target: Target, by: str, status: int, reason: str) -> None:
    party = f"{target.kind} {call.caller.tenant}/{target.name} {target.uri}".rstrip()
    call.legs.append(LegEnd("b", party, by, status, reason))


def _worst(failures: list[tuple[int, str]]) -> tuple[int, str]:
    """The failure to report of several (RFC 3261 §16.7: a 6xx, then busy, then the first)."""
    if not failures:
        return 480, "Temporarily Unavailable"
    for wanted in (lambda s: s >= 600, lambda s: s == 486, lambda s: s != 487):
        found = next((f for f in failures if wanted(f[0])), None)
        if found is not None:
            return found
    return failures[0]


def _uri_target(text: str) -> list[Target] | Rejection:
    """A SIP URI named by the application: its host and port, UDP unless it says."""
    try:
        uri = parse_uri(text.strip())
    except ParseError as exc:
        return Rejection(400, f"Bad Request (the target {text[:64]!r} is no SIP URI: {exc})")
    if not isinstance(uri, SipURI) or not uri.host:
        return Rejection(400, f"Bad Request (the target {text[:64]!r} is no SIP URI)")
    transport = (uri.params.get("transport") or "udp").lower() if uri.params else "udp"
    if transport not in ("udp", "tcp"):
        return Rejection(
            400, f"Bad Request (connect reaches SIP URIs over udp or tcp, not {transport})"
        )
    host = uri.host.strip("[]")
    port = uri.port or 5060
    return [Target(str(uri), Flow(transport, (host, port)), "uri", uri.user or host)]
