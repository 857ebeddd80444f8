"""Reading YAML nodes with their place in the file, and reporting problems there.

Flows are read with PyYAML's node API (`compose`), not `safe_load`: every
mapping, list and scalar keeps its line and column, so each problem names
the exact place to edit. Every problem found is collected, so an operator
fixes a file in one pass.

A problem reads `file:line:column: step 'name': what is wrong; what to do`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .verbs import At

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"


class FlowSyntaxError(Exception):
    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


def compose(text: str, source: str) -> Node | None:
    """The YAML document as nodes; FlowSyntaxError names the place of a syntax error."""
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = exc.problem or "cannot be read"
        context = f" ({exc.context})" if exc.context else ""
        start = exc.context_mark
        if exc.context and start is not None and mark is not None and start.line != mark.line:
            context = f" ({exc.context} at line {start.line + 1}, column {start.column + 1})"
        hint = "fix the YAML there"
        lines = text.splitlines()
        if (
            mark
            and mark.line < len(lines)
            and lines[mark.line][mark.column : mark.column + 1] == "\t"
        ):
            hint = "indent with spaces: YAML does not allow tabs"
        raise FlowSyntaxError(f"{where}: YAML syntax error: {what}{context}; {hint}") from None
    except yaml.YAMLError as exc:
        raise FlowSyntaxError(f"{source}: YAML syntax error: {exc}; fix the YAML") from None


def at(node: Node) -> At:
    return At(node.start_mark.line + 1, node.start_mark.column + 1)


def kind(node: Node) -> str:
    """What a node is, as a person would say it, for "expected X, got Y"."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing"
    shown = repr(node.value) if len(node.value) <= 40 else repr(node.value[:37] + "...")
    names = {
        "tag:yaml.org,2002:int": "a number",
        "tag:yaml.org,2002:float": "a number",
        "tag:yaml.org,2002:bool": "true/false",
        _STR: "text",
    }
    return f"{shown} ({names.get(node.tag, 'a value')})"


def suggest(word: str, choices: Iterable[str]) -> str:
    """ "did you mean 'x'? " for the choice closest to a mistyped word, or ""."""
    names = list(choices)
    if word.isdigit():
        return ""  # extension 1009 is not a typo of 1002
    found = difflib.get_close_matches(word, names, n=1)
    if not found and len(word) >= 3:
        # "max_digits" for "max": a name with something added or cut off.
        found = sorted(
            (
                name
                for name in names
                if len(name) >= 3 and (word.startswith(name) or name.startswith(word))
            ),
            key=len,
            reverse=True,
        )
    return f"did you mean {found[0]!r}? " if found else ""


class Problems:
    """Problems of one file, reported in the order of the file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.step: str | None = None  # the step being read, named in every message
        self._found: list[tuple[int, int, str]] = []

    def add(self, node: Node | At, message: str, step: str | None = ...) -> None:  # type: ignore[assignment]
        place = node if isinstance(node, At) else at(node)
        name = self.step if step is ... else step
        who = f"step {name!r}: " if name else ""
        line = f"{self.source}:{place.line}:{place.column}: {who}{message}"
        found = (place.line, place.column, line)
        if found not in self._found:
            self._found.append(found)

    @property
    def lines(self) -> list[str]:
        return [line for _, _, line in sorted(self._found)]

    def __bool__(self) -> bool:
        return bool(self._found)


class Values:
    """Turns scalar nodes into Python values, the way YAML 1.1 reads them."""

    def __init__(self) -> None:
        self._constructor = SafeConstructor()

    def scalar(self, node: ScalarNode) -> Any:
        try:
            return self._constructor.construct_object(node)
        except ConstructorError:
            return node.value

    def plain(self, node: Node) -> Any:
        """A scalar's value, or a list of scalars' values; None for anything else."""
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if isinstance(node, SequenceNode):
            return [
                self.scalar(item) if isinstance(item, ScalarNode) else None for item in node.value
            ]
        return None


def pairs(node: MappingNode) -> Iterator[tuple[str, ScalarNode, Node]]:
    """(key text, key node, value node) of a mapping, in file order."""
    for key, value in node.value:
        name = key.value if isinstance(key, ScalarNode) and key.tag != _NULL else ""
        yield name, key, value
