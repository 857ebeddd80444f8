"""SIP requests and responses: parse, access, change, serialise.

Parsing is lazy. `parse_message` splits the head into header fields and
reads only Content-Length; Via, From, To, CSeq, Contact and the rest are
parsed the first time they are asked for, and the result is cached. A message
that was never changed serialises to the exact bytes it was parsed from, and a
changed one rebuilds only the header lines that changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from .address import Address, parse_address
from .errors import ParseError
from .headers import LIST_HEADERS, _key_cache, display_name, header_key, is_token, split_list
from .uri import URI, parse_uri
from .via import Via, parse_via

SIP_VERSION = "SIP/2.0"


class CSeq(NamedTuple):
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


class Message:
    """Common part of requests and responses.

    Headers are kept as three parallel lists, one entry per header line:
    `_keys` (lower-case full names, for lookups at C speed with list.index),
    `_values` (the value, folded lines joined) and `_lines` (the text written
    on serialisation: the original line, or "Name: value" for a new one).
    """

    __slots__ = ("_body", "_cache", "_keys", "_lines", "_raw", "_values")

    def __init__(
        self,
        keys: list[str],
        values: list[str],
        lines: list[str],
        body: bytes = b"",
        raw: bytes | None = None,
    ) -> None:
        self._keys = keys
        self._values = values
        self._lines = lines
        self._body = body
        self._raw = raw
        self._cache: dict[str, object] = {}

    # -- generic header access ------------------------------------------------

    def get(self, name: str) -> str | None:
        """Value of the first header line with this name, as written."""
        key = header_key(name)
        if key in self._keys:
            return self._values[self._keys.index(key)]
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of a header, split at commas for list headers."""
        return self._all(header_key(name))

    def _all(self, key: str) -> list[str]:
        keys = self._keys
        n = keys.count(key)
        if n == 1:  # the usual case: one line
            value = self._values[keys.index(key)]
            return split_list(value) if key in LIST_HEADERS else [value]
        if n == 0:
            return []
        values = [v for k, v in zip(keys, self._values, strict=True) if k == key]
        if key in LIST_HEADERS:
            return [item for v in values for item in split_list(v)]
        return values

    def count(self, name: str) -> int:
        """Number of header lines with this name."""
        return self._keys.count(header_key(name))

    def __contains__(self, name: str) -> bool:
        return header_key(name) in self._keys

    def headers(self) -> list[tuple[str, str]]:
        """(name, value) pairs in order, names as they are written."""
        return [
            (line.partition(":")[0].rstrip(" \t"), value)
            for line, value in zip(self._lines, self._values, strict=True)
        ]

    # -- changes ---------------------------------------------------------------

    def _changed(self, key: str) -> None:
        self._raw = None
        self._cache.pop(key, None)
        if key == "via":
            self._cache.pop("top-via", None)

    def set(self, name: str, value: object) -> None:
        """Replace every line of this header with one, where the first was."""
        key = header_key(name)
        text = str(value)
        line = f"{_name_for(name, key)}: {text}"
        keys = self._keys
        if key in keys:
            i = keys.index(key)
            self._values[i] = text
            self._lines[i] = line
            j = len(keys) - 1
            while j > i:
                if keys[j] == key:
                    del keys[j], self._values[j], self._lines[j]
                j -= 1
        else:
            keys.append(key)
            self._values.append(text)
            self._lines.append(line)
        self._changed(key)

    def add(self, name: str, value: object, first: bool = False) -> None:
        """Add a line: after the last of its kind, or before the first."""
        key = header_key(name)
        text = str(value)
        keys = self._keys
        if key not in keys:
            i = 0 if first else len(keys)
        elif first:
            i = keys.index(key)
        else:
            i = len(keys) - keys[::-1].index(key)
        keys.insert(i, key)
        self._values.insert(i, text)
        self._lines.insert(i, f"{_name_for(name, key)}: {text}")
        self._changed(key)

    def remove(self, name: str) -> None:
        key = header_key(name)
        keep = [i for i, k in enumerate(self._keys) if k != key]
        if len(keep) != len(self._keys):
            self._keys = [self._keys[i] for i in keep]
            self._values = [self._values[i] for i in keep]
            self._lines = [self._lines[i] for i in keep]
            self._changed(key)

    def drop_parsed(self) -> None:
        """Forget the parsed header values (parsed again if asked for).

        For a message kept only in case it is needed again: the parsed
        objects are most of its weight and of the garbage collector's work.
        """
        self._cache.clear()

    def replace_top_via(self, via: Via) -> None:
        """Put `via` in place of the top Via value, keeping it parsed."""
        self.remove_first_value("Via")
        self.add("Via", str(via), first=True)
        self._cache["top-via"] = via

    def remove_first_value(self, name: str) -> str | None:
        """Remove the first value of a list header (e.g. the top Via)."""
        key = header_key(name)
        if key not in self._keys:
            return None
        i = self._keys.index(key)
        values = split_list(self._values[i])
        if len(values) <= 1:
            del self._keys[i], self._values[i], self._lines[i]
        else:
            rest = ", ".join(values[1:])
            self._values[i] = rest
            self._lines[i] = f"{display_name(key)}: {rest}"
        self._changed(key)
        return values[0] if values else None

    @property
    def body(self) -> bytes:
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        # A new body must not serialise as the bytes that were received.
        self._body = value
        self._raw = None

    def set_body(self, body: bytes, content_type: str | None = None) -> None:
        self.body = body
        if content_type is not None:
            self.set("Content-Type", content_type)
        self.set("Content-Length", len(body))

    # -- typed access to the hot headers ------------------------------------------

    def _one(self, key: str) -> str:
        keys = self._keys
        n = keys.count(key)
        if n != 1:
            how_many = "missing" if n == 0 else "more than one"
            raise ParseError(f"{how_many} {display_name(key)} header")
        return self._values[keys.index(key)]

    @property
    def via(self) -> list[Via]:
        vias = self._cache.get("via")
        if vias is None:
            top = self._cache.get("top-via")
            if (
                top is not None
                and self._keys.count("via") == 1
                and "," not in self._values[self._keys.index("via")]
            ):
                vias = [top]  # one Via, already parsed: no need to parse it again
            else:
                vias = [parse_via(v) for v in self._all("via")]
            self._cache["via"] = vias
        return vias  # type: ignore[return-value]

    @property
    def top_via(self) -> Via:
        top = self._cache.get("top-via")
        if top is None:
            keys = self._keys
            if "via" not in keys:
                raise ParseError("missing Via header")
            first = self._values[keys.index("via")]
            # Usually only the top Via is needed: parse just it.
            if "," not in first:
                top = parse_via(first)
            else:
                vias = self.via
                if not vias:  # "Via: ,,"
                    raise ParseError("empty Via header")
                top = vias[0]
            self._cache["top-via"] = top
        return top  # type: ignore[return-value]

    @property
    def from_(self) -> Address:
        return self._address("from")

    @property
    def to(self) -> Address:
        return self._address("to")

    def _address(self, key: str) -> Address:
        addr = self._cache.get(key)
        if addr is None:
            addr = parse_address(self._one(key))
            if addr.wildcard:
                raise ParseError(f"{display_name(key)} cannot be '*'")
            self._cache[key] = addr
        return addr  # type: ignore[return-value]

    @property
    def call_id(self) -> str:
        value = self._cache.get("call-id")
        if value is None:
            value = self._one("call-id")
            if not value or len(value.split()) != 1:
                raise ParseError(f"invalid Call-ID {value!r}")
            self._cache["call-id"] = value
        return value  # type: ignore[return-value]

    @property
    def cseq(self) -> CSeq:
        value = self._cache.get("cseq")
        if value is None:
            value = parse_cseq(self._one("cseq"))
            self._cache["cseq"] = value
        return value  # type: ignore[return-value]

    @property
    def contact(self) -> list[Address]:
        value = self._cache.get("contact")
        if value is None:
            value = [parse_address(v) for v in self._all("contact")]
            if len(value) > 1 and any(a.wildcard for a in value):
                raise ParseError("Contact '*' cannot be combined with other contacts")
            self._cache["contact"] = value
        return value  # type: ignore[return-value]

    @property
    def max_forwards(self) -> int | None:
        if "max-forwards" not in self._keys:
            return None
        text = self._one("max-forwards")
        # Leading zeros are allowed ("0068" is 68, RFC 4475 wsinv).
        if text.isdigit() and text.isascii() and len(text) <= 3:
            number: int | None = int(text)
        else:
            number = _number(text, 3)
        if number is None or number > 255:
            raise ParseError(f"Max-Forwards {text!r} is not a number from 0 to 255")
        return number

    @property
    def content_type(self) -> str | None:
        value = self.get("content-type")
        return value.split(";", 1)[0].strip().lower() if value else None

    # -- serialisation --------------------------------------------------------

    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        if self._raw is not None:
            return self._raw
        body = self._body
        length = str(len(body))
        keys = self._keys
        if keys.count("content-length") != 1 or self.get("content-length") != length:
            # Exactly one Content-Length, and a true one, whatever was changed.
            self.remove("content-length")
            keys = self._keys
            keys.append("content-length")
            self._values.append(length)
            self._lines.append(f"Content-Length: {length}")
        head = "\r\n".join([self.start_line(), *self._lines, "", ""])
        data = head.encode("utf-8", "surrogateescape") + body
        self._raw = data
        return data

    __bytes__ = to_bytes

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        assert isinstance(other, Message)
        return (
            self.start_line() == other.start_line()
            and self._keys == other._keys
            and self._values == other._values
            and self._body == other._body
        )

    __hash__ = None  # type: ignore[assignment]


class Request(Message):
    __slots__ = ("_uri", "method", "uri_text", "version")

    def __init__(
        self,
        method: str,
        uri: str | URI,
        headers: Iterable[tuple[str, object]] = (),
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(*_columns(headers), body)
        self.method = method
        if isinstance(uri, str):
            self.uri_text = uri
            self._uri: URI | None = None
        else:
            self.uri_text = str(uri)
            self._uri = uri
        self.version = version

    @property
    def uri(self) -> URI:
        """The Request-URI, parsed on first use."""
        if self._uri is None:
            self._uri = parse_uri(self.uri_text)
        return self._uri

    @uri.setter
    def uri(self, value: URI) -> None:
        self._uri = value
        self.uri_text = str(value)
        self._raw = None

    def start_line(self) -> str:
        return f"{self.method} {self.uri_text} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri_text}>"


class Response(Message):
    __slots__ = ("reason", "status", "version")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Iterable[tuple[str, object]] = (),
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(*_columns(headers), body)
        self.status = status
        self.reason = REASONS.get(status, "") if reason is None else reason
        self.version = version

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


# -- construction helpers -------------------------------------------------------


def _name_for(name: str, key: str) -> str:
    # A caller that spells a name its own way gets that spelling, except for
    # compact forms, which we never write.
    return name if len(name) > 1 else display_name(key)


def _columns(headers: Iterable[tuple[str, object]]) -> tuple[list[str], list[str], list[str]]:
    keys: list[str] = []
    values: list[str] = []
    lines: list[str] = []
    for name, value in headers:
        key = header_key(name)
        text = str(value)
        keys.append(key)
        values.append(text)
        lines.append(f"{_name_for(name, key)}: {text}")
    return keys, values, lines


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, object]] = (),
    body: bytes = b"",
) -> Response:
    """A response with Via, From, To, Call-ID and CSeq copied from the request.

    The copied lines keep their original text (RFC 3261 §8.2.6.2); so do
    Record-Route lines in 101-299 responses, which form dialogs. A To tag is
    added when given and the request's To has none.
    """
    resp = Response(status, reason, headers, body)
    keys: list[str] = []
    values: list[str] = []
    lines: list[str] = []
    copy_rr = 100 < status < 300
    for key, value, line in zip(request._keys, request._values, request._lines, strict=True):
        if key in _COPIED or (copy_rr and key == "record-route"):
            if key == "to" and to_tag is not None and request.to.tag is None:
                value = f"{value};tag={to_tag}"
                line = f"To: {value}"
            keys.append(key)
            values.append(value)
            lines.append(line)
    resp._keys[:0] = keys
    resp._values[:0] = values
    resp._lines[:0] = lines
    if "content-length" not in resp._keys:
        resp._keys.append("content-length")
        resp._values.append(str(len(body)))
        resp._lines.append(f"Content-Length: {len(body)}")
    # The copied lines say the same as the request's: so do their parsed
    # values, which the transaction layer reads at once to find its match.
    cache = request._cache
    for key in _SAME_PARSED:
        if key in cache:
            resp._cache[key] = cache[key]
    return resp


_SAME_PARSED = ("top-via", "via", "cseq", "call-id", "from")
_COPIED = frozenset({"via", "from", "to", "call-id", "cseq"})


# -- parsing ----------------------------------------------------------------------


def parse_cseq(text: str) -> CSeq:
    """'314159 INVITE' -> CSeq(314159, 'INVITE').

    The number is not checked against RFC 3261's bound (< 2**31) here: that
    is `validate.check_request`'s job, so that a request with an overlarge
    CSeq can still be answered with a 400 that names the problem.
    """
    number, _, method = text.partition(" ")
    if method not in _KNOWN_METHODS:
        # General form: any LWS between the number and the method.
        parts = text.split()
        if len(parts) != 2 or not is_token(parts[1]):
            raise ParseError(f"CSeq {text!r} must be a number and a method")
        number, method = parts
    if number.isdigit() and number.isascii() and len(number) <= 10:
        num: int | None = int(number)
    else:
        # Far more digits than any sane CSeq is garbage, not a number to convert.
        num = _number(number, 32)
    if num is None:
        raise ParseError(f"CSeq {text!r} must be a number and a method")
    return CSeq(num, method)


def _number(text: str, max_digits: int) -> int | None:
    """A non-negative decimal of at most `max_digits` significant digits, else None.

    str.isdigit alone accepts "²" and other Unicode digits that int() rejects,
    and int() refuses strings over 4300 digits: both would escape as
    ValueError instead of ParseError.
    """
    if not (text.isdigit() and text.isascii()):
        return None
    if len(text) > max_digits:
        text = text.lstrip("0")
        if len(text) > max_digits:
            return None
    return int(text) if text else 0


def find_head_end(data: bytes) -> tuple[int, int]:
    """(index of the blank line, its length): CRLFCRLF, or LFLF from sloppy peers."""
    # The start line's ending says which kind of head this is: a head written
    # with bare LFs ends at its first LF LF, even if the body has a CRLF CRLF.
    lf = data.find(b"\n")
    if lf > 0 and data[lf - 1] == 13:
        idx = data.find(b"\r\n\r\n", lf - 1)
        if idx >= 0:
            return idx, 4
    idx = data.find(b"\n\n")
    if idx >= 0:
        return idx, 2
    return -1, 0


def parse_message(data: bytes, datagram: bool = True) -> Request | Response:
    """Parse one SIP message.

    With `datagram=True` the body is cut to Content-Length and a
    Content-Length larger than the data is an error (RFC 3261 §18.3). Stream
    transports frame first and pass exactly one message.
    """
    # RFC 3261 §7.5: ignore CRLFs before the start line.
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    end, sep_len = find_head_end(data)
    if end < 0:
        raise ParseError("no empty line after the headers")
    head = data[:end].decode("utf-8", "surrogateescape")
    if sep_len == 2:
        head = head.replace("\r\n", "\n").replace("\n", "\r\n")
    lines = head.split("\r\n")
    start = lines[0]
    folded = "\r\n " in head or "\r\n\t" in head
    lines = _unfold(lines[1:]) if folded else lines[1:]
    keys: list[str] = []
    values: list[str] = []
    cache_get = _key_cache.get
    for line in lines:
        name, colon, value = line.partition(":")
        key = cache_get(name)
        if key is None or not colon:
            if not colon:
                raise ParseError(f"header line without ':': {line[:60]!r}")
            try:
                key = header_key(name.rstrip(" \t"))
            except ValueError as exc:
                raise ParseError(str(exc)) from None
        keys.append(key)
        # Only SIP's whitespace: "abc\x1c" must read back as it was written.
        values.append(value.strip(" \t\r\n"))
    if folded:
        values = [_FOLD.sub(" ", v) if "\r\n" in v else v for v in values]
    body = data[end + sep_len :]
    raw: bytes | None = data
    if "content-length" in keys:
        text = values[keys.index("content-length")]
        if keys.count("content-length") > 1 and any(
            v != text for k, v in zip(keys, values, strict=True) if k == "content-length"
        ):
            raise ParseError("conflicting Content-Length headers")
        if text.isdigit() and text.isascii() and len(text) <= 12:
            length = int(text)
        else:
            length = _number(text, 12)
        if length is None:
            raise ParseError(f"Content-Length {text[:20]!r} is not a number")
        if length != len(body):
            if length > len(body):
                raise ParseError(
                    f"Content-Length {length} is larger than the {len(body)} body bytes received"
                )
            if not datagram:
                raise ParseError("bytes after the body of a framed message")
            body = body[:length]
            raw = data[: end + sep_len + length]
    if sep_len == 2:
        raw = None  # re-serialise with CRLF rather than echo bare LFs

    # The start line. Objects are filled in directly: this runs per message.
    msg: Request | Response
    if start.startswith("SIP/"):
        msg = object.__new__(Response)
        msg._keys, msg._values, msg._lines, msg._body, msg._raw = keys, values, lines, body, raw
        msg._cache = {}
        parts = start.split(" ", 2)
        if len(parts) < 2:
            raise ParseError(f"bad status line {start[:60]!r}")
        code = parts[1]
        if len(code) != 3 or not (code.isdigit() and code.isascii()) or not 100 <= int(code) <= 699:
            raise ParseError(f"bad status code {code[:10]!r}")
        msg.version, msg.status = parts[0], int(code)
        msg.reason = parts[2] if len(parts) == 3 else ""
        if msg.version != SIP_VERSION and msg.version.upper() != SIP_VERSION:
            raise ParseError(f"unsupported version {msg.version[:20]!r}", status=505)
        return msg
    msg = object.__new__(Request)
    msg._keys, msg._values, msg._lines, msg._body, msg._raw = keys, values, lines, body, raw
    msg._cache = {}
    msg._uri = None
    parts = start.split(" ")
    if len(parts) != 3:
        # Still hand the headers over so that the error can be answered.
        msg.method, msg.uri_text, msg.version = "UNKNOWN", "", SIP_VERSION
        raise ParseError(
            "request line must be 'METHOD Request-URI SIP/2.0' with single spaces",
            message=msg,
        )
    msg.method, msg.uri_text, msg.version = parts
    if msg.method not in _KNOWN_METHODS and not is_token(msg.method):
        raise ParseError(f"invalid method {msg.method[:30]!r}", message=msg)
    if msg.version != SIP_VERSION and msg.version.upper() != SIP_VERSION:
        raise ParseError(f"SIP version {msg.version[:20]!r} is not supported", 505, msg)
    return msg


_KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "UPDATE",
        "INFO",
        "REFER",
        "MESSAGE",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
    }
)


_FOLD = re.compile(r"[ \t]*\r\n[ \t]+")


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines (RFC 3261 §7.3.1) to the line they continue.

    The joined line keeps its CRLF so that it serialises unchanged; values are
    read with the CRLF and leading whitespace turned into one space.
    """
    out: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not out:
                raise ParseError("continuation line before any header")
            out[-1] = f"{out[-1]}\r\n{line}"
        else:
            out.append(line)
    return out


REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}
