"""Loading and checking the flows of a config, and swapping them at reload.

`load_flows(config)` reads every `[tenants.X.ivr.NAME]` flow (a file, or a
builtin shipped in switch/apps/ivr/flows/), checks each against its
tenant (queues, agents, calendars, time zone) and returns a `FlowSet`, or
raises `FlowError` listing every problem of every file. `reload_flows`
is the rule of a reload: a new set replaces the old one only when every
flow in it is good. A call keeps the `Flow` it started with either way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from switch.config import BUILTIN_IVR_FLOWS, Config, ConfigError, Ivr, Tenant

from . import graph
from .parse import FlowContext, parse_flow
from .read import FlowSyntaxError, compose, suggest
from .verbs import Flow

BUILTIN_DIR = Path(__file__).parent / "flows"


class FlowError(ConfigError):
    """Flows that cannot run; one line per problem: file:line:column: step: what; fix."""


def builtin_path(name: str) -> Path:
    return BUILTIN_DIR / f"{name}.yaml"


def load_flow(text: str, source: str, context: FlowContext | None = None) -> Flow:
    """Check one flow's text; FlowError lists all its problems."""
    context = context or FlowContext()
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    try:
        root = compose(text.removeprefix("\ufeff"), source)
    except FlowSyntaxError as exc:
        raise FlowError([exc.line]) from None
    flow, parser = parse_flow(root, source, digest, context)
    problems = parser.problems
    if parser.steps is not None:
        names = list(parser.steps)
        for ref in parser.refs:
            if ref.target not in parser.steps:
                shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
                problems.add(
                    ref.node,
                    f"{ref.label}: no step named {ref.target!r}; "
                    f"{suggest(ref.target, names)}steps: {shown}",
                    ref.step,
                )
    # The shape is judged only on a flow read without error: a verb that
    # could not be read has unknown jumps, and would make good steps look
    # unreachable.
    if flow is not None and not problems:
        for place, step, message in graph.check(flow):
            problems.add(place, message, step)
    if problems:
        raise FlowError(problems.lines)
    assert flow is not None
    return flow


def load_flow_file(path: Path, context: FlowContext | None = None) -> Flow:
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FlowError(
            [f"{source}: no such file; create it or correct the ivr's file ="]
        ) from None
    except OSError as exc:
        raise FlowError([f"{source}: cannot read: {exc.strerror}; check the file"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FlowError([f"{source}:{line}:1: not UTF-8 text; save the file as UTF-8"]) from None
    return load_flow(text, source, context)


def context_of(tenant: Tenant, name: str, base_dir: Path) -> FlowContext:
    return FlowContext(
        tenant=tenant.id,
        ivr=name,
        queues=frozenset(tenant.queues),
        agents=frozenset(tenant.agents),
        calendars=MappingProxyType(dict(tenant.hours)),
        timezone=tenant.timezone,
        base_dir=base_dir,
    )


def flow_path(ivr: Ivr) -> Path:
    if ivr.file is not None:
        return ivr.file
    assert ivr.builtin in BUILTIN_IVR_FLOWS
    return builtin_path(ivr.builtin)


@dataclass(frozen=True)
class FlowSet:
    """Every checked flow of a node, by (tenant, ivr name). Replaced whole, never changed."""

    flows: Mapping[tuple[str, str], Flow] = field(default_factory=dict)
    version: int = 1

    def get(self, tenant: str, name: str) -> Flow | None:
        return self.flows.get((tenant, name))

    def __len__(self) -> int:
        return len(self.flows)


def load_flows(config: Config, version: int = 1) -> FlowSet:
    """Every flow of the config, checked; FlowError lists the problems of all files."""
    flows: dict[tuple[str, str], Flow] = {}
    lines: list[str] = []
    for tenant in config.tenants.values():
        for name, ivr in tenant.ivr.items():
            path = flow_path(ivr)
            try:
                flows[(tenant.id, name)] = load_flow_file(
                    path, context_of(tenant, name, path.parent)
                )
            except FlowError as exc:
                lines.extend(line for line in exc.lines if line not in lines)
    if lines:
        raise FlowError(lines)
    return FlowSet(MappingProxyType(flows), version)


def reload_flows(current: FlowSet, config: Config) -> tuple[FlowSet, list[str]]:
    """(the set to use, problems): the new set if every flow is good, else the current one."""
    try:
        return load_flows(config, current.version + 1), []
    except FlowError as exc:
        return current, exc.lines
