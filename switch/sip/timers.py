"""Transaction timer values (RFC 3261 §17 and Table 4, RFC 6026 §8.11).

Every timer is derived from three base values. T1 is the round-trip
estimate, T2 the cap on non-INVITE and response retransmission intervals,
T4 the time a message may linger in the network.
"""

from __future__ import annotations

from dataclasses import dataclass

# Timers whose only job is to catch retransmissions that a reliable transport
# never makes: RFC 3261 sets them to 0 on TCP, TLS and WebSocket flows.
ZERO_WHEN_RELIABLE = frozenset("DIJK")
# Retransmission timers: not used at all on reliable flows.
UNRELIABLE_ONLY = frozenset("AEG")


@dataclass(frozen=True, slots=True)
class Timers:
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def a(self) -> float:
        """INVITE request retransmit: first interval, doubling without a cap."""
        return self.t1

    @property
    def b(self) -> float:
        """INVITE client gives up waiting for any response."""
        return 64 * self.t1

    @property
    def d(self) -> float:
        """INVITE client absorbs retransmitted non-2xx finals.

        RFC 3261 asks for at least 32 s: long enough to outlive the server's
        retransmissions, which last timer H (64*T1), so it grows with T1.
        """
        return max(32.0, 64 * self.t1)

    @property
    def e(self) -> float:
        """Non-INVITE request retransmit: first interval, doubling up to T2."""
        return self.t1

    @property
    def f(self) -> float:
        """Non-INVITE client gives up."""
        return 64 * self.t1

    @property
    def g(self) -> float:
        """INVITE server non-2xx final retransmit: first interval, doubling up to T2."""
        return self.t1

    @property
    def h(self) -> float:
        """INVITE server gives up waiting for the ACK to a non-2xx final."""
        return 64 * self.t1

    @property
    def i(self) -> float:
        """INVITE server absorbs retransmitted ACKs."""
        return self.t4

    @property
    def j(self) -> float:
        """Non-INVITE server absorbs retransmitted requests."""
        return 64 * self.t1

    @property
    def k(self) -> float:
        """Non-INVITE client absorbs retransmitted responses."""
        return self.t4

    @property
    def l(self) -> float:  # noqa: E743 - the RFC's name for it
        """INVITE server in Accepted: waits for the ACK to its 2xx (RFC 6026)."""
        return 64 * self.t1

    @property
    def m(self) -> float:
        """INVITE client in Accepted: accepts 2xx from other forks (RFC 6026)."""
        return 64 * self.t1

    def duration(self, timer: str, reliable: bool) -> float | None:
        """How long timer "A".."M" runs on a flow; None when it is not used."""
        if reliable:
            if timer in UNRELIABLE_ONLY:
                return None
            if timer in ZERO_WHEN_RELIABLE:
                return 0.0
        return float(getattr(self, timer.lower()))
