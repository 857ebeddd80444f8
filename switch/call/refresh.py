"""Session timers (RFC 4028), one per leg, and our own re-INVITEs.

Each leg's timer is negotiated on its own (`switch.sip.session_timer`):
where the node is the refresher it sends UPDATE (if the peer allows it) or
a re-INVITE with the SDP the leg already has every half interval; where the
other side is, a refresh that does not come in time ends the call. The same
re-INVITE carries a new offer to the party who stays after a transfer.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from ..media.relay import anchor
from ..sip import session_timer
from ..sip.dialog import Dialog, DialogError
from ..sip.flow import Flow
from ..sip.message import Request, Response, make_response
from ..sip.session_timer import SessionTimer, TooSmall
from ..sip.transaction import (
    Event,
    ResponseReceived,
    TransactionTimeout,
    TransportError,
)
from .model import Call

log = logging.getLogger("switch.call")


class SessionRefresh:
    """Part of `Calls` (a mixin): its helpers (`_answer`, `_hang_up`, ...) are used here."""

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
        theirs = self._webrtc_resend(call, side, theirs)  # type: ignore[attr-defined]
        theirs = self._dtmf_resend(call, side, theirs)  # type: ignore[attr-defined]
        media = call.media
        if media is None or not theirs:
            return theirs
        port = (media.a if side == "a" else media.b).port
        return anchor(theirs, self.media_address, port, call.origins[side])[0]

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
                    self._expect(call, resp.body, side)
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


def allows_update(msg: Request | Response) -> bool:
    """Whether `msg`'s Allow lists UPDATE (RFC 3311): then it takes our refreshes."""
    return "UPDATE" in {method.strip().upper() for method in msg.get_all("Allow")}
