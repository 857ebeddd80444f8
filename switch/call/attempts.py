"""Leg B's attempts: which trunks the offer fits, and how long each may take.

A trunk's `codecs` decide which targets can take the caller's offer (488
when none can); `setup_timeout` gives up on a trunk that answers nothing
(the route's next trunk gets the call, as Kamailio's fr_timer does); a
route's or agent's `ring_timeout` ends a call that rings too long (480).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging

from ..sip.dialog import Dialog
from ..sip.offer_answer import restrict_codecs
from ..sip.sdp import SdpError, SessionDescription, parse_sdp
from ..sip.transaction import (
    ClientTransaction,
    Event,
    ResponseReceived,
)
from .model import Call
from .routing import Rejection, Target

log = logging.getLogger("switch.call")


class Attempts:
    """Part of `Calls` (a mixin): its helpers (`_dial`, `_end_a`, ...) are used here."""

    def _offer_to(self, call: Call, target: Target, body: bytes) -> bytes | None:
        """`body` with only the codecs of the trunks on the way (None: none left)."""
        tenant = self.router.config.tenants[call.caller.tenant]
        names = [call.caller.name] if call.caller.kind == "trunk" else []
        names += [target.name] if target.kind == "trunk" else []
        trunks = [tenant.trunks[n] for n in names if n in tenant.trunks]
        if not body or not trunks:
            return body
        return _restricted(body, tuple(tuple(trunk.codecs) for trunk in trunks))

    def _codec_targets(self, call: Call, target: Target) -> Target | Rejection:
        """`target` without the trunks that take no codec of A's offer (488 if none is left)."""
        body = self._offer_for_b(call)  # type: ignore[attr-defined]
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


@functools.lru_cache(maxsize=256)
def _restricted(body: bytes, allowed: tuple[tuple[str, ...], ...]) -> bytes | None:
    """`body` with only the codecs every one of `allowed` takes (None: none left).
    Cached: a call asks it of one offer for each trunk it may try, then again
    when it dials (the result is bytes: nothing shared can be changed)."""
    try:
        sdp = parse_sdp(body)
    except SdpError:
        return body  # not ours to judge: the far end says what is wrong
    restricted: SessionDescription | None = sdp
    for codecs in allowed:
        restricted = restrict_codecs(restricted, codecs)
        if restricted is None:
            return None
    return body if restricted is sdp else restricted.to_bytes()
