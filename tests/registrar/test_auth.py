"""Authenticator: digest challenges, verification, failure logging and bans.

Requests are parsed from raw text; clients answer with `switch.sip.digest`,
the way a phone would: read the challenge, pick an algorithm, hash.
"""

from __future__ import annotations

import logging
import re
import textwrap
from pathlib import Path

import pytest

from switch.config import load_config
from switch.registrar.accounts import Accounts
from switch.registrar.auth import FORBIDDEN, Authenticated, Authenticator, Denied
from switch.sip.digest import (
    Challenge,
    Credentials,
    compute_ha1,
    compute_response,
    parse_challenge,
)
from switch.sip.flow import Flow
from switch.sip.message import Request, parse_message
from switch.store.bans import MemoryBanStore

pytestmark = pytest.mark.timeout(30)

NOW = 1_700_000_000.0
IP = "198.51.100.7"
FLOW = Flow("udp", (IP, 5062), ("192.0.2.10", 5060))
SECRET = b"shared-nonce-secret"
TTL = 300

CONFIG = """
[tenants.demo]
domains = ["demo.example"]
[tenants.demo.agents."1001"]
password = "secret-1001"
[tenants.demo.agents."1002"]
password = "secret-1002"

[tenants.acme]
domains = ["acme.example"]
[tenants.acme.agents."1001"]
password = "acme-1001"
[tenants.acme.agents."3001"]
password = "acme-3001"
"""
PASSWORDS = {"1001": "secret-1001", "1002": "secret-1002"}

FAILURE = re.compile(
    r"auth failure: ip=(\S+) port=(\d+) user=(\S+) tenant=(\S+) method=(\S+) reason=(\S+)"
)
BAN = re.compile(r"auth ban: ip=(\S+) seconds=(\d+) failures=(\d+) window=(\d+)")


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    path = tmp_path / "switch.toml"
    path.write_text(textwrap.dedent(CONFIG), encoding="utf-8")
    return Accounts(load_config(path))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bans() -> MemoryBanStore:
    return MemoryBanStore(threshold=3, window=60, ban_time=600)


@pytest.fixture
def bans_made() -> list[tuple[str, float]]:
    return []


@pytest.fixture
def auth(
    accounts: Accounts, bans: MemoryBanStore, clock: Clock, bans_made: list[tuple[str, float]]
) -> Authenticator:
    return Authenticator(
        accounts,
        SECRET,
        bans,
        nonce_ttl=TTL,
        on_ban=lambda ip, until: bans_made.append((ip, until)),
        clock=clock,
    )


def request(
    method: str = "REGISTER", *headers: str, user: str = "1001", host: str = "demo.example"
) -> Request:
    ruri = f"sip:{host}" if method == "REGISTER" else f"sip:{user}@{host}"
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {IP}:5062;branch=z9hG4bK-auth-1",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{host}>;tag=f1",
        f"To: <sip:{user}@{host}>",
        "Call-ID: auth-call-1@198.51.100.7",
        f"CSeq: 1 {method}",
        *headers,
        "Content-Length: 0",
    ]
    msg = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def challenges(denied: Denied | Authenticated) -> list[Challenge]:
    assert isinstance(denied, Denied), denied
    return [parse_challenge(value, name) for name, value in denied.headers]


def answer(
    denied: Denied | Authenticated,
    method: str,
    user: str,
    password: str,
    *,
    algorithm: str = "MD5",
    nc: int = 1,
    cnonce: str = "0a4f113b",
    uri: str = "sip:demo.example",
) -> str:
    """The credentials a phone sends back: the challenge of its choice, answered."""
    [challenge] = [c for c in challenges(denied) if c.algorithm == algorithm]
    ha1 = compute_ha1(user, challenge.realm, password, algorithm)
    nc_text = f"{nc:08x}"
    response = compute_response(
        ha1, method, uri, challenge.nonce, algorithm, "auth", nc_text, cnonce
    )
    return Credentials(
        username=user,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=algorithm,
        cnonce=cnonce,
        qop="auth",
        nc=nc_text,
    ).to_header_value()


async def first_challenge(
    auth: Authenticator, method: str = "REGISTER", tenant: str | None = "demo", **kw: str
) -> Denied:
    realm = kw.pop("realm", tenant or "demo")
    denied = await auth.authenticate(request(method, **kw), FLOW, tenant, realm)
    assert isinstance(denied, Denied)
    return denied


def creds_header(method: str) -> str:
    return "Authorization" if method == "REGISTER" else "Proxy-Authorization"


def failure_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, ...]]:
    lines = []
    for record in caplog.records:
        if record.name == "switch.auth" and "auth failure" in record.getMessage():
            match = FAILURE.fullmatch(record.getMessage())
            assert match is not None, record.getMessage()
            lines.append(match.groups())
    return lines


# -- challenges -----------------------------------------------------------------------


async def test_register_without_credentials_gets_401_one_challenge_per_algorithm(
    auth: Authenticator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="switch.auth")
    denied = await first_challenge(auth)
    assert (denied.status, denied.reason) == (401, "Unauthorized")
    assert [name for name, _ in denied.headers] == ["WWW-Authenticate", "WWW-Authenticate"]
    offered = challenges(denied)
    assert [c.algorithm for c in offered] == ["MD5", "SHA-256"]  # the configured order
    assert {c.realm for c in offered} == {"demo"}  # the tenant id, not the domain
    assert len({c.nonce for c in offered}) == 1  # one nonce, answered with either
    assert all(c.qop == ("auth",) and not c.stale for c in offered)
    assert failure_lines(caplog) == []  # asking is not failing


@pytest.mark.parametrize("method", ["INVITE", "MESSAGE", "REFER"])
async def test_other_methods_get_407_with_proxy_authenticate(
    auth: Authenticator, method: str
) -> None:
    denied = await first_challenge(auth, method)
    assert (denied.status, denied.reason) == (407, "Proxy Authentication Required")
    assert [name for name, _ in denied.headers] == ["Proxy-Authenticate"] * 2
    assert {c.realm for c in challenges(denied)} == {"demo"}


async def test_challenge_method_gives_fresh_nonces(auth: Authenticator) -> None:
    first = auth.challenge("demo", proxy=False)
    second = auth.challenge("demo", proxy=True)
    assert (first.status, second.status) == (401, 407)
    assert first.headers[0][0] == "WWW-Authenticate"
    assert second.headers[0][0] == "Proxy-Authenticate"
    assert challenges(first)[0].nonce != challenges(second)[0].nonce
    assert challenges(first)[0].realm == "demo"


async def test_credentials_for_another_scheme_or_realm_are_not_ours(
    auth: Authenticator, bans: MemoryBanStore
) -> None:
    # Authorization for an upstream proxy's realm, or Basic: challenge again.
    other_realm = answer(await first_challenge(auth, realm="acme"), "REGISTER", "1001", "x")
    for header in (f"Authorization: {other_realm}", "Authorization: Basic MTAwMTpzZWNyZXQ="):
        result = await auth.authenticate(request("REGISTER", header), FLOW, "demo", "demo")
        assert isinstance(result, Denied) and result.status == 401
        assert {c.realm for c in challenges(result)} == {"demo"}
    assert not await bans.is_banned(IP, NOW)


async def test_credentials_in_the_wrong_header_for_the_method_are_ignored(
    auth: Authenticator,
) -> None:
    # INVITE answers with Proxy-Authorization; an Authorization header is not read.
    denied = await first_challenge(auth, "INVITE")
    value = answer(denied, "INVITE", "1001", PASSWORDS["1001"])
    result = await auth.authenticate(
        request("INVITE", f"Authorization: {value}"), FLOW, "demo", "demo"
    )
    assert isinstance(result, Denied) and result.status == 407
    # And REGISTER does not read Proxy-Authorization.
    denied = await first_challenge(auth)
    value = answer(denied, "REGISTER", "1001", PASSWORDS["1001"])
    req = request("REGISTER", f"Proxy-Authorization: {value}")
    result = await auth.authenticate(req, FLOW, "demo", "demo")
    assert isinstance(result, Denied) and result.status == 401


# -- success -------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
@pytest.mark.parametrize("method", ["REGISTER", "INVITE"])
async def test_the_client_answers_with_the_algorithm_of_its_choice(
    auth: Authenticator, algorithm: str, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="switch.auth")
    denied = await first_challenge(auth, method)
    value = answer(denied, method, "1001", PASSWORDS["1001"], algorithm=algorithm)
    req = request(method, f"{creds_header(method)}: {value}")
    assert await auth.authenticate(req, FLOW, "demo", "demo") == Authenticated("demo", "1001")
    assert failure_lines(caplog) == []


async def test_md5_and_sha256_answers_share_the_nonce_count(auth: Authenticator) -> None:
    denied = await first_challenge(auth)
    md5 = answer(denied, "REGISTER", "1001", PASSWORDS["1001"], algorithm="MD5", nc=1)
    sha = answer(denied, "REGISTER", "1001", PASSWORDS["1001"], algorithm="SHA-256", nc=2)
    ok = Authenticated("demo", "1001")
    assert (
        await auth.authenticate(request("REGISTER", f"Authorization: {md5}"), FLOW, "demo", "demo")
        == ok
    )
    assert (
        await auth.authenticate(request("REGISTER", f"Authorization: {sha}"), FLOW, "demo", "demo")
        == ok
    )
    # nc 1 was used by the MD5 answer: the same count with SHA-256 is a replay.
    again = answer(denied, "REGISTER", "1001", PASSWORDS["1001"], algorithm="SHA-256", nc=1)
    req = request("REGISTER", f"Authorization: {again}")
    assert await auth.authenticate(req, FLOW, "demo", "demo") == FORBIDDEN


async def test_only_the_configured_algorithms_are_offered_and_accepted(
    accounts: Accounts, bans: MemoryBanStore, clock: Clock
) -> None:
    auth = Authenticator(accounts, SECRET, bans, algorithms=("SHA-256",), clock=clock)
    denied = await first_challenge(auth)
    assert [c.algorithm for c in challenges(denied)] == ["SHA-256"]
    # An MD5 answer (with the right password) to the SHA-256 nonce is refused.
    [challenge] = challenges(denied)
    md5_challenge = Challenge(realm="demo", nonce=challenge.nonce, algorithm="MD5", qop=("auth",))
    md5 = answer(
        Denied(401, "Unauthorized", (("WWW-Authenticate", md5_challenge.to_header_value()),)),
        "REGISTER",
        "1001",
        PASSWORDS["1001"],
    )
    req = request("REGISTER", f"Authorization: {md5}")
    assert await auth.authenticate(req, FLOW, "demo", "demo") == FORBIDDEN
    sha = answer(denied, "REGISTER", "1001", PASSWORDS["1001"], algorithm="SHA-256")
    req = request("REGISTER", f"Authorization: {sha}")
    assert await auth.authenticate(req, FLOW, "demo", "demo") == Authenticated("demo", "1001")


async def test_a_nonce_from_another_node_with_the_same_secret_verifies(
    accounts: Accounts, bans: MemoryBanStore, clock: Clock
) -> None:
    node_a = Authenticator(accounts, SECRET, bans, clock=clock)
    node_b = Authenticator(accounts, SECRET, bans, clock=clock)
    value = answer(await first_challenge(node_a), "REGISTER", "1002", PASSWORDS["1002"])
    req = request("REGISTER", f"Authorization: {value}", user="1002")
    assert await node_b.authenticate(req, FLOW, "demo", "demo") == Authenticated("demo", "1002")


# -- failures ------------------------------------------------------------------------


async def test_unknown_user_and_wrong_password_get_the_same_403(
    auth: Authenticator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="switch.auth")
    wrong = answer(await first_challenge(auth), "REGISTER", "1001", "guess")
    unknown = answer(await first_challenge(auth, user="1099"), "REGISTER", "1099", "guess")
    first = await auth.authenticate(
        request("REGISTER", f"Authorization: {wrong}"), FLOW, "demo", "demo"
    )
    second = await auth.authenticate(
        request("REGISTER", f"Authorization: {unknown}", user="1099"), FLOW, "demo", "demo"
    )
    assert first == second == FORBIDDEN == Denied(403, "Forbidden", ())
    assert failure_lines(caplog) == [
        (IP, "5062", "1001", "demo", "REGISTER", "wrong_password"),
        (IP, "5062", "1099", "demo", "REGISTER", "unknown_user"),
    ]


async def test_stale_nonce_with_the_right_password_is_rechallenged_with_stale(
    auth: Authenticator, clock: Clock, bans: MemoryBanStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="switch.auth")
    denied = await first_challenge(auth)
    old_nonce = challenges(denied)[0].nonce
    value = answer(denied, "REGISTER", "1001", PASSWORDS["1001"])
    clock.now += TTL + 1
    for _ in range(bans.threshold):  # not counted: a stale nonce says nothing bad
        result = await auth.authenticate(
            request("REGISTER", f"Authorization: {value}"), FLOW, "demo", "demo"
        )
        assert isinstance(result, Denied)
        assert (result.status, result.reason) == (401, "Unauthorized")
        offered = challenges(result)
        assert all(c.stale for c in offered) and len(offered) == 2
        assert all("stale=TRUE" in v for _, v in result.headers)
        assert offered[0].nonce != old_nonce
    assert failure_lines(caplog) == []
    assert not await bans.is_banned(IP, clock.now)
    # The phone retries with the new nonce, without asking the user again.
    retry = answer(result, "REGISTER", "1001", PASSWORDS["1001"])
    req = request("REGISTER", f"Authorization: {retry}")
    assert await auth.authenticate(req, FLOW, "demo", "demo") == Authenticated("demo", "1001")


async def test_stale_nonce_with_a_wrong_password_is_a_failure(
    auth: Authenticator, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="switch.auth")
    value = answer(await first_challenge(auth), "REGISTER", "1001", "guess")
    clock.now += TTL + 1
    req = request("REGISTER", f"Authorization: {value}")
    assert await auth.authenticate(req, FLOW, "demo", "demo") == FORBIDDEN
    assert [line[-1] for line in failure_lines(caplog)] == ["wrong_password"]


@pytest.mark.parametrize("password", [PASSWORDS["1001"], "guess"])
async def test_a_nonce_not_ours_gets_a_fresh_challenge_and_is_not_counted(
    accounts: Accounts,
    auth: Authenticator,
    bans: MemoryBanStore,
    clock: Clock,
    password: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="switch.auth")
    # A nonce made before a restart that changed the secret, and a made-up one.
    before_restart = Authenticator(accounts, b"the-old-secret", MemoryBanStore(), clock=clock)
    old = answer(await first_challenge(before_restart), "REGISTER", "1001", password)
    forged_nonce = re.sub(
        r'nonce="[^"]*"', 'nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"', old
    )
    assert forged_nonce != old
    for value in [old, forged_nonce] * bans.threshold:
        result = await auth.authenticate(
            request("REGISTER", f"Authorization: {value}"), FLOW, "demo", "demo"
        )
        assert isinstance(result, Denied)
        assert result.status == 401
        assert not any(c.stale for c in challenges(result))
    assert failure_lines(caplog) == []
    assert not await bans.is_banned(IP, clock.now)


async def test_nc_replay_is_refused(auth: Authenticator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switch.auth")
    denied = await first_challenge(auth)
    value = answer(denied, "REGISTER", "1001", PASSWORDS["1001"], nc=1)
    req = request("REGISTER", f"Authorization: {value}")
    assert await auth.authenticate(req, FLOW, "demo", "demo") == Authenticated("demo", "1001")
    replay = request("REGISTER", f"Authorization: {value}")
    assert await auth.authenticate(replay, FLOW, "demo", "demo") == FORBIDDEN
    assert [line[-1] for line in failure_lines(caplog)] == ["nc_replay"]
    # The next count on the same nonce is fine.
    value = answer(denied, "REGISTER", "1001", PASSWORDS["1001"], nc=2)
    req = request("REGISTER", f"Authorization: {value}")
    assert await auth.authenticate(req, FLOW, "demo", "demo") == Authenticated("demo", "1001")


async def test_the_realm_of_another_tenant_does_not_authenticate_here(
    auth: Authenticator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="switch.auth")
    # demo's 1001 tries to put a binding under acme's 1001: acme challenges
    # with realm "acme", and demo's password is not acme's.
    denied = await first_challenge(auth, tenant="acme", host="acme.example")
    assert {c.realm for c in challenges(denied)} == {"acme"}
    value = answer(denied, "REGISTER", "1001", PASSWORDS["1001"])
    req = request("REGISTER", f"Authorization: {value}", host="acme.example")
    assert await auth.authenticate(req, FLOW, "acme", "acme") == FORBIDDEN
    # demo's 1002 has no account in acme at all: the same answer.
    denied = await first_challenge(auth, tenant="acme", host="acme.example", user="1002")
    value = answer(denied, "REGISTER", "1002", PASSWORDS["1002"])
    req = request("REGISTER", f"Authorization: {value}", host="acme.example", user="1002")
    assert await auth.authenticate(req, FLOW, "acme", "acme") == FORBIDDEN
    assert failure_lines(caplog) == [
        (IP, "5062", "1001", "acme", "REGISTER", "wrong_password"),
        (IP, "5062", "1002", "acme", "REGISTER", "unknown_user"),
    ]
    # With acme's password it works: the realm really was acme's.
    denied = await first_challenge(auth, tenant="acme", host="acme.example")
    value = answer(denied, "REGISTER", "1001", "acme-1001")
    req = request("REGISTER", f"Authorization: {value}", host="acme.example")
    assert await auth.authenticate(req, FLOW, "acme", "acme") == Authenticated("acme", "1001")


async def test_no_tenant_means_every_answer_fails(
    auth: Authenticator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="switch.auth")
    # A domain we do not serve: the challenge names it, and nobody can pass.
    denied = await first_challenge(auth, tenant=None, realm="other.example", host="other.example")
    assert {c.realm for c in challenges(denied)} == {"other.example"}
    value = answer(denied, "REGISTER", "1001", PASSWORDS["1001"])
    req = request("REGISTER", f"Authorization: {value}", host="other.example")
    assert await auth.authenticate(req, FLOW, None, "other.example") == FORBIDDEN
    assert failure_lines(caplog) == [(IP, "5062", "1001", "-", "REGISTER", "unknown_user")]


@pytest.mark.parametrize(
    ("method", "header"), [("REGISTER", "Authorization"), ("INVITE", "Proxy-Authorization")]
)
@pytest.mark.parametrize(
    "value",
    [
        'Digest username="1001", realm="demo"',  # no nonce, uri, response
        'Digest username="1001", realm="demo", nonce="abc", uri="sip:x", response="00", nc=1',
        'Digest username="1001, realm="demo"',  # unterminated quoted string
        'Digest username="1001" realm="demo"',  # no comma
        'Digest username="1001", username="1002", realm="demo", nonce="n", uri="u", response="r"',
    ],
)
async def test_malformed_credentials_get_400_naming_the_header(
    auth: Authenticator, method: str, header: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="switch.auth")
    result = await auth.authenticate(request(method, f"{header}: {value}"), FLOW, "demo", "demo")
    assert isinstance(result, Denied)
    assert result.status == 400 and result.headers == ()
    assert result.reason.startswith(f"Bad Request (malformed {header}: ")
    assert len(result.reason) <= 160
    [line] = failure_lines(caplog)
    assert line[:5] == (IP, "5062", "-", "demo", method)
    assert line[5].startswith("malformed_credentials:")


# -- the log and bans ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "logged"),
    [
        ("evil user", "evil?user"),
        ("a\tb\x0bc", "a?b?c"),
        ("x\u2028auth failure: ip=203.0.113.9", "x?auth?failure:?ip=203.0.113.9"),
        ("", "-"),
        ("9" * 100, "9" * 64),
    ],
)
async def test_failure_log_values_stay_on_one_parseable_line(
    auth: Authenticator, user: str, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="switch.auth")
    await auth.failure(FLOW, user, "demo", "REGISTER", "wrong password", NOW)
    assert failure_lines(caplog) == [(IP, "5062", logged, "demo", "REGISTER", "wrong_password")]


async def test_a_user_name_with_a_newline_from_the_network_is_logged_on_one_line(
    auth: Authenticator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="switch.auth")
    denied = await first_challenge(auth)
    value = answer(denied, "REGISTER", "1001", "guess")
    # A bare LF inside a CRLF-framed header line reaches the credentials parser.
    evil = value.replace('username="1001"', 'username="10 01\nauth failure: ip=203.0.113.9"')
    assert evil != value
    req = request("REGISTER", f"Authorization: {evil}")
    assert "\n" in (req.get("Authorization") or "")
    assert await auth.authenticate(req, FLOW, "demo", "demo") == FORBIDDEN
    messages = [r.getMessage() for r in caplog.records if r.name == "switch.auth"]
    assert len(messages) == 1 and "\n" not in messages[0]
    assert failure_lines(caplog) == [
        (IP, "5062", "10?01?auth?failure:?ip=203.0.113.9", "demo", "REGISTER", "unknown_user")
    ]


async def test_threshold_failures_within_the_window_ban_the_address_once(
    auth: Authenticator,
    bans: MemoryBanStore,
    clock: Clock,
    bans_made: list[tuple[str, float]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="switch.auth")
    for attempt in range(bans.threshold):
        assert bans_made == []
        value = answer(await first_challenge(auth), "REGISTER", "1001", f"guess{attempt}")
        req = request("REGISTER", f"Authorization: {value}")
        assert await auth.authenticate(req, FLOW, "demo", "demo") == FORBIDDEN
        clock.now += 1
    ban_time = clock.now - 1 + 600
    assert bans_made == [(IP, ban_time)]
    assert await bans.is_banned(IP, clock.now)
    ban_lines = [
        BAN.fullmatch(r.getMessage()).groups()  # type: ignore[union-attr]
        for r in caplog.records
        if r.getMessage().startswith("auth ban")
    ]
    assert ban_lines == [(IP, "600", "3", "60")]
    assert len(failure_lines(caplog)) == bans.threshold
    # Another failure while banned is logged, but bans nobody again.
    await auth.failure(FLOW, "1001", "demo", "REGISTER", "wrong password", clock.now)
    assert bans_made == [(IP, ban_time)]
    assert len(failure_lines(caplog)) == bans.threshold + 1


async def test_failures_spread_over_more_than_the_window_do_not_ban(
    auth: Authenticator,
    bans: MemoryBanStore,
    clock: Clock,
    bans_made: list[tuple[str, float]],
) -> None:
    for _ in range(2 * bans.threshold):
        await auth.failure(FLOW, "1001", "demo", "REGISTER", "wrong password", clock.now)
        clock.now += bans.window / (bans.threshold - 1) + 0.1
    assert bans_made == []
    assert not await bans.is_banned(IP, clock.now)


async def test_failures_from_other_addresses_are_counted_apart(
    auth: Authenticator, bans: MemoryBanStore, bans_made: list[tuple[str, float]]
) -> None:
    for n in range(bans.threshold - 1):
        for ip in ("198.51.100.7", "198.51.100.8"):
            flow = Flow("udp", (ip, 5060 + n))
            await auth.failure(flow, "1001", "demo", "REGISTER", "wrong password", NOW)
    assert bans_made == []
    await auth.failure(Flow("udp", ("198.51.100.8", 1)), "1", "demo", "INVITE", "x", NOW)
    assert bans_made == [("198.51.100.8", NOW + 600)]
    assert not await bans.is_banned("198.51.100.7", NOW)
