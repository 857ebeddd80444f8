"""Reading the values of a flow: each key checked for its type and meaning, each
problem reported where it is, with what to write instead.

`Fields` holds what every part of the reading shares: the tenant's names
(queues, agents, calendars), the problems found so far, and the steps
named along the way (checked once every step is known).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from switch.config import Hours
from switch.media.wav import WavError, read_prompt

from . import verbs as v
from .read import Problems, Values, at, kind, pairs, suggest
from .template import Template, TemplateError, literal, parse_template

KEYS = "0123456789*#"
NULL = "tag:yaml.org,2002:null"
VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VOICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+\-/]*")
_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


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


class Fields:
    """The readers of keys and values; a Parser is made of them."""

    def __init__(self, source: str, context: FlowContext) -> None:
        self.source = source
        self.context = context
        self.problems = Problems(source)
        self.values = Values()
        self.refs: list[Ref] = []
        self.default_voice = "en"
        self._sounds: dict[Path, str | None] = {}  # file -> problem, checked once

    def problem(self, node: Node | v.At, message: str) -> None:
        self.problems.add(node, message)

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
        if isinstance(node, ScalarNode) and node.tag != NULL:
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
        if name is not None and not VAR_NAME.fullmatch(name):
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

    def finish_keys(self, node: Node, label: str, most: int) -> str | None:
        if isinstance(node, ScalarNode) and node.tag == NULL:
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
                out[name] = literal("" if item.tag == NULL else item.value)
                continue
            template = self.template(item, f"{label}.{name}", '"{{ caller.number }}"')
            if template is not None:
                out[name] = template
        return MappingProxyType(out)

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
