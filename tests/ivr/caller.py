"""A scripted caller and a virtual clock around one IVR Run: no sockets, no sleeping."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from switch.apps.ivr import CallInfo, FlowContext, QueueInfo, Run, load_flow
from switch.apps.ivr import commands as cmd
from switch.apps.ivr import events as ev
from switch.apps.ivr.verbs import Flow
from switch.config import Hours

FLOWS = Path(__file__).parent / "flows"
# Monday 2 June 2025, 10:00 UTC: a working morning in London (11:00 BST).
MONDAY_10_UTC = datetime.fromisoformat("2025-06-02T10:00:00+00:00").timestamp()


def context(**changes: Any) -> FlowContext:
    base: dict[str, Any] = {
        "tenant": "demo",
        "ivr": "main",
        "queues": frozenset({"support", "sales"}),
        "agents": frozenset({"1001", "1002"}),
        "calendars": {
            "office": Hours(
                timezone="Europe/London",
                mon=["09:00-17:30"],
                tue=["09:00-17:30"],
                wed=["09:00-17:30"],
                thu=["09:00-17:30"],
                fri=["09:00-17:00"],
                holidays=["12-25", "2025-06-09"],
            )
        },
        "timezone": "UTC",
        "base_dir": FLOWS,
    }
    base.update(changes)
    return FlowContext(**base)


def flow(text: str, **changes: Any) -> Flow:
    return load_flow(textwrap.dedent(text), "<test>", context(**changes))


class Caller:
    """Drives a Run as a runner would, with time that moves only when told."""

    def __init__(
        self,
        flow: Flow,
        number: str = "+447700900123",
        did: str = "100",
        now: float = MONDAY_10_UTC,
        queue_info: QueueInfo | None = None,
        name: str = "Ann Caller",
    ) -> None:
        self.now = now
        self.run = Run(flow, CallInfo("demo", number, name, did, "call-1"), now, queue_info)
        self.sent: list[cmd.Command] = []

    def _take(self, commands: list[cmd.Command]) -> list[cmd.Command]:
        self.sent.extend(commands)
        return commands

    def start(self) -> list[cmd.Command]:
        return self._take(self.run.start(self.now))

    def wait(self, seconds: float) -> list[cmd.Command]:
        """Let `seconds` pass, firing each timer at its own deadline."""
        end = self.now + seconds
        out: list[cmd.Command] = []
        while (deadline := self.run.next_deadline()) is not None and deadline <= end:
            self.now = max(self.now, deadline)
            out += self.run.handle_timer(self.now)
        self.now = end
        return self._take(out)

    def send(self, event: ev.Event) -> list[cmd.Command]:
        return self._take(self.run.handle(event, self.now))

    def press(self, keys: str, gap: float = 0.0) -> list[cmd.Command]:
        out: list[cmd.Command] = []
        for key in keys:
            if gap:
                out += self.wait(gap)
            out += self.send(ev.Digit(key))
        return out

    def last(self, kind: type) -> Any:
        found = [command for command in self.sent if isinstance(command, kind)]
        assert found, f"no {kind.__name__} among {self.sent}"
        return found[-1]

    def finish_play(self) -> list[cmd.Command]:
        """The last prompt played to its end."""
        return self.send(ev.PlayDone(self.last(cmd.Play).id))

    def kinds(self, commands: Iterable[cmd.Command] | None = None) -> list[str]:
        return [type(command).__name__ for command in (self.sent if commands is None else commands)]

    def trail(self, *kinds: str) -> list[tuple[str, str]]:
        return [(e.kind, e.detail) for e in self.run.trail if not kinds or e.kind in kinds]


def spoken(commands: Iterable[cmd.Command]) -> list[str]:
    return [
        item.text
        for command in commands
        if isinstance(command, cmd.Play)
        for item in command.items
        if isinstance(item, cmd.Speech)
    ]
