"""The IVR: flows written in YAML, checked before they run, run by a sans-IO engine.

- `load_flows(config)` -> `FlowSet` (or `FlowError` listing every problem,
  `file:line:column: step 'name': what is wrong; what to do`);
  `reload_flows(current, config)` keeps the current set when a flow is bad.
- `Run(flow, CallInfo(...), now, queue_info=...)`: `start(now)`,
  `handle(event, now)`, `next_deadline()`, `handle_timer(now)` return
  commands (switch.apps.ivr.commands) for the runner that binds a run to
  a call's media channel; events come from switch.apps.ivr.events.

The language itself is described in README.md ("IVR flows") and shown by
the demo flow, switch/apps/ivr/flows/demo.yaml.
"""

from . import commands, events, verbs
from .conditions import NoQueueInfo, QueueInfo, QueueState
from .engine import CallInfo, Run, TrailEntry
from .load import (
    FlowError,
    FlowSet,
    builtin_path,
    load_flow,
    load_flow_file,
    load_flows,
    reload_flows,
)
from .parse import FlowContext
from .verbs import Flow

__all__ = [
    "CallInfo",
    "Flow",
    "FlowContext",
    "FlowError",
    "FlowSet",
    "NoQueueInfo",
    "QueueInfo",
    "QueueState",
    "Run",
    "TrailEntry",
    "builtin_path",
    "commands",
    "events",
    "load_flow",
    "load_flow_file",
    "load_flows",
    "reload_flows",
    "verbs",
]
