"""The typed model of a flow: steps made of verbs, as loaded and checked.

Everything is frozen: a Flow is shared by every call that runs it, and a
reload makes a new one rather than changing this one, so a call finishes
on the version it started with. Each verb keeps where it was written
(`at`), for run-time log lines that point back at the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from switch.config import Hours

from .conditions import Condition
from .template import Template


@dataclass(frozen=True)
class At:
    """A place in a flow file, 1-based."""

    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


# ---------------------------------------------------------------------------
# What a prompt is made of


@dataclass(frozen=True)
class Speak:
    """Text to speech: `voice` is an espeak-ng voice ("en", "cmn", "en-us")."""

    text: Template
    voice: str


@dataclass(frozen=True)
class Sound:
    """A WAV file, already checked to exist and to be playable."""

    path: Path


@dataclass(frozen=True)
class Pause:
    ms: int


PromptItem = Speak | Sound | Pause
Prompt = tuple[PromptItem, ...]


# ---------------------------------------------------------------------------
# Verbs. `at` is where the verb is written.


@dataclass(frozen=True)
class Answer:
    at: At


@dataclass(frozen=True)
class Play:
    """play and say: a prompt played `loop` times (0: until a key or a hangup)."""

    at: At
    prompt: Prompt
    loop: int = 1
    barge_in: bool = False


@dataclass(frozen=True)
class Gather:
    at: At
    prompt: Prompt = ()
    into: str = "digits"
    min: int = 1
    max: int = 1
    finish_key: str = "#"
    first_digit_timeout: float = 5.0
    inter_digit_timeout: float = 3.0
    retries: int = 2  # tries after the first
    invalid_prompt: Prompt = ()
    no_input_prompt: Prompt = ()  # default: invalid_prompt
    pattern: re.Pattern[str] | None = None
    barge_in: bool = True
    next: str | None = None  # step after good input; default: the next verb
    fallback: str | None = None  # step after the last failed try; default: the next verb


@dataclass(frozen=True)
class Menu:
    at: At
    options: Mapping[str, str]  # key -> step
    default: str  # step after the last failed try
    prompt: Prompt = ()
    timeout: float = 5.0
    retries: int = 2
    invalid_prompt: Prompt = ()
    no_input_prompt: Prompt = ()
    barge_in: bool = True


@dataclass(frozen=True)
class Record:
    at: At
    into: str = "recording"
    max_length: float = 60.0
    silence: float = 5.0  # seconds of silence that end it; 0 = off
    beep: bool = True
    finish_keys: str = "#"
    prompt: Prompt = ()


@dataclass(frozen=True)
class Set:
    at: At
    values: Mapping[str, Template]


@dataclass(frozen=True)
class Case:
    when: Condition
    goto: str
    at: At


@dataclass(frozen=True)
class Branch:
    at: At
    cases: tuple[Case, ...]
    otherwise: str | None = None  # `else`; None: the next verb


@dataclass(frozen=True)
class Http:
    at: At
    url: Template
    method: Literal["GET", "POST", "PUT"] = "GET"
    headers: Mapping[str, Template] = field(default_factory=dict)
    body: Mapping[str, Template] | None = None
    timeout: float = 5.0
    into: str = "http"
    fallback: str | None = None


@dataclass(frozen=True)
class Enqueue:
    at: At
    queue: str
    priority: int = 0
    skills: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Dial:
    at: At
    kind: Literal["agent", "extension", "number"]
    target: Template
    timeout: float = 30.0
    fallback: str | None = None


@dataclass(frozen=True)
class Voicemail:
    at: At
    mailbox: str
    greeting: Prompt = ()


@dataclass(frozen=True)
class Callback:
    at: At
    queue: str
    number: Template


@dataclass(frozen=True)
class Notify:
    at: At
    channel: Literal["email", "sms", "fax"]
    to: Template
    body: Template
    subject: Template | None = None
    attachment: Path | None = None


@dataclass(frozen=True)
class Transfer:
    at: At
    to: Template


@dataclass(frozen=True)
class Hangup:
    at: At
    reason: str = "flow"


@dataclass(frozen=True)
class Goto:
    at: At
    step: str


Verb = (
    Answer | Play | Gather | Menu | Record | Set | Branch | Http | Enqueue | Dial | Voicemail
    | Callback | Notify | Transfer | Hangup | Goto
)  # fmt: skip

# Verbs after which the caller is in someone else's hands: the flow is over.
HANDOFFS = (Enqueue, Voicemail, Transfer, Hangup)


@dataclass(frozen=True)
class Step:
    name: str
    at: At
    verbs: tuple[Verb, ...]


@dataclass(frozen=True)
class Flow:
    """One checked flow of one tenant."""

    tenant: str
    name: str  # the ivr's name in the config
    source: str  # the file, or "builtin:demo"
    digest: str  # of the file's text: which version a call ran
    start: str
    steps: Mapping[str, Step]
    language: str = "en"
    voice: str | None = None
    timezone: str = "UTC"
    variables: Mapping[str, Template] = field(default_factory=dict)
    fallback: str | None = None  # where a runaway loop goes
    loop_limit: int = 100  # steps entered without a key pressed
    calendars: Mapping[str, Hours] = field(default_factory=dict)
