"""Registering to a carrier: what REGISTER to send next, and when (sans-IO).

A trunk with `register = true` keeps a registration at its carrier so that
the carrier knows where to send our calls. We are the UAC here: the carrier
challenges (401 or 407) and we answer with digest; it grants an expiry (the
Contact's expires, else Expires), and we refresh before it runs out, at a
margin as Asterisk does. 423 is retried with the carrier's Min-Expires;
every other failure is retried after a backoff that doubles, with one
warning naming the trunk, the status and what to check. When the node
stops, the registration is removed (Expires: 0).

`Registration` does no I/O and reads no clock: the runner
(`switch.call.carrier`) sends the requests it returns, feeds back the final
responses (a made-up 408 for a timeout), and calls `handle_timer(now)` at
`next_deadline()`. One REGISTER is in flight at a time.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from ..sip.digest import Challenge, DigestError, authorize, parse_challenge, select_challenge
from ..sip.errors import ParseError
from ..sip.message import Request, Response
from ..sip.transaction import new_branch

log = logging.getLogger("switch.call")

# The longest wait between two attempts, however often they failed.
MAX_BACKOFF = 3600.0

# What to check, by status, in the warning of a failed registration.
_ADVICE = {
    401: "the carrier refuses the credentials: check username, auth_username and password",
    403: "the carrier refuses this account: check username, auth_username and password",
    404: "the carrier does not know this account: check username and registrar",
    407: "the carrier refuses the credentials: check username, auth_username and password",
    408: "no answer from the registrar: check registrar (or outbound_host), transport "
    "and the firewall",
    423: "the carrier wants a longer expiry than it says: check register_expires",
    503: "the carrier or the path to it is unavailable",
}


@dataclass(frozen=True, slots=True)
class Account:
    """Who registers where: the trunk's settings, resolved by the runner."""

    trunk: str  # "tenant/name", for log lines
    username: str  # the AOR's user (From, To)
    password: str
    domain: str  # the registrar's host[:port] as configured (Request-URI, AOR host)
    contact_user: str  # the user part of our Contact: carriers send calls to it
    expires: int = 3600  # asked for
    retry: float = 60.0  # first wait after a failure; doubles up to MAX_BACKOFF
    auth_username: str | None = None  # digest username, when it differs


def refresh_after(granted: int) -> float:
    """Seconds after a 200 to send the refresh: at a safe margin before expiry.

    Like Asterisk's expiry guard: 30 s early for long registrations, a
    quarter of the time early for short ones (where 30 s would be most of it).
    """
    return granted - 30.0 if granted >= 120 else granted * 0.75


class Registration:
    """One trunk's registration at its carrier; states:

    idle -> registering -> registered -> registering (refresh) -> ...
    registering -> failed -> registering (after the backoff)
    any -> unregistering -> stopped (stop())
    """

    def __init__(
        self, account: Account, via_transport: str, sent_by: str, user_agent: str = "switch"
    ) -> None:
        self.account = account
        self.user_agent = user_agent
        self.via_transport = via_transport  # "UDP", "TCP", "TLS"
        self.sent_by = sent_by  # our host:port as the carrier sees it
        self.state = "idle"
        self.expires = account.expires  # what we ask for (423 raises it)
        self.granted: int | None = None
        self.registered_until: float | None = None
        self.last_status: int | None = None
        self.failures = 0  # in a row
        self._deadline: float | None = None
        self._call_id = secrets.token_hex(12)
        self._from_tag = secrets.token_hex(6)
        self._cseq = 0
        self._challenge: Challenge | None = None
        self._proxy = False  # the challenge came in a 407
        self._nc = 0
        self._challenges = 0  # challenges answered in this attempt
        self._sent_expires = 0
        self._why: str | None = None  # what to check, when a failure has a reason of its own

    # -- what the runner calls ------------------------------------------------------

    def start(self, now: float) -> Request:
        """The first REGISTER."""
        return self._attempt(now)

    def next_deadline(self) -> float | None:
        """When `handle_timer` wants to run: the refresh, or the retry."""
        return self._deadline

    def handle_timer(self, now: float) -> Request | None:
        """A REGISTER to send when the refresh or retry is due, else None."""
        if self._deadline is None or now < self._deadline:
            return None
        if self.state not in ("idle", "registered", "failed"):
            return None
        return self._attempt(now)

    def on_response(self, resp: Response, now: float) -> Request | None:
        """A final response to our REGISTER; returns the next one to send, if any."""
        if resp.status < 200 or self.state not in ("registering", "unregistering"):
            return None
        try:
            if resp.cseq.number != self._cseq:
                return None  # an answer to an earlier REGISTER
        except ParseError:
            return None
        self.last_status = resp.status
        if self.state == "unregistering":
            return self._unregister_answer(resp)
        if 200 <= resp.status < 300:
            self._registered(resp, now)
            return None
        if resp.status in (401, 407):
            if self._take_challenge(resp):
                return self._register()
            return self._failed(resp, now)
        if resp.status == 423:
            minimum = _int(resp.get("Min-Expires"))
            if minimum is not None and minimum > self.expires:
                log.info(
                    "trunk %s: carrier wants expires >= %d (423); asking for that",
                    self.account.trunk,
                    minimum,
                )
                self.expires = minimum
                return self._register()
        return self._failed(resp, now)

    def stop(self, now: float) -> Request | None:
        """The REGISTER that removes our binding (Expires: 0), or None if there is none."""
        live = self.registered_until is not None and self.registered_until > now
        self._deadline = None
        if not live:
            self.state = "stopped"
            return None
        self.state = "unregistering"
        self._challenges = 0
        return self._request(0)

    def status(self, now: float) -> dict[str, object]:
        """For the node's status output."""
        until = self.registered_until
        return {
            "state": self.state,
            "registered": until is not None and until > now and self.state != "stopped",
            "expires_in": max(0, round(until - now)) if until is not None else None,
            "last_status": self.last_status,
            "failures": self.failures,
        }

    # -- inside -----------------------------------------------------------------------

    def _attempt(self, now: float) -> Request:
        self.state = "registering"
        self._challenges = 0
        self._deadline = None
        return self._register()

    def _register(self) -> Request:
        return self._request(self.expires)

    def _request(self, expires: int) -> Request:
        acc = self.account
        self._cseq += 1
        self._sent_expires = expires
        uri = f"sip:{acc.domain}"
        aor = f"<sip:{acc.username}@{acc.domain}>"
        transport = (
            "" if self.via_transport == "UDP" else f";transport={self.via_transport.lower()}"
        )
        headers = [
            ("Via", f"SIP/2.0/{self.via_transport} {self.sent_by};branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"{aor};tag={self._from_tag}"),
            ("To", aor),
            ("Call-ID", self._call_id),
            ("CSeq", f"{self._cseq} REGISTER"),
            ("Contact", f"<sip:{acc.contact_user}@{self.sent_by}{transport}>"),
            ("Expires", str(expires)),
            ("User-Agent", self.user_agent),
        ]
        if self._challenge is not None:
            # Also on refreshes: the carrier's nonce may still be good, which
            # saves a round trip; if not, it challenges again.
            self._nc += 1
            creds = authorize(
                self._challenge,
                "REGISTER",
                uri,
                acc.auth_username or acc.username,
                acc.password,
                secrets.token_hex(8),
                self._nc,
            )
            name = "Proxy-Authorization" if self._proxy else "Authorization"
            headers.append((name, creds.to_header_value()))
        headers.append(("Content-Length", "0"))
        return Request("REGISTER", uri, headers)

    def _take_challenge(self, resp: Response) -> bool:
        """Keep the response's challenge; False when it is not worth answering."""
        self._challenges += 1
        proxy = resp.status == 407
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        challenges = []
        for value in resp.get_all(name):
            if not value.lstrip().lower().startswith("digest"):
                continue
            try:
                challenges.append(parse_challenge(value, name))
            except DigestError as exc:
                log.warning("trunk %s: malformed %s ignored: %s", self.account.trunk, name, exc)
        challenge = select_challenge(challenges)
        if challenge is None:
            self._why = "no digest challenge we can answer (MD5 or SHA-256)"
            return False
        # A second challenge in one attempt refuses the credentials we sent;
        # unless it says our nonce was stale (RFC 3261 §22.4): answer that once.
        if self._challenges > 1 and not (challenge.stale and self._challenges == 2):
            self._why = _ADVICE[resp.status]
            return False
        self._challenge, self._proxy, self._nc = challenge, proxy, 0
        return True

    def _registered(self, resp: Response, now: float) -> None:
        granted = self._granted(resp)
        if granted <= 0:
            # 200 without our binding in it: the carrier did not keep it.
            self._why = "the carrier's 200 does not list our Contact with an expiry"
            self._failed(resp, now)
            return
        until = self.registered_until
        renewed = until is not None and until > now and self.failures == 0
        self.state = "registered"
        self.granted = granted
        self.registered_until = now + granted
        self.failures = 0
        self._deadline = now + refresh_after(granted)
        if not renewed:
            log.info(
                "trunk %s: registered to %s for %d s", self.account.trunk, self.account.domain,
                granted,
            )  # fmt: skip
        else:
            log.debug("trunk %s: registration refreshed for %d s", self.account.trunk, granted)

    def _granted(self, resp: Response) -> int:
        """The expiry the carrier granted us (RFC 3261 §10.2.4)."""
        ours = f"sip:{self.account.contact_user}@"
        try:
            contacts = resp.contact
        except ParseError:
            contacts = []
        mine = [c for c in contacts if not c.wildcard and str(c.uri).startswith(ours)]
        exact = [c for c in mine if self.sent_by in str(c.uri)]
        for contact in exact or mine:
            value = _int(contact.params.get("expires"))
            if value is not None:
                return value
        value = _int(resp.get("Expires"))
        if value is not None:
            return value
        if mine or not contacts:
            return self._sent_expires
        return 0

    def _failed(self, resp: Response, now: float) -> None:
        self.state = "failed"
        self.failures += 1
        why = self._why or _ADVICE.get(resp.status) or "the carrier's answer"
        self._why = None
        wait = min(
            self.account.retry * 2 ** min(self.failures - 1, 20),
            max(MAX_BACKOFF, self.account.retry),
        )
        retry_after = _int((resp.get("Retry-After") or "").split(";")[0].split("(")[0])
        if retry_after is not None and retry_after > wait:
            wait = float(retry_after)
        self._deadline = now + wait
        if resp.status in (401, 407, 403):
            # New credentials may come with a config reload; the old nonce is no help.
            self._challenge = None
        log.warning(
            "trunk %s: registration to %s failed: %d %s; %s; retrying in %d s",
            self.account.trunk,
            self.account.domain,
            resp.status,
            resp.reason,
            why,
            wait,
        )

    def _unregister_answer(self, resp: Response) -> Request | None:
        if resp.status in (401, 407) and self._take_challenge(resp):
            return self._request(0)
        self.state = "stopped"
        self.registered_until = None
        if 200 <= resp.status < 300:
            log.info("trunk %s: unregistered from %s", self.account.trunk, self.account.domain)
        else:
            log.warning(
                "trunk %s: unregister from %s answered %d %s",
                self.account.trunk,
                self.account.domain,
                resp.status,
                resp.reason,
            )
        return None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() and len(text) < 10 else None
