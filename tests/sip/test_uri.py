"""SIP, SIPS, tel and other URIs: parsing, escapes, IPv6, comparison."""

from __future__ import annotations

import pytest

from switch.sip.errors import ParseError
from switch.sip.uri import AbsoluteURI, SipURI, TelURI, parse_sip_uri, parse_uri


def sip(text: str) -> SipURI:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    return uri


def test_parts():
    uri = sip("sips:alice:secret@atlanta.example.com:5061;transport=TLS;lr?subject=hi")
    assert (uri.scheme, uri.user, uri.password) == ("sips", "alice", "secret")
    assert (uri.host, uri.port) == ("atlanta.example.com", 5061)
    assert uri.params == {"transport": "TLS", "lr": None}
    assert uri.transport == "tls"
    assert uri.lr
    assert uri.headers == "subject=hi"
    assert uri.host_port == "atlanta.example.com:5061"
    assert uri.aor == "sips:alice@atlanta.example.com"


def test_scheme_is_case_insensitive_and_the_text_is_kept():
    uri = sip("SIP:Bob@Biloxi.Example.COM")
    assert uri.scheme == "sip"
    assert uri.user == "Bob"
    assert str(uri) == "SIP:Bob@Biloxi.Example.COM"
    assert uri.aor == "sip:Bob@biloxi.example.com"


@pytest.mark.parametrize(
    "text",
    [
        "sip:bob@biloxi.example.com",
        "sip:biloxi.example.com",
        "sip:+15551234567@trunk.example.com;user=phone",
        "sip:bob@192.0.2.4:5060;transport=udp;maddr=239.255.255.1;ttl=15",
        "sip:%61lice@atlanta.com;transport=TCP",
        "sip:user;par=u%40example.net@example.com",
        "sip:[2001:db8::10]:5070;lr",
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sips:a:b@c.example.com",
        "tel:+1-201-555-0123;phone-context=example.com",
        "urn:service:sos",
        "http://www.example.com/index.html",
    ],
)
def test_an_unchanged_uri_serialises_as_written(text):
    assert str(parse_uri(text)) == text


def test_escapes_in_user_and_password_are_read_unescaped():
    uri = sip("sip:I%20have%20spaces:p%40ss@example.net")
    assert uri.user == "I have spaces"
    assert uri.password == "p@ss"


def test_escapes_in_parameters_are_read_unescaped_once():
    uri = sip("sip:caller@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert uri.params == {"lr": None, "name": "value%41"}
    assert uri.lr


def test_percent_that_is_not_an_escape_survives():
    uri = sip("sip:100%zz@example.com")
    assert uri.user == "100%zz"


def test_params_with_and_without_values():
    uri = sip("sip:h.example.com;a=1;b;C=Two;d=")
    assert uri.params == {"a": "1", "b": None, "c": "Two", "d": ""}


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),
        ("sip:user@[2001:db8::10]:5070", "[2001:db8::10]", 5070),
        ("sip:[2001:db8::10:5070]", "[2001:db8::10:5070]", None),  # RFC 5118 §4.3
        ("sip:ted@[::ffff:192.0.2.2]", "[::ffff:192.0.2.2]", None),
        ("sip:[::1];transport=tcp", "[::1]", None),
        ("sip:user@[2001:db8:::192.0.2.1]", "[2001:db8:::192.0.2.1]", None),  # RFC 5118 §4.10
    ],
)
def test_ipv6_references(text, host, port):
    uri = sip(text)
    assert (uri.host, uri.port) == (host, port)


def test_ipv6_references_compare_by_address():
    assert sip("sip:[2001:db8::1]") == sip("sip:[2001:DB8:0:0::1]")
    assert hash(sip("sip:[2001:db8::1]")) == hash(sip("sip:[2001:DB8:0:0::1]"))
    assert sip("sip:u@[2001:db8:::192.0.2.1]") == sip("sip:u@[2001:db8::c000:201]")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("bob@example.com", "no scheme"),
        (":bob@example.com", "no scheme"),
        ("sip:", "no host"),
        ("sip:bob@", "no host"),
        ("sip:@example.com", "empty user"),
        ("sip:bob smith@example.com", "whitespace"),
        ("sip:bob@exa mple.com", "whitespace"),
        ("sip:bob@ex$ample.com", "invalid host"),
        ("sip:bob@example.com:65536", "invalid port"),
        ("sip:bob@example.com:", "invalid port"),
        ("sip:bob@example.com:5o6o", "invalid port"),
        ("sip:bob@example.com:٥٠٦٠", "invalid port"),
        ("sip:2001:db8::10", "brackets"),  # RFC 5118 §4.2
        ("sip:[2001:db8::10", "without ']'"),
        ("sip:[2001:db8::zz]", "not an IPv6 address"),
        ("sip:[192.0.2.1]", "not an IPv6 address"),
        ("sip:[2001:db8::1]x", "after IPv6"),
        ("sip:example.com;=x", "without a name"),
        ("sip:example.com;a;=x", "without a name"),
        ("tel:", "number"),
        ("tel:+1 555", "number"),
        ("1sip:x", "invalid scheme"),
        ("<sip:bob@example.com>", "invalid scheme"),
        ("http://example.com/a b", "whitespace"),
    ],
)
def test_errors(text, words):
    with pytest.raises(ParseError, match=words):
        parse_uri(text)


def test_parse_sip_uri_refuses_other_schemes_with_416():
    assert parse_sip_uri("sip:a@b").host == "b"
    with pytest.raises(ParseError) as info:
        parse_sip_uri("tel:+15551234567")
    assert info.value.status == 416


def test_tel_and_absolute_uris():
    tel = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert isinstance(tel, TelURI)
    assert tel.number == "+1-201-555-0123"
    assert tel.params == {"phone-context": "example.com"}
    assert tel == parse_uri("tel:+1.201.555.0123;phone-context=example.com")
    assert tel != parse_uri("tel:+1-201-555-0124;phone-context=example.com")
    other = parse_uri("soap.beep://192.0.2.103:3002")
    assert isinstance(other, AbsoluteURI)
    assert other.scheme == "soap.beep"


# -- building and changing ----------------------------------------------------------------


def test_replace_builds_a_new_uri_with_escapes_where_needed():
    uri = sip("sip:alice@example.com;transport=udp")
    changed = uri.replace(user="a b@c", port=5080, params={"x": "1;2", "lr": None})
    assert str(changed) == "sip:a%20b%40c@example.com:5080;x=1%3B2;lr"
    again = sip(str(changed))
    assert (again.user, again.port, again.params) == ("a b@c", 5080, {"x": "1;2", "lr": None})
    assert str(uri) == "sip:alice@example.com;transport=udp"  # unchanged


def test_built_uri_round_trips():
    uri = SipURI("[2001:db8::1]", "bob", 5060, "sips", "pw", {"maddr": "[::1]"}, "h=v")
    assert str(uri) == "sips:bob:pw@[2001:db8::1]:5060;maddr=[::1]?h=v"
    assert sip(str(uri)) == uri


def test_unescaped_bytes_that_are_not_utf8_escape_back():
    uri = sip("sip:%ff%00@example.com")
    assert str(uri.replace(port=1)) == "sip:%FF%00@example.com:1"


# -- comparison: RFC 3261 §19.1.4 ---------------------------------------------------------


EQUAL = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
]

NOT_EQUAL = [
    # different usernames
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    # can resolve to different ports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    # can resolve to different transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    # can resolve to different port and transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    # different header component
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    # even though that's what phone21.boxesbybob.com resolves to
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    # equality is not transitive
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_rfc3261_equal_uris(a, b):
    assert sip(a) == sip(b)
    assert sip(b) == sip(a)
    assert hash(sip(a)) == hash(sip(b))


@pytest.mark.parametrize(("a", "b"), NOT_EQUAL)
def test_rfc3261_unequal_uris(a, b):
    assert sip(a) != sip(b)
    assert sip(b) != sip(a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:a@example.com", "sips:a@example.com"),  # SIP and SIPS never match
        ("sip:a:x@example.com", "sip:a:y@example.com"),
        ("sip:a@example.com;user=phone", "sip:a@example.com"),
        ("sip:a@example.com;maddr=192.0.2.1", "sip:a@example.com"),
        ("sip:a@example.com;ttl=1", "sip:a@example.com;ttl=2"),
        ("sip:a@example.com;method=INVITE", "sip:a@example.com"),
    ],
)
def test_more_unequal_uris(a, b):
    assert sip(a) != sip(b)


def test_uris_of_different_kinds_are_unequal():
    assert parse_uri("sip:a@example.com") != parse_uri("tel:+1555")
    assert parse_uri("urn:a") == parse_uri("urn:a")
