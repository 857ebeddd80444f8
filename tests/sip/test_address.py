"""name-addr and addr-spec values: display names, URIs, parameters."""

from __future__ import annotations

import pytest

from switch.sip.address import Address, parse_address
from switch.sip.errors import ParseError
from switch.sip.uri import parse_uri


def test_name_addr_params_after_the_bracket_belong_to_the_header():
    addr = parse_address("<sip:bob@example.com;transport=tcp>;tag=1;expires=60")
    assert addr.params == {"tag": "1", "expires": "60"}
    assert addr.uri.params == {"transport": "tcp"}
    assert addr.tag == "1"


def test_addr_spec_params_all_belong_to_the_header():
    # RFC 3261 §20.10: without <> every ';' parameter is a header parameter.
    addr = parse_address("sip:bob@example.com;transport=tcp;tag=1")
    assert addr.params == {"transport": "tcp", "tag": "1"}
    assert addr.uri.params == {}
    assert str(addr.uri) == "sip:bob@example.com"


@pytest.mark.parametrize(
    ("text", "display"),
    [
        ('"Alice Smith" <sip:a@example.com>', "Alice Smith"),
        ('"A \\"quoted\\" \\\\ name" <sip:a@example.com>', 'A "quoted" \\ name'),
        ('"" <sip:a@example.com>', ""),
        ('"Doe, John" <sip:a@example.com>', "Doe, John"),
        ('"a;b" <sip:a@example.com>', "a;b"),
        ("Alice <sip:a@example.com>", "Alice"),
        ("Alice   Smith <sip:a@example.com>", "Alice Smith"),
        ("caller<sip:a@example.com>", "caller"),  # RFC 4475 lwsdisp
        ("token1~` token2'+_ token3*%!.- <sip:a@example.com>", "token1~` token2'+_ token3*%!.-"),
        ("<sip:a@example.com>", None),
        ("sip:a@example.com", None),
        ('"\\x" <sip:a@example.com>', "x"),
    ],
)
def test_display_names(text, display):
    assert parse_address(text).display == display


def test_quoted_params_may_hold_separators():
    addr = parse_address('"a;b" <sip:x@example.com>;p="c;d,e";flag')
    assert addr.params == {"p": '"c;d,e"', "flag": None}


def test_param_names_are_case_insensitive_and_lws_is_allowed():
    addr = parse_address("<sip:a@example.com> ; Tag = x ; Q=0.5")
    assert addr.params == {"tag": "x", "q": "0.5"}


def test_wildcard():
    addr = parse_address(" * ")
    assert addr.wildcard
    assert str(addr) == "*"
    with pytest.raises(ParseError, match="wildcard"):
        addr.uri  # noqa: B018


def test_uri_is_parsed_on_use():
    addr = parse_address("<sip:a@[::1>")  # broken URI, but framing is fine
    with pytest.raises(ParseError, match="IPv6"):
        addr.uri  # noqa: B018


def test_other_schemes():
    assert parse_address("<tel:+15551234567>;tag=x").uri.scheme == "tel"
    assert parse_address("isbn:2983792873").uri.scheme == "isbn"  # RFC 4475 unksm2


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ('"Mr. J. User <sip:j.user@example.com>', "unterminated"),  # RFC 4475 quotbal
        ('"Joe" sip:joe@example.com', "followed by <URI>"),
        ("<sip:a@example.com", "missing '>'"),
        ("<sip:a@example.com> extra", "after '>'"),
        ("Bell, Alexander <sip:a.g.bell@example.com>", "tokens or quoted"),  # RFC 4475 baddn
        ("Ann (x) <sip:a@example.com>", "tokens or quoted"),
        ("< sip:t.watson@example.org >", "whitespace inside"),  # RFC 4475 badaspec
        ("sip:user@example.com?Route=%3Csip:sip.example.com%3E", "must be in <>"),  # regbadct
        ("sip:a@example.com,b", "must be in <>"),
        ("nouri", "is not a URI"),
        ("<sip:>", "is not a URI"),
        ("<sip:a@example.com>;;", "empty parameter"),
        ("<sip:a@example.com>;=1", "empty parameter"),
        ("sip:a@example.com;=1", "without a name"),
        ('<sip:a@example.com>;p="open', "unterminated"),
    ],
)
def test_errors(text, words):
    with pytest.raises(ParseError, match=words):
        parse_address(text)


@pytest.mark.parametrize(
    "display",
    ["Alice", "Alice Smith", 'A "q"', "back\\slash", "x,y", "", "tab\there", "BEL:\x07 NUL:\x00"],
)
def test_str_reads_back_equal(display):
    addr = Address(parse_uri("sip:a@example.com;lr"), display, {"tag": "1", "x": None})
    again = parse_address(str(addr))
    assert again == addr
    assert again.display == display


def test_str_never_breaks_the_header_line():
    text = str(Address("sip:a@example.com", "evil\r\nVia: x"))
    assert "\r" not in text and "\n" not in text
    assert parse_address(text).display == "evil  Via: x"


def test_str_forms():
    assert str(Address("sip:a@example.com")) == "<sip:a@example.com>"
    assert str(Address("sip:a@example.com", "Al")) == "Al <sip:a@example.com>"
    assert str(Address("sip:a@example.com", "A  l")) == '"A  l" <sip:a@example.com>'
    assert str(Address("sip:a@example.com", "é")) == '"é" <sip:a@example.com>'


def test_with_tag_keeps_the_rest():
    addr = parse_address('"Bob" <sip:bob@example.com>;x=1')
    tagged = addr.with_tag("t9")
    assert (tagged.display, tagged.params, tagged.tag) == ("Bob", {"x": "1", "tag": "t9"}, "t9")
    assert addr.tag is None


def test_equality():
    a = parse_address("<sip:%61@example.com>;tag=1")
    assert a == parse_address("<sip:a@EXAMPLE.com>;tag=1")
    assert a != parse_address("<sip:a@example.com>;tag=2")
    assert parse_address('"" <sip:a@b>') == parse_address("<sip:a@b>")
