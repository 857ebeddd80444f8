"""Where an agent's wrap-up form goes: the CDR of the call they just had.

The webphone knows a call by the node's call id (the CTI's call_id, the
INVITE's X-Switch-Call); the records know it by its CDR id. The node tells
`Wrapups` each CDR it writes; a form for one of the last `keep` calls is
then kept as that CDR's disposition (Records.set_disposition, through the
outbox like the CDR itself).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple, Protocol

__all__ = ["Wrapups"]


class _Sink(Protocol):
    def set_disposition(
        self, cdr_id: str, disposition: str, notes: str = "", wrapup_time: float | None = None
    ) -> str: ...


class _Call(NamedTuple):
    tenant: str
    cdr_id: str
    agent: str | None


class Wrapups:
    def __init__(self, records: _Sink, keep: int = 10_000) -> None:
        self.records = records
        self.keep = keep
        self._calls: OrderedDict[int, _Call] = OrderedDict()

    def ended(self, call_id: int, row: dict[str, Any]) -> None:
        """Call `call_id`'s CDR `row` was written (again: a fuller one replaces it)."""
        self._calls[call_id] = _Call(row["tenant"], row["id"], row.get("agent"))
        self._calls.move_to_end(call_id)
        while len(self._calls) > self.keep:
            self._calls.popitem(last=False)

    def set(
        self, tenant: str, call_id: int, disposition: str, notes: str, *, agent: str | None
    ) -> str:
        """Keep the form of call `call_id`; its CDR id. Refused as `check` says."""
        cdr_id = self.check(tenant, call_id, agent=agent)
        self.records.set_disposition(cdr_id, disposition, notes)
        return cdr_id

    def check(self, tenant: str, call_id: int, *, agent: str | None) -> str:
        """The CDR id a form of call `call_id` would go to. LookupError: not a recent
        call of `tenant`; PermissionError: `agent` (None: a supervisor) did not have it."""
        call = self._calls.get(call_id)
        if call is None or call.tenant != tenant:
            raise LookupError(
                f"no ended call {call_id} in tenant {tenant!r}: a form is for a call that ended "
                f"on this node (the last {self.keep:,} are kept)"
            )
        if agent is not None and call.agent != agent:
            raise PermissionError(f"call {call_id} was not agent {agent}'s call")
        return call.cdr_id
