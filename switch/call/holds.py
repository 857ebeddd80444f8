"""Hold time of a call, for its record: from the offers each side makes.

A side that offers its audio as sendonly or inactive (or, the RFC 2543 way,
with connection address 0.0.0.0) puts the other on hold; its next offer
with audio both ways resumes. Counted when the offer is relayed, not when
it is answered: a hold the far end refuses is rare, and the difference a
round trip. The spans of both sides are added (both holding at once is
counted twice; phones do not do that).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..sip.sdp import SdpError, parse_sdp

_HELD = frozenset({"sendonly", "inactive"})


def is_hold(sdp: bytes) -> bool:
    """Whether an offer puts the other side on hold: every live audio stream
    sendonly or inactive, or sent to 0.0.0.0. An unreadable body is no hold."""
    try:
        session = parse_sdp(sdp)
    except SdpError:
        return False
    streams = [m for m in session.media if m.media == "audio" and m.port != 0]
    if not streams:
        return False
    for media in streams:
        connection = session.media_connection(media)
        zero = connection is not None and connection.address == "0.0.0.0"
        if session.media_direction(media) not in _HELD and not zero:
            return False
    return True


@dataclass(slots=True)
class Holds:
    """The hold spans of one call: open ones by side, and the seconds of those closed."""

    since: dict[str, float] = field(default_factory=dict)  # side holding -> since when
    closed: float = 0.0

    def offered(self, side: str, sdp: bytes, now: float) -> None:
        """Side "a" or "b" made an offer (an INVITE, re-INVITE or UPDATE body)."""
        if is_hold(sdp):
            self.since.setdefault(side, now)
        elif side in self.since:
            self.closed += max(0.0, now - self.since.pop(side))

    def seconds(self, now: float) -> float:
        """Time on hold so far; spans still open end at `now`."""
        return self.closed + sum(max(0.0, now - start) for start in self.since.values())
