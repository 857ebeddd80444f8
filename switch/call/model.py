"""What a call is: its legs' dialogs and media, and how it ended.

`switch.call.b2bua.Calls` drives these; the records of issue #9 read them.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..media.relay import LegOrigin, LegQuality, MediaSession
from ..registrar.guard import Caller
from ..sip.dialog import Dialog
from ..sip.flow import Flow
from ..sip.message import Request
from ..sip.session_timer import SessionTimer
from ..sip.transaction import ClientTransaction, ServerTransaction
from .holds import Holds
from .routing import Target

if TYPE_CHECKING:
    from .app import AppCall
    from .dtmf_calls import DtmfState
    from .webrtc_legs import WebRtcState

_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Hangup:
    """How a call ended, for its record (issue #9)."""

    by: str  # "caller", "callee" or "node"
    status: int  # the SIP status it ended with (200 for a BYE; 0 when the node ended it)
    reason: str  # the reason phrase, or what the node saw
    reason_header: str | None = None  # the Reason header (RFC 3326) of the BYE or CANCEL


@dataclass(frozen=True, slots=True)
class LegEnd:
    """How one leg of a call ended (one dialog, or one attempt that failed),
    for the record: a call has one per leg, a transfer or failover adds more."""

    leg: str  # "a" (the caller's side) or "b" (the callee's side)
    party: str  # who was on it: "agent demo/1001", "trunk demo/carrier sip:+1555@host"
    by: str  # "caller" or "callee" (that party ended it), or "node"
    status: int  # the SIP status (200 for a BYE)
    reason: str
    reason_header: str | None = None  # the Reason header (RFC 3326), if one came
    at: float = field(default_factory=time.time)


@dataclass(eq=False)
class Call:
    caller: Caller
    dialled: str
    a_invite: Request
    a_flow: Flow
    a_txn: ServerTransaction
    a_tag: str = field(default_factory=lambda: secrets.token_hex(6))
    id: int = field(default_factory=lambda: next(_ids))
    target: Target | None = None
    b_invite: Request | None = None
    b_txn: ClientTransaction | None = None
    a_dialog: Dialog | None = None
    b_dialog: Dialog | None = None
    b_provisional: bool = False  # B answered something: a CANCEL may go
    cancel_sent: bool = False
    pending_offer: bool = False  # a re-INVITE or UPDATE is on its way (RFC 3261 §14.2)
    offering: set[str] = field(default_factory=set)  # legs with a re-INVITE of ours pending
    fallbacks: list[Target] = field(default_factory=list)  # trunks to try next
    pracked: set[str] = field(default_factory=set)  # RSeq values acknowledged (RFC 3262)
    a_sdp: bytes = b""  # the caller's latest SDP as it sent it (offered to a transfer target)
    b_ack: bytes | None = None  # our ACK to B's 2xx, resent as is for retransmissions
    b_sdp: bytes = b""  # the callee's latest SDP as it sent it (offered to a transfer target)
    # (Call-ID, our tag) of each leg's dialog: how in-dialog requests find the call.
    a_key: tuple[str, str] = ("", "")
    b_key: tuple[str, str] = ("", "")
    transfer: Request | None = None  # the REFER being carried out
    media: MediaSession | None = None  # the RTP relay, when the offer came with the INVITE
    webrtc: WebRtcState | None = None  # set when a leg is a browser (switch.call.webrtc_legs)
    dtmf: DtmfState | None = None  # offers seen, and the DTMF bridge (switch.call.dtmf_calls)
    offer_b: bytes | None = None  # A's offer as leg B sees it (anchored in the node)
    trunks: list[tuple[str, str]] = field(default_factory=list)  # counted against max_calls
    state: str = "routing"  # routing, calling, answered, ended
    cancelled: bool = False
    hangup: Hangup | None = None
    legs: list[LegEnd] = field(default_factory=list)  # how each leg ended, in order
    # The o= line each leg is shown ("a", "b"): its own session, whoever is behind.
    origins: dict[str, LegOrigin] = field(
        default_factory=lambda: {"a": LegOrigin(), "b": LegOrigin()}
    )
    # Loss, jitter and round-trip time of each leg's media ("a", "b") at the end.
    quality: dict[str, LegQuality] = field(default_factory=dict)
    # Leg B's setup or ring timeout ("setup"/"ring"), and INVITEs given up
    # for want of an answer -> whether they were CANCELled (issue #4).
    b_timer: asyncio.TimerHandle | None = None
    b_timer_kind: str = ""
    abandoned: dict[ClientTransaction, bool] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None
    # Session timers (RFC 4028), one per leg: the timer, whether we are its
    # refresher, and the pending refresh or expiry of each leg ("a", "b").
    timer: dict[str, tuple[SessionTimer, bool]] = field(default_factory=dict)
    timer_handles: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    b_expires: int = 0  # the Session-Expires leg B's INVITE asks for
    allows_update: dict[str, bool] = field(default_factory=dict)  # per leg: UPDATE in Allow
    # A late offer (an INVITE or re-INVITE without SDP): the ACK that carries
    # our answer waits for the other side's ACK with its answer.
    ack_wait: PendingAck | None = None
    redirects: int = 0  # 3xx followed so far
    a_trunk: tuple[str, str] | None = None  # the trunk on leg A's side, if any
    # The recording (issue #5): its file, and the spans paused (seconds from
    # its start), known once the call ended. Empty when it was not recorded.
    recording_path: str = ""
    recording_paused: list[tuple[float, float]] = field(default_factory=list)
    app: AppCall | None = None  # the application that has the call (switch.call.app)
    holds: Holds = field(default_factory=Holds)  # hold spans, for the record (switch.call.holds)


@dataclass(frozen=True, slots=True)
class PendingAck:
    """An ACK we owe a leg until the other leg's ACK brings the SDP answer."""

    dialog: Dialog
    cseq: int
    flow: Flow
    to_a: bool  # the ACK goes to leg A
