"""The IVR engine, sans-IO: a flow and a call in, commands for a runner out.

In the manner of h11 and aioquic, a `Run` does no I/O and reads no clock:

    run = Run(flow, CallInfo(tenant="demo", number="+4477...", did="100"), now)
    commands = run.start(now)             # Answer, Play, ...
    commands = run.handle(Digit("1"), now)  # events from the channel and the call layer
    deadline = run.next_deadline()        # when to call handle_timer, or None
    commands = run.handle_timer(now)

`now` is Unix time in seconds (time conditions read the wall clock, in the
flow's time zone). A test drives a Run with a virtual clock and scripted
keys; the runner drives it with the call's media channel.

The runner keeps one prompt playing at a time: a new Play replaces the one
playing. Every key the caller presses and every step taken is in
`run.trail`, with its time, for the screen pop and the call record;
`run.variables` holds what the flow set and what web services answered.

Keys pressed while no gather or menu listens are kept for the next one
(type-ahead: a caller who knows the menu presses 1 during the greeting),
except during a prompt played without barge-in, which ignores keys.

A flow that goes round without the caller pressing a key more than
`loop_limit` steps is cut: a log line says where, and the call goes to
the flow's `fallback` step (once) or is hung up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from . import commands as cmd
from . import events as ev
from . import verbs as v
from .conditions import Condition, Facts, NoQueueInfo, QueueInfo

log = logging.getLogger("switch.ivr")

TYPE_AHEAD = 32  # keys kept for the next gather or menu
RECORD_GRACE = 5.0  # seconds to wait for RecordDone after StopRecord
DIAL_GRACE = 5.0  # seconds past a dial's timeout before the engine gives up on the runner


@dataclass(frozen=True)
class CallInfo:
    """The call as the flow sees it (templates: caller.*, call.*)."""

    tenant: str
    number: str  # the caller's, E.164 when known
    name: str = ""
    did: str = ""  # the number dialled
    id: str = ""  # the call's id in records


@dataclass(frozen=True)
class TrailEntry:
    """One thing that happened: a step entered, a key pressed, an input taken, an answer."""

    at: float
    step: str
    kind: str  # step, digit, input, no_input, invalid, branch, http, record, dial, ..., end
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "step": self.step, "kind": self.kind, "detail": self.detail}


# ---------------------------------------------------------------------------
# What a run waits for


@dataclass
class _Playing:
    id: int
    barge_in: bool


@dataclass
class _Collecting:
    """gather or menu: one try after another, each a prompt then keys."""

    verb: v.Gather | v.Menu
    attempt: int = 0
    digits: str = ""
    play_id: int | None = None  # the prompt playing, if any
    deadline: float | None = None


@dataclass
class _Recording:
    verb: v.Record
    id: int
    prompt_id: int | None = None  # the prompt before the beep, while it plays
    deadline: float | None = None
    stopping: bool = False


@dataclass
class _Asking:
    verb: v.Http
    id: int
    deadline: float


@dataclass
class _Dialing:
    verb: v.Dial
    id: int
    deadline: float
    target: str


_Wait = _Playing | _Collecting | _Recording | _Asking | _Dialing


class Run:
    """One call going through one flow."""

    def __init__(
        self,
        flow: v.Flow,
        call: CallInfo,
        now: float,
        queue_info: QueueInfo | None = None,
    ) -> None:
        self.flow = flow
        self.call = call
        self.queue_info = queue_info or NoQueueInfo()
        self.started_at = now
        self.trail: list[TrailEntry] = []
        self.done = False
        self.outcome = ""  # "enqueue:support", "hangup:flow", "caller_hangup", ...
        self._vars: dict[str, Any] = {}
        self._scope = {
            "caller": {"number": call.number, "name": call.name},
            "call": {"id": call.id, "did": call.did, "tenant": call.tenant, "ivr": flow.name},
            "vars": self._vars,
        }
        # UTC needs no tz database (a container may have none).
        self._zone = UTC if flow.timezone == "UTC" else ZoneInfo(flow.timezone)
        self._step = flow.start
        self._index = 0
        self._wait: _Wait | None = None
        self._ids = 0
        self._answered = False
        self._type_ahead = ""
        self._since_input = 0  # steps entered since the caller last pressed a key
        self._guard_used = False
        self._started = False

    # -- the runner's side -------------------------------------------------

    @property
    def variables(self) -> Mapping[str, Any]:
        return MappingProxyType(self._vars)

    @property
    def step(self) -> str:
        """The step the run is in."""
        return self._step

    @property
    def digits(self) -> str:
        """Every key the caller pressed, in order."""
        return "".join(entry.detail for entry in self.trail if entry.kind == "digit")

    def summary(self) -> dict[str, Any]:
        """For the screen pop and the call record: JSON-ready."""
        return {
            "ivr": self.flow.name,
            "flow": self.flow.source,
            "version": self.flow.digest,
            "caller": dict(self._scope["caller"]),
            "did": self.call.did,
            "digits": self.digits,
            "steps": [entry.step for entry in self.trail if entry.kind == "step"],
            "variables": dict(self._vars),
            "outcome": self.outcome,
            "trail": [entry.as_dict() for entry in self.trail],
        }

    def start(self, now: float) -> list[cmd.Command]:
        if self._started:
            raise RuntimeError("Run.start() called twice")
        self._started = True
        out: list[cmd.Command] = []
        for name, template in self.flow.variables.items():
            self._vars[name] = template.render(self._scope)
        self._note(now, "step", self._step)
        self._advance(now, out)
        return out

    def next_deadline(self) -> float | None:
        wait = self._wait
        if self.done or wait is None or isinstance(wait, _Playing):
            return None
        return wait.deadline

    def handle_timer(self, now: float) -> list[cmd.Command]:
        out: list[cmd.Command] = []
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return out
        wait = self._wait
        if isinstance(wait, _Collecting):
            self._collect_timeout(wait, now, out)
        elif isinstance(wait, _Recording):
            if wait.stopping:
                log.warning(
                    "%s: no RecordDone %.0f s after StopRecord; going on",
                    self._where(),
                    RECORD_GRACE,
                )
                self._record_done(wait, "", 0.0, "error", now, out)
            else:
                self._note(now, "record", "max_length")
                out.append(cmd.StopRecord(wait.id))
                wait.stopping = True
                wait.deadline = now + RECORD_GRACE
        elif isinstance(wait, _Asking):
            self._http_failed(wait, f"no answer within {wait.verb.timeout:g} s", now, out)
        elif isinstance(wait, _Dialing):
            out.append(cmd.CancelDial(wait.id))
            self._dial_failed(wait, "timeout", now, out)
        self._advance(now, out)
        return out

    def handle(self, event: ev.Event, now: float) -> list[cmd.Command]:
        out: list[cmd.Command] = []
        if self.done:
            return out
        if isinstance(event, ev.CallerHangup):
            self._note(now, "end", "caller hung up")
            self.done = True
            self.outcome = "caller_hangup"
            self._wait = None
            return out
        if isinstance(event, ev.Digit):
            self._digit(event.key, now, out)
        else:
            self._answer_event(event, now, out)
        self._advance(now, out)
        return out

    # -- events ------------------------------------------------------------

    def _digit(self, key: str, now: float, out: list[cmd.Command]) -> None:
        if len(key) != 1 or key not in "0123456789*#":
            log.info("%s: ignored key %r", self._where(), key)
            return
        self._note(now, "digit", key)
        self._since_input = 0
        wait = self._wait
        if isinstance(wait, _Collecting):
            self._collect_key(wait, key, now, out)
        elif isinstance(wait, _Playing):
            if wait.barge_in:
                out.append(cmd.StopPlay(wait.id))
                self._wait = None
                self._keep(key)
            else:
                self._note(now, "ignored", key)
        elif isinstance(wait, _Recording):
            if wait.prompt_id is None and not wait.stopping and key in wait.verb.finish_keys:
                self._note(now, "record", f"key {key}")
                out.append(cmd.StopRecord(wait.id))
                wait.stopping = True
                wait.deadline = now + RECORD_GRACE
        else:
            self._keep(key)

    def _keep(self, key: str) -> None:
        self._type_ahead = (self._type_ahead + key)[-TYPE_AHEAD:]

    def _answer_event(self, event: ev.Event, now: float, out: list[cmd.Command]) -> None:
        wait = self._wait
        if isinstance(event, ev.PlayDone):
            if isinstance(wait, _Playing) and wait.id == event.id:
                self._wait = None
            elif isinstance(wait, _Collecting) and wait.play_id == event.id:
                wait.play_id = None
                if not wait.digits:
                    wait.deadline = now + self._first_timeout(wait.verb)
            elif isinstance(wait, _Recording) and wait.prompt_id == event.id:
                self._start_recording(wait, now, out)
        elif isinstance(event, ev.RecordDone):
            if isinstance(wait, _Recording) and wait.id == event.id and wait.prompt_id is None:
                self._record_done(wait, event.path, event.seconds, event.reason, now, out)
        elif isinstance(event, ev.HttpResponse | ev.HttpFailed):
            if isinstance(wait, _Asking) and wait.id == event.id:
                if isinstance(event, ev.HttpFailed):
                    self._http_failed(wait, event.reason, now, out)
                elif 200 <= event.status < 300:
                    self._vars[wait.verb.into] = event.json
                    self._note(now, "http", f"{event.status}")
                    self._wait = None
                else:
                    self._http_failed(wait, f"status {event.status}", now, out)
        elif isinstance(event, ev.DialResult) and isinstance(wait, _Dialing):
            if wait.id != event.id:
                return
            if event.answered:
                self._end(now, f"dial:{wait.target}")
            else:
                self._dial_failed(wait, event.reason or "not answered", now, out)

    # -- running verbs -----------------------------------------------------

    def _advance(self, now: float, out: list[cmd.Command]) -> None:
        while not self.done and self._wait is None:
            step = self.flow.steps[self._step]
            if self._index >= len(step.verbs):
                self._note(now, "end", "end of step")
                out.append(cmd.Hangup("end of flow"))
                self._end(now, "hangup:end of flow")
                return
            verb = step.verbs[self._index]
            self._index += 1
            self._run(verb, now, out)

    def _run(self, verb: v.Verb, now: float, out: list[cmd.Command]) -> None:
        if isinstance(verb, v.Answer):
            self._answer(out)
        elif isinstance(verb, v.Play):
            self._answer(out)
            if verb.barge_in and self._type_ahead:
                return  # the caller has already barged in, during an earlier prompt
            play_id = self._play(verb.prompt, verb.loop, verb.barge_in, out)
            if play_id is not None:
                self._wait = _Playing(play_id, verb.barge_in)
        elif isinstance(verb, v.Gather | v.Menu):
            self._answer(out)
            wait = _Collecting(verb)
            self._wait = wait
            self._try(wait, (), now, out, type_ahead=True)
        elif isinstance(verb, v.Record):
            self._answer(out)
            self._ids += 1
            wait = _Recording(verb, self._ids)
            self._wait = wait
            wait.prompt_id = self._play(verb.prompt, 1, False, out)
            if wait.prompt_id is None:
                self._start_recording(wait, now, out)
        elif isinstance(verb, v.Set):
            for name, template in verb.values.items():
                self._vars[name] = template.render(self._scope)
        elif isinstance(verb, v.Branch):
            self._branch(verb, now, out)
        elif isinstance(verb, v.Http):
            self._http(verb, now, out)
        elif isinstance(verb, v.Dial):
            self._ids += 1
            target = verb.target.render(self._scope)
            self._note(now, "dial", f"{verb.kind} {target}")
            out.append(cmd.Dial(self._ids, verb.kind, target, verb.timeout, self._snapshot()))
            self._wait = _Dialing(verb, self._ids, now + verb.timeout + DIAL_GRACE, target)
        elif isinstance(verb, v.Callback):
            number = verb.number.render(self._scope)
            self._note(now, "callback", f"{verb.queue} {number}")
            out.append(cmd.Callback(verb.queue, number, self._snapshot()))
        elif isinstance(verb, v.Notify):
            to = verb.to.render(self._scope)
            self._note(now, "notify", f"{verb.channel} {to}")
            subject = verb.subject.render(self._scope) if verb.subject is not None else None
            body = verb.body.render(self._scope)
            out.append(cmd.Notify(verb.channel, to, body, subject, verb.attachment))
        elif isinstance(verb, v.Enqueue):
            out.append(cmd.Enqueue(verb.queue, verb.priority, dict(verb.skills), self._snapshot()))
            self._end(now, f"enqueue:{verb.queue}")
        elif isinstance(verb, v.Voicemail):
            out.append(cmd.Voicemail(verb.mailbox, self._items(verb.greeting)))
            self._end(now, f"voicemail:{verb.mailbox}")
        elif isinstance(verb, v.Transfer):
            to = verb.to.render(self._scope)
            out.append(cmd.Transfer(to))
            self._end(now, f"transfer:{to}")
        elif isinstance(verb, v.Hangup):
            out.append(cmd.Hangup(verb.reason))
            self._end(now, f"hangup:{verb.reason}")
        elif isinstance(verb, v.Goto):
            self._jump(verb.step, now, out)

    def _answer(self, out: list[cmd.Command]) -> None:
        # Answered before the first prompt or listening verb, written or not.
        if not self._answered:
            self._answered = True
            out.append(cmd.Answer())

    def _items(self, prompt: v.Prompt) -> tuple[cmd.PlayItem, ...]:
        items: list[cmd.PlayItem] = []
        for item in prompt:
            if isinstance(item, v.Speak):
                said = item.text.render(self._scope).strip()
                if said:
                    items.append(cmd.Speech(said, item.voice))
            elif isinstance(item, v.Sound):
                items.append(cmd.File(item.path))
            else:
                items.append(cmd.Silence(item.ms))
        return tuple(items)

    def _play(
        self, prompt: v.Prompt, loop: int, barge_in: bool, out: list[cmd.Command]
    ) -> int | None:
        items = self._items(prompt)
        if not items:
            return None
        self._ids += 1
        out.append(cmd.Play(self._ids, items, loop, barge_in))
        return self._ids

    def _jump(self, target: str, now: float, out: list[cmd.Command]) -> None:
        self._since_input += 1
        if self._since_input > self.flow.loop_limit:
            fallback = self.flow.fallback
            use_fallback = fallback is not None and not self._guard_used
            log.warning(
                "%s: %d steps without a key pressed (a loop with no way out?); %s",
                self._where(),
                self.flow.loop_limit,
                f"going to the fallback step {fallback!r}" if use_fallback else "hanging up",
            )
            self._note(now, "loop_guard", f"{self.flow.loop_limit} steps without input")
            if not use_fallback:
                out.append(cmd.Hangup("loop"))
                self._end(now, "hangup:loop")
                return
            assert fallback is not None
            self._guard_used = True
            self._since_input = 0
            target = fallback
        self._step = target
        self._index = 0
        self._note(now, "step", target)

    def _end(self, now: float, outcome: str) -> None:
        self.done = True
        self.outcome = outcome
        self._wait = None
        self._note(now, "end", outcome)

    def _note(self, now: float, kind: str, detail: str = "") -> None:
        self.trail.append(TrailEntry(now, self._step, kind, detail))

    def _where(self) -> str:
        flow = self.flow
        step = flow.steps.get(self._step)
        line = f" (line {step.at.line})" if step is not None else ""
        return f"ivr {flow.tenant}/{flow.name} call {self.call.id or '-'} step {self._step!r}{line}"

    def _snapshot(self) -> dict[str, Any]:
        return dict(self._vars)

    # -- gather and menu ---------------------------------------------------

    @staticmethod
    def _first_timeout(verb: v.Gather | v.Menu) -> float:
        return verb.first_digit_timeout if isinstance(verb, v.Gather) else verb.timeout

    def _try(
        self,
        wait: _Collecting,
        before: v.Prompt,
        now: float,
        out: list[cmd.Command],
        type_ahead: bool = False,
    ) -> None:
        """Start a try: the prompt (after `before`), then keys."""
        wait.digits = ""
        wait.play_id = None
        wait.deadline = None
        if type_ahead and self._type_ahead:
            keys, self._type_ahead = self._type_ahead, ""
            for key in keys:
                if self._wait is not wait or wait.attempt:
                    break  # taken, or refused (a new try has begun): the rest is dropped
                self._collect_key(wait, key, now, out)
            if self._wait is not wait or wait.attempt or wait.digits:
                return  # no prompt: the caller is already past it
        verb = wait.verb
        wait.play_id = self._play((*before, *verb.prompt), 1, verb.barge_in, out)
        if wait.play_id is None:
            wait.deadline = now + self._first_timeout(verb)

    def _collect_key(self, wait: _Collecting, key: str, now: float, out: list[cmd.Command]) -> None:
        verb = wait.verb
        if wait.play_id is not None:
            if not verb.barge_in:
                self._note(now, "ignored", key)
                return
            out.append(cmd.StopPlay(wait.play_id))
            wait.play_id = None
        if isinstance(verb, v.Menu):
            self._finish(wait, key, now, out)
            return
        if verb.finish_key and key == verb.finish_key:
            self._finish(wait, wait.digits, now, out)
            return
        wait.digits += key
        if len(wait.digits) >= verb.max:
            self._finish(wait, wait.digits, now, out)
        else:
            wait.deadline = now + verb.inter_digit_timeout

    def _collect_timeout(self, wait: _Collecting, now: float, out: list[cmd.Command]) -> None:
        if wait.digits:
            self._finish(wait, wait.digits, now, out)  # the inter-digit timeout ends an entry
        else:
            self._failed(wait, "no_input", now, out)

    def _finish(self, wait: _Collecting, entered: str, now: float, out: list[cmd.Command]) -> None:
        verb = wait.verb
        if isinstance(verb, v.Menu):
            target = verb.options.get(entered)
            if target is None:
                self._failed(wait, "invalid", now, out, entered)
                return
            self._note(now, "input", entered)
            self._wait = None
            self._jump(target, now, out)
            return
        good = len(entered) >= verb.min and (
            verb.pattern is None or verb.pattern.fullmatch(entered) is not None
        )
        if not good:
            self._failed(wait, "invalid", now, out, entered)
            return
        self._note(now, "input", entered)
        self._vars[verb.into] = entered
        self._wait = None
        if verb.next is not None:
            self._jump(verb.next, now, out)

    def _failed(
        self, wait: _Collecting, why: str, now: float, out: list[cmd.Command], entered: str = ""
    ) -> None:
        verb = wait.verb
        self._note(now, why, entered)
        wait.attempt += 1
        if wait.attempt <= verb.retries:
            sorry = verb.invalid_prompt
            if why == "no_input" and verb.no_input_prompt:
                sorry = verb.no_input_prompt
            self._try(wait, sorry, now, out)
            return
        self._wait = None
        if isinstance(verb, v.Menu):
            self._note(now, "fallback", verb.default)
            self._jump(verb.default, now, out)
            return
        self._vars[verb.into] = ""
        if verb.fallback is not None:
            self._note(now, "fallback", verb.fallback)
            self._jump(verb.fallback, now, out)

    # -- record, branch, http, dial ----------------------------------------

    def _start_recording(self, wait: _Recording, now: float, out: list[cmd.Command]) -> None:
        wait.prompt_id = None
        verb = wait.verb
        name = f"{self.flow.tenant}-{self.flow.name}-{self._step}-{int(now)}"
        out.append(cmd.StartRecord(wait.id, name, verb.silence, verb.beep))
        wait.deadline = now + verb.max_length
        self._note(now, "record", "start")

    def _record_done(
        self,
        wait: _Recording,
        path: str,
        seconds: float,
        reason: str,
        now: float,
        out: list[cmd.Command],
    ) -> None:
        self._vars[wait.verb.into] = path
        self._note(now, "record", f"{reason} {seconds:.1f} s {path}".strip())
        self._wait = None

    def _branch(self, verb: v.Branch, now: float, out: list[cmd.Command]) -> None:
        facts = Facts(
            tenant=self.flow.tenant,
            scope=self._scope,
            now=datetime.fromtimestamp(now, self._zone),
            calendars=self.flow.calendars,
            queues=self.queue_info,
        )
        for number, case in enumerate(verb.cases, 1):
            if self._holds(case.when, facts):
                self._note(now, "branch", f"case {number} -> {case.goto}")
                self._jump(case.goto, now, out)
                return
        if verb.otherwise is not None:
            self._note(now, "branch", f"else -> {verb.otherwise}")
            self._jump(verb.otherwise, now, out)
        else:
            self._note(now, "branch", "no case")

    def _holds(self, condition: Condition, facts: Facts) -> bool:
        try:
            return condition.holds(facts)
        except Exception:
            # A queue provider that fails must not take the caller down with it.
            log.exception("%s: a branch condition failed; taken as false", self._where())
            return False

    def _http(self, verb: v.Http, now: float, out: list[cmd.Command]) -> None:
        self._ids += 1
        # Values in a URL are escaped: what a caller typed cannot add a path or a query.
        url = verb.url.render(self._scope, escape=lambda value: quote(value, safe=""))
        # Nor can any value split a header in two.
        headers = {
            name: " ".join(template.render(self._scope).splitlines())
            for name, template in verb.headers.items()
        }
        body = None
        if verb.body is not None:
            body = {name: template.render(self._scope) for name, template in verb.body.items()}
        out.append(cmd.HttpRequest(self._ids, verb.method, url, headers, body, verb.timeout))
        self._note(now, "http", f"{verb.method} {url}")
        self._wait = _Asking(verb, self._ids, now + verb.timeout)

    def _http_failed(self, wait: _Asking, reason: str, now: float, out: list[cmd.Command]) -> None:
        log.info("%s: http %s failed: %s", self._where(), wait.verb.url, reason)
        self._note(now, "http_failed", reason)
        self._wait = None
        if wait.verb.fallback is not None:
            self._jump(wait.verb.fallback, now, out)

    def _dial_failed(self, wait: _Dialing, reason: str, now: float, out: list[cmd.Command]) -> None:
        self._note(now, "dial_failed", reason)
        self._wait = None
        if wait.verb.fallback is not None:
            self._jump(wait.verb.fallback, now, out)
