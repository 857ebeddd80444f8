"""What the engine asks its runner to do: small frozen classes, no behaviour.

The runner (the call's media channel and the call layer) carries each out
and reports back with an event (switch.apps.ivr.events) that names the
same `id` where there is one: a late answer to something the engine has
given up on is recognised and dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class Speech:
    """Text to render with espeak-ng (switch.media.tts) in `voice`."""

    text: str
    voice: str


@dataclass(frozen=True)
class File:
    """A WAV prompt (switch.media.wav.read_prompt)."""

    path: Path


@dataclass(frozen=True)
class Silence:
    ms: int


PlayItem = Speech | File | Silence


@dataclass(frozen=True)
class Answer:
    """Answer the call (200 OK) if it is not answered yet."""


@dataclass(frozen=True)
class Play:
    """Play the items as one stream, `loop` times (0: until StopPlay).

    One prompt plays at a time: a new Play replaces the one playing. With
    barge_in the engine sends StopPlay when a key is pressed; the runner
    answers PlayDone(id) when the playing has ended, however it ended.
    """

    id: int
    items: tuple[PlayItem, ...]
    loop: int = 1
    barge_in: bool = False


@dataclass(frozen=True)
class StopPlay:
    id: int


@dataclass(frozen=True)
class StartRecord:
    """Record the caller; stop on `silence` seconds of silence (0: never) and answer RecordDone.

    The engine keeps the maximum length itself (it sends StopRecord).
    """

    id: int
    name: str  # a name for the file: flow, step and time
    silence: float
    beep: bool


@dataclass(frozen=True)
class StopRecord:
    id: int


@dataclass(frozen=True)
class HttpRequest:
    """Call a web service; answer HttpResponse (JSON decoded) or HttpFailed.

    The engine keeps the timeout itself; an answer after it is dropped.
    """

    id: int
    method: Literal["GET", "POST", "PUT"]
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, str] | None = None  # sent as a JSON object
    timeout: float = 5.0


@dataclass(frozen=True)
class Enqueue:
    """Hand the caller to a queue (the ACD); the IVR is done with the call."""

    queue: str
    priority: int = 0
    skills: Mapping[str, int] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)  # for the screen pop


@dataclass(frozen=True)
class Dial:
    """Ring an agent, an extension or an outside number; answer DialResult(id).

    Answered, the call is bridged and the IVR is done; otherwise the flow goes on.
    """

    id: int
    kind: Literal["agent", "extension", "number"]
    target: str
    timeout: float
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CancelDial:
    id: int


@dataclass(frozen=True)
class Voicemail:
    """Hand the caller to voicemail; the IVR is done with the call."""

    mailbox: str
    greeting: tuple[PlayItem, ...] = ()


@dataclass(frozen=True)
class Callback:
    """Ask the queue to call `number` back; the flow goes on (say thanks, hang up)."""

    queue: str
    number: str
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notify:
    """Send an e-mail (SMTP) or an SMS or fax (HTTP webhook); fire and forget."""

    channel: Literal["email", "sms", "fax"]
    to: str
    body: str
    subject: str | None = None
    attachment: Path | None = None


@dataclass(frozen=True)
class Transfer:
    """Blind transfer to a number or extension; the IVR is done with the call."""

    to: str


@dataclass(frozen=True)
class Hangup:
    reason: str = "flow"


Command = (
    Answer | Play | StopPlay | StartRecord | StopRecord | HttpRequest | Enqueue | Dial
    | CancelDial | Voicemail | Callback | Notify | Transfer | Hangup
)  # fmt: skip
