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
import dataclasses
import itertools
import logging
import secrets
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ..media.relay import LegMedia, LegQuality, MediaSession, PortPool, anchor, clock_rates
from ..registrar.guard import Caller
from ..sip import session_timer
from ..sip.address import parse_address
from ..sip.dialog import Dialog, DialogError
from ..sip.errors import ParseError
from ..sip.flow import Flow
from ..sip.headers import quote
from ..sip.message import Request, Response, make_response
from ..sip.offer_answer import restrict_codecs
from ..sip.sdp import SdpError, SessionDescription, parse_sdp
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
from .caller_id import Identity, presented
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


@dataclass(frozen=True, slots=True)
class LegEnd:
    """How one leg of a call ended (one dialog, or one attempt that failed),
    for the record: a call has one per leg, a transfer or failover adds more."""

    leg: str  # "a" (the caller's side) or "b" (the callee's side)
    party: str  # who was on it: "agent demo/1001", "trunk demo/carrier sip:+1555@host"
    by: str  # "caller" or "callee" (that party ended it), or "node"
    status: int  # the SIP status (200 for a BYE)
    reason: str
    reason_header: str | None = None  # the Reason header (RFC 3326), if one came
    at: float = field(default_factory=time.time)


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
    offering: set[str] = field(default_factory=set)  # legs with a re-INVITE of ours pending
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
    legs: list[LegEnd] = field(default_factory=list)  # how each leg ended, in order
    # Loss, jitter and round-trip time of each leg's media ("a", "b") at the end.
    quality: dict[str, LegQuality] = field(default_factory=dict)
    # Leg B's setup or ring timeout ("setup"/"ring"), and INVITEs given up
    # for want of an answer -> whether they were CANCELled (issue #4).
    b_timer: asyncio.TimerHandle | None = None
    b_timer_kind: str = ""
    abandoned: dict[ClientTransaction, bool] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None
    # Session timers (RFC 4028), one per leg: the timer, whether we are its
    # refresher, and the pending refresh or expiry of each leg ("a", "b").
    timer: dict[str, tuple[SessionTimer, bool]] = field(default_factory=dict)
    timer_handles: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    b_expires: int = 0  # the Session-Expires leg B's INVITE asks for
    allows_update: dict[str, bool] = field(default_factory=dict)  # per leg: UPDATE in Allow
    # A late offer (an INVITE or re-INVITE without SDP): the ACK that carries
    # our answer waits for the other side's ACK with its answer.
    ack_wait: PendingAck | None = None
    redirects: int = 0  # 3xx followed so far
    a_trunk: tuple[str, str] | None = None  # the trunk on leg A's side, if any


@dataclass(frozen=True, slots=True)
class PendingAck:
    """An ACK we owe a leg until the other leg's ACK brings the SDP answer."""

    dialog: Dialog
    cseq: int
    flow: Flow
    to_a: bool  # the ACK goes to leg A


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
        session_expires: int = 0,
        min_se: int = session_timer.MIN_SE_FLOOR,
        redirects: str = "report",
    ) -> None:
        self.router = router
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
        if (req.call_id, req.from_.tag or "") in self._by_leg:
            # Our own leg B come back (a trunk or binding that points at us):
            # its Call-ID and From tag are ours. Max-Forwards would end the
            # loop too, but only after 70 calls' worth of ports.
            self._answer(req, 482, "Loop Detected (this call came back to the node that sent it)")
            return
        if caller.kind == "trunk" and self._trunk_full(caller.tenant, caller.name):
            self._answer(req, 503, "Service Unavailable (the trunk is at its call limit)")
            return
        if self.session_expires:
            verdict = session_timer.answer(req, self.session_expires, self.min_se)
            if isinstance(verdict, TooSmall):
                self._answer(req, 422, "Session Interval Too Small",
                             headers=[("Min-SE", str(verdict.min_se))])  # fmt: skip
                return
        call = Call(caller, dialled, req, event.flow, event.transaction, a_sdp=req.body)
        call.b_expires = self.session_expires
        self._by_invite[event.transaction] = call
        if caller.kind == "trunk":
            self._take_trunk(call, caller.name)
            call.a_trunk = (caller.tenant, caller.name)
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
        target = self._codec_targets(call, target)
        if isinstance(target, Rejection):
            self._end_a(call, target.status, target.reason, who="node")
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
                call.media = await self.media.session()
            except OSError as exc:
                log.warning("call %d: no media ports: %s", call.id, exc)
                self._end_a(call, 503, "Service Unavailable (no free media ports)", who="node")
                return
            if call.cancelled:
                self._forget(call)
                return
            if call.a_invite.body:
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
        body = self._offer_to(call, target, body) or body
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
            theirs.expect(remote, clock_rates(body))
        return anchored

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
        call.allows_update = {"a": _allows_update(a), "b": _allows_update(resp)}
        answer = make_response(
            a, resp.status, resp.reason, to_tag=call.a_tag, headers=headers,
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
            body=self._anchor(call, resp.body, toward_a=True),
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

    # -- codecs, setup and ring timeouts per trunk (issue #4) ----------------------------

    def _offer_to(self, call: Call, target: Target, body: bytes) -> bytes | None:
        """`body` with only the codecs of the trunks on the way (None: none left)."""
        tenant = self.router.config.tenants[call.caller.tenant]
        names = [call.caller.name] if call.caller.kind == "trunk" else []
        names += [target.name] if target.kind == "trunk" else []
        trunks = [tenant.trunks[n] for n in names if n in tenant.trunks]
        if not body or not trunks:
            return body
        try:
            sdp = parse_sdp(body)
        except SdpError:
            return body  # not ours to judge: the far end says what is wrong
        restricted: SessionDescription | None = sdp
        for trunk in trunks:
            restricted = restrict_codecs(restricted, trunk.codecs)
            if restricted is None:
                return None
        return body if restricted is sdp else restricted.to_bytes()

    def _codec_targets(self, call: Call, target: Target) -> Target | Rejection:
        """`target` without the trunks that take no codec of A's offer (488 if none is left)."""
        body = call.a_invite.body
        candidates = (target, *target.fallbacks)
        fitting = [t for t in candidates if self._offer_to(call, t, body) is not None]
        if not fitting:
            trunks = [call.caller.name] if call.caller.kind == "trunk" else []
            trunks += [t.name for t in candidates if t.kind == "trunk"]
            names = ", ".join(dict.fromkeys(trunks))
            reason = f"Not Acceptable Here (no codec of the offer is allowed by {names})"
            return Rejection(488, reason)
        return dataclasses.replace(fitting[0], fallbacks=tuple(fitting[1:]))

    def _arm_b_timer(self, call: Call, kind: str, seconds: float) -> None:
        self._stop_b_timer(call)
        if seconds > 0 and call.state == "calling" and call.b_txn is not None:
            handler = self._no_response if kind == "setup" else self._no_answer
            loop = asyncio.get_running_loop()
            call.b_timer = loop.call_later(seconds, handler, call, call.b_txn)
            call.b_timer_kind = kind

    def _stop_b_timer(self, call: Call) -> None:
        if call.b_timer is not None:
            call.b_timer.cancel()
        call.b_timer, call.b_timer_kind = None, ""

    def _b_timers(self, call: Call, event: Event) -> None:
        """Any answer stops the setup timeout; ringing starts the ring timeout."""
        if not isinstance(event, ResponseReceived) or event.transaction is not call.b_txn:
            return
        status = event.response.status
        if status >= 200 or call.b_timer_kind == "setup":
            self._stop_b_timer(call)  # the trunk is there
        ring = call.target.ring_timeout if call.target is not None else 0
        if 100 < status < 200 and ring and not call.b_timer_kind:
            self._arm_b_timer(call, "ring", ring)

    def _no_response(self, call: Call, txn: ClientTransaction) -> None:
        """Not even a 100 Trying: the trunk is gone; the route's next one gets the call."""
        call.b_timer, call.b_timer_kind = None, ""
        target = call.target
        if txn is not call.b_txn or call.state != "calling" or call.cancelled or target is None:
            return
        log.warning("call %d: trunk %s sent nothing in %g s", call.id, target.name,
                    target.setup_timeout)  # fmt: skip
        call.abandoned[txn] = False  # CANCELled once it answers (RFC 3261 §9.1)
        self._leg_end(call, "b", "node", 408, f"no response in {target.setup_timeout:g} s")
        self._by_leg.pop(call.b_key, None)
        self._release_trunk(call, target)
        if call.fallbacks:
            self._dial(call, call.fallbacks.pop(0))
        else:
            reason = f"Request Timeout (trunk {target.name} does not answer)"
            self._end_a(call, 408, reason, who="node")

    def _no_answer(self, call: Call, txn: ClientTransaction) -> None:
        """Rung too long: CANCEL, and the caller gets 480 (Asterisk's NOANSWER)."""
        call.b_timer, call.b_timer_kind = None, ""
        target = call.target
        if txn is not call.b_txn or call.state != "calling" or call.cancelled or target is None:
            return
        call.cancelled = True
        self._cancel_b(call)
        self._leg_end(call, "b", "node", 487, f"no answer within {target.ring_timeout:g} s")
        reason = f"Temporarily Unavailable (no answer within {target.ring_timeout:g} s)"
        self._end_a(call, 480, reason, who="node")

    def _abandoned(self, call: Call, event: Event) -> None:
        """Late news of an INVITE given up on: CANCEL it, or hang up what it set up."""
        txn = event.transaction  # type: ignore[union-attr]
        if isinstance(event, ResponseReceived):
            resp = event.response
            if resp.status < 200:
                if not call.abandoned[txn]:
                    call.abandoned[txn] = True
                    self._send_cancel(txn.request, txn.flow)
                return
            if resp.status < 300:
                try:
                    dialog = Dialog.from_uac_response(txn.request, resp)
                except Exception:
                    log.warning("call %d: a late answer cannot be hung up", call.id)
                else:
                    ack = dialog.create_ack(txn.request.cseq.number)
                    ack.add("Via", self._via(txn.flow), first=True)
                    self._send_stateless(bytes(ack), txn.flow)
                    self._bye(dialog, txn.flow)
        del call.abandoned[txn]

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
            body = self._anchor(call, req.body, toward_a=pending.to_a)
            ack.set_body(body, req.content_type or "application/sdp")
        data = bytes(ack)
        if not pending.to_a and pending.dialog is call.b_dialog and call.b_ack is None:
            call.b_ack = data  # the ACK to B's 2xx, resent if that 2xx comes again
        self._send_stateless(data, pending.flow)
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
        if req.method == "UPDATE" and not req.body:
            self._refresh_received(call, req, from_a)
            return
        if req.method in ("INVITE", "UPDATE"):
            self._relay_offer(call, req, from_a)
            return
        if req.method == "REFER":
            self._transfer(call, req, from_a)
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
        # RFC 3892: the new party learns who sent the call its way (the
        # transferor as the node knows it: nothing of the REFER's own text).
        invite.add(
            "Referred-By", f"<sip:{self._number_of(call, from_a)}@{self._sent_by(new.flow)}>"
        )
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
        ack_bytes = bytes(ack)
        self._send_stateless(ack_bytes, new.flow)
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
                leg.expect(remote, clock_rates(resp.body))
        self._notify(call, from_a, f"{resp.status} {resp.reason}", final=True)
        call.transfer = None
        if from_a:
            # The new party takes the caller's place.
            assert call.a_dialog is not None
            self._bye(call.a_dialog, call.a_flow)
            self._leg_end(call, "a", "caller", 200, "transferred (blind)")
            self._by_leg.pop(call.a_key, None)
            if call.a_trunk is not None:
                self._release_key(call, call.a_trunk)
            left_sdp = call.a_sdp
            call.a_dialog, call.a_flow, call.a_key = dialog, new.flow, key
            call.a_sdp = resp.body
            call.a_trunk = (call.caller.tenant, new.name) if new.kind == "trunk" else None
        else:
            old_dialog, old_target = call.b_dialog, call.target
            assert old_dialog is not None and old_target is not None
            self._bye(old_dialog, old_target.flow)
            self._leg_end(call, "b", "callee", 200, "transferred (blind)")
            self._by_leg.pop(call.b_key, None)
            self._release_trunk(call, old_target)
            left_sdp = call.b_sdp
            call.b_dialog, call.target, call.b_invite, call.b_key = dialog, new, invite, key
            call.b_sdp, call.b_ack = resp.body, ack_bytes
        if new.kind == "trunk":
            self._take_trunk(call, new.name)
        side = "a" if from_a else "b"
        call.allows_update[side] = _allows_update(resp)
        if self.session_expires:
            timer = session_timer.from_response(resp, call.b_expires or self.session_expires)
            self._set_timer(call, side, timer, timer.refresher == "uac")
        if _codecs(resp.body) != _codecs(left_sdp):
            # The new party speaks another codec than the one who left: the
            # one who stays gets the new party's SDP as a new offer.
            self._refresh(call, "b" if from_a else "a", offer=True)

    def _attended(
        self, call: Call, refer: Request, from_a: bool, replaces: tuple[str, str, str]
    ) -> None:
        """Attended transfer (RFC 3891): join this call's other party to the
        party of the transferor's second call, and let the transferor go.

        The transferor may be the caller or the callee of either call (an
        agent who took a customer's call or dialled out to one, then called
        or was called by a colleague). Both calls' media are anchored here,
        so joining them is re-pairing two relay legs: nobody is re-INVITEd.
        """
        call_id, to_tag, from_tag = replaces
        other = self._by_leg.get((call_id, to_tag))
        in_other = "a" if other is not None and other.a_key == (call_id, to_tag) else "b"
        dialog = None if other is None else (other.a_dialog if in_other == "a" else other.b_dialog)
        if (
            other is None
            or other is call
            or other.state != "answered"
            or dialog is None
            or dialog.id.remote_tag != from_tag
        ):
            self._answer(refer, 481, "Call/Transaction Does Not Exist (the call Replaces names)")
            return
        if call.media is None or other.media is None or other.transfer is not None:
            self._answer(refer, 488, "Not Acceptable Here (those calls cannot be joined)")
            return
        self._answer(refer, 202, "Accepted")
        self._notify(call, from_a, "200 OK", final=True)
        mine = "a" if from_a else "b"
        leaving, leaving_other = _side(call, mine), _side(other, in_other)
        by = "caller" if from_a else "callee"
        self._leg_end(call, mine, by, 200, "transferred (attended)")
        self._leg_end(other, in_other, "caller" if in_other == "a" else "callee", 200,
                      "transferred (attended)")  # fmt: skip
        moving = _side(other, "b" if in_other == "a" else "a")
        # The transferor leaves both calls.
        for party, owner in ((leaving, call), (leaving_other, other)):
            if party.dialog is not None:
                self._bye(party.dialog, party.flow)
            self._by_leg.pop(party.key, None)
            if party.trunk is not None:
                self._release_key(owner, party.trunk)
            party.relay.rtp.close()
            party.relay.rtcp.close()
        # The other call's remaining party takes the transferor's place here.
        if moving.trunk is not None and moving.trunk in other.trunks:
            other.trunks.remove(moving.trunk)
            call.trunks.append(moving.trunk)
        _put_side(call, mine, moving)
        self._by_leg[moving.key] = call
        call.media = (
            MediaSession(moving.relay, call.media.b)
            if mine == "a"
            else MediaSession(call.media.a, moving.relay)
        )
        other.media = None
        call.allows_update[mine] = moving.allows_update
        handle = call.timer_handles.pop(mine, None)
        if handle is not None:
            handle.cancel()
        call.timer.pop(mine, None)
        if moving.timer is not None:
            self._set_timer(call, mine, *moving.timer)
        # The other call is over; its remaining leg lives on in this one.
        if in_other == "a":
            other.b_dialog, other.b_key = None, ("", "")
        else:
            other.a_dialog, other.a_key = None, ("", "")
        other.hangup = Hangup("caller" if in_other == "a" else "callee", 200,
                              "transferred (attended)")  # fmt: skip
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
        there_side = "b" if from_a else "a"
        headers = []
        if there_side in call.timer:
            # The relayed offer refreshes the other leg's session too.
            interval = call.timer[there_side][0].interval
            headers = session_timer.request_headers(interval, self.min_se)
        out = there.create_request(
            req.method,
            headers=headers,
            body=self._anchor(call, body, toward_a=not from_a),
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

    # -- session timers (RFC 4028), one per leg ----------------------------------------------

    def _refresh_received(self, call: Call, req: Request, from_a: bool) -> None:
        """An UPDATE without SDP: a session refresh, answered here (the other
        leg has its own timer and needs nothing)."""
        here = call.a_dialog if from_a else call.b_dialog
        if call.state != "answered" or here is None:
            self._answer(req, 481, "Call/Transaction Does Not Exist (UPDATE before the answer)")
            return
        try:
            here.receive_request(req)
        except DialogError as exc:
            self._answer(req, exc.status, exc.reason)
            return
        headers: list[tuple[str, object]] = [("Server", self.server)]
        if self.session_expires:
            verdict = session_timer.answer(req, self.session_expires, self.min_se)
            if isinstance(verdict, TooSmall):
                self._send_response(make_response(
                    req, 422, "Session Interval Too Small",
                    headers=[*headers, ("Min-SE", str(verdict.min_se))],
                ))  # fmt: skip
                return
            headers += self._refreshed_by_them(call, req, "a" if from_a else "b")
        self._send_response(make_response(req, 200, "OK", headers=headers))

    def _refreshed_by_them(self, call: Call, req: Request, side: str) -> list[tuple[str, object]]:
        """A refresh from `side` succeeded: its timer starts again. Returns
        the headers of our 2xx that state the timer."""
        timer = session_timer.answer(req, self.session_expires, self.min_se)
        if isinstance(timer, TooSmall):  # checked before: keep the timer we have
            return []
        # In a refresh, "uas" (us) or "uac" (them) is relative to this request.
        self._set_timer(call, side, timer, timer.refresher == "uas")
        return list(session_timer.response_headers(timer, req))

    def _set_timer(self, call: Call, side: str, timer: SessionTimer, we_refresh: bool) -> None:
        call.timer[side] = (timer, we_refresh)
        handle = call.timer_handles.pop(side, None)
        if handle is not None:
            handle.cancel()
        if call.state != "answered":
            return
        loop = asyncio.get_running_loop()
        if we_refresh:
            due, action = timer.refresh_after(), self._refresh
        else:
            due, action = timer.expire_after(), self._expired
        call.timer_handles[side] = loop.call_later(due, action, call, side)

    def _expired(self, call: Call, side: str) -> None:
        call.timer_handles.pop(side, None)
        if call.state == "answered":
            who = "caller" if side == "a" else "callee"
            log.warning("call %d: session timer expired: no refresh from the %s", call.id, who)
            self._hang_up(call, f"session timer expired (no refresh from the {who})")

    def _refresh(self, call: Call, side: str, offer: bool = False) -> None:
        """Refresh leg `side`: UPDATE where the peer allows it, else re-INVITE
        with the SDP it has already (RFC 4028 §7.4, §9). `offer`: a re-INVITE
        because what the leg has changed (the other party after a transfer)."""
        if not offer:
            call.timer_handles.pop(side, None)
        dialog = call.a_dialog if side == "a" else call.b_dialog
        flow = call.a_flow if side == "a" else (call.target.flow if call.target else None)
        timer = call.timer[side][0] if side in call.timer else None
        if call.state != "answered" or dialog is None or flow is None:
            return
        if timer is None and not offer:
            return
        if (
            call.pending_offer
            or side in call.offering
            or call.ack_wait is not None
            or call.transfer is not None
        ):
            # Another offer is under way (it refreshes as well): look again soon.
            handle = asyncio.get_running_loop().call_later(2.0, self._refresh, call, side, offer)
            if not offer:
                call.timer_handles[side] = handle
            return
        headers: list[tuple[str, object]] = []
        if timer is not None:
            headers = [
                ("Session-Expires", f"{timer.interval};refresher=uac"),
                ("Min-SE", str(self.min_se)),
                ("Supported", "timer"),
            ]
        if call.allows_update.get(side) and not offer:
            req = dialog.create_request("UPDATE", headers=headers)
        else:
            sdp = self._sdp_of_leg(call, side)
            req = dialog.create_request(
                "INVITE", headers=headers, body=sdp, content_type="application/sdp" if sdp else None
            )
            call.offering.add(side)
        req.add("Via", self._via(flow), first=True)
        self._send_request(
            req, flow, lambda ev: self._refresh_answered(call, side, req, dialog, flow, ev, offer)
        )

    def _sdp_of_leg(self, call: Call, side: str) -> bytes:
        """The SDP leg `side` has from us: the other side's, anchored on our port."""
        theirs = call.b_sdp if side == "a" else call.a_sdp
        media = call.media
        if media is None or not theirs:
            return theirs
        return anchor(theirs, self.media_address, (media.a if side == "a" else media.b).port)[0]

    def _refresh_answered(
        self,
        call: Call,
        side: str,
        req: Request,
        dialog: Dialog,
        flow: Flow,
        event: Event,
        offer: bool,
    ) -> None:
        if isinstance(event, ResponseReceived):
            resp = event.response
            if resp.status < 200:
                return
            if req.method == "INVITE":
                call.offering.discard(side)
            status = resp.status
            if status < 300:
                dialog.receive_response(resp)
                if req.method == "INVITE":
                    ack = dialog.create_ack(req.cseq.number)
                    ack.add("Via", self._via(flow), first=True)
                    self._send_stateless(bytes(ack), flow)
                if resp.body and call.state == "answered":
                    # Its answer: where it now sends media from, and what.
                    self._anchor(call, resp.body, toward_a=side == "b")
                    if side == "a":
                        call.a_sdp = resp.body
                    else:
                        call.b_sdp = resp.body
                if side in call.timer:
                    timer = session_timer.from_response(resp, call.timer[side][0].interval)
                    self._set_timer(call, side, timer, timer.refresher == "uac")
                return
        elif isinstance(event, TransactionTimeout | TransportError):
            if req.method == "INVITE":
                call.offering.discard(side)
            status = 408
        else:
            return
        if call.state != "answered":
            return
        if status in (408, 481):
            # RFC 4028 §10: the far end is gone.
            who = "caller" if side == "a" else "callee"
            log.warning("call %d: session refresh to the %s failed (%d)", call.id, who, status)
            self._hang_up(call, f"session refresh failed ({status} from the {who})")
            return
        if status == 491:
            # Glare (RFC 3261 §14.1): try again after a random wait, longer
            # on the leg whose Call-ID we chose.
            wait = secrets.SystemRandom().uniform(*((2.1, 4.0) if side == "b" else (0.0, 2.0)))
            handle = asyncio.get_running_loop().call_later(wait, self._refresh, call, side, offer)
            if not offer:
                call.timer_handles[side] = handle
            return
        if side not in call.timer:
            return  # a new offer refused: the leg keeps what it had
        timer = call.timer[side][0]
        if status == 422:
            timer = SessionTimer(max(timer.interval, session_timer.min_se(resp)), "uac")
            call.timer[side] = (timer, True)
            self._refresh(call, side)
            return
        if status in (405, 501) and req.method == "UPDATE":
            call.allows_update[side] = False  # it said it allows UPDATE, but does not
            self._refresh(call, side)
            return
        self._set_timer(call, side, timer, True)  # refused for another reason: try again later

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

    def _forget(self, call: Call) -> None:
        for handle in call.timer_handles.values():
            handle.cancel()
        call.timer_handles.clear()
        self._stop_b_timer(call)
        if call.ended_at is None:
            call.ended_at = time.time()
            if call.media is not None:
                call.quality = {"a": call.media.a.quality(), "b": call.media.b.quality()}
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


@dataclass(frozen=True, slots=True)
class _Side:
    """One side of an answered call, as an attended transfer moves it."""

    dialog: Dialog | None
    flow: Flow
    key: tuple[str, str]
    sdp: bytes
    relay: LegMedia
    trunk: tuple[str, str] | None
    target: Target  # how to reach it, as leg B would
    invite: Request | None  # our INVITE, when we made this dialog
    ack: bytes | None
    allows_update: bool
    timer: tuple[SessionTimer, bool] | None


def _side(call: Call, side: str) -> _Side:
    assert call.media is not None
    if side == "a":
        caller = call.caller
        target = Target("", call.a_flow, caller.kind, caller.name)
        return _Side(
            call.a_dialog, call.a_flow, call.a_key, call.a_sdp, call.media.a, call.a_trunk,
            target, None, None, call.allows_update.get("a", False), call.timer.get("a"),
        )  # fmt: skip
    assert call.target is not None
    target = call.target
    trunk = (call.caller.tenant, target.name) if target.kind == "trunk" else None
    return _Side(
        call.b_dialog, target.flow, call.b_key, call.b_sdp, call.media.b, trunk,
        target, call.b_invite, call.b_ack, call.allows_update.get("b", False), call.timer.get("b"),
    )  # fmt: skip


def _put_side(call: Call, side: str, party: _Side) -> None:
    if side == "a":
        call.a_dialog, call.a_flow, call.a_key = party.dialog, party.flow, party.key
        call.a_sdp, call.a_trunk = party.sdp, party.trunk
    else:
        call.b_dialog, call.target, call.b_key = party.dialog, party.target, party.key
        call.b_sdp, call.b_invite, call.b_ack = party.sdp, party.invite, party.ack


def _codecs(sdp: bytes) -> list[list[str]]:
    """The formats of each m= line: what a change of party may change."""
    try:
        return [list(media.formats) for media in parse_sdp(sdp).media] if sdp else []
    except SdpError:
        return []


def _allows_update(msg: Request | Response) -> bool:
    """Whether `msg`'s Allow lists UPDATE (RFC 3311): then it takes our refreshes."""
    return "UPDATE" in {method.strip().upper() for method in msg.get_all("Allow")}


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
