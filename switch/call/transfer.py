"""Transfers (RFC 3515 REFER, RFC 3891 Replaces, RFC 3892 Referred-By).

The node takes a transfer on itself, as a B2BUA does: for a blind one it
calls the Refer-To target with the remaining party's SDP on the same relay
port and lets the transferor go when the target answers; for an attended
one it joins the two calls' remaining parties by re-pairing relay legs.
The transferor hears how it goes in NOTIFYs (message/sipfrag).
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass

from ..media.relay import LegMedia, LegOrigin, MediaSession, anchor, clock_rates
from ..registrar.guard import Caller
from ..sip import session_timer
from ..sip.address import parse_address
from ..sip.dialog import Dialog, DialogError
from ..sip.errors import ParseError
from ..sip.flow import Flow
from ..sip.message import Request
from ..sip.sdp import SdpError, parse_sdp
from ..sip.session_timer import SessionTimer
from ..sip.transaction import (
    Event,
    ResponseReceived,
    TransactionTimeout,
    TransportError,
)
from .model import Call, Hangup
from .refresh import allows_update
from .routing import Rejection, Target

log = logging.getLogger("switch.call")


class Transfers:
    """Part of `Calls` (a mixin): its helpers (`_answer`, `_bye`, ...) are used here."""

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
        self._spawn(self._transfer_to(call, from_a, referrer, dialled))

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
        origin = LegOrigin()  # the new party's leg is a new session
        if media is not None and staying_sdp:
            port = (media.a if from_a else media.b).port
            body = anchor(staying_sdp, self.media_address, port, origin)[0]
            invite.set_body(body, "application/sdp")
        self._by_leg[(invite.call_id, invite.from_.tag or "")] = call
        self._send_request(
            invite,
            new.flow,
            lambda event: self._on_transfer(call, from_a, new, invite, origin, event),
        )
        log.info("call %d: transferred by %s to %s", call.id, referrer.name, new.uri)

    def _on_transfer(
        self,
        call: Call,
        from_a: bool,
        new: Target,
        invite: Request,
        origin: LegOrigin,
        event: Event,
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
            leg.sdp = resp.body
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
        # The transferor's side is the new party's now (an agent transferring is free).
        left = call.caller.name if from_a and call.caller.kind == "agent" else None
        self._agents_update(call, left)  # type: ignore[attr-defined]
        side = "a" if from_a else "b"
        call.origins[side] = origin
        call.allows_update[side] = allows_update(resp)
        if self.session_expires:
            timer = session_timer.from_response(resp, call.b_expires or self.session_expires)
            self._set_timer(call, side, timer, timer.refresher == "uac")
        if codecs_of(resp.body) != codecs_of(left_sdp):
            # The new party speaks another codec than the one who left: the
            # one who stays gets the new party's SDP as a new offer.
            self._refresh(call, "b" if from_a else "a", offer=True)
        self._dtmf_start(call)  # type: ignore[attr-defined]  # the new party's DTMF form

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
        if self.recordings is not None:  # the recording follows the party that joined
            self.recordings.joined(call, mine, other)
        self._forget(other)
        self._dtmf_start(call)  # type: ignore[attr-defined]  # new legs, maybe new forms
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
    origin: LegOrigin  # the o= line this party has been seeing


def _side(call: Call, side: str) -> _Side:
    assert call.media is not None
    if side == "a":
        caller = call.caller
        target = Target("", call.a_flow, caller.kind, caller.name)
        return _Side(
            call.a_dialog, call.a_flow, call.a_key, call.a_sdp, call.media.a, call.a_trunk,
            target, None, None, call.allows_update.get("a", False), call.timer.get("a"),
            call.origins["a"],
        )  # fmt: skip
    assert call.target is not None
    target = call.target
    trunk = (call.caller.tenant, target.name) if target.kind == "trunk" else None
    return _Side(
        call.b_dialog, target.flow, call.b_key, call.b_sdp, call.media.b, trunk,
        target, call.b_invite, call.b_ack, call.allows_update.get("b", False), call.timer.get("b"),
        call.origins["b"],
    )  # fmt: skip


def _put_side(call: Call, side: str, party: _Side) -> None:
    call.origins[side] = party.origin
    if side == "a":
        call.a_dialog, call.a_flow, call.a_key = party.dialog, party.flow, party.key
        call.a_sdp, call.a_trunk = party.sdp, party.trunk
    else:
        call.b_dialog, call.target, call.b_key = party.dialog, party.target, party.key
        call.b_sdp, call.b_invite, call.b_ack = party.sdp, party.invite, party.ack


def codecs_of(sdp: bytes) -> list[list[str]]:
    """The formats of each m= line: what a change of party may change."""
    try:
        return [list(media.formats) for media in parse_sdp(sdp).media] if sdp else []
    except SdpError:
        return []


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
