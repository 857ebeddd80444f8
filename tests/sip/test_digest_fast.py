"""The fast paths of switch.sip.digest agree with the slow, general ones.

- `DigestAuthenticator.challenge_values` (preformatted templates with the
  nonce spliced in) gives the same text as formatting `challenge()`;
- `_fast_params` (one regex for the usual header values) gives the same
  parameters as the scanner, and leaves every error to it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from switch.sip import digest
from switch.sip.digest import (
    DigestAuthenticator,
    DigestError,
    parse_challenge,
    parse_credentials,
)

SECRET = b"cluster-wide secret"
T0 = 1_700_000_000.0
FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def counting_entropy() -> Callable[[int], bytes]:
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


# -- challenge_values ----------------------------------------------------------------------

REALMS = [
    "\x00nonce\x00",
    "demo",
    "switch.example.com",
    "",
    'say "hi"',
    "back\\slash",
    '\\"',
    'ends with \\ and "',
    "tab\there",
    "ünïcode ✓",
    "x" * 300,
]
ALGORITHM_ORDERS = [("MD5",), ("SHA-256",), ("MD5", "SHA-256"), ("SHA-256", "MD5")]


def pair(realm: str, algorithms: tuple[str, ...]) -> tuple[DigestAuthenticator, ...]:
    """Two authenticators alike, down to the salts they will draw."""
    return tuple(
        DigestAuthenticator(realm, SECRET, 300, algorithms, entropy=counting_entropy())
        for _ in range(2)
    )


def check_challenge_values(realm: str, algorithms: tuple[str, ...]) -> None:
    fast, slow = pair(realm, algorithms)
    # Several calls: the first builds the templates, the next ones reuse them.
    for now, stale in [(T0, False), (T0 + 1, True), (T0 + 2, False), (T0 + 3, True)]:
        values = fast.challenge_values(now, stale)
        expected = [c.to_header_value() for c in slow.challenge(now, stale)]
        assert values == expected
        parsed = [parse_challenge(v) for v in values]
        assert [c.realm for c in parsed] == [realm] * len(algorithms)
        assert [c.algorithm for c in parsed] == list(algorithms)
        assert len({c.nonce for c in parsed}) == 1
        assert all(c.stale is stale and c.qop == ("auth",) for c in parsed)


@pytest.mark.parametrize("algorithms", ALGORITHM_ORDERS)
@pytest.mark.parametrize("realm", REALMS)
def test_challenge_values_equal_the_formatted_challenges(
    realm: str, algorithms: tuple[str, ...]
) -> None:
    check_challenge_values(realm, algorithms)


@FAST
@given(
    realm=st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n")),
    algorithms=st.sampled_from(ALGORITHM_ORDERS),
)
def test_challenge_values_equal_the_formatted_challenges_for_any_realm(
    realm: str, algorithms: tuple[str, ...]
) -> None:
    check_challenge_values(realm, algorithms)


def test_challenge_values_nonces_verify_and_differ() -> None:
    auth = DigestAuthenticator("demo", SECRET)
    first = parse_challenge(auth.challenge_values(T0)[0]).nonce
    second = parse_challenge(auth.challenge_values(T0)[0]).nonce
    assert first != second  # a fresh salt each time, even in the same millisecond
    assert auth._nonce_issued_ms(first) == int(T0 * 1000)


@pytest.mark.parametrize("realm", ["a\r\nX-Injected: 1", "line\nbreak", "cr\ronly"])
def test_a_realm_that_would_break_the_header_is_refused_by_both(realm: str) -> None:
    fast, slow = pair(realm, ("MD5",))
    with pytest.raises(DigestError):
        fast.challenge_values(T0)
    with pytest.raises(DigestError):
        [c.to_header_value() for c in slow.challenge(T0)]


# -- _fast_params against the scanner ---------------------------------------------------------

KNOWN = ["username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "opaque", "qop"]
TOKEN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"


def _case_variants(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.upper(), name.capitalize()])


# Strategy pieces. "clean" ones are what the fast path is for; "noisy" ones
# add what it must leave to the scanner (escapes, CR/LF, stray commas, ...).
clean_names = st.one_of(
    st.sampled_from(KNOWN).flatmap(_case_variants),
    st.just("nc"),
    st.text(TOKEN, min_size=1, max_size=8),
)
noisy_names = st.one_of(clean_names, st.text('ab=" ,;\\é\t', min_size=0, max_size=4))
clean_quoted = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters='"\\\r\n'), max_size=16
).map(lambda s: f'"{s}"')
clean_plain = st.one_of(
    st.text(TOKEN + "/=:@?é", min_size=1, max_size=12),
    st.integers(0, 0xFFFFFFFF).map(lambda n: f"{n:08x}"),
    st.sampled_from(["MD5", "SHA-256", "md5", "auth", "auth-int", "TRUE"]),
)
noisy_quoted = st.text('ab\\" ,=\r\n\té', max_size=10).map(lambda s: f'"{s}')
escaped_quoted = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=12
).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"')
noisy_values = st.one_of(
    clean_quoted,
    escaped_quoted,  # well-formed quoted-pairs: valid, but the scanner's job
    clean_plain,
    noisy_quoted,  # escapes, stray or missing quotes, CR/LF
    noisy_quoted.map(lambda s: s + '"'),
    st.just(""),
    st.text('"\\, \t=ab', max_size=5),
)
spaces = st.text(" \t", max_size=2)
noisy_spaces = st.text(" \t\r\n", max_size=3)


@st.composite
def header_values(draw: st.DrawFn, clean: bool) -> str:
    names_ = clean_names if clean else noisy_names
    values_ = st.one_of(clean_quoted, clean_plain) if clean else noisy_values
    ws = spaces if clean else noisy_spaces
    items = draw(
        st.lists(
            st.tuples(names_, ws, ws, values_),
            min_size=1,
            max_size=8,
            # Each parameter once (names compare without case): duplicates are errors.
            unique_by=(lambda item: item[0].lower()) if clean else None,
        )
    )
    parts = [f"{name}{before}={after}{value}" for name, before, after, value in items]
    text = parts[0]
    for part in parts[1:]:
        separator = draw(st.sampled_from([","] if clean else [",", ",,", " ", ";", ""]))
        text += f"{draw(ws)}{separator}{draw(ws)}{part}"
    schemes = ["Digest", "digest", "DIGEST"]
    if not clean:
        schemes += ["Digestx", "Basic", "", "Digest,"]
    scheme = draw(st.sampled_from(schemes))
    gap = draw(st.text(" \t", min_size=1, max_size=3) if clean else noisy_spaces)
    lead, trail = (draw(noisy_spaces), draw(noisy_spaces)) if not clean else ("", "")
    return f"{lead}{scheme}{gap}{text}{trail}"


def outcome(parse: Callable[..., Any], value: str) -> tuple[str, Any]:
    try:
        return "ok", parse(value, "Authorization")
    except DigestError as exc:
        return "error", str(exc)


def slow(parse: Callable[..., Any], value: str) -> tuple[str, Any]:
    with mock.patch.object(digest, "_fast_params", lambda rest: None):
        return outcome(parse, value)


PARSERS = [digest._parse_params, parse_credentials, parse_challenge]  # type: ignore[attr-defined]


def fast_accepts(value: str) -> bool:
    text = value.strip(" \t\r\n")
    return text[:6].lower() == "digest" and digest._fast_params(text[6:]) is not None


@FAST
@given(value=header_values(clean=True))
@example('Digest username="1001", realm="demo", nonce="abc", uri="sip:demo", response="ff"')
@example('Digest username="", realm=x, nonce=a/b=, uri="sip:x;a=b", response="r", nc=00000001')
@example('Digest qop=auth,nc=00000001,  cnonce="a b",username=u,realm=r,nonce=n,uri=u2,response=x')
def test_the_fast_path_takes_the_usual_values_and_agrees(value: str) -> None:
    assert fast_accepts(value), value
    for parse in PARSERS:
        assert outcome(parse, value) == slow(parse, value)


@FAST
@given(value=st.one_of(header_values(clean=False), header_values(clean=True)))
@example('Digest username="a\\"b", realm="r"')  # an escape: the scanner's
@example('Digest username="a\\b", realm="r"')  # a quoted-pair that is not a quote
@example('Digest username="1001", username="1002"')  # a duplicate: the scanner's
@example("Digest Realm=a, realm=b")  # a duplicate in another case
@example('Digest realm="unterminated')
@example("Digest a=b c=d")
@example("Digest a=b,")
@example('Digest a="x"y')
@example("Digest\r\n a=b")
@example('Digest a="line\r\n b"')
def test_fast_and_slow_agree_on_anything(value: str) -> None:
    for parse in PARSERS:
        assert outcome(parse, value) == slow(parse, value)


@FAST
@given(value=st.text(st.sampled_from('Digest usrnamx=",\\ \t\r\n0aé;'), max_size=60))
def test_fast_and_slow_agree_on_noise(value: str) -> None:
    for parse in PARSERS:
        assert outcome(parse, value) == slow(parse, value)


def test_the_slow_path_really_is_slow_when_patched() -> None:
    # Guards the property tests: with the patch, the fast path is not taken.
    value = 'Digest username="1001", realm="demo"'
    calls: list[str] = []
    real = digest._fast_params

    def spy(rest: str) -> dict[str, str] | None:
        calls.append(rest)
        return real(rest)

    with mock.patch.object(digest, "_fast_params", spy):
        digest._parse_params(value, "Authorization")  # type: ignore[attr-defined]
    assert calls == [' username="1001", realm="demo"']
    assert real(calls[0]) == {"username": "1001", "realm": "demo"}
    expected = ("ok", {"username": "1001", "realm": "demo"})
    assert slow(digest._parse_params, value) == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "rest",
    [
        ' username="a\\"b"',  # quoted-pair
        ' a="x", A="y"',  # duplicate
        " a=b,",  # trailing comma
        " a=b c=d",  # no comma
        ' a="x\r\ny"',  # CR/LF inside quotes
        "\r\n a=b",  # folded after the scheme
        "x a=b",  # "Digestx"
        "",
    ],
)
def test_the_fast_path_leaves_the_unusual_to_the_scanner(rest: str) -> None:
    assert digest._fast_params(rest) is None
