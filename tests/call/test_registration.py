"""Registering to a carrier, sans-IO: requests out, responses and a fake clock in.

The carrier's side is the real digest verifier of `switch.sip.digest`, so a
credential we compute wrongly fails here as it would at a carrier.
"""

from __future__ import annotations

import logging

import pytest

from switch.call.registration import Account, Registration, refresh_after
from switch.sip.digest import DigestAuthenticator, compute_ha1, parse_credentials
from switch.sip.message import Request, Response, make_response

T0 = 1000.0
ACCOUNT = Account(
    trunk="demo/carrier",
    username="acct",
    password="s3cret",
    domain="sip.carrier.example",
    contact_user="acct",
    expires=600,
    retry=10.0,
    auth_username="auth-acct",
)
SENT_BY = "192.0.2.10:5060"


class Carrier:
    """A registrar: challenges, checks the digest, grants an expiry."""

    def __init__(self, algorithms: tuple[str, ...] = ("MD5",), password: str = "s3cret") -> None:
        self.digest = DigestAuthenticator("carrier", b"k" * 32, algorithms=algorithms)
        self.ha1s = {a: compute_ha1("auth-acct", "carrier", password, a) for a in algorithms}

    def challenge(self, req: Request, now: float, status: int = 401) -> Response:
        name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
        headers = [(name, v) for v in self.digest.challenge_values(now)]
        return make_response(req, status, None, to_tag="c1", headers=headers)

    def verified(self, req: Request, now: float, header: str = "Authorization") -> bool:
        creds = parse_credentials(req.get(header) or "", header)

        def ha1_for(username: str, algorithm: str) -> str | None:
            return self.ha1s.get(algorithm) if username == "auth-acct" else None

        return self.digest.verify("REGISTER", creds, ha1_for, now).ok

    def ok(self, req: Request, contact_expires: int | None = 300, **extra: str) -> Response:
        contact = req.get("Contact") or ""
        if contact_expires is not None:
            contact += f";expires={contact_expires}"
        headers = [("Contact", contact), *extra.items()]
        return make_response(req, 200, None, to_tag="c1", headers=headers)


def registered(carrier: Carrier, reg: Registration, now: float = T0) -> Request:
    """Take `reg` through 401 -> 200; returns the authorised REGISTER."""
    first = reg.start(now)
    second = reg.on_response(carrier.challenge(first, now), now)
    assert second is not None
    assert reg.on_response(carrier.ok(second), now) is None
    return second


def test_register_answers_the_challenge_and_refreshes_at_a_margin() -> None:
    carrier = Carrier()
    reg = Registration(ACCOUNT, "UDP", SENT_BY)
    first = reg.start(T0)
    assert first.method == "REGISTER" and str(first.uri) == "sip:sip.carrier.example"
    assert first.get("To") == "<sip:acct@sip.carrier.example>"
    assert first.get("Contact") == f"<sip:acct@{SENT_BY}>"
    assert first.get("Expires") == "600" and "authorization" not in first
    assert first.get("User-Agent") == "switch"
    assert reg.next_deadline() is None  # waiting for the answer

    second = reg.on_response(carrier.challenge(first, T0), T0)
    assert second is not None
    assert second.call_id == first.call_id and second.cseq.number == first.cseq.number + 1
    assert carrier.verified(second, T0)
    creds = parse_credentials(second.get("Authorization") or "")
    assert (creds.username, creds.qop, creds.nc) == ("auth-acct", "auth", "00000001")
    assert creds.cnonce

    # The carrier grants 300 s, not the 600 asked for: refresh 30 s before.
    assert reg.on_response(carrier.ok(second, 300), T0) is None
    assert reg.state == "registered" and reg.granted == 300
    assert reg.next_deadline() == T0 + 270
    assert reg.handle_timer(T0 + 269) is None
    refresh = reg.handle_timer(T0 + 270)
    assert refresh is not None and refresh.call_id == first.call_id
    assert refresh.cseq.number == second.cseq.number + 1
    # The nonce is still good: the refresh carries credentials at once, nc 2.
    assert parse_credentials(refresh.get("Authorization") or "").nc == "00000002"
    assert carrier.verified(refresh, T0 + 270)
    assert reg.status(T0 + 270)["registered"] is True


def test_a_refresh_answers_a_new_challenge() -> None:
    carrier = Carrier()
    reg = Registration(ACCOUNT, "UDP", SENT_BY)
    registered(carrier, reg)
    refresh = reg.handle_timer(T0 + 270)
    assert refresh is not None
    again = reg.on_response(carrier.challenge(refresh, T0 + 270), T0 + 270)
    assert again is not None and carrier.verified(again, T0 + 270)
    reg.on_response(carrier.ok(again, 300), T0 + 270)
    assert reg.state == "registered" and reg.next_deadline() == T0 + 540


@pytest.mark.parametrize("status,header", [(401, "Authorization"), (407, "Proxy-Authorization")])
def test_sha256_and_proxy_challenges(status: int, header: str) -> None:
    carrier = Carrier(algorithms=("SHA-256",))
    reg = Registration(ACCOUNT, "TCP", SENT_BY)
    first = reg.start(T0)
    assert first.get("Contact") == f"<sip:acct@{SENT_BY};transport=tcp>"
    second = reg.on_response(carrier.challenge(first, T0, status), T0)
    assert second is not None
    assert parse_credentials(second.get(header) or "", header).algorithm == "SHA-256"
    assert carrier.verified(second, T0, header)


def test_expiry_from_the_expires_header_and_short_registrations() -> None:
    carrier = Carrier()
    reg = Registration(ACCOUNT, "UDP", SENT_BY)
    first = reg.start(T0)
    second = reg.on_response(carrier.challenge(first, T0), T0)
    assert second is not None
    reg.on_response(carrier.ok(second, None, Expires="8"), T0)
    assert reg.granted == 8 and reg.next_deadline() == T0 + 6
    assert refresh_after(3600) == 3570 and refresh_after(60) == 45


def test_wrong_password_backs_off_and_says_what_to_check(caplog) -> None:
    carrier = Carrier(password="other")
    reg = Registration(ACCOUNT, "UDP", SENT_BY)
    caplog.set_level(logging.WARNING, "switch.call")
    now = T0
    for wait in (10, 20, 40):
        first = reg.start(now) if now == T0 else reg.handle_timer(now)
        assert first is not None
        second = reg.on_response(carrier.challenge(first, now), now)
        assert second is not None and not carrier.verified(second, now)
        # The carrier challenges again: our answer was refused.
        assert reg.on_response(carrier.challenge(second, now), now) is None
        assert reg.state == "failed" and reg.next_deadline() == now + wait
        now += wait
    assert reg.failures == 3
    line = caplog.records[-1].getMessage()
    assert "trunk demo/carrier" in line and "401" in line
    assert "check username, auth_username and password" in line


def test_403_fails_with_advice_and_success_resets_the_backoff(caplog) -> None:
    carrier = Carrier()
    reg = Registration(ACCOUNT, "UDP", SENT_BY)
    caplog.set_level(logging.WARNING, "switch.call")
    first = reg.start(T0)
    assert reg.on_response(make_response(first, 403, to_tag="x"), T0) is None
    assert reg.state == "failed" and reg.next_deadline() == T0 + 10
    assert "403" in caplog.text and "refuses this account" in caplog.text
    retry = reg.handle_timer(T0 + 10)
    assert retry is not None
    second = reg.on_response(carrier.challenge(retry, T0 + 10), T0 + 10)
    assert second is not None
    reg.on_response(carrier.ok(second), T0 + 10)
    assert reg.state == "registered" and reg.failures == 0


def test_retry_after_of_a_503_is_honoured() -> None:
    reg = Registration(ACCOUNT, "UDP", SENT_BY)
    first = reg.start(T0)
    reg.on_response(make_response(first, 503, to_tag="x", headers=[("Retry-After", "120")]), T0)
    assert reg.next_deadline() == T0 + 120


def test_timeout_is_a_failure_with_its_own_advice(caplog) -> None:
    reg = Registration(ACCOUNT, "UDP", SENT_BY)
    caplog.set_level(logging.WARNING, "switch.call")
    first = reg.start(T0)
    reg.on_response(make_response(first, 408), T0)
    assert reg.state == "failed" and "no answer from the registrar" in caplog.text


def test_423_asks_again_with_min_expires() -> None:
    carrier = Carrier()
    reg = Registration(ACCOUNT, "UDP", SENT_BY)
    first = reg.start(T0)
    second = reg.on_response(carrier.challenge(first, T0), T0)
    assert second is not None
    third = reg.on_response(
        make_response(second, 423, to_tag="x", headers=[("Min-Expires", "1800")]), T0
    )
    assert third is not None and third.get("Expires") == "1800"
    assert carrier.verified(third, T0)  # still authorised, nc 2
    reg.on_response(carrier.ok(third, 1800), T0)
    assert reg.state == "registered" and reg.granted == 1800
    # A 423 that asks for no more than we asked is a failure, not a loop.
    refresh = reg.handle_timer(T0 + 1770)
    assert refresh is not None
    bad = make_response(refresh, 423, to_tag="x", headers=[("Min-Expires", "60")])
    assert reg.on_response(bad, T0 + 1770) is None and reg.state == "failed"


def test_an_answer_to_an_older_register_is_ignored() -> None:
    carrier = Carrier()
    reg = Registration(ACCOUNT, "UDP", SENT_BY)
    first = reg.start(T0)
    second = reg.on_response(carrier.challenge(first, T0), T0)
    assert second is not None
    assert reg.on_response(make_response(first, 403, to_tag="x"), T0) is None
    assert reg.state == "registering"


def test_stop_unregisters_with_expires_zero() -> None:
    carrier = Carrier()
    reg = Registration(ACCOUNT, "UDP", SENT_BY)
    registered(carrier, reg)
    bye = reg.stop(T0 + 5)
    assert bye is not None and bye.get("Expires") == "0"
    assert bye.get("Contact") == f"<sip:acct@{SENT_BY}>"
    assert carrier.verified(bye, T0 + 5)
    assert reg.next_deadline() is None
    # A fresh challenge is answered once more.
    again = reg.on_response(carrier.challenge(bye, T0 + 5), T0 + 5)
    assert again is not None and again.get("Expires") == "0"
    assert reg.on_response(make_response(again, 200, to_tag="c1"), T0 + 5) is None
    assert reg.state == "stopped" and reg.status(T0 + 5)["registered"] is False


def test_stop_without_a_registration_sends_nothing() -> None:
    reg = Registration(ACCOUNT, "UDP", SENT_BY)
    reg.start(T0)
    assert reg.stop(T0 + 1) is None and reg.state == "stopped"


def test_a_stale_nonce_is_answered_again_once() -> None:
    carrier = Carrier()
    reg = Registration(ACCOUNT, "UDP", SENT_BY)
    first = reg.start(T0)
    second = reg.on_response(carrier.challenge(first, T0), T0)
    assert second is not None
    # The carrier says our (correct) answer used a stale nonce: a new one.
    values = carrier.digest.challenge_values(T0 + 1, stale=True)
    stale = make_response(
        second, 401, to_tag="c1", headers=[("WWW-Authenticate", v) for v in values]
    )
    third = reg.on_response(stale, T0 + 1)
    assert third is not None and carrier.verified(third, T0 + 1)
    # Another stale one in the same attempt is not believed.
    values = carrier.digest.challenge_values(T0 + 2, stale=True)
    again = make_response(
        third, 401, to_tag="c1", headers=[("WWW-Authenticate", v) for v in values]
    )
    assert reg.on_response(again, T0 + 2) is None and reg.state == "failed"


def test_a_200_without_our_contact_is_not_a_registration() -> None:
    carrier = Carrier()
    reg = Registration(ACCOUNT, "UDP", SENT_BY)
    first = reg.start(T0)
    second = reg.on_response(carrier.challenge(first, T0), T0)
    assert second is not None
    other = make_response(
        second, 200, to_tag="c1", headers=[("Contact", "<sip:someone@198.51.100.9>;expires=60")]
    )
    reg.on_response(other, T0)
    assert reg.state == "failed" and reg.status(T0)["registered"] is False
