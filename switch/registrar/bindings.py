"""What a REGISTER asks for: RFC 3261 §10.3 steps 6-8 as a pure function.

`plan_register` reads the request and the address-of-record's current
bindings and returns the changes to make (bindings to put, keys to remove),
or raises `RegisterError` with the response to give. No I/O, no clock: the
registrar applies the plan to the location store atomically.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sip.address import Address
from ..sip.errors import ParseError
from ..sip.flow import Flow
from ..sip.headers import quote, unquote
from ..sip.message import Request
from ..sip.uri import SipURI
from ..store.location import Binding, Change


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
    current: list[Binding],
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
    call_id, cseq = req.call_id, req.cseq.number
    by_key = {b.key: b for b in current}

    if contacts[0].wildcard:
        # "Contact: *" removes every binding, and only with Expires: 0
        # (RFC 3261 §10.2.2); the parser already refused '*' among others.
        if expires_header is None or default != 0:
            raise _bad("Contact '*' needs Expires: 0")
        for binding in current:
            _check_order(binding, call_id, cseq)
        return list(by_key)

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
        old = by_key.get(binding.key)
        if old is not None:
            _check_order(old, call_id, cseq)
        if expires == 0:
            if old is not None:
                changes.append(binding.key)
        else:
            changes.append(binding)

    # Too many devices: the oldest make room for the new, as Asterisk does
    # with remove_existing; refusing would lock an agent out of a new browser.
    kept = {b.key: b for b in current}
    for change in changes:
        if isinstance(change, str):
            kept.pop(change, None)
        else:
            kept[change.key] = change
    excess = len(kept) - policy.max_contacts
    if excess > 0:
        new_keys = {c.key for c in changes if isinstance(c, Binding)}
        oldest = sorted(
            (b for b in kept.values() if b.key not in new_keys),
            key=lambda b: b.registered_at,
        )
        changes.extend(b.key for b in oldest[:excess])
    return changes


def _check_order(binding: Binding, call_id: str, cseq: int) -> None:
    # RFC 3261 §10.3 step 7: a REGISTER from the same client (Call-ID) that
    # is not newer than the one that made the binding is out of order.
    if binding.call_id == call_id and cseq <= binding.cseq:
        raise RegisterError(
            500, "Server Internal Error (CSeq out of order)", (("Retry-After", "1"),)
        )


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
