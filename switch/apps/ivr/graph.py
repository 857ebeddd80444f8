"""The shape of a flow: which step leads where, what is never reached, what never ends.

A step is a node; a verb that can jump (goto, menu, branch, a fallback)
adds edges. Three things are refused before a flow runs:

- a verb after one that always leaves the step (it would never run);
- a step no path from `start` (or the flow's `fallback`) reaches;
- a loop with no way out and no caller input: steps that only lead to
  each other, none of which ends the call, hands it on or waits for a key.
  The caller could only hang up; at run time the loop guard would cut it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from . import verbs as v


def targets(verb: v.Verb) -> Iterator[str]:
    """The steps this verb may jump to."""
    if isinstance(verb, v.Goto):
        yield verb.step
    elif isinstance(verb, v.Menu):
        yield from verb.options.values()
        yield verb.default
    elif isinstance(verb, v.Branch):
        yield from (case.goto for case in verb.cases)
        if verb.otherwise is not None:
            yield verb.otherwise
    elif isinstance(verb, v.Gather):
        yield from (name for name in (verb.next, verb.fallback) if name is not None)
    elif isinstance(verb, v.Http | v.Dial) and verb.fallback is not None:
        yield verb.fallback


def leaves(verb: v.Verb) -> bool:
    """True when the verb never goes on to the next verb of its step."""
    if isinstance(verb, (v.Goto, v.Menu, *v.HANDOFFS)):
        return True
    if isinstance(verb, v.Branch):
        return verb.otherwise is not None
    if isinstance(verb, v.Gather):
        return verb.next is not None and verb.fallback is not None
    if isinstance(verb, v.Dial):
        return verb.fallback is not None  # answered: the call is the agent's
    if isinstance(verb, v.Play):
        return verb.loop == 0 and not verb.barge_in  # plays until the caller hangs up
    return False


def ends(verb: v.Verb) -> bool:
    """True when the run may be over after this verb (a way out of any loop)."""
    return isinstance(verb, (*v.HANDOFFS, v.Dial)) or (
        isinstance(verb, v.Play) and verb.loop == 0 and not verb.barge_in
    )


def waits_for_caller(verb: v.Verb) -> bool:
    return isinstance(verb, v.Gather | v.Menu | v.Record)


def _name(verb: v.Verb) -> str:
    """The verb as written: play and say are both Play."""
    if isinstance(verb, v.Play) and all(isinstance(item, v.Speak) for item in verb.prompt):
        return "say"
    return type(verb).__name__.lower()


class Shape:
    """Edges and exits of each step, from its verbs that can run."""

    def __init__(self, steps: Mapping[str, v.Step]) -> None:
        self.edges: dict[str, list[str]] = {}
        self.exits: set[str] = set()  # steps where the run may end
        self.input: set[str] = set()  # steps that wait for the caller
        self.dead_verbs: list[tuple[str, v.Verb, v.Verb]] = []  # (step, dead verb, the leaver)
        for name, step in steps.items():
            edges: list[str] = []
            leaver: v.Verb | None = None
            for verb in step.verbs:
                if leaver is not None:
                    self.dead_verbs.append((name, verb, leaver))
                    continue
                edges.extend(target for target in targets(verb) if target in steps)
                if ends(verb):
                    self.exits.add(name)
                if waits_for_caller(verb):
                    self.input.add(name)
                if leaves(verb):
                    leaver = verb
            if leaver is None:
                self.exits.add(name)  # its verbs run out: the call ends
            self.edges[name] = list(dict.fromkeys(edges))

    def reachable(self, roots: list[str]) -> set[str]:
        seen: set[str] = set()
        todo = [root for root in roots if root in self.edges]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.edges[name])
        return seen

    def loops(self) -> list[list[str]]:
        """Strongly connected groups of steps that form a cycle (Tarjan, iteratively)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []
        counter = 0
        for root in self.edges:
            if root in index:
                continue
            work = [(root, iter(self.edges[root]))]
            index[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on_stack.add(root)
            while work:
                name, children = work[-1]
                child = next(children, None)
                if child is not None:
                    if child not in index:
                        index[child] = low[child] = counter
                        counter += 1
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(self.edges[child])))
                    elif child in on_stack:
                        low[name] = min(low[name], index[child])
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[name])
                if low[name] == index[name]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == name:
                            break
                    if len(group) > 1 or name in self.edges[name]:
                        found.append(group)
        return found

    def endless(self, group: list[str]) -> bool:
        """A loop nothing leaves: no exit, no edge out, no caller input."""
        members = set(group)
        if members & (self.exits | self.input):
            return False
        return all(target in members for name in group for target in self.edges[name])


def check(flow: v.Flow) -> list[tuple[v.At, str | None, str]]:
    """(place, step, message) of every shape problem of a flow whose references resolve."""
    problems: list[tuple[v.At, str | None, str]] = []
    shape = Shape(flow.steps)
    for step, verb, leaver in shape.dead_verbs:
        problems.append(
            (
                verb.at,
                step,
                f"{_name(verb)} is never run: {_name(leaver)} at line "
                f"{leaver.at.line} always leaves the step; remove it or move it to a step "
                "of its own",
            )
        )
    roots = [flow.start] + ([flow.fallback] if flow.fallback else [])
    reached = shape.reachable(roots)
    for name, step in flow.steps.items():
        if name not in reached:
            problems.append(
                (
                    step.at,
                    name,
                    "this step is never reached: no goto, menu, branch or "
                    f"fallback leads to it from the start step {flow.start!r}; "
                    "remove it or jump to it from another step",
                )
            )
    order = list(flow.steps)
    for group in shape.loops():
        if not shape.endless(group) or not set(group) & reached:
            continue
        group.sort(key=order.index)
        cycle = " -> ".join([*group, group[0]])
        first = flow.steps[group[0]]
        problems.append(
            (
                first.at,
                group[0],
                f"loops forever ({cycle}): nothing in the loop ends "
                "the call, leads out of it or waits for the caller; add a branch to a "
                "step outside the loop, a hangup, or a gather/menu",
            )
        )
    return problems
