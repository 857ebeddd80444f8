"""What the node does with each request that reaches it outside a transaction.

The stack hands every new request here. Each method has one handler; a
method we know but do not serve yet gets 501 Not Implemented, an unknown one
405 with the Allow list, as RFC 3261 §8.2.1 asks. Later layers register
their handlers (REGISTER, INVITE, ...) with `handle()`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from ..sip.message import Request, Response, make_response
from ..sip.transaction import (
    AckReceived,
    CancelReceived,
    Event,
    RequestReceived,
)

log = logging.getLogger("switch.call")

# Methods of the SIP RFCs that a call center may one day serve.
KNOWN_METHODS = frozenset(
    "INVITE ACK BYE CANCEL OPTIONS REGISTER PRACK UPDATE INFO REFER MESSAGE SUBSCRIBE NOTIFY "
    "PUBLISH".split()
)

Handler = Callable[[RequestReceived], None]
Respond = Callable[[Response], None]


class Dispatcher:
    """Routes stack events to the handler of each SIP method."""

    def __init__(self, respond: Respond, server: str, supported: frozenset[str]) -> None:
        self._respond = respond
        self.server = server
        self.supported = supported
        self._handlers: dict[str, Handler] = {"OPTIONS": self._options}
        self._advertised: set[str] = {"OPTIONS"}
        self.on_ack: Callable[[AckReceived], None] | None = None
        self.on_cancel: Callable[[CancelReceived], None] | None = None
        self.on_other: Callable[[Event], None] | None = None

    def handle(self, method: str, handler: Handler, advertise: bool = True) -> None:
        """Send `method` to `handler`; `advertise=False` keeps it out of Allow
        (a handler that only screens requests for a service not there yet)."""
        self._handlers[method] = handler
        if advertise:
            self._advertised.add(method)
        else:
            self._advertised.discard(method)

    @property
    def allow(self) -> str:
        # ACK and CANCEL are always understood by the transaction layer.
        return ", ".join(sorted({*self._advertised, "ACK", "CANCEL"}))

    def __call__(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            req = event.request
            handler = self._handlers.get(req.method)
            if handler is not None:
                handler(event)
            elif req.method in KNOWN_METHODS:
                self.reply(req, 501)
            else:
                self.reply(req, 405, headers=[("Allow", self.allow)])
        elif isinstance(event, AckReceived):
            if self.on_ack is not None:
                self.on_ack(event)
        elif isinstance(event, CancelReceived):
            if self.on_cancel is not None:
                self.on_cancel(event)
        elif self.on_other is not None:
            self.on_other(event)

    def reply(
        self,
        req: Request,
        status: int,
        reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        to_tag: str | None = None,
    ) -> None:
        hdrs = [("Server", self.server), *(headers or [])]
        tag = to_tag if to_tag is not None or status == 100 else secrets.token_hex(6)
        self._respond(make_response(req, status, reason, to_tag=tag, headers=hdrs))

    def _options(self, event: RequestReceived) -> None:
        # OPTIONS outside a dialog is how trunks and monitors ping us: answer
        # with what we can do (RFC 3261 §11.2).
        headers = [
            ("Allow", self.allow),
            ("Accept", "application/sdp"),
            ("Accept-Language", "en"),
        ]
        if self.supported:
            headers.append(("Supported", ", ".join(sorted(self.supported))))
        self.reply(event.request, 200, headers=headers)
