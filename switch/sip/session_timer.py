"""Session timers (RFC 4028): how often a dialog must be refreshed, and by whom.

A call whose far end vanished without a BYE (a phone that lost power, a
carrier that restarted) would otherwise hold its channel for ever. With a
session timer, one side (the refresher) sends a re-INVITE or UPDATE every
half interval; the other side tears the call down when no refresh arrives in
time.

Pure functions: headers in, a `SessionTimer` (or a 422) out. The call layer
(`switch.call.b2bua`) keeps one timer per leg, since each leg of a B2BUA is
a dialog of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ParseError
from .message import Request, Response

# RFC 4028 §4: no interval shorter than 90 seconds may be asked for.
MIN_SE_FLOOR = 90


@dataclass(frozen=True, slots=True)
class SessionTimer:
    """A negotiated session timer: `interval` seconds; `refresher` "uac" or "uas"."""

    interval: int
    refresher: str

    def we_refresh(self, we_are_uac: bool) -> bool:
        return (self.refresher == "uac") == we_are_uac

    def refresh_after(self) -> float:
        """When the refresher sends its refresh: half the interval (RFC 4028 §10)."""
        return self.interval / 2

    def expire_after(self) -> float:
        """When the other side gives up waiting (RFC 4028 §10): the interval
        less a third of it or 32 seconds, whichever is smaller."""
        return self.interval - min(32.0, self.interval / 3)

    def header(self) -> str:
        return f"{self.interval};refresher={self.refresher}"


@dataclass(frozen=True, slots=True)
class TooSmall:
    """Answer 422 Session Interval Too Small with `Min-SE: min_se`."""

    min_se: int


def parse_session_expires(value: str) -> tuple[int, str | None]:
    """`1800;refresher=uac` -> (1800, "uac"). Raises ParseError."""
    delta, *params = value.split(";")
    delta = delta.strip()
    if not delta.isdigit() or len(delta) > 10:
        raise ParseError(f"Session-Expires {value[:40]!r} is not a number of seconds")
    refresher = None
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() == "refresher":
            refresher = val.strip().lower()
            if refresher not in ("uac", "uas"):
                raise ParseError(
                    f"Session-Expires refresher {val.strip()[:10]!r} is not uac or uas"
                )
    return int(delta), refresher


def min_se(msg: Request | Response, default: int = MIN_SE_FLOOR) -> int:
    """The Min-SE of a message (RFC 4028 §5); `default` (the RFC's 90 s) when
    absent or unreadable."""
    value = (msg.get("Min-SE") or "").split(";")[0].strip()
    return int(value) if value.isdigit() and len(value) <= 10 else default


def supports_timer(msg: Request | Response) -> bool:
    """Whether `msg` lists the "timer" option in Supported or Require."""
    tags = [*msg.get_all("Supported"), *msg.get_all("Require")]
    return "timer" in {tag.strip().lower() for tag in tags}


def answer(request: Request, expires: int, our_min_se: int) -> SessionTimer | TooSmall:
    """What a UAS answers to a dialog-creating or refreshing request (RFC 4028 §9).

    `expires` is the interval we would like, `our_min_se` the shortest we
    accept. A request asking for less than that gets 422. Without a
    Session-Expires we still run the timer (as refresher, unless the UAC
    said it supports timers: then it refreshes, which costs us nothing).
    """
    # Absent, the other side's minimum is the RFC's 90 s (or ours, in tests
    # that shorten it below what the config allows).
    their_min = min_se(request, min(our_min_se, MIN_SE_FLOOR))
    value = request.get("Session-Expires")
    if value is not None:
        try:
            asked, refresher = parse_session_expires(value)
        except ParseError:
            asked, refresher = expires, None
        if asked < our_min_se:
            return TooSmall(our_min_se)
        interval = max(min(asked, expires), their_min, our_min_se)
        if refresher is None:
            refresher = "uac" if supports_timer(request) else "uas"
        return SessionTimer(interval, refresher)
    interval = max(expires, their_min, our_min_se)
    return SessionTimer(interval, "uac" if supports_timer(request) else "uas")


def response_headers(timer: SessionTimer, request: Request) -> list[tuple[str, str]]:
    """Headers of our 2xx carrying `timer` to the UAC."""
    headers = [("Session-Expires", timer.header())]
    if supports_timer(request):
        # RFC 4028 §9: a UAC that supports timers is told it must run one.
        headers.append(("Require", "timer"))
    return headers


def request_headers(expires: int, our_min_se: int) -> list[tuple[str, str]]:
    """Headers of an INVITE or refresh we send as UAC, offering a timer."""
    return [
        ("Supported", "timer"),
        ("Session-Expires", str(expires)),
        ("Min-SE", str(our_min_se)),
    ]


def from_response(response: Response, asked: int) -> SessionTimer:
    """The timer a UAS's 2xx sets for us, the UAC (RFC 4028 §7.2).

    A UAS that does not do timers answers without Session-Expires: we then
    refresh ourselves at the interval we asked for, which is how a call
    with a silent far end gets found.
    """
    value = response.get("Session-Expires")
    if value is not None:
        try:
            interval, refresher = parse_session_expires(value)
        except ParseError:
            return SessionTimer(asked, "uac")
        return SessionTimer(max(interval, 1), refresher or "uac")
    return SessionTimer(asked, "uac")
