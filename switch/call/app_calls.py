"""Calls the node answers itself: applications (`switch.call.app`) on the caller's leg.

Part of `Calls` (a mixin). A call routed to `App(name)` runs the
application of that name with an `AppCall`; when the application answers,
the node answers the caller with its own SDP (`app_sdp`) on one leg of
media, a plain RTP leg or, for a browser, a WebRTC leg (the node is the
ICE and DTLS answerer), and gives the application a `Channel` on it. The
leg relays nothing: what the caller sends goes to the channel's tap, what
the channel makes goes out by the leg's `emit`.

Inside such a call: INFO with a DTMF body (application/dtmf-relay,
application/dtmf) is a key for the channel; a re-INVITE or UPDATE with SDP
(a session refresh, hold) is answered here with the same codec; BYE, the
media timeout and session timers end it as any other call, and the
application hears of it (`AppCall.ended`, the channel's `Closed`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..media.channel import Channel
from ..media.dtmf.digits import DtmfError
from ..media.dtmf.info import DTMF, DTMF_RELAY, parse_info
from ..media.relay import LegMedia, MediaSession, anchor, clock_rates
from ..media.webrtc import WebRtcLeg
from ..media.webrtc_sdp import is_webrtc, remote_transport, to_plain, to_webrtc
from ..sip import session_timer
from ..sip.dialog import Dialog, DialogError
from ..sip.errors import ParseError
from ..sip.message import Request, make_response
from ..sip.offer_answer import OfferAnswerError, restrict_codecs
from ..sip.sdp import SdpError, parse_sdp
from ..sip.session_timer import SessionTimer
from ..sip.uri import parse_uri
from .app import CAUSES, GRACE, AppCall, AppRunner, Apps, CallEnded, Party
from .app_sdp import answer_offer
from .model import Call
from .refresh import allows_update
from .routing import App
from .webrtc_legs import WebRtcState

log = logging.getLogger("switch.call")
CONNECT_TIMEOUT = 10.0  # seconds a browser's leg has to connect (ICE, DTLS) after the answer


class AppCalls:
    """Part of `Calls` (a mixin): its helpers (`_end_a`, `_hang_up`, ...) are used here."""

    apps: Apps

    async def _answer_app(self, call: Call, target: App) -> None:
        """Run the application `target` names for `call` (not answered yet)."""
        runner = self.apps.get(target.name)
        if runner is None:
            log.error("call %d: no application %r on this node (it has: %s)",
                      call.id, target.name, ", ".join(self.apps) or "none")  # fmt: skip
            self._end_a(call, 503, f"Service Unavailable (no application {target.name!r})",
                        who="node")  # fmt: skip
            return
        refusal = self._app_refusal(call)
        if refusal is not None:
            self._end_a(call, 488, f"Not Acceptable Here ({refusal})", who="node")
            return
        handle = AppCall(
            target.name,
            target.argument,
            self._party(call),
            call.dialled,
            call.id,
            answer=lambda: self._app_answer(call),
            hangup=lambda cause, status: self._app_hangup(call, cause, status),
            connect=lambda targets, timeout, caller_id, keep: self._app_connect(
                call, targets, timeout, caller_id, keep
            ),
        )
        call.app = handle
        task = asyncio.get_running_loop().create_task(self._run_app(call, handle, runner))
        handle.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _app_refusal(self, call: Call) -> str | None:
        """Why the node cannot answer this caller's offer itself, or None."""
        offer = call.a_invite.body
        if self.media is None or not offer:
            return "the node answers calls that come with an SDP offer"
        if is_webrtc(offer):
            try:
                remote_transport(offer)
            except SdpError as exc:
                return str(exc)
        try:
            answer_offer(self._app_offer(call, offer), self.media_address, 9)
        except OfferAnswerError as exc:
            return str(exc)
        return None

    def _app_offer(self, call: Call, offer: bytes) -> bytes:
        """The caller's offer as plain RTP, cut to its trunk's `codecs` (raises
        OfferAnswerError when none is left)."""
        plain = to_plain(offer) if is_webrtc(offer) else offer
        tenant = self.router.config.tenants[call.caller.tenant]
        trunk = tenant.trunks.get(call.caller.name) if call.caller.kind == "trunk" else None
        if trunk is None:
            return plain
        try:
            restricted = restrict_codecs(parse_sdp(plain), trunk.codecs)
        except SdpError as exc:
            raise OfferAnswerError(f"the offer cannot be read: {exc}") from None
        if restricted is None:
            raise OfferAnswerError(f"no codec of the offer is allowed by trunk {call.caller.name}")
        return restricted.to_bytes()

    def _party(self, call: Call) -> Party:
        try:
            name = call.a_invite.from_.display or ""
        except ParseError:
            name = ""
        return Party(self._number_of(call, True), name, call.caller.tenant)

    def _dtmf_mode(self, call: Call) -> str:
        """How the caller's side sends keys: its trunk's `dtmf`, "auto" for agents."""
        if call.caller.kind != "trunk":
            return "auto"
        trunk = self.router.config.tenants[call.caller.tenant].trunks.get(call.caller.name)
        return trunk.dtmf if trunk is not None else "auto"

    async def _run_app(self, call: Call, handle: AppCall, runner: AppRunner) -> None:
        cause = "normal"
        try:
            await runner(handle)
        except CallEnded:
            pass
        except Exception:
            log.exception("call %d: application %s failed", call.id, handle.app)
            cause = "error"
        if handle.connected is not None and call.state != "ended":
            return  # put through to someone (switch.call.connect): the call goes on without us
        if not handle.ended and call.state != "ended":
            self._app_hangup(call, cause, None)

    def _app_hangup(self, call: Call, cause: str, status: int | None) -> None:
        if call.state == "ended":
            return
        if call.state == "answered":
            self._hang_up(call, f"{cause} (by the {call.app.app if call.app else ''} application)")
            return
        code, reason = CAUSES.get(cause, CAUSES["normal"])
        if status is not None:
            code, reason = status, f"{cause} (by the application)"
        self._end_a(call, code, reason, who="node")

    def _app_ended(self, call: Call) -> None:
        """`_forget` of an application's call: the application hears it ended."""
        handle = call.app
        if handle is None or handle.ended:
            return
        handle.finished(call.hangup.reason if call.hangup is not None else "ended")
        task = handle.task
        if task is not None and not task.done():
            asyncio.get_running_loop().call_later(GRACE, task.cancel)

    # -- answering -------------------------------------------------------------------

    async def _app_answer(self, call: Call) -> Channel:
        """Answer `call` with the node's SDP on a leg of its own: the application's channel."""
        if call.cancelled or call.state != "routing":
            raise CallEnded(f"call {call.id} is over")
        offer = call.a_invite.body
        browser = is_webrtc(offer)
        try:
            plain = self._app_offer(call, offer)
            leg: LegMedia = await (
                WebRtcLeg.open(self.media, self.ice) if browser else self.media.leg()
            )
        except OfferAnswerError as exc:  # (checked before the application ran)
            self._end_a(call, 488, f"Not Acceptable Here ({exc})", who="node")
            raise CallEnded(str(exc)) from None
        except OSError as exc:
            log.warning("call %d: no media ports: %s", call.id, exc)
            self._end_a(call, 503, "Service Unavailable (no free media ports)", who="node")
            raise CallEnded("no media ports") from None
        if call.cancelled or call.state != "routing":
            leg.close()
            raise CallEnded(f"call {call.id} is over")
        try:
            answer, media_format = answer_offer(plain, self.media_address, leg.port)
        except OfferAnswerError as exc:
            leg.close()
            self._end_a(call, 488, f"Not Acceptable Here ({exc})", who="node")
            raise CallEnded(str(exc)) from None
        if browser:
            webrtc = _webrtc(leg)
            body = to_webrtc(answer, webrtc.local(self.media_address, "active"))
            call.webrtc = WebRtcState(frozenset("a"), sent={"a": body})
        else:
            body = answer
            _, remote = anchor(offer, self.media_address, leg.port)
            if remote is not None:
                leg.expect(remote, clock_rates(offer))
        leg.sdp = plain  # the codec's name in the call's quality figures
        call.media = MediaSession(leg, leg)
        leg.rtp.peer = leg.rtcp.peer = None  # nothing is relayed: the channel is the far end
        call.b_sdp = body  # what a session refresh offers the caller again
        channel = Channel(leg, media_format, self._dtmf_mode(call), browser=browser)
        assert call.app is not None
        call.app.channel = channel  # closed with the call, from now on
        self._app_ok(call, body)
        log.info("call %d: answered by the %s application", call.id, call.app.app)
        if browser:
            await self._connected(call, _webrtc(leg), offer)
        return channel

    def _app_ok(self, call: Call, body: bytes) -> None:
        """The 200 OK to the caller's INVITE, with our SDP."""
        assert call.media is not None
        answer = anchor(body, self.media_address, call.media.a.port, call.origins["a"])[0]
        call.state, call.answered_at = "answered", time.time()
        contact = f"<sip:switch@{self._sent_by(call.a_flow)}>"
        headers: list[tuple[str, object]] = [("Contact", contact), ("Server", self.server)]
        if self.session_expires:
            timer = session_timer.answer(call.a_invite, self.session_expires, self.min_se)
            if isinstance(timer, SessionTimer):
                headers += session_timer.response_headers(timer, call.a_invite)
                self._set_timer(call, "a", timer, timer.refresher == "uas")
        call.allows_update = {"a": allows_update(call.a_invite)}
        ok = make_response(call.a_invite, 200, "OK", to_tag=call.a_tag, headers=headers,
                           body=answer)  # fmt: skip
        ok.set("Content-Type", "application/sdp")
        call.a_dialog = Dialog.from_uas_request(call.a_invite, call.a_tag, parse_uri(contact[1:-1]))
        call.a_dialog.response_sent(ok)
        self._send_response(ok)

    async def _connected(self, call: Call, leg: WebRtcLeg, offer: bytes) -> None:
        """A browser's leg: connect (ICE, DTLS) as the answerer; CallEnded if it fails."""
        leg.start(remote_transport(offer), offerer=False)
        try:
            ok = await asyncio.wait_for(asyncio.shield(leg.connected), CONNECT_TIMEOUT)
        except TimeoutError:
            ok = False
        if call.state == "ended":
            raise CallEnded(f"call {call.id} is over")
        if not ok:
            log.warning("call %d: the browser's media did not connect: %s", call.id,
                        leg.failure or f"nothing in {CONNECT_TIMEOUT:g} s")  # fmt: skip
            self._hang_up(call, "media did not connect (ICE/DTLS)")
            raise CallEnded("the browser's media did not connect")

    # -- requests inside an application's call -------------------------------------------

    def _app_request(self, call: Call, req: Request) -> None:
        """A request inside an application's call (not BYE, OPTIONS, or a refresh
        by UPDATE without SDP: those are answered as in any call)."""
        dialog = call.a_dialog
        if call.state != "answered" or dialog is None:
            self._answer(req, 481, f"Call/Transaction Does Not Exist ({req.method} before the "
                         "answer)")  # fmt: skip
            return
        try:
            dialog.receive_request(req)
        except DialogError as exc:
            self._answer(req, exc.status, exc.reason)
            return
        if req.method == "INFO":
            self._app_info(call, req)
        elif req.method in ("INVITE", "UPDATE"):
            self._app_reoffer(call, req)
        else:  # MESSAGE, REFER: nobody here to take them
            self._answer(req, 501, f"Not Implemented ({req.method} to an application)")

    def _app_info(self, call: Call, req: Request) -> None:
        kind = (req.content_type or "").split(";", 1)[0].strip().lower()
        if kind not in (DTMF_RELAY, DTMF):
            self._answer(req, 415, "Unsupported Media Type (INFO here carries DTMF only)",
                         headers=[("Accept", f"{DTMF_RELAY}, {DTMF}")])  # fmt: skip
            return
        channel = call.app.channel if call.app is not None else None
        try:
            digit = parse_info(kind, req.body)
        except DtmfError as exc:
            # The key is lost, not the dialog (the INFO is still answered 200).
            log.info("call %d: INFO without a key we can read: %s", call.id, exc)
        else:
            if channel is not None:
                channel.info_digit(digit)
        self._send_response(make_response(req, 200, "OK", headers=[("Server", self.server)]))

    def _app_reoffer(self, call: Call, req: Request) -> None:
        """A new offer from the caller (session refresh, hold): the same codec, answered here."""
        media, handle = call.media, call.app
        channel = handle.channel if handle is not None else None
        if media is None or channel is None:
            self._answer(req, 500, "Server Internal Error (the call has no media)")
            return
        body = call.b_sdp  # no offer (a late-offer re-INVITE): ours again, as the offer
        if req.body:
            try:
                plain = to_plain(req.body) if is_webrtc(req.body) else req.body
                body, media_format = answer_offer(
                    plain, self.media_address, media.a.port, keep=channel.format
                )
            except (OfferAnswerError, SdpError) as exc:
                self._answer(req, 488, f"Not Acceptable Here ({exc})")
                return
            if media_format.payload_type != channel.format.payload_type:
                log.warning("call %d: the caller renumbered its codec (%d -> %d); the channel "
                            "keeps %d", call.id, channel.format.payload_type,
                            media_format.payload_type, channel.format.payload_type)  # fmt: skip
            if call.webrtc is not None and is_webrtc(req.body):
                # The same ICE and DTLS end; new credentials in the offer are
                # an ICE restart, answered with new ones of ours.
                leg = _webrtc(media.a)
                try:
                    leg.start(remote_transport(req.body), offerer=False)
                except SdpError as exc:
                    self._answer(req, 488, f"Not Acceptable Here ({exc})")
                    return
                body = to_webrtc(body, leg.local(self.media_address, "active"))
                call.webrtc.sent["a"] = body
            else:
                _, remote = anchor(req.body, self.media_address, media.a.port)
                if remote is not None:
                    media.a.expect(remote, clock_rates(req.body))
            call.b_sdp = body
        headers: list[tuple[str, object]] = [("Server", self.server)]
        headers.append(("Contact", f"<sip:switch@{self._sent_by(call.a_flow)}>"))
        if self.session_expires:
            headers += self._refreshed_by_them(call, req, "a")
        answer = anchor(body, self.media_address, media.a.port, call.origins["a"])[0]
        ok = make_response(req, 200, "OK", headers=headers, body=answer)
        ok.set("Content-Type", "application/sdp")
        self._send_response(ok)


def _webrtc(leg: LegMedia) -> WebRtcLeg:
    assert isinstance(leg, WebRtcLeg)
    return leg
