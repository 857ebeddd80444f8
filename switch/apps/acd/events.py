"""What the ACD tells the rest of the node.

Two kinds of small frozen records, like h11's events:

- Events are facts, for reports, the wallboard and the CTI feed: an agent
  changed state, a caller joined, was offered, answered, abandoned... Each
  has the time it happened (`at`). `Acd.take_events()` hands them over.
- Commands are what the node must do now: ring these agents, stop ringing,
  send this caller elsewhere, dial a callback, tell an agent something.
  Every call into `Acd` returns the commands it caused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .model import Status

if TYPE_CHECKING:
    from switch.config import ExitTarget

    from .explain import Explanation

__all__ = [
    "AgentChanged",
    "Announce",
    "CallbackDialled",
    "CallbackEnded",
    "CallbackRequested",
    "CallerAbandoned",
    "CallerAnswered",
    "CallerExited",
    "CallerJoined",
    "CallerMoved",
    "Command",
    "Decided",
    "DialCallback",
    "Event",
    "ExitReason",
    "MoveReason",
    "Moved",
    "NotifyAgent",
    "Offer",
    "OfferCallback",
    "OfferEnded",
    "OfferReason",
    "SendTo",
    "StopOffer",
    "WrapupExtended",
]

ExitReason = Literal["max_wait", "full", "empty", "closed"]
# Why a caller changed queues: an exit, or a supervisor moving them (Acd.move).
MoveReason = Literal["max_wait", "full", "empty", "closed", "supervisor"]
OfferReason = Literal[
    "no answer", "declined", "withdrawn", "disconnected", "caller left", "answered elsewhere"
]

# ---------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class AgentChanged:
    agent: str
    old: Status
    new: Status
    reason: str  # not-ready reason, or what caused the change ("answered", "no answer", ...)
    action: str  # the transition table's action
    at: float


@dataclass(frozen=True, slots=True)
class WrapupExtended:
    agent: str
    until: float
    at: float


@dataclass(frozen=True, slots=True)
class CallerJoined:
    caller: str
    queue: str
    priority: int
    skills: tuple[tuple[str, int], ...]
    position: int
    ewt: float | None
    sticky: str
    at: float


@dataclass(frozen=True, slots=True)
class CallerMoved:
    """An exit or a supervisor sent the caller on to another queue; they keep their seniority."""

    caller: str
    old: str
    new: str
    reason: MoveReason
    at: float


@dataclass(frozen=True, slots=True)
class Decided:
    """A routing decision, with why this pair won (see explain.py)."""

    explanation: Explanation
    at: float


@dataclass(frozen=True, slots=True)
class OfferEnded:
    """An offer that did not end in an answer: rang out, withdrawn, or lost with the caller."""

    reservation: str
    caller: str
    agent: str
    reason: OfferReason
    missed: int  # the agent's misses in a row after this one
    at: float


@dataclass(frozen=True, slots=True)
class CallerAnswered:
    caller: str
    queue: str
    agent: str
    wait: float  # since the caller first joined a queue
    callback: bool
    at: float


@dataclass(frozen=True, slots=True)
class CallerAbandoned:
    caller: str
    queue: str
    wait: float
    position: int
    at: float


@dataclass(frozen=True, slots=True)
class CallerExited:
    caller: str
    queue: str
    reason: ExitReason
    target: ExitTarget
    wait: float
    at: float


@dataclass(frozen=True, slots=True)
class CallbackRequested:
    caller: str
    queue: str
    number: str
    mode: str
    at: float


@dataclass(frozen=True, slots=True)
class CallbackDialled:
    caller: str
    queue: str
    number: str
    agent: str
    at: float


@dataclass(frozen=True, slots=True)
class CallbackEnded:
    caller: str
    queue: str
    answered: bool
    wait: float
    at: float


Event = (
    AgentChanged
    | WrapupExtended
    | CallerJoined
    | CallerMoved
    | Decided
    | OfferEnded
    | CallerAnswered
    | CallerAbandoned
    | CallerExited
    | CallbackRequested
    | CallbackDialled
    | CallbackEnded
)

# ---------------------------------------------------------------------------
# Commands


@dataclass(frozen=True, slots=True)
class Offer:
    """Ring these agents (every live device of each) for this caller until `expires_at`."""

    reservation: str
    caller: str
    queue: str
    agents: tuple[str, ...]
    devices: tuple[tuple[str, tuple[str, ...]], ...]  # (agent, its live devices)
    expires_at: float
    callback: bool = False


@dataclass(frozen=True, slots=True)
class StopOffer:
    """Stop ringing these agents for this reservation."""

    reservation: str
    caller: str
    agents: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class SendTo:
    """Take the caller out of the queue to `target` (voicemail, an IVR flow, a message)."""

    caller: str
    queue: str
    reason: ExitReason
    target: ExitTarget


@dataclass(frozen=True, slots=True)
class Moved:
    """The caller now waits in another queue (its music and announcements)."""

    caller: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Announce:
    """Tell the caller their position and estimated wait (None: unknown)."""

    caller: str
    queue: str
    position: int
    ewt: float | None


@dataclass(frozen=True, slots=True)
class OfferCallback:
    """Offer the caller a callback (press a key) because the wait is long."""

    caller: str
    queue: str
    ewt: float


@dataclass(frozen=True, slots=True)
class DialCallback:
    """Call a customer back.

    agent-first: ring `agent` (an Offer comes with it); once they answer, dial
    `number`. customer-first: dial `number` now, the agent is held; report
    the outcome with `Acd.callback_result()`, then the agent is rung.
    """

    reservation: str
    caller: str
    queue: str
    number: str
    agent: str
    mode: str
    timeout: float


@dataclass(frozen=True, slots=True)
class NotifyAgent:
    """Tell an agent why their state changed (e.g. set not ready after missed calls)."""

    agent: str
    message: str


Command = Offer | StopOffer | SendTo | Moved | Announce | OfferCallback | DialCallback | NotifyAgent
