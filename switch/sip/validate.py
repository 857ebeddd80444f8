"""What a UAS checks before a request reaches a transaction (RFC 3261 §8.2).

The parser only frames: it splits header lines and reads Content-Length.
These checks read the rest and say which answer a broken request gets, so
that the stack can answer 400, 416, 420, 505 or 415 with a reason phrase that
names the problem, and drop what cannot be answered at all.

The order of the checks follows RFC 3261 §8.2: version, Request-URI, then the
headers every request needs, then extensions and the body. The first problem
found is the one reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ParseError
from .headers import display_name
from .message import SIP_VERSION, Request, Response
from .uri import SipURI

# Headers every request carries (RFC 3261 §8.1.1).
REQUIRED = ("to", "from", "call-id", "cseq", "via", "max-forwards")
# Headers that may appear once at most (RFC 3261 §7.3.1: only list headers repeat).
SINGLE = ("to", "from", "call-id", "cseq", "max-forwards", "content-length", "content-type")
# Request-URI schemes a UAS here serves (RFC 3261 §8.2.2.1: others get 416).
SCHEMES = frozenset({"sip", "sips", "tel"})
# Content codings we can read; a body in any other gets 415 (RFC 3261 §8.2.3).
ENCODINGS = frozenset({"identity"})
# A branch that is only the RFC 3261 magic cookie identifies no transaction.
MAGIC_COOKIE = "z9hG4bK"
MAX_CSEQ = 2**31 - 1


@dataclass(frozen=True)
class Rejection:
    """The answer to a request that cannot go further."""

    status: int
    reason: str  # reason phrase naming the problem, e.g. "Bad Request (missing CSeq header)"
    headers: tuple[tuple[str, str], ...] = ()  # e.g. (("Unsupported", "foo"),) for 420


def check_request(
    req: Request,
    supported: frozenset[str] = frozenset(),
    *,
    media_types: frozenset[str] | None = None,
) -> Rejection | None:
    """The rejection a UAS sends for `req`, or None when the request is sound.

    `supported` holds the option tags this UAS implements (compared without
    regard to case); a Require naming any other gets 420. `media_types`, when
    given, are the body types the caller understands: a body of another type
    gets 415 with an Accept header (RFC 3261 §8.2.3). Without it the body type
    is left to the application.
    """
    if req.version.upper() != SIP_VERSION:
        return Rejection(505, "Version Not Supported")
    problem = _request_uri(req)
    if problem is not None:
        return problem
    problem = _headers(req) or _contact(req)
    if problem is not None:
        return _bad(problem)
    if req.method not in ("ACK", "CANCEL"):
        # RFC 3261 §8.2.2.3: ACK and CANCEL are never refused for Require.
        unknown = _unsupported(req, supported)
        if unknown:
            return Rejection(420, "Bad Extension", (("Unsupported", ", ".join(unknown)),))
    return _body(req, media_types)


def check_response(resp: Response) -> str | None:
    """Why a received response must be dropped, or None to let it through.

    A UAC cannot answer a broken response; it drops it (RFC 3261 §8.1.3.3
    for more than one Via, the parser-level rules of §7.3 for the rest).
    """
    if resp.version.upper() != SIP_VERSION:
        return f"unsupported version {resp.version[:20]!r}"
    if not 100 <= resp.status <= 699:
        return f"status code {resp.status} out of range"
    for key in ("via", "to", "from", "call-id", "cseq"):
        if key not in resp:
            return f"missing {display_name(key)} header"
    try:
        vias = resp.via
        if len(vias) != 1:
            # Sent by us, so exactly one Via; more would send us somewhere else.
            return f"{len(vias)} Via values (a UAC expects one)"
        resp.from_  # noqa: B018  (parse to validate)
        resp.to  # noqa: B018
        resp.call_id  # noqa: B018
        if resp.cseq.number > MAX_CSEQ:
            return "CSeq number is larger than 2**31-1"
    except ParseError as exc:
        return exc.reason
    return None


def can_answer(req: Request) -> bool:
    """True when a response can be built and sent back for `req`.

    A response copies Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2) and
    goes where the top Via says: without those there is no one to answer, so
    the stack drops the request and counts it. The values other than the top
    Via and CSeq are copied as text and need not parse: "To: <sip:a" still
    gets its 400.
    """
    if "from" not in req or "to" not in req or "call-id" not in req:
        return False
    try:
        req.top_via  # noqa: B018
        req.cseq  # noqa: B018  (the transaction layer matches on its method)
    except ParseError:
        return False
    return True


# -- the checks ---------------------------------------------------------------------


def _bad(problem: str) -> Rejection:
    return Rejection(400, f"Bad Request ({problem})")


def _request_uri(req: Request) -> Rejection | None:
    try:
        uri = req.uri
    except ParseError:
        return _bad("malformed Request-URI")
    if uri.scheme not in SCHEMES:
        return Rejection(416, f"Unsupported URI Scheme ({uri.scheme[:30]})")
    if isinstance(uri, SipURI) and uri.headers is not None:
        # RFC 3261 §19.1.1: headers are not allowed in a Request-URI (RFC 4475 escruri).
        return _bad("Request-URI has headers")
    return None


def _headers(req: Request) -> str | None:
    """The first problem with the headers every request needs, or None."""
    keys = req._keys  # lower-case full names, one per line: checked without parsing
    for key in REQUIRED:
        if key not in keys:
            return f"missing {display_name(key)} header"
    for key in SINGLE:
        if key in keys and keys.count(key) > 1:
            return f"more than one {display_name(key)} header"
    try:
        vias = req.via
    except ParseError:
        return "malformed Via"
    if not vias:
        return "empty Via"
    for via in vias:
        if via.protocol.upper() != SIP_VERSION:
            return "Via protocol is not SIP/2.0"
    if vias[0].branch == MAGIC_COOKIE:
        # RFC 4475 badbranch: every such request would share one transaction.
        return "Via branch has no transaction id"
    try:
        req.from_.uri  # noqa: B018  (URIs are parsed lazily: parse them now)
    except ParseError:
        return "malformed From"
    try:
        req.to.uri  # noqa: B018
    except ParseError:
        return "malformed To"
    try:
        req.call_id  # noqa: B018
    except ParseError:
        return "malformed Call-ID"
    try:
        cseq = req.cseq
    except ParseError:
        return "malformed CSeq"
    if cseq.number > MAX_CSEQ:
        # Before Max-Forwards: RFC 4475 scalar02 expects the CSeq named.
        return "CSeq number is larger than 2**31-1"
    if cseq.method != req.method:
        return "CSeq method does not match"
    try:
        req.max_forwards  # noqa: B018
    except ParseError:
        return "Max-Forwards is not a number from 0 to 255"
    return None


def _contact(req: Request) -> str | None:
    try:
        contacts = req.contact
        for contact in contacts:
            if not contact.wildcard:
                contact.uri  # noqa: B018
    except ParseError:
        return "malformed Contact"
    if any(c.wildcard for c in contacts):
        # RFC 3261 §10.2.2: "*" removes all bindings, and only so.
        if req.method != "REGISTER":
            return "Contact '*' outside REGISTER"
        expires = req.get("expires") or ""
        if not (expires.isdigit() and expires.isascii()) or expires.strip("0"):
            return "Contact '*' needs Expires: 0"
    return None


def _unsupported(req: Request, supported: frozenset[str]) -> list[str]:
    known = {tag.lower() for tag in supported}
    return [tag for tag in req.get_all("require") if tag.lower() not in known]


def _body(req: Request, media_types: frozenset[str] | None) -> Rejection | None:
    if not req.body:
        return None
    content_type = req.content_type
    if content_type is None:
        # RFC 3261 §20.15: a body without a type cannot be read.
        return _bad("body without Content-Type")
    # Content-Encoding is a list header: get_all splits it at commas.
    unknown = [c for c in req.get_all("content-encoding") if c.lower() not in ENCODINGS]
    if unknown:
        return Rejection(
            415,
            f"Unsupported Media Type (Content-Encoding {unknown[0][:40]})",
            (("Accept-Encoding", ", ".join(sorted(ENCODINGS))),),
        )
    if media_types is not None and content_type not in media_types:
        return Rejection(
            415,
            f"Unsupported Media Type ({content_type[:60]})",
            (("Accept", ", ".join(sorted(media_types))),),
        )
    return None
