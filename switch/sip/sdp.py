"""SDP (RFC 8866): parse and build session descriptions.

Sans-IO and allocation-light: one pass over the lines, no regular expressions.

What the parser is strict about, and why:

- ``v=0`` first, ``o=`` present and well formed (the session version in ``o=``
  is how a re-INVITE tells a change from a refresh, RFC 3264 §8), ``m=`` lines
  with a numeric port and a proto, ``c=``/``b=``/``t=`` with their fields, a
  well-formed ``a=rtpmap`` (negotiation reads it), a connection address for
  every active stream (without one there is nowhere to send media), only
  known line types (RFC 8866 §5: a parser must ignore or reject a description
  with a type letter it does not understand; we reject).

What it tolerates, because deployed phones and gateways send it:

- LF instead of CRLF, trailing spaces/tabs, blank lines, ``s=`` with an empty
  name, session-level lines out of RFC order (they are re-emitted in order).
- A missing ``s=`` (read as ``s=-``) or ``t=`` (read as ``t=0 0``): both are
  cosmetic for unicast calls; rejecting them would fail calls for nothing.
- Any attribute name or value: unknown attributes are kept, in order, so they
  survive a parse/serialize round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from switch.sip.errors import SipError

__all__ = [
    "DIRECTIONS",
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Bandwidth",
    "Codec",
    "Connection",
    "Direction",
    "MediaDescription",
    "Origin",
    "SdpError",
    "SessionDescription",
    "Timing",
    "parse_sdp",
]

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
DIRECTIONS: Final = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})

# (name, value) with value None for a flag attribute such as "a=rtcp-mux".
Attribute = tuple[str, str | None]


class SdpError(SipError, ValueError):
    """A session description that cannot be used; the message says where and why.

    A UAS answers an INVITE whose body raises this with 400 (malformed body).
    """


@dataclass(slots=True, frozen=True)
class Codec:
    """An RTP payload format: ``name/clock_rate[/channels]`` plus its payload type.

    ``payload_type`` is the number on the wire (or, for our own codecs, a hint
    of the number we would like); ``fmtp`` is the format parameter string.
    """

    name: str
    clock_rate: int
    channels: int = 1
    payload_type: int | None = None
    fmtp: str | None = None

    def same_format(self, other: Codec) -> bool:
        """Same codec regardless of payload number: RFC 3264 §6.1 matches by encoding."""
        return (
            self.clock_rate == other.clock_rate
            and self.channels == other.channels
            and self.name.casefold() == other.name.casefold()
        )

    @property
    def rtpmap(self) -> str:
        """The ``a=rtpmap`` value without the payload type: ``PCMU/8000``, ``opus/48000/2``."""
        if self.channels != 1:
            return f"{self.name}/{self.clock_rate}/{self.channels}"
        return f"{self.name}/{self.clock_rate}"


# RFC 3551 §6: payload types a peer may use without an a=rtpmap line.
STATIC_PAYLOAD_TYPES: Final[dict[int, Codec]] = {
    pt: Codec(name, rate, channels, pt)
    for pt, name, rate, channels in (
        (0, "PCMU", 8000, 1),
        (3, "GSM", 8000, 1),
        (4, "G723", 8000, 1),
        (5, "DVI4", 8000, 1),
        (6, "DVI4", 16000, 1),
        (7, "LPC", 8000, 1),
        (8, "PCMA", 8000, 1),
        (9, "G722", 8000, 1),
        (10, "L16", 44100, 2),
        (11, "L16", 44100, 1),
        (12, "QCELP", 8000, 1),
        (13, "CN", 8000, 1),
        (14, "MPA", 90000, 1),
        (15, "G728", 8000, 1),
        (16, "DVI4", 11025, 1),
        (17, "DVI4", 22050, 1),
        (18, "G729", 8000, 1),
        (25, "CelB", 90000, 1),
        (26, "JPEG", 90000, 1),
        (28, "nv", 90000, 1),
        (31, "H261", 90000, 1),
        (32, "MPV", 90000, 1),
        (33, "MP2T", 90000, 1),
        (34, "H263", 90000, 1),
    )
}


@dataclass(slots=True)
class Origin:
    """``o=``: who made the description and which version of it this is."""

    username: str = "-"
    sess_id: str = "0"  # opaque: only compared for equality, kept as sent
    sess_version: int = 0  # numeric: a re-offer must increase it (RFC 3264 §8)
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"


@dataclass(slots=True)
class Connection:
    """``c=``; ``address`` keeps any multicast ``/ttl/count`` suffix as sent."""

    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    @property
    def host(self) -> str:
        """The address without a multicast ``/ttl`` or ``/count`` suffix."""
        return self.address.partition("/")[0]


@dataclass(slots=True)
class Bandwidth:
    """``b=<type>:<kbps or bps>``, e.g. ``AS:64`` or ``TIAS:64000``."""

    type: str
    value: int


@dataclass(slots=True)
class Timing:
    """``t=`` with its ``r=`` repeat lines (kept as raw text: calls never use them)."""

    start: int = 0
    stop: int = 0
    repeats: list[str] = field(default_factory=list)


class _Attributes:
    """Lookup helpers shared by session- and media-level attribute lists."""

    __slots__ = ()
    attributes: list[Attribute]

    def has(self, name: str) -> bool:
        """Whether an attribute is present (the way to test flags like ``rtcp-mux``)."""
        return any(n == name for n, _ in self.attributes)

    def get(self, name: str) -> str | None:
        """Value of the first ``a=name:value``; None when absent or a flag."""
        for n, v in self.attributes:
            if n == name:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        """Values of every ``a=name`` in order; a flag occurrence gives ``""``."""
        return [v or "" for n, v in self.attributes if n == name]

    @property
    def direction(self) -> Direction | None:
        """The direction attribute set at this level, or None when there is none."""
        for n, v in self.attributes:
            if v is None and n in DIRECTIONS:
                return n  # type: ignore[return-value]
        return None

    def set_direction(self, direction: Direction | None) -> None:
        """Replace the direction attribute in place (first position kept), or remove it."""
        if direction is not None and direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}, expected one of {DIRECTIONS}")
        kept: list[Attribute] = []
        placed = direction is None
        for n, v in self.attributes:
            if v is None and n in DIRECTIONS:
                if not placed:
                    kept.append((direction, None))  # type: ignore[arg-type]
                    placed = True
                continue
            kept.append((n, v))
        if not placed:
            kept.append((direction, None))  # type: ignore[arg-type]
        self.attributes[:] = kept


@dataclass(slots=True)
class MediaDescription(_Attributes):
    """One ``m=`` section and the lines that follow it."""

    media: str
    port: int
    proto: str
    formats: list[str] = field(default_factory=list)
    number_of_ports: int | None = None  # None: "m=audio 4000", not "m=audio 4000/1"
    information: str | None = None
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: str | None = None  # k= is obsolete (RFC 8866 §5.12); kept only to round-trip
    attributes: list[Attribute] = field(default_factory=list)

    def rtpmaps(self) -> dict[int, Codec]:
        """Payload type -> Codec for every numeric format, in ``m=`` order.

        An ``a=rtpmap`` wins; otherwise the RFC 3551 static table; a dynamic
        type with no rtpmap is left out because nothing says what it is.
        """
        maps: dict[int, tuple[str, int, int]] = {}
        fmtps: dict[int, str] = {}
        for n, v in self.attributes:
            if v is None:
                continue
            if n == "rtpmap":
                parsed = _split_rtpmap(v)
                if parsed is not None:
                    maps.setdefault(parsed[0], parsed[1:])
            elif n == "fmtp":
                pt_text, _, params = v.partition(" ")
                if _is_uint(pt_text, 3):
                    fmtps.setdefault(int(pt_text), params.strip())
        codecs: dict[int, Codec] = {}
        for fmt in self.formats:
            if not _is_uint(fmt, 3):
                continue
            pt = int(fmt)
            if pt in maps:
                name, rate, channels = maps[pt]
                codecs[pt] = Codec(name, rate, channels, pt, fmtps.get(pt))
            elif pt in STATIC_PAYLOAD_TYPES:
                static = STATIC_PAYLOAD_TYPES[pt]
                codecs[pt] = Codec(
                    static.name, static.clock_rate, static.channels, pt, fmtps.get(pt)
                )
        return codecs

    def fmtp(self, pt: int) -> str | None:
        """Format parameters of payload type ``pt`` (``a=fmtp:<pt> <params>``)."""
        prefix = f"{pt} "
        for n, v in self.attributes:
            if n == "fmtp" and v is not None and v.startswith(prefix):
                return v[len(prefix) :].strip()
        return None

    @property
    def ptime(self) -> int | None:
        """Packetisation time in ms, None when absent or not a whole number."""
        value = self.get("ptime")
        # Some phones send "20.0"; a fraction is not meaningful for our codecs.
        if value is not None:
            whole = value.partition(".")[0]
            if _is_uint(whole, 6):
                return int(whole)
        return None

    @property
    def rtcp_mux(self) -> bool:
        return self.has("rtcp-mux")


@dataclass(slots=True)
class SessionDescription(_Attributes):
    """A whole SDP body. Mutable, but build a new one rather than editing a received one."""

    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=lambda: [Timing()])
    zone_adjustments: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    def media_direction(self, media: MediaDescription) -> Direction:
        """Effective direction of a stream: media attribute, then session, then sendrecv."""
        return media.direction or self.direction or "sendrecv"

    def media_connection(self, media: MediaDescription) -> Connection | None:
        """Effective connection of a stream: media-level ``c=``, else session-level."""
        return media.connection or self.connection

    def to_bytes(self) -> bytes:
        """Serialize with CRLF line ends in RFC 8866 §5 order.

        An empty ``timings`` list is written as ``t=0 0`` because the line is
        mandatory.
        """
        o = self.origin
        lines = [
            f"v={self.version}",
            f"o={o.username} {o.sess_id} {o.sess_version} {o.nettype} {o.addrtype} {o.address}",
            # "s= " is the RFC 8866 §5.3 spelling of an empty name.
            f"s={self.session_name or ' '}",
        ]
        if self.information is not None:
            lines.append(f"i={self.information}")
        if self.uri is not None:
            lines.append(f"u={self.uri}")
        lines.extend(f"e={e}" for e in self.emails)
        lines.extend(f"p={p}" for p in self.phones)
        if self.connection is not None:
            lines.append(_connection_line(self.connection))
        lines.extend(f"b={b.type}:{b.value}" for b in self.bandwidths)
        for t in self.timings or [Timing()]:
            lines.append(f"t={t.start} {t.stop}")
            lines.extend(f"r={r}" for r in t.repeats)
        if self.zone_adjustments is not None:
            lines.append(f"z={self.zone_adjustments}")
        if self.key is not None:
            lines.append(f"k={self.key}")
        _attribute_lines(lines, self.attributes)
        for m in self.media:
            port = m.port if m.number_of_ports is None else f"{m.port}/{m.number_of_ports}"
            lines.append(" ".join([f"m={m.media}", str(port), m.proto, *m.formats]))
            if m.information is not None:
                lines.append(f"i={m.information}")
            if m.connection is not None:
                lines.append(_connection_line(m.connection))
            lines.extend(f"b={b.type}:{b.value}" for b in m.bandwidths)
            if m.key is not None:
                lines.append(f"k={m.key}")
            _attribute_lines(lines, m.attributes)
        lines.append("")
        return "\r\n".join(lines).encode("utf-8")

    def __bytes__(self) -> bytes:
        return self.to_bytes()


def _connection_line(c: Connection) -> str:
    return f"c={c.nettype} {c.addrtype} {c.address}"


def _attribute_lines(lines: list[str], attributes: list[Attribute]) -> None:
    for name, value in attributes:
        lines.append(f"a={name}" if value is None else f"a={name}:{value}")


# ---------------------------------------------------------------------------
# Parsing


def _is_uint(text: str, max_digits: int) -> bool:
    # str.isdigit alone accepts "²" and other Unicode digits that int() rejects
    # or reads differently; the length cap keeps int() far from its digit limit.
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def _split_rtpmap(value: str) -> tuple[int, str, int, int] | None:
    """``"96 opus/48000/2"`` -> ``(96, "opus", 48000, 2)``; None if malformed."""
    pt_text, _, encoding = value.partition(" ")
    parts = encoding.strip().split("/")
    if not _is_uint(pt_text, 3) or not 2 <= len(parts) <= 3 or not parts[0]:
        return None
    if not _is_uint(parts[1], 10):
        return None
    channels = 1
    if len(parts) == 3:
        if not _is_uint(parts[2], 3) or parts[2].strip("0") == "":
            return None
        channels = int(parts[2])
    return int(pt_text), parts[0], int(parts[1]), channels


def _fields(value: str) -> list[str]:
    # Split on spaces only (RFC 8866 separators), tolerating doubled spaces.
    return [f for f in value.split(" ") if f]


def _show(line: str) -> str:
    """A line as it goes into an error message: printable and short."""
    if not line.isprintable():
        line = line.encode("unicode_escape").decode("ascii")
    return line if len(line) <= 80 else line[:77] + "..."


class _LineError(Exception):
    """Raised by the per-line readers; the parser adds the line number and text."""


def _uint(text: str, what: str, max_digits: int = 20) -> int:
    if not _is_uint(text, max_digits):
        raise _LineError(f"{what} must be a non-negative integer, got {text!r}")
    return int(text)


def _read_origin(value: str) -> Origin:
    f = _fields(value)
    if len(f) != 6:
        raise _LineError(
            "origin needs username, sess-id, sess-version, nettype, addrtype and address"
            f" (6 fields), got {len(f)}"
        )
    return Origin(f[0], f[1], _uint(f[2], "sess-version"), f[3], f[4], f[5])


def _read_connection(value: str) -> Connection:
    f = _fields(value)
    if len(f) != 3:
        raise _LineError("connection needs nettype, addrtype and address")
    return Connection(f[2], f[0], f[1])


def _read_bandwidth(value: str) -> Bandwidth:
    bwtype, sep, amount = value.partition(":")
    if not sep or not bwtype:
        raise _LineError("bandwidth must be '<type>:<value>', e.g. 'AS:64'")
    return Bandwidth(bwtype, _uint(amount, "bandwidth value"))


def _read_timing(value: str) -> Timing:
    f = _fields(value)
    if len(f) != 2:
        raise _LineError("timing needs start and stop times, e.g. 't=0 0'")
    return Timing(_uint(f[0], "start time"), _uint(f[1], "stop time"))


def _read_attribute(value: str) -> Attribute:
    name, sep, attr_value = value.partition(":")
    if not name:
        raise _LineError("attribute has no name")
    if name == "rtpmap" and _split_rtpmap(attr_value) is None:
        raise _LineError(
            "rtpmap must be '<payload type> <encoding>/<clock rate>[/<channels>]',"
            " e.g. 'a=rtpmap:96 opus/48000/2'"
        )
    return name, (attr_value if sep else None)


def _read_media(value: str) -> MediaDescription:
    f = _fields(value)
    if len(f) < 3:
        raise _LineError("media needs type, port and proto, e.g. 'm=audio 49170 RTP/AVP 0'")
    port_text, slash, count_text = f[1].partition("/")
    if not _is_uint(port_text, 5) or int(port_text) > 65535:
        raise _LineError(f"port must be a number from 0 to 65535, got {port_text!r}")
    count = None
    if slash:
        if not _is_uint(count_text, 5) or int(count_text) == 0:
            raise _LineError(f"number of ports must be a positive integer, got {count_text!r}")
        count = int(count_text)
    return MediaDescription(f[0], int(port_text), f[2], f[3:], count)


# Line types that may appear once per level, and where they may appear.
_SESSION_ONLY: Final = frozenset("vosuepztr")
_KNOWN: Final = frozenset("vosiuepcbtrzkam")


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse one SDP body. Raises SdpError (and only SdpError) when it is unusable."""
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = exc.object[exc.start]
            raise SdpError(f"SDP is not valid UTF-8: byte 0x{bad:02x} at offset {exc.start}")
    elif isinstance(data, str):
        text = data
        try:
            # A lone surrogate would parse but could never be serialized again.
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise SdpError(f"SDP text has an unencodable character at offset {exc.start}")
    else:
        raise SdpError(f"SDP must be bytes or str, not {type(data).__name__}")
    sdp = SessionDescription()
    sdp.timings = []
    media: MediaDescription | None = None
    seen: set[str] = set()  # session-level single-occurrence lines already read
    media_seen: set[str] = set()
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip(" \t\r")
        if not line:
            continue
        try:
            media = _parse_line(sdp, media, line, seen, media_seen)
        except _LineError as exc:
            raise SdpError(f"line {number} '{_show(line)}': {exc}") from None
    if "v" not in seen:
        raise SdpError("SDP is empty: expected 'v=0' as the first line")
    if "o" not in seen:
        raise SdpError("SDP has no 'o=' line: the origin (and its session version) is required")
    if not sdp.timings:
        sdp.timings.append(Timing())  # tolerated: see the module docstring
    for index, m in enumerate(sdp.media, 1):
        if m.port != 0 and m.connection is None and sdp.connection is None:
            raise SdpError(
                f"m= line {index} ('{m.media} {m.port}') has no 'c=' address, neither in the"
                " media section nor at session level: there is nowhere to send its media"
            )
    return sdp


def _parse_line(
    sdp: SessionDescription,
    media: MediaDescription | None,
    line: str,
    seen: set[str],
    media_seen: set[str],
) -> MediaDescription | None:
    """Apply one non-blank line; return the media section now being filled."""
    kind = line[0]
    if len(line) < 2 or line[1] != "=":
        raise _LineError("expected '<type>=<value>', e.g. 'a=rtpmap:0 PCMU/8000'")
    value = line[2:]
    if "\x00" in value:
        raise _LineError("NUL character is not allowed in SDP")
    if not seen:
        if kind != "v":
            raise _LineError("SDP must start with 'v=0'")
        if value != "0":
            raise _LineError(f"unsupported SDP version {value!r}: only 'v=0' is defined")
        seen.add("v")
        return None
    if kind not in _KNOWN:
        raise _LineError(
            f"unknown line type {kind!r} (RFC 8866 defines v o s i u e p c b t r z k a m)"
        )

    if kind == "m":
        media = _read_media(value)
        sdp.media.append(media)
        media_seen.clear()
        return media

    if media is not None:
        if kind in _SESSION_ONLY:
            raise _LineError(f"'{kind}=' is only allowed before the first 'm=' line")
        if kind == "a":
            media.attributes.append(_read_attribute(value))
        elif kind == "b":
            media.bandwidths.append(_read_bandwidth(value))
        else:  # i, c, k: at most one each per media section
            if kind in media_seen:
                raise _LineError(f"more than one '{kind}=' line in one media section")
            media_seen.add(kind)
            if kind == "c":
                media.connection = _read_connection(value)
            elif kind == "i":
                media.information = value
            else:
                media.key = value
        return media

    if kind == "a":
        sdp.attributes.append(_read_attribute(value))
    elif kind == "b":
        sdp.bandwidths.append(_read_bandwidth(value))
    elif kind == "e":
        sdp.emails.append(value)
    elif kind == "p":
        sdp.phones.append(value)
    elif kind == "t":
        sdp.timings.append(_read_timing(value))
    elif kind == "r":
        if not sdp.timings:
            raise _LineError("'r=' repeat line must follow a 't=' line")
        sdp.timings[-1].repeats.append(value)
    else:  # v o s i u c z k: at most one each
        if kind in seen:
            raise _LineError(f"more than one '{kind}=' line at session level")
        seen.add(kind)
        if kind == "o":
            sdp.origin = _read_origin(value)
        elif kind == "s":
            sdp.session_name = value
        elif kind == "i":
            sdp.information = value
        elif kind == "u":
            sdp.uri = value
        elif kind == "c":
            sdp.connection = _read_connection(value)
        elif kind == "z":
            sdp.zone_adjustments = value
        elif kind == "k":
            sdp.key = value
    return None
