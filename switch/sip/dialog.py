"""SIP dialogs (RFC 3261 §12, with the dialog parts of §13-15).

A dialog is the state two user agents keep between them for the life of a
call: who is who (Call-ID and tags), where to send the next request (remote
target and route set) and the CSeq numbers in each direction. This module
builds and checks in-dialog requests; it sends nothing and reads no clock.

Requests made here carry no Via: the top Via and its branch belong to the
transaction that sends the request, so the caller (transaction layer or
transport) adds it before sending.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .address import Address, parse_address
from .errors import ParseError, SipError
from .message import CSeq, Request, Response
from .uri import URI, SipURI

# Requests (and their 2xx) that replace the remote target: RFC 3261 §12.2
# (INVITE), RFC 3311 (UPDATE), RFC 6665 (SUBSCRIBE, NOTIFY).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"})

# RFC 3261 §8.1.1.6: the value to use unless there is a reason not to.
MAX_FORWARDS = 70


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Role(enum.Enum):
    UAC = "uac"  # we sent the request that created the dialog
    UAS = "uas"  # we answered it


@dataclass(frozen=True, slots=True)
class DialogId:
    """Call-ID and the two tags, seen from our side (RFC 3261 §12).

    `remote_tag` is "" when the peer sent no tag (an RFC 2543 peer).
    """

    call_id: str
    local_tag: str
    remote_tag: str


class DialogError(SipError):
    """An in-dialog request to refuse; `status` and `reason` are the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class Dialog:
    """One dialog as seen by one side.

    `local_uri` and `remote_uri` are the From and To addresses of requests we
    send (tags included); `route_set` is in the order Route headers are
    written; `local_seq` is the CSeq number of the last request we sent and
    `remote_seq` that of the last request received (None: none yet).
    `local_target` is our Contact, written into target refresh requests.
    """

    def __init__(
        self,
        id: DialogId,
        role: Role,
        state: DialogState,
        local_uri: Address,
        remote_uri: Address,
        remote_target: URI,
        route_set: list[Address],
        local_seq: int | None = None,
        remote_seq: int | None = None,
        secure: bool = False,
        local_target: URI | None = None,
    ) -> None:
        self.id = id
        self.role = role
        self.state = state
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.secure = secure
        self.local_target = local_target

    def __repr__(self) -> str:
        i = self.id
        return (
            f"<Dialog {self.role.value} {self.state.value} {i.call_id} "
            f"local={i.local_tag} remote={i.remote_tag or '-'}>"
        )

    # -- creation -------------------------------------------------------------

    @classmethod
    def from_uac_response(
        cls, request: Request, response: Response, local_seq: int | None = None
    ) -> Dialog:
        """The dialog a response to our request creates (RFC 3261 §12.1.2).

        A 101-199 with a To tag makes an early dialog, a 2xx a confirmed one.
        `local_seq` defaults to the request's CSeq; pass a higher number if
        other requests (PRACK, say) were already sent with later ones.
        """
        status = response.status
        remote_tag = response.to.tag or ""
        if not (100 < status < 300) or (status < 200 and not remote_tag):
            raise ValueError(f"a {status} response without a To tag creates no dialog")
        local_tag = request.from_.tag
        if not local_tag:
            raise ValueError("our request has no From tag")
        if status >= 200:
            target = _contact_uri(response)
        else:
            # A 1xx often comes without a Contact; until one arrives,
            # requests in the early dialog go where the INVITE went.
            target = _optional_contact_uri(response) or request.uri
        return cls(
            id=DialogId(response.call_id, local_tag, remote_tag),
            role=Role.UAC,
            state=DialogState.CONFIRMED if status >= 200 else DialogState.EARLY,
            local_uri=request.from_,
            remote_uri=response.to,
            remote_target=target,
            route_set=_record_route(response)[::-1],
            local_seq=request.cseq.number if local_seq is None else local_seq,
            secure=_is_sips(request.uri),
            local_target=_optional_contact_uri(request),
        )

    @classmethod
    def from_uas_request(
        cls, request: Request, local_tag: str, local_target: URI | None = None
    ) -> Dialog:
        """The dialog we create by answering `request` (RFC 3261 §12.1.1).

        It starts early; `response_sent` moves it on when the final answer
        goes out. `local_target` is the Contact we answer with. The request
        itself is not passed to `receive_request` afterwards: its CSeq is
        already the remote sequence number.
        """
        remote_tag = request.from_.tag or ""
        return cls(
            id=DialogId(request.call_id, local_tag, remote_tag),
            role=Role.UAS,
            state=DialogState.EARLY,
            local_uri=request.to.with_tag(local_tag),
            remote_uri=request.from_,
            remote_target=_contact_uri(request),
            route_set=_record_route(request),
            remote_seq=request.cseq.number,
            secure=_is_sips(request.uri),
            local_target=local_target,
        )

    # -- sending ----------------------------------------------------------------

    def create_request(
        self,
        method: str,
        headers: Iterable[tuple[str, object]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """A new request in this dialog (RFC 3261 §12.2.1.1), with the next CSeq.

        Writes Request-URI, Max-Forwards, Route, From, To, Call-ID, CSeq,
        Contact (target refresh requests, when `local_target` is known and
        `headers` has none), then `headers`, Content-Type and Content-Length.
        No Via: the caller adds the top Via with its branch.
        """
        method = method.upper()
        if method in ("ACK", "CANCEL"):
            # Both reuse the INVITE's CSeq number instead of taking the next;
            # a CANCEL also copies the INVITE's Via, so it is built from it.
            raise ValueError(f"{method} is not a new request: use create_ack or the INVITE")
        if self.state is DialogState.TERMINATED:
            raise ValueError(f"cannot send {method} in a terminated dialog")
        if method == "BYE" and self.role is Role.UAS and self.state is DialogState.EARLY:
            # RFC 3261 §15: the callee ends an unanswered call with a final
            # response, never with BYE.
            raise ValueError("the UAS cannot send BYE in an early dialog; answer the INVITE")
        # RFC 3261 §12.2.1.1: an empty local sequence number starts anywhere
        # below 2**31; 1 keeps traces readable.
        self.local_seq = 1 if self.local_seq is None else self.local_seq + 1
        req = self._build(method, self.local_seq, headers)
        if method in TARGET_REFRESH and self.local_target is not None and "contact" not in req:
            req.add("Contact", Address(self.local_target))
        req.set_body(body, content_type)
        return req

    def create_ack(
        self,
        invite_cseq: int,
        headers: Iterable[tuple[str, object]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """The ACK for a 2xx to the INVITE with CSeq `invite_cseq` (RFC 3261 §13.2.2.4).

        Routed like any in-dialog request; it does not advance `local_seq`.
        """
        req = self._build("ACK", invite_cseq, headers)
        req.set_body(body, content_type)
        return req

    def _build(self, method: str, number: int, headers: Iterable[tuple[str, object]]) -> Request:
        uri, routes = self._request_uri_and_routes()
        lines: list[tuple[str, object]] = [("Max-Forwards", MAX_FORWARDS)]
        lines += [("Route", route) for route in routes]
        lines += [
            ("From", self.local_uri),
            ("To", self.remote_uri),
            ("Call-ID", self.id.call_id),
            ("CSeq", CSeq(number, method)),
        ]
        lines += headers
        return Request(method, uri, lines)

    def _request_uri_and_routes(self) -> tuple[URI, list[Address]]:
        """Request-URI and Route values per RFC 3261 §12.2.1.1."""
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0].uri
        if isinstance(first, SipURI) and first.lr:
            return self.remote_target, list(self.route_set)
        # Strict router (RFC 2543): it expects its own URI as the
        # Request-URI, so the remote target travels as the last Route.
        if isinstance(first, SipURI) and ("method" in first.params or first.headers):
            # Neither is allowed in a Request-URI (RFC 3261 §19.1.1).
            params = {k: v for k, v in first.params.items() if k != "method"}
            first = first.replace(params=params, headers=None)
        return first, [*self.route_set[1:], Address(self.remote_target)]

    def next_hop(self) -> URI:
        """The URI to resolve (RFC 3263) to find where a request goes (RFC 3261 §8.1.2).

        The first route when there is a route set: a loose router is named in
        the top Route, a strict one is the Request-URI, so both routing modes
        give the same hop. With no route set, the remote target.
        """
        return self.route_set[0].uri if self.route_set else self.remote_target

    # -- receiving ----------------------------------------------------------------

    def receive_request(self, request: Request) -> None:
        """Check and apply a request that matched this dialog (RFC 3261 §12.2.2).

        Raises DialogError with the status to answer: 481 when the dialog is
        terminated, 500 when the CSeq is not above the last one received.
        ACK and CANCEL repeat the INVITE's CSeq, so they are not checked, and
        an ACK never raises (nothing answers it). A BYE terminates the dialog
        (§15.1.2); a target refresh request with a Contact replaces the
        remote target.
        """
        method = request.method
        if method == "ACK":
            return
        if self.state is DialogState.TERMINATED:
            raise DialogError(481, "Call/Transaction Does Not Exist")
        if method == "CANCEL":
            return
        number = request.cseq.number
        if self.remote_seq is not None and number <= self.remote_seq:
            raise DialogError(500, "CSeq out of order")
        self.remote_seq = number
        if method in TARGET_REFRESH:
            self._refresh_target(request)
        if method == "BYE":
            self.state = DialogState.TERMINATED

    def receive_response(self, response: Response) -> None:
        """Apply a response to a request we sent in this dialog (UAC side).

        - 2xx to the INVITE of an early dialog confirms it, and its
          Record-Route becomes the route set (RFC 3261 §13.2.2.4);
        - a 2xx to a target refresh request with a Contact replaces the
          remote target (§12.2.1.2), and so does a 1xx in an early dialog;
        - a 300-699 to the INVITE of an early dialog, and a 199 (RFC 6228),
          terminate the early dialog;
        - 481 and 408 to any in-dialog request terminate the dialog
          (§12.2.1.2), and so does a final answer to our BYE (§15.1.1)
          except an authentication challenge, which the caller retries.
        """
        if self.state is DialogState.TERMINATED:
            return
        status = response.status
        method = response.cseq.method
        early = self.state is DialogState.EARLY
        if _ends_dialog(status, method, early):
            self.state = DialogState.TERMINATED
        elif method in TARGET_REFRESH and (200 <= status < 300 or (early and status > 100)):
            # Later 1xx of the initial INVITE may also move the early
            # dialog's target: the callee names itself before it answers.
            self._refresh_target(response)
            if early and status >= 200 and method == "INVITE":
                self.state = DialogState.CONFIRMED
                self.route_set = _record_route(response)[::-1]

    def response_sent(self, response: Response) -> None:
        """Apply a response we sent to the request that created the dialog (UAS side).

        A 2xx confirms an early dialog; a 300-699 terminates it.
        """
        if self.state is not DialogState.EARLY or response.cseq.method != "INVITE":
            return
        if 200 <= response.status < 300:
            self.state = DialogState.CONFIRMED
        elif response.status >= 300:
            self.state = DialogState.TERMINATED

    def terminate(self) -> None:
        """End the dialog from outside (timeout, transaction end, B2BUA teardown)."""
        self.state = DialogState.TERMINATED

    def _refresh_target(self, msg: Request | Response) -> None:
        # "If present": a refresh without a Contact keeps the old target.
        if "contact" in msg:
            self.remote_target = _contact_uri(msg)


class DialogTable:
    """Our dialogs by DialogId, and the matching rules of RFC 3261 §12.

    Terminated dialogs stay until removed, so that late requests still find
    them and get 481 rather than being mistaken for new calls.
    """

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def add(self, dialog: Dialog) -> None:
        self._dialogs[dialog.id] = dialog

    def remove(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.pop(dialog_id, None)

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def __len__(self) -> int:
        return len(self._dialogs)

    def __contains__(self, dialog_id: object) -> bool:
        return dialog_id in self._dialogs

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def match(self, request: Request) -> Dialog | None:
        """The dialog of a received request: its To tag is ours, its From tag theirs."""
        local = request.to.tag
        if not local:
            return None
        return self._dialogs.get(DialogId(request.call_id, local, request.from_.tag or ""))

    def match_response(self, response: Response) -> Dialog | None:
        """The dialog of a received response: its From tag is ours, its To tag theirs."""
        local = response.from_.tag
        if not local:
            return None
        return self._dialogs.get(DialogId(response.call_id, local, response.to.tag or ""))

    def dialog_set(self, call_id: str, local_tag: str) -> list[Dialog]:
        """Every dialog from one request of ours: the forks of one INVITE."""
        return [
            d
            for d in self._dialogs.values()
            if (d.id.call_id, d.id.local_tag) == (call_id, local_tag)
        ]

    def receive_uac_response(self, request: Request, response: Response) -> Dialog | None:
        """Apply a response to a dialog-creating request we sent (RFC 3261 §12.1.2, §13.2.2).

        Each To tag is a dialog of its own: a fork's first 1xx with a tag or
        2xx creates one, later responses update it. A 300-699 ends every
        early dialog of the set, whichever tag it carries (§12.3). Returns
        the dialog the response belongs to, or None.
        """
        dialog = self.match_response(response)
        status = response.status
        if dialog is None and 100 < status < 300 and (status >= 200 or response.to.tag):
            dialog = Dialog.from_uac_response(request, response)
            self.add(dialog)
            return dialog
        if status >= 300:
            for early in self.dialog_set(response.call_id, response.from_.tag or ""):
                if early.state is DialogState.EARLY:
                    early.terminate()
        if dialog is not None:
            dialog.receive_response(response)
        return dialog


def check_in_dialog_request(table: DialogTable, request: Request) -> Dialog | None:
    """Find and check the dialog of a received request (RFC 3261 §12.2.2).

    The rule:
    - no To tag: not an in-dialog request; returns None (new call, OPTIONS...);
    - a To tag that matches a dialog: `Dialog.receive_request` checks and
      applies it (so it may raise DialogError 481 or 500); returns the dialog;
    - a To tag that matches nothing: raises DialogError(481), except for ACK,
      which cannot be answered and returns None for the caller to drop.
    """
    if not request.to.tag:
        return None
    dialog = table.match(request)
    if dialog is None:
        if request.method == "ACK":
            return None
        raise DialogError(481, "Call/Transaction Does Not Exist")
    dialog.receive_request(request)
    return dialog


# -- helpers ------------------------------------------------------------------------


def _contact_uri(msg: Request | Response) -> URI:
    """The single Contact URI of a message, which a dialog needs."""
    uri = _optional_contact_uri(msg)
    if uri is None:
        raise ParseError("missing Contact header: it names the remote target of the dialog")
    return uri


def _optional_contact_uri(msg: Request | Response) -> URI | None:
    contacts = msg.contact
    if not contacts:
        return None
    if len(contacts) > 1 or contacts[0].wildcard:
        raise ParseError("a dialog needs exactly one Contact URI")
    return contacts[0].uri


def _ends_dialog(status: int, method: str, early: bool) -> bool:
    """Whether a response to our request ends the dialog (see receive_response)."""
    if status in (408, 481):
        return True
    if early and (status == 199 or (method == "INVITE" and status >= 300)):
        return True
    return method == "BYE" and status >= 200 and status not in (401, 407)


def _record_route(msg: Request | Response) -> list[Address]:
    return [parse_address(value) for value in msg.get_all("record-route")]


def _is_sips(uri: URI) -> bool:
    # A SIPS Request-URI is only sent over TLS (RFC 5630), so the scheme
    # alone stands for RFC 3261's "sent over TLS with a SIPS URI".
    return uri.scheme == "sips"
