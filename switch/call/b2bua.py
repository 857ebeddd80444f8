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
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..media.relay import MediaSession, PortPool, anchor
from ..registrar.guard import Caller
from ..sip.address import parse_address
from ..sip.dialog import Dialog, DialogError
from ..sip.errors import ParseError
from ..sip.flow import Flow
from ..sip.message import Request, Response, make_response
from ..sip.transaction import (
    AckReceived,
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
from .routing import Rejection, Router, Target

log = logging.getLogger("switch.call")

_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Hangup:
    """How a call ended, for its record (issue #9)."""

    by: str  # "caller", "callee" or "node"
    status: int  # the SIP status it ended with (200 for a BYE; 0 when the node ended it)
    reason: str  # the reason phrase, or what the node saw
    reason_header: str | None = None  # the Reason header (RFC 3326) of the BYE or CANCEL


@dataclass(eq=False)
class Call:
    caller: Caller
    dialled: str
    a_invite: Request
    a_flow: Flow
    a_txn: ServerTransaction
    a_tag: str = field(default_factory=lambda: secrets.token_hex(6))
    id: int = field(default_factory=lambda: next(_ids))
    target: Target | None = None
    b_invite: Request | None = None
    b_txn: ClientTransaction | None = None
    a_dialog: Dialog | None = None
    b_dialog: Dialog | None = None
    b_provisional: bool = False  # B answered something: a CANCEL may go
    cancel_sent: bool = False
    pending_offer: bool = False  # a re-INVITE or UPDATE is on its way (RFC 3261 §14.2)
    fallbacks: list[Target] = field(default_factory=list)  # trunks to try next
    pracked: set[str] = field(default_factory=set)  # RSeq values acknowledged (RFC 3262)
    a_sdp: bytes = b""  # the caller's latest SDP as it sent it (offered to a transfer target)
    b_ack: bytes | None = None  # our ACK to B's 2xx, resent as is for retransmissions
    b_sdp: bytes = b""  # the callee's latest SDP as it sent it (offered to a transfer target)
    # (Call-ID, our tag) of each leg's dialog: how in-dialog requests find the call.
    a_key: tuple[str, str] = ("", "")
    b_key: tuple[str, str] = ("", "")
    transfer: Request | None = None  # the REFER being carried out
    media: MediaSession | None = None  # the RTP relay, when the offer came with the INVITE
    offer_b: bytes | None = None  # A's offer as leg B sees it (anchored in the node)
    trunks: list[tuple[str, str]] = field(default_factory=list)  # counted against max_calls
    state: str = "routing"  # routing, calling, answered, ended
    cancelled: bool = False
    hangup: Hangup | None = None
    started_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None


class Calls:
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
    ) -> None:
        self.router = router
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
        # Calls up per (tenant, trunk), both directions, for max_calls.
        self.trunk_calls: Counter[tuple[str, str]] = Counter()

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
        if not dialled:
            self._answer(req, 404, "Not Found (the Request-URI names no number)")
            return
        if caller.kind == "trunk" and self._trunk_full(caller.tenant, caller.name):
            self._answer(req, 503, "Service Unavailable (the trunk is at its call limit)")
            return
        call = Call(caller, dialled, req, event.flow, event.transaction, a_sdp=req.body)
        self._by_invite[event.transaction] = call
        if caller.kind == "trunk":
            self._take_trunk(call, caller.name)
        call.a_key = (req.call_id, call.a_tag)
        self._by_leg[call.a_key] = call
        task = asyncio.get_running_loop().create_task(self._start(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        max_forwards = call.a_invite.max_forwards
        if max_forwards is not None and max_forwards <= 0:
            self._end_a(call, 483, "Too Many Hops", who="node")
            return
        call.fallbacks = list(target.fallbacks)
        if self.media is not None and call.a_invite.body:
            try:
                call.media = await self.media.session()
            except OSError as exc:
                log.warning("call %d: no media ports: %s", call.id, exc)
                self._end_a(call, 503, "Service Unavailable (no free media ports)", who="node")
                return
            if call.cancelled:
                self._forget(call)
                return
            call.offer_b = self._anchor(call, call.a_invite.body, toward_a=False)
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

    def _b_invite(
        self,
        call: Call,
        target: Target,
        max_forwards: int | None,
        caller_id: str | None = None,
    ) -> Request:
        a = call.a_invite
        sent_by = self._sent_by(target.flow)
        caller_id = caller_id or self._caller_id(call) or "anonymous"
        hidden = "id" in {p.strip().lower() for v in a.get_all("Privacy") for p in v.split(";")}
        shown = "sip:anonymous@anonymous.invalid" if hidden else f"sip:{caller_id}@{sent_by}"
        identity: list[tuple[str, object]] = []
        if self._trusted(call.caller.tenant, target):
            # RFC 3325: a trusted carrier gets the real identity, and the
            # caller's wish to hide it (Privacy: id) to honour.
            identity.append(("P-Asserted-Identity", f"<sip:{caller_id}@{sent_by}>"))
            if hidden:
                identity.append(("Privacy", "id"))
        headers: list[tuple[str, object]] = [
            ("Via", f"SIP/2.0/{target.flow.via_transport} {sent_by};branch={new_branch()};rport"),
            ("Max-Forwards", str(70 if max_forwards is None else min(70, max_forwards - 1))),
            ("From", f"<{shown}>;tag={secrets.token_hex(6)}"),
            *identity,
            ("To", f"<{target.uri}>"),
            ("Call-ID", secrets.token_hex(16)),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:switch@{sent_by}>"),
            ("Supported", "100rel"),
            ("User-Agent", self.server),
        ]
        req = Request("INVITE", target.uri, headers)
        body = call.offer_b if call.offer_b is not None else a.body
        req.set_body(body, a.content_type if body else None)
        return req

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

    def _trusted(self, tenant: str, target: Target) -> bool:
        return target.kind == "trunk" and self._trusted_name(tenant, target.name)

    def _trusted_name(self, tenant: str, name: str) -> bool:
        trunk = self.router.config.tenants[tenant].trunks.get(name)
        return trunk is not None and trunk.trusted

    def _anchor(self, call: Call, body: bytes, toward_a: bool) -> bytes:
        """`body` (an offer or answer) as the other leg should see it: media via our ports.

        `toward_a`: the SDP came from B and goes to A. Where the sender
        said it listens becomes that leg's media address until it latches.
        """
        media = call.media
        if media is None or not body:
            return body
        mine, theirs = (media.a, media.b) if toward_a else (media.b, media.a)
        anchored, remote = anchor(body, self.media_address, mine.port)
        if remote is not None:
            theirs.expect(remote)
        return anchored

    # -- leg B's responses --------------------------------------------------------------

    def _on_b(self, call: Call, event: Event) -> None:
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
        self._b_failed(call, status, resp.reason)

    def _b_answered(self, call: Call, resp: Response) -> None:
        assert call.b_invite is not None and call.target is not None
        dialog = Dialog.from_uac_response(call.b_invite, resp)
        call.b_dialog = dialog
        self._ack_b(call, dialog)
        if call.cancelled or call.state == "ended":
            # The answer crossed our CANCEL: the call is over on A's side.
            self._bye(dialog, call.target.flow)
            self._forget(call)
            return
        call.state = "answered"
        call.answered_at = time.time()
        call.b_sdp = resp.body
        a = call.a_invite
        contact = f"<sip:switch@{self._sent_by(call.a_flow)}>"
        answer = make_response(
            a, resp.status, resp.reason, to_tag=call.a_tag,
            headers=[("Contact", contact), ("Server", self.server)],
            body=self._anchor(call, resp.body, toward_a=True),
        )  # fmt: skip
        if resp.body and resp.content_type:
            answer.set("Content-Type", resp.content_type)
        call.a_dialog = Dialog.from_uas_request(a, call.a_tag, parse_uri(contact[1:-1]))
        call.a_dialog.response_sent(answer)
        self._send_response(answer)
        log.info("call %d: answered", call.id)

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
        assert call.b_invite is not None and call.target is not None
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
            body=self._anchor(call, resp.body, toward_a=True),
        )  # fmt: skip
        if resp.body and resp.content_type:
            relayed.set("Content-Type", resp.content_type)
        self._send_response(relayed)

    def _b_failed(self, call: Call, status: int, reason: str) -> None:
        if call.state in ("answered", "ended") or call.cancelled:
            return
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
        call.hangup = Hangup("caller", 487, "cancelled before answer", event.request.get("Reason"))
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
        self._send_request(cancel, call.target.flow, lambda event: None)

    def ack(self, event: AckReceived) -> None:
        """The caller's ACK to our 2xx: nothing to do (B was ACKed on its answer)."""

    def in_dialog(self, event: RequestReceived) -> None:
        """BYE, or another request inside one of our legs' dialogs."""
        req = event.request
        call = self._by_leg.get((req.call_id, req.to.tag or ""))
        if call is None:
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
            call.state = "ended"
            log.info("call %d: %s hung up", call.id, who)
            self._forget(call)
            return
        if req.method == "OPTIONS":
            self._answer(req, 200, "OK")
            return
        if req.method in ("INVITE", "UPDATE"):
            self._relay_offer(call, req, from_a)
            return
        if req.method == "REFER":
            self._transfer(call, req, from_a)
            return
        # INFO and MESSAGE in a call: the next parts of #4.
        self._answer(req, 501, f"Not Implemented (in-call {req.method} is not relayed yet)")

    # -- blind transfer (RFC 3515) ------------------------------------------------------

    def _transfer(self, call: Call, refer: Request, from_a: bool) -> None:
        """One side hands the other to someone else (an agent, usually).

        The node takes the transfer on itself, as a B2BUA does: 202, a new leg
        to the Refer-To target with the remaining party's SDP on the same relay
        port (the remaining party's media path does not change), NOTIFYs of
        how it goes, and when the target answers, BYE to the transferor.
        """
        dialog = call.a_dialog if from_a else call.b_dialog
        if call.state != "answered" or dialog is None or call.target is None:
            self._answer(refer, 501, "Not Implemented (transfer before the answer)")
            return
        if call.transfer is not None:
            self._answer(refer, 491, "Request Pending")
            return
        try:
            dialog.receive_request(refer)
            refer_to = refer.get("Refer-To") or ""
            dialled = parse_address(refer_to).uri.user  # type: ignore[union-attr]
        except (DialogError, ParseError, AttributeError):
            dialled = None
        if not dialled:
            self._answer(refer, 400, "Bad Request (Refer-To names no number)")
            return
        replaces = _replaces(refer.get("Refer-To") or "")
        if replaces is not None:
            self._attended(call, refer, from_a, replaces)
            return
        self._answer(refer, 202, "Accepted")
        call.transfer = refer
        self._notify(call, from_a, "100 Trying", final=False)
        target = call.target
        referrer = call.caller if from_a else Caller(call.caller.tenant, target.kind, target.name)
        task = asyncio.get_running_loop().create_task(
            self._transfer_to(call, from_a, referrer, dialled)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _transfer_to(self, call: Call, from_a: bool, referrer: Caller, dialled: str) -> None:
        new = await self.router.route(referrer, dialled)
        if call.state != "answered":
            return
        if isinstance(new, Rejection):
            self._transfer_failed(call, from_a, new.status, new.reason)
            return
        # The new party gets the SDP of the one who stays, on the relay port
        # the transferor had; it sees the one who stays as its caller.
        staying_sdp = call.b_sdp if from_a else call.a_sdp
        caller_id = call.target.name if from_a and call.target else None
        invite = self._b_invite(call, new, call.a_invite.max_forwards, caller_id)
        media = call.media
        if media is not None and staying_sdp:
            port = (media.a if from_a else media.b).port
            invite.set_body(anchor(staying_sdp, self.media_address, port)[0], "application/sdp")
        self._by_leg[(invite.call_id, invite.from_.tag or "")] = call
        self._send_request(
            invite, new.flow, lambda event: self._on_transfer(call, from_a, new, invite, event)
        )
        log.info("call %d: transferred by %s to %s", call.id, referrer.name, new.uri)

    def _on_transfer(
        self, call: Call, from_a: bool, new: Target, invite: Request, event: Event
    ) -> None:
        key = (invite.call_id, invite.from_.tag or "")
        if isinstance(event, TransactionTimeout | TransportError):
            self._by_leg.pop(key, None)
            self._transfer_failed(call, from_a, 408, "Request Timeout")
            return
        if not isinstance(event, ResponseReceived) or event.response.status < 200:
            return
        resp = event.response
        if resp.status >= 300:
            self._by_leg.pop(key, None)
            self._transfer_failed(call, from_a, resp.status, resp.reason)
            return
        dialog = Dialog.from_uac_response(invite, resp)
        ack = dialog.create_ack(invite.cseq.number)
        ack.add("Via", self._via(new.flow), first=True)
        self._send_stateless(bytes(ack), new.flow)
        if call.state != "answered":  # the other party hung up meanwhile
            self._by_leg.pop(key, None)
            self._bye(dialog, new.flow)
            return
        media = call.media
        if media is not None and resp.body:
            leg = media.a if from_a else media.b
            _, remote = anchor(resp.body, self.media_address, leg.port)
            leg.rtp.latched = leg.rtcp.latched = False  # the new party's packets from now on
            if remote is not None:
                leg.expect(remote)
        self._notify(call, from_a, f"{resp.status} {resp.reason}", final=True)
        call.transfer = None
        if from_a:
            # The new party takes the caller's place.
            assert call.a_dialog is not None
            self._bye(call.a_dialog, call.a_flow)
            self._by_leg.pop(call.a_key, None)
            if call.caller.kind == "trunk":
                self._release_key(call, (call.caller.tenant, call.caller.name))
            call.a_dialog, call.a_flow, call.a_key = dialog, new.flow, key
            call.a_sdp = resp.body
        else:
            old_dialog, old_target = call.b_dialog, call.target
            assert old_dialog is not None and old_target is not None
            self._bye(old_dialog, old_target.flow)
            self._by_leg.pop(call.b_key, None)
            self._release_trunk(call, old_target)
            call.b_dialog, call.target, call.b_invite, call.b_key = dialog, new, invite, key
            call.b_sdp = resp.body
        if new.kind == "trunk":
            self._take_trunk(call, new.name)

    def _attended(
        self, call: Call, refer: Request, from_a: bool, replaces: tuple[str, str, str]
    ) -> None:
        """Attended transfer (RFC 3891): join this call's other party to the
        party of the transferor's second call, and let the transferor go.

        The usual flow of an agent: a customer calls (this call, the agent
        its callee), the agent calls a colleague (the second call, the agent
        its caller), then transfers. Both calls' media are anchored here, so
        joining them is re-pairing two relay legs: nobody is re-INVITEd.
        """
        call_id, to_tag, from_tag = replaces
        other = self._by_leg.get((call_id, to_tag))
        if (
            from_a
            or other is None
            or other is call
            or other.a_key != (call_id, to_tag)
            or other.a_invite.from_.tag != from_tag
            or other.state != "answered"
            or call.media is None
            or other.media is None
            or other.b_dialog is None
            or other.target is None
        ):
            # Only the agent-as-callee, then agent-as-caller shape is joined so far.
            self._answer(refer, 501, "Not Implemented (this attended transfer)")
            return
        self._answer(refer, 202, "Accepted")
        self._notify(call, False, "200 OK", final=True)
        # The transferor leaves both calls.
        old_dialog, old_target = call.b_dialog, call.target
        assert old_dialog is not None and old_target is not None and other.a_dialog is not None
        self._bye(old_dialog, old_target.flow)
        self._bye(other.a_dialog, other.a_flow)
        self._by_leg.pop(call.b_key, None)
        self._by_leg.pop(other.a_key, None)
        self._release_trunk(call, old_target)
        # This call's caller now talks to the second call's callee.
        call.b_dialog, call.target, call.b_invite = other.b_dialog, other.target, other.b_invite
        call.b_key, call.b_sdp = other.b_key, other.b_sdp
        self._by_leg[call.b_key] = call
        call.trunks.extend(other.trunks)
        other.trunks.clear()
        joined = MediaSession(call.media.a, other.media.b)
        call.media.b.rtp.close()
        call.media.b.rtcp.close()
        other.media.a.rtp.close()
        other.media.a.rtcp.close()
        call.media, other.media = joined, None
        other.b_dialog, other.b_key = None, ("", "")  # its callee's leg is this call's now
        other.hangup = Hangup("caller", 200, "transferred (attended)")
        other.state = "ended"
        self._forget(other)
        log.info("call %d: joined with call %d (attended transfer)", call.id, other.id)

    def _transfer_failed(self, call: Call, from_a: bool, status: int, reason: str) -> None:
        log.info("call %d: transfer failed: %d %s", call.id, status, reason)
        self._notify(call, from_a, f"{status} {reason}", final=True)
        call.transfer = None

    def _notify(self, call: Call, from_a: bool, sipfrag: str, final: bool) -> None:
        """Tell the transferor how its REFER goes (RFC 3515 §2.4.5)."""
        if from_a:
            dialog, flow = call.a_dialog, call.a_flow
        else:
            dialog, flow = call.b_dialog, (call.target.flow if call.target else None)
        if dialog is None or flow is None:
            return
        state = "terminated;reason=noresource" if final else "active;expires=60"
        body = f"SIP/2.0 {sipfrag}\r\n".encode()
        notify = dialog.create_request(
            "NOTIFY",
            headers=[("Event", "refer"), ("Subscription-State", state)],
            body=body,
            content_type="message/sipfrag;version=2.0",
        )
        notify.add("Via", self._via(flow), first=True)
        self._send_request(notify, flow, lambda event: None)

    # -- re-INVITE and UPDATE: hold, resume, codec changes -------------------------------

    def _relay_offer(self, call: Call, req: Request, from_a: bool) -> None:
        """Carry a new offer (RFC 3264 §8) to the other leg, and its answer back."""
        here, there = (call.a_dialog, call.b_dialog) if from_a else (call.b_dialog, call.a_dialog)
        flow = (call.target.flow if call.target else call.a_flow) if from_a else call.a_flow
        if call.state != "answered" or here is None or there is None:
            self._answer(req, 501, f"Not Implemented ({req.method} before the answer)")
            return
        if call.pending_offer:
            # RFC 3261 §14.2: one offer at a time; the other side retries.
            self._answer(req, 491, "Request Pending")
            return
        try:
            here.receive_request(req)
        except DialogError as exc:
            self._answer(req, exc.status, exc.reason)
            return
        if req.body:
            if from_a:
                call.a_sdp = req.body
            else:
                call.b_sdp = req.body
        out = there.create_request(
            req.method,
            body=self._anchor(call, req.body, toward_a=not from_a),
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
            there.receive_response(resp)
            if out.method == "INVITE" and resp.status < 300:
                ack = there.create_ack(out.cseq.number)
                ack.add("Via", self._via(flow), first=True)
                self._send_stateless(bytes(ack), flow)
            headers = [("Server", self.server)]
            if here.local_target is not None and resp.status < 300:
                headers.append(("Contact", f"<{here.local_target}>"))  # a target refresh
            if resp.body and resp.status < 300:
                if from_a:
                    call.b_sdp = resp.body
                else:
                    call.a_sdp = resp.body
            body = self._anchor(call, resp.body, toward_a=from_a)
            reply = make_response(req, resp.status, resp.reason, body=body, headers=headers)
            if resp.body and resp.content_type:
                reply.set("Content-Type", resp.content_type)
        elif isinstance(event, TransactionTimeout | TransportError):
            reply = make_response(req, 408 if isinstance(event, TransactionTimeout) else 503)
        else:
            return
        call.pending_offer = False
        self._send_response(reply)

    def stray(self, event: StrayResponse) -> None:
        """A 2xx retransmitted by B after its transaction ended: ACK it again."""
        resp = event.response
        call = self._by_leg.get((resp.call_id, resp.from_.tag or ""))
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
            if call.a_dialog is not None:
                self._bye(call.a_dialog, call.a_flow)
            if call.b_dialog is not None and call.target is not None:
                self._bye(call.b_dialog, call.target.flow)
            call.hangup = Hangup("node", 0, f"no RTP for {timeout:g} s")
            call.state = "ended"
            log.warning("call %d: no media for %g s, hung up", call.id, timeout)
            self._forget(call)
        return dead

    async def reap_forever(self, timeout: float) -> None:
        """`reap` every few seconds until cancelled."""
        while True:
            await asyncio.sleep(min(5.0, timeout / 2))
            self.reap(timeout)

    # -- helpers ---------------------------------------------------------------------------

    def _via(self, flow: Flow) -> str:
        """A Via for a new client transaction of ours on `flow`."""
        return f"SIP/2.0/{flow.via_transport} {self._sent_by(flow)};branch={new_branch()};rport"

    def _bye(self, dialog: Dialog, flow: Flow) -> None:
        bye = dialog.create_request("BYE")
        bye.add("Via", self._via(flow), first=True)
        self._send_request(bye, flow, lambda event: None)

    def _end_a(self, call: Call, status: int, reason: str, who: str) -> None:
        self._answer(call.a_invite, status, reason, to_tag=call.a_tag)
        call.hangup = Hangup(who, status, reason)
        call.state = "ended"
        log.info("call %d: ended with %d %s", call.id, status, reason)
        self._forget(call)

    def _answer(self, req: Request, status: int, reason: str, to_tag: str | None = None) -> None:
        tag = to_tag if to_tag is not None else secrets.token_hex(6)
        headers = [("Server", self.server)]
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

    def _forget(self, call: Call) -> None:
        if call.ended_at is None:
            call.ended_at = time.time()
            if self.on_end is not None:
                try:
                    self.on_end(call)
                except Exception:
                    log.exception("on_end failed for call %d", call.id)
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

    async def close(self) -> None:
        """Stop: cancel what is under way and release the calls' relay ports."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for call in list(self._by_invite.values()):
            if call.media is not None:
                call.media.close()
                call.media = None


def _replaces(refer_to: str) -> tuple[str, str, str] | None:
    """(Call-ID, to-tag, from-tag) of a Replaces header in a Refer-To URI, if any."""
    try:
        uri = parse_address(refer_to).uri
    except ParseError:
        return None
    headers = getattr(uri, "headers", None)
    if not headers:
        return None
    for header in headers.split("&"):
        name, _, value = header.partition("=")
        if name.strip().lower() != "replaces":
            continue
        call_id, *params = urllib.parse.unquote(value).split(";")
        tags = dict(p.strip().partition("=")[::2] for p in params)
        if call_id and "to-tag" in tags and "from-tag" in tags:
            return call_id.strip(), tags["to-tag"], tags["from-tag"]
    return None
