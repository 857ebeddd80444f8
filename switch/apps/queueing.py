"""What an application hands to the queues, and what it gets back.

The IVR's `enqueue` verb (and a DID routed straight to a queue) gives its
caller to the node's queue service: a `Queues`. The service keeps the
caller (music on hold, announcements, the ACD's routing in
`switch.apps.acd`) until an agent answers, the caller hangs up, or a limit
sends the caller elsewhere, and then says how the wait ended
(`QueueOutcome`). The IVR reads queue state for its `branch` conditions
through the same service (`queue_state`, the `QueueInfo` protocol of
`switch.apps.ivr.conditions`).

This module is only the contract between the two sides, so that the IVR
runner and the queue service can be written and tested apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .ivr.conditions import QueueState

if TYPE_CHECKING:
    from ..call.app import AppCall
    from ..media.channel import Channel


@dataclass(frozen=True, slots=True)
class EnqueueRequest:
    """A caller for a queue, with what the IVR learnt (for routing and the screen pop)."""

    tenant: str
    queue: str
    priority: int = 0
    skills: Mapping[str, int] = field(default_factory=dict)  # skill -> minimum level
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Waiting:
    """A caller waiting in a queue, as supervisors and tests see it."""

    call_id: int
    tenant: str
    queue: str
    since: float  # Unix time the caller joined (kept across overflow to another queue)
    priority: int
    skills: Mapping[str, int]
    variables: Mapping[str, Any]
    caller: str  # the caller's number


@dataclass(frozen=True, slots=True)
class QueueOutcome:
    """How a caller's time in the queues ended.

    - "answered": an agent (`agent`) took the call; the call is bridged.
    - "abandoned": the caller hung up while waiting.
    - "exit": a limit (max wait, max length, closed, no agents) sent the
      caller to `destination` ("voicemail", "ivr:<flow>", "hangup", ...),
      which the caller of `enqueue` carries out.
    - "callback": the caller left a number and hung up; the queue calls back.
    """

    result: Literal["answered", "abandoned", "exit", "callback"]
    queue: str
    waited: float  # seconds
    agent: str | None = None
    destination: str | None = None


class Queues(Protocol):
    """The node's queue service, as applications use it."""

    async def enqueue(
        self, call: AppCall, channel: Channel, request: EnqueueRequest
    ) -> QueueOutcome: ...

    def waiting(self, tenant: str, queue: str | None = None) -> list[Waiting]: ...

    def queue_state(self, tenant: str, queue: str) -> QueueState: ...
