"""Wrap-up forms go to the CDR of the call they are about, and only an agent's own."""

from __future__ import annotations

import pytest

from switch.store.records.wrapups import Wrapups


class Sink:
    def __init__(self) -> None:
        self.forms: list[tuple] = []

    def set_disposition(self, cdr_id, disposition, notes="", wrapup_time=None) -> str:
        self.forms.append((cdr_id, disposition, notes))
        return "r1"


def row(cdr_id: str, tenant: str = "acme", agent: str | None = "1001") -> dict:
    return {"id": cdr_id, "tenant": tenant, "agent": agent}


def test_a_form_goes_to_the_latest_cdr_of_its_call() -> None:
    sink = Sink()
    wrapups = Wrapups(sink)
    wrapups.ended(7, row("n1:7:100"))
    wrapups.ended(7, row("n1:7:100", agent="1001"))  # the fuller CDR of the same call
    assert wrapups.set("acme", 7, "sale", "two seats", agent="1001") == "n1:7:100"
    assert wrapups.set("acme", 7, "other", "", agent=None) == "n1:7:100"  # a supervisor
    assert sink.forms == [("n1:7:100", "sale", "two seats"), ("n1:7:100", "other", "")]


def test_refusals_say_why() -> None:
    wrapups = Wrapups(Sink(), keep=2)
    wrapups.ended(1, row("a"))
    wrapups.ended(2, row("b", agent="1002"))
    with pytest.raises(PermissionError, match="call 2 was not agent 1001's call"):
        wrapups.set("acme", 2, "sale", "", agent="1001")
    with pytest.raises(LookupError, match="no ended call 1 in tenant 'other'"):
        wrapups.set("other", 1, "sale", "", agent=None)
    wrapups.ended(3, row("c"))  # only the last `keep` calls are kept
    with pytest.raises(LookupError, match="the last 2 are kept"):
        wrapups.set("acme", 1, "sale", "", agent="1001")
    assert wrapups.set("acme", 3, "sale", "", agent="1001") == "c"
