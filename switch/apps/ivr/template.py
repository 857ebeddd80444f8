"""Templates in IVR flows: "{{ caller.number }}", "{{ vars.account | digits }}".

A flow mixes text with values of the call: who is calling, what they
pressed, what a CRM answered. The syntax reads a value and passes it
through filters from a fixed list; nothing in a template, or in what a
caller typed, is ever evaluated as code. A value is found by walking dict
keys and list positions only, never Python attributes.

    {{ caller.number }}                 the caller's number
    {{ call.did }}                      the number they dialled
    {{ vars.crm.name | default("there") }}
    {{ vars.account | spell }}          "1234" -> "1 2 3 4", for speech

A template is parsed once, when the flow is loaded, and errors (an unknown
name or filter, a sum, a call, an unclosed brace) are found then.
"""

from __future__ import annotations

import difflib
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# What a template may read, and the fields of the fixed roots.
ROOTS: dict[str, tuple[str, ...] | None] = {
    "caller": ("number", "name"),
    "call": ("id", "did", "tenant", "ivr"),
    "vars": None,  # any name: variables are made by the flow
}


def _spell(text: str) -> str:
    return " ".join(text.replace(" ", ""))


_FILTERS: dict[str, Callable[[str], str]] = {
    "upper": str.upper,
    "lower": str.lower,
    "trim": str.strip,
    "digits": lambda text: "".join(ch for ch in text if "0" <= ch <= "9"),
    "spell": _spell,
    "urlencode": lambda text: urllib.parse.quote(text, safe=""),
}
# Filters with an argument, or that read the value before it is text.
FILTERS = (*_FILTERS, "json", "default")

_OPEN, _CLOSE = "{{", "}}"
_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")
_SEGMENT = re.compile(r"\.([A-Za-z0-9_]+)")
_FILTER = re.compile(r"\s*\|\s*([A-Za-z_][A-Za-z0-9_]*)")
_ARGUMENT = re.compile(r"""\s*\(\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*\)""")
_END = re.compile(r"\s*")
_HOW = "a template reads a value ({{ vars.name }}) and may filter it ({{ vars.name | upper }})"


class TemplateError(ValueError):
    """A template that cannot be used; `offset` is where in the text the problem is."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True)
class Filter:
    name: str
    argument: str | None = None


@dataclass(frozen=True)
class Expr:
    """One {{ ... }}: a root, a path below it, and filters."""

    root: str
    path: tuple[str, ...]
    filters: tuple[Filter, ...] = ()

    def value(self, scope: Mapping[str, Any]) -> Any:
        value: Any = scope.get(self.root)
        for segment in self.path:
            if isinstance(value, Mapping):
                value = value.get(segment)
            elif isinstance(value, list | tuple) and segment.isdigit():
                index = int(segment)
                value = value[index] if index < len(value) else None
            else:
                return None
        return value

    def render(self, scope: Mapping[str, Any]) -> str:
        value = self.value(scope)
        for item in self.filters:
            if item.name == "json":
                value = json.dumps(value, ensure_ascii=False)
            elif item.name == "default":
                if text(value) == "":
                    value = item.argument or ""
            else:
                value = _FILTERS[item.name](text(value))
        return text(value)


def text(value: Any) -> str:
    """A value as templates show it: nothing for None, JSON for tables and lists."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@dataclass(frozen=True)
class Template:
    source: str
    parts: tuple[str | Expr, ...]

    @property
    def is_static(self) -> bool:
        return all(isinstance(part, str) for part in self.parts)

    def render(self, scope: Mapping[str, Any], escape: Callable[[str], str] | None = None) -> str:
        """The text, with each value passed through `escape` (e.g. for a URL)."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                value = part.render(scope)
                out.append(escape(value) if escape is not None else value)
        return "".join(out)

    def __str__(self) -> str:
        return self.source


def literal(value: str) -> Template:
    return Template(value, (value,) if value else ())


def _close(word: str, choices: list[str], written: str = "") -> str:
    found = difflib.get_close_matches(written or word, choices, n=1)
    return f"did you mean {found[0]!r}? " if found else ""


def _expr(source: str, start: int, end: int) -> Expr:
    """The expression between `start` and `end` (exclusive) of `source`."""
    inner = source[start:end]
    match = _NAME.match(inner)
    if match is None:
        shown = inner.strip() or "nothing"
        raise TemplateError(
            f"{{{{ {shown} }}}} does not start with a name; {_HOW}",
            start + len(inner) - len(inner.lstrip()),
        )
    root = match.group(1)
    at = match.end()
    if root not in ROOTS:
        raise TemplateError(
            f"unknown name {root!r} in {{{{{inner}}}}}; {_close(root, list(ROOTS))}"
            f"templates read only {', '.join(f'{name}.*' for name in ROOTS)}",
            start + match.start(1),
        )
    path: list[str] = []
    while (segment := _SEGMENT.match(inner, at)) is not None:
        path.append(segment.group(1))
        at = segment.end()
    fields = ROOTS[root]
    if fields is not None and (not path or path[0] not in fields or len(path) > 1):
        wrong = path[0] if path else ""
        raise TemplateError(
            f"{root}.{'.'.join(path) if path else '?'} is not a value; "
            f"{_close(wrong, [f'{root}.{name}' for name in fields], wrong and f'{root}.{wrong}')}"
            f"{root} has {', '.join(f'{root}.{name}' for name in fields)}",
            start + match.start(1),
        )
    if root == "vars" and not path:
        raise TemplateError(
            "vars alone is not a value: name a variable (e.g. {{ vars.account }})",
            start + match.start(1),
        )
    filters: list[Filter] = []
    while (found := _FILTER.match(inner, at)) is not None:
        name = found.group(1)
        at = found.end()
        if name not in FILTERS:
            raise TemplateError(
                f"unknown filter {name!r}; {_close(name, list(FILTERS))}"
                f"filters are {', '.join(FILTERS)}",
                start + found.start(1),
            )
        argument = _ARGUMENT.match(inner, at)
        if name == "default":
            if argument is None:
                raise TemplateError(
                    'default needs a quoted text, e.g. {{ vars.name | default("there") }}',
                    start + found.start(1),
                )
            at = argument.end()
            unquoted = re.sub(r"\\(.)", r"\1", argument.group(1)[1:-1])
            filters.append(Filter(name, unquoted))
        else:
            if argument is not None or inner[at:].lstrip().startswith("("):
                raise TemplateError(f"filter {name!r} takes no argument", start + found.start(1))
            filters.append(Filter(name))
    at = _END.match(inner, at).end()  # type: ignore[union-attr]
    if at != len(inner):
        rest = inner[at:].strip()
        raise TemplateError(
            f"unexpected {rest!r} in {{{{{inner}}}}}: {_HOW}; it does not compute or call",
            start + at,
        )
    return Expr(root, tuple(path), tuple(filters))


def parse_template(source: str) -> Template:
    """Parse once, at load; TemplateError says what is wrong and where."""
    parts: list[str | Expr] = []
    at = 0
    while (start := source.find(_OPEN, at)) >= 0:
        if start > at:
            parts.append(source[at:start])
        end = source.find(_CLOSE, start + 2)
        if end < 0:
            raise TemplateError(f"{{{{ at column {start + 1} is never closed: add }}}}", start)
        nested = source.find(_OPEN, start + 2, end)
        if nested >= 0:
            raise TemplateError("{{ inside {{ ... }}: close the first one with }}", nested)
        parts.append(_expr(source, start + 2, end))
        at = end + 2
    if at < len(source):
        parts.append(source[at:])
    return Template(source, tuple(parts))
