"""name-addr / addr-spec values of From, To, Contact, Route and friends.

RFC 3261 §20.10: in the addr-spec form (no angle brackets) every ';param'
after the URI belongs to the header, not to the URI.
"""

from __future__ import annotations

import re

from .errors import ParseError
from .headers import format_params, is_token, quote, split_params
from .uri import URI, parse_uri


class Address:
    """A display name, a URI and header parameters (tag, expires, q, ...)."""

    __slots__ = ("_uri", "_uri_text", "display", "params", "wildcard")

    def __init__(
        self,
        uri: URI | str | None,
        display: str | None = None,
        params: dict[str, str | None] | None = None,
        wildcard: bool = False,
    ) -> None:
        # The URI is parsed on first use: a B2BUA mostly needs the tag of
        # From and To, not their URIs.
        if isinstance(uri, str):
            self._uri: URI | None = None
            self._uri_text = uri
        else:
            self._uri = uri
            self._uri_text = str(uri) if uri is not None else ""
        self.display = display
        self.params = params if params is not None else {}
        self.wildcard = wildcard  # "Contact: *"

    @property
    def uri(self) -> URI:
        if self._uri is None:
            if self.wildcard:
                raise ParseError("the wildcard Contact '*' has no URI")
            self._uri = parse_uri(self._uri_text)
        return self._uri

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> Address:
        params = dict(self.params)
        params["tag"] = tag
        return Address(self._uri or self._uri_text, self.display, params)

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        uri = self._uri_text if self._uri is None else str(self._uri)
        if self.display is None:
            head = f"<{uri}>"
        elif all(is_token(word) for word in self.display.split(" ")):
            # Tokens separated by single spaces read back as written.
            head = f"{self.display} <{uri}>"
        else:
            head = f"{quote(self.display)} <{uri}>"
        return head + format_params(self.params)

    def __repr__(self) -> str:
        return f"Address({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Address):
            return NotImplemented
        return (
            self.wildcard == other.wildcard
            and self.uri == other.uri
            and self.params == other.params
            and (self.display or None) == (other.display or None)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable params


# '"Display" <uri>;params' or 'Token Display <uri>;params' or '<uri>;params'
# without escapes or quoted parameter values; the rest takes the general path.
_COMMON = re.compile(
    r'(?:"([^"\\]*)" ?|([A-Za-z0-9\-.!%*_+`\'~ ]*?) ?)'
    r'<([A-Za-z][A-Za-z0-9+\-.]*:[^<>\s"]+)>(;[^"\s]*)?'
)


def parse_address(text: str) -> Address:
    """Parse one name-addr or addr-spec with its parameters."""
    m = _COMMON.fullmatch(text)
    if m is not None:
        quoted, token, uri_text, params_text = m.groups()
        if quoted is not None:
            display = quoted
        else:
            display = " ".join(token.split()) or None if token else None
        params = {}
        if params_text:
            for piece in params_text[1:].split(";"):
                name, eq, val = piece.partition("=")
                if not name:
                    raise ParseError(f"address {text!r}: empty parameter")
                params[name.lower()] = val if eq else None
        return Address(uri_text, display, params)
    text = text.strip()
    if text == "*":
        return Address(None, wildcard=True)
    if not text:
        raise ParseError("empty address")
    display: str | None = None
    if text[0] == '"':
        end = _closing_quote(text)
        display = _unescape(text[1:end])
        rest = text[end + 1 :].lstrip()
        if not rest.startswith("<"):
            raise ParseError(f"address {text!r}: quoted display name must be followed by <URI>")
        return _bracketed(text, rest, display)
    lt = text.find("<")
    if lt >= 0:
        name = text[:lt].strip()
        if name:
            if not all(is_token(word) for word in name.split()):
                raise ParseError(f"address {text!r}: display name must be tokens or quoted")
            display = " ".join(name.split())
        return _bracketed(text, text[lt:], display)
    # addr-spec: the URI ends at the first ';' (its own params would be
    # ambiguous with header params, so RFC 3261 forbids them here).
    uri_text, _, params_text = text.partition(";")
    uri_text = uri_text.strip()
    if "," in uri_text or "?" in uri_text:
        raise ParseError(f"address {text!r}: URI with ',' or '?' must be in <>")
    _check_uri_text(uri_text, text)
    return Address(uri_text, None, _params(params_text, text))


def _bracketed(text: str, rest: str, display: str | None) -> Address:
    gt = rest.find(">")
    if gt < 0:
        raise ParseError(f"address {text!r}: missing '>'")
    uri_text = rest[1:gt]
    if uri_text != uri_text.strip():
        raise ParseError(f"address {text!r}: whitespace inside <>")
    tail = rest[gt + 1 :].strip()
    if tail and tail[0] != ";":
        raise ParseError(f"address {text!r}: unexpected text after '>'")
    _check_uri_text(uri_text, text)
    return Address(uri_text, display, _params(tail[1:], text))


def _check_uri_text(uri_text: str, text: str) -> None:
    # Cheap structural check now; the full URI grammar is checked on use.
    colon = uri_text.find(":")
    if colon <= 0 or colon == len(uri_text) - 1:
        raise ParseError(f"address {text!r}: {uri_text!r} is not a URI")


def _params(params_text: str, text: str) -> dict[str, str | None]:
    try:
        return split_params(params_text)
    except ValueError as exc:
        raise ParseError(f"address {text!r}: {exc}") from None


def _closing_quote(text: str) -> int:
    i = 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i
        i += 1
    raise ParseError(f"address {text!r}: unterminated quoted display name")


def _unescape(inner: str) -> str:
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
