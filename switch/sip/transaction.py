"""SIP transactions: RFC 3261 §17 with the RFC 6026 fixes, sans-IO.

Messages and the current time go in; bytes to send and events come out.
The layer never reads a clock: the caller asks `next_deadline()` when to call
`handle_timer(now)` next, and calls it at that time (a late call shifts the
later retransmissions, as a late OS timer would). After every call into the
layer (`receive`, `send_request`, `send_response`, `send_stateless`,
`handle_timer`, `transport_error`) the caller drains `datagrams_to_send()`
and `events()`, and re-reads `next_deadline()`.

What the layer does by itself: answers a new INVITE with 100 Trying and a
retransmitted request with the last response; ACKs non-2xx finals to its
INVITEs; answers CANCEL (200, or 481 when no INVITE matches). What it leaves
to the TU: the ACK to a 2xx it receives (built from the dialog and sent with
`send_stateless`), the 487 to a cancelled INVITE, and a BYE after
`AckTimeout` for a 2xx.

Each of the four machines is a table {(state, input): (next state, actions)}.
A pair missing from a table is never a crash:

- an input from the network or a timer (a late response, an ACK in the wrong
  state, ...) is ignored and counted in `TransactionLayer.ignored`;
- an input from the TU (a response the transaction cannot send in its state)
  is a TU bug and raises `TransactionError`.

Two choices beyond the RFCs, both because the Accepted state (RFC 6026)
already lives exactly as long as they need:

- The INVITE server transaction retransmits its 2xx from Accepted (T1,
  doubling, capped at T2) until the ACK arrives; RFC 3261 §13.3.1.4 puts this
  in the UAS core. As §13.3.1.4 requires, this happens on reliable flows too,
  because proxies further along may use UDP. An ACK to a 2xx carries a new
  branch, so the layer finds the Accepted transaction by dialog (Call-ID,
  From tag, To tag, CSeq number) to stop the retransmissions; the ACK is
  still passed to the TU (`AckReceived`).
- A transport error in the INVITE client's Proceeding state ends it. RFC 3261
  has no timer there, so an INVITE to a browser whose WebSocket closed while
  ringing would otherwise wait forever.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
from collections import Counter
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, TypeAlias

from .errors import SipError
from .flow import Flow
from .message import Request, Response, make_response
from .timers import Timers
from .via import MAGIC_COOKIE


class TransactionError(SipError):
    """The TU asked the transaction layer for something impossible: a TU bug."""


def new_branch() -> str:
    """A fresh Via branch for a new client transaction (RFC 3261 §8.1.1.7)."""
    return MAGIC_COOKIE + secrets.token_hex(10)


# -- the machines as data ---------------------------------------------------------


class State(Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"

    # Enum's own __hash__ is Python code; members are singletons compared by
    # identity, and tables are looked up per message.
    __hash__ = object.__hash__


class Input(StrEnum):
    REQUEST = "request"  # creates the transaction
    RETRANSMISSION = "retransmitted request"
    TU_1XX = "1xx from TU"
    TU_2XX = "2xx from TU"
    TU_FINAL = "300-699 from TU"
    RECV_1XX = "1xx received"
    RECV_2XX = "2xx received"
    RECV_FINAL = "300-699 received"
    ACK = "ACK"
    TIMER_A = "timer A"
    TIMER_B = "timer B"
    TIMER_D = "timer D"
    TIMER_E = "timer E"
    TIMER_F = "timer F"
    TIMER_G = "timer G"
    TIMER_H = "timer H"
    TIMER_I = "timer I"
    TIMER_J = "timer J"
    TIMER_K = "timer K"
    TIMER_L = "timer L"
    TIMER_M = "timer M"
    TIMER_2XX = "2xx retransmit timer"  # RFC 3261 §13.3.1.4, run here (see above)
    TRANSPORT_ERROR = "transport error"

    __hash__ = str.__hash__  # as fast as the str it equals (see State)


TU_INPUTS = frozenset({Input.TU_1XX, Input.TU_2XX, Input.TU_FINAL})


class Action(Enum):
    SEND_REQUEST = "send request"
    SEND_ACK = "send ACK"  # to a 300-699, built once by the client transaction
    SEND_100 = "send 100 Trying"
    SEND_RESPONSE = "send the TU's response"
    RESEND_RESPONSE = "resend last response"
    RESPONSE_TO_TU = "pass response to TU"
    ACK_TO_TU = "pass ACK to TU"
    TIMEOUT_TO_TU = "inform TU: no response"
    NO_ACK_TO_TU = "inform TU: no ACK"
    ERROR_TO_TU = "inform TU: transport error"
    START_A = "start timer A"
    START_B = "start timer B"
    START_D = "start timer D"
    START_E = "start timer E"
    START_F = "start timer F"
    START_G = "start timer G"
    START_H = "start timer H"
    START_I = "start timer I"
    START_J = "start timer J"
    START_K = "start timer K"
    START_L = "start timer L"
    START_M = "start timer M"
    START_2XX = "start 2xx retransmit timer"
    BACK_OFF = "restart retransmit timer, interval doubled up to its cap"
    EVERY_T2 = "restart retransmit timer at T2"
    STOP_RETRANSMIT = "stop retransmit timer"
    STOP_TIMEOUT = "stop timeout timer"

    __hash__ = object.__hash__  # see State


Row: TypeAlias = tuple[State, tuple[Action, ...]]
Table: TypeAlias = dict[tuple[State | None, Input], Row]

S, In, A = State, Input, Action  # short names keep the tables one row per line

# RFC 3261 §17.1.1, Figure 5, with RFC 6026 §8.4 (Accepted, timer M).
INVITE_CLIENT: Table = {
    (None, In.REQUEST): (S.CALLING, (A.SEND_REQUEST, A.START_A, A.START_B)),
    (S.CALLING, In.TIMER_A): (S.CALLING, (A.SEND_REQUEST, A.BACK_OFF)),
    (S.CALLING, In.TIMER_B): (S.TERMINATED, (A.TIMEOUT_TO_TU,)),
    (S.CALLING, In.TRANSPORT_ERROR): (S.TERMINATED, (A.ERROR_TO_TU,)),
    (S.CALLING, In.RECV_1XX): (
        S.PROCEEDING,
        (A.RESPONSE_TO_TU, A.STOP_RETRANSMIT, A.STOP_TIMEOUT),
    ),
    (S.CALLING, In.RECV_2XX): (S.ACCEPTED, (A.RESPONSE_TO_TU, A.STOP_RETRANSMIT, A.START_M)),
    (S.CALLING, In.RECV_FINAL): (
        S.COMPLETED,
        (A.RESPONSE_TO_TU, A.SEND_ACK, A.STOP_RETRANSMIT, A.START_D),
    ),
    (S.PROCEEDING, In.RECV_1XX): (S.PROCEEDING, (A.RESPONSE_TO_TU,)),
    (S.PROCEEDING, In.RECV_2XX): (S.ACCEPTED, (A.RESPONSE_TO_TU, A.START_M)),
    (S.PROCEEDING, In.RECV_FINAL): (S.COMPLETED, (A.RESPONSE_TO_TU, A.SEND_ACK, A.START_D)),
    (S.PROCEEDING, In.TRANSPORT_ERROR): (S.TERMINATED, (A.ERROR_TO_TU,)),  # not in 3261
    (S.COMPLETED, In.RECV_FINAL): (S.COMPLETED, (A.SEND_ACK,)),
    (S.COMPLETED, In.TRANSPORT_ERROR): (S.TERMINATED, (A.ERROR_TO_TU,)),
    (S.COMPLETED, In.TIMER_D): (S.TERMINATED, ()),
    # Every 2xx goes up, so that the TU ACKs each fork and each retransmission.
    (S.ACCEPTED, In.RECV_2XX): (S.ACCEPTED, (A.RESPONSE_TO_TU,)),
    (S.ACCEPTED, In.TIMER_M): (S.TERMINATED, ()),
}

# RFC 3261 §17.1.2, Figure 6.
NON_INVITE_CLIENT: Table = {
    (None, In.REQUEST): (S.TRYING, (A.SEND_REQUEST, A.START_E, A.START_F)),
    (S.TRYING, In.TIMER_E): (S.TRYING, (A.SEND_REQUEST, A.BACK_OFF)),
    (S.TRYING, In.TIMER_F): (S.TERMINATED, (A.TIMEOUT_TO_TU,)),
    (S.TRYING, In.TRANSPORT_ERROR): (S.TERMINATED, (A.ERROR_TO_TU,)),
    (S.TRYING, In.RECV_1XX): (S.PROCEEDING, (A.RESPONSE_TO_TU,)),
    (S.TRYING, In.RECV_2XX): (S.COMPLETED, (A.RESPONSE_TO_TU, A.STOP_RETRANSMIT, A.START_K)),
    (S.TRYING, In.RECV_FINAL): (S.COMPLETED, (A.RESPONSE_TO_TU, A.STOP_RETRANSMIT, A.START_K)),
    (S.PROCEEDING, In.TIMER_E): (S.PROCEEDING, (A.SEND_REQUEST, A.EVERY_T2)),
    (S.PROCEEDING, In.TIMER_F): (S.TERMINATED, (A.TIMEOUT_TO_TU,)),
    (S.PROCEEDING, In.TRANSPORT_ERROR): (S.TERMINATED, (A.ERROR_TO_TU,)),
    (S.PROCEEDING, In.RECV_1XX): (S.PROCEEDING, (A.RESPONSE_TO_TU,)),
    (S.PROCEEDING, In.RECV_2XX): (
        S.COMPLETED,
        (A.RESPONSE_TO_TU, A.STOP_RETRANSMIT, A.START_K),
    ),
    (S.PROCEEDING, In.RECV_FINAL): (
        S.COMPLETED,
        (A.RESPONSE_TO_TU, A.STOP_RETRANSMIT, A.START_K),
    ),
    # Retransmitted finals are absorbed: listed so that they are not counted.
    (S.COMPLETED, In.RECV_2XX): (S.COMPLETED, ()),
    (S.COMPLETED, In.RECV_FINAL): (S.COMPLETED, ()),
    (S.COMPLETED, In.TIMER_K): (S.TERMINATED, ()),
}

# RFC 3261 §17.2.1, Figure 7, with RFC 6026 §7.1 (Accepted, timer L).
INVITE_SERVER: Table = {
    (None, In.REQUEST): (S.PROCEEDING, (A.SEND_100,)),
    (S.PROCEEDING, In.RETRANSMISSION): (S.PROCEEDING, (A.RESEND_RESPONSE,)),
    (S.PROCEEDING, In.TU_1XX): (S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, In.TU_2XX): (S.ACCEPTED, (A.SEND_RESPONSE, A.START_2XX, A.START_L)),
    (S.PROCEEDING, In.TU_FINAL): (S.COMPLETED, (A.SEND_RESPONSE, A.START_G, A.START_H)),
    (S.PROCEEDING, In.TRANSPORT_ERROR): (S.TERMINATED, (A.ERROR_TO_TU,)),
    (S.COMPLETED, In.RETRANSMISSION): (S.COMPLETED, (A.RESEND_RESPONSE,)),
    (S.COMPLETED, In.TIMER_G): (S.COMPLETED, (A.RESEND_RESPONSE, A.BACK_OFF)),
    (S.COMPLETED, In.TIMER_H): (S.TERMINATED, (A.NO_ACK_TO_TU,)),
    (S.COMPLETED, In.TRANSPORT_ERROR): (S.TERMINATED, (A.ERROR_TO_TU,)),
    (S.COMPLETED, In.ACK): (S.CONFIRMED, (A.STOP_RETRANSMIT, A.START_I)),
    (S.CONFIRMED, In.ACK): (S.CONFIRMED, ()),
    (S.CONFIRMED, In.TIMER_I): (S.TERMINATED, ()),
    # RFC 6026: retransmitted INVITEs are absorbed, not seen as new requests.
    (S.ACCEPTED, In.RETRANSMISSION): (S.ACCEPTED, ()),
    (S.ACCEPTED, In.TU_2XX): (S.ACCEPTED, (A.SEND_RESPONSE,)),
    (S.ACCEPTED, In.ACK): (S.ACCEPTED, (A.ACK_TO_TU, A.STOP_RETRANSMIT)),
    (S.ACCEPTED, In.TIMER_2XX): (S.ACCEPTED, (A.RESEND_RESPONSE, A.BACK_OFF)),
    (S.ACCEPTED, In.TIMER_L): (S.TERMINATED, (A.NO_ACK_TO_TU,)),
}

# RFC 3261 §17.2.2, Figure 8.
NON_INVITE_SERVER: Table = {
    (None, In.REQUEST): (S.TRYING, ()),
    (S.TRYING, In.RETRANSMISSION): (S.TRYING, ()),  # nothing to resend yet
    (S.TRYING, In.TU_1XX): (S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.TRYING, In.TU_2XX): (S.COMPLETED, (A.SEND_RESPONSE, A.START_J)),
    (S.TRYING, In.TU_FINAL): (S.COMPLETED, (A.SEND_RESPONSE, A.START_J)),
    (S.PROCEEDING, In.RETRANSMISSION): (S.PROCEEDING, (A.RESEND_RESPONSE,)),
    (S.PROCEEDING, In.TU_1XX): (S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, In.TU_2XX): (S.COMPLETED, (A.SEND_RESPONSE, A.START_J)),
    (S.PROCEEDING, In.TU_FINAL): (S.COMPLETED, (A.SEND_RESPONSE, A.START_J)),
    (S.PROCEEDING, In.TRANSPORT_ERROR): (S.TERMINATED, (A.ERROR_TO_TU,)),
    (S.COMPLETED, In.RETRANSMISSION): (S.COMPLETED, (A.RESEND_RESPONSE,)),
    (S.COMPLETED, In.TRANSPORT_ERROR): (S.TERMINATED, (A.ERROR_TO_TU,)),
    (S.COMPLETED, In.TIMER_J): (S.TERMINATED, ()),
}

del S, In, A


@dataclass(frozen=True, slots=True)
class Machine:
    name: str
    table: Table

    @property
    def states(self) -> frozenset[State]:
        """The states this machine can be in."""
        return frozenset(row[0] for row in self.table.values())


MACHINES = {
    "INVITE client": Machine("INVITE client", INVITE_CLIENT),
    "non-INVITE client": Machine("non-INVITE client", NON_INVITE_CLIENT),
    "INVITE server": Machine("INVITE server", INVITE_SERVER),
    "non-INVITE server": Machine("non-INVITE server", NON_INVITE_SERVER),
}

# Which timer each start action arms, and in which of the two slots a
# transaction has: one retransmission timer and one timeout timer.
_STARTS: dict[Action, tuple[Input, str, bool]] = {
    Action.START_A: (Input.TIMER_A, "A", True),
    Action.START_E: (Input.TIMER_E, "E", True),
    Action.START_G: (Input.TIMER_G, "G", True),
    Action.START_2XX: (Input.TIMER_2XX, "2XX", True),
    Action.START_B: (Input.TIMER_B, "B", False),
    Action.START_D: (Input.TIMER_D, "D", False),
    Action.START_F: (Input.TIMER_F, "F", False),
    Action.START_H: (Input.TIMER_H, "H", False),
    Action.START_I: (Input.TIMER_I, "I", False),
    Action.START_J: (Input.TIMER_J, "J", False),
    Action.START_K: (Input.TIMER_K, "K", False),
    Action.START_L: (Input.TIMER_L, "L", False),
    Action.START_M: (Input.TIMER_M, "M", False),
}


# Status class to input.
_RECEIVED = (None, Input.RECV_1XX, Input.RECV_2XX, *[Input.RECV_FINAL] * 4)
_FROM_TU = (None, Input.TU_1XX, Input.TU_2XX, *[Input.TU_FINAL] * 4)


# -- transactions -------------------------------------------------------------------


class Transaction:
    """State shared by client and server transactions.

    The TU reads `key`, `state`, `request`, `flow`, `last_response` and
    `is_invite`, and may keep what it likes in `user_data`. A non-INVITE
    server transaction forgets its `last_response` (only its bytes are
    kept) once it has sent the final one.
    """

    __slots__ = (
        "_ack",
        "_acked",
        "_dialog_key",
        "_key2",
        "_rt_cap",
        "_rt_interval",
        "_rt_seq",
        "_rt_timer",
        "_to_seq",
        "_to_timer",
        "_wire",
        "flow",
        "is_invite",
        "key",
        "last_response",
        "machine",
        "request",
        "state",
        "user_data",
    )

    def __init__(self, key: tuple, request: Request, flow: Flow, machine: Machine) -> None:
        self.key = key
        self.request = request
        self.flow = flow
        self.machine = machine
        self.is_invite = request.method == "INVITE"
        self.state: State | None = None  # until the request input is applied
        self.last_response: Response | None = None
        self.user_data: Any = None
        self._wire: bytes | None = None  # last response as sent, for retransmissions
        # Timer slots: the heap entry's sequence number, 0 when not running.
        self._rt_seq = 0
        self._rt_timer = Input.TIMER_A
        self._rt_interval = 0.0
        self._rt_cap = 0.0
        self._to_seq = 0
        self._to_timer = Input.TIMER_B
        self._ack: Request | None = None
        self._acked = False
        self._key2: tuple | None = None  # RFC 2543 server: key for TU responses
        self._dialog_key: tuple | None = None  # INVITE server that sent a 2xx

    def __repr__(self) -> str:
        state = self.state.value if self.state else "new"
        return f"<{self.machine.name} {self.request.method} {state} {self.key!r}>"


class ClientTransaction(Transaction):
    __slots__ = ()


class ServerTransaction(Transaction):
    __slots__ = ()


# -- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request (never a retransmission); answer it with send_response."""

    request: Request
    flow: Flow
    transaction: ServerTransaction


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK to a 2xx. `transaction` is the INVITE server transaction whose
    2xx it acknowledges while that is still in Accepted, else None."""

    request: Request
    flow: Flow
    transaction: ServerTransaction | None = None


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A CANCEL, already answered (200, or 481 when invite_transaction is None).

    The TU answers 487 to the INVITE if it has not sent a final response."""

    request: Request
    flow: Flow
    invite_transaction: ServerTransaction | None


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    response: Response
    transaction: ClientTransaction


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response matching no client transaction, e.g. a 2xx retransmitted
    after Accepted ended: the TU may still ACK it through its dialog."""

    response: Response
    flow: Flow


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """Timer B or F: the TU acts as if a 408 had been received."""

    transaction: ClientTransaction


@dataclass(frozen=True, slots=True)
class AckTimeout:
    """Timer L (no ACK to our 2xx: send BYE) or H (no ACK to a non-2xx:
    nothing to tear down). `transaction.last_response` says which."""

    transaction: ServerTransaction


@dataclass(frozen=True, slots=True)
class TransportError:
    """The flow failed (e.g. its connection closed). A client TU acts as if a
    503 had been received (RFC 3261 §8.1.3.1)."""

    transaction: Transaction


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    transaction: Transaction


Event: TypeAlias = (
    RequestReceived
    | AckReceived
    | CancelReceived
    | ResponseReceived
    | StrayResponse
    | TransactionTimeout
    | AckTimeout
    | TransportError
    | TransactionTerminated
)


# -- keys ---------------------------------------------------------------------------


def _server_key(msg: Request | Response, method: str, to_tag: str | None = None) -> tuple:
    """RFC 3261 §17.2.3: branch, sent-by and method, for RFC 3261 branches.

    Other requests get the RFC 2543 key: Request-URI, From tag, Call-ID, CSeq,
    top Via, To tag. Responses have no Request-URI; callers only ask for a
    response's key when its branch has the cookie.
    """
    via = msg.top_via
    branch = via.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return (branch, via.host.lower(), via.port, method)
    assert isinstance(msg, Request)
    return (msg.uri, msg.from_.tag, msg.call_id, msg.cseq.number, method, str(via), to_tag)


def _response_key_2543(msg: Request | Response, method: str) -> tuple:
    """What a TU's response shares with its RFC 2543 request."""
    return (str(msg.top_via), msg.from_.tag, msg.call_id, msg.cseq.number, method)


def _is_3261(msg: Request | Response) -> bool:
    branch = msg.top_via.branch
    return branch is not None and branch.startswith(MAGIC_COOKIE)


def _dialog_key(msg: Request | Response) -> tuple:
    return (msg.call_id, msg.from_.tag, msg.to.tag, msg.cseq.number)


def _build_ack(request: Request, response: Response) -> Request:
    """RFC 3261 §17.1.1.3: the ACK to a non-2xx final, in the same transaction."""
    headers: list[tuple[str, object]] = [
        ("Via", request.get_all("via")[0]),
        ("Max-Forwards", 70),
        ("From", request.get("from")),
        ("To", response.get("to")),
        ("Call-ID", request.call_id),
        ("CSeq", f"{request.cseq.number} ACK"),
    ]
    headers.extend(("Route", route) for route in request.get_all("route"))
    headers.append(("Content-Length", 0))
    return Request("ACK", request.uri_text, headers)


# -- the layer ------------------------------------------------------------------------


class TransactionLayer:
    """All client and server transactions of one node."""

    def __init__(self, timers: Timers = Timers()) -> None:  # noqa: B008 - frozen value
        self.timers = timers
        # Network and timer inputs that no table row takes, by
        # (machine, state, input): late or duplicated messages, mostly.
        self.ignored: Counter[tuple[str, str, str]] = Counter()
        self._client: dict[tuple, ClientTransaction] = {}
        self._server: dict[tuple, ServerTransaction] = {}
        self._server_2543: dict[tuple, ServerTransaction] = {}  # by _response_key_2543
        self._accepted: dict[tuple, ServerTransaction] = {}  # by _dialog_key
        # (deadline, seq, transaction). An entry is live while its seq is in
        # one of the transaction's slots; others are skipped when they surface.
        self._heap: list[tuple[float, int, Transaction]] = []
        self._stale = 0
        self._seq = itertools.count(1)
        self._durations = {
            reliable: {name: timers.duration(name, reliable) for name in "ABDEFGHIJKLM"}
            for reliable in (False, True)
        }
        self._out: list[tuple[bytes, Flow]] = []
        self._events: list[Event] = []

    def __len__(self) -> int:
        """Live transactions."""
        return len(self._client) + len(self._server)

    # -- outputs ---------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Flow]]:
        out, self._out = self._out, []
        return out

    def events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
            self._stale -= 1
        return heap[0][0] if heap else None

    # -- inputs from the network ---------------------------------------------------

    def receive(self, msg: Request | Response, flow: Flow, now: float) -> None:
        """A parsed message whose Via, CSeq, Call-ID, From and To are valid."""
        if isinstance(msg, Response):
            self._receive_response(msg, flow, now)
        elif msg.method == "ACK":
            self._receive_ack(msg, flow, now)
        elif msg.method == "CANCEL":
            self._receive_cancel(msg, flow, now)
        else:
            self._receive_request(msg, flow, now)

    def _receive_response(self, resp: Response, flow: Flow, now: float) -> None:
        tx = self._client.get((resp.top_via.branch, resp.cseq.method))
        if tx is None:
            self._events.append(StrayResponse(resp, flow))
            return
        self._step(tx, _RECEIVED[resp.status // 100], now, resp, flow)

    def _receive_request(self, req: Request, flow: Flow, now: float) -> None:
        key = _server_key(req, req.method, None if _is_3261(req) else req.to.tag)
        tx = self._server.get(key)
        if tx is not None:
            self._step(tx, Input.RETRANSMISSION, now, req, flow)
            return
        tx = self._new_server(key, req, flow, now)
        self._events.append(RequestReceived(req, flow, tx))

    def _receive_ack(self, ack: Request, flow: Flow, now: float) -> None:
        tx = self._find_ack_transaction(ack)
        if tx is None:
            # An ACK to a 2xx has its own branch: find the 2xx by dialog.
            tx = self._accepted.get(_dialog_key(ack))
        if tx is None:
            self._events.append(AckReceived(ack, flow))
        else:
            self._step(tx, Input.ACK, now, ack, flow)

    def _find_ack_transaction(self, ack: Request) -> ServerTransaction | None:
        if _is_3261(ack):
            return self._server.get(_server_key(ack, "INVITE"))
        # RFC 2543: the ACK carries the To tag of our response, which the
        # INVITE lacked unless it was sent inside a dialog.
        tag = ack.to.tag
        tx = self._server.get(_server_key(ack, "INVITE", tag))
        if tx is None and tag is not None:
            tx = self._server.get(_server_key(ack, "INVITE", None))
            last = tx.last_response if tx is not None else None
            if last is None or last.to.tag != tag:
                return None
        return tx

    def _receive_cancel(self, cancel: Request, flow: Flow, now: float) -> None:
        to_tag = None if _is_3261(cancel) else cancel.to.tag
        key = _server_key(cancel, "CANCEL", to_tag)
        tx = self._server.get(key)
        if tx is not None:
            self._step(tx, Input.RETRANSMISSION, now, cancel, flow)
            return
        tx = self._new_server(key, cancel, flow, now)
        # RFC 3261 §9.2: the CANCEL matches the INVITE with the same key.
        invite = self._server.get(_server_key(cancel, "INVITE", to_tag))
        self._events.append(CancelReceived(cancel, flow, invite))
        # The To tag should be the one of the INVITE's responses, when there is one.
        last = invite.last_response if invite is not None else None
        tag = (last.to.tag if last is not None else None) or secrets.token_hex(6)
        status = 200 if invite is not None else 481
        resp = make_response(cancel, status, to_tag=tag)
        self._step(tx, Input.TU_2XX if status == 200 else Input.TU_FINAL, now, resp)

    def transport_error(self, flow: Flow, now: float) -> None:
        """The flow failed (ICMP error, connection closed): every transaction
        on it gets a transport error. Rare, so a scan is fine."""
        for tx in [*self._client.values(), *self._server.values()]:
            if tx.flow == flow:
                self._step(tx, Input.TRANSPORT_ERROR, now)

    # -- inputs from the TU ---------------------------------------------------------

    def send_request(self, req: Request, flow: Flow, now: float) -> ClientTransaction:
        """Start a client transaction; `req` already has its top Via and branch."""
        method = req.method
        if method == "ACK":
            raise TransactionError("ACK is not a transaction: send it with send_stateless")
        branch = req.top_via.branch
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            raise TransactionError(f"top Via branch {branch!r} lacks {MAGIC_COOKIE}")
        if req.cseq.method != method:
            raise TransactionError(f"CSeq method {req.cseq.method} is not {method}")
        key = (branch, method)
        if key in self._client:
            raise TransactionError(f"a client transaction with branch {branch} exists")
        machine = MACHINES["INVITE client" if method == "INVITE" else "non-INVITE client"]
        tx = ClientTransaction(key, req, flow, machine)
        self._client[key] = tx
        self._step(tx, Input.REQUEST, now)
        return tx

    def send_response(self, resp: Response, now: float) -> None:
        """Send the TU's response through its server transaction."""
        if not 100 <= resp.status <= 699:
            raise TransactionError(f"status {resp.status} is not 100-699")
        method = resp.cseq.method
        if _is_3261(resp):
            tx = self._server.get(_server_key(resp, method))
        else:
            tx = self._server_2543.get(_response_key_2543(resp, method))
        if tx is None:
            raise TransactionError(
                f"no server transaction for {resp.status} to {method} "
                f"(branch {resp.top_via.branch!r}): it ended or never existed"
            )
        self._step(tx, _FROM_TU[resp.status // 100], now, resp)

    def send_stateless(self, msg: Request | Response, flow: Flow) -> None:
        """Queue a message outside any transaction: the ACK to a 2xx, or an
        answer to a request too broken to start a transaction."""
        self._out.append((bytes(msg), flow))

    def handle_timer(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, tx = heapq.heappop(heap)
            if seq == tx._rt_seq:
                tx._rt_seq = 0
                self._step(tx, tx._rt_timer, now)
            elif seq == tx._to_seq:
                tx._to_seq = 0
                self._step(tx, tx._to_timer, now)
            else:
                self._stale -= 1

    # -- the engine ------------------------------------------------------------------

    def _new_server(self, key: tuple, req: Request, flow: Flow, now: float) -> ServerTransaction:
        invite = req.method == "INVITE"
        tx = ServerTransaction(
            key, req, flow, MACHINES["INVITE server" if invite else "non-INVITE server"]
        )
        self._server[key] = tx
        if not _is_3261(req):
            tx._key2 = _response_key_2543(req, req.method)
            self._server_2543[tx._key2] = tx
        self._step(tx, Input.REQUEST, now)
        return tx

    def _step(
        self,
        tx: Transaction,
        inp: Input,
        now: float,
        msg: Request | Response | None = None,
        flow: Flow | None = None,
    ) -> None:
        """Apply one input to one transaction, as its table says."""
        row = tx.machine.table.get((tx.state, inp))
        if row is None:
            state = tx.state.value if tx.state else "new"
            if inp in TU_INPUTS:
                raise TransactionError(
                    f"{tx.machine.name} transaction in {state} cannot take {inp.value}"
                )
            self.ignored[(tx.machine.name, state, inp.value)] += 1
            return
        tx.state, actions = row
        fire_now: Input | None = None
        for action in actions:
            if action in _STARTS:
                fire_now = self._start(tx, action, now) or fire_now
            else:
                self._act(tx, action, now, msg, flow)
        if tx.state is State.TERMINATED:
            self._remove(tx)
        elif fire_now is not None:
            # A timer of zero on a reliable flow: it fires at once.
            self._step(tx, fire_now, now)

    def _act(
        self,
        tx: Transaction,
        action: Action,
        now: float,
        msg: Request | Response | None,
        flow: Flow | None,
    ) -> None:
        if action is Action.SEND_REQUEST:
            self._out.append((bytes(tx.request), tx.flow))
        elif action is Action.RESPONSE_TO_TU:
            assert isinstance(msg, Response) and isinstance(tx, ClientTransaction)
            tx.last_response = msg
            self._events.append(ResponseReceived(msg, tx))
        elif action is Action.SEND_RESPONSE:
            assert isinstance(msg, Response)
            tx.last_response = msg
            tx._wire = wire = bytes(msg)
            self._out.append((wire, tx.flow))
            if tx.is_invite:
                if 200 <= msg.status < 300:
                    self._index_accepted(tx, msg)
            elif msg.status >= 200:
                # Completed lasts Timer J (32 s on UDP) only to answer
                # retransmissions with these bytes. At thousands of requests
                # a second, the parsed request and response kept that long
                # are most of what the garbage collector walks: let them go.
                tx.last_response = None
                tx.request.drop_parsed()
        elif action is Action.RESEND_RESPONSE:
            if tx._wire is not None:
                self._out.append((tx._wire, tx.flow))
        elif action is Action.SEND_100:
            tx.last_response = make_response(tx.request, 100)
            tx._wire = bytes(tx.last_response)
            self._out.append((tx._wire, tx.flow))
        elif action is Action.SEND_ACK:
            if tx._ack is None:
                assert isinstance(msg, Response)
                tx._ack = _build_ack(tx.request, msg)
            self._out.append((bytes(tx._ack), tx.flow))
        elif action is Action.ACK_TO_TU:
            assert isinstance(msg, Request) and isinstance(tx, ServerTransaction)
            tx._acked = True
            self._events.append(AckReceived(msg, flow or tx.flow, tx))
        elif action is Action.BACK_OFF:
            self._arm_retransmit(tx, min(tx._rt_interval * 2, tx._rt_cap), now)
        elif action is Action.EVERY_T2:
            self._arm_retransmit(tx, self.timers.t2, now)
        elif action is Action.STOP_RETRANSMIT:
            self._cancel_retransmit(tx)
        elif action is Action.STOP_TIMEOUT:
            if tx._to_seq:
                tx._to_seq = 0
                self._stale += 1
        elif action is Action.TIMEOUT_TO_TU:
            assert isinstance(tx, ClientTransaction)
            self._events.append(TransactionTimeout(tx))
        elif action is Action.NO_ACK_TO_TU:
            assert isinstance(tx, ServerTransaction)
            if not tx._acked:
                self._events.append(AckTimeout(tx))
        elif action is Action.ERROR_TO_TU:
            self._events.append(TransportError(tx))
        else:  # pragma: no cover - every Action is handled above
            raise AssertionError(action)

    def _index_accepted(self, tx: Transaction, resp: Response) -> None:
        key = _dialog_key(resp)
        if tx._dialog_key is not None and tx._dialog_key != key:
            self._accepted.pop(tx._dialog_key, None)
        tx._dialog_key = key
        self._accepted[key] = tx  # type: ignore[assignment]

    # -- timers ------------------------------------------------------------------------

    def _start(self, tx: Transaction, action: Action, now: float) -> Input | None:
        """Arm a timer; return its input when it is zero and fires at once."""
        inp, name, retransmit = _STARTS[action]
        if name == "2XX":
            # RFC 3261 §13.3.1.4: even on reliable flows, since hops further
            # on may be UDP.
            tx._rt_timer, tx._rt_cap = inp, self.timers.t2
            self._arm_retransmit(tx, self.timers.t1, now)
            return None
        duration = self._durations[tx.flow.reliable][name]
        if duration is None:
            return None
        if retransmit:
            # Timer A doubles without a cap (RFC 3261 §17.1.1.2); E and G stop at T2.
            tx._rt_timer = inp
            tx._rt_cap = float("inf") if name == "A" else self.timers.t2
            self._arm_retransmit(tx, duration, now)
            return None
        if duration == 0:
            return inp
        if tx._to_seq:
            self._stale += 1
        seq = next(self._seq)
        tx._to_seq, tx._to_timer = seq, inp
        heapq.heappush(self._heap, (now + duration, seq, tx))
        self._maybe_compact()
        return None

    def _arm_retransmit(self, tx: Transaction, interval: float, now: float) -> None:
        if tx._rt_seq:
            self._stale += 1
        seq = next(self._seq)
        tx._rt_seq, tx._rt_interval = seq, interval
        heapq.heappush(self._heap, (now + interval, seq, tx))
        self._maybe_compact()

    def _cancel_retransmit(self, tx: Transaction) -> None:
        if tx._rt_seq:
            tx._rt_seq = 0
            self._stale += 1

    @staticmethod
    def _live(entry: tuple[float, int, Transaction]) -> bool:
        _, seq, tx = entry
        return seq == tx._rt_seq or seq == tx._to_seq

    def _maybe_compact(self) -> None:
        # Cancelled timers stay in the heap until they surface; rebuild when
        # they are most of it so that memory follows the live count.
        if self._stale > 1024 and self._stale * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if self._live(entry)]
            heapq.heapify(self._heap)
            self._stale = 0

    # -- the end ------------------------------------------------------------------------

    def _remove(self, tx: Transaction) -> None:
        self._cancel_retransmit(tx)
        if tx._to_seq:
            tx._to_seq = 0
            self._stale += 1
        self._maybe_compact()
        table: dict[tuple, Any] = (
            self._client if isinstance(tx, ClientTransaction) else self._server
        )
        if table.get(tx.key) is tx:
            del table[tx.key]
        if tx._key2 is not None and self._server_2543.get(tx._key2) is tx:
            del self._server_2543[tx._key2]
        if tx._dialog_key is not None and self._accepted.get(tx._dialog_key) is tx:
            del self._accepted[tx._dialog_key]
        self._events.append(TransactionTerminated(tx))
