"""Properties of the SIP parser, checked with Hypothesis.

1. Messages built from valid grammar pieces serialise to bytes that parse back
   to an equal message, with every typed header reading back what was built.
2. Nothing a peer can send makes the parser, a typed accessor or the UAS
   checks raise anything but ParseError: arbitrary bytes, SIP-shaped noise,
   and the torture corpus with bytes flipped, inserted and deleted.
3. Whatever the parser accepts, changed and serialised, parses back equal.
"""

from __future__ import annotations

import string
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switch.sip.address import Address, parse_address
from switch.sip.errors import ParseError
from switch.sip.headers import COMPACT
from switch.sip.message import Message, Request, Response, parse_message
from switch.sip.uri import SipURI, parse_uri
from switch.sip.validate import can_answer, check_request, check_response
from switch.sip.via import Via, parse_via

CORPUS = [path.read_bytes() for path in sorted((Path(__file__).parent / "torture").glob("*.sip"))]
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- grammar pieces ------------------------------------------------------------------------

ALNUM = string.ascii_letters + string.digits
TOKEN = ALNUM + "-.!%*_+`'~"
tokens = st.text(TOKEN, min_size=1, max_size=10)
lower_tokens = st.text(
    string.ascii_lowercase + string.digits + "-.!%*_+`'~", min_size=1, max_size=8
)
labels = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
domains = st.lists(labels, min_size=1, max_size=4).map(".".join)
hosts = st.one_of(
    domains,
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
ports = st.none() | st.integers(0, 65535)
# Any text but CR and LF (which end a header line) and lone surrogates.
texts = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=20
)
uri_param_chars = ALNUM + "-_.!~*'()[]/:&+$%;=@? \"<>,\x00é"
uri_params = st.dictionaries(
    st.text(uri_param_chars, min_size=1, max_size=8).map(str.lower),
    st.none() | st.text(uri_param_chars, max_size=8),
    max_size=3,
)


@st.composite
def sip_uris(draw) -> SipURI:
    user = draw(st.none() | texts.filter(bool))
    password = draw(st.none() | texts) if user is not None else None
    return SipURI(
        draw(hosts),
        user,
        draw(ports),
        draw(st.sampled_from(["sip", "sips"])),
        password,
        draw(uri_params),
    )


header_params = st.dictionaries(
    lower_tokens,
    st.none() | tokens | texts.map(lambda t: '"' + t.replace("\\", "").replace('"', "") + '"'),
    max_size=3,
)


@st.composite
def addresses(draw) -> Address:
    return Address(draw(sip_uris()), draw(st.none() | texts), draw(header_params))


@st.composite
def vias(draw) -> Via:
    params = draw(
        st.dictionaries(
            lower_tokens.filter(lambda n: n != "branch"), st.none() | tokens, max_size=2
        )
    )
    params["branch"] = "z9hG4bK" + draw(tokens)
    host = draw(hosts)
    return Via(draw(st.sampled_from(["UDP", "TCP", "TLS", "WS"])), host, draw(ports), params)


call_ids = st.text(ALNUM + "-.!%*_+`'~()<>:\\\"/[]?{}", min_size=1, max_size=20)
methods = st.sampled_from(["INVITE", "ACK", "BYE", "OPTIONS", "REGISTER"]) | tokens
extension = st.tuples(tokens.map(lambda t: "X-" + t), texts.map(lambda t: t.strip(" \t")))


@st.composite
def messages(draw) -> tuple[Message, dict[str, object]]:
    """A request or response, and the typed values it was built from."""
    typed: dict[str, object] = {
        "via": draw(st.lists(vias(), min_size=1, max_size=3)),
        "from_": draw(addresses()),
        "to": draw(addresses()),
        "call_id": draw(call_ids),
        "cseq": (draw(st.integers(0, 2**31 - 1)), draw(methods)),
        "contact": draw(st.lists(addresses(), max_size=2)),
        "max_forwards": draw(st.integers(0, 255)),
    }
    headers: list[tuple[str, object]] = [("Via", via) for via in typed["via"]]  # type: ignore[attr-defined]
    headers += [
        ("From", typed["from_"]),
        ("To", typed["to"]),
        ("Call-ID", typed["call_id"]),
        ("CSeq", f"{typed['cseq'][0]} {typed['cseq'][1]}"),  # type: ignore[index]
        ("Max-Forwards", typed["max_forwards"]),
        *(("Contact", contact) for contact in typed["contact"]),  # type: ignore[attr-defined]
        *draw(st.lists(extension, max_size=3)),
    ]
    headers = draw(st.permutations(headers))
    # Order among Vias and among Contacts is what the shuffle made it.
    typed["via"] = [value for name, value in headers if name == "Via"]
    typed["contact"] = [value for name, value in headers if name == "Contact"]
    body = draw(st.binary(max_size=60))
    if draw(st.booleans()):
        msg: Message = Request(typed["cseq"][1], draw(sip_uris()), headers, body)  # type: ignore[index]
    else:
        msg = Response(draw(st.integers(100, 699)), draw(texts), headers, body)
    return msg, typed


# -- 1. built messages round-trip ------------------------------------------------------------


@FAST
@given(messages())
def test_built_messages_parse_back_equal(built):
    msg, typed = built
    again = parse_message(bytes(msg))
    assert again == msg
    assert bytes(again) == bytes(msg)
    for name, value in typed.items():
        assert getattr(again, name) == value, name
    assert again.top_via == typed["via"][0]  # type: ignore[index]
    assert again.body == msg.body
    if isinstance(msg, Request):
        assert again.uri == msg.uri


@FAST
@given(sip_uris())
def test_built_uris_parse_back_equal(uri):
    again = parse_uri(str(uri))
    assert again == uri
    assert (again.user, again.password, again.params) == (uri.user, uri.password, uri.params)
    assert hash(again) == hash(uri)


@FAST
@given(addresses())
def test_built_addresses_parse_back_equal(addr):
    again = parse_address(str(addr))
    assert again == addr
    assert again.display == addr.display


@st.composite
def written_messages(draw) -> tuple[bytes, dict[str, object]]:
    """Message text with compact names, odd case, LWS around ':' and folding."""
    built, typed = draw(messages())
    full = {value: key for key, value in COMPACT.items()}
    lines = [built.start_line()]
    for name, value in built.headers():
        key = name.lower()
        if key in full and draw(st.booleans()):
            name = full[key]
        name = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)
        colon = draw(st.sampled_from([":", ": ", " : ", ":\t", "  :  "]))
        if " " in value and not value.startswith(" ") and draw(st.booleans()):
            # Fold at a space: the value reads the same (RFC 3261 §7.3.1).
            value = value.replace(" ", "\r\n ", 1) if '"' not in value else value
        lines.append(f"{name}{colon}{value}")
    head = "\r\n".join(lines) + f"\r\nContent-Length: {len(built.body)}\r\n\r\n"
    return head.encode("utf-8") + built.body, typed


@FAST
@given(written_messages())
def test_written_messages_read_back_their_values(written):
    data, typed = written
    msg = parse_message(data)
    assert bytes(msg) == data
    for name, value in typed.items():
        assert getattr(msg, name) == value, name
    msg.set("X-Changed", "yes")
    assert parse_message(bytes(msg)) == msg


# -- 2. and 3. nothing but ParseError ------------------------------------------------------


def touch(msg: Message) -> None:
    """Read everything a stack reads; only ParseError may come out."""
    for name in ("top_via", "via", "from_", "to", "call_id", "cseq", "contact", "max_forwards"):
        try:
            value = getattr(msg, name)
            if isinstance(value, Address):
                str(value.uri)
                hash(value.uri)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, Address) and not item.wildcard:
                        item.uri == item.uri  # noqa: B015
                    elif isinstance(item, Via):
                        (item.branch, item.rport, item.received, str(item))
        except ParseError:
            pass
    msg.content_type  # noqa: B018
    if isinstance(msg, Request):
        try:
            str(msg.uri)
        except ParseError:
            pass
        # The UAS checks never raise: they report.
        check_request(msg)
        can_answer(msg)
    else:
        check_response(msg)


def parse_and_touch(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except ParseError as exc:
        if isinstance(exc.message, Request):
            touch(exc.message)
        return
    touch(msg)
    # Whatever was accepted, once changed, serialises to bytes that read back equal.
    msg.add("Via", "SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKprop", first=True)
    again = parse_message(bytes(msg))
    assert again == msg
    touch(again)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes(data):
    parse_and_touch(data)


sip_alphabet = st.sampled_from(
    list(b" \t\r\n:;,<>\"\\[]@%=?&/*.-_+!~'()$#0123456789aAbBsSiIpPvVzZ\x00\x7f\xc3\xa9\xff")
)
sip_lines = st.lists(
    st.sampled_from(
        [
            b"INVITE sip:a@b SIP/2.0",
            b"SIP/2.0 200 OK",
            b"Via: SIP/2.0/UDP h;branch=z9hG4bKx",
            b"From: <sip:a@b>;tag=1",
            b"To: sip:b@c",
            b"Call-ID: x",
            b"CSeq: 1 INVITE",
            b"Max-Forwards: 70",
            b"Contact: *",
            b"l: 0",
            b" folded",
            b"\t",
            b"",
        ]
    )
    | st.lists(sip_alphabet, max_size=40).map(bytes),
    max_size=12,
)


@settings(max_examples=1000, deadline=None)
@given(sip_lines)
def test_sip_shaped_noise(lines):
    parse_and_touch(b"\r\n".join(lines) + b"\r\n\r\n")


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 8))):
        where = draw(st.integers(0, len(data)))
        what = draw(st.sampled_from(["flip", "insert", "delete"]))
        byte = draw(st.integers(0, 255) | sip_alphabet)
        if what == "insert":
            data.insert(where, byte)
        elif where < len(data):
            if what == "flip":
                data[where] = byte
            else:
                del data[where]
    return bytes(data)


@settings(max_examples=1000, deadline=None)
@given(mutated())
def test_mutated_torture_messages(data):
    parse_and_touch(data)


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=60) | st.text('sip:[]@;=?&%:.0123456789abcdef<>" *,\\', max_size=40))
def test_uri_address_and_via_parsers_raise_only_parse_error(text):
    for parse in (parse_uri, parse_address, parse_via):
        try:
            value = parse(text)
        except ParseError:
            continue
        str(value)
        if isinstance(value, Address) and not value.wildcard:
            try:
                value.uri == value.uri  # noqa: B015
            except ParseError:
                pass
