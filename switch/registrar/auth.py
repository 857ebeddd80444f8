"""Digest authentication of requests from agents (RFC 3261 §22, RFC 8760).

REGISTER is challenged with 401 and WWW-Authenticate; INVITE, REFER and
MESSAGE with 407 and Proxy-Authenticate, as a softswitch in front of its
agents does (Kamailio's convention; JsSIP and desk phones answer both).

The realm is the tenant id, so one HA1 per agent and algorithm serves every
node. Nonces are signed with a secret shared through the state backend: a
nonce issued by one node verifies on another.

An unknown user and a wrong password get the same 403, so extensions cannot
be enumerated. Each failure is counted against the source address in the
ban store and logged on one line that fail2ban can match::

    auth failure: ip=198.51.100.7 port=5060 user=1001 tenant=demo method=REGISTER reason=...
    auth ban: ip=198.51.100.7 seconds=600 failures=10 window=60
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..sip.digest import (
    AuthStatus,
    Credentials,
    DigestAuthenticator,
    DigestError,
    parse_credentials,
)
from ..sip.flow import Flow
from ..sip.message import Request
from ..store.bans import BanStore
from .accounts import Accounts

log = logging.getLogger("switch.auth")

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Authenticated:
    tenant: str
    username: str


@dataclass(frozen=True, slots=True)
class Denied:
    """The response to give instead of serving the request."""

    status: int
    reason: str
    headers: Headers = ()


FORBIDDEN = Denied(403, "Forbidden")


def log_value(text: str) -> str:
    # Values come from the network: keep a log line one line, and parseable.
    cleaned = "".join(c if c.isprintable() and not c.isspace() else "?" for c in text[:64])
    return cleaned or "-"


class Authenticator:
    def __init__(
        self,
        accounts: Accounts,
        secret: bytes,
        bans: BanStore,
        *,
        algorithms: Iterable[str] = ("MD5", "SHA-256"),
        nonce_ttl: float = 300,
        on_ban: Callable[[str, float], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.accounts = accounts
        self.bans = bans
        self.algorithms = tuple(algorithms)
        self.nonce_ttl = nonce_ttl
        self.on_ban = on_ban
        self._secret = secret
        self._clock = clock
        self._realms: dict[str, DigestAuthenticator] = {}

    def _digest(self, realm: str) -> DigestAuthenticator:
        digest = self._realms.get(realm)
        if digest is None:
            if len(self._realms) > 10_000:  # realms of unknown hosts come from the network
                self._realms.clear()
            digest = DigestAuthenticator(realm, self._secret, self.nonce_ttl, self.algorithms)
            self._realms[realm] = digest
        return digest

    async def authenticate(
        self, req: Request, flow: Flow, tenant: str | None, realm: str
    ) -> Authenticated | Denied:
        """Check the request's credentials for `tenant` (None: no such tenant).

        `realm` is what to challenge with: the tenant id, or for a request
        that names no tenant we know, its domain (any answer then fails the
        same way a wrong password does).
        """
        proxy = req.method != "REGISTER"
        now = self._clock()
        digest = self._digest(realm)
        try:
            creds = self._credentials(req, realm, proxy)
        except DigestError as exc:
            self._log_failure(flow, "-", tenant, req.method, f"malformed credentials: {exc}")
            return Denied(400, f"Bad Request (malformed {_creds_header(proxy)}: {exc})"[:160])
        if creds is None:
            return self._challenge(digest, now, proxy, stale=False)

        ha1s = await self.accounts.ha1s(tenant, creds.username) if tenant is not None else None

        def ha1_for(username: str, algorithm: str) -> str | None:
            return ha1s.get(algorithm) if ha1s is not None and username == creds.username else None

        result = digest.verify(req.method, creds, ha1_for, now)
        if result.ok:
            assert tenant is not None and result.username is not None
            return Authenticated(tenant, result.username)
        if result.status is AuthStatus.STALE:
            return self._challenge(digest, now, proxy, stale=True)
        if result.status is AuthStatus.UNKNOWN_NONCE:
            return self._challenge(digest, now, proxy, stale=False)
        await self.failure(flow, creds.username, tenant, req.method, result.reason, now)
        return FORBIDDEN

    async def failure(
        self, flow: Flow, user: str, tenant: str | None, method: str, reason: str, now: float
    ) -> None:
        """Count a failed authentication against the source; ban when it is one too many."""
        ip = flow.remote[0]
        self._log_failure(flow, user, tenant, method, reason)
        bans = self.bans
        if await bans.failure(ip, now):
            log.warning(
                "auth ban: ip=%s seconds=%d failures=%d window=%d",
                ip,
                bans.ban_time,
                bans.threshold,
                bans.window,
            )
            if self.on_ban is not None:
                self.on_ban(ip, now + bans.ban_time)

    def _log_failure(
        self, flow: Flow, user: str, tenant: str | None, method: str, reason: str
    ) -> None:
        log.warning(
            "auth failure: ip=%s port=%d user=%s tenant=%s method=%s reason=%s",
            flow.remote[0],
            flow.remote[1],
            log_value(user),
            log_value(tenant or "-"),
            log_value(method),
            reason.replace(" ", "_")[:80],
        )

    def challenge(self, realm: str, proxy: bool) -> Denied:
        """A fresh 401 (or 407 when `proxy`) for a request without credentials."""
        return self._challenge(self._digest(realm), self._clock(), proxy, stale=False)

    @staticmethod
    def _credentials(req: Request, realm: str, proxy: bool) -> Credentials | None:
        """The Digest credentials meant for `realm`, or None when there are none."""
        for value in req.get_all(_creds_header(proxy)):
            if not value.lstrip().lower().startswith("digest"):
                continue  # another scheme: not for us
            creds = parse_credentials(value, _creds_header(proxy))
            if creds.realm == realm:
                return creds
        return None

    def _challenge(
        self, digest: DigestAuthenticator, now: float, proxy: bool, stale: bool
    ) -> Denied:
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        headers = tuple((name, value) for value in digest.challenge_values(now, stale))
        if proxy:
            return Denied(407, "Proxy Authentication Required", headers)
        return Denied(401, "Unauthorized", headers)


def _creds_header(proxy: bool) -> str:
    return "Proxy-Authorization" if proxy else "Authorization"
