"""Who is calling the API: logins, tokens (JWT), API keys, and a brake on guessing.

- Agents log in with their extension and SIP password (role "agent"),
  config users with theirs (their role: supervisor or admin). A login
  gets an access token (JWT, HS256, 15 minutes) and a refresh token
  (12 hours) that `POST /api/refresh` trades for a new pair.
- Integrations send `X-API-Key` (a tenant's `api_keys`), with the key's role.
- A user of role "operator" is an admin of every tenant: it names the one it
  acts on with the `X-Tenant` header (or `?tenant=`), default its own.
- Passwords and keys are compared in constant time, and a wrong password
  costs the same as an unknown user (a dummy compare), so neither timing
  nor the answer tells which logins exist.
- Failed logins are counted per client address: after `LIMIT` in `WINDOW`
  seconds, logins from it get 429 with Retry-After until the window passes.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import jwt

from .errors import ApiError

if TYPE_CHECKING:
    from ..config import Config

Role = Literal["agent", "supervisor", "admin", "operator"]

ACCESS_TTL = 15 * 60
REFRESH_TTL = 12 * 3600
ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller of the API."""

    user: str  # the login (an extension for agents), or "key:<name>" for an API key
    tenant: str
    role: Role
    agent: str | None = None  # the agent's extension, when the principal is one

    def may_supervise(self) -> bool:
        return self.role in ("supervisor", "admin", "operator")


class Accounts:
    """Logins and API keys from the config."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._keys: dict[str, Principal] = {}
        seen: dict[str, int] = {}
        for tid, tenant in config.tenants.items():
            for name, key in tenant.api_keys.items():
                seen[key.key] = seen.get(key.key, 0) + 1
                self._keys[key.key] = Principal(f"key:{name}", tid, key.role)
        for key, count in seen.items():
            if count > 1:  # ambiguous: which tenant? Neither.
                del self._keys[key]

    def login(self, username: str, password: str, tenant: str | None) -> Principal | None:
        """The principal for these credentials, or None. Ambiguous (the same
        login in two tenants with this password, no tenant given): ApiError 400."""
        found: list[Principal] = []
        tenants = [tenant] if tenant is not None else list(self.config.tenants)
        for tid in tenants:
            config = self.config.tenants.get(tid)
            if config is None:
                _same(password, "")  # as long as a real check
                continue
            agent = config.agents.get(username)
            if agent is not None and _same(password, agent.password):
                found.append(Principal(username, tid, "agent", agent=username))
                continue
            user = config.users.get(username)
            if user is not None and _same(password, user.password):
                ext = username if user.role == "agent" and username in config.agents else None
                found.append(Principal(username, tid, user.role, agent=ext))
            elif agent is None and user is None:
                _same(password, "")
        if len(found) > 1:
            raise ApiError(
                400,
                "tenant_required",
                f"login {username!r} exists in several tenants: give the tenant too",
                field="tenant",
            )
        return found[0] if found else None

    def still_valid(self, principal: Principal) -> bool:
        """The account behind a token still exists with that role (for refresh)."""
        tenant = self.config.tenants.get(principal.tenant)
        if tenant is None:
            return False
        if principal.role == "agent" and principal.agent is not None:
            return principal.agent in tenant.agents or principal.user in tenant.users
        user = tenant.users.get(principal.user)
        return user is not None and user.role == principal.role

    def by_key(self, key: str) -> Principal | None:
        for known, principal in self._keys.items():
            if _same(key, known):
                return principal
        return None


def _same(given: str, known: str) -> bool:
    return hmac.compare_digest(given.encode(), known.encode())


class Tokens:
    """Access and refresh tokens: signed JWTs carrying the principal."""

    def __init__(
        self,
        secret: str | bytes | None = None,
        *,
        clock: Callable[[], float] = time.time,
        access_ttl: float = ACCESS_TTL,
        refresh_ttl: float = REFRESH_TTL,
    ) -> None:
        # No configured secret: a random one, so tokens die with the process.
        self._secret = secret or secrets.token_bytes(32)
        self.clock = clock
        self.access_ttl, self.refresh_ttl = access_ttl, refresh_ttl

    def issue(self, principal: Principal) -> dict[str, Any]:
        now = int(self.clock())
        return {
            "token": self._sign(principal, "access", now, self.access_ttl),
            "refresh": self._sign(principal, "refresh", now, self.refresh_ttl),
            "expires_in": int(self.access_ttl),
            "role": principal.role,
            "tenant": principal.tenant,
            "user": principal.user,
            "agent": principal.agent,
        }

    def _sign(self, principal: Principal, kind: str, now: int, ttl: float) -> str:
        claims = {
            "sub": principal.user,
            "tenant": principal.tenant,
            "role": principal.role,
            "agent": principal.agent,
            "typ": kind,
            "iat": now,
            "exp": now + int(ttl),
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str, kind: str = "access") -> Principal:
        """The principal of a valid token of `kind`; ApiError 401 otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                # Expiry is checked below on our clock (pyjwt would read its own).
                options={
                    "require": ["exp", "sub", "tenant", "role", "typ"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            raise ApiError(
                401, "invalid_token", f"not a valid {kind} token: log in (POST /api/login)"
            ) from None
        if not isinstance(claims["exp"], int | float) or claims["exp"] <= self.clock():
            what = "log in again" if kind == "refresh" else "refresh it (POST /api/refresh)"
            raise ApiError(401, "token_expired", f"the {kind} token has expired: {what}")
        if claims.get("typ") != kind:
            raise ApiError(
                401, "invalid_token", f"this is a {claims.get('typ')} token; send the {kind} token"
            )
        role = claims["role"]
        if role not in ("agent", "supervisor", "admin", "operator"):
            raise ApiError(401, "invalid_token", "the token's role is unknown: log in again")
        agent = claims.get("agent")
        return Principal(str(claims["sub"]), str(claims["tenant"]), role, agent)


class Throttle:
    """Failed logins per client address: at most `limit` in `window` seconds."""

    def __init__(
        self, limit: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}

    def check(self, address: str) -> None:
        """ApiError 429 (with Retry-After) while `address` is over its limit."""
        now = self.clock()
        failures = self._failures.get(address)
        if failures is None:
            return
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
        elif len(failures) >= self.limit:
            wait = max(1, int(failures[0] + self.window - now + 1))
            raise ApiError(
                429,
                "too_many_attempts",
                f"too many failed logins from {address}: wait {wait} s",
                headers={"Retry-After": str(wait)},
            )

    def failed(self, address: str) -> None:
        failures = self._failures.setdefault(address, deque())
        failures.append(self.clock())
        if len(self._failures) > 100_000:  # a flood of addresses: forget the oldest
            self._failures.pop(next(iter(self._failures)))
