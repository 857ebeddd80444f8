"""Hold time from the offers each side makes."""

from __future__ import annotations

from switch.call.holds import Holds, is_hold


def _sdp(direction: str | None = None, address: str = "127.0.0.1", port: int = 4000) -> bytes:
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", f"c=IN IP4 {address}", "t=0 0",
             f"m=audio {port} RTP/AVP 0"]  # fmt: skip
    if direction:
        lines.append(f"a={direction}")
    return ("\r\n".join(lines) + "\r\n").encode()


def test_which_offers_are_holds() -> None:
    assert is_hold(_sdp("sendonly")) and is_hold(_sdp("inactive"))
    assert is_hold(_sdp(address="0.0.0.0"))  # RFC 2543's way
    assert not is_hold(_sdp()) and not is_hold(_sdp("sendrecv")) and not is_hold(_sdp("recvonly"))
    assert not is_hold(_sdp("sendonly", port=0))  # a stream turned off is not held
    assert not is_hold(b"not sdp at all")


def test_spans_add_up_and_an_open_one_ends_with_the_call() -> None:
    holds = Holds()
    holds.offered("a", _sdp("sendonly"), 10.0)
    holds.offered("a", _sdp("sendonly"), 12.0)  # still on hold: the first start counts
    holds.offered("a", _sdp(), 15.0)
    assert holds.seconds(20.0) == 5.0
    holds.offered("b", _sdp("inactive"), 30.0)
    assert holds.seconds(34.5) == 9.5
    holds.offered("b", _sdp(), 40.0)
    holds.offered("b", _sdp(), 41.0)  # a resume with no hold before: nothing
    assert holds.seconds(100.0) == 15.0
