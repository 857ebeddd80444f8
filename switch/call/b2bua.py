"""Calls: two legs, one dialog each, joined by the node (a back-to-back UA).

Leg A is the dialog the caller made with us (we are its UAS); leg B the one
we make with the target (we are its UAC). Each leg has its own Call-ID, tags
and CSeq space: nothing that names one dialog is copied into the other.

The call flow is carried leg to leg: provisional responses (with early
media, PRACK where a trunk requires it), the answer, failures (with
failover to a route's next trunk), CANCEL before the answer (and the race
where the answer crosses it), BYE from either side, re-INVITE and UPDATE,
blind and attended transfers. Every SDP is rewritten so that media flows
through the node's RTP relay (`switch.media.relay`): a transfer then only
re-points a relay leg, and nobody else has to be re-INVITEd.

A transfer moves legs: after one by the caller's side, "leg A" is the new
party (a dialog we made), so code that needs the caller's INVITE uses
`a_invite` only before the answer, and `a_dialog`/`a_flow`/`a_key` after.

`Calls` is this module plus three parts mixed in, one concern each:
`attempts` (trunk codecs, setup and ring timeouts), `transfer` (REFER,
Replaces) and `refresh` (session timers, our own re-INVITEs). The data of a
call is in `model`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from ..media.relay import LegQuality, PortPool, anchor, clock_rates
from ..registrar.guard import Caller
from ..sip import session_timer
from ..sip.address import parse_address
from ..sip.dialog import Dialog, DialogError
from ..sip.errors import ParseError
from ..sip.flow import Flow
from ..sip.headers import quote
from ..sip.message import Request, Response, make_response
from ..sip.session_timer import SessionTimer, TooSmall
from ..sip.transaction import (
    AckReceived,
    AckTimeout,
    CancelReceived,
    ClientTransaction,
    Event,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponse,
    TransactionTimeout,
    TransportError,
    new_branch,
)
from ..sip.uri import parse_uri
from .agent_calls import AgentCalls
from .app import Apps
from .app_calls import AppCalls
from .attempts import Attempts
from .caller_id import Identity, presented
from .connect import AppConnects
from .dtmf_calls import DtmfCalls
from .model import Call, Hangup, LegEnd, PendingAck
from .originate import Originates, Placed
from .recording import NoSuchCall, NotRecorded, Recordings, RecordingStatus
from .refresh import SessionRefresh, allows_update
from .routing import App, Rejection, Router, Target
from .supervise import Supervision, Supervisions
from .transfer import Transfers
from .webrtc_legs import WebRtcCalls

log = logging.getLogger("switch.call")


class Calls(
    Attempts,
    Transfers,
    SessionRefresh,
    WebRtcCalls,
    DtmfCalls,
    AppCalls,
    AppConnects,
    Supervisions,
    AgentCalls,
    Originates,
):
    """The call layer's TU: new INVITEs, in-dialog requests, CANCEL and B's responses."""

    def __init__(
        self,
        router: Router,
        send_request: Callable[..., ClientTransaction],
        send_response: Callable[[Response], None],
        send_stateless: Callable[[bytes, Flow], None],
        sent_by: Callable[[Flow], str],
        server: str = "switch",
        media: PortPool | None = None,
        media_address: str = "",
        on_end: Callable[[Call], None] | None = None,
        session_expires: int = 0,
        min_se: int = session_timer.MIN_SE_FLOOR,
        redirects: str = "report",
        recordings: Recordings | None = None,
        apps: Apps | None = None,
    ) -> None:
        self.router = router
        self.recordings = recordings  # who is recorded, and their files (issue #5)
        self.apps = apps or {}  # name -> application, for calls the node answers itself
        # RFC 4028 session timers: the interval we ask for (0 = off) and the
        # shortest we accept.
        self.session_expires = session_expires
        self.min_se = min_se
        self.redirects = redirects  # 3xx from a target: "report" to the caller or "follow"
        self.on_end = on_end  # called once per call when it is over (records, CTI)
        self.media = media
        self.media_address = media_address
        self._send_request = send_request
        self._send_response = send_response
        self._send_stateless = send_stateless
        self._sent_by = sent_by
        self.server = server
        # (Call-ID, our tag) of each leg -> its call: how in-dialog requests
        # and stray responses find their call.
        self._by_leg: dict[tuple[str, str], Call] = {}
        self._by_invite: dict[ServerTransaction, Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._placed_calls: dict[int, Placed] = {}  # calls the node placed (switch.call.originate)
        # Calls up per (tenant, trunk), both directions, for max_calls.
        self.trunk_calls: Counter[tuple[str, str]] = Counter()
        # Agents on calls (switch.call.agent_calls): the node's listener, and who was told.
        self.on_agent_call = None
        self._agents_on = {}
        self._agents_gone = {}
        # Supervisors on calls (switch.call.supervise): by Call.id, and their dialogs.
        self.supervising: dict[int, list[Supervision]] = {}
        self._supervisor_legs: dict[tuple[str, str], Supervision] = {}

    def __len__(self) -> int:
        return len(self._by_invite)

    # -- a new call ------------------------------------------------------------------

    def invite(self, event: RequestReceived, caller: Caller) -> None:
        """A new INVITE from a caller the guard let through."""
        req = event.request
        try:
            # caller.did: a carrier we register to puts the number in To.
            dialled = caller.did or (req.uri.user if hasattr(req.uri, "user") else None)
        except ParseError:
            dialled = None
        call = Call(caller, dialled or "", req, event.flow, event.transaction, a_sdp=req.body)
        call.b_expires = self.session_expires
        self._by_invite[event.transaction] = call
        # Refused at the door: still a call, with a record (who tried, why not).
        refusal = self._refusal(call)
        if refusal is not None:
            status, reason, headers = refusal
            self._end_a(call, status, reason, who="node", headers=headers)
            return
        if caller.kind == "trunk":
            self._take_trunk(call, caller.name)
            call.a_trunk = (caller.tenant, caller.name)
        call.a_key = (req.call_id, call.a_tag)
        self._by_leg[call.a_key] = call
        self._spawn(self._start(call))

    def _refusal(self, call: Call) -> tuple[int, str, list[tuple[str, object]]] | None:
        """Why a new INVITE is refused before routing, if it is."""
        req, caller = call.a_invite, call.caller
        if not call.dialled:
            return 404, "Not Found (the Request-URI names no number)", []
        if (req.call_id, req.from_.tag or "") in self._by_leg:
            # Our own leg B come back (a trunk or binding that points at us):
            # its Call-ID and From tag are ours. Max-Forwards would end the
            # loop too, but only after 70 calls' worth of ports.
            return 482, "Loop Detected (this call came back to the node that sent it)", []
        if caller.kind == "trunk" and self._trunk_full(caller.tenant, caller.name):
            return 503, "Service Unavailable (the trunk is at its call limit)", []
        if self.session_expires:
            verdict = session_timer.answer(req, self.session_expires, self.min_se)
            if isinstance(verdict, TooSmall):
                return 422, "Session Interval Too Small", [("Min-SE", str(verdict.min_se))]
        return None

    async def _start(self, call: Call) -> None:
        try:
            await self._route(call)
        except Exception:
            # A bug must not leave the caller ringing for ever.
            log.exception("call %d failed to start", call.id)
            if call.state in ("routing", "calling") and not call.cancelled:
                self._end_a(call, 500, "Server Internal Error", who="node")

    async def _route(self, call: Call) -> None:
        try:
            target = await self.router.route(call.caller, call.dialled)
        except Exception:
            log.exception("routing call %d failed", call.id)
            target = Rejection(500, "Server Internal Error (routing failed)")
        if call.cancelled:
            return
        if isinstance(target, Rejection):
            self._end_a(call, target.status, target.reason, who="node")
            return
        if isinstance(target, App):
            await self._answer_app(call, target)
            return
        target = self._codec_targets(call, target)
        if isinstance(target, Rejection):
            self._end_a(call, target.status, target.reason, who="node")
            return
        refusal = self._webrtc_refusal(call)
        if refusal is not None:
            self._end_a(call, 488, refusal, who="node")
            return
        max_forwards = call.a_invite.max_forwards
        if max_forwards is not None and max_forwards <= 0:
            self._end_a(call, 483, "Too Many Hops", who="node")
            return
        call.fallbacks = list(target.fallbacks)
        if self.media is not None:
            # Also for a late offer (no SDP yet): the offer in the callee's
            # answer is anchored on these ports.
            try:
                call.media = await self._media_session(call, target)
            except OSError as exc:
                log.warning("call %d: no media ports: %s", call.id, exc)
                self._end_a(call, 503, "Service Unavailable (no free media ports)", who="node")
                return
            if call.cancelled:
                self._forget(call)
                return
            if call.a_invite.body:
                body = self._restricted_for_browser(call, target, call.a_invite.body)
                call.offer_b = self._anchor(call, body, toward_a=False, offer=True)
        self._dial(call, target)

    def _dial(self, call: Call, target: Target) -> None:
        """Send leg B's INVITE to `target`, or to the first fallback with room."""
        while target.kind == "trunk" and self._trunk_full(call.caller.tenant, target.name):
            if not call.fallbacks:
                self._end_a(call, 503, "Service Unavailable (the trunk is at its call limit)",
                            who="node")  # fmt: skip
                return
            target = call.fallbacks.pop(0)
        if target.kind == "trunk":
            self._take_trunk(call, target.name)
        call.target = target
        call.state = "calling"
        call.b_provisional = False
        call.b_dialog = None
        call.b_ack = None
        call.pracked = set()
        call.b_invite = self._b_invite(call, target, call.a_invite.max_forwards)
        call.b_txn = self._send_request(
            call.b_invite, target.flow, lambda event: self._on_b(call, event)
        )
        call.b_key = (call.b_invite.call_id, call.b_invite.from_.tag or "")
        self._by_leg[call.b_key] = call
        log.info(
            "call %d: %s %s/%s -> %s %s",
            call.id,
            call.caller.kind,
            call.caller.tenant,
            call.caller.name,
            target.kind,
            target.uri,
        )
        self._arm_b_timer(call, "setup", target.setup_timeout)

    def _b_invite(
        self,
        call: Call,
        target: Target,
        max_forwards: int | None,
        caller_id: str | None = None,
    ) -> Request:
        a = call.a_invite
        sent_by = self._sent_by(target.flow)
        who = self._presented(call, target, caller_id)
        hidden = who.withheld
        shown = "sip:anonymous@anonymous.invalid" if hidden else f"sip:{who.number}@{sent_by}"
        name = "Anonymous" if hidden else who.name
        identity: list[tuple[str, object]] = []
        if self._trusted(call.caller.tenant, target):
            # RFC 3325: a trusted carrier gets the real identity, and the
            # caller's wish to hide it (Privacy: id) to honour.
            identity.append(("P-Asserted-Identity", f"<sip:{who.number}@{sent_by}>"))
            if hidden:
                identity.append(("Privacy", "id"))
        headers: list[tuple[str, object]] = [
            ("Via", f"SIP/2.0/{target.flow.via_transport} {sent_by};branch={new_branch()};rport"),
            ("Max-Forwards", str(70 if max_forwards is None else min(70, max_forwards - 1))),
            ("From", f"{quote(name) + ' ' if name else ''}<{shown}>;tag={secrets.token_hex(6)}"),
            *identity,
            ("To", f"<{target.uri}>"),
            ("Call-ID", secrets.token_hex(16)),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:switch@{sent_by}>"),
            ("Supported", "100rel"),
            ("User-Agent", self.server),
        ]
        if call.b_expires:
            headers += session_timer.request_headers(call.b_expires, self.min_se)
        req = Request("INVITE", target.uri, headers)
        body = call.offer_b if call.offer_b is not None else a.body
        if not self._to_browser(call):  # (a browser's offer was cut before translation)
            body = self._offer_to(call, target, body) or body
        body = self._dtmf_offer_to(call, target, body)
        req.set_body(body, a.content_type if body else None)
        return req

    def _presented(self, call: Call, target: Target, explicit: str | None) -> Identity:
        """Who leg B sees calling: see `caller_id.presented`."""
        a = call.a_invite
        privacy = "id" in {p.strip().lower() for v in a.get_all("Privacy") for p in v.split(";")}
        if explicit:
            return Identity(explicit, "", privacy)
        preferred = None
        if call.caller.kind == "agent" and a.get("P-Preferred-Identity"):
            try:
                preferred = getattr(parse_address(a.get("P-Preferred-Identity")).uri, "user", None)
            except ParseError:
                preferred = None  # an unreadable wish is no wish
        try:
            name = a.from_.display or ""
        except ParseError:
            name = ""
        tenant = self.router.config.tenants[call.caller.tenant]
        return presented(
            tenant, call.caller, target, self._caller_id(call), name, preferred, privacy
        )

    def _caller_id(self, call: Call) -> str | None:
        """Who is calling: a trusted trunk's P-Asserted-Identity, else the From user."""
        a = call.a_invite
        if call.caller.kind == "trunk" and self._trusted_name(call.caller.tenant, call.caller.name):
            for text in a.get_all("P-Asserted-Identity"):
                try:
                    user = getattr(parse_address(text).uri, "user", None)
                except ParseError:
                    continue  # an unreadable identity is no identity
                if user:
                    return user
        try:
            return getattr(a.from_.uri, "user", None)
        except ParseError:
            return None

    def caller_number(self, call: Call) -> str:
        """Who called, for the record (ANI): an agent's extension, or the trunk
        caller's number (a trusted trunk's P-Asserted-Identity first)."""
        return self._number_of(call, True)

    def _number_of(self, call: Call, a_side: bool) -> str:
        """The number of the party on one side: an agent's extension, or the
        number a trunk side called from or was called at."""
        if a_side:
            return (
                call.caller.name
                if call.caller.kind == "agent"
                else (self._caller_id(call) or "anonymous")
            )
        target = call.target
        if target is None:
            return "anonymous"
        if target.kind == "agent":
            return target.name
        try:
            return getattr(parse_uri(target.uri), "user", None) or "anonymous"
        except ParseError:
            return "anonymous"

    def _trusted(self, tenant: str, target: Target) -> bool:
        return target.kind == "trunk" and self._trusted_name(tenant, target.name)

    def _trusted_name(self, tenant: str, name: str) -> bool:
        trunk = self.router.config.tenants[tenant].trunks.get(name)
        return trunk is not None and trunk.trusted

    def _anchor(self, call: Call, body: bytes, toward_a: bool, offer: bool) -> bytes:
        """`body` (an offer or answer) as the other leg should see it: media via our ports.

        `toward_a`: the SDP came from B and goes to A. Where the sender
        said it listens becomes that leg's media address until it latches.
        `offer`: it is an offer (else an answer); a browser's leg is shown
        WebRTC SDP, the other leg plain RTP (`switch.call.webrtc_legs`).
        """
        media = call.media
        if media is None or not body:
            return body
        mine, theirs = (media.a, media.b) if toward_a else (media.b, media.a)
        origin = call.origins["a" if toward_a else "b"]
        theirs.sdp = body  # (read for the codec's name when its quality is reported)
        sent = self._webrtc_sdp(call, body, toward_a, offer)
        sent = self._dtmf_sdp(call, body, sent, toward_a, offer)
        anchored, remote = anchor(sent, self.media_address, mine.port, origin)
        if remote is not None:
            theirs.expect(remote, clock_rates(body))
        return anchored

    def _expect(self, call: Call, body: bytes, side: str) -> None:
        """Leg `side` sent `body`: where its media comes from now, and what."""
        media = call.media
        if media is None or not body:
            return
        leg = media.a if side == "a" else media.b
        leg.sdp = body  # (read for the codec's name when its quality is reported)
        _, remote = anchor(body, self.media_address, leg.port)
        if remote is not None:
            leg.expect(remote, clock_rates(body))

    # -- leg B's responses --------------------------------------------------------------

    def _on_b(self, call: Call, event: Event) -> None:
        if getattr(event, "transaction", None) in call.abandoned:
            self._abandoned(call, event)
            return
        self._b_timers(call, event)
        try:
            self._b_event(call, event)
        except Exception:
            # A response we cannot use (a 200 without Contact, say) must not
            # leave the caller ringing: 502, as a gateway does.
            log.exception("call %d: bad response from %s", call.id, call.target)
            if call.state in ("routing", "calling") and not call.cancelled:
                self._end_a(call, 502, "Bad Gateway (the callee's answer cannot be used)",
                            who="callee")  # fmt: skip

    def _b_event(self, call: Call, event: Event) -> None:
        final = True
        if isinstance(event, ResponseReceived):
            self._b_response(call, event.response)
            final = event.response.status >= 200
        elif isinstance(event, TransactionTimeout):
            self._b_failed(call, 408, "Request Timeout")
        elif isinstance(event, TransportError):
            self._b_failed(call, 503, "Service Unavailable (the target cannot be reached)")
        if final and call.state == "ended":
            self._forget(call)  # B's INVITE is over and so is the call

    def _b_response(self, call: Call, resp: Response) -> None:
        status = resp.status
        if status == 100:
            return
        if status < 200:
            call.b_provisional = True
            if resp.to.tag and call.b_invite is not None:
                if call.b_dialog is None or call.b_dialog.id.remote_tag != resp.to.tag:
                    call.b_dialog = Dialog.from_uac_response(call.b_invite, resp)
                else:
                    call.b_dialog.receive_response(resp)
                self._prack(call, resp)
            if call.cancelled:
                self._cancel_b(call)
            elif call.state == "calling":
                self._relay_to_a(call, resp)
            return
        if status < 300:
            if call.state == "answered" and call.b_dialog is not None:
                # The 2xx again (our ACK was lost): the same ACK again, nothing more.
                self._ack_b(call, call.b_dialog)
                return
            self._b_answered(call, resp)
            return
        if call.cancelled or call.state == "ended":
            return  # the 487 to our CANCEL, or a late failure
        if status == 422 and call.b_expires and call.target is not None:
            # RFC 4028 §7.4: ask again with the callee's Min-SE, once.
            wanted = session_timer.min_se(resp)
            if wanted > call.b_expires:
                self._leg_end(call, "b", "callee", status, resp.reason)
                call.b_expires = wanted
                self._redial(call, call.target)
                return
        if 300 <= status < 400:
            self._leg_end(call, "b", "callee", status, resp.reason)
            self._redirected(call, resp)
            return
        self._b_failed(call, status, resp.reason)

    def _redial(self, call: Call, target: Target) -> None:
        """Leg B again, to `target`: a new INVITE (new Call-ID, tags, CSeq)."""
        assert call.target is not None
        self._by_leg.pop(call.b_key, None)
        self._release_trunk(call, call.target)
        self._dial(call, target)

    def _redirected(self, call: Call, resp: Response) -> None:
        """A 3xx (RFC 3261 §8.1.3.4): followed or reported, as `[calls] redirects` says.

        Following routes the new number as if the caller had dialled it, with
        the caller's own permissions: a redirect never reaches what the
        caller could not call itself (toll fraud through 302 is a classic).
        """
        contacts = resp.get_all("Contact")
        dialled = None
        for text in contacts:
            try:
                dialled = getattr(parse_address(text).uri, "user", None)
            except ParseError:
                continue
            if dialled:
                break
        if self.redirects != "follow" or not dialled or call.redirects >= 3:
            headers = [("Contact", text) for text in contacts]
            self._end_a(call, resp.status, resp.reason, who="callee", headers=headers)
            return
        call.redirects += 1
        log.info("call %d: redirected (%d) to %s", call.id, resp.status, dialled)
        self._spawn(self._follow(call, dialled))

    async def _follow(self, call: Call, dialled: str) -> None:
        target = await self.router.route(call.caller, dialled)
        if call.cancelled or call.state != "calling":
            return
        if isinstance(target, Rejection):
            self._end_a(call, target.status, target.reason, who="node")
            return
        call.fallbacks = list(target.fallbacks)
        self._redial(call, target)

    def _b_answered(self, call: Call, resp: Response) -> None:
        assert call.b_invite is not None and call.target is not None
        dialog = Dialog.from_uac_response(call.b_invite, resp)
        call.b_dialog = dialog
        a = call.a_invite
        late_offer = not a.body and bool(resp.body)
        if call.cancelled or call.state == "ended" or not late_offer:
            self._ack_b(call, dialog)
        if call.cancelled or call.state == "ended":
            # The answer crossed our CANCEL: the call is over on A's side.
            self._bye(dialog, call.target.flow)
            self._leg_end(call, "b", "node", 200, "answered after the caller gave up")
            self._forget(call)
            return
        if late_offer:
            # The callee made the offer: our ACK to it carries the caller's
            # answer, which comes in the caller's ACK (RFC 3264 §2).
            call.ack_wait = PendingAck(dialog, call.b_invite.cseq.number, call.target.flow, False)
        call.state = "answered"
        call.answered_at = time.time()
        call.b_sdp = resp.body
        contact = f"<sip:switch@{self._sent_by(call.a_flow)}>"
        headers = [("Contact", contact), ("Server", self.server)]
        if self.session_expires:
            b_timer = session_timer.from_response(resp, call.b_expires)
            a_timer = session_timer.answer(a, self.session_expires, self.min_se)
            if isinstance(a_timer, SessionTimer):
                headers += session_timer.response_headers(a_timer, a)
                self._set_timer(call, "a", a_timer, a_timer.refresher == "uas")
            self._set_timer(call, "b", b_timer, b_timer.refresher == "uac")
        call.allows_update = {"a": allows_update(a), "b": allows_update(resp)}
        answer = make_response(
            a, resp.status, resp.reason, to_tag=call.a_tag, headers=headers,
            body=self._anchor(call, resp.body, toward_a=True, offer=late_offer),
        )  # fmt: skip
        if resp.body and resp.content_type:
            answer.set("Content-Type", resp.content_type)
        call.a_dialog = Dialog.from_uas_request(a, call.a_tag, parse_uri(contact[1:-1]))
        call.a_dialog.response_sent(answer)
        self._send_response(answer)
        log.info("call %d: answered", call.id)
        if self.recordings is not None:
            self.recordings.answered(call)
        self._dtmf_start(call)
        self._agents_update(call)

    def _prack(self, call: Call, resp: Response) -> None:
        """Acknowledge a reliable provisional response (RFC 3262 §7.2).

        Trunks that require 100rel resend their 18x until a PRACK comes;
        the caller's leg does not see it: the node answers for itself.
        """
        requires = {tag.strip().lower() for tag in resp.get_all("Require")}
        rseq = (resp.get("RSeq") or "").strip()
        if "100rel" not in requires or not rseq.isdigit() or call.b_dialog is None:
            return
        if rseq in call.pracked:
            return  # a retransmission of one already acknowledged
        call.pracked.add(rseq)
        assert call.target is not None and call.b_invite is not None
        prack = call.b_dialog.create_request(
            "PRACK", headers=[("RAck", f"{rseq} {call.b_invite.cseq.number} INVITE")]
        )
        prack.add("Via", self._via(call.target.flow), first=True)
        self._send_request(prack, call.target.flow, lambda event: None)

    def _ack_b(self, call: Call, dialog: Dialog) -> None:
        if call.b_ack is None and call.ack_wait is not None:
            return  # a late offer: the ACK goes when the caller's answer comes
        if call.b_invite is None or call.target is None:
            return  # leg B came from another call (attended transfer): not our INVITE
        if call.b_ack is None:
            ack = dialog.create_ack(call.b_invite.cseq.number)
            ack.add("Via", self._via(call.target.flow), first=True)
            call.b_ack = bytes(ack)
        # A retransmitted 2xx gets the very same ACK again (RFC 3261 §13.2.2.4).
        self._send_stateless(call.b_ack, call.target.flow)

    def _relay_to_a(self, call: Call, resp: Response) -> None:
        relayed = make_response(
            call.a_invite, resp.status, resp.reason, to_tag=call.a_tag,
            headers=[("Contact", f"<sip:switch@{self._sent_by(call.a_flow)}>")],
            body=self._anchor(call, resp.body, toward_a=True, offer=not call.a_invite.body),
        )  # fmt: skip
        if resp.body and resp.content_type:
            relayed.set("Content-Type", resp.content_type)
        self._send_response(relayed)

    def _b_failed(self, call: Call, status: int, reason: str) -> None:
        if call.state in ("answered", "ended") or call.cancelled:
            return
        self._leg_end(call, "b", "callee", status, reason)
        if call.fallbacks and (status == 408 or 500 <= status < 600):
            # The trunk failed, not the callee: try the next one (issue #4).
            failed = call.target
            assert failed is not None and call.b_invite is not None
            log.info("call %d: %s answered %d, trying the next trunk", call.id, failed.name, status)
            self._by_leg.pop(call.b_key, None)
            self._release_trunk(call, failed)
            self._dial(call, call.fallbacks.pop(0))
            return
        self._end_a(call, status, reason, who="callee")

    # -- from leg A -------------------------------------------------------------------

    def cancel(self, event: CancelReceived) -> None:
        """The caller gave up before the answer (the CANCEL is already answered 200)."""
        call = self._by_invite.get(event.invite_transaction) if event.invite_transaction else None
        if call is None or call.state in ("answered", "ended") or call.cancelled:
            return
        call.cancelled = True
        self._answer(call.a_invite, 487, "Request Terminated", to_tag=call.a_tag)
        reason_header = event.request.get("Reason")
        call.hangup = Hangup("caller", 487, "cancelled before answer", reason_header)
        self._leg_end(call, "a", "caller", 487, "cancelled before answer", reason_header)
        if call.b_txn is not None:
            self._leg_end(call, "b", "node", 487, "cancelled: the caller gave up")
        call.state = "ended"
        log.info("call %d: cancelled by the caller", call.id)
        # RFC 3261 §9.1: a CANCEL only after a provisional response; until
        # then it waits (see _b_response), and an answer gets ACK and BYE.
        if call.b_provisional:
            self._cancel_b(call)
        elif call.b_txn is None:
            self._forget(call)  # still routing: nothing went out

    def _cancel_b(self, call: Call) -> None:
        invite = call.b_invite
        if invite is None or call.target is None or call.cancel_sent:
            return
        call.cancel_sent = True
        self._send_cancel(invite, call.target.flow)

    def _send_cancel(self, invite: Request, flow: Flow) -> None:
        cancel = Request(
            "CANCEL",
            invite.uri_text,
            [
                ("Via", invite.get("Via")),
                ("Max-Forwards", "70"),
                ("From", invite.get("From")),
                ("To", invite.get("To")),
                ("Call-ID", invite.call_id),
                ("CSeq", f"{invite.cseq.number} CANCEL"),
                ("Content-Length", "0"),
            ],
        )
        self._send_request(cancel, flow, lambda event: None)

    def ack(self, event: AckReceived) -> None:
        """An ACK to our 2xx. Usually nothing to do (the other leg was ACKed
        on its answer); after a late offer it carries the answer we owe the
        other leg in our ACK."""
        req = event.request
        key = (req.call_id, req.to.tag or "")
        call = self._by_leg.get(key)
        pending = call.ack_wait if call is not None else None
        if call is None or pending is None or pending.to_a == (key == call.a_key):
            return
        call.ack_wait = None
        ack = pending.dialog.create_ack(pending.cseq)
        ack.add("Via", self._via(pending.flow), first=True)
        if req.body:
            if pending.to_a:
                call.b_sdp = req.body
            else:
                call.a_sdp = req.body
            body = self._anchor(call, req.body, toward_a=pending.to_a, offer=False)
            ack.set_body(body, req.content_type or "application/sdp")
        data = bytes(ack)
        if not pending.to_a and pending.dialog is call.b_dialog and call.b_ack is None:
            call.b_ack = data  # the ACK to B's 2xx, resent if that 2xx comes again
        self._send_stateless(data, pending.flow)
        if req.body:
            self._dtmf_start(call)  # the late offer's answer: both legs' SDP known
        if not req.body:
            # RFC 3264 §2: an offer in a 2xx must be answered in the ACK.
            log.warning("call %d: the offer was not answered in the ACK, hanging up", call.id)
            self._hang_up(call, "offer not answered in the ACK")

    def ack_timeout(self, event: AckTimeout) -> None:
        """No ACK to the 2xx we sent the caller (RFC 3261 §13.3.1.4): end the call."""
        call = self._by_invite.get(event.transaction)
        last = event.transaction.last_response
        if call is None or call.state != "answered" or last is None or last.status >= 300:
            return
        log.warning("call %d: the caller never acknowledged the answer, hanging up", call.id)
        self._hang_up(call, "no ACK from the caller")

    def in_dialog(self, event: RequestReceived) -> None:
        """BYE, or another request inside one of our legs' dialogs."""
        req = event.request
        call = self._by_leg.get((req.call_id, req.to.tag or ""))
        if call is None:
            if not self._supervisor_request(req):
                self._answer(req, 481, "Call/Transaction Does Not Exist")
            return
        from_a = (req.call_id, req.to.tag or "") == call.a_key
        if req.method == "BYE":
            self._answer(req, 200, "OK")
            other = call.b_dialog if from_a else call.a_dialog
            flow = call.target.flow if from_a and call.target else call.a_flow
            if other is not None and call.state == "answered":
                self._bye(other, flow)
            who = "caller" if from_a else "callee"
            call.hangup = Hangup(who, 200, "BYE", req.get("Reason"))
            self._leg_end(call, "a" if from_a else "b", who, 200, "BYE", req.get("Reason"))
            if other is not None and call.state == "answered":
                self._leg_end(call, "b" if from_a else "a", "node", 200, f"BYE from the {who}")
            call.state = "ended"
            log.info("call %d: %s hung up", call.id, who)
            self._forget(call)
            return
        if req.method == "OPTIONS":
            self._answer(req, 200, "OK")
            return
        # (An UPDATE without SDP is a session refresh, answered as in any call.)
        if call.app is not None and not call.app.connected and (req.method != "UPDATE" or req.body):
            self._app_request(call, req)
            return
        if req.method == "UPDATE" and not req.body:
            self._refresh_received(call, req, from_a)
            return
        if req.method in ("INVITE", "UPDATE"):
            self._relay_offer(call, req, from_a)
            return
        if req.method == "REFER":
            self._transfer(call, req, from_a)
            return
        if req.method == "INFO" and self._dtmf_info(call, req, from_a):
            return
        if req.method in ("INFO", "MESSAGE"):
            self._relay_request(call, req, from_a)
            return
        self._answer(req, 501, f"Not Implemented ({req.method} inside a call)")

    def _relay_request(self, call: Call, req: Request, from_a: bool) -> None:
        """INFO (DTMF from phones that send it so, RFC 6086) or MESSAGE inside
        a call: to the other leg, and its answer back."""
        here, there = (call.a_dialog, call.b_dialog) if from_a else (call.b_dialog, call.a_dialog)
        flow = (call.target.flow if call.target else call.a_flow) if from_a else call.a_flow
        if call.state != "answered" or here is None or there is None:
            self._answer(
                req, 481, f"Call/Transaction Does Not Exist ({req.method} before the answer)"
            )
            return
        try:
            here.receive_request(req)
        except DialogError as exc:
            self._answer(req, exc.status, exc.reason)
            return
        headers = [(name, value) for name in ("Info-Package",) if (value := req.get(name))]
        out = there.create_request(
            req.method,
            headers=headers,
            body=req.body,
            content_type=req.content_type if req.body else None,
        )
        out.add("Via", self._via(flow), first=True)
        self._send_request(out, flow, lambda event: self._relay_answered(req, event))

    def _relay_answered(self, req: Request, event: Event) -> None:
        if isinstance(event, ResponseReceived):
            resp = event.response
            if resp.status < 200:
                return
            reply = make_response(req, resp.status, resp.reason, body=resp.body,
                                  headers=[("Server", self.server)])  # fmt: skip
            if resp.body and resp.content_type:
                reply.set("Content-Type", resp.content_type)
        elif isinstance(event, TransactionTimeout | TransportError):
            reply = make_response(req, 408 if isinstance(event, TransactionTimeout) else 503)
        else:
            return
        self._send_response(reply)

    # -- re-INVITE and UPDATE: hold, resume, codec changes -------------------------------

    def _relay_offer(self, call: Call, req: Request, from_a: bool) -> None:
        """Carry a new offer (RFC 3264 §8) to the other leg, and its answer back."""
        here, there = (call.a_dialog, call.b_dialog) if from_a else (call.b_dialog, call.a_dialog)
        flow = (call.target.flow if call.target else call.a_flow) if from_a else call.a_flow
        if call.state != "answered" or here is None or there is None:
            self._answer(req, 501, f"Not Implemented ({req.method} before the answer)")
            return
        if call.pending_offer or call.offering:
            # RFC 3261 §14.2: one offer at a time; the other side retries.
            self._answer(req, 491, "Request Pending")
            return
        try:
            here.receive_request(req)
        except DialogError as exc:
            self._answer(req, exc.status, exc.reason)
            return
        body = req.body
        if body and call.target is not None:
            # A new offer keeps to the trunks' codecs, as the first one did.
            body = self._offer_to(call, call.target, body)
            if body is None:
                self._answer(req, 488, "Not Acceptable Here (no codec of the offer is allowed "
                             "by the trunk)")  # fmt: skip
                return
        if req.body:
            if from_a:
                call.a_sdp = req.body
            else:
                call.b_sdp = req.body
            call.holds.offered("a" if from_a else "b", req.body, time.time())
        there_side = "b" if from_a else "a"
        headers = []
        if there_side in call.timer:
            # The relayed offer refreshes the other leg's session too.
            interval = call.timer[there_side][0].interval
            headers = session_timer.request_headers(interval, self.min_se)
        out = there.create_request(
            req.method,
            headers=headers,
            body=self._anchor(call, body, toward_a=not from_a, offer=True),
            content_type=req.content_type if req.body else None,
        )
        out.add("Via", self._via(flow), first=True)
        call.pending_offer = True
        self._send_request(
            out,
            flow,
            lambda event: self._offer_answered(call, req, out, here, there, flow, from_a, event),
        )

    def _offer_answered(
        self,
        call: Call,
        req: Request,
        out: Request,
        here: Dialog,
        there: Dialog,
        flow: Flow,
        from_a: bool,
        event: Event,
    ) -> None:
        if isinstance(event, ResponseReceived):
            resp = event.response
            if resp.status < 200:
                return
            if not call.pending_offer and out.method == "INVITE" and resp.status < 300:
                # The 2xx again (our ACK was lost): ACK again, answer nothing.
                if call.ack_wait is None or call.ack_wait.dialog is not there:
                    ack = there.create_ack(out.cseq.number)
                    ack.add("Via", self._via(flow), first=True)
                    self._send_stateless(bytes(ack), flow)
                return
            there.receive_response(resp)
            if out.method == "INVITE" and resp.status < 300:
                if not out.body and resp.body:
                    # A re-INVITE without SDP: the answer comes in the ACK.
                    call.ack_wait = PendingAck(there, out.cseq.number, flow, not from_a)
                else:
                    ack = there.create_ack(out.cseq.number)
                    ack.add("Via", self._via(flow), first=True)
                    self._send_stateless(bytes(ack), flow)
            headers = [("Server", self.server)]
            if here.local_target is not None and resp.status < 300:
                headers.append(("Contact", f"<{here.local_target}>"))  # a target refresh
            if resp.status < 300 and self.session_expires:
                headers += self._refreshed_by_them(call, req, "a" if from_a else "b")
                there_side = "b" if from_a else "a"
                if there_side in call.timer:
                    asked = call.timer[there_side][0].interval
                    timer = session_timer.from_response(resp, asked)
                    self._set_timer(call, there_side, timer, timer.refresher == "uac")
            if resp.body and resp.status < 300:
                if from_a:
                    call.b_sdp = resp.body
                else:
                    call.a_sdp = resp.body
            body = self._anchor(call, resp.body, toward_a=from_a, offer=False)
            reply = make_response(req, resp.status, resp.reason, body=body, headers=headers)
            if resp.body and resp.content_type:
                reply.set("Content-Type", resp.content_type)
        elif isinstance(event, TransactionTimeout | TransportError):
            reply = make_response(req, 408 if isinstance(event, TransactionTimeout) else 503)
        else:
            return
        call.pending_offer = False
        self._send_response(reply)
        if isinstance(event, ResponseReceived) and event.response.status < 300 and body:
            self._dtmf_start(call)  # the codecs or telephone-events may have changed

    def stray(self, event: StrayResponse) -> None:
        """A 2xx retransmitted by B after its transaction ended: ACK it again."""
        resp = event.response
        call = self._by_leg.get((resp.call_id, resp.from_.tag or ""))
        if call is None and self._supervisor_stray(resp):
            return
        if call is not None and call.b_dialog is not None and 200 <= resp.status < 300:
            self._ack_b(call, call.b_dialog)

    # -- dead calls --------------------------------------------------------------------------

    def reap(self, timeout: float, now: float | None = None) -> list[Call]:
        """Hang up answered calls whose media has been silent for `timeout` seconds.

        A phone that lost power or network sends no BYE; without this its
        call (and a trunk channel) would stay up for ever.
        """
        now = time.monotonic() if now is None else now
        dead = [
            call
            for call in list(self._by_invite.values())
            if call.state == "answered"
            and call.media is not None
            and call.media.idle_for(now) > timeout
        ]
        for call in dead:
            log.warning("call %d: no media for %g s, hung up", call.id, timeout)
            self._hang_up(call, f"no RTP for {timeout:g} s")
        return dead

    def _hang_up(self, call: Call, reason: str) -> None:
        """The node ends an answered call: BYE to both legs."""
        pending = call.ack_wait
        if pending is not None:
            # The ACK we owe first (without the answer that never came).
            ack = pending.dialog.create_ack(pending.cseq)
            ack.add("Via", self._via(pending.flow), first=True)
            self._send_stateless(bytes(ack), pending.flow)
            call.ack_wait = None
        if call.a_dialog is not None:
            self._bye(call.a_dialog, call.a_flow)
            self._leg_end(call, "a", "node", 0, reason)
        if call.b_dialog is not None and call.target is not None:
            self._bye(call.b_dialog, call.target.flow)
            self._leg_end(call, "b", "node", 0, reason)
        call.hangup = Hangup("node", 0, reason)
        call.state = "ended"
        self._forget(call)

    async def reap_forever(self, timeout: float) -> None:
        """`reap` every few seconds until cancelled."""
        while True:
            await asyncio.sleep(min(5.0, timeout / 2))
            self.reap(timeout)

    # -- recording (issue #5) ---------------------------------------------------------------

    def pause_recording(self, call_id: int) -> RecordingStatus:
        """Record silence on call `call_id` (its `Call.id`) from now on, until
        `resume_recording`. NoSuchCall or NotRecorded if it cannot be."""
        recordings, call = self._recorded(call_id)
        return recordings.pause(call)

    def resume_recording(self, call_id: int) -> RecordingStatus:
        """Record call `call_id` again. NoSuchCall or NotRecorded if it cannot be."""
        recordings, call = self._recorded(call_id)
        return recordings.resume(call)

    def _recorded(self, call_id: int) -> tuple[Recordings, Call]:
        call = next((c for c in self._by_invite.values() if c.id == call_id), None)
        if call is None or call.state == "ended":
            raise NoSuchCall(f"no call {call_id} on this node (it may have ended)")
        if self.recordings is None:
            raise NotRecorded("this node records no calls")
        return self.recordings, call

    # -- helpers ---------------------------------------------------------------------------

    def _via(self, flow: Flow) -> str:
        """A Via for a new client transaction of ours on `flow`."""
        return f"SIP/2.0/{flow.via_transport} {self._sent_by(flow)};branch={new_branch()};rport"

    def _bye(self, dialog: Dialog, flow: Flow) -> None:
        bye = dialog.create_request("BYE")
        bye.add("Via", self._via(flow), first=True)
        self._send_request(bye, flow, lambda event: None)

    def _leg_end(
        self, call: Call, side: str, by: str, status: int, reason: str,
        reason_header: str | None = None,
    ) -> None:  # fmt: skip
        if side == "a":
            party = f"{call.caller.kind} {call.caller.tenant}/{call.caller.name}"
        elif call.target is not None:
            target = call.target
            party = f"{target.kind} {call.caller.tenant}/{target.name} {target.uri}".rstrip()
        else:
            party = "nobody"
        call.legs.append(LegEnd(side, party, by, status, reason, reason_header))

    def _end_a(
        self, call: Call, status: int, reason: str, who: str,
        headers: list[tuple[str, object]] | None = None,
    ) -> None:  # fmt: skip
        self._answer(call.a_invite, status, reason, to_tag=call.a_tag, headers=headers)
        self._leg_end(call, "a", who, status, reason)
        call.hangup = Hangup(who, status, reason)
        call.state = "ended"
        log.info("call %d: ended with %d %s", call.id, status, reason)
        self._forget(call)

    def _answer(
        self, req: Request, status: int, reason: str, to_tag: str | None = None,
        headers: list[tuple[str, object]] | None = None,
    ) -> None:  # fmt: skip
        tag = to_tag if to_tag is not None else secrets.token_hex(6)
        headers = [("Server", self.server), *(headers or [])]
        if status == 503:
            headers.append(("Retry-After", "5"))
        self._send_response(make_response(req, status, reason, to_tag=tag, headers=headers))

    def _trunk_full(self, tenant: str, name: str) -> bool:
        trunk = self.router.config.tenants[tenant].trunks.get(name)
        limit = trunk.max_calls if trunk is not None else 0
        return bool(limit) and self.trunk_calls[(tenant, name)] >= limit

    def _take_trunk(self, call: Call, name: str) -> None:
        key = (call.caller.tenant, name)
        self.trunk_calls[key] += 1
        call.trunks.append(key)

    def _release_trunk(self, call: Call, target: Target) -> None:
        if target.kind == "trunk":
            self._release_key(call, (call.caller.tenant, target.name))

    def _release_key(self, call: Call, key: tuple[str, str]) -> None:
        if key in call.trunks:
            call.trunks.remove(key)
            self.trunk_calls[key] -= 1
            if self.trunk_calls[key] <= 0:
                del self.trunk_calls[key]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def quality(self, call: Call) -> dict[str, LegQuality]:
        """Each leg's media figures and MOS ("a", "b"): live while the call
        has media (for the CTI), the final ones after it ended (for the CDR)."""
        if call.media is None:
            return call.quality
        if call.media.b is call.media.a:  # an application's call: one leg
            return {"a": call.media.a.quality()}
        return {"a": call.media.a.quality(), "b": call.media.b.quality()}

    def _forget(self, call: Call) -> None:
        self._supervisions_ended(call)  # (their taps come off before the legs close)
        self._app_ended(call)  # (its channel closes before its media)
        for handle in call.timer_handles.values():
            handle.cancel()
        call.timer_handles.clear()
        self._stop_b_timer(call)
        self._ended(call)
        self._agents_update(call)  # (ended: every agent on it is free)
        self._dtmf_stop(call)
        if call.media is not None:
            call.media.close()
            call.media = None
        for key in call.trunks:
            self.trunk_calls[key] -= 1
            if self.trunk_calls[key] <= 0:
                del self.trunk_calls[key]
        call.trunks.clear()
        # A retransmitted BYE is absorbed by its transaction, so the legs'
        # keys can go at once.
        self._by_invite.pop(call.a_txn, None)
        self._by_leg.pop(call.a_key, None)
        self._by_leg.pop(call.b_key, None)

    def _ended(self, call: Call) -> None:
        """Once per call: its end time, final media figures, recording, and `on_end`."""
        if call.ended_at is not None:
            return
        call.ended_at = time.time()
        call.quality = self.quality(call)
        if self.recordings is not None:
            self.recordings.ended(call)
        if self.on_end is not None:
            try:
                self.on_end(call)
            except Exception:
                log.exception("on_end failed for call %d", call.id)

    async def close(self) -> None:
        """Stop: cancel what is under way and release the calls' relay ports. The
        calls still up end here for the record ("node stopped"; no BYE is sent)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for call in list(self._by_invite.values()):
            if call.hangup is None:
                call.hangup = Hangup("node", 0, "node stopped")
            self._ended(call)
        if self.recordings is not None:
            await self.recordings.close()  # what was recorded so far is kept
        for call in list(self._by_invite.values()):
            self._supervisions_ended(call, "the node stopped")
            self._dtmf_stop(call)
            if call.app is not None:
                call.app.finished("node stopped")
            if call.media is not None:
                call.media.close()
                call.media = None

    # -- for the API (switch.web): calls in progress, and hanging one up -------------

    def active(self) -> list[Call]:
        """The calls in progress (not ended), oldest first."""
        return sorted(
            (call for call in self._by_invite.values() if call.state != "ended"),
            key=lambda call: call.id,
        )

    def parties(self, call: Call) -> tuple[str, str]:
        """(caller, callee) numbers as records show them: extensions or E.164."""
        return self._number_of(call, True), self._number_of(call, False)

    def end(self, call_id: int, reason: str = "hung up through the API") -> bool:
        """Hang up call `call_id` (BYE to both legs; an application's call before
        its answer is refused). False: no such call in progress. A call still
        ringing a callee is a ValueError: it can be ended once answered."""
        call = next((c for c in self.active() if c.id == call_id), None)
        if call is None:
            return False
        if call.state == "answered":
            self._hang_up(call, reason)
        elif call.app is not None:
            self._app_hangup(call, "normal", None)
        else:
            raise ValueError(f"call {call_id} is still ringing: hang it up once it is answered")
        return True
