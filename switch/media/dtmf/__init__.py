"""DTMF in its three forms, sans-IO: RFC 4733 telephone-events (`events`),
SIP INFO bodies (`info`) and tones in the audio itself (`inband`).

All three report what they hear with the same two events, so an IVR or a
trunk policy does not care which form a digit came in:

- `DigitBegin`: a key went down. Sent as soon as the digit is certain, so a
  prompt can stop at once (barge-in).
- `Digit`: the key came up, with how long it was held. Exactly one per key
  press, whatever the network did to the packets; this is the event to count.
"""

from __future__ import annotations

from .digits import DIGITS, Digit, DigitBegin, DtmfError

__all__ = ["DIGITS", "Digit", "DigitBegin", "DtmfError"]
