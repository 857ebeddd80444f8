"""Reading the conditions of `branch` (`when:`) into switch.apps.ivr.conditions."""

from __future__ import annotations

from collections.abc import Mapping

from yaml.nodes import Node, ScalarNode, SequenceNode

from switch.config import TimeRange, parse_days, parse_time_range

from . import conditions as c
from .fields import Fields
from .read import kind

_VAR_KEYS = ("var", "equals", "in", "empty", "matches", "min", "max")
_QUEUE_KEYS = ("queue", "agents_available", "waiting", "estimated_wait")


class Conditions(Fields):
    """Reads `when:` mappings: several keys in one must all hold."""

    _CONDITIONS = (
        "caller", "did", "var", "equals", "in", "empty", "matches", "min", "max", "time", "days",
        "open", "holiday", "queue", "agents_available", "waiting", "estimated_wait", "any", "all",
        "not",
    )  # fmt: skip

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
