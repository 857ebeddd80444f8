"""Applications: calls the node answers itself (the echo test, the IVR, voicemail).

A DID whose target is an application (`app = "echo"` in the config, and
later `ivr = "..."`) is routed to `App(name)`. The call layer looks the
name up in the mapping of applications the node was built with (`Apps`:
name -> coroutine function; `switch.call` never imports `switch.apps`, the
node hands the mapping in) and runs it with an `AppCall`, the handle on
that one call:

- who called (`caller`: number, name, tenant), the number they called
  (`did`), the application's argument from the route (`argument`: the IVR
  flow's name), and `variables`, a dict the application keeps what it
  learns in (the IVR's `set`);
- `await answer()`: the call is answered (200 OK with the node's SDP) and
  the application gets the `Channel` on the caller's leg (plain RTP or a
  browser's WebRTC: the node is then the ICE and DTLS answerer); for a
  browser it returns once the media is connected;
- `hangup(cause)`: before the answer the caller gets a final status
  (`CAUSES`: "busy" is 486, "rejected" 603, ...), after it a BYE;
- `ended`, `await wait_ended()`: the call is over (the caller hung up, the
  media stopped, the node stopped): the channel is closed too, and its
  last event is `Closed`.

An application that returns ends its call (BYE, or 480 before an answer);
one that raises ends it with 500 (or a BYE) and a log line. After the
caller hangs up, an application has `GRACE` seconds to finish (save a
voicemail, post a webhook) before it is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..media.channel import Channel

GRACE = 30.0  # seconds an application may run on after its call ended

# Why an application ends a call, and the final status the caller gets
# when it was not answered (after the answer it is a BYE, whatever the cause).
CAUSES: dict[str, tuple[int, str]] = {
    "normal": (480, "Temporarily Unavailable"),
    "busy": (486, "Busy Here"),
    "rejected": (603, "Decline"),
    "unavailable": (480, "Temporarily Unavailable"),
    "no_answer": (480, "Temporarily Unavailable (no answer)"),
    "not_found": (404, "Not Found"),
    "congestion": (503, "Service Unavailable"),
    "error": (500, "Server Internal Error"),
}


class CallEnded(Exception):
    """The call ended before what the application asked could be done."""


@dataclass(frozen=True, slots=True)
class Party:
    """Who is calling: a number (E.164, an extension, or "anonymous"), a name, a tenant."""

    number: str
    name: str
    tenant: str


class AppCall:
    """One call an application handles; see the module's docstring."""

    def __init__(
        self,
        app: str,
        argument: str,
        caller: Party,
        did: str,
        call_id: int,
        answer: Callable[[], Awaitable[Channel]],
        hangup: Callable[[str, int | None], None],
    ) -> None:
        self.app = app
        self.argument = argument
        self.caller = caller
        self.did = did
        self.call_id = call_id  # the node's number for the call (logs, records)
        self.variables: dict[str, Any] = {}
        self.channel: Channel | None = None
        self.answered = False
        self.ended = False
        self.end_reason = ""
        self.task: asyncio.Task[None] | None = None
        self._answer = answer
        self._hangup = hangup
        self._ended = asyncio.get_running_loop().create_future()

    async def answer(self) -> Channel:
        """Answer the call; the channel on the caller's leg. Raises CallEnded
        when the caller gave up first. A second call returns the same channel."""
        if self.channel is not None:
            return self.channel
        if self.ended:
            raise CallEnded(f"call {self.call_id} ended before it was answered")
        self.channel = await self._answer()
        self.answered = True
        return self.channel

    def hangup(self, cause: str = "normal", status: int | None = None) -> None:
        """End the call: before the answer with `status` (default: the cause's,
        see CAUSES), after it with a BYE. Nothing happens if it has ended."""
        if cause not in CAUSES and status is None:
            raise ValueError(f"unknown hangup cause {cause!r}: one of {', '.join(CAUSES)}")
        if status is not None and not 300 <= status < 700:
            raise ValueError(f"a call is refused with a status of 300-699, not {status}")
        if not self.ended:
            self._hangup(cause, status)

    async def wait_ended(self) -> str:
        """Until the call is over; why it ended."""
        return await asyncio.shield(self._ended)

    def finished(self, reason: str) -> None:
        """The call layer's word that the call is over (called once)."""
        if self.ended:
            return
        self.ended = True
        self.end_reason = reason
        if self.channel is not None:
            self.channel.close(reason)
        if not self._ended.done():
            self._ended.set_result(reason)


# An application: a coroutine function run once per call it answers.
AppRunner = Callable[[AppCall], Awaitable[None]]
Apps = Mapping[str, AppRunner]
