"""Cut a SIP byte stream (TCP, TLS) into messages. Sans-IO: bytes in, messages out.

On a stream the end of a message is known only from its Content-Length, which
is therefore mandatory there (RFC 3261 §18.3). Between messages a peer may
send CRLF keepalives (RFC 5626 §3.5.1): a double CRLF is a "ping" that must be
answered with a single CRLF "pong"; a single CRLF (a pong, or the CRLFs RFC
3261 §7.5 allows before a start line) is skipped.

The framer never parses more than the header block's end and Content-Length;
the SIP stack parses the messages it returns.
"""

from __future__ import annotations

import re

__all__ = ["PING", "FramingError", "StreamFramer"]

#: Returned by `StreamFramer.feed` in place of a message when the peer sent a
#: keepalive ping; the transport answers it with b"\r\n". Compare with `is`
#: (it also compares equal to b"\r\n\r\n", which no real message can be).
PING = b"\r\n\r\n"

_CRLF = b"\r\n"

# A Content-Length header line, full or compact (RFC 3261 §7.3.3), anywhere
# after the start line, with any folded continuation lines of its value.
_CONTENT_LENGTH = re.compile(
    rb"\n(?:content-length|l)[ \t]*:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.IGNORECASE
)


class FramingError(Exception):
    """The stream cannot be cut into messages; the connection must be closed.

    `messages` holds the complete messages framed before the error in the same
    `feed` call, so that the caller may still deliver them.
    """

    def __init__(self, reason: str, *, too_large: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large
        self.messages: list[bytes] = []


class StreamFramer:
    """Frames one connection's byte stream. One instance per connection."""

    __slots__ = ("_buf", "_error", "_length", "_scanned", "max_message_size")

    def __init__(self, max_message_size: int = 65536) -> None:
        self.max_message_size = max_message_size
        self._buf = bytearray()
        # Where to resume the search for the blank line, so that a header
        # block arriving in many small pieces is scanned once, not quadratically.
        self._scanned = 0
        # Total length of the message being received, once its head is known.
        self._length = -1
        self._error: FramingError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the messages (and `PING`s) now complete.

        Raises `FramingError` if the stream is broken; every later call raises
        it again.
        """
        if self._error is not None:
            raise self._error
        buf = self._buf
        buf += data
        out: list[bytes] = []
        try:
            while buf:
                if self._length < 0:
                    if buf[0] in b"\r\n" and not self._skip_keepalives(out):
                        break  # a partial CRLF run: wait to see if it is a ping
                    if not buf or not self._find_length():
                        break
                if len(buf) < self._length:
                    break
                out.append(bytes(buf[: self._length]))
                del buf[: self._length]
                self._length = -1
                self._scanned = 0
        except FramingError as exc:
            exc.messages = out
            self._error = exc
            buf.clear()
            raise
        return out

    def _skip_keepalives(self, out: list[bytes]) -> bool:
        """Consume CRLFs before a message; False if more bytes are needed to decide."""
        buf = self._buf
        while buf:
            if buf.startswith(PING):
                out.append(PING)
                del buf[:4]
            elif buf[0] == 0x0A:  # a bare LF from a sloppy peer
                del buf[:1]
            elif buf[0] == 0x0D:
                # "\r", "\r\n" or "\r\n\r" may still become a ping.
                if len(buf) < 4 and PING.startswith(buf):
                    return False
                # A lone CR, or one CRLF followed by something else: skip it.
                del buf[: 2 if buf.startswith(_CRLF) else 1]
            else:
                break
        return True

    def _find_length(self) -> bool:
        """Find the head's end and Content-Length; False if the head is incomplete."""
        buf = self._buf
        limit = self.max_message_size
        start = self._scanned
        # The head ends at the first blank line: CRLFCRLF, or LFLF from sloppy
        # peers (as `switch.sip.message.find_head_end` accepts).
        end = buf.find(b"\r\n\r\n", start)
        sep = 4
        lf = buf.find(b"\n\n", start, end if end >= 0 else len(buf))
        if lf >= 0:
            end, sep = lf, 2
        if end < 0:
            if len(buf) > limit:
                raise FramingError(
                    f"header block larger than the {limit} byte limit", too_large=True
                )
            self._scanned = max(0, len(buf) - 3)
            return False
        body_start = end + sep
        if body_start > limit:
            raise FramingError(
                f"header block of {body_start} bytes is larger than the {limit} byte limit",
                too_large=True,
            )
        length = _content_length(buf, end)
        total = body_start + length
        if total > limit:
            raise FramingError(
                f"message of {total} bytes is larger than the {limit} byte limit", too_large=True
            )
        self._length = total
        return True


def _content_length(buf: bytearray, end: int) -> int:
    values = {bytes(m.group(1).strip()) for m in _CONTENT_LENGTH.finditer(buf, 0, end)}
    if not values:
        raise FramingError("no Content-Length header (mandatory on stream transports)")
    if len(values) > 1:
        raise FramingError("conflicting Content-Length headers")
    text = values.pop()
    # Folded continuation lines leave CRLF and blanks inside the value.
    text = b"".join(text.split())
    if not text.isdigit():
        shown = text[:20].decode("ascii", "replace")
        raise FramingError(f"Content-Length {shown!r} is not a number")
    if len(text) > 18:  # beyond any limit, and cheaper than int() on huge digit runs
        raise FramingError("Content-Length is absurdly large", too_large=True)
    return int(text)
