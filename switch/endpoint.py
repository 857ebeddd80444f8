"""The asyncio adapter around the sans-IO SIP stack.

Messages from the transports go into the stack with the loop's time; what the
stack wants sent goes to the transports; its events go to the application;
its next deadline becomes one `call_at` timer. Like aioquic's asyncio
protocol, this is the only place where the SIP core meets the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .sip.flow import Flow
from .sip.message import Request, Response, make_response
from .sip.stack import SipStack
from .sip.transaction import (
    ClientTransaction,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)

log = logging.getLogger("switch.endpoint")

Send = Callable[[bytes, Flow], bool]
EventHandler = Callable[[Event], None]


class Endpoint:
    def __init__(
        self,
        stack: SipStack,
        send: Send,
        on_event: EventHandler,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.stack = stack
        self._send = send
        self.on_event = on_event
        self._loop = loop or asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pumping = False
        # Client transactions whose final response someone awaits (request()).
        self._waiting: dict[ClientTransaction, asyncio.Future[Response]] = {}
        # Client transactions whose every event goes to a callback (send_request()).
        self._listeners: dict[ClientTransaction, EventHandler] = {}

    def now(self) -> float:
        return self._loop.time()

    # -- from the transports ---------------------------------------------------

    def on_message(self, data: bytes, flow: Flow) -> None:
        self.stack.receive_data(data, flow, self._loop.time())
        self._pump()

    # -- from the application ----------------------------------------------------

    def send_request(
        self, req: Request, flow: Flow, on_event: EventHandler | None = None
    ) -> ClientTransaction:
        """Start a client transaction; `on_event` gets its responses (1xx
        included), its timeout and its transport error, until it ends."""
        txn = self.stack.send_request(req, flow, self._loop.time())
        if on_event is not None:
            self._listeners[txn] = on_event
        self._pump()
        return txn

    def request(self, req: Request, flow: Flow) -> asyncio.Future[Response]:
        """Send a request; the future gets its final response.

        A timeout gives a made-up 408 and a failed flow a 503: RFC 3261
        §8.1.3.1 has the client act as if it had received them.
        """
        future: asyncio.Future[Response] = self._loop.create_future()
        txn = self.stack.send_request(req, flow, self._loop.time())
        self._waiting[txn] = future
        self._pump()
        return future

    def send_response(self, resp: Response) -> None:
        self.stack.send_response(resp, self._loop.time())
        self._pump()

    def send_stateless(self, data: bytes, flow: Flow) -> None:
        self.stack.send_stateless(data, flow)
        self._pump()

    # -- the pump ----------------------------------------------------------------

    def _pump(self) -> None:
        # The application may answer from inside on_event; those sends are
        # picked up by this same loop rather than by a nested pump.
        if self._pumping:
            return
        self._pumping = True
        try:
            while True:
                for data, flow in self.stack.datagrams_to_send():
                    if not self._send(data, flow):
                        self.stack.stats["send_failed"] += 1
                        # RFC 3261 §8.1.3.1: the client acts as on a 503, now.
                        self.stack.transport_error(flow, self._loop.time())
                events = self.stack.events()
                if not events:
                    break
                for event in events:
                    self._deliver(event)
        finally:
            self._pumping = False
        self._arm_timer()

    def _deliver(self, event: Event) -> None:
        handler = self.on_event
        if isinstance(event, ResponseReceived | TransactionTimeout | TransportError):
            txn = event.transaction
            future = self._waiting.get(txn)  # type: ignore[arg-type]
            if future is not None:
                self._settle(event, future)
                return
            listener = self._listeners.get(txn)  # type: ignore[arg-type]
            if listener is not None:
                handler = listener
        elif isinstance(event, TransactionTerminated):
            self._listeners.pop(event.transaction, None)  # type: ignore[arg-type]
        try:
            handler(event)
        except Exception:
            # A bug in one call's handling must not take the node down; the
            # caller gets a 500 rather than silence.
            log.exception("error while handling %s", type(event).__name__)
            self.stack.stats["handler_errors"] += 1
            if isinstance(event, RequestReceived) and event.request.method != "ACK":
                try:
                    self.stack.send_response(
                        make_response(event.request, 500, "Server Internal Error"),
                        self._loop.time(),
                    )
                except Exception:
                    log.debug("could not answer 500", exc_info=True)

    def _settle(
        self, event: ResponseReceived | TransactionTimeout | TransportError, future: asyncio.Future
    ) -> None:
        txn = event.transaction
        if isinstance(event, ResponseReceived):
            if event.response.status < 200:
                return
            resp = event.response
        else:
            status = 408 if isinstance(event, TransactionTimeout) else 503
            resp = make_response(txn.request, status)
        del self._waiting[txn]  # type: ignore[arg-type]
        if not future.done():
            future.set_result(resp)

    def _arm_timer(self) -> None:
        deadline = self.stack.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.stack.handle_timer(self._loop.time())
        self._pump()

    def close(self) -> None:
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()
        self._listeners.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
