"""DTMF on a call's two legs: each leg in the form it takes (a trunk's `dtmf`).

A trunk's `dtmf` setting says how it carries keys: "rfc4733" (events in
RTP), "info" (SIP INFO), "inband" (tones in the audio) or "auto" (RFC 4733
when the call negotiated telephone-event, in-band otherwise). Agents and
browsers are "auto" (they speak RFC 4733). When the two legs of an
answered call end up in different forms, a `switch.media.dtmf_bridge`
converts between them; when they agree, nothing runs (the relay's fast path
is untouched).

What each leg is shown in SDP follows (`switch.media.dtmf.sdp`):

- a trunk in "info" or "inband" is offered and answered no telephone-event
  (it must not start sending RFC 4733 the node would not expect);
- an agent is offered telephone-event on each clock of its codecs (a
  browser cannot send DTMF without it), even when the caller had none;
- an answer keeps the telephone-event its receiver offered, even when the
  far side answered none: the node converts that side's keys.

Keys sent to a trunk in "info" go as INFO (application/dtmf-relay) in its
dialog, one at a time (the next once the last is answered: over UDP two
INFOs in flight may arrive in either order).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..media.dtmf import DtmfError
from ..media.dtmf.info import DTMF, DTMF_RELAY, info_body, parse_info
from ..media.dtmf.sdp import (
    answer_keeping_events,
    audio_rates,
    event_for,
    is_event,
    with_events,
    without_events,
)
from ..media.dtmf_bridge import DtmfBridge, DtmfLink, LegDtmf
from ..media.relay import LegMedia
from ..media.webrtc import WebRtcLeg
from ..media.webrtc_sdp import codecs_of
from ..sip.dialog import DialogError
from ..sip.message import Request
from ..sip.sdp import STATIC_PAYLOAD_TYPES, Codec
from ..sip.transaction import Event, ResponseReceived

if TYPE_CHECKING:
    from .model import Call
    from .routing import Target

log = logging.getLogger("switch.call")
CONVERTED = ("info", "inband")  # trunk modes shown no telephone-event


@dataclass
class DtmfState:
    """What a call keeps for its DTMF."""

    offered: dict[str, list[Codec]] = field(default_factory=dict)  # side -> its last offer's
    link: DtmfLink | None = None  # the bridge at work, when the legs differ
    infos: dict[str, deque[tuple[str, float]]] = field(default_factory=dict)  # INFOs to send
    sending: set[str] = field(default_factory=set)  # sides with an INFO in flight


class DtmfCalls:
    """Part of `Calls` (a mixin): uses its router, `_send_request`, `_answer`, `_via`."""

    # -- configuration ---------------------------------------------------------------------

    def _dtmf_setting(self, call: Call, side: str, target: Target | None = None) -> str:
        """The configured mode of leg `side`: a trunk's `dtmf`, "auto" for anyone else."""
        key: tuple[str, str] | None
        if side == "a":
            key = call.a_trunk
        else:
            target = target or call.target
            key = (call.caller.tenant, target.name) if target and target.kind == "trunk" else None
        if key is None:
            return "auto"
        tenant = self.router.config.tenants.get(key[0])  # type: ignore[attr-defined]
        trunk = tenant.trunks.get(key[1]) if tenant is not None else None
        return trunk.dtmf if trunk is not None else "auto"

    def _is_agent(self, call: Call, side: str, target: Target | None = None) -> bool:
        if side == "a":
            return call.caller.kind == "agent"
        target = target or call.target
        return target is not None and target.kind == "agent"

    @staticmethod
    def _dtmf_state(call: Call) -> DtmfState:
        if call.dtmf is None:
            call.dtmf = DtmfState()
        return call.dtmf

    # -- SDP --------------------------------------------------------------------------------

    def _dtmf_sdp(self, call: Call, raw: bytes, sent: bytes, toward_a: bool, offer: bool) -> bytes:
        """`sent` (the SDP `raw` as leg `to` will see it) with telephone-event as
        that leg should have it (see the module doc)."""
        to, sender = ("a", "b") if toward_a else ("b", "a")
        state = self._dtmf_state(call)
        if offer:
            state.offered[sender] = codecs_of(raw)
        if to == "b" and call.target is None:
            return sent  # the first offer: `_dtmf_offer_to` adjusts it per target
        return self._dtmf_adjust(call, to, sent, offer)

    def _dtmf_offer_to(self, call: Call, target: Target, body: bytes) -> bytes:
        """Leg B's INVITE offer for `target` (each fallback trunk may differ)."""
        return self._dtmf_adjust(call, "b", body, True, target)

    def _dtmf_resend(self, call: Call, side: str, theirs: bytes) -> bytes:
        """What a session refresh offers leg `side` again: as it was shown before."""
        webrtc = call.webrtc
        if webrtc is not None and side in webrtc.sent:
            return theirs  # a browser's: kept as sent, adjustments included
        return self._dtmf_edit(call, side, theirs, True)

    def _dtmf_adjust(
        self, call: Call, to: str, body: bytes, offer: bool, target: Target | None = None
    ) -> bytes:
        edited = self._dtmf_edit(call, to, body, offer, target)
        webrtc = call.webrtc
        if edited != body and webrtc is not None and to in webrtc.sent:
            # What a browser was sent, for a refresh to offer again (its
            # unanchored form, edited alike).
            webrtc.sent[to] = self._dtmf_edit(call, to, webrtc.sent[to], offer, target)
        return edited

    def _dtmf_edit(
        self, call: Call, to: str, body: bytes, offer: bool, target: Target | None = None
    ) -> bytes:
        if not body:
            return body
        if self._dtmf_setting(call, to, target) in CONVERTED:
            return without_events(body)
        if offer:
            if self._is_agent(call, to, target):
                return with_events(body, audio_rates(body))
            return body
        offered = self._dtmf_state(call).offered.get(to, [])
        return answer_keeping_events(body, offered)

    # -- the bridge ------------------------------------------------------------------------

    def _dtmf_start(self, call: Call) -> None:
        """The call is answered (or its media changed): bridge DTMF if its legs differ."""
        self._dtmf_stop(call)
        media = call.media
        if media is None or call.state != "answered" or not call.a_sdp or not call.b_sdp:
            return
        try:
            a, b = self._leg_dtmf(call, media.a, media.b)
        except Exception:  # bad SDP must not break the call: it goes on without conversion
            log.exception("call %d: DTMF legs could not be read", call.id)
            return
        if a.mode == b.mode:
            return  # the same form on both legs: passed through as it is
        bridge = DtmfBridge(a, b)
        state = self._dtmf_state(call)
        state.link = DtmfLink(
            bridge, media, lambda side, digit, duration: self._send_dtmf_info(
                call, side, digit, duration)
        )  # fmt: skip
        state.link.muted = self._supervised_sides(call)  # type: ignore[attr-defined]
        log.info("call %d: DTMF converted between leg a (%s) and leg b (%s)", call.id, a.mode,
                 b.mode)  # fmt: skip

    def _dtmf_stop(self, call: Call) -> None:
        state = call.dtmf
        if state is not None and state.link is not None:
            state.link.close()
            state.link = None

    def _leg_dtmf(self, call: Call, leg_a: LegMedia, leg_b: LegMedia) -> tuple[LegDtmf, LegDtmf]:
        sdps = {"a": call.a_sdp, "b": call.b_sdp}
        legs = {"a": leg_a, "b": leg_b}
        own = {side: codecs_of(sdps[side]) for side in "ab"}
        # Payload types as the relay carries them: a transcoded browser's
        # side is in the other leg's numbering (its transcoders' far side).
        relay: list[Codec] = []
        for side in "ab":
            transcoder = _transcoders(legs[side])
            if transcoder is None:
                relay += own[side]
                continue
            inbound, _ = transcoder
            relay += [c for c in (inbound.transcoder.target, inbound.target_event) if c]
        events = {c.payload_type: c.clock_rate for c in relay if is_event(c)}
        clocks = {c.payload_type: c.clock_rate for c in relay if not is_event(c)}
        g711 = {0: "pcmu", 8: "pcma"}
        for c in relay:
            if c.name.casefold() in ("pcmu", "pcma") and c.clock_rate == 8000:
                g711[c.payload_type] = c.name.casefold()  # type: ignore[index]
        for pt in (0, 8):
            clocks.setdefault(pt, STATIC_PAYLOAD_TYPES[pt].clock_rate)
        out = []
        for side in "ab":
            setting = self._dtmf_setting(call, side)
            transcoder = _transcoders(legs[side])
            has_events = any(is_event(c) for c in own[side])
            if transcoder is not None:
                _, outbound = transcoder
                event = outbound.source_event
                has_events = event is not None and has_events
                event_out = (event.payload_type, event.clock_rate) if event else None
            else:
                voice = [c for c in own[side] if not is_event(c)]
                mine = event_for([c for c in own[side] if is_event(c)],
                                 voice[0].clock_rate if voice else 8000)  # fmt: skip
                event_out = (mine.payload_type, mine.clock_rate) if mine else None
            mode = ("rfc4733" if has_events else "inband") if setting == "auto" else setting
            out.append(LegDtmf(mode, events, event_out, g711, clocks))  # type: ignore[arg-type]
        return out[0], out[1]

    # -- INFO ----------------------------------------------------------------------------------

    def _dtmf_info(self, call: Call, req: Request, from_a: bool) -> bool:
        """An INFO inside the call: True when it is a key the bridge takes (answered here)."""
        state = call.dtmf
        link = state.link if state is not None else None
        side = "a" if from_a else "b"
        kind = (req.content_type or "").split(";", 1)[0].strip().lower()
        if link is None or not link.bridge.takes_info(side) or kind not in (DTMF_RELAY, DTMF):
            return False
        dialog = call.a_dialog if from_a else call.b_dialog
        if dialog is not None:
            try:
                dialog.receive_request(req)
            except DialogError as exc:
                self._answer(req, exc.status, exc.reason)  # type: ignore[attr-defined]
                return True
        try:
            digit = parse_info(req.content_type or "", req.body)
        except DtmfError as exc:
            # The key is lost, not the dialog: 200 all the same.
            log.warning("call %d: INFO from leg %s: %s", call.id, side, exc)
            self._answer(req, 200, "OK")  # type: ignore[attr-defined]
            return True
        self._answer(req, 200, "OK")  # type: ignore[attr-defined]
        link.info(side, digit.digit, digit.duration)
        return True

    def _send_dtmf_info(self, call: Call, side: str, digit: str, duration: float) -> None:
        state = self._dtmf_state(call)
        state.infos.setdefault(side, deque()).append((digit, duration))
        if side not in state.sending:
            self._next_dtmf_info(call, side)

    def _next_dtmf_info(self, call: Call, side: str) -> None:
        state = self._dtmf_state(call)
        queue = state.infos.get(side)
        state.sending.discard(side)
        dialog = call.a_dialog if side == "a" else call.b_dialog
        flow = call.a_flow if side == "a" else (call.target.flow if call.target else None)
        if not queue or dialog is None or flow is None or call.state != "answered":
            if queue:
                queue.clear()
            return
        digit, duration = queue.popleft()
        out = dialog.create_request("INFO", body=info_body(digit, duration),
                                    content_type=DTMF_RELAY)  # fmt: skip
        out.add("Via", self._via(flow), first=True)  # type: ignore[attr-defined]
        state.sending.add(side)
        self._send_request(out, flow, lambda event: self._dtmf_info_done(call, side, event))  # type: ignore[attr-defined]

    def _dtmf_info_done(self, call: Call, side: str, event: Event) -> None:
        if isinstance(event, ResponseReceived) and event.response.status < 200:
            return
        if isinstance(event, ResponseReceived) and event.response.status >= 300:
            log.warning("call %d: leg %s refused a DTMF INFO: %d %s", call.id, side,
                        event.response.status, event.response.reason)  # fmt: skip
        self._next_dtmf_info(call, side)


def _transcoders(leg: LegMedia):  # type: ignore[no-untyped-def]
    """(inbound, outbound) of a transcoded browser's leg, else None."""
    if isinstance(leg, WebRtcLeg) and leg.rtp.inbound is not None and leg.rtp.outbound:
        return leg.rtp.inbound, leg.rtp.outbound
    return None
