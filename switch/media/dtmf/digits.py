"""The events every DTMF source reports, and the sixteen digits."""

from __future__ import annotations

from dataclasses import dataclass

# In RFC 4733 event-code order: event n is DIGITS[n] for n < 16.
DIGITS = "0123456789*#ABCD"


class DtmfError(ValueError):
    """Input that carries no digit we can trust: the caller logs it and goes on."""


@dataclass(frozen=True, slots=True)
class DigitBegin:
    """A key went down."""

    digit: str


@dataclass(frozen=True, slots=True)
class Digit:
    """A key press, complete: one per press."""

    digit: str
    duration: float  # seconds the key was held, as far as the source says
