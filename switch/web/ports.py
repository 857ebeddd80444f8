"""What the API needs from the layers below, as small Protocols.

The node hands the API real implementations (switch.call's Calls, the
dialer's originate); tests hand it fakes. The API never reaches past these.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..call.model import Call

SUPERVISE_MODES = ("listen", "whisper", "barge")


class LiveCalls(Protocol):
    """Calls in progress on this node, and hanging one up."""

    def active(self) -> Iterable[Call]: ...

    def parties(self, call: Call) -> tuple[str, str]:
        """(caller, callee) numbers of a call."""
        ...

    def end(self, call_id: int, reason: str) -> bool:
        """Hang up call `call_id`; False if there is no such call in progress."""
        ...


class Supervision(Protocol):
    """One supervisor listening, whispering or barging on one call."""

    @property
    def id(self) -> str: ...

    @property
    def mode(self) -> str: ...

    # Either may be a coroutine function; the API awaits what they return if it must.
    def set_mode(self, mode: str) -> object: ...

    def stop(self) -> object: ...


class Supervisor(Protocol):
    """The call layer's supervision (listen, whisper, barge).

    `supervise` fails with LookupError (the call is gone: 404), ValueError
    (the call cannot take it now: 409), TimeoutError or ConnectionError (the
    supervisor did not answer or refused: 409 no_answer)."""

    async def supervise(
        self,
        call_id: int,
        to: list[str],
        mode: str,
        *,
        agent: str | None = None,
        timeout: float = 30,
    ) -> Supervision: ...

    def supervisions(self, call_id: int) -> Iterable[Supervision]: ...


class Originate(Protocol):
    """Click-to-call: ring `first`, then connect it to `second`; the new call's id."""

    async def __call__(
        self, tenant: str, first: str, second: str, *, caller_id: str | None
    ) -> int: ...


class Wrapups(Protocol):
    """The records' side of the agents' wrap-up forms (switch.store.records.wrapups)."""

    def set(
        self, tenant: str, call_id: int, disposition: str, notes: str, *, agent: str | None
    ) -> str:
        """The CDR id the form went to; refused as `check` says."""
        ...

    def check(self, tenant: str, call_id: int, *, agent: str | None) -> str:
        """The CDR id a form would go to. LookupError: no such ended call of the tenant;
        PermissionError: `agent` did not have the call (None: a supervisor asks)."""
        ...
