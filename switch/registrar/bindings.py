"""What a REGISTER asks for: RFC 3261 §10.3 step 6 and 8 as a pure function.

`plan_register` reads the request and returns the changes to make (bindings
to put, keys to remove, `ALL`), or raises `RegisterError` with the response
to give. No I/O, no clock, no look at what is stored: the location store
applies the plan in one atomic step and there makes the checks that depend
on the stored bindings (step 7, Call-ID and CSeq ordering, and the limit of
bindings per AOR). So a REGISTER costs one round trip to a shared store.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sip.address import Address
from ..sip.errors import ParseError
from ..sip.flow import Flow
from ..sip.headers import quote, unquote
from ..sip.message import Request
from ..sip.uri import SipURI
from ..store.location import ALL, Binding, Change


@dataclass(frozen=True)
class Policy:
    min_expires: int = 60
    default_expires: int = 3600
    max_expires: int = 7200
    max_contacts: int = 10


class RegisterError(Exception):
    """The REGISTER is refused; `status`, `reason` and `headers` make the response."""

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


def _bad(detail: str) -> RegisterError:
    return RegisterError(400, f"Bad Request ({detail})")


def _seconds(text: str, what: str) -> int:
    text = text.strip()
    # isascii: str.isdigit also accepts "²", which int() refuses.
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise _bad(f"{what} {text[:20]!r} is not a number of seconds")
    return int(text)


def _q(value: str | None) -> float:
    if value is None:
        return 1.0
    try:
        q = float(value)
    except ValueError:
        raise _bad(f"q {value[:10]!r} is not a number from 0 to 1") from None
    if not 0 <= q <= 1:
        raise _bad(f"q {value[:10]!r} is not a number from 0 to 1")
    # A qvalue has at most three decimals (RFC 3261 §25.1); + 0.0 turns -0.0 into 0.0.
    return round(q, 3) + 0.0


def plan_register(
    req: Request,
    aor: str,
    flow: Flow,
    now: float,
    policy: Policy,
    node: str = "",
) -> list[Change]:
    """The store changes a REGISTER asks for; [] for a query (no Contact)."""
    try:
        contacts = req.contact
    except ParseError as exc:
        raise _bad(f"malformed Contact: {exc.reason}") from None
    expires_header = req.get("Expires")
    default = (
        _seconds(expires_header, "Expires")
        if expires_header is not None
        else policy.default_expires
    )
    if not contacts:
        return []

    if contacts[0].wildcard:
        # "Contact: *" removes every binding, and only with Expires: 0
        # (RFC 3261 §10.2.2); the parser already refused '*' among others.
        if expires_header is None or default != 0:
            raise _bad("Contact '*' needs Expires: 0")
        return [ALL]

    changes: list[Change] = []
    path = tuple(req.get_all("Path"))
    user_agent = (req.get("User-Agent") or "")[:200]
    seen: set[str] = set()
    for contact in contacts:
        binding, expires = _binding(
            contact, aor, default, policy, req, flow, now, node, path, user_agent
        )
        if binding.key in seen:
            continue  # the same contact twice in one REGISTER: once is enough
        seen.add(binding.key)
        # Removing a binding that is not there is no error (RFC 3261 §10.3 step 8).
        changes.append(binding.key if expires == 0 else binding)
    return changes


def _binding(
    contact: Address,
    aor: str,
    default: int,
    policy: Policy,
    req: Request,
    flow: Flow,
    now: float,
    node: str,
    path: tuple[str, ...],
    user_agent: str,
) -> tuple[Binding, int]:
    try:
        uri = contact.uri
    except ParseError as exc:
        raise _bad(f"malformed Contact URI: {exc.reason}") from None
    if not isinstance(uri, SipURI):
        raise _bad(f"Contact {str(uri)[:60]!r} is not a sip: or sips: URI")
    param = contact.params.get("expires")
    expires = _seconds(param, "Contact expires") if param is not None else default
    if 0 < expires < policy.min_expires:
        raise RegisterError(
            423,
            "Interval Too Brief",
            (("Min-Expires", str(policy.min_expires)),),
        )
    expires = min(expires, policy.max_expires)
    instance = contact.params.get("+sip.instance")
    reg_id_text = contact.params.get("reg-id")
    reg_id = None
    if reg_id_text is not None:
        if not (reg_id_text.isascii() and reg_id_text.isdigit()) or len(reg_id_text) > 9:
            raise _bad(f"reg-id {reg_id_text[:10]!r} is not a number")
        reg_id = int(reg_id_text)
    binding = Binding(
        aor=aor,
        contact=str(uri),
        expires_at=now + expires,
        call_id=req.call_id,
        cseq=req.cseq.number,
        q=_q(contact.params.get("q")),
        # An empty instance identifies no device: two would share the key "/<reg-id>".
        instance=(unquote(instance) or None) if instance else None,
        reg_id=reg_id,
        path=path,
        transport=flow.transport,
        source=flow.remote,
        local=flow.local,
        conn_id=flow.conn_id,
        node=node,
        user_agent=user_agent,
        registered_at=now,
    )
    return binding, expires


def contact_header(binding: Binding, now: float) -> str:
    """One Contact value of a 200 to REGISTER: the binding and its time left."""
    left = max(0, int(binding.expires_at - now + 0.5))
    text = f"<{binding.contact}>;expires={left}"
    if binding.q != 1.0:
        # Never exponent notation ("1e-05" is no qvalue), at most three decimals.
        text += ";q=" + f"{binding.q:.3f}".rstrip("0").rstrip(".")
    if binding.instance is not None:
        text += f";+sip.instance={quote(binding.instance)}"
    if binding.reg_id is not None:
        text += f";reg-id={binding.reg_id}"
    return text
