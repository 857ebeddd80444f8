"""Parsing, header access, changes and serialisation of whole messages."""

from __future__ import annotations

import pytest

from switch.sip.errors import ParseError
from switch.sip.message import CSeq, Request, Response, make_response, parse_message


def msg(*lines: str, body: bytes = b"", start: str = "INVITE sip:bob@example.com SIP/2.0"):
    head = "\r\n".join([start, *lines]) + "\r\n\r\n"
    return parse_message(head.encode() + body)


BASE = (
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1",
    "Max-Forwards: 70",
    "From: Alice <sip:alice@example.com>;tag=a1",
    "To: <sip:bob@example.com>",
    "Call-ID: c1@192.0.2.1",
    "CSeq: 1 INVITE",
    "Content-Length: 0",
)


def base(**changes: str):
    lines = [line for line in BASE if line.split(":")[0] not in changes]
    lines[-1:-1] = [f"{name}: {value}" for name, value in changes.items() if value]
    return msg(*lines)


# -- parsing --------------------------------------------------------------------------


def test_typed_headers():
    m = base()
    assert isinstance(m, Request)
    assert (m.method, m.uri_text, m.version) == ("INVITE", "sip:bob@example.com", "SIP/2.0")
    assert m.top_via.branch == "z9hG4bK1"
    assert m.top_via.sent_by == ("192.0.2.1", 5060)
    assert m.from_.display == "Alice"
    assert m.from_.tag == "a1"
    assert m.to.tag is None
    assert m.call_id == "c1@192.0.2.1"
    assert m.cseq == CSeq(1, "INVITE")
    assert str(m.cseq) == "1 INVITE"
    assert m.contact == []
    assert m.max_forwards == 70
    assert m.content_type is None


@pytest.mark.parametrize(
    ("compact", "full"),
    [
        ("v", "Via"),
        ("f", "From"),
        ("t", "To"),
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("e", "Content-Encoding"),
        ("k", "Supported"),
        ("s", "Subject"),
        ("o", "Event"),
        ("r", "Refer-To"),
        ("u", "Allow-Events"),
        ("b", "Referred-By"),
        ("x", "Session-Expires"),
    ],
)
def test_compact_forms_are_the_same_header(compact, full):
    value = "0" if full == "Content-Length" else "<sip:x@example.com>"
    m = msg(f"{compact}: {value}", f"{compact.upper()} : {value}", "Content-Length: 0")
    assert m.get(full) == value
    assert m.get(full.lower()) == value
    assert full in m
    assert m.count(full) == 2 + (full == "Content-Length")


def test_compact_and_full_names_read_back_together():
    m = msg("v: SIP/2.0/UDP a.example.com;branch=z9hG4bKa", "Via: SIP/2.0/TCP b.example.com")
    assert [v.host for v in m.via] == ["a.example.com", "b.example.com"]
    assert m.headers()[0] == ("v", "SIP/2.0/UDP a.example.com;branch=z9hG4bKa")


def test_header_names_are_case_insensitive_and_may_have_space_before_colon():
    m = msg("cALL-iD  : x@y", "MAX-forwards:5")
    assert m.call_id == "x@y"
    assert m.max_forwards == 5


def test_folded_lines_read_unfolded_and_serialise_as_sent():
    data = (
        b"OPTIONS sip:a@example.com SIP/2.0\r\n"
        b"Subject: one\r\n two\r\n\tthree\r\n"
        b"X-Long: a,\r\n  b\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    m = parse_message(data)
    assert m.get("Subject") == "one two three"
    assert m.get_all("X-Long") == ["a, b"]
    assert bytes(m) == data
    m.set("Max-Forwards", 70)
    out = bytes(m)
    assert b"Subject: one\r\n two\r\n\tthree\r\n" in out
    assert parse_message(out) == m


def test_continuation_before_any_header_is_an_error():
    with pytest.raises(ParseError, match="continuation"):
        parse_message(b"OPTIONS sip:a@example.com SIP/2.0\r\n folded\r\nTo: x\r\n\r\n")


def test_bare_lf_messages_are_read_and_written_with_crlf():
    data = b"OPTIONS sip:a@example.com SIP/2.0\nTo: <sip:a@example.com>\nContent-Length: 4\n\nbody"
    m = parse_message(data)
    assert m.get("To") == "<sip:a@example.com>"
    assert m.body == b"body"
    assert bytes(m) == (
        b"OPTIONS sip:a@example.com SIP/2.0\r\nTo: <sip:a@example.com>\r\n"
        b"Content-Length: 4\r\n\r\nbody"
    )


def test_bare_lf_head_ends_at_its_own_empty_line():
    # The body's CRLF CRLF must not be taken for the end of the head.
    data = b"MESSAGE sip:a@example.com SIP/2.0\nContent-Length: 8\n\nab\r\n\r\ncd"
    m = parse_message(data)
    assert m.body == b"ab\r\n\r\ncd"


def test_leading_crlfs_are_ignored():
    m = base()
    assert parse_message(b"\r\n\r\n" + bytes(m)) == m


def test_multi_value_headers_split_outside_quotes_and_angle_brackets():
    m = msg(
        'Contact: "Doe, John" <sip:j@example.com;x=1,2>;q=0.5, <sip:k@example.com>',
        "Contact: sip:l@example.com",
        'Route: <sip:p1@example.com;lr>, "a\\",b" <sip:p2@example.com;lr>',
        "Content-Length: 0",
    )
    assert m.get_all("Contact") == [
        '"Doe, John" <sip:j@example.com;x=1,2>;q=0.5',
        "<sip:k@example.com>",
        "sip:l@example.com",
    ]
    assert [c.display for c in m.contact] == ["Doe, John", None, None]
    assert [c.uri.user for c in m.contact] == ["j", "k", "l"]
    assert m.get_all("Route") == ["<sip:p1@example.com;lr>", '"a\\",b" <sip:p2@example.com;lr>']


def test_headers_that_are_not_lists_keep_their_commas():
    m = msg(
        'WWW-Authenticate: Digest realm="a", nonce="b"',
        "Date: Sat, 13 Nov 2010 23:29:00 GMT",
        "Content-Length: 0",
    )
    assert m.get_all("WWW-Authenticate") == ['Digest realm="a", nonce="b"']
    assert m.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]


def test_response_status_line():
    m = parse_message(b"SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(m, Response)
    assert (m.version, m.status, m.reason) == ("SIP/2.0", 486, "Busy Here")
    m = parse_message(b"SIP/2.0 200\r\n\r\n")
    assert (m.status, m.reason) == (200, "")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"OPTIONS sip:a SIP/2.0\r\nTo: x\r\n", "no empty line"),
        (b"OPTIONS sip:a SIP/2.0\r\nNo colon here\r\n\r\n", "without ':'"),
        (b"OPTIONS sip:a SIP/2.0\r\nBad Name: x\r\n\r\n", "header name"),
        (b"OPTIONS sip:a SIP/2.0\r\n: x\r\n\r\n", "header name"),
        (b"SIP/2.0\r\n\r\n", "status line"),
        (b"SIP/2.0 99 Low\r\n\r\n", "status code"),
        (b"SIP/2.0 700 High\r\n\r\n", "status code"),
        (b"SIP/2.0 2OO OK\r\n\r\n", "status code"),
        ("SIP/2.0 ²²² OK\r\n\r\n".encode(), "status code"),
        (b"OPTIONS sip:a SIP/2.0\r\nContent-Length: x\r\n\r\n", "Content-Length"),
        ("OPTIONS sip:a SIP/2.0\r\nl: ²\r\n\r\n".encode(), "Content-Length"),
        (b"OPTIONS sip:a SIP/2.0\r\nl: 99999999999999999999\r\n\r\n", "Content-Length"),
        (b"OPTIONS sip:a SIP/2.0\r\nl: 3\r\n\r\nab", "larger than"),
        (b"OPTIONS sip:a SIP/2.0\r\nl: 1\r\nl: 2\r\n\r\nab", "conflicting"),
    ],
)
def test_structure_errors(data, words):
    with pytest.raises(ParseError, match=words):
        parse_message(data)


def test_content_length_cuts_a_datagram_but_not_a_stream():
    data = b"OPTIONS sip:a SIP/2.0\r\nl: 2\r\n\r\nabcd"
    m = parse_message(data)
    assert m.body == b"ab"
    assert bytes(m) == data[:-2]
    with pytest.raises(ParseError, match="after the body"):
        parse_message(data, datagram=False)


def test_content_length_with_leading_zeros_and_repeated_equal_values():
    m = parse_message(b"OPTIONS sip:a SIP/2.0\r\nl: 002\r\nContent-Length: 002\r\n\r\nab")
    assert m.body == b"ab"


def test_bad_request_line_keeps_the_headers_to_answer_with():
    with pytest.raises(ParseError) as info:
        msg(*BASE, start="OPTIONS  sip:bob@example.com SIP/2.0")
    req = info.value.message
    assert isinstance(req, Request)
    assert req.call_id == "c1@192.0.2.1"
    assert info.value.status == 400


def test_unsupported_version_is_505_with_the_request():
    with pytest.raises(ParseError) as info:
        msg(*BASE, start="OPTIONS sip:bob@example.com SIP/3.0")
    assert info.value.status == 505
    assert isinstance(info.value.message, Request)
    with pytest.raises(ParseError) as info:
        parse_message(b"SIP/3.0 200 OK\r\n\r\n")
    assert info.value.status == 505


def test_invalid_method():
    with pytest.raises(ParseError, match="method"):
        msg(*BASE, start="IN(VITE sip:bob@example.com SIP/2.0")


# -- typed headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [("0", 0), ("70", 70), ("255", 255), ("0068", 68), ("000000000070", 70)]
)
def test_max_forwards(value, expected):
    assert base(**{"Max-Forwards": value}).max_forwards == expected


@pytest.mark.parametrize("value", ["256", "-1", "7O", "²", "1 2", "9" * 5000])
def test_bad_max_forwards(value):
    with pytest.raises(ParseError, match="Max-Forwards"):
        base(**{"Max-Forwards": value}).max_forwards  # noqa: B018


def test_missing_max_forwards_is_none_and_empty_is_an_error():
    assert base(**{"Max-Forwards": ""}).max_forwards is None
    with pytest.raises(ParseError, match="Max-Forwards"):
        msg("Max-Forwards:").max_forwards  # noqa: B018


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1 INVITE", (1, "INVITE")),
        ("0009 INVITE", (9, "INVITE")),
        ("7\tFOO", (7, "FOO")),
        ("2   NEW-METHOD", (2, "NEW-METHOD")),
        # The bound of 2**31 is validate's: the request can then be answered.
        ("36893488147419103232 INVITE", (36893488147419103232, "INVITE")),
    ],
)
def test_cseq(value, expected):
    assert base(CSeq=value).cseq == expected


@pytest.mark.parametrize(
    "value", ["INVITE", "1", "x INVITE", "1 IN VITE", "² INVITE", "9" * 40 + " A"]
)
def test_bad_cseq(value):
    with pytest.raises(ParseError, match="CSeq"):
        base(CSeq=value).cseq  # noqa: B018


def test_single_headers_must_be_single():
    m = msg(*BASE, "To: <sip:carol@example.com>", "Call-ID: other", "CSeq: 2 INVITE")
    for name in ("to", "call_id", "cseq"):
        with pytest.raises(ParseError, match="more than one"):
            getattr(m, name)


def test_missing_headers():
    m = msg("Content-Length: 0")
    for name in ("top_via", "from_", "to", "call_id", "cseq"):
        with pytest.raises(ParseError, match="missing"):
            getattr(m, name)
    assert m.via == [] and m.contact == []


def test_call_id_is_one_word():
    with pytest.raises(ParseError, match="Call-ID"):
        base(**{"Call-ID": "two words"}).call_id  # noqa: B018


def test_from_and_to_cannot_be_wildcards():
    with pytest.raises(ParseError, match="'\\*'"):
        base(To="*").to  # noqa: B018


def test_contact_wildcard_alone_only():
    assert msg("Contact: *").contact[0].wildcard
    with pytest.raises(ParseError, match="combined"):
        msg("Contact: *, <sip:a@example.com>").contact  # noqa: B018


def test_empty_via_list_is_a_parse_error():
    for accessor in ("top_via", "via"):
        m = msg("Via: ,,", "Content-Length: 0")
        value = None
        try:
            value = getattr(m, accessor)
        except ParseError:
            continue
        assert value == []


def test_top_via_of_a_comma_list():
    m = msg("Via: SIP/2.0/UDP a.example.com;branch=z9hG4bKa, SIP/2.0/TCP b.example.com")
    assert m.top_via.host == "a.example.com"
    assert len(m.via) == 2


def test_content_type_is_lowercased_without_parameters():
    m = base(**{"Content-Type": "Application/SDP ; charset=utf-8"})
    assert m.content_type == "application/sdp"


# -- changes -------------------------------------------------------------------------------


def test_set_replaces_every_line_where_the_first_was():
    m = msg("Supported: a", "To: <sip:b@example.com>", "k: b", "Content-Length: 0")
    m.set("Supported", "c")
    assert m.headers() == [
        ("Supported", "c"),
        ("To", "<sip:b@example.com>"),
        ("Content-Length", "0"),
    ]


def test_set_adds_a_missing_header_at_the_end():
    m = base()
    m.set("Subject", "hi")
    assert m.headers()[-1] == ("Subject", "hi")


def test_set_invalidates_the_cached_typed_value():
    m = base()
    assert m.to.tag is None
    m.set("To", "<sip:bob@example.com>;tag=b1")
    assert m.to.tag == "b1"


def test_add_after_the_last_or_before_the_first():
    m = msg("Via: SIP/2.0/UDP a.example.com", "To: x", "Via: SIP/2.0/UDP b.example.com")
    m.add("Via", "SIP/2.0/UDP c.example.com")
    m.add("Via", "SIP/2.0/UDP top.example.com;branch=z9hG4bKt", first=True)
    assert [v.host for v in m.via] == [
        "top.example.com",
        "a.example.com",
        "b.example.com",
        "c.example.com",
    ]
    assert m.top_via.branch == "z9hG4bKt"
    m.add("Route", "<sip:p@example.com;lr>", first=True)
    assert m.headers()[0] == ("Route", "<sip:p@example.com;lr>")


def test_compact_names_given_to_set_are_written_in_full():
    m = base()
    m.set("m", "<sip:alice@192.0.2.1>")
    assert ("Contact", "<sip:alice@192.0.2.1>") in m.headers()


def test_remove():
    m = msg("Supported: a", "k: b", "To: x")
    m.remove("Supported")
    assert m.headers() == [("To", "x")]
    m.remove("Nothing-There")
    assert m.headers() == [("To", "x")]


def test_remove_first_value_of_a_list_header():
    m = msg(
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bKa, SIP/2.0/UDP b.example.com",
        "Via: SIP/2.0/UDP c.example.com",
    )
    assert m.remove_first_value("Via") == "SIP/2.0/UDP a.example.com;branch=z9hG4bKa"
    assert m.top_via.host == "b.example.com"
    assert m.remove_first_value("v") == "SIP/2.0/UDP b.example.com"
    assert [v.host for v in m.via] == ["c.example.com"]
    assert m.remove_first_value("Via") == "SIP/2.0/UDP c.example.com"
    assert m.remove_first_value("Via") is None
    assert "Via" not in m


def test_serialising_a_change_rewrites_only_changed_lines():
    data = (
        b"INVITE sip:bob@example.com SIP/2.0\r\n"
        b"v:   SIP/2.0/UDP a.example.com;branch=z9hG4bKa\r\n"
        b"TO : <sip:bob@example.com>\r\n"
        b"f: <sip:alice@example.com> ;tag=1\r\n"
        b"i: c@x\r\n"
        b"CSeq:  1   INVITE\r\n"
        b"Max-Forwards: 70\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Length: 2\r\n\r\nhi"
    )
    m = parse_message(data)
    assert bytes(m) is bytes(m)  # the received bytes, not a copy
    assert bytes(m) == data
    m.set("Max-Forwards", 69)
    m.add("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp", first=True)
    out = bytes(m)
    assert out.startswith(
        b"INVITE sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp\r\n"
        b"v:   SIP/2.0/UDP a.example.com;branch=z9hG4bKa\r\n"
        b"TO : <sip:bob@example.com>\r\n"
        b"f: <sip:alice@example.com> ;tag=1\r\n"
        b"i: c@x\r\n"
        b"CSeq:  1   INVITE\r\n"
        b"Max-Forwards: 69\r\n"
    )
    assert parse_message(out) == m


def test_set_body_keeps_content_length_true():
    m = base()
    m.set_body(b"v=0\r\n", "application/sdp")
    out = bytes(m)
    assert b"Content-Length: 5\r\n" in out
    assert b"Content-Type: application/sdp\r\n" in out
    assert parse_message(out).body == b"v=0\r\n"


def test_serialising_adds_a_missing_content_length_and_removes_extra_ones():
    m = parse_message(b"OPTIONS sip:a SIP/2.0\r\nTo: x\r\n\r\n")
    m.body = b"abc"
    assert bytes(m).endswith(b"Content-Length: 3\r\n\r\nabc")
    m = parse_message(b"OPTIONS sip:a SIP/2.0\r\nl: 0\r\nContent-Length: 0\r\n\r\n")
    m.set("To", "x")
    assert bytes(m).count(b"Content-Length") == 1


def test_uri_setter():
    m = base()
    m.uri = m.uri.replace(user="carol")
    assert bytes(m).startswith(b"INVITE sip:carol@example.com SIP/2.0\r\n")


def test_built_request_and_response():
    req = Request(
        "OPTIONS",
        "sip:bob@example.com",
        [("Via", "SIP/2.0/TCP h.example.com;branch=z9hG4bKx"), ("Max-Forwards", 70)],
    )
    assert bytes(req) == (
        b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP h.example.com;branch=z9hG4bKx\r\n"
        b"Max-Forwards: 70\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert parse_message(bytes(req)) == req
    resp = Response(404)
    assert resp.reason == "Not Found"
    assert bytes(resp) == b"SIP/2.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def test_equality_is_by_content():
    assert base() == base()
    assert base() != base(CSeq="2 INVITE")
    assert base() != parse_message(b"SIP/2.0 200 OK\r\n\r\n")


# -- make_response -----------------------------------------------------------------------


REQUEST = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP p.example;branch=z9hG4bKp, SIP/2.0/UDP a.example;branch=z9hG4bKa\r\n"
    b"Via: SIP/2.0/UDP c.example.com;branch=z9hG4bKc\r\n"
    b"Record-Route: <sip:p.example.com;lr>\r\n"
    b"Max-Forwards: 69\r\n"
    b"f: Alice <sip:alice@example.com>;tag=a1\r\n"
    b"To:   <sip:bob@example.com>\r\n"
    b"Call-ID: c1@a.example.com\r\n"
    b"CSeq: 5 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.1>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_make_response_copies_the_lines_as_written():
    req = parse_message(REQUEST)
    resp = make_response(req, 180, to_tag="b2")
    assert bytes(resp) == (
        b"SIP/2.0 180 Ringing\r\n"
        b"v: SIP/2.0/UDP p.example;branch=z9hG4bKp, SIP/2.0/UDP a.example;branch=z9hG4bKa\r\n"
        b"Via: SIP/2.0/UDP c.example.com;branch=z9hG4bKc\r\n"
        b"Record-Route: <sip:p.example.com;lr>\r\n"
        b"f: Alice <sip:alice@example.com>;tag=a1\r\n"
        b"To: <sip:bob@example.com>;tag=b2\r\n"
        b"Call-ID: c1@a.example.com\r\n"
        b"CSeq: 5 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert resp.to.tag == "b2"
    assert resp.cseq == (5, "INVITE")
    assert [v.host for v in resp.via] == ["p.example", "a.example", "c.example.com"]


@pytest.mark.parametrize(("status", "record_route"), [(100, False), (200, True), (486, False)])
def test_make_response_copies_record_route_only_for_dialogs(status, record_route):
    resp = make_response(parse_message(REQUEST), status)
    assert ("Record-Route" in resp) is record_route


def test_make_response_keeps_an_existing_to_tag_and_adds_headers_and_body():
    req = parse_message(REQUEST.replace(b"To:   <sip:bob@example.com>", b"To: <sip:b@x>;tag=t0"))
    resp = make_response(
        req, 200, "Fine", to_tag="new", headers=[("Contact", "<sip:b@192.0.2.2>")], body=b"x"
    )
    assert (resp.status, resp.reason) == (200, "Fine")
    assert resp.to.tag == "t0"
    assert resp.contact[0].uri.host == "192.0.2.2"
    assert resp.body == b"x"
    assert parse_message(bytes(resp)) == resp
