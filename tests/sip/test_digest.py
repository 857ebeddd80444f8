"""Digest authentication: RFC vectors, server checks, parsing. No sockets, fake clock."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.sip.digest import (
    AuthResult,
    AuthStatus,
    Challenge,
    Credentials,
    DigestAuthenticator,
    DigestError,
    authorize,
    compute_ha1,
    compute_response,
    parse_challenge,
    parse_credentials,
    select_challenge,
)

REALM = "switch.example.com"
SECRET = b"cluster-wide secret"
T0 = 1_700_000_000.0  # wall-clock seconds; any value works


def counting_entropy():
    """Deterministic but distinct salts, so each challenge has its own nonce."""
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


def make_auth(**kwargs) -> DigestAuthenticator:
    kwargs.setdefault("entropy", counting_entropy())
    return DigestAuthenticator(REALM, SECRET, **kwargs)


# The directory: HA1 per algorithm, never the password.
PASSWORDS = {"1001": "s3cret", "1002": "other"}
DIRECTORY = {
    (user, algorithm): compute_ha1(user, REALM, password, algorithm)
    for user, password in PASSWORDS.items()
    for algorithm in ("MD5", "SHA-256")
}


def ha1_for(username: str, algorithm: str) -> str | None:
    return DIRECTORY.get((username, algorithm))


def wire(creds: Credentials) -> Credentials:
    """Send credentials through their header text, as the network would."""
    return parse_credentials(creds.to_header_value())


def answer(
    auth: DigestAuthenticator,
    now: float,
    *,
    algorithm: str = "SHA-256",
    username: str = "1001",
    password: str = "s3cret",
    nc: int = 1,
    method: str = "REGISTER",
    uri: str = "sip:switch.example.com",
) -> Credentials:
    challenges = [parse_challenge(c.to_header_value()) for c in auth.challenge(now)]
    challenge = next(c for c in challenges if c.algorithm == algorithm)
    return wire(authorize(challenge, method, uri, username, password, "c0ffee", nc))


# --- RFC test vectors ---------------------------------------------------------

RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
# As printed in RFC 2617 §3.5, folded over several lines.
RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa",\r\n'
    '                 realm="testrealm@host.com",\r\n'
    '                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",\r\n'
    '                 uri="/dir/index.html",\r\n'
    "                 qop=auth,\r\n"
    "                 nc=00000001,\r\n"
    '                 cnonce="0a4f113b",\r\n'
    '                 response="6629fae49393a05397450978507c4ef1",\r\n'
    '                 opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC7616 = {
    "username": "Mufasa",
    "realm": "http-auth@example.org",
    "password": "Circle of Life",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
}
RFC7616_SHA256 = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
RFC7616_MD5 = "8ca523f5e9506fed4657c9700eebdbec"


def test_rfc2617_mufasa_response():
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    response = compute_response(
        ha1,
        "GET",
        "/dir/index.html",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "MD5",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


def test_rfc2617_client_answers_the_challenge():
    challenge = parse_challenge(RFC2617_CHALLENGE)
    assert challenge.qop == ("auth", "auth-int")
    creds = authorize(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", "0a4f113b", nc=1
    )
    assert creds.qop == "auth"
    assert creds.nc == "00000001"
    assert creds.response == "6629fae49393a05397450978507c4ef1"
    assert creds.opaque == "5ccc069c403ebaf9f0171e9517f40e41"


def test_rfc2617_authorization_header_parses():
    creds = parse_credentials(RFC2617_AUTHORIZATION)
    assert creds == Credentials(
        username="Mufasa",
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        uri="/dir/index.html",
        response="6629fae49393a05397450978507c4ef1",
        algorithm="MD5",
        cnonce="0a4f113b",
        opaque="5ccc069c403ebaf9f0171e9517f40e41",
        qop="auth",
        nc="00000001",
    )
    ha1 = compute_ha1("Mufasa", creds.realm, "Circle Of Life")
    expected = compute_response(
        ha1, "GET", creds.uri, creds.nonce, creds.algorithm, creds.qop, creds.nc, creds.cnonce
    )
    assert expected == creds.response


@pytest.mark.parametrize(
    ("algorithm", "expected"), [("SHA-256", RFC7616_SHA256), ("MD5", RFC7616_MD5)]
)
def test_rfc7616_vectors(algorithm, expected):
    v = RFC7616
    ha1 = compute_ha1(v["username"], v["realm"], v["password"], algorithm)
    response = compute_response(
        ha1, "GET", "/dir/index.html", v["nonce"], algorithm, "auth", 1, v["cnonce"]
    )
    assert response == expected


def test_rfc7616_client_prefers_the_first_supported_challenge():
    v = RFC7616
    headers = [
        f'Digest realm="{v["realm"]}", qop="auth, auth-int", algorithm={alg}, '
        f'nonce="{v["nonce"]}", opaque="{v["opaque"]}"'
        for alg in ("SHA-512-256", "SHA-256", "MD5")
    ]
    challenges = [parse_challenge(h) for h in headers]
    chosen = select_challenge(challenges)
    assert chosen is challenges[1]
    creds = authorize(chosen, "GET", "/dir/index.html", v["username"], v["password"], v["cnonce"])
    assert creds.response == RFC7616_SHA256
    assert creds.algorithm == "SHA-256"
    assert select_challenge(challenges[:1]) is None


# --- server: round trips ------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_round_trip_ok(algorithm):
    auth = make_auth()
    creds = answer(auth, T0, algorithm=algorithm)
    assert creds.algorithm == algorithm
    result = auth.verify("REGISTER", creds, ha1_for, T0 + 1, request_uri="sip:switch.example.com")
    assert result == AuthResult(AuthStatus.OK, username="1001")
    assert result.ok


def test_challenges_are_in_preference_order_and_offer_only_auth():
    auth = make_auth(algorithms=("SHA-256", "MD5"))
    challenges = auth.challenge(T0)
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    assert all(c.qop == ("auth",) and c.realm == REALM and not c.stale for c in challenges)
    assert 'qop="auth"' in challenges[0].to_header_value()
    assert auth.challenge(T0)[0].nonce != challenges[0].nonce


def test_nonce_made_on_one_node_verifies_on_another():
    node_a, node_b = make_auth(), make_auth()
    creds = answer(node_a, T0)
    assert node_b.verify("REGISTER", creds, ha1_for, T0 + 10).ok


def test_sess_algorithm_round_trip():
    auth = make_auth(algorithms=("SHA-256-sess", "MD5-sess"))
    for algorithm in ("SHA-256-sess", "MD5-sess"):
        creds = answer(auth, T0, algorithm=algorithm)
        assert auth.verify("REGISTER", creds, ha1_for, T0).ok


def test_no_qop_accepted_only_when_allowed():
    strict, lenient = make_auth(), make_auth(allow_no_qop=True)
    for auth, expected in ((strict, "qop required"), (lenient, None)):
        challenge = replace(auth.challenge(T0)[0], qop=())
        creds = wire(authorize(challenge, "INVITE", "sip:100@x", "1001", "s3cret", "cn"))
        assert creds.qop is None and creds.nc is None and creds.cnonce is None
        result = auth.verify("INVITE", creds, ha1_for, T0)
        if expected is None:
            assert result.ok
        else:
            assert result == AuthResult(AuthStatus.FAILED, reason=expected)


def test_client_treats_auth_int_only_as_no_qop():
    challenge = Challenge(realm=REALM, nonce="n", qop=("auth-int",))
    creds = authorize(challenge, "INVITE", "sip:a@b", "u", "p", "cn")
    assert creds.qop is None and creds.nc is None


def test_uppercase_response_and_stored_ha1_are_accepted():
    auth = make_auth()
    creds = answer(auth, T0)
    creds = replace(creds, response=creds.response.upper())

    def upper_ha1(username, algorithm):
        return DIRECTORY[(username, algorithm)].upper()

    assert auth.verify("REGISTER", creds, upper_ha1, T0).ok


# --- server: failures ---------------------------------------------------------


def test_wrong_password_and_unknown_user_look_the_same_outside():
    auth = make_auth()
    wrong = auth.verify("REGISTER", answer(auth, T0, password="guess"), ha1_for, T0)
    unknown = auth.verify("REGISTER", answer(auth, T0, username="9999"), ha1_for, T0)
    assert wrong == AuthResult(AuthStatus.FAILED, reason="wrong password")
    assert unknown == AuthResult(AuthStatus.FAILED, reason="unknown user")
    # Everything but the log reason is identical.
    assert (wrong.status, wrong.username, wrong.ok) == (unknown.status, unknown.username, False)


def test_unknown_user_is_still_hashed():
    # Same work for both failures: ha1_for is asked and a response is computed.
    asked = []

    def lookup(username, algorithm):
        asked.append((username, algorithm))
        return None

    auth = make_auth()
    assert auth.verify("REGISTER", answer(auth, T0), lookup, T0).reason == "unknown user"
    assert asked == [("1001", "SHA-256")]


def test_wrong_method_is_a_wrong_digest():
    auth = make_auth()
    creds = answer(auth, T0, method="REGISTER")
    assert auth.verify("INVITE", creds, ha1_for, T0).reason == "wrong password"


def test_expired_nonce_is_stale():
    auth = make_auth(nonce_ttl=300)
    creds = answer(auth, T0)
    assert auth.verify("REGISTER", creds, ha1_for, T0 + 300).ok
    creds2 = answer(auth, T0)
    result = auth.verify("REGISTER", creds2, ha1_for, T0 + 300.5)
    assert result == AuthResult(AuthStatus.STALE, reason="nonce expired")
    fresh = auth.challenge(T0 + 300.5, stale=True)
    assert all(c.stale for c in fresh)
    assert "stale=TRUE" in fresh[0].to_header_value()
    assert parse_challenge(fresh[0].to_header_value()).stale


def test_expired_nonce_with_wrong_password_is_failed_not_stale():
    auth = make_auth()
    creds = answer(auth, T0, password="guess")
    assert auth.verify("REGISTER", creds, ha1_for, T0 + 1000).status is AuthStatus.FAILED


def test_nonce_from_far_future_is_stale():
    auth = make_auth(nonce_ttl=300)
    creds = answer(auth, T0 + 1000)
    assert auth.verify("REGISTER", creds, ha1_for, T0).status is AuthStatus.STALE


def _forged(auth: DigestAuthenticator, creds: Credentials) -> AuthResult:
    return auth.verify("REGISTER", creds, ha1_for, T0)


def test_forged_nonces():
    auth = make_auth()
    good = answer(auth, T0)
    nonce = good.nonce
    flipped = nonce[:-2] + ("A" if nonce[-2] != "A" else "B") + nonce[-1]
    other_secret = DigestAuthenticator(REALM, b"another secret").challenge(T0)[0].nonce
    # Same secret, other realm: the MAC covers the realm.
    other_realm = DigestAuthenticator("other.example", SECRET).challenge(T0)[0].nonce
    for bad in (
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "",
        flipped,
        other_secret,
        other_realm,
        nonce + "!",  # the base64 decoder would skip it
        nonce[:10] + "\n" + nonce[10:],
        nonce + "==",
        "é" * 43,
    ):
        # The client computes a correct digest over the bad nonce: only the
        # nonce itself is wrong.
        challenge = Challenge(realm=REALM, nonce=bad, algorithm="SHA-256", qop=("auth",))
        creds = authorize(challenge, "REGISTER", good.uri, "1001", "s3cret", "cn")
        assert _forged(auth, creds) == AuthResult(
            AuthStatus.UNKNOWN_NONCE, reason="nonce not ours"
        ), bad


def test_nc_replay_rejected():
    auth = make_auth()
    creds = answer(auth, T0)
    assert auth.verify("REGISTER", creds, ha1_for, T0).ok
    assert auth.verify("REGISTER", creds, ha1_for, T0 + 1) == AuthResult(
        AuthStatus.FAILED, reason="nc replay"
    )


def test_nc_increasing_accepted_and_going_back_rejected():
    auth = make_auth()
    challenge = auth.challenge(T0)[0]

    def send(nc: int) -> AuthResult:
        creds = authorize(challenge, "REGISTER", "sip:x", "1001", "s3cret", "cn", nc=nc)
        return auth.verify("REGISTER", wire(creds), ha1_for, T0 + nc)

    assert send(1).ok
    assert send(2).ok
    assert send(5).ok  # gaps are fine: requests can be lost
    assert send(4).reason == "nc replay"
    assert send(5).reason == "nc replay"
    assert send(6).ok


def test_nc_zero_rejected():
    auth = make_auth()
    assert auth.verify("REGISTER", answer(auth, T0, nc=0), ha1_for, T0).reason == "nc replay"


def test_nc_counts_are_per_nonce():
    auth = make_auth()
    first, second = answer(auth, T0), answer(auth, T0)
    assert first.nonce != second.nonce
    assert auth.verify("REGISTER", first, ha1_for, T0).ok
    assert auth.verify("REGISTER", second, ha1_for, T0).ok


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"realm": "evil.example"}, "realm mismatch"),
        ({"algorithm": "SHA-512-256"}, "algorithm not offered"),
        ({"qop": "auth-int"}, "qop not offered"),
        ({"nc": None}, "malformed credentials"),
        ({"nc": "xyz"}, "malformed credentials"),
        ({"cnonce": None}, "malformed credentials"),
        ({"uri": "sip:other.example.com"}, "uri mismatch"),
        ({"response": "é"}, "wrong password"),
        ({"response": "\udc80\ud800"}, "malformed credentials"),
    ],
)
def test_failure_reasons(change, reason):
    auth = make_auth()
    creds = replace(answer(auth, T0), **change)
    result = auth.verify("REGISTER", creds, ha1_for, T0, request_uri="sip:switch.example.com")
    assert result == AuthResult(AuthStatus.FAILED, reason=reason)


def test_algorithm_not_offered():
    md5_only = make_auth(algorithms=("MD5",))
    sha_only = make_auth(algorithms=("sha-256",))  # names are case-insensitive
    assert sha_only.algorithms == ("SHA-256",)
    sha_creds = answer(sha_only, T0, algorithm="SHA-256")
    assert md5_only.verify("REGISTER", sha_creds, ha1_for, T0).reason == "algorithm not offered"
    # No algorithm parameter means MD5 (RFC 2617 §3.2.1).
    md5_creds = answer(md5_only, T0, algorithm="MD5")
    header = md5_creds.to_header_value().replace(", algorithm=MD5", "")
    assert "algorithm" not in header
    bare = parse_credentials(header)
    assert bare.algorithm == "MD5"
    assert md5_only.verify("REGISTER", bare, ha1_for, T0).ok
    assert sha_only.verify("REGISTER", bare, ha1_for, T0).reason == "algorithm not offered"


def test_uri_checked_only_when_given():
    auth = make_auth()
    creds = answer(auth, T0, uri="sip:elsewhere")
    assert auth.verify("REGISTER", creds, ha1_for, T0).ok


# --- server: bounded memory ---------------------------------------------------


def test_expired_nonces_are_pruned():
    auth = make_auth(nonce_ttl=60)
    for _ in range(5):
        assert auth.verify("REGISTER", answer(auth, T0), ha1_for, T0).ok
    assert auth.tracked_nonces == 5
    assert auth.verify("REGISTER", answer(auth, T0 + 100), ha1_for, T0 + 100).ok
    assert auth.tracked_nonces == 1


def test_hard_cap_and_forgotten_nonces_are_never_replayable():
    auth = make_auth(max_tracked_nonces=2)
    a, b, c = (answer(auth, T0 + i) for i in range(3))
    for creds in (a, b, c):
        assert auth.verify("REGISTER", creds, ha1_for, T0 + 5).ok
    assert auth.tracked_nonces == 2
    # a was evicted: replaying it must not pass; stale=true makes the client
    # fetch a fresh nonce.
    assert auth.verify("REGISTER", a, ha1_for, T0 + 5) == AuthResult(
        AuthStatus.STALE, reason="nonce forgotten"
    )
    # Still tracked ones keep their counts.
    assert auth.verify("REGISTER", c, ha1_for, T0 + 5).reason == "nc replay"
    # Nonces issued after the eviction are unaffected.
    assert auth.verify("REGISTER", answer(auth, T0 + 6), ha1_for, T0 + 6).ok


def test_constructor_validation():
    with pytest.raises(DigestError) as exc:
        DigestAuthenticator(REALM, SECRET, algorithms=("SHA-1",))
    assert str(exc.value) == "unsupported algorithm 'SHA-1'"
    for kwargs, message in (
        ({"algorithms": ()}, "algorithms must not be empty"),
        ({"max_tracked_nonces": 0}, "max_tracked_nonces must be at least 1"),
    ):
        with pytest.raises(ValueError) as exc:
            DigestAuthenticator(REALM, SECRET, **kwargs)
        assert str(exc.value) == message
    with pytest.raises(ValueError) as exc:
        DigestAuthenticator(REALM, b"")
    assert str(exc.value) == "secret must not be empty"


# --- parsing ------------------------------------------------------------------


def test_parse_edge_cases():
    value = (
        'dIgEsT  USERNAME = "a\\"b\\\\c" ,Realm="x, y",nonce=abc/def==,,'
        ' uri="sip:u@h;transport=tcp" , response="RESP", Algorithm=sha-256,'
        ' QOP="Auth", NC=0000000A, cnonce="q,\\"r", custom="k=v, w", flag=yes'
    )
    creds = parse_credentials(value)
    assert creds.username == 'a"b\\c'
    assert creds.realm == "x, y"
    assert creds.nonce == "abc/def=="
    assert creds.uri == "sip:u@h;transport=tcp"
    assert creds.response == "RESP"
    assert creds.algorithm == "SHA-256"
    assert creds.qop == "auth"
    assert creds.nc == "0000000A"  # kept as sent: the hash covers the text
    assert creds.cnonce == 'q,"r'
    assert creds.extra == (("custom", "k=v, w"), ("flag", "yes"))
    assert parse_credentials(creds.to_header_value()) == creds


def test_parse_challenge_fields():
    value = (
        'Digest realm="atlanta.com", domain="sip:ss1.carrier.com sip:ss2.carrier.com",'
        ' nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=True,'
        ' algorithm=MD5, qop=" auth , auth-int ", foo=bar'
    )
    challenge = parse_challenge(value, header="Proxy-Authenticate")
    assert challenge == Challenge(
        realm="atlanta.com",
        nonce="f84f1cec41e6cbe5aea9c8e88d359",
        algorithm="MD5",
        qop=("auth", "auth-int"),
        opaque="",
        stale=True,
        domain="sip:ss1.carrier.com sip:ss2.carrier.com",
        extra=(("foo", "bar"),),
    )
    assert parse_challenge(challenge.to_header_value()) == challenge


def test_challenge_defaults():
    challenge = parse_challenge('Digest realm="r", nonce="n", stale=false')
    assert challenge.algorithm == "MD5"
    assert challenge.qop == ()
    assert challenge.opaque is None and challenge.domain is None
    assert not challenge.stale


def test_formatting_quotes_what_rfc3261_quotes():
    creds = Credentials(
        username="bob",
        realm="biloxi.com",
        nonce="dcd98",
        uri="sip:bob@biloxi.com",
        response="245f2",
        algorithm="MD5",
        cnonce="0a4f",
        opaque="5ccc",
        qop="auth",
        nc="00000001",
    )
    assert creds.to_header_value() == (
        'Digest username="bob", realm="biloxi.com", nonce="dcd98", uri="sip:bob@biloxi.com",'
        ' response="245f2", algorithm=MD5, cnonce="0a4f", opaque="5ccc", qop=auth, nc=00000001'
    )
    challenge = Challenge(realm="biloxi.com", nonce="dcd98", algorithm="SHA-256", qop=("auth",))
    assert challenge.to_header_value() == (
        'Digest realm="biloxi.com", nonce="dcd98", algorithm=SHA-256, qop="auth"'
    )


CREDS = 'username="u", realm="r", nonce="n", uri="sip:x", response="00"'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "Authorization: empty value"),
        (" \t ", "Authorization: empty value"),
        (",foo", "Authorization: expected an auth scheme, got ',foo'"),
        ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Authorization: unsupported scheme 'Basic'"),
        ('Digestrealm="a"', "Authorization: unsupported scheme 'Digestrealm'"),
        ('Digest,realm="a"', "Authorization: expected a space after 'Digest', got ','"),
        ('Digest ="a"', "Authorization: expected a parameter name, got '=\"a\"'"),
        ('Digest realm "a"', "Authorization: expected '=' after 'realm'"),
        ("Digest realm", "Authorization: expected '=' after 'realm'"),
        ("Digest realm=", "Authorization: missing value for 'realm'"),
        ('Digest realm=, nonce="n"', "Authorization: missing value for 'realm'"),
        ('Digest realm="abc', "Authorization: unterminated quoted string in 'realm'"),
        ('Digest realm="abc\\"', "Authorization: unterminated quoted string in 'realm'"),
        ('Digest realm="a" "b"', "Authorization: expected ',' after 'realm' value, got '\"'"),
        ('Digest realm="a" nonce="b"', "Authorization: expected ',' after 'realm' value, got 'n'"),
        ('Digest realm=a"b"', "Authorization: expected ',' after 'realm' value, got '\"'"),
        ('Digest realm="a", REALM="b"', "Authorization: duplicate 'realm' parameter"),
        (
            'Digest realm="r", nonce="n", uri="u", response="0"',
            "Authorization: missing 'username' parameter",
        ),
        (
            'Digest username="u", nonce="n", uri="u", response="0"',
            "Authorization: missing 'realm' parameter",
        ),
        (
            'Digest username="u", realm="r", uri="u", response="0"',
            "Authorization: missing 'nonce' parameter",
        ),
        (
            'Digest username="u", realm="r", nonce="n", response="0"',
            "Authorization: missing 'uri' parameter",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="u"',
            "Authorization: missing 'response' parameter",
        ),
        (f"Digest {CREDS}, nc=00000zz1", "Authorization: nc '00000zz1' is not 8 hex digits"),
        (f"Digest {CREDS}, nc=1", "Authorization: nc '1' is not 8 hex digits"),
        (
            f"Digest {CREDS}, nc=0000000\u0661",
            "Authorization: nc '0000000\u0661' is not 8 hex digits",
        ),
        (
            f"Digest {CREDS}, qop=auth, nc=00000001",
            "Authorization: missing 'cnonce' parameter (required with qop)",
        ),
        (
            f'Digest {CREDS}, qop=auth, cnonce="c"',
            "Authorization: missing 'nc' parameter (required with qop)",
        ),
    ],
)
def test_credentials_errors(value, message):
    with pytest.raises(DigestError) as exc:
        parse_credentials(value)
    assert str(exc.value) == message


def test_error_names_the_header():
    with pytest.raises(DigestError) as exc:
        parse_credentials("Basic abc", header="Proxy-Authorization")
    assert str(exc.value) == "Proxy-Authorization: unsupported scheme 'Basic'"
    with pytest.raises(DigestError) as exc:
        parse_challenge('Digest nonce="n"')
    assert str(exc.value) == "WWW-Authenticate: missing 'realm' parameter"
    with pytest.raises(DigestError) as exc:
        parse_challenge('Digest realm="r"', header="Proxy-Authenticate")
    assert str(exc.value) == "Proxy-Authenticate: missing 'nonce' parameter"


def test_digest_error_is_a_value_error():
    assert issubclass(DigestError, ValueError)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: compute_ha1("u", "r", "p", "SHA-512-256"), "unsupported algorithm 'SHA-512-256'"),
        (
            lambda: compute_response("0", "GET", "/", "n", "MD5", "auth-int", 1, "c"),
            "qop 'auth-int' is not supported",
        ),
        (
            lambda: compute_response("0", "GET", "/", "n", "MD5", "auth", None, "c"),
            "qop=auth requires nc and cnonce",
        ),
        (
            lambda: compute_response("0", "GET", "/", "n", "MD5", "auth", 1, None),
            "qop=auth requires nc and cnonce",
        ),
        (
            lambda: compute_response("0", "GET", "/", "n", "MD5-sess"),
            "algorithm 'MD5-sess' requires a cnonce",
        ),
        (
            lambda: compute_response("0", "GET", "/", "n", "MD5", "auth", 2**32, "c"),
            "nc 4294967296 does not fit in 8 hex digits",
        ),
        (
            lambda: compute_response("0", "GET", "/", "n", "MD5", "auth", -1, "c"),
            "nc -1 does not fit in 8 hex digits",
        ),
        (
            lambda: authorize(Challenge("r", "n", algorithm="SHA-1"), "GET", "/", "u", "p", "c"),
            "unsupported algorithm 'SHA-1'",
        ),
        (
            lambda: Challenge("r", "n\r\nVia: x").to_header_value(),
            "'nonce' cannot contain CR or LF",
        ),
        (
            lambda: replace(
                parse_credentials(f"Digest {CREDS}"), username="a\nb"
            ).to_header_value(),
            "'username' cannot contain CR or LF",
        ),
        (
            lambda: Challenge("r", "n", algorithm="MD 5").to_header_value(),
            "'algorithm' must be a token, got 'MD 5'",
        ),
        (
            lambda: Challenge("r", "n", qop=("auth", "")).to_header_value(),
            "'qop' must be a token, got ''",
        ),
        (
            lambda: Challenge("r", "n", extra=(("a b", "v"),)).to_header_value(),
            "parameter name 'a b' is not a token",
        ),
    ],
)
def test_other_errors(call, message):
    with pytest.raises(DigestError) as exc:
        call()
    assert str(exc.value) == message


def test_sess_without_qop_sends_a_cnonce():
    challenge = Challenge(realm="r", nonce="n", algorithm="MD5-sess")
    creds = authorize(challenge, "INVITE", "sip:a@b", "u", "p", "cn")
    assert creds.cnonce == "cn" and creds.qop is None
    ha1 = compute_ha1("u", "r", "p", "MD5")
    assert creds.response == compute_response(
        ha1, "INVITE", "sip:a@b", "n", "MD5-sess", cnonce="cn"
    )


# --- Hypothesis -----------------------------------------------------------------

# Characters that steer the parser into its interesting branches.
DIGESTY = st.text(alphabet='Digest realmnoc=",\\ \t\r\n0aé\x00', max_size=60)


@given(st.one_of(st.text(), DIGESTY, DIGESTY.map(lambda s: "Digest " + s)))
def test_parsers_only_raise_digest_error(value):
    for parse in (parse_challenge, parse_credentials):
        try:
            parse(value)
        except DigestError:
            pass


no_crlf = st.text().filter(lambda s: "\r" not in s and "\n" not in s)
token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~", min_size=1, max_size=12)


@given(
    username=no_crlf,
    realm=no_crlf,
    nonce=no_crlf,
    uri=no_crlf,
    response=no_crlf,
    algorithm=st.sampled_from(["MD5", "SHA-256", "MD5-sess", "SHA-256-sess", "Other"]),
    opaque=st.none() | no_crlf,
    with_qop=st.booleans(),
    cnonce=no_crlf,
    nc=st.integers(0, 0xFFFFFFFF).map(lambda n: f"{n:08x}"),
    extra=st.lists(st.tuples(token, no_crlf), max_size=3, unique_by=lambda kv: kv[0]),
)
def test_credentials_round_trip(
    username, realm, nonce, uri, response, algorithm, opaque, with_qop, cnonce, nc, extra
):
    known = {
        "username",
        "realm",
        "nonce",
        "uri",
        "response",
        "algorithm",
        "cnonce",
        "opaque",
        "qop",
        "nc",
    }
    creds = Credentials(
        username=username,
        realm=realm,
        nonce=nonce,
        uri=uri,
        response=response,
        algorithm=algorithm,
        opaque=opaque,
        qop="auth" if with_qop else None,
        cnonce=cnonce if with_qop else None,
        nc=nc if with_qop else None,
        extra=tuple((k, v) for k, v in extra if k not in known),
    )
    assert parse_credentials(creds.to_header_value()) == creds


@given(
    realm=no_crlf,
    nonce=no_crlf,
    opaque=st.none() | no_crlf,
    domain=st.none() | no_crlf,
    stale=st.booleans(),
    qop=st.lists(st.sampled_from(["auth", "auth-int", "x"]), max_size=3).map(tuple),
)
def test_challenge_round_trip(realm, nonce, opaque, domain, stale, qop):
    challenge = Challenge(
        realm=realm, nonce=nonce, qop=qop, opaque=opaque, stale=stale, domain=domain
    )
    assert parse_challenge(challenge.to_header_value()) == challenge


@given(
    creds=st.builds(
        Credentials,
        username=st.text(),
        realm=st.just(REALM) | st.text(),
        nonce=st.text(),
        uri=st.text(),
        response=st.text(),
        algorithm=st.sampled_from(["MD5", "SHA-256", "sha-256-sess", "x"]) | st.text(),
        cnonce=st.none() | st.text(),
        qop=st.sampled_from([None, "auth", "AUTH", "auth-int"]) | st.text(),
        nc=st.none() | st.text(),
    ),
    method=st.text(),
)
def test_verify_never_raises(creds, method):
    auth = make_auth(allow_no_qop=True, algorithms=("SHA-256", "MD5", "MD5-sess"))
    result = auth.verify(method, creds, ha1_for, T0, request_uri=creds.uri)
    assert result.status in AuthStatus
