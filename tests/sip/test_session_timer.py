"""Session timer negotiation (RFC 4028), without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.sip.errors import ParseError
from switch.sip.message import Request, Response
from switch.sip.session_timer import (
    SessionTimer,
    TooSmall,
    answer,
    from_response,
    min_se,
    parse_session_expires,
    request_headers,
    response_headers,
    supports_timer,
)


def invite(*headers: tuple[str, str]) -> Request:
    return Request("INVITE", "sip:1002@example.com", list(headers))


def ok(*headers: tuple[str, str]) -> Response:
    return Response(200, "OK", list(headers))


def test_parse_session_expires() -> None:
    assert parse_session_expires("1800") == (1800, None)
    assert parse_session_expires("1800;refresher=UAC") == (1800, "uac")
    assert parse_session_expires(" 90 ; refresher=uas ;x=1") == (90, "uas")
    for bad in ("", "soon", "-5", "1800;refresher=both", "9" * 11):
        with pytest.raises(ParseError):
            parse_session_expires(bad)


def test_min_se_defaults_to_90_and_ignores_junk() -> None:
    assert min_se(invite()) == 90
    assert min_se(invite(("Min-SE", "120"))) == 120
    assert min_se(invite(("Min-SE", "lots"))) == 90
    assert min_se(invite(), default=30) == 30


def test_supports_timer_reads_supported_and_require_in_any_form() -> None:
    assert supports_timer(invite(("Supported", "100rel, timer")))
    assert supports_timer(invite(("k", "timer")))
    assert supports_timer(ok(("Require", "timer")))
    assert not supports_timer(invite(("Supported", "100rel, timers")))


def test_a_request_without_timer_support_gets_us_as_refresher() -> None:
    assert answer(invite(), 1800, 90) == SessionTimer(1800, "uas")


def test_a_uac_that_supports_timers_refreshes_itself() -> None:
    assert answer(invite(("Supported", "timer")), 1800, 90) == SessionTimer(1800, "uac")


def test_the_requested_interval_is_kept_when_shorter_and_capped_when_longer() -> None:
    asked = invite(("Session-Expires", "600;refresher=uas"), ("Supported", "timer"))
    assert answer(asked, 1800, 90) == SessionTimer(600, "uas")
    longer = invite(("Session-Expires", "7200"), ("Supported", "timer"))
    assert answer(longer, 1800, 90) == SessionTimer(1800, "uac")


def test_an_interval_below_our_minimum_is_refused_with_422() -> None:
    assert answer(invite(("Session-Expires", "60")), 1800, 90) == TooSmall(90)
    assert answer(invite(("Session-Expires", "119")), 1800, 120) == TooSmall(120)


def test_we_never_go_below_their_min_se() -> None:
    asked = invite(("Session-Expires", "100"), ("Min-SE", "300"))
    assert answer(asked, 1800, 90).interval == 300  # type: ignore[union-attr]


def test_an_unreadable_session_expires_is_treated_as_absent() -> None:
    assert answer(invite(("Session-Expires", "soon")), 1800, 90) == SessionTimer(1800, "uas")


def test_response_headers_require_timer_only_from_a_uac_that_knows_it() -> None:
    timer = SessionTimer(1800, "uac")
    assert response_headers(timer, invite(("Supported", "timer"))) == [
        ("Session-Expires", "1800;refresher=uac"),
        ("Require", "timer"),
    ]
    assert response_headers(SessionTimer(900, "uas"), invite()) == [
        ("Session-Expires", "900;refresher=uas")
    ]


def test_request_headers_offer_a_timer() -> None:
    assert request_headers(1800, 90) == [
        ("Supported", "timer"),
        ("Session-Expires", "1800"),
        ("Min-SE", "90"),
    ]


def test_from_response_follows_the_uas_or_refreshes_itself() -> None:
    assert from_response(ok(("Session-Expires", "900;refresher=uas")), 1800) == SessionTimer(
        900, "uas"
    )
    assert from_response(ok(("Session-Expires", "900")), 1800) == SessionTimer(900, "uac")
    # A UAS without timers: we refresh at the interval we asked for (§7.2).
    assert from_response(ok(), 1800) == SessionTimer(1800, "uac")
    assert from_response(ok(("Session-Expires", "x;y")), 1800) == SessionTimer(1800, "uac")


def test_refresh_and_expiry_times() -> None:
    timer = SessionTimer(1800, "uac")
    assert timer.refresh_after() == 900
    assert timer.expire_after() == 1800 - 32  # a third would be more than 32 s
    assert SessionTimer(90, "uac").expire_after() == 60  # a third of 90
    assert timer.we_refresh(we_are_uac=True) and not timer.we_refresh(we_are_uac=False)


@given(
    asked=st.integers(0, 10**6),
    ours=st.integers(90, 7200),
    minimum=st.integers(90, 3600),
    theirs=st.integers(0, 7200) | st.none(),
)
def test_the_answer_is_within_both_minimums(asked, ours, minimum, theirs) -> None:
    headers = [("Session-Expires", str(asked))]
    if theirs is not None:
        headers.append(("Min-SE", str(theirs)))
    result = answer(invite(*headers), max(ours, minimum), minimum)
    if asked < minimum:
        assert result == TooSmall(minimum)
    else:
        assert isinstance(result, SessionTimer)
        assert result.interval >= minimum
        assert result.interval >= (theirs if theirs is not None else 90)
        # The expiry always comes after the refresh, with time for it to arrive.
        assert result.refresh_after() < result.expire_after() < result.interval
