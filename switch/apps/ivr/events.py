"""What the runner tells the engine: small frozen classes, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Digit:
    """A key the caller pressed (RFC 4733, SIP INFO or in-band): 0-9, *, #."""

    key: str


@dataclass(frozen=True)
class PlayDone:
    id: int


@dataclass(frozen=True)
class RecordDone:
    id: int
    path: str  # where the recording is, for the agent and the CDR
    seconds: float
    reason: Literal["silence", "stopped", "hangup", "error"] = "stopped"


@dataclass(frozen=True)
class HttpResponse:
    id: int
    status: int
    json: Any = None  # the decoded body; None when it was not JSON


@dataclass(frozen=True)
class HttpFailed:
    id: int
    reason: str  # "connection refused", "timeout", ...


@dataclass(frozen=True)
class DialResult:
    id: int
    answered: bool
    reason: str = ""  # "busy", "no answer", "rejected", ...


@dataclass(frozen=True)
class CallerHangup:
    """The caller hung up: the run ends where it is."""


Event = Digit | PlayDone | RecordDone | HttpResponse | HttpFailed | DialResult | CallerHangup
