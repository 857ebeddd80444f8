"""The SIP torture tests of RFC 4475 and RFC 5118, message by message.

Where the bytes come from:

- RFC 4475: decoded from the RFC's Appendix A, "an encoded, gzip-compressed
  TAR archive" that the RFC calls the bit-exact form of every message (the
  gzip CRC checked out). Its test.dat belongs to no section and is left out.
  The archive differs from the rendered text in two places, and the archive
  is kept as it is: baddn.sip ends without the empty line after its headers,
  and trws.sip's Via says "host1.examle.com".
- RFC 5118: typed from the message text of §4 with CRLF line ends (its own
  archive has bare LFs). The printed Content-Length of three messages matches
  neither line ending (ipv6-in-sdp 268, mult-ip-in-sdp 181, ipv4-mapped-ipv6
  236); those files carry the true length of their body (251, 189, 245), as
  the RFC says the messages are well formed.

Each test states what the RFC expects, and what this UAS does where the RFC
leaves the choice open.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from switch.sip.errors import ParseError
from switch.sip.message import Request, Response, parse_message
from switch.sip.uri import SipURI, parse_uri
from switch.sip.validate import Rejection, can_answer, check_request, check_response

TORTURE = Path(__file__).parent / "torture"

RFC4475 = {
    # §3.1.1 valid
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
    "semiuri", "transports", "mpart01", "unreason", "noreason",
    # §3.1.2 invalid
    "badinv01", "clerr", "ncl", "scalar02", "scalarlg", "quotbal", "ltgtruri", "lwsruri",
    "lwsstart", "trws", "escruri", "baddate", "regbadct", "badaspec", "baddn", "badvers",
    "mismatch01", "mismatch02", "bigcode",
    # §3.2 transaction layer
    "badbranch",
    # §3.3 application layer
    "insuf", "unkscm", "novelsc", "unksm2", "bext01", "invut", "regaut01", "multi01",
    "mcl01", "bcast", "zeromf", "cparam01", "cparam02", "regescrt", "sdp01",
    # §3.4 backward compatibility
    "inv2543",
}  # fmt: skip
RFC5118 = {
    "ipv6-good", "ipv6-bad", "port-ambiguous", "port-unambiguous",
    "via-received-param-with-delim", "via-received-param-no-delim", "ipv6-in-sdp",
    "mult-ip-in-header", "mult-ip-in-sdp", "ipv4-mapped-ipv6", "ipv6-bug-abnf-3-colons",
    "ipv6-correct-abnf-2-colons",
}  # fmt: skip

# Messages that parse, and what check_request / check_response make of them:
# None means accepted, a number the status of the rejection, "drop" a
# response dropped. Comments give the RFC's expectation where it is a choice.
OUTCOMES: dict[str, int | str | None] = {
    "wsinv": None,
    "intmeth": None,  # unknown method: the application answers 501
    "esc01": None,
    "escnull": None,
    "esc02": None,  # unknown method: the application answers 501
    "lwsdisp": None,
    "longreq": None,
    "dblreq": None,
    "semiuri": None,
    "transports": None,
    "mpart01": None,
    "unreason": None,
    "noreason": None,
    "badinv01": 400,
    "scalar02": 400,
    "scalarlg": "drop",
    "quotbal": 400,
    "ltgtruri": 400,
    "escruri": 400,  # "acceptable to reject ... with a 400": we do
    "baddate": None,  # the Date is never read, so it is never wrong
    "regbadct": 400,
    "badaspec": 400,
    "mismatch01": 400,
    "mismatch02": 400,  # 501 preferred, 400 acceptable: the CSeq is checked first
    "badbranch": 400,  # "could reject the request with a 400": we do
    "insuf": 400,
    "unkscm": 416,
    "novelsc": 416,
    "unksm2": None,  # a registrar refuses the non-SIP To; the UAS core does not
    "bext01": 420,
    "invut": None,  # 415 when the caller passes media_types (test_invut)
    "regaut01": None,
    "multi01": 400,
    "bcast": "drop",
    "zeromf": None,  # a UAS serves Max-Forwards: 0
    "cparam01": None,
    "cparam02": None,
    "regescrt": None,
    "sdp01": None,  # 406/400 for the Accept is the application's choice
    "inv2543": 400,  # RFC 2543 syntax: this UAS requires Max-Forwards
    "ipv6-good": None,
    "ipv6-bad": 400,
    "port-ambiguous": None,
    "port-unambiguous": None,
    "via-received-param-with-delim": None,
    "via-received-param-no-delim": None,
    "ipv6-in-sdp": None,
    "mult-ip-in-header": None,
    "mult-ip-in-sdp": None,
    "ipv4-mapped-ipv6": None,
    "ipv6-bug-abnf-3-colons": None,  # RFC 5118 §4.10: tolerated
    "ipv6-correct-abnf-2-colons": None,
}

# Messages the parser itself refuses, with the status a UAS answers.
UNPARSEABLE = {
    "clerr": 400,  # Content-Length larger than the datagram
    "ncl": 400,  # negative Content-Length
    "lwsruri": 400,  # LWS inside the Request-URI
    "lwsstart": 400,  # several SP between request-line elements
    "trws": 400,  # SP after SIP/2.0
    "baddn": 400,  # (the archive's copy has no empty line: see test_baddn)
    "badvers": 505,
    "bigcode": 400,  # a response: dropped
    "mcl01": 400,  # conflicting Content-Length values
}


def load(name: str) -> bytes:
    return (TORTURE / f"{name}.sip").read_bytes()


def parse(name: str) -> Request | Response:
    return parse_message(load(name))


def outcome(msg: Request | Response) -> int | str | None:
    if isinstance(msg, Response):
        return None if check_response(msg) is None else "drop"
    rejection = check_request(msg)
    return None if rejection is None else rejection.status


def test_corpus_holds_every_message_of_both_rfcs():
    files = {path.stem for path in TORTURE.glob("*.sip")}
    assert files == RFC4475 | RFC5118
    assert len(RFC4475) == 49 and len(RFC5118) == 12
    assert set(OUTCOMES) | set(UNPARSEABLE) == files
    assert not set(OUTCOMES) & set(UNPARSEABLE)


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_outcome(name):
    assert outcome(parse(name)) == OUTCOMES[name]


@pytest.mark.parametrize("name", sorted(UNPARSEABLE))
def test_unparseable(name):
    with pytest.raises(ParseError) as info:
        parse(name)
    assert info.value.status == UNPARSEABLE[name]


@pytest.mark.parametrize("name", sorted(set(OUTCOMES) - {"dblreq"}))
def test_unchanged_message_serialises_to_its_own_bytes(name):
    assert bytes(parse(name)) == load(name)


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_changed_message_parses_back_equal(name):
    msg = parse(name)
    msg.add("Via", "SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKtorture", first=True)
    msg.set("X-Torture", "changed")
    again = parse_message(bytes(msg))
    assert again == msg
    assert again.top_via.branch == "z9hG4bKtorture"


def test_every_typed_accessor_raises_only_parse_error():
    accessors = ("top_via", "via", "from_", "to", "call_id", "cseq", "contact", "max_forwards")
    for name in sorted(OUTCOMES):
        msg = parse(name)
        for accessor in (*accessors, "uri") if isinstance(msg, Request) else accessors:
            try:
                getattr(msg, accessor)
            except ParseError:
                pass


# -- §3.1.1 valid messages ----------------------------------------------------------


def test_wsinv():
    msg = parse("wsinv")
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert msg.uri.params == {"unknownparam": None}
    assert msg.to.display is None
    assert msg.to.tag == "1918181833n"
    assert str(msg.to.uri) == "sip:vivekg@chair-dnrc.example.com"
    assert msg.from_.display == 'J Rosenberg \\"'
    assert msg.from_.tag == "98asjd8"
    assert msg.max_forwards == 68  # leading zeros
    assert msg.cseq == (9, "INVITE")  # leading zeros, folded
    assert msg.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert msg.get("Subject") == ""
    assert msg.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    vias = msg.via
    assert [(v.transport, v.host, v.port, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", None, "390skdjuw"),
        ("TCP", "spindle.example.com", None, "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", None, "z9hG4bK30239"),
    ]
    assert msg.top_via == vias[0]
    (contact,) = msg.contact
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert contact.uri == parse_uri("sip:jdrosen@example.com")
    assert msg.content_type == "application/sdp"
    assert len(msg.body) == 150


def test_intmeth():
    msg = parse("intmeth")
    assert isinstance(msg, Request)
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = msg.uri
    assert isinstance(uri, SipURI)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert msg.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert msg.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_.display == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.from_.params["fromparam''~+*_!.-%"] == '"работающий"'
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.cseq == (139122385, msg.method)
    assert msg.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_unescapes_uri_parts():
    msg = parse("esc01")
    assert msg.uri.user == "sips:user@example.com"
    assert msg.uri.host == "example.net"
    assert msg.to.uri.user == "user"
    assert msg.from_.uri.user == "I have spaces"
    contact = msg.contact[0].uri
    assert contact.user == "caller"
    assert contact.lr
    # Never unescaped twice: %25%34%31 is "%41", not "A".
    assert contact.params["name"] == "value%41"
    assert contact == parse_uri("sip:caller@host5.example.net;lr;name=value%2541")


def test_escnull_keeps_the_nulls():
    msg = parse("escnull")
    assert msg.to.uri.user == "null-\x00-null"
    first, second = msg.contact
    assert first.uri.user == "\x00"
    assert second.uri.user == "\x00\x00"
    assert first.uri != second.uri  # two distinct bindings


def test_esc02_percent_that_is_not_an_escape():
    msg = parse("esc02")
    assert msg.method == "RE%47IST%45R"  # not REGISTER
    assert msg.to.display == "%Z%45"
    assert len(msg.contact) == 2  # C%6Fntact is another header
    assert msg.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert msg.top_via.branch == "z9hG4bK209%fzsnel234"


def test_lwsdisp():
    assert parse("lwsdisp").from_.display == "caller"


def test_longreq():
    msg = parse("longreq")
    assert msg.to.display == "I have a user name of " + "extreme" * 10 + " proportion"
    assert msg.to.uri.port == 6000
    assert msg.to.uri.params["unknownparam1"] == "very" + "long" * 20 + "value"
    assert msg.from_.tag == "12" + "982" * 50 + "424"
    assert msg.call_id == "longreq.one" + "really" * 20 + "longcallid"
    assert len(msg.via) == 34
    assert msg.via[-1].branch == "very" + "long" * 50 + "branchvalue"
    assert msg.contact[0].uri.user == "amazinglylongcallername" * 5


def test_dblreq_ignores_octets_after_the_body():
    data = load("dblreq")
    msg = parse_message(data)
    assert msg.method == "REGISTER"
    assert msg.body == b""
    # The archive puts one more CRLF before the INVITE: noise too.
    assert bytes(msg) == data[: data.index(b"\r\n\r\n") + 4]
    assert data[len(bytes(msg)) :].startswith(b"\r\nINVITE sip:joe@example.com SIP/2.0")


def test_semiuri():
    assert parse("semiuri").uri.user == "user;par=u@example.net"


def test_transports():
    msg = parse("transports")
    assert [v.transport for v in msg.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert msg.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_mpart01_frames_a_binary_body():
    msg = parse("mpart01")
    assert msg.content_type == "multipart/mixed"
    assert len(msg.body) == 553
    assert b"\x00" in msg.body
    assert msg.body.endswith(b"--7a9cbec02ceef655--\r\n")


def test_unreason_and_noreason():
    unreason = parse("unreason")
    assert isinstance(unreason, Response)
    assert unreason.status == 200
    assert unreason.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    noreason = parse("noreason")
    assert isinstance(noreason, Response)
    assert (noreason.status, noreason.reason) == (100, "")


# -- §3.1.2 invalid messages ----------------------------------------------------------


def rejection(name: str) -> Rejection:
    msg = parse(name)
    assert isinstance(msg, Request)
    found = check_request(msg)
    assert found is not None
    return found


def test_badinv01_extra_separators():
    assert rejection("badinv01").reason == "Bad Request (malformed Via)"
    with pytest.raises(ParseError):
        parse("badinv01").contact  # noqa: B018
    # The top Via does not parse: no one to send a 400 to.
    assert not can_answer(parse("badinv01"))


def test_clerr_over_a_stream_waits_for_more():
    with pytest.raises(ParseError, match="larger than"):
        parse_message(load("clerr"), datagram=False)


def test_scalar02_names_the_cseq():
    assert "CSeq" in rejection("scalar02").reason
    assert can_answer(parse("scalar02"))


def test_scalarlg_response_is_dropped():
    assert "CSeq" in (check_response(parse("scalarlg")) or "")


def test_quotbal_ltgtruri_regbadct_badaspec():
    assert rejection("quotbal").reason == "Bad Request (malformed To)"
    assert rejection("ltgtruri").reason == "Bad Request (malformed Request-URI)"
    assert rejection("regbadct").reason == "Bad Request (malformed Contact)"
    assert rejection("badaspec").reason == "Bad Request (malformed To)"


@pytest.mark.parametrize("name", ["lwsruri", "lwsstart", "trws", "badvers"])
def test_bad_request_line_still_answered(name):
    with pytest.raises(ParseError) as info:
        parse(name)
    req = info.value.message
    assert isinstance(req, Request)
    assert can_answer(req)


def test_escruri_headers_in_request_uri():
    assert rejection("escruri").reason == "Bad Request (Request-URI has headers)"


def test_baddate_is_not_read():
    assert parse("baddate").get("Date") == "Fri, 01 Jan 2010 16:00:00 EST"


def test_baddn():
    with pytest.raises(ParseError, match="no empty line"):
        parse("baddn")
    # With the empty line the RFC's text shows, the display names are refused.
    msg = parse_message(load("baddn") + b"\r\n")
    for accessor in ("from_", "to"):
        with pytest.raises(ParseError, match="display name"):
            getattr(msg, accessor)
    assert check_request(msg) == Rejection(400, "Bad Request (malformed From)")


def test_badvers_gets_505():
    with pytest.raises(ParseError) as info:
        parse("badvers")
    assert info.value.status == 505
    req = info.value.message
    assert isinstance(req, Request)
    assert check_request(req) == Rejection(505, "Version Not Supported")


def test_mismatch():
    assert rejection("mismatch01").reason == "Bad Request (CSeq method does not match)"
    assert rejection("mismatch02").reason == "Bad Request (CSeq method does not match)"


def test_bigcode():
    with pytest.raises(ParseError, match="status code"):
        parse("bigcode")


# -- §3.2 and §3.3 ---------------------------------------------------------------------


def test_badbranch():
    msg = parse("badbranch")
    assert msg.top_via.branch == "z9hG4bK"
    assert rejection("badbranch").reason == "Bad Request (Via branch has no transaction id)"


def test_insuf_cannot_be_answered():
    assert rejection("insuf").reason == "Bad Request (missing To header)"
    assert not can_answer(parse("insuf"))


def test_unknown_schemes():
    assert rejection("unkscm") == Rejection(416, "Unsupported URI Scheme (nobodyknowsthisscheme)")
    assert rejection("novelsc") == Rejection(416, "Unsupported URI Scheme (soap.beep)")
    msg = parse("unksm2")
    assert msg.to.uri.scheme == "isbn"
    assert msg.from_.uri.scheme == "http"
    assert msg.contact[0].uri.scheme == "name"


def test_bext01_lists_the_unsupported_options():
    assert rejection("bext01") == Rejection(
        420,
        "Bad Extension",
        (("Unsupported", "nothingSupportsThis, nothingSupportsThisEither"),),
    )
    # Proxy-Require is for proxies; a UAS does not look at it.
    assert (
        check_request(
            parse("bext01"), frozenset({"nothingsupportsthis", "nothingSupportsThisEither"})
        )
        is None
    )


def test_invut():
    msg = parse("invut")
    assert check_request(msg, media_types=frozenset({"application/sdp"})) == Rejection(
        415, "Unsupported Media Type (application/unknownformat)", (("Accept", "application/sdp"),)
    )


def test_regaut01():
    assert parse("regaut01").get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"


def test_multi01():
    assert rejection("multi01").reason == "Bad Request (more than one To header)"
    # Two CSeq values: the transaction cannot be told; dropped, not answered.
    assert not can_answer(parse("multi01"))


def test_bcast_response_dropped():
    assert check_response(parse("bcast")) == "2 Via values (a UAC expects one)"


def test_zeromf():
    assert parse("zeromf").max_forwards == 0


def test_contact_params_belong_where_written():
    (cparam01,) = parse("cparam01").contact
    assert cparam01.params == {"unknownparam": None}
    assert cparam01.uri.params == {}
    (cparam02,) = parse("cparam02").contact
    assert cparam02.params == {}
    assert cparam02.uri.params == {"unknownparam": None}


def test_regescrt_keeps_the_escaped_route():
    (contact,) = parse("regescrt").contact
    assert contact.uri.headers == "Route=%3Csip:sip.example.com%3E"
    assert str(contact.uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def test_mcl01():
    with pytest.raises(ParseError, match="conflicting Content-Length"):
        parse("mcl01")


def test_inv2543():
    msg = parse("inv2543")
    assert msg.max_forwards is None
    assert msg.top_via.branch is None
    assert msg.from_.tag is None
    assert len(msg.body) == 105  # no Content-Length: the rest of the datagram
    assert rejection("inv2543").reason == "Bad Request (missing Max-Forwards header)"


# -- RFC 5118 -----------------------------------------------------------------------------


def test_ipv6_good():
    msg = parse("ipv6-good")
    assert (msg.uri.host, msg.uri.port) == ("[2001:db8::10]", None)
    assert (msg.top_via.host, msg.top_via.port) == ("[2001:db8::9:1]", None)
    assert msg.contact[0].uri.host == "[2001:db8::1]"


def test_ipv6_bad():
    with pytest.raises(ParseError, match="brackets"):
        parse("ipv6-bad").uri  # noqa: B018


def test_port_ambiguous_is_all_address():
    msg = parse("port-ambiguous")
    assert (msg.uri.host, msg.uri.port) == ("[2001:db8::10:5070]", None)


def test_port_unambiguous():
    msg = parse("port-unambiguous")
    assert (msg.uri.host, msg.uri.port) == ("[2001:db8::10]", 5070)


def test_via_received_with_and_without_brackets():
    assert parse("via-received-param-with-delim").top_via.received == "[2001:db8::9:255]"
    via = parse("via-received-param-no-delim").top_via
    assert via.received == "2001:db8::9:255"
    assert via.branch == "z9hG4bKas3"


@pytest.mark.parametrize("name", ["ipv6-in-sdp", "mult-ip-in-sdp", "ipv4-mapped-ipv6"])
def test_sdp_bodies_are_framed(name):
    msg = parse(name)
    assert msg.content_type == "application/sdp"
    assert msg.body.startswith(b"v=0\r\n")
    assert msg.body.endswith(b"a=rtpmap:107 H263-1998/90000\r\n")


def test_mult_ip_in_header():
    vias = parse("mult-ip-in-header").via
    assert [(v.transport, v.host, v.port) for v in vias] == [
        ("UDP", "[2001:db8::9:1]", 6050),
        ("UDP", "192.0.2.1", None),
        ("TCP", "[2001:db8::9:255]", None),
    ]
    assert vias[2].received == "192.0.2.200"


def test_ipv4_mapped_ipv6():
    msg = parse("ipv4-mapped-ipv6")
    assert [(v.host, v.port) for v in msg.via] == [
        ("[::ffff:192.0.2.10]", 19823),
        ("[::ffff:192.0.2.2]", None),
    ]
    assert msg.contact[0].uri.host == "[::ffff:192.0.2.2]"


def test_three_colon_reference_is_tolerated_as_the_two_colon_one():
    bug = parse("ipv6-bug-abnf-3-colons")
    good = parse("ipv6-correct-abnf-2-colons")
    assert bug.uri.host == "[2001:db8:::192.0.2.1]"  # kept as written
    assert bug.uri == good.uri
    assert bug.to.uri == good.to.uri
