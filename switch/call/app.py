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
  last event is `Closed`;
- `await connect(target, timeout=, caller_id=, keep_playing=)`: the caller
  is put through to someone else (`switch.call.connect`). `target` names an
  agent or extension ("1001": every device the agent registered rings at
  once, the first to answer wins, the others get CANCEL), an external
  number (routed by the tenant's outbound routes and caller-ID rules, as a
  forwarded DID is: "+442079460000", "9 020 7946 0000"), a SIP URI
  ("sip:bob@192.0.2.7:5060"), or a list of these rung all at once (the
  ACD's ring-all). While it rings the caller hears what the channel plays
  (`keep_playing`, music on hold in a queue) or a ringback tone. The answer
  gives `Connected` (who answered, when): the channel lets go of the leg
  (its last event is `Closed("connected")`), the caller and the new party
  are an ordinary bridged call from then on (BYE from either ends both,
  re-INVITE, REFER, session timers, recording, DTMF), and the application
  may return without hanging up; `wait_ended()` still says when the call
  is over. Anything else gives `NotConnected(status, reason)` (486 busy,
  480 no answer within `timeout`, 404, 487 when the caller hung up
  meanwhile, ...) and the caller is still with the application, channel
  and all. Cancelling the task that awaits `connect` CANCELs what rings.
  A transfer (the IVR's `transfer`) is a `connect` too: the node stays in
  the call (hairpin) rather than REFER the caller's trunk elsewhere.

An application that returns ends its call (BYE, or 480 before an answer);
one that raises ends it with 500 (or a BYE) and a log line. After the
caller hangs up, an application has `GRACE` seconds to finish (save a
voicemail, post a webhook) before it is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
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


@dataclass(frozen=True, slots=True)
class Connected:
    """`connect` succeeded: who answered (`target` as the application named
    it, `kind` "agent", "trunk" or "uri", `name` the agent's extension or the
    trunk's name, `uri` the device or number called) and when (epoch seconds)."""

    target: str
    kind: str
    name: str
    uri: str
    answered_at: float
    rang: float  # seconds from the first INVITE to the answer


@dataclass(frozen=True, slots=True)
class NotConnected:
    """`connect` failed; the caller is still with the application."""

    status: int  # the SIP status that decided it (486, 480, 404, 487, 503, ...)
    reason: str


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
        connect: Callable[..., Awaitable[Connected | NotConnected]] | None = None,
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
        self.connected: Connected | None = None  # set once `connect` put the caller through
        self._answer = answer
        self._connect = connect
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

    async def connect(
        self,
        target: str | Sequence[str],
        timeout: float = 30.0,
        caller_id: str | None = None,
        keep_playing: bool = True,
    ) -> Connected | NotConnected:
        """Put the caller through to `target` (or the first of several to
        answer); see the module's docstring. Answers the caller first if the
        application has not. Raises CallEnded if the call ended before."""
        if self.connected is not None:
            raise RuntimeError(f"call {self.call_id} is connected already")
        if self._connect is None:
            raise RuntimeError("this call cannot be connected onward")
        targets = [target] if isinstance(target, str) else list(target)
        if not targets or not all(isinstance(t, str) and t.strip() for t in targets):
            raise ValueError("connect needs a target: an extension, a number or a SIP URI")
        if timeout <= 0:
            raise ValueError(f"the timeout is in seconds, more than 0, not {timeout}")
        await self.answer()
        result = await self._connect(targets, timeout, caller_id, keep_playing)
        if isinstance(result, Connected):
            self.connected = result
        return result

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
