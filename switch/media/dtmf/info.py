"""DTMF in SIP INFO bodies: `application/dtmf-relay` and `application/dtmf`.

Neither has an RFC; both are what phones and carriers send when a trunk
does not do RFC 4733:

    Content-Type: application/dtmf-relay        Content-Type: application/dtmf

    Signal=5                                    5
    Duration=160

Duration is in milliseconds. What arrives in the wild varies, and all of
this is read: keys in any case, spaces around '=', LF or CRLF line ends,
other lines (some phones add Volume=), the keys given as event numbers
(Signal=10 for '*', 11 for '#', 12-15 for A-D, as in RFC 4733), a missing
or unreadable Duration (taken as `DEFAULT_DURATION`). A body without a key
we can read raises `DtmfError` saying what was wrong; the caller answers
the INFO with 200 all the same (the digit is lost, not the dialog).
"""

from __future__ import annotations

from .digits import DIGITS, Digit, DtmfError
from .events import event_code

DTMF_RELAY = "application/dtmf-relay"
DTMF = "application/dtmf"
DEFAULT_DURATION = 0.1  # seconds, as Asterisk assumes
MAX_DURATION = 10.0  # seconds; a longer one is junk, clamped
MAX_BODY = 1024  # bytes; these bodies are a few dozen


def parse_info(content_type: str, body: bytes | str) -> Digit:
    """The key press in the body of an INFO request of `content_type`."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind not in (DTMF_RELAY, DTMF):
        raise DtmfError(f"INFO with {content_type!r} carries no DTMF; expected {DTMF_RELAY}")
    if len(body) > MAX_BODY:
        raise DtmfError(f"{kind} body of {len(body)} bytes; a key press takes a few dozen")
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
    if kind == DTMF:
        return Digit(_key(text.strip(), kind), DEFAULT_DURATION)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            fields.setdefault(name.strip().lower(), value.strip())
    if "signal" not in fields:
        raise DtmfError(f"{kind} body without a Signal= line: {text[:60]!r}")
    return Digit(_key(fields["signal"], kind), _duration(fields.get("duration")))


def info_body(digit: str, duration: float, content_type: str = DTMF_RELAY) -> bytes:
    """The body that says `digit` was held `duration` seconds."""
    key = DIGITS[event_code(digit)]
    if content_type == DTMF:
        return key.encode()
    if content_type != DTMF_RELAY:
        raise DtmfError(f"no DTMF body for {content_type!r}; use {DTMF_RELAY} or {DTMF}")
    return f"Signal={key}\r\nDuration={round(duration * 1000)}\r\n".encode()


def _key(value: str, kind: str) -> str:
    if value.isascii() and value.isdigit() and len(value) <= 2 and int(value) < len(DIGITS):
        return DIGITS[int(value)]  # '5', or an event number such as '10' for '*'
    if len(value) == 1 and value.upper() in DIGITS:
        return value.upper()
    raise DtmfError(f"{kind} signal {value[:20]!r} is not a DTMF key; expected one of {DIGITS}")


def _duration(value: str | None) -> float:
    try:
        ms = int(value or "")
    except ValueError:
        return DEFAULT_DURATION
    if ms <= 0:
        return DEFAULT_DURATION
    return min(ms / 1000, MAX_DURATION)
