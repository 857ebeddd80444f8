"""From YAML nodes to a checked Flow: every verb, every key, every reference.

The file is a mapping:

    start: welcome          # the first step (default: the first one written)
    language: en            # the voice of `say` unless a verb names another
    timezone: Europe/London # the clock of time conditions (default: the tenant's)
    vars: {brand: Demo}     # variables every call starts with
    fallback: operator      # where a call goes when the flow loops without end
    steps:
      welcome:
        - answer
        - say: Welcome
        - goto: menu

Each step is a list of verbs, run in order. A step whose verbs run out
ends the call (hangup). What each verb takes is in README.md ("IVR flows").
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from switch.config import Hours, TimeRange, parse_days, parse_time_range
from switch.media.wav import WavError, read_prompt

from . import conditions as c
from . import verbs as v
from .read import Problems, Values, at, kind, pairs, suggest
from .template import Template, TemplateError, literal, parse_template

VERBS = (
    "answer",
    "play",
    "say",
    "gather",
    "menu",
    "record",
    "set",
    "branch",
    "http",
    "enqueue",
    "dial",
    "voicemail",
    "callback",
    "notify",
    "transfer",
    "hangup",
    "goto",
)
BARE_VERBS = ("answer", "hangup", "voicemail")  # may be written alone: "- answer"
TOP_KEYS = ("steps", "start", "language", "voice", "timezone", "vars", "fallback", "loop_limit")
KEYS = "0123456789*#"
_STEP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VOICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+\-/]*")
_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_URL_START = re.compile(r"https?://[^/?#{}\s]+")
_NULL = "tag:yaml.org,2002:null"
_VAR_KEYS = ("var", "equals", "in", "empty", "matches", "min", "max")
_QUEUE_KEYS = ("queue", "agents_available", "waiting", "estimated_wait")


@dataclass(frozen=True)
class FlowContext:
    """What a flow may refer to: the tenant's queues, agents and calendars."""

    tenant: str = "default"
    ivr: str = "main"
    queues: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    calendars: Mapping[str, Hours] = field(default_factory=dict)
    timezone: str = "UTC"
    base_dir: Path | None = None  # prompt files are relative to it


@dataclass
class Ref:
    """A step named somewhere, to be checked once every step is known."""

    target: str
    node: Node
    step: str | None
    label: str


class Parser:
    """Reads one flow document; `problems` holds everything wrong with it."""

    def __init__(self, source: str, context: FlowContext) -> None:
        self.source = source
        self.context = context
        self.problems = Problems(source)
        self.values = Values()
        self.refs: list[Ref] = []
        self.steps: dict[str, v.Step] | None = None  # once read
        self.default_voice = "en"
        self._sounds: dict[Path, str | None] = {}  # file -> problem, checked once
        self._verbs: dict[str, Callable[[Node, Node | None], v.Verb | None]] = {
            name: getattr(self, f"_{name}") for name in VERBS
        }

    def problem(self, node: Node | v.At, message: str) -> None:
        self.problems.add(node, message)

    # -- values ------------------------------------------------------------

    def table(
        self, node: Node, label: str, allowed: tuple[str, ...], example: str = ""
    ) -> dict[str, tuple[Node, Node]] | None:
        """A mapping's keys (key node, value node); unknown and repeated keys reported."""
        if not isinstance(node, MappingNode):
            hint = f" (e.g. {example})" if example else ""
            self.problem(
                node,
                f"{label}: expected a mapping of keys, got {kind(node)}; "
                f"write its keys below it, indented{hint}",
            )
            return None
        found: dict[str, tuple[Node, Node]] = {}
        for name, key, value in pairs(node):
            if name in found:
                self.problem(
                    key,
                    f"{label}: {name!r} is written twice (first at line "
                    f"{at(found[name][0]).line}); keep one",
                )
            elif name not in allowed:
                self.problem(
                    key,
                    f"{label}: unknown key {name!r}; {suggest(name, allowed)}"
                    f"{label.split('.')[0]} takes: {', '.join(allowed)}",
                )
            else:
                found[name] = (key, value)
        return found

    def text(self, node: Node, label: str, example: str) -> str | None:
        if isinstance(node, ScalarNode) and node.tag != _NULL:
            return node.value
        if (
            isinstance(node, MappingNode)
            and node.value
            and isinstance(node.value[0][0], MappingNode)
        ):
            self.problem(
                node,
                f"{label}: a value starting with {{{{ must be in quotes; "
                f'write it as "{{{{ ... }}}}"',
            )
            return None
        self.problem(node, f"{label}: expected text, got {kind(node)}; write e.g. {example}")
        return None

    def template(self, node: Node, label: str, example: str) -> Template | None:
        source = self.text(node, label, example)
        if source is None:
            return None
        try:
            return parse_template(source)
        except TemplateError as exc:
            place = at(node)
            assert isinstance(node, ScalarNode)
            if node.style in (None, '"', "'") and "\n" not in source:
                place = v.At(place.line, place.column + exc.offset + (node.style is not None))
            self.problem(place, f"{label}: bad template: {exc}")
            return None

    def number(
        self, node: Node, label: str, low: float, high: float, *, whole: bool = False
    ) -> Any:
        value = self.values.scalar(node) if isinstance(node, ScalarNode) else None
        unit = "a whole number" if whole else "a number of seconds"
        ok_type = isinstance(value, int) if whole else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            example = min(max(low, 1 if whole else 5), high)
            self.problem(
                node,
                f"{label}: expected {unit}, got {kind(node)}; "
                f"write e.g. {label.rsplit('.', 1)[-1]}: {example:g}",
            )
            return None
        if not low <= value <= high:
            self.problem(node, f"{label}: {value} is out of range; use {low:g} to {high:g}")
            return None
        return value

    def boolean(self, node: Node, label: str) -> bool | None:
        value = self.values.scalar(node) if isinstance(node, ScalarNode) else None
        if not isinstance(value, bool):
            self.problem(
                node, f"{label}: expected true or false, got {kind(node)}; write true or false"
            )
            return None
        return value

    def choice(self, node: Node, label: str, choices: tuple[str, ...]) -> str | None:
        value = self.text(node, label, choices[0])
        if value is None:
            return None
        if value not in choices:
            self.problem(
                node,
                f"{label}: {value!r} is not a choice; {suggest(value, choices)}"
                f"use one of: {', '.join(choices)}",
            )
            return None
        return value

    def var_name(self, node: Node, label: str) -> str | None:
        name = self.text(node, label, "account")
        if name is not None and not _VAR_NAME.fullmatch(name):
            self.problem(
                node,
                f"{label}: {name!r} is not a variable name; use letters, "
                "digits and _ (e.g. account_number)",
            )
            return None
        return name

    def voice(self, node: Node, label: str) -> str | None:
        name = self.text(node, label, "en")
        if name is not None and not _VOICE.fullmatch(name):
            self.problem(
                node,
                f"{label}: {name!r} is not a voice; use an espeak-ng voice "
                "such as en, en-us or cmn (see espeak-ng --voices)",
            )
            return None
        return name

    def step_ref(self, node: Node, label: str) -> str | None:
        name = self.text(node, label, "main_menu")
        if name is not None:
            self.refs.append(Ref(name, node, self.problems.step, label))
        return name

    def named(self, node: Node, label: str, what: str, known: Any, where: str) -> str | None:
        """A queue, agent or calendar of the tenant."""
        name = self.text(node, label, "support")
        if name is None:
            return None
        if name not in known:
            listing = ", ".join(sorted(known)) or "none"
            tenant = self.context.tenant
            self.problem(
                node,
                f"{label}: unknown {what} {name!r} in tenant {tenant!r}; "
                f"{suggest(name, known)}use one of: {listing}, "
                f"or define [{where.format(tenant=tenant, name=name)}]",
            )
            return None
        return name

    def queue(self, node: Node, label: str) -> str | None:
        return self.named(
            node, label, "queue", self.context.queues, "tenants.{tenant}.queues.{name}"
        )

    def calendar(self, node: Node, label: str) -> str | None:
        return self.named(
            node, label, "calendar", self.context.calendars, "tenants.{tenant}.hours.{name}"
        )

    def sound(self, node: Node, label: str) -> Path | None:
        written = self.text(node, label, "sounds/welcome.wav")
        if written is None:
            return None
        if "{{" in written:
            self.problem(node, f"{label}: a file name cannot be a template; name the file")
            return None
        path = Path(written)
        if not path.is_absolute() and self.context.base_dir is not None:
            path = self.context.base_dir / path
        if path not in self._sounds:
            self._sounds[path] = self._sound_problem(written, path)
        problem = self._sounds[path]
        if problem is not None:
            self.problem(node, f"{label}: {problem}")
            return None
        return path

    @staticmethod
    def _sound_problem(written: str, path: Path) -> str | None:
        where = "" if str(path) == written else f" (looked for {path})"
        if "\0" in written:
            return f"{written!r} is not a file name (it holds a NUL character); name a WAV file"
        if not path.exists():
            return (
                f"prompt file {written!r} does not exist{where}; record it there or "
                "correct the path (relative to the flow file)"
            )
        if not path.is_file():
            return f"prompt file {written!r} is a directory{where}; name a WAV file"
        try:
            read_prompt(path)
        except (WavError, OSError) as exc:
            return f"prompt file {written!r} cannot be played: {exc}"
        return None

    def prompt(self, node: Node, label: str) -> v.Prompt:
        items = node.value if isinstance(node, SequenceNode) else [node]
        prompt: list[v.PromptItem] = []
        for item in items:
            if isinstance(item, ScalarNode):
                text = self.template(item, label, '"Welcome"')
                if text is not None:
                    prompt.append(v.Speak(text, self.default_voice))
                continue
            keys = self.table(
                item, label, ("say", "play", "pause", "language", "voice"), "say: Welcome"
            )
            if keys is None:
                continue
            kinds = [name for name in ("say", "play", "pause") if name in keys]
            if len(kinds) != 1:
                self.problem(
                    item,
                    f"{label}: each item of a prompt is one of say, play or "
                    f"pause (found {', '.join(kinds) or 'none'}); write one per item",
                )
                continue
            if kinds[0] != "say":
                for extra in ("language", "voice"):
                    if extra in keys:
                        self.problem(keys[extra][0], f"{label}.{extra}: only for say; remove it")
            if kinds[0] == "say":
                voice = self.item_voice(keys, label)
                text = self.template(keys["say"][1], f"{label}.say", '"Welcome"')
                if text is not None and voice is not None:
                    prompt.append(v.Speak(text, voice))
            elif kinds[0] == "play":
                path = self.sound(keys["play"][1], f"{label}.play")
                if path is not None:
                    prompt.append(v.Sound(path))
            else:
                seconds = self.number(keys["pause"][1], f"{label}.pause", 0.02, 60)
                if seconds is not None:
                    prompt.append(v.Pause(int(seconds * 1000)))
        return tuple(prompt)

    def item_voice(self, keys: Mapping[str, tuple[Node, Node]], label: str) -> str | None:
        if "voice" in keys:
            return self.voice(keys["voice"][1], f"{label}.voice")
        if "language" in keys:
            return self.voice(keys["language"][1], f"{label}.language")
        return self.default_voice

    def required(
        self, keys: Mapping[str, tuple[Node, Node]], name: str, node: Node, verb: str, example: str
    ) -> Node | None:
        if name in keys:
            return keys[name][1]
        self.problem(node, f"{verb}: missing {name!r}; add {name}: {example}")
        return None

    # -- verbs -------------------------------------------------------------

    def verb(self, item: Node) -> v.Verb | None:
        value: Node | None
        if isinstance(item, ScalarNode) and item.tag != _NULL:
            name, key, value = item.value, item, None
        elif isinstance(item, MappingNode) and item.value:
            (name, key, value), *rest = list(pairs(item))
            if rest:
                extra = rest[0][0]
                self.problem(
                    rest[0][1],
                    f"{name}: {extra!r} is beside the verb, not in it (a list item holds one "
                    f"verb); make it a key of {name}: - {name}: {{..., {extra}: ...}}",
                )
                return None
        else:
            self.problem(
                item,
                f"expected a verb (e.g. - say: Welcome), got {kind(item)}; "
                f"verbs are {', '.join(VERBS)}",
            )
            return None
        if name not in VERBS:
            self.problem(
                key, f"unknown verb {name!r}; {suggest(name, VERBS)}verbs: {', '.join(VERBS)}"
            )
            return None
        if value is not None and isinstance(value, ScalarNode) and value.tag == _NULL:
            value = None
        if value is None and name not in BARE_VERBS:
            self.problem(
                key,
                f"{name}: needs a value; see the example in README.md "
                f"(e.g. - {name}: {_EXAMPLES[name]})",
            )
            return None
        return self._verbs[name](key, value)

    def _answer(self, key: Node, value: Node | None) -> v.Verb | None:
        if value is not None and not (isinstance(value, MappingNode) and not value.value):
            self.problem(value, "answer: takes no value; write - answer")
            return None
        return v.Answer(at(key))

    def _play(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        if isinstance(value, MappingNode):
            keys = self.table(value, "play", ("files", "loop", "barge_in"))
            if keys is None:
                return None
            files = self.required(keys, "files", value, "play", "[welcome.wav]")
            loop, barge_in = self.loop_and_barge_in(keys, "play")
        else:
            files, loop, barge_in = value, 1, False
        if files is None:
            return None
        items = files.value if isinstance(files, SequenceNode) else [files]
        if not items:
            self.problem(files, "play: the list of files is empty; name at least one WAV file")
            return None
        sounds = [self.sound(item, "play") for item in items]
        if None in sounds or loop is None or barge_in is None:
            return None
        return v.Play(at(key), tuple(v.Sound(path) for path in sounds if path), loop, barge_in)

    def loop_and_barge_in(
        self, keys: Mapping[str, tuple[Node, Node]], verb: str
    ) -> tuple[int | None, bool | None]:
        loop = (
            self.number(keys["loop"][1], f"{verb}.loop", 0, 100, whole=True)
            if "loop" in keys
            else 1
        )
        barge_in: bool | None = False
        if "barge_in" in keys:
            barge_in = self.boolean(keys["barge_in"][1], f"{verb}.barge_in")
        return loop, barge_in

    def _say(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        if not isinstance(value, MappingNode) or (
            value.value and isinstance(value.value[0][0], MappingNode)
        ):
            text = self.template(value, "say", '"Welcome"')
            return None if text is None else v.Play(at(key), (v.Speak(text, self.default_voice),))
        keys = self.table(value, "say", ("text", "language", "voice", "loop", "barge_in"))
        if keys is None:
            return None
        node = self.required(keys, "text", value, "say", '"Welcome"')
        text = None if node is None else self.template(node, "say.text", '"Welcome"')
        voice = self.item_voice(keys, "say")
        loop, barge_in = self.loop_and_barge_in(keys, "say")
        if text is None or voice is None or loop is None or barge_in is None:
            return None
        return v.Play(at(key), (v.Speak(text, voice),), loop, barge_in)

    def collect_keys(self, keys: Mapping[str, tuple[Node, Node]], verb: str) -> dict[str, Any]:
        """What gather and menu share: prompts, retries, barge-in."""
        out: dict[str, Any] = {}
        for name in ("prompt", "invalid_prompt", "no_input_prompt"):
            if name in keys:
                out[name] = self.prompt(keys[name][1], f"{verb}.{name}")
        if "retries" in keys:
            out["retries"] = self.number(keys["retries"][1], f"{verb}.retries", 0, 10, whole=True)
        if "barge_in" in keys:
            out["barge_in"] = self.boolean(keys["barge_in"][1], f"{verb}.barge_in")
        return out

    def _gather(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        allowed = (
            "prompt",
            "into",
            "min",
            "max",
            "finish_key",
            "first_digit_timeout",
            "inter_digit_timeout",
            "retries",
            "invalid_prompt",
            "no_input_prompt",
            "pattern",
            "barge_in",
            "next",
            "fallback",
        )
        keys = self.table(value, "gather", allowed, "{max: 4, into: account}")
        if keys is None:
            return None
        out = self.collect_keys(keys, "gather")
        if "into" in keys:
            out["into"] = self.var_name(keys["into"][1], "gather.into")
        for name in ("min", "max"):
            if name in keys:
                out[name] = self.number(keys[name][1], f"gather.{name}", 1, 64, whole=True)
        for name, high in (("first_digit_timeout", 120), ("inter_digit_timeout", 60)):
            if name in keys:
                out[name] = self.number(keys[name][1], f"gather.{name}", 0.5, high)
        if "finish_key" in keys:
            out["finish_key"] = self.finish_keys(keys["finish_key"][1], "gather.finish_key", 1)
        if "pattern" in keys:
            out["pattern"] = self.pattern(keys["pattern"][1], "gather.pattern")
        for name in ("next", "fallback"):
            if name in keys:
                out[name] = self.step_ref(keys[name][1], f"gather.{name}")
        if None in out.values():
            return None
        low, high = out.get("min", 1), out.get("max", max(out.get("min", 1), 1))
        if "max" not in out:
            out["max"] = high
        if low > high:
            self.problem(
                keys["min"][1], f"gather.min: {low} is more than max ({high}); make min at most max"
            )
            return None
        return v.Gather(at(key), **out)

    def finish_keys(self, node: Node, label: str, most: int) -> str | None:
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            self.problem(
                node,
                f"{label}: no value (# starts a comment in YAML); "
                'write the key in quotes: "#" (or "" for no key)',
            )
            return None
        written = self.text(node, label, '"#"')
        if written is None:
            return None
        if len(written) > most or any(key not in KEYS for key in written):
            self.problem(
                node,
                f"{label}: {written!r} is not a phone key; use one of "
                f'{" ".join(KEYS)}, in quotes (or "" for none)',
            )
            return None
        return written

    def pattern(self, node: Node, label: str) -> re.Pattern[str] | None:
        written = self.text(node, label, '"[0-9]{6}"')
        if written is None:
            return None
        try:
            return re.compile(written)
        except re.error as exc:
            self.problem(
                node,
                f"{label}: {written!r} is not a regular expression ({exc}); "
                'correct it (e.g. "[0-9]{6}")',
            )
            return None

    def _menu(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        allowed = (
            "prompt",
            "options",
            "default",
            "timeout",
            "retries",
            "invalid_prompt",
            "no_input_prompt",
            "barge_in",
        )
        keys = self.table(value, "menu", allowed, '{options: {"1": support}, default: support}')
        if keys is None:
            return None
        out = self.collect_keys(keys, "menu")
        if "timeout" in keys:
            out["timeout"] = self.number(keys["timeout"][1], "menu.timeout", 0.5, 120)
        options_node = self.required(keys, "options", value, "menu", '{"1": support, "2": sales}')
        default_node = self.required(keys, "default", value, "menu", "support")
        if options_node is None or default_node is None:
            return None
        out["default"] = self.step_ref(default_node, "menu.default")
        options = self.table(options_node, "menu.options", tuple(KEYS), '{"1": support}')
        if options is None:
            return None
        if not options_node.value:
            self.problem(options_node, 'menu.options: no options; add at least one ("1": support)')
            return None
        targets = {
            name: self.step_ref(node, f"menu.options.{name}") for name, (_, node) in options.items()
        }
        if None in out.values() or None in targets.values():
            return None
        return v.Menu(at(key), options=MappingProxyType(dict(targets)), **out)  # type: ignore[arg-type]

    def _record(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        allowed = ("into", "max_length", "silence", "beep", "finish_keys", "prompt")
        keys = self.table(value, "record", allowed, "{max_length: 120}")
        if keys is None:
            return None
        out: dict[str, Any] = {}
        if "into" in keys:
            out["into"] = self.var_name(keys["into"][1], "record.into")
        if "max_length" in keys:
            out["max_length"] = self.number(keys["max_length"][1], "record.max_length", 1, 3600)
        if "silence" in keys:
            out["silence"] = self.number(keys["silence"][1], "record.silence", 0, 60)
        if "beep" in keys:
            out["beep"] = self.boolean(keys["beep"][1], "record.beep")
        if "finish_keys" in keys:
            out["finish_keys"] = self.finish_keys(keys["finish_keys"][1], "record.finish_keys", 12)
        if "prompt" in keys:
            out["prompt"] = self.prompt(keys["prompt"][1], "record.prompt")
        if None in out.values():
            return None
        return v.Record(at(key), **out)

    def _set(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        if not isinstance(value, MappingNode) or not value.value:
            self.problem(
                value,
                f'set: expected variables (set: {{account: "{{{{ vars.digits }}}}"}}), '
                f"got {kind(value)}; write name: value pairs below set",
            )
            return None
        values: dict[str, Template] = {}
        for name, name_node, node in pairs(value):
            if self.var_name(name_node, "set") is None:
                continue
            if name in values:
                self.problem(name_node, f"set: {name!r} is set twice here; keep one")
                continue
            if isinstance(node, ScalarNode) and node.tag != "tag:yaml.org,2002:str":
                values[name] = literal("" if node.tag == _NULL else node.value)
                continue
            template = self.template(node, f"set.{name}", '"gold"')
            if template is not None:
                values[name] = template
        return v.Set(at(key), MappingProxyType(values))

    def _branch(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        example = "- when: {open: office}\n        goto: welcome\n      - else: closed"
        if not isinstance(value, SequenceNode) or not value.value:
            self.problem(
                value,
                f"branch: expected a list of cases, got {kind(value)}; write e.g.\n      {example}",
            )
            return None
        cases: list[v.Case] = []
        otherwise: str | None = None
        ok = True
        for index, item in enumerate(value.value):
            keys = self.table(item, "branch", ("when", "goto", "else"), "{when: ..., goto: step}")
            if keys is None:
                ok = False
                continue
            if "else" in keys:
                if len(keys) > 1 or index != len(value.value) - 1:
                    self.problem(
                        item,
                        "branch: else must be alone, in the last case; "
                        "move it to the end, on its own (- else: step)",
                    )
                    ok = False
                    continue
                otherwise = self.step_ref(keys["else"][1], "branch.else")
                ok = ok and otherwise is not None
                continue
            when = self.required(keys, "when", item, "branch", "{open: office}")
            goto = self.required(keys, "goto", item, "branch", "a_step")
            if when is None or goto is None:
                ok = False
                continue
            condition = self.condition(when, "branch.when")
            target = self.step_ref(goto, "branch.goto")
            if condition is None or target is None:
                ok = False
                continue
            cases.append(v.Case(condition, target, at(item)))
        return v.Branch(at(key), tuple(cases), otherwise) if ok else None

    _CONDITIONS = (
        "caller",
        "did",
        "var",
        "equals",
        "in",
        "empty",
        "matches",
        "min",
        "max",
        "time",
        "days",
        "open",
        "holiday",
        "queue",
        "agents_available",
        "waiting",
        "estimated_wait",
        "any",
        "all",
        "not",
    )

    def condition(self, node: Node, label: str) -> c.Condition | None:
        keys = self.table(node, label, self._CONDITIONS, '{caller: "+44*"}')
        if keys is None:
            return None
        if not keys:
            self.problem(node, f"{label}: empty condition; write one, e.g. {{open: office}}")
            return None
        parts: list[c.Condition | None] = []
        for name in ("caller", "did"):
            if name in keys:
                parts.append(self.number_is(name, keys[name][1], f"{label}.{name}"))
        if any(name in keys for name in _VAR_KEYS):
            parts.append(self.var_is(keys, label))
        if "time" in keys:
            parts.append(self.time_is(keys["time"][1], f"{label}.time"))
        if "days" in keys:
            days_node = keys["days"][1]
            try:
                parts.append(c.DayIs(parse_days(self.values.plain(days_node))))
            except ValueError as exc:
                self.problem(
                    days_node, f"{label}.days: invalid day condition: {exc}; write e.g. mon-fri"
                )
                parts.append(None)
        for name in ("open", "holiday"):
            if name in keys:
                calendar = self.calendar(keys[name][1], f"{label}.{name}")
                parts.append(None if calendar is None else c.CalendarIs(name, calendar))  # type: ignore[arg-type]
        if any(name in keys for name in _QUEUE_KEYS):
            parts.append(self.queue_is(keys, label))
        for name in ("any", "all"):
            if name in keys:
                parts.append(self.group(name, keys[name][1], f"{label}.{name}"))
        if "not" in keys:
            inner = self.condition(keys["not"][1], f"{label}.not")
            parts.append(None if inner is None else c.Not(inner))
        if None in parts:
            return None
        return parts[0] if len(parts) == 1 else c.AllOf(tuple(parts))  # type: ignore[arg-type]

    def number_is(self, name: str, node: Node, label: str) -> c.Condition | None:
        items = node.value if isinstance(node, SequenceNode) else [node]
        patterns = [self.text(item, label, '"+44*"') for item in items]
        if None in patterns or not patterns:
            return None
        return c.NumberIs(name, tuple(patterns))  # type: ignore[arg-type]

    def var_is(self, keys: Mapping[str, tuple[Node, Node]], label: str) -> c.Condition | None:
        tests = [name for name in _VAR_KEYS[1:] if name in keys]
        if "var" not in keys:
            for name in tests:
                self.problem(
                    keys[name][0], f"{label}.{name}: tests a variable; add var: NAME beside it"
                )
            return None
        name = self.var_name(keys["var"][1], f"{label}.var")
        numeric = [t for t in tests if t in ("min", "max")]
        others = [t for t in tests if t not in ("min", "max")]
        if len(others) + bool(numeric) > 1:
            self.problem(
                keys["var"][1],
                f"{label}: var takes one test, found {', '.join(tests)}; "
                "use any/all to combine tests",
            )
            return None
        if name is None:
            return None
        if "equals" in keys:
            equals = self.template(keys["equals"][1], f"{label}.equals", '"gold"')
            return None if equals is None else c.VarIs(name, equals=equals)
        if "in" in keys:
            items_node = keys["in"][1]
            items = items_node.value if isinstance(items_node, SequenceNode) else [items_node]
            one_of = [self.template(item, f"{label}.in", '"gold"') for item in items]
            return None if None in one_of or not one_of else c.VarIs(name, one_of=tuple(one_of))  # type: ignore[arg-type]
        if "empty" in keys:
            empty = self.boolean(keys["empty"][1], f"{label}.empty")
            return None if empty is None else c.VarIs(name, empty=empty)
        if "matches" in keys:
            pattern = self.pattern(keys["matches"][1], f"{label}.matches")
            return None if pattern is None else c.VarIs(name, matches=pattern)
        if numeric:
            low = (
                self.number(keys["min"][1], f"{label}.min", -1e12, 1e12) if "min" in keys else None
            )
            high = (
                self.number(keys["max"][1], f"{label}.max", -1e12, 1e12) if "max" in keys else None
            )
            if ("min" in keys and low is None) or ("max" in keys and high is None):
                return None
            return c.VarIs(name, bounds=c.Bounds(low, high))
        return c.VarIs(name)

    def time_is(self, node: Node, label: str) -> c.Condition | None:
        items = node.value if isinstance(node, SequenceNode) else [node]
        ranges: list[TimeRange] = []
        for item in items:
            written = self.values.scalar(item) if isinstance(item, ScalarNode) else None
            try:
                ranges.append(parse_time_range(written))
            except ValueError as exc:
                self.problem(item, f"{label}: invalid time condition: {exc}")
        if len(ranges) != len(items) or not ranges:
            return None
        return c.TimeIs(tuple(ranges))

    def queue_is(self, keys: Mapping[str, tuple[Node, Node]], label: str) -> c.Condition | None:
        measures = [name for name in _QUEUE_KEYS[1:] if name in keys]
        if "queue" not in keys:
            for name in measures:
                self.problem(
                    keys[name][0], f"{label}.{name}: is about a queue; add queue: NAME beside it"
                )
            return None
        queue = self.queue(keys["queue"][1], f"{label}.queue")
        if len(measures) != 1:
            self.problem(
                keys["queue"][0],
                f"{label}: queue needs one of agents_available, waiting "
                "or estimated_wait (e.g. agents_available: {min: 1}); "
                "use any/all to combine them",
            )
            return None
        measure = measures[0]
        bounds = self.bounds(keys[measure][1], f"{label}.{measure}")
        if queue is None or bounds is None:
            return None
        return c.QueueIs(queue, measure, bounds)  # type: ignore[arg-type]

    def bounds(self, node: Node, label: str) -> c.Bounds | None:
        keys = self.table(node, label, ("min", "max"), "{min: 1}")
        if keys is None:
            return None
        if not keys:
            self.problem(node, f"{label}: give min, max or both; e.g. {{min: 1}}")
            return None
        low = self.number(keys["min"][1], f"{label}.min", 0, 1e9) if "min" in keys else None
        high = self.number(keys["max"][1], f"{label}.max", 0, 1e9) if "max" in keys else None
        if ("min" in keys and low is None) or ("max" in keys and high is None):
            return None
        return c.Bounds(low, high)

    def group(self, name: str, node: Node, label: str) -> c.Condition | None:
        if not isinstance(node, SequenceNode) or not node.value:
            self.problem(
                node,
                f"{label}: expected a list of conditions, got {kind(node)}; "
                f'write {name}: [{{caller: "+44*"}}, {{did: "100"}}]',
            )
            return None
        inner = [self.condition(item, label) for item in node.value]
        if None in inner:
            return None
        return (c.AnyOf if name == "any" else c.AllOf)(tuple(inner))  # type: ignore[arg-type]

    def _http(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        allowed = ("url", "method", "headers", "body", "timeout", "into", "fallback")
        keys = self.table(value, "http", allowed, '{url: "https://crm.example/lookup"}')
        if keys is None:
            return None
        url_node = self.required(
            keys, "url", value, "http", '"https://crm.example/caller?number={{ caller.number }}"'
        )
        if url_node is None:
            return None
        url = self.template(url_node, "http.url", '"https://crm.example/lookup"')
        out: dict[str, Any] = {}
        if url is not None:
            head = url.parts[0] if url.parts and isinstance(url.parts[0], str) else ""
            if not _URL_START.match(head):
                self.problem(
                    url_node,
                    "http.url: must start with http:// or https:// and a host "
                    "written in the flow (a variable may fill in the path or the query, "
                    "never the host); write e.g. https://crm.example/lookup?n={{ caller.number }}",
                )
                url = None
        if "method" in keys:
            out["method"] = self.choice(keys["method"][1], "http.method", ("GET", "POST", "PUT"))
        if "timeout" in keys:
            out["timeout"] = self.number(keys["timeout"][1], "http.timeout", 0.1, 60)
        if "into" in keys:
            out["into"] = self.var_name(keys["into"][1], "http.into")
        if "fallback" in keys:
            out["fallback"] = self.step_ref(keys["fallback"][1], "http.fallback")
        for name in ("headers", "body"):
            if name in keys:
                out[name] = self.template_table(keys[name][1], f"http.{name}", name == "headers")
        if url is None or None in out.values():
            return None
        return v.Http(at(key), url, **out)

    def template_table(
        self, node: Node, label: str, headers: bool
    ) -> Mapping[str, Template] | None:
        if not isinstance(node, MappingNode):
            self.problem(
                node,
                f"{label}: expected name: value pairs, got {kind(node)}; "
                f"write them below {label.split('.')[-1]}, indented",
            )
            return None
        out: dict[str, Template] = {}
        for name, name_node, item in pairs(node):
            if headers and not _HEADER.fullmatch(name):
                self.problem(
                    name_node, f"{label}: {name!r} is not a header name; use letters, digits and -"
                )
                continue
            if isinstance(item, ScalarNode) and item.tag != "tag:yaml.org,2002:str":
                out[name] = literal("" if item.tag == _NULL else item.value)
                continue
            template = self.template(item, f"{label}.{name}", '"{{ caller.number }}"')
            if template is not None:
                out[name] = template
        return MappingProxyType(out)

    def _enqueue(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        if isinstance(value, ScalarNode):
            queue = self.queue(value, "enqueue")
            return None if queue is None else v.Enqueue(at(key), queue)
        keys = self.table(value, "enqueue", ("queue", "priority", "skills"), "{queue: support}")
        if keys is None:
            return None
        node = self.required(keys, "queue", value, "enqueue", "support")
        queue = None if node is None else self.queue(node, "enqueue.queue")
        priority = (
            self.number(keys["priority"][1], "enqueue.priority", 0, 100, whole=True)
            if "priority" in keys
            else 0
        )
        skills = self.skills(keys["skills"][1]) if "skills" in keys else {}
        if queue is None or priority is None or skills is None:
            return None
        return v.Enqueue(at(key), queue, priority, MappingProxyType(skills))

    def skills(self, node: Node) -> dict[str, int] | None:
        if isinstance(node, SequenceNode):
            names = [self.text(item, "enqueue.skills", "english") for item in node.value]
            return None if None in names else dict.fromkeys(names, 1)  # type: ignore[arg-type]
        if not isinstance(node, MappingNode):
            self.problem(
                node,
                f"enqueue.skills: expected skills with a level, got {kind(node)}; "
                "write e.g. {mandarin: 5} or [mandarin]",
            )
            return None
        out: dict[str, int] = {}
        for name, _, item in pairs(node):
            level = self.number(item, f"enqueue.skills.{name}", 1, 10, whole=True)
            if level is None:
                return None
            out[name] = level
        return out

    def _dial(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        keys = self.table(
            value,
            "dial",
            ("agent", "extension", "number", "timeout", "fallback"),
            '{agent: "1001", timeout: 20}',
        )
        if keys is None:
            return None
        targets = [name for name in ("agent", "extension", "number") if name in keys]
        if len(targets) != 1:
            self.problem(
                value,
                f"dial: needs exactly one of agent, extension or number "
                f"(found {', '.join(targets) or 'none'}); keep one",
            )
            return None
        which = targets[0]
        target: Template | None
        if which == "agent":
            name = self.named(
                keys["agent"][1],
                "dial.agent",
                "agent",
                self.context.agents,
                'tenants.{tenant}.agents."{name}"',
            )
            target = None if name is None else literal(name)
        else:
            target = self.template(keys[which][1], f"dial.{which}", '"+442079460000"')
        timeout = (
            self.number(keys["timeout"][1], "dial.timeout", 1, 600) if "timeout" in keys else 30.0
        )
        fallback = self.step_ref(keys["fallback"][1], "dial.fallback") if "fallback" in keys else ""
        if target is None or timeout is None or fallback is None:
            return None
        return v.Dial(at(key), which, target, timeout, fallback or None)  # type: ignore[arg-type]

    def _voicemail(self, key: Node, value: Node | None) -> v.Verb | None:
        if value is None:
            return v.Voicemail(at(key), self.context.ivr)
        if isinstance(value, ScalarNode):
            mailbox = self.text(value, "voicemail", "support")
            return None if mailbox is None else v.Voicemail(at(key), mailbox)
        keys = self.table(value, "voicemail", ("mailbox", "greeting"), "{mailbox: support}")
        if keys is None:
            return None
        mailbox = (
            self.text(keys["mailbox"][1], "voicemail.mailbox", "support")
            if "mailbox" in keys
            else self.context.ivr
        )
        greeting = (
            self.prompt(keys["greeting"][1], "voicemail.greeting") if "greeting" in keys else ()
        )
        return None if mailbox is None else v.Voicemail(at(key), mailbox, greeting)

    def _callback(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        keys = self.table(value, "callback", ("queue", "number"), "{queue: support}")
        if keys is None:
            return None
        node = self.required(keys, "queue", value, "callback", "support")
        queue = None if node is None else self.queue(node, "callback.queue")
        number = (
            self.template(keys["number"][1], "callback.number", '"{{ vars.callback_number }}"')
            if "number" in keys
            else parse_template("{{ caller.number }}")
        )
        if queue is None or number is None:
            return None
        return v.Callback(at(key), queue, number)

    def _notify(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        allowed = ("channel", "to", "subject", "body", "attachment")
        keys = self.table(value, "notify", allowed, '{channel: sms, to: "{{ caller.number }}"}')
        if keys is None:
            return None
        nodes = {
            name: self.required(keys, name, value, "notify", example)
            for name, example in (
                ("channel", "email"),
                ("to", '"{{ caller.number }}"'),
                ("body", '"Here is our brochure"'),
            )
        }
        if None in nodes.values():
            return None
        channel = self.choice(nodes["channel"], "notify.channel", ("email", "sms", "fax"))  # type: ignore[arg-type]
        to = self.template(nodes["to"], "notify.to", '"{{ caller.number }}"')  # type: ignore[arg-type]
        body = self.template(nodes["body"], "notify.body", '"Here is our brochure"')  # type: ignore[arg-type]
        subject = attachment = None
        ok = None not in (channel, to, body)
        if "subject" in keys:
            if channel != "email":
                self.problem(
                    keys["subject"][0], "notify.subject: only for channel: email; remove it"
                )
                ok = False
            else:
                subject = self.template(keys["subject"][1], "notify.subject", '"Our brochure"')
                ok = ok and subject is not None
        if "attachment" in keys:
            if channel == "sms":
                self.problem(
                    keys["attachment"][0],
                    "notify.attachment: an SMS has no attachment; remove it, or put a link in body",
                )
                ok = False
            else:
                attachment = self.sound_or_file(keys["attachment"][1], "notify.attachment")
                ok = ok and attachment is not None
        elif channel == "fax":
            self.problem(
                nodes["channel"],
                "notify: a fax needs attachment: the file to send (e.g. brochure.pdf); add it",
            )  # type: ignore[arg-type]
            ok = False
        if not ok:
            return None
        return v.Notify(at(key), channel, to, body, subject, attachment)  # type: ignore[arg-type]

    def sound_or_file(self, node: Node, label: str) -> Path | None:
        written = self.text(node, label, "brochure.pdf")
        if written is None:
            return None
        path = Path(written)
        if not path.is_absolute() and self.context.base_dir is not None:
            path = self.context.base_dir / path
        if "\0" in written or not path.is_file():
            self.problem(
                node,
                f"{label}: file {written!r} does not exist (looked for {path}); "
                "put it there or correct the path (relative to the flow file)",
            )
            return None
        return path

    def _transfer(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        if isinstance(value, MappingNode):
            keys = self.table(value, "transfer", ("to",), '{to: "+442079460000"}')
            if keys is None:
                return None
            value = self.required(keys, "to", value, "transfer", '"+442079460000"')
            if value is None:
                return None
        to = self.template(value, "transfer", '"+442079460000"')
        return None if to is None else v.Transfer(at(key), to)

    def _hangup(self, key: Node, value: Node | None) -> v.Verb | None:
        if value is None:
            return v.Hangup(at(key))
        keys = self.table(value, "hangup", ("reason",), "{reason: closed}")
        if keys is None:
            return None
        reason = (
            self.text(keys["reason"][1], "hangup.reason", "closed") if "reason" in keys else "flow"
        )
        return None if reason is None else v.Hangup(at(key), reason)

    def _goto(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        target = self.step_ref(value, "goto")
        return None if target is None else v.Goto(at(key), target)


_EXAMPLES = {
    "play": "welcome.wav",
    "say": '"Welcome"',
    "gather": "{max: 4, into: account}",
    "menu": '{options: {"1": support}, default: support}',
    "record": "{max_length: 60}",
    "set": "{tier: gold}",
    "branch": "[{when: {open: office}, goto: menu}, {else: closed}]",
    "http": '{url: "https://crm.example/lookup?n={{ caller.number }}"}',
    "enqueue": "support",
    "dial": '{agent: "1001"}',
    "callback": "{queue: support}",
    "notify": '{channel: sms, to: "{{ caller.number }}", body: "..."}',
    "transfer": '"+442079460000"',
    "goto": "main_menu",
}


def parse_flow(
    root: Node | None, source: str, digest: str, context: FlowContext
) -> tuple[v.Flow | None, Parser]:
    """The flow of a composed document, and the parser with its problems and references."""
    parser = Parser(source, context)
    if root is None:
        parser.problems.add(
            v.At(1, 1),
            "the file is empty; a flow needs steps: (see the demo "
            "flow, switch/apps/ivr/flows/demo.yaml)",
        )
        return None, parser
    keys = parser.table(root, "flow", TOP_KEYS, "steps: {welcome: [answer, {say: Hello}]}")
    if keys is None:
        return None, parser
    top: dict[str, Any] = {}
    if "language" in keys:
        top["language"] = parser.voice(keys["language"][1], "language")
    if "voice" in keys:
        top["voice"] = parser.voice(keys["voice"][1], "voice")
    parser.default_voice = top.get("voice") or top.get("language") or "en"
    top["timezone"] = context.timezone
    if "timezone" in keys:
        top["timezone"] = _zone(parser, keys["timezone"][1])
    if "loop_limit" in keys:
        top["loop_limit"] = parser.number(
            keys["loop_limit"][1], "loop_limit", 10, 10000, whole=True
        )
    if "vars" in keys:
        top["variables"] = parser.template_table(keys["vars"][1], "vars", False)
        for name in top["variables"] or ():
            if not _VAR_NAME.fullmatch(name):
                parser.problem(
                    keys["vars"][1],
                    f"vars: {name!r} is not a variable name; use letters, digits and _",
                )
    if "fallback" in keys:
        top["fallback"] = parser.step_ref(keys["fallback"][1], "fallback")
    start_node = keys["start"][1] if "start" in keys else None
    if start_node is not None:
        top["start"] = parser.step_ref(start_node, "start")
    if "steps" not in keys:
        parser.problem(root, "no steps: a flow needs steps: with at least one step; add steps:")
        return None, parser
    steps_node = keys["steps"][1]
    steps = parser.steps = _steps(parser, steps_node)
    if steps is None:
        return None, parser
    if not steps_node.value:
        parser.problem(
            steps_node, "steps: no steps; add at least one (welcome: [answer, {say: Hello}])"
        )
        return None, parser
    if not steps:
        return None, parser  # every step's name was wrong, and said so
    top.setdefault("start", next(iter(steps)))
    if None in top.values():
        return None, parser
    flow = v.Flow(
        tenant=context.tenant,
        name=context.ivr,
        source=source,
        digest=digest,
        steps=MappingProxyType(steps),
        calendars=MappingProxyType(dict(context.calendars)),
        **top,
    )
    return flow, parser


def _zone(parser: Parser, node: Node) -> str | None:
    name = parser.text(node, "timezone", "Europe/London")
    if name is None:
        return None
    if name != "UTC":
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            hint = suggest(name, sorted(zoneinfo.available_timezones()))
            parser.problem(
                node,
                f"timezone: {name!r} is not an IANA time zone; "
                f"{hint or 'use e.g. UTC, Europe/London or Asia/Shanghai'}".rstrip(),
            )
            return None
    return name


def _steps(parser: Parser, node: Node) -> dict[str, v.Step] | None:
    if not isinstance(node, MappingNode):
        parser.problem(
            node,
            f"steps: expected named steps, got {kind(node)}; write each step "
            "as name: followed by its list of verbs",
        )
        return None
    steps: dict[str, v.Step] = {}
    first: dict[str, Node] = {}
    for name, key, body in pairs(node):
        parser.problems.step = None
        if name in first:
            parser.problem(
                key,
                f"step {name!r} is defined twice (first at line "
                f"{at(first[name]).line}); rename one or merge them",
            )
            continue
        first[name] = key
        if not _STEP_NAME.fullmatch(name):
            parser.problem(
                key,
                f"{name!r} is not a step name; start with a letter "
                "(letters, digits, _ - .), e.g. main_menu",
            )
            continue
        parser.problems.step = name
        if not isinstance(body, SequenceNode) or not body.value:
            empty = isinstance(body, SequenceNode) or (
                isinstance(body, ScalarNode) and body.tag == _NULL
            )
            parser.problem(
                key if empty else body,
                f"expected a list of verbs, got "
                f"{'nothing' if empty else kind(body)}; write each verb on its own "
                "line starting with - (e.g. - say: Hello)",
            )
            steps[name] = v.Step(name, at(key), ())
            continue
        verbs = [parser.verb(item) for item in body.value]
        steps[name] = v.Step(name, at(key), tuple(verb for verb in verbs if verb is not None))
    parser.problems.step = None
    return steps
