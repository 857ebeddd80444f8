"""The SIP stack: bytes in, bytes and events out.

`SipStack` joins the pieces of the sans-IO core in the order a UAS needs them:
parse, stamp the Via with where the request really came from, validate,
answer what is broken, and hand the rest to the transaction layer. It owns no
socket and reads no clock, like everything in `switch.sip`; the asyncio
adapter (`switch.endpoint`) feeds it and drains it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable

from .errors import ParseError
from .flow import Flow
from .message import Request, Response, make_response, parse_message
from .transaction import ClientTransaction, Event, Timers, TransactionLayer
from .validate import can_answer, check_request, check_response
from .via import Via

log = logging.getLogger("switch.sip")


class SipStack:
    """Parse, validate and run transactions for one node."""

    def __init__(
        self,
        timers: Timers | None = None,
        supported: Iterable[str] = (),
        server: str = "switch",
    ) -> None:
        self.transactions = TransactionLayer(timers or Timers())
        self.supported = frozenset(supported)
        self.server = server
        self.stats: Counter[str] = Counter()
        self._out: list[tuple[bytes, Flow]] = []
        # Policy hook: returns why to drop a request silently (e.g. "scanner"),
        # or None. No answer at all is the point: it tells a scanner nothing.
        self.screen: Callable[[Request, Flow], str | None] | None = None
        # Policy hook: a response to send without a transaction, or None.
        # RFC 3261 §8.2.7 allows a stateless UAS for challenges: half of all
        # registration traffic is the first REGISTER, which only needs a 401.
        self.stateless: Callable[[Request, Flow], Response | None] | None = None

    # -- input --------------------------------------------------------------

    def receive_data(self, data: bytes, flow: Flow, now: float) -> None:
        """One datagram, or one framed message from a stream."""
        self.stats["received"] += 1
        try:
            msg = parse_message(data, datagram=not flow.reliable)
        except ParseError as exc:
            self._reject_unparseable(exc, flow)
            return
        if isinstance(msg, Request):
            self._receive_request(msg, flow, now)
        else:
            self._receive_response(msg, flow, now)

    def _reject_unparseable(self, exc: ParseError, flow: Flow) -> None:
        req = exc.message
        if isinstance(req, Request) and can_answer(req) and req.cseq.method != "ACK":
            self._stamp_via(req, flow)
            self._answer_error(req, flow, exc.status, _phrase(exc.status, exc.reason))
            log.info("rejected request from %s: %s", flow, exc.reason)
            return
        self.stats["dropped_unparseable"] += 1
        log.info("dropped unparseable message from %s: %s", flow, exc.reason)

    def _receive_request(self, req: Request, flow: Flow, now: float) -> None:
        if not can_answer(req):
            self.stats["dropped_unanswerable"] += 1
            log.info("dropped request from %s: headers needed to answer are missing", flow)
            return
        if self.screen is not None:
            why = self.screen(req, flow)
            if why is not None:
                self.stats[f"dropped_{why}"] += 1
                return
        self._stamp_via(req, flow)
        rejection = check_request(req, self.supported)
        if rejection is not None:
            if req.method != "ACK":
                self._answer_error(req, flow, rejection.status, rejection.reason, rejection.headers)
            else:
                self.stats["dropped_invalid_ack"] += 1
            log.info(
                "rejected %s from %s: %d %s", req.method, flow, rejection.status, rejection.reason
            )
            return
        if self.stateless is not None and req.method != "ACK":
            resp = self.stateless(req, flow)
            if resp is not None:
                self._out.append((bytes(resp), flow))
                self.stats["answered_stateless"] += 1
                return
        self.transactions.receive(req, flow, now)

    def _receive_response(self, resp: Response, flow: Flow, now: float) -> None:
        problem = check_response(resp)
        if problem is not None:
            self.stats["dropped_invalid_response"] += 1
            log.info("dropped response from %s: %s", flow, problem)
            return
        self.transactions.receive(resp, flow, now)

    def _stamp_via(self, req: Request, flow: Flow) -> None:
        """Record where the request came from in its top Via.

        RFC 3261 §18.2.1 (received) and RFC 3581 (rport). Responses go back
        to the source address and port in any case (symmetric response
        routing, what Asterisk calls force_rport and has on by default), as
        peers behind NAT can be reached nowhere else.
        """
        via = req.top_via
        host, port = flow.remote
        needs_received = _bare(via.host) != host
        if not needs_received and "rport" not in via.params:
            return
        params = dict(via.params)
        if needs_received or "rport" in params:
            params["received"] = host
        if "rport" in params:
            params["rport"] = str(port)
        stamped = Via(via.transport, via.host, via.port, params, via.protocol)
        req.replace_top_via(stamped)

    def _answer_error(
        self,
        req: Request,
        flow: Flow,
        status: int,
        reason: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        # Errors found before a transaction exists are answered statelessly:
        # a retransmission of the same broken request gets the same answer.
        resp = make_response(req, status, reason, to_tag=_error_tag(req), headers=headers)
        self._out.append((bytes(resp), flow))
        self.stats[f"answered_{status}"] += 1

    # -- output -------------------------------------------------------------

    def send_request(self, req: Request, flow: Flow, now: float) -> ClientTransaction:
        return self.transactions.send_request(req, flow, now)

    def send_response(self, resp: Response, now: float) -> None:
        self.transactions.send_response(resp, now)

    def send_stateless(self, data: bytes, flow: Flow) -> None:
        """Bytes that belong to no transaction (ACK to a 2xx, keepalives)."""
        self._out.append((data, flow))

    def transport_error(self, flow: Flow, now: float) -> None:
        """`flow` failed (a send was refused, its connection closed): its
        transactions fail at once instead of waiting for their timers."""
        self.transactions.transport_error(flow, now)

    def datagrams_to_send(self) -> list[tuple[bytes, Flow]]:
        out = self._out
        self._out = []
        out.extend(self.transactions.datagrams_to_send())
        return out

    def events(self) -> list[Event]:
        return self.transactions.events()

    # -- time -----------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return self.transactions.next_deadline()

    def handle_timer(self, now: float) -> None:
        self.transactions.handle_timer(now)


def _bare(host: str) -> str:
    return host[1:-1] if host.startswith("[") else host


def _error_tag(req: Request) -> str | None:
    # A final response outside a dialog needs a To tag (RFC 3261 §8.2.6.2); a
    # stable one, so that retransmissions get identical answers.
    try:
        if req.to.tag is not None:
            return None
    except ParseError:
        return None
    key = (req.get("Call-ID"), req.get("Via"), req.get("CSeq"))
    return f"err{abs(hash(key)) % 10**10}"


def _phrase(status: int, detail: str) -> str:
    from .message import REASONS

    base = REASONS.get(status, "Error")
    # Reason phrases are one line of UTF-8 text; keep the detail short.
    detail = " ".join(detail.split())[:120]
    return f"{base} ({detail})"
