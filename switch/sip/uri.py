"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), including IPv6 references.

URIs are treated as immutable: `replace()` returns a changed copy. A parsed URI
remembers its text so that an unchanged URI serialises to exactly what came
in.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote as _pct_quote
from urllib.parse import unquote as _pct_unquote

from .errors import ParseError
from .headers import format_params, split_params

_is_hostname = re.compile(r"[A-Za-z0-9\-._]+").fullmatch
_has_space_or_control = re.compile(r"[\x00-\x20\x7f]").search
# Characters a user part may carry unescaped (RFC 3261 user = unreserved /
# escaped / user-unreserved).
_USER_SAFE = "-_.!~*'()&=+$,;?/"
_PASSWORD_SAFE = "-_.!~*'()&=+$,"
# uri-parameter names and values: unreserved / escaped / param-unreserved.
_PARAM_SAFE = "-_.!~*'()[]/:&+$"
# Parameters that must match when either URI has them (RFC 3261 §19.1.4).
_MUST_MATCH = ("user", "ttl", "method", "maddr", "transport")


class SipURI:
    """sip: or sips: URI.

    `user`, `password` and the names and values of `params` are stored
    unescaped ("%6C%72" is the parameter "lr"); `headers` is kept as written.
    """

    __slots__ = ("_raw", "headers", "host", "params", "password", "port", "scheme", "user")

    def __init__(
        self,
        host: str,
        user: str | None = None,
        port: int | None = None,
        scheme: str = "sip",
        password: str | None = None,
        params: dict[str, str | None] | None = None,
        headers: str | None = None,
        _raw: str | None = None,
    ) -> None:
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params = params if params is not None else {}
        self.headers = headers
        self._raw = _raw

    # -- derived values -------------------------------------------------

    @property
    def transport(self) -> str | None:
        t = self.params.get("transport")
        return t.lower() if t else None

    @property
    def lr(self) -> bool:
        return "lr" in self.params

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def aor(self) -> str:
        """Address of record: scheme, user and host, lower-cased host."""
        user = f"{self.user}@" if self.user is not None else ""
        return f"{self.scheme}:{user}{self.host.lower()}"

    def replace(self, **changes: object) -> SipURI:
        values = {
            "host": self.host,
            "user": self.user,
            "port": self.port,
            "scheme": self.scheme,
            "password": self.password,
            "params": dict(self.params),
            "headers": self.headers,
        }
        values.update(changes)
        return SipURI(**values)  # type: ignore[arg-type]

    # -- text -------------------------------------------------------------

    def __str__(self) -> str:
        if self._raw is not None:
            return self._raw
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(_escape(self.user, _USER_SAFE))
            if self.password is not None:
                parts.append(":" + _escape(self.password, _PASSWORD_SAFE))
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        for name, value in self.params.items():
            parts.append(f";{_escape(name, _PARAM_SAFE)}")
            if value is not None:
                parts.append(f"={_escape(value, _PARAM_SAFE)}")
        if self.headers:
            parts.append("?" + self.headers)
        return "".join(parts)

    def __repr__(self) -> str:
        return f"SipURI({str(self)!r})"

    # -- comparison (RFC 3261 §19.1.4) -----------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipURI):
            return NotImplemented
        if (
            self.scheme != other.scheme
            or self.user != other.user
            or self.password != other.password
            or _host_key(self.host) != _host_key(other.host)
            or self.port != other.port
        ):
            return False
        for name in _MUST_MATCH:
            a, b = self.params.get(name), other.params.get(name)
            if (name in self.params) != (name in other.params):
                return False
            if a is not None and b is not None and a.lower() != b.lower():
                return False
        for name, value in self.params.items():
            if name in other.params and name not in _MUST_MATCH:
                theirs = other.params[name]
                if (value or "").lower() != (theirs or "").lower():
                    return False
        # Headers must all match, in any order, compared unescaped.
        return _header_set(self.headers) == _header_set(other.headers)

    def __hash__(self) -> int:
        return hash((self.scheme, self.user, _host_key(self.host), self.port))


def _escape(text: str, safe: str) -> str:
    # surrogateescape: unescaping "%FF" gave "\udcff", which must give "%FF" back.
    return _pct_quote(text, safe=safe, errors="surrogateescape")


def _unescape(text: str) -> str:
    return _pct_unquote(text, errors="surrogateescape") if "%" in text else text


def _host_key(host: str) -> str:
    """Host for comparison: case folded, IPv6 references in one canonical form."""
    if host.startswith("["):
        address = _ipv6(host[1:-1])
        if address is not None:
            return f"[{address}]"
    return host.lower()


def _header_set(headers: str | None) -> frozenset[tuple[str, str]]:
    if not headers:
        return frozenset()
    pairs = set()
    for item in headers.split("&"):
        name, _, value = item.partition("=")
        pairs.add((_unescape(name).lower(), _unescape(value)))
    return frozenset(pairs)


class TelURI:
    """tel: URI (RFC 3966): a number and parameters."""

    __slots__ = ("_raw", "number", "params")
    scheme = "tel"

    def __init__(
        self, number: str, params: dict[str, str | None] | None = None, _raw: str | None = None
    ):
        self.number = number
        self.params = params if params is not None else {}
        self._raw = _raw

    def __str__(self) -> str:
        if self._raw is not None:
            return self._raw
        return f"tel:{self.number}{format_params(self.params)}"

    def __repr__(self) -> str:
        return f"TelURI({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TelURI):
            return NotImplemented
        return _digits(self.number) == _digits(other.number) and self.params == other.params

    def __hash__(self) -> int:
        return hash(_digits(self.number))


class AbsoluteURI:
    """Any other scheme (http:, urn:, mailto:): kept as opaque text."""

    __slots__ = ("scheme", "text")

    def __init__(self, scheme: str, text: str) -> None:
        self.scheme = scheme
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"AbsoluteURI({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AbsoluteURI) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)


URI = SipURI | TelURI | AbsoluteURI


def _digits(number: str) -> str:
    return "".join(c for c in number if c not in "-.()")


def parse_uri(text: str) -> URI:
    """Parse a URI; raise ParseError naming what is wrong."""
    colon = text.find(":")
    if colon <= 0:
        raise ParseError(f"URI {text!r} has no scheme")
    scheme = text[:colon].lower()
    if scheme in ("sip", "sips"):
        return _parse_sip(text, scheme, colon + 1)
    if scheme == "tel":
        number, _, params = text[colon + 1 :].partition(";")
        if not number or any(c.isspace() for c in number):
            raise ParseError(f"tel URI {text!r} has no valid number")
        try:
            return TelURI(number, split_params(params), _raw=text)
        except ValueError as exc:
            raise ParseError(f"tel URI {text!r}: {exc}") from None
    if not scheme[0].isalpha() or not all(c.isalnum() or c in "+-." for c in scheme):
        raise ParseError(f"URI {text!r} has an invalid scheme")
    if any(c.isspace() for c in text):
        raise ParseError(f"URI {text!r} contains whitespace")
    return AbsoluteURI(scheme, text)


def parse_sip_uri(text: str) -> SipURI:
    """Parse a URI that must be sip: or sips:."""
    uri = parse_uri(text)
    if not isinstance(uri, SipURI):
        raise ParseError(f"{text!r} is not a sip: or sips: URI", status=416)
    return uri


# user[:password]@host[:port][;params][?headers] with no escapes, IPv6 or
# oddities: the form nearly every peer sends. Anything else takes the
# general path below, which also produces the precise error messages.
_COMMON_SIP = re.compile(
    r"(?:([A-Za-z0-9\-_.!~*'()&=+$,]+)(?::([A-Za-z0-9\-_.!~*'()&=+$,]*))?@)?"
    # No '@' after the host: "sip:a;b@host" has the user "a;b" (RFC 3261
    # allows ';' and '?' in a user), which the general path finds.
    r"([A-Za-z0-9\-.]+)(?::([0-9]{1,5}))?((?:;[^;?\s\"%@]+)*)(?:\?([^\s%@]*))?"
)


def _parse_sip(text: str, scheme: str, pos: int) -> SipURI:
    m = _COMMON_SIP.fullmatch(text, pos)
    if m is not None:
        user, password, host, port, params_text, headers = m.groups()
        if (port is None or int(port) <= 65535) and (not params_text or ";=" not in params_text):
            params = split_params(params_text[1:]) if params_text else {}
            return SipURI(
                host, user, int(port) if port else None, scheme, password, params, headers, text
            )
    return _parse_sip_general(text, scheme, pos)


def _parse_sip_general(text: str, scheme: str, pos: int) -> SipURI:
    rest = text[pos:]
    if not rest:
        raise ParseError(f"URI {text!r} has no host")
    if _has_space_or_control(rest):
        raise ParseError(f"URI {text!r} contains whitespace or control characters")
    user = password = None
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1 :]
        raw_user, sep, raw_pw = userinfo.partition(":")
        if not raw_user:
            raise ParseError(f"URI {text!r} has an empty user part")
        user = _pct_unquote(raw_user, errors="surrogateescape") if "%" in raw_user else raw_user
        if sep:
            password = _pct_unquote(raw_pw, errors="surrogateescape") if "%" in raw_pw else raw_pw
    headers = None
    q = rest.find("?")
    if q >= 0:
        headers = rest[q + 1 :]
        rest = rest[:q]
    hostport, _, params_text = rest.partition(";")
    host, port = split_host_port(hostport, text)
    try:
        params = split_params(params_text) if params_text else {}
    except ValueError as exc:
        raise ParseError(f"URI {text!r}: {exc}") from None
    if "%" in params_text:
        # RFC 4475 esc01: ";%6C%72" is the parameter "lr".
        params = {
            _unescape(name).lower(): None if value is None else _unescape(value)
            for name, value in params.items()
        }
    return SipURI(host, user, port, scheme, password, params, headers, _raw=text)


def split_host_port(hostport: str, context: str) -> tuple[str, int | None]:
    """Split 'host', 'host:port' or '[v6]:port'; validate both parts."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ParseError(f"{context!r}: IPv6 reference without ']'")
        host = hostport[: end + 1]
        if _ipv6(host[1:-1]) is None:
            raise ParseError(f"{context!r}: {host!r} is not an IPv6 address")
        tail = hostport[end + 1 :]
        if not tail:
            return host, None
        if tail[0] != ":":
            raise ParseError(f"{context!r}: unexpected text after IPv6 reference")
        return host, _port(tail[1:], context)
    if hostport.count(":") >= 2:
        raise ParseError(f"{context!r}: an IPv6 address must be written in brackets")
    host, sep, port_text = hostport.partition(":")
    if not host:
        raise ParseError(f"{context!r} has no host")
    if _is_hostname(host) is None:
        raise ParseError(f"{context!r}: invalid host {host!r}")
    return host, (_port(port_text, context) if sep else None)


def _port(text: str, context: str) -> int:
    if not (text.isdigit() and text.isascii()) or len(text) > 5 or int(text) > 65535:
        raise ParseError(f"{context!r}: invalid port {text[:20]!r}")
    return int(text)


def _ipv6(text: str) -> ipaddress.IPv6Address | None:
    """The address in an IPv6 reference, or None.

    RFC 3261's ABNF lets "2001:db8:::192.0.2.1" through (three colons before
    an IPv4 tail); RFC 5118 §4.10 asks receivers to tolerate it as
    "2001:db8::192.0.2.1".
    """
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        pass
    head, sep, tail = text.partition(":::")
    if sep and "." in tail and ":" not in tail:
        try:
            return ipaddress.IPv6Address(f"{head}::{tail}")
        except ValueError:
            pass
    return None
