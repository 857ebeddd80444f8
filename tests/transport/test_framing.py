"""The stream framer: messages out of arbitrary chunks, keepalives, and limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.sip.framing import PING, FramingError, StreamFramer


def message(body: bytes = b"", header: str = "Content-Length", method: str = "OPTIONS") -> bytes:
    return (
        f"{method} sip:alice@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
        "Call-ID: a84b4c76e66710\r\n"
        "CSeq: 1 OPTIONS\r\n"
        f"{header}: {len(body)}\r\n"
        "\r\n"
    ).encode() + body


def test_two_messages_in_one_chunk() -> None:
    a, b = message(b"v=0\r\n"), message(method="INFO")
    assert StreamFramer().feed(a + b) == [a, b]


def test_message_split_byte_by_byte() -> None:
    m = message(b"hello\r\n\r\nworld")  # a blank line inside the body is body
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(len(m)):
        out += framer.feed(m[i : i + 1])
    assert out == [m]
    assert framer.buffered == 0


def test_compact_content_length() -> None:
    m = message(b"abc", header="l")
    assert StreamFramer().feed(m + m) == [m, m]


def test_content_length_is_case_insensitive_and_may_be_folded() -> None:
    m = b"INFO sip:a SIP/2.0\r\ncontent-LENGTH:\r\n  4\r\n\r\nbody"
    assert StreamFramer().feed(m) == [m]


def test_bare_lf_head_end() -> None:
    m = b"INFO sip:a SIP/2.0\nContent-Length: 2\n\nok"
    assert StreamFramer().feed(m + b"\r\n") == [m]


def test_double_crlf_is_a_ping_single_crlf_is_skipped() -> None:
    m = message()
    framer = StreamFramer()
    out = framer.feed(b"\r\n\r\n" + m + b"\r\n" + m + b"\r\n\r\n\r\n\r\n")
    assert out == [PING, m, m, PING, PING]
    assert out[0] is PING


def test_ping_split_across_chunks() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == [PING]


def test_single_crlf_then_message() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []  # could still be the start of a ping
    m = message()
    assert framer.feed(m) == [m]


def test_missing_content_length_is_a_framing_error() -> None:
    with pytest.raises(FramingError, match="Content-Length"):
        StreamFramer().feed(b"OPTIONS sip:a SIP/2.0\r\nCall-ID: x\r\n\r\n")


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", "0x10"])
def test_content_length_not_a_number(value: str) -> None:
    data = f"OPTIONS sip:a SIP/2.0\r\nContent-Length: {value}\r\n\r\n".encode()
    with pytest.raises(FramingError, match="not a number") as info:
        StreamFramer().feed(data)
    assert not info.value.too_large


def test_conflicting_content_lengths() -> None:
    data = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab"
    with pytest.raises(FramingError, match="conflicting"):
        StreamFramer().feed(data)


def test_header_block_over_the_limit() -> None:
    framer = StreamFramer(max_message_size=1000)
    framer.feed(b"OPTIONS sip:a SIP/2.0\r\n")
    with pytest.raises(FramingError, match="header block") as info:
        for _ in range(100):
            framer.feed(b"X-Padding: " + b"x" * 50 + b"\r\n")
    assert info.value.too_large


def test_body_over_the_limit() -> None:
    with pytest.raises(FramingError, match="larger than the 1000 byte limit") as info:
        StreamFramer(max_message_size=1000).feed(message(b"x" * 1000))
    assert info.value.too_large


def test_huge_content_length() -> None:
    with pytest.raises(FramingError):
        StreamFramer().feed(b"INFO sip:a SIP/2.0\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n")


def test_message_exactly_at_the_limit() -> None:
    overhead = len(message(b"x" * 100)) - 100  # a three-digit Content-Length
    m = message(b"x" * (1000 - overhead))
    assert len(m) == 1000
    assert StreamFramer(max_message_size=1000).feed(m) == [m]


def test_error_keeps_earlier_messages_and_sticks() -> None:
    good = message()
    framer = StreamFramer()
    with pytest.raises(FramingError) as info:
        framer.feed(good + b"BAD sip:a SIP/2.0\r\n\r\n")
    assert info.value.messages == [good]
    with pytest.raises(FramingError):
        framer.feed(good)


# -- any chunking of a stream gives the same messages ----------------------------------------

bodies = st.binary(max_size=300) | st.sampled_from([b"", b"\r\n\r\n", b"a\n\nb", b"\r\n"])
messages = st.builds(
    message,
    bodies,
    st.sampled_from(["Content-Length", "l", "content-length", "L"]),
    st.sampled_from(["INVITE", "OPTIONS", "BYE"]),
)
gaps = st.sampled_from([b"", b"", b"\r\n", b"\r\n\r\n"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(gaps, messages), max_size=6), st.data())
def test_any_chunking_yields_the_same_messages(parts, data) -> None:
    stream = b"".join(gap + m for gap, m in parts)
    expected = []
    for gap, m in parts:
        if gap == b"\r\n\r\n":
            expected.append(PING)
        expected.append(m)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    framer = StreamFramer()
    out: list[bytes] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out += framer.feed(stream[start:cut])
        start = cut
    assert out == expected
    assert framer.buffered == 0
