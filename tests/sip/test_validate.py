"""The UAS checks of switch.sip.validate, rule by rule."""

from __future__ import annotations

import pytest

from switch.sip.message import Request, Response, parse_message
from switch.sip.validate import Rejection, can_answer, check_request, check_response

HEADERS = {
    "Via": "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9",
    "Max-Forwards": "70",
    "From": "Alice <sip:alice@example.com>;tag=9fxced76sl",
    "To": "Bob <sip:bob@example.com>",
    "Call-ID": "3848276298220188511@192.0.2.1",
    "CSeq": "1 INVITE",
}


def request(
    start: str = "INVITE sip:bob@example.com SIP/2.0",
    *,
    drop: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
    body: bytes = b"",
    **changes: str,
) -> Request:
    """A good INVITE, changed: keyword names use _ for - (Call_ID=...)."""
    headers = dict(HEADERS)
    for name, value in changes.items():
        headers[name.replace("_", "-")] = value
    lines = [start, *(f"{k}: {v}" for k, v in headers.items() if k not in drop), *extra]
    lines.append(f"Content-Length: {len(body)}")
    msg = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    assert isinstance(msg, Request)
    return msg


def reason(req: Request, supported: frozenset[str] = frozenset()) -> str | None:
    rejection = check_request(req, supported)
    return None if rejection is None else rejection.reason


def test_a_good_request_passes():
    assert check_request(request()) is None
    assert can_answer(request())


@pytest.mark.parametrize(
    "uri", ["sip:bob@example.com", "sips:bob@example.com", "tel:+15551234567", "SIP:bob@b"]
)
def test_schemes_served(uri):
    assert check_request(request(f"INVITE {uri} SIP/2.0")) is None


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [("http://example.com/", "http"), ("urn:service:sos", "urn"), ("mailto:a@b", "mailto")],
)
def test_other_schemes_get_416(uri, scheme):
    assert check_request(request(f"INVITE {uri} SIP/2.0")) == Rejection(
        416, f"Unsupported URI Scheme ({scheme})"
    )


@pytest.mark.parametrize("uri", ["<sip:bob@example.com>", "sip:bob@[::1", "sip:", "sip:b@h:99999"])
def test_unparseable_request_uri_gets_400(uri):
    assert reason(request(f"INVITE {uri} SIP/2.0")) == "Bad Request (malformed Request-URI)"


def test_request_uri_with_headers_gets_400():
    req = request("INVITE sip:bob@example.com?Subject=hi SIP/2.0")
    assert reason(req) == "Bad Request (Request-URI has headers)"


def test_version_other_than_2_0_gets_505():
    req = Request("OPTIONS", "sip:bob@example.com", HEADERS.items(), version="SIP/3.0")
    assert check_request(req) == Rejection(505, "Version Not Supported")


@pytest.mark.parametrize("name", ["To", "From", "Call-ID", "CSeq", "Via", "Max-Forwards"])
def test_required_headers(name):
    assert reason(request(drop=(name,))) == f"Bad Request (missing {name} header)"


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("To: <sip:carol@example.com>", "To"),
        ("f: <sip:carol@example.com>;tag=2", "From"),
        ("i: other@192.0.2.1", "Call-ID"),
        ("CSeq: 1 INVITE", "CSeq"),
        ("Max-Forwards: 70", "Max-Forwards"),
        ("l: 0", "Content-Length"),
        ("Content-Type: application/sdp", "Content-Type"),
    ],
)
def test_single_headers(line, name):
    extra = (line, "Content-Type: text/plain") if name == "Content-Type" else (line,)
    assert reason(request(extra=extra)) == f"Bad Request (more than one {name} header)"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"Via": "SIP/2.0/UDP"}, "malformed Via"),
        ({"Via": "SIP/2.0/UDP 192.0.2.1;;,;,,"}, "malformed Via"),  # RFC 4475 badinv01
        ({"Via": ",,"}, "empty Via"),
        ({"Via": "SIP/3.0/UDP 192.0.2.1;branch=z9hG4bKa"}, "Via protocol is not SIP/2.0"),
        ({"Via": "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK"}, "Via branch has no transaction id"),
        ({"From": '"Mr. J. User <sip:j@example.com>'}, "malformed From"),
        ({"From": "*"}, "malformed From"),
        ({"From": "<sip:a@[::1>"}, "malformed From"),
        ({"To": "Watson, Thomas <sip:t.watson@example.org>"}, "malformed To"),
        ({"Call_ID": "two words"}, "malformed Call-ID"),
        ({"CSeq": "one INVITE"}, "malformed CSeq"),
        ({"CSeq": "2147483648 INVITE"}, "CSeq number is larger than 2**31-1"),
        ({"CSeq": "1 BYE"}, "CSeq method does not match"),
        ({"CSeq": "1 invite"}, "CSeq method does not match"),
        ({"Max_Forwards": "256"}, "Max-Forwards is not a number from 0 to 255"),
        ({"Max_Forwards": "many"}, "Max-Forwards is not a number from 0 to 255"),
    ],
)
def test_header_problems_get_400_naming_them(changes, problem):
    assert reason(request(**changes)) == f"Bad Request ({problem})"


def test_later_vias_must_parse_too():
    req = request(extra=("Via: SIP/2.0/UDP [::1",))
    assert reason(req) == "Bad Request (malformed Via)"


@pytest.mark.parametrize(("cseq", "ok"), [("2147483647 INVITE", True), ("0 INVITE", True)])
def test_cseq_bounds(cseq, ok):
    assert (check_request(request(CSeq=cseq)) is None) is ok


def test_max_forwards_zero_is_served():
    assert check_request(request(Max_Forwards="0")) is None


@pytest.mark.parametrize(
    ("start", "cseq", "contact", "expires", "problem"),
    [
        ("REGISTER sip:example.com", "1 REGISTER", "*", "0", None),
        ("REGISTER sip:example.com", "1 REGISTER", "*", "000", None),
        ("REGISTER sip:example.com", "1 REGISTER", "*", "", "Contact '*' needs Expires: 0"),
        ("REGISTER sip:example.com", "1 REGISTER", "*", "3600", "Contact '*' needs Expires: 0"),
        ("INVITE sip:bob@example.com", "1 INVITE", "*", "0", "Contact '*' outside REGISTER"),
        ("REGISTER sip:example.com", "1 REGISTER", "*, <sip:a@b>", "0", "malformed Contact"),
        ("INVITE sip:bob@example.com", "1 INVITE", "<sip:a@[::1>", "", "malformed Contact"),
        ("INVITE sip:bob@example.com", "1 INVITE", "sip:a@b?x=y", "", "malformed Contact"),
        ("INVITE sip:bob@example.com", "1 INVITE", "<sip:a@192.0.2.1>, <tel:+1>", "", None),
    ],
)
def test_contact(start, cseq, contact, expires, problem):
    extra = ("Contact: " + contact, *((f"Expires: {expires}",) if expires else ()))
    req = request(f"{start} SIP/2.0", CSeq=cseq, extra=extra)
    assert reason(req) == (None if problem is None else f"Bad Request ({problem})")


def test_require_with_unknown_options_gets_420_listing_them():
    req = request(extra=("Require: 100rel, foo", "Require: bar", "Proxy-Require: baz"))
    assert check_request(req, frozenset({"100rel"})) == Rejection(
        420, "Bad Extension", (("Unsupported", "foo, bar"),)
    )
    assert check_request(req, frozenset({"100REL", "Foo", "bar"})) is None


@pytest.mark.parametrize("method", ["ACK", "CANCEL"])
def test_ack_and_cancel_are_never_refused_for_require(method):
    req = request(
        f"{method} sip:bob@example.com SIP/2.0", CSeq=f"1 {method}", extra=("Require: x",)
    )
    assert check_request(req) is None


def test_content_encoding():
    sdp = b"v=0\r\n"
    plain = ("Content-Type: application/sdp",)
    assert check_request(request(body=sdp, extra=(*plain, "Content-Encoding: identity"))) is None
    assert check_request(request(body=sdp, extra=(*plain, "e: gzip"))) == Rejection(
        415, "Unsupported Media Type (Content-Encoding gzip)", (("Accept-Encoding", "identity"),)
    )
    # No body, nothing to decode.
    assert check_request(request(extra=("Content-Encoding: gzip",))) is None


def test_body_needs_a_content_type():
    assert reason(request(body=b"hello")) == "Bad Request (body without Content-Type)"


def test_media_types_when_the_caller_gives_them():
    req = request(body=b"<x/>", extra=("Content-Type: Application/Unknown; a=b",))
    assert check_request(req) is None
    assert check_request(req, media_types=frozenset({"application/sdp"})) == Rejection(
        415, "Unsupported Media Type (application/unknown)", (("Accept", "application/sdp"),)
    )
    assert check_request(req, media_types=frozenset({"application/unknown"})) is None


def test_the_first_problem_is_reported():
    req = request("INVITE http://x SIP/2.0", drop=("To",), CSeq="1 BYE")
    assert check_request(req) == Rejection(416, "Unsupported URI Scheme (http)")


def test_reasons_are_short_single_lines():
    for req in (request(drop=("CSeq",)), request(Via="x" * 5000), request(CSeq="9" * 30 + " A")):
        rejection = check_request(req)
        assert rejection is not None
        assert len(rejection.reason) < 80
        assert "\r" not in rejection.reason and "\n" not in rejection.reason


# -- can_answer ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["From", "To", "Call-ID", "CSeq", "Via"])
def test_cannot_answer_without_the_headers_a_response_copies(name):
    assert not can_answer(request(drop=(name,)))


@pytest.mark.parametrize(
    ("changes", "answerable"),
    [
        ({"Via": "garbage"}, False),  # no one to send it to
        ({"CSeq": "x INVITE"}, False),
        ({"CSeq": "99999999999 INVITE"}, True),  # read, then refused with 400
        ({"To": '"unterminated <sip:a@b>'}, True),  # copied as text
        ({"Call_ID": "two words"}, True),
        ({"Max_Forwards": "300"}, True),
    ],
)
def test_can_answer(changes, answerable):
    assert can_answer(request(**changes)) is answerable


# -- check_response -------------------------------------------------------------------------


def response(*lines: str, start: str = "SIP/2.0 200 OK") -> Response:
    base = [
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9",
        "From: <sip:alice@example.com>;tag=1",
        "To: <sip:bob@example.com>;tag=2",
        "Call-ID: c@x",
        "CSeq: 1 INVITE",
    ]
    names = {line.split(":")[0] for line in lines}
    kept = [line for line in base if line.split(":")[0] not in names]
    text = "\r\n".join([start, *kept, *(line for line in lines if not line.endswith(": -"))])
    msg = parse_message((text + "\r\nContent-Length: 0\r\n\r\n").encode())
    assert isinstance(msg, Response)
    return msg


def test_a_good_response_passes():
    assert check_response(response()) is None


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (("Via: -",), "missing Via header"),
        (("CSeq: -",), "missing CSeq header"),
        (("Call-ID: -",), "missing Call-ID header"),
        (("Via: SIP/2.0/UDP a;branch=z9hG4bKa, SIP/2.0/UDP b;branch=z9hG4bKb",), "2 Via values"),
        (("Via: nonsense",), "Via"),
        (("CSeq: 4294967296 INVITE",), "CSeq number is larger than 2**31-1"),
        (("CSeq: INVITE",), "CSeq"),
        (("From: <sip:a",), "missing '>'"),
        (("To: *",), "To cannot be '*'"),
    ],
)
def test_responses_dropped(lines, problem):
    found = check_response(response(*lines))
    assert found is not None
    assert problem in found


def test_response_with_another_version_is_dropped():
    resp = Response(200, headers=[("Via", "SIP/2.0/UDP a;branch=z9hG4bKa")], version="SIP/3.0")
    assert "version" in (check_response(resp) or "")
