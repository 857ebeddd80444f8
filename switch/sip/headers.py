"""Header names and the comma-splitting rules of RFC 3261 §7.3.

Header names are case-insensitive and many have a one-letter compact form.
Internally a header is identified by its *key*: the lower-case full name.
"""

from __future__ import annotations

import re

# Canonical spelling of the headers we write ourselves; others keep their
# spelling as given by the caller.
CANONICAL: dict[str, str] = {
    name.lower(): name
    for name in (
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Authentication-Info",
        "Authorization",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Error-Info",
        "Event",
        "Expires",
        "From",
        "Identity",
        "Identity-Info",
        "In-Reply-To",
        "Max-Forwards",
        "Min-Expires",
        "Min-SE",
        "MIME-Version",
        "Organization",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Priority",
        "Privacy",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "RAck",
        "Reason",
        "Record-Route",
        "Refer-To",
        "Referred-By",
        "Reject-Contact",
        "Replaces",
        "Reply-To",
        "Request-Disposition",
        "Require",
        "Retry-After",
        "Route",
        "RSeq",
        "Server",
        "Service-Route",
        "Session-Expires",
        "Subject",
        "Subscription-State",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
    )
}

# RFC 3261 §7.3.3 and later RFCs' compact forms.
COMPACT: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

# Headers whose value is a comma-separated list, so that "Via: a, b" is two
# Via values. Headers such as WWW-Authenticate or Date contain commas that do
# not separate values and are never split.
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "in-reply-to",
        "p-asserted-identity",
        "p-preferred-identity",
        "path",
        "privacy",
        "proxy-require",
        "reason",
        "record-route",
        "reject-contact",
        "request-disposition",
        "require",
        "route",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)

_key_cache: dict[str, str] = {}

_is_token = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+").fullmatch


def is_token(text: str) -> bool:
    """True when `text` is a non-empty RFC 3261 token."""
    return _is_token(text) is not None


def header_key(name: str) -> str:
    """Return the key (lower-case full name) for a header name as written.

    Raises ValueError when the name is not a token.
    """
    key = _key_cache.get(name)
    if key is None:
        if _is_token(name) is None:
            raise ValueError(f"invalid header name {name[:60]!r}")
        key = name.lower()
        key = COMPACT.get(key, key)
        if len(_key_cache) < 4096:  # names come from the network: bound the cache
            _key_cache[name] = key
    return key


def display_name(key: str) -> str:
    """Spelling used when we write a header with this key."""
    return CANONICAL.get(key) or "-".join(part.capitalize() for part in key.split("-"))


def split_list(value: str) -> list[str]:
    """Split a list header value at commas outside quotes and angle brackets."""
    if "," not in value:
        return [value.strip()]
    items: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if in_quotes:
            if c == "\\":
                i += 1  # the escaped character cannot end the string
            elif c == '"':
                in_quotes = False
        elif c == '"':
            in_quotes = True
        elif c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            items.append(value[start:i].strip())
            start = i + 1
        i += 1
    items.append(value[start:].strip())
    return [item for item in items if item]


def split_params(text: str) -> dict[str, str | None]:
    """Parse ';name=value;flag' parameters into an ordered dict.

    Names are lower-cased (they compare case-insensitively); values keep their
    case and quotes. Quoted values may contain ';'.
    """
    params: dict[str, str | None] = {}
    if not text:
        return params
    pieces = _split_quoted(text, ";") if '"' in text else text.split(";")
    for piece in pieces:
        name, eq, val = piece.partition("=")
        name = name.strip().lower()
        if not name:
            if eq or val.strip():
                raise ValueError(f"parameter without a name in {text!r}")
            continue
        params[name] = val.strip() if eq else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def _split_quoted(text: str, sep: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    in_quotes = False
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if in_quotes:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quotes = False
        elif c == '"':
            in_quotes = True
        elif c == sep:
            pieces.append(text[start:i])
            start = i + 1
        i += 1
    if in_quotes:
        raise ValueError(f"unterminated quoted string in {text!r}")
    pieces.append(text[start:])
    return pieces


def unquote(text: str) -> str:
    """Remove the quotes of a quoted-string and its backslash escapes."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if "\\" not in inner:
            return inner
        out = []
        i = 0
        while i < len(inner):
            c = inner[i]
            if c == "\\" and i + 1 < len(inner):
                i += 1
                c = inner[i]
            out.append(c)
            i += 1
        return "".join(out)
    return text


def quote(text: str) -> str:
    """A quoted-string holding `text` (RFC 3261 §25.1).

    Backslash, quote and control characters are written as quoted-pairs; CR
    and LF cannot be, and become spaces so that a value can never end the
    header line.
    """
    return '"' + _NEEDS_PAIR.sub(_pair, text) + '"'


_NEEDS_PAIR = re.compile(r'[\x00-\x1f"\\\x7f]')


def _pair(m: re.Match[str]) -> str:
    c = m.group()
    return " " if c in "\r\n" else "\\" + c
