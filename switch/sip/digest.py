"""SIP Digest authentication: RFC 3261 §22 with RFC 8760 (MD5, SHA-256, qop=auth).

Sans-IO like the rest of the core: the time is always passed in as `now`
(wall-clock seconds, e.g. `time.time()`, because nonces made on one node must
verify on another; a per-process monotonic clock would not do).

Three parts:

- header values: `parse_challenge` / `parse_credentials` and the matching
  `to_header_value()` methods (the caller extracts the value of one
  WWW-Authenticate / Authorization header line from the message);
- hashes: `compute_ha1` / `compute_response`, working from HA1 so that the
  directory never stores passwords;
- the two roles: `DigestAuthenticator` (registrar / UAS) and `authorize`
  (our UAC toward carriers).

qop=auth-int is not supported: we never offer it, and a challenge offering
only auth-int is answered as if it offered no qop (RFC 2617 §3.2.2 lets a
client omit qop).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import os
import re
import string
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from switch.sip.errors import SipError

__all__ = [
    "AuthResult",
    "AuthStatus",
    "Challenge",
    "Credentials",
    "DigestAuthenticator",
    "DigestError",
    "authorize",
    "compute_ha1",
    "compute_response",
    "parse_challenge",
    "parse_credentials",
    "select_challenge",
]


class DigestError(SipError, ValueError):
    """Malformed digest header value, or a digest we cannot compute."""


# --- algorithms ---------------------------------------------------------------


def _md5(data: bytes) -> str:
    # usedforsecurity=False keeps MD5 digest working on FIPS-mode OpenSSL.
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_HASHES: dict[str, Callable[[bytes], str]] = {"MD5": _md5, "SHA-256": _sha256}
# Stands in for the HA1 of an unknown user, so that both failures cost a hash.
_DUMMY_HA1 = {"MD5": "0" * 32, "SHA-256": "0" * 64}

# Algorithm names are case-insensitive (RFC 7616 §3.3); we keep one spelling.
_CANONICAL_ALGORITHMS = {
    name.lower(): name for name in ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess")
}


def _canonical_algorithm(algorithm: str) -> str:
    return _CANONICAL_ALGORITHMS.get(algorithm.lower(), algorithm)


def _split_algorithm(algorithm: str) -> tuple[str, Callable[[bytes], str], bool]:
    """(base algorithm, hash function, is a -sess variant) or DigestError."""
    canonical = _canonical_algorithm(algorithm)
    sess = canonical.endswith("-sess")
    base = canonical.removesuffix("-sess")
    hash_fn = _HASHES.get(base)
    if hash_fn is None:
        raise DigestError(f"unsupported algorithm {algorithm!r}")
    return base, hash_fn, sess


def _utf8(text: str) -> bytes:
    # surrogateescape gives back the original bytes of a header that the
    # transport decoded with surrogateescape.
    return text.encode("utf-8", "surrogateescape")


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(username:realm:password) in hex: what the directory stores, per algorithm.

    For a -sess algorithm this is the same value as for its base algorithm:
    the session key also needs the nonce and cnonce, so `compute_response`
    derives it.
    """
    _, hash_fn, _ = _split_algorithm(algorithm)
    return hash_fn(_utf8(f"{username}:{realm}:{password}"))


def _format_nc(nc: int | str) -> str:
    if isinstance(nc, str):
        return nc
    if not 0 <= nc <= 0xFFFFFFFF:
        raise DigestError(f"nc {nc} does not fit in 8 hex digits")
    return f"{nc:08x}"


def compute_response(
    ha1: str,
    method: str,
    uri: str,
    nonce: str,
    algorithm: str,
    qop: str | None = None,
    nc: int | str | None = None,
    cnonce: str | None = None,
) -> str:
    """The request-digest of RFC 2617 §3.2.2.1 / RFC 7616 §3.4.1, in hex.

    `nc` is the 8-hex-digit string as sent on the wire (the hash covers the
    exact text) or an int, formatted as 8 lower-case hex digits.
    """
    _, hash_fn, sess = _split_algorithm(algorithm)
    if sess:
        if cnonce is None:
            raise DigestError(f"algorithm {algorithm!r} requires a cnonce")
        ha1 = hash_fn(_utf8(f"{ha1}:{nonce}:{cnonce}"))
    ha2 = hash_fn(_utf8(f"{method}:{uri}"))
    if qop is None:
        # RFC 2069 compatibility: no cnonce, no nonce count.
        return hash_fn(_utf8(f"{ha1}:{nonce}:{ha2}"))
    if qop.lower() != "auth":
        raise DigestError(f"qop {qop!r} is not supported")
    if nc is None or cnonce is None:
        raise DigestError("qop=auth requires nc and cnonce")
    return hash_fn(_utf8(f"{ha1}:{nonce}:{_format_nc(nc)}:{cnonce}:auth:{ha2}"))


# --- header values ------------------------------------------------------------

_WS = " \t\r\n"
# token of RFC 3261 §25.1
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "-.!%*_+`'~")
_HEX = frozenset(string.hexdigits)

Extra = tuple[tuple[str, str], ...]


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _scan_token(text: str, i: int) -> int:
    while i < len(text) and text[i] in _TOKEN_CHARS:
        i += 1
    return i


def _scan_quoted(text: str, i: int, header: str, name: str) -> tuple[str, int]:
    """Read a quoted-string whose opening quote is at i-1; unescape quoted-pairs."""
    out: list[str] = []
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(out), i + 1
        if char == "\\" and i + 1 < len(text):
            char = text[i + 1]
            i += 1
        out.append(char)
        i += 1
    raise DigestError(f"{header}: unterminated quoted string in {name!r}")


# The usual credentials and challenges: plain quoted strings (no escapes) and
# unquoted values. One regex checks the whole list; anything else, including
# every error, goes to the scanner below, which says exactly what is wrong.
_FAST_NAME = r"[!%'*+\-.0-9A-Z_`a-z~]+"
_FAST_VALUE = r'(?:"[^"\\\r\n]*"|[^ \t,"\r\n]+)'
_FAST_ITEM = rf"{_FAST_NAME}[ \t]*=[ \t]*{_FAST_VALUE}"
_FAST_LIST = re.compile(rf"[ \t]+{_FAST_ITEM}(?:[ \t]*,[ \t]*{_FAST_ITEM})*")
_FAST_PARAM = re.compile(rf'({_FAST_NAME})[ \t]*=[ \t]*(?:"([^"\\\r\n]*)"|([^ \t,"\r\n]+))')


def _fast_params(rest: str) -> dict[str, str] | None:
    if _FAST_LIST.fullmatch(rest) is None:
        return None
    params: dict[str, str] = {}
    for name, quoted, plain in _FAST_PARAM.findall(rest):
        name = name.lower()
        if name in params:
            return None  # the scanner names the duplicate
        params[name] = quoted or plain
    return params


def _parse_params(value: str, header: str) -> dict[str, str]:
    """'Digest name=value, name="quoted", ...' -> {lower-case name: value}."""
    text = value.strip(_WS)
    if text[:6].lower() == "digest":
        fast = _fast_params(text[6:])
        if fast is not None:
            return fast
    end = _scan_token(text, 0)
    scheme = text[:end]
    if not scheme:
        if not text:
            raise DigestError(f"{header}: empty value")
        raise DigestError(f"{header}: expected an auth scheme, got {text[:20]!r}")
    if scheme.lower() != "digest":
        raise DigestError(f"{header}: unsupported scheme {scheme!r}")
    if end < len(text) and text[end] not in _WS:
        raise DigestError(f"{header}: expected a space after 'Digest', got {text[end]!r}")

    params: dict[str, str] = {}
    i = end
    while True:
        # The list rule (#) of RFC 2617 allows empty elements: skip stray commas.
        while i < len(text) and text[i] in _WS + ",":
            i += 1
        if i >= len(text):
            return params
        end = _scan_token(text, i)
        name = text[i:end].lower()
        if not name:
            raise DigestError(f"{header}: expected a parameter name, got {text[i : i + 20]!r}")
        i = _skip_ws(text, end)
        if i >= len(text) or text[i] != "=":
            raise DigestError(f"{header}: expected '=' after {name!r}")
        i = _skip_ws(text, i + 1)
        if i < len(text) and text[i] == '"':
            param, i = _scan_quoted(text, i + 1, header, name)
        else:
            # Lenient: unquoted values are not always tokens in the wild
            # (base64 nonces with '/' and '='), so take up to the separator.
            end = i
            while end < len(text) and text[end] not in _WS + ',"':
                end += 1
            param = text[i:end]
            if not param:
                raise DigestError(f"{header}: missing value for {name!r}")
            i = end
        if name in params:
            # RFC 7616 §3.4: each parameter appears once; two nonces is an attack
            # or a bug, and guessing which one counts would hide it.
            raise DigestError(f"{header}: duplicate {name!r} parameter")
        params[name] = param
        i = _skip_ws(text, i)
        if i < len(text) and text[i] != ",":
            raise DigestError(f"{header}: expected ',' after {name!r} value, got {text[i]!r}")


def _require(params: dict[str, str], header: str, *names: str) -> None:
    for name in names:
        if name not in params:
            raise DigestError(f"{header}: missing {name!r} parameter")


def _extra(params: dict[str, str], known: frozenset[str]) -> Extra:
    if params.keys() <= known:  # the usual case: nothing unknown
        return ()
    return tuple((name, value) for name, value in params.items() if name not in known)


def _quote(name: str, value: str) -> str:
    # quoted-pair cannot carry CR or LF (RFC 3261 §25.1); letting them through
    # would let a username inject header lines.
    if "\r" in value or "\n" in value:
        raise DigestError(f"{name!r} cannot contain CR or LF")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{name}="{escaped}"'


def _unquoted(name: str, value: str) -> str:
    if not value or not set(value) <= _TOKEN_CHARS:
        raise DigestError(f"{name!r} must be a token, got {value!r}")
    return f"{name}={value}"


def _join(parts: list[str], extra: Extra) -> str:
    for name, value in extra:
        if not name or not set(name) <= _TOKEN_CHARS:
            raise DigestError(f"parameter name {name!r} is not a token")
        parts.append(_quote(name, value))
    return "Digest " + ", ".join(parts)


_CHALLENGE_PARAMS = frozenset(("realm", "nonce", "opaque", "algorithm", "qop", "stale", "domain"))
_CREDENTIAL_PARAMS = frozenset(
    (
        "username",
        "realm",
        "nonce",
        "uri",
        "response",
        "algorithm",
        "cnonce",
        "opaque",
        "qop",
        "nc",
    )
)


@dataclass(frozen=True, slots=True)
class Challenge:
    """One WWW-Authenticate / Proxy-Authenticate Digest challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"  # the default when the parameter is absent
    qop: tuple[str, ...] = ()  # lower-case options; () = none offered
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None  # space-separated URIs, kept as given
    extra: Extra = ()  # unknown parameters, in order, unquoted

    def to_header_value(self) -> str:
        parts = [_quote("realm", self.realm)]
        if self.domain is not None:
            parts.append(_quote("domain", self.domain))
        parts.append(_quote("nonce", self.nonce))
        if self.opaque is not None:
            parts.append(_quote("opaque", self.opaque))
        if self.stale:
            parts.append("stale=TRUE")
        parts.append(_unquoted("algorithm", self.algorithm))
        if self.qop:
            for option in self.qop:
                _unquoted("qop", option)  # validate each option
            parts.append(_quote("qop", ",".join(self.qop)))
        return _join(parts, self.extra)


@dataclass(frozen=True, slots=True)
class Credentials:
    """One Authorization / Proxy-Authorization Digest response."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None  # lower-case
    nc: str | None = None  # 8 hex digits exactly as sent: the hash covers the text
    extra: Extra = ()

    def to_header_value(self) -> str:
        parts = [
            _quote("username", self.username),
            _quote("realm", self.realm),
            _quote("nonce", self.nonce),
            _quote("uri", self.uri),
            _quote("response", self.response),
            _unquoted("algorithm", self.algorithm),
        ]
        if self.cnonce is not None:
            parts.append(_quote("cnonce", self.cnonce))
        if self.opaque is not None:
            parts.append(_quote("opaque", self.opaque))
        if self.qop is not None:
            parts.append(_unquoted("qop", self.qop))
        if self.nc is not None:
            parts.append(_unquoted("nc", self.nc))
        return _join(parts, self.extra)


def parse_challenge(value: str, header: str = "WWW-Authenticate") -> Challenge:
    """Parse one challenge. `header` only names the header in error messages."""
    params = _parse_params(value, header)
    _require(params, header, "realm", "nonce")
    qop = tuple(
        option.strip(_WS).lower()
        for option in params.get("qop", "").split(",")
        if option.strip(_WS)
    )
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=_canonical_algorithm(params.get("algorithm", "MD5")),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
        domain=params.get("domain"),
        extra=_extra(params, _CHALLENGE_PARAMS),
    )


def parse_credentials(value: str, header: str = "Authorization") -> Credentials:
    """Parse one set of credentials. `header` only names the header in errors."""
    params = _parse_params(value, header)
    _require(params, header, "username", "realm", "nonce", "uri", "response")
    nc = params.get("nc")
    if nc is not None and not (len(nc) == 8 and set(nc) <= _HEX):
        raise DigestError(f"{header}: nc {nc!r} is not 8 hex digits")
    qop = params.get("qop")
    if qop is not None:
        qop = qop.lower()
        for name in ("cnonce", "nc"):
            if name not in params:
                raise DigestError(f"{header}: missing {name!r} parameter (required with qop)")
    return Credentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=_canonical_algorithm(params.get("algorithm", "MD5")),
        cnonce=params.get("cnonce"),
        opaque=params.get("opaque"),
        qop=qop,
        nc=nc,
        extra=_extra(params, _CREDENTIAL_PARAMS),
    )


# --- client side ----------------------------------------------------------------


def _supported(algorithm: str) -> bool:
    try:
        _split_algorithm(algorithm)
    except DigestError:
        return False
    return True


def select_challenge(challenges: Iterable[Challenge]) -> Challenge | None:
    """The first challenge whose algorithm we support (RFC 8760 §2.4: the UAS
    lists them in its order of preference), or None."""
    return next((c for c in challenges if _supported(c.algorithm)), None)


def authorize(
    challenge: Challenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int = 1,
) -> Credentials:
    """Answer a challenge; qop=auth when offered, else RFC 2069 style."""
    ha1 = compute_ha1(username, challenge.realm, password, challenge.algorithm)
    if "auth" in challenge.qop:
        qop: str | None = "auth"
        nc_text: str | None = _format_nc(nc)
        used_cnonce: str | None = cnonce
    else:
        qop = nc_text = None
        # -sess needs a cnonce even without qop (RFC 2617 §3.2.2.2).
        used_cnonce = cnonce if challenge.algorithm.endswith("-sess") else None
    response = compute_response(
        ha1, method, uri, challenge.nonce, challenge.algorithm, qop, nc_text, used_cnonce
    )
    return Credentials(
        username=username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=challenge.algorithm,
        cnonce=used_cnonce,
        opaque=challenge.opaque,
        qop=qop,
        nc=nc_text,
    )


# --- server side ------------------------------------------------------------------


class AuthStatus(enum.Enum):
    OK = "ok"
    STALE = "stale"  # right password, old nonce: re-challenge with stale=true
    # Not a nonce of ours: forged, or issued before a restart changed the
    # secret. It says nothing about the password, so challenge again rather
    # than count a failure (a phone reusing a nonce across our restart
    # must not get banned).
    UNKNOWN_NONCE = "unknown nonce"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Outcome of `DigestAuthenticator.verify`.

    `reason` is for the log line only. Answer every FAILED the same way
    whatever the reason, so that "unknown user" and "wrong password" cannot
    be told apart from outside (no extension enumeration).
    """

    status: AuthStatus
    username: str | None = None  # set only when OK
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status is AuthStatus.OK


def _failed(reason: str) -> AuthResult:
    return AuthResult(AuthStatus.FAILED, reason=reason)


# nonce = base64url(issued_ms:8 | salt:8 | mac:16); the salt keeps two
# challenges in the same millisecond apart, so their nonce counts are separate.
_NONCE_BYTES = 32
_MAC_BYTES = 16


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class DigestAuthenticator:
    """Stateless nonces, bounded nonce-count memory. One per realm.

    Nonces carry their issue time and an HMAC over it and the realm, so any
    node holding `secret` can check them without shared state. The highest
    nc seen per nonce is kept in this process only: a replay sent to another
    node is not caught (that would need the shared store).
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        nonce_ttl: float = 300,
        algorithms: Iterable[str] = ("SHA-256", "MD5"),
        *,
        allow_no_qop: bool = False,
        max_tracked_nonces: int = 10_000,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not secret:
            raise ValueError("secret must not be empty")
        if max_tracked_nonces < 1:
            raise ValueError("max_tracked_nonces must be at least 1")
        self.realm = realm
        self.nonce_ttl = nonce_ttl
        self.allow_no_qop = allow_no_qop
        self.algorithms = tuple(_canonical_algorithm(a) for a in algorithms)
        if not self.algorithms:
            raise ValueError("algorithms must not be empty")
        for algorithm in self.algorithms:
            _split_algorithm(algorithm)  # raises DigestError if unsupported
        self._secret = secret
        self._realm_bytes = _utf8(realm)
        self._entropy = entropy
        self._max_tracked = max_tracked_nonces
        # nonce -> (issued_ms, highest nc), least recently used first.
        self._seen: OrderedDict[str, tuple[int, int]] = OrderedDict()
        # Nonces issued at or before this were possibly forgotten under memory
        # pressure; an untracked one is answered STALE rather than trusted.
        self._forgotten_before_ms = -1
        self._templates: dict[bool, list[tuple[str, ...]]] = {}

    # nonces

    def _mac(self, head: bytes) -> bytes:
        # hmac.digest is the one-shot C path: several times faster than hmac.new.
        return hmac.digest(self._secret, head + self._realm_bytes, "sha256")[:_MAC_BYTES]

    def make_nonce(self, now: float) -> str:
        """A fresh nonce: issue time (ms), random salt, HMAC over both and the realm."""
        issued_ms = min(max(int(now * 1000), 0), 2**64 - 1)
        head = struct.pack("!Q", issued_ms) + self._entropy(8)
        return _b64(head + self._mac(head))

    def _nonce_issued_ms(self, nonce: str) -> int | None:
        """Issue time of a nonce we made, or None if we did not make it."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, binascii.Error):
            return None
        # The decoder skips stray characters; insisting on the canonical text
        # stops one nonce being dressed up as many fresh nc slots.
        if len(raw) != _NONCE_BYTES or _b64(raw) != nonce:
            return None
        head, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(head)):
            return None
        return struct.unpack("!Q", head[:8])[0]

    def challenge_values(self, now: float, stale: bool = False) -> list[str]:
        """`challenge()` as header values, ready to send: the hot path of a registrar.

        Only the nonce changes between challenges, so the rest is formatted
        once per realm and the nonce (base64url, nothing to quote) is spliced in.
        """
        templates = self._templates.get(stale)
        if templates is None:
            marker = "\x00nonce\x00"
            parts = [
                c.to_header_value().split(marker)
                for c in (
                    Challenge(
                        realm=self.realm, nonce=marker, algorithm=a, qop=("auth",), stale=stale
                    )
                    for a in self.algorithms
                )
            ]
            if any(len(p) != 2 for p in parts):  # the marker in the realm itself: no template
                return [c.to_header_value() for c in self.challenge(now, stale)]
            templates = [(head, tail) for head, tail in parts]
            self._templates[stale] = templates
        nonce = self.make_nonce(now)
        return [f"{head}{nonce}{tail}" for head, tail in templates]

    def challenge(self, now: float, stale: bool = False) -> list[Challenge]:
        """One challenge per algorithm, preferred first (RFC 8760 §2.4), one nonce."""
        nonce = self.make_nonce(now)
        return [
            Challenge(realm=self.realm, nonce=nonce, algorithm=a, qop=("auth",), stale=stale)
            for a in self.algorithms
        ]

    # verification

    def verify(
        self,
        method: str,
        creds: Credentials,
        ha1_for: Callable[[str, str], str | None],
        now: float,
        request_uri: str | None = None,
    ) -> AuthResult:
        """Check credentials against the request they came with.

        `ha1_for(username, algorithm)` returns the stored HA1 for the base
        algorithm ("MD5" or "SHA-256") or None for an unknown user.
        """
        if creds.realm != self.realm:
            return _failed("realm mismatch")
        algorithm = _canonical_algorithm(creds.algorithm)
        if algorithm not in self.algorithms:
            return _failed("algorithm not offered")
        if creds.qop is None:
            if not self.allow_no_qop:
                return _failed("qop required")
        elif creds.qop.lower() != "auth":
            return _failed("qop not offered")
        elif creds.cnonce is None or not _valid_nc(creds.nc):
            return _failed("malformed credentials")
        if request_uri is not None and creds.uri != request_uri:
            return _failed("uri mismatch")
        issued_ms = self._nonce_issued_ms(creds.nonce)
        if issued_ms is None:
            return AuthResult(AuthStatus.UNKNOWN_NONCE, reason="nonce not ours")

        base, _, _ = _split_algorithm(algorithm)
        stored = ha1_for(creds.username, base)
        # Hash even for an unknown user so both failures take the same time.
        ha1 = stored.lower() if stored is not None else _DUMMY_HA1[base]
        try:
            expected = compute_response(
                ha1, method, creds.uri, creds.nonce, algorithm, creds.qop, creds.nc, creds.cnonce
            )
            matches = hmac.compare_digest(_utf8(expected), _utf8(creds.response.lower()))
        except (DigestError, UnicodeError):
            return _failed("malformed credentials")
        if stored is None:
            return _failed("unknown user")
        if not matches:
            return _failed("wrong password")

        # Only a correct digest earns stale=true (RFC 7616 §3.3: the client
        # then retries without asking the user again).
        age = now - issued_ms / 1000
        if not -self.nonce_ttl <= age <= self.nonce_ttl:
            return AuthResult(AuthStatus.STALE, reason="nonce expired")
        if creds.qop is None:
            return AuthResult(AuthStatus.OK, username=creds.username)
        return self._check_nc(creds, issued_ms, now)

    def _check_nc(self, creds: Credentials, issued_ms: int, now: float) -> AuthResult:
        self._prune(now)
        nc = int(creds.nc or "0", 16)
        entry = self._seen.get(creds.nonce)
        if entry is None and issued_ms <= self._forgotten_before_ms:
            return AuthResult(AuthStatus.STALE, reason="nonce forgotten")
        last = entry[1] if entry is not None else 0
        if nc <= last:
            return _failed("nc replay")
        self._seen[creds.nonce] = (issued_ms, nc)
        self._seen.move_to_end(creds.nonce)
        while len(self._seen) > self._max_tracked:
            _, (evicted_ms, _) = self._seen.popitem(last=False)
            self._forgotten_before_ms = max(self._forgotten_before_ms, evicted_ms)
        return AuthResult(AuthStatus.OK, username=creds.username)

    def _prune(self, now: float) -> None:
        # Expired nonces are answered STALE anyway, so their counts can go.
        # Pruning stops at the first live entry: cheap, and the cap bounds the rest.
        limit_ms = (now - self.nonce_ttl) * 1000
        while self._seen:
            issued_ms, _ = next(iter(self._seen.values()))
            if issued_ms >= limit_ms:
                break
            self._seen.popitem(last=False)

    @property
    def tracked_nonces(self) -> int:
        return len(self._seen)


def _valid_nc(nc: str | None) -> bool:
    return nc is not None and len(nc) == 8 and set(nc) <= _HEX
