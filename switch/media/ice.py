"""ICE servers for browser agents' legs: the node's STUN/TURN settings and TURN credentials.

Agents work from home and branch offices, behind any NAT; so may the node.
A WebRTC leg (`switch.media.webrtc`) gathers, besides its host candidate,
a server-reflexive candidate from each STUN server and a relay candidate
from each TURN server of `IceSettings` (`[media]` in the config).

TURN servers authenticate with long-term credentials: either a fixed
username and password per server, or coturn's REST API ("use-auth-secret",
draft-uberti-behave-turn-rest): anyone who knows the shared `turn_secret`
mints a username ``"<expiry>:<user>"`` with the password
``base64(HMAC-SHA1(secret, username))``, valid until the expiry (Unix time).
`turn_credentials` does that, for the node's own allocations and for
browsers: `browser_ice_servers` is the ``iceServers`` list of a browser's
RTCPeerConnection (handed out by the webphone), with credentials that
expire.

`ServerHealth` remembers which servers failed lately, so that a dead server
costs one bounded wait and one log line, not a wait on every call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import MediaConfig

log = logging.getLogger("switch.media")
NODE_TURN_USER = "switch"  # the user part of the node's own minted TURN usernames
NODE_CREDENTIAL_TTL = 86400  # seconds: a call's allocation is refreshed with the same credentials
BROWSER_CREDENTIAL_TTL = 12 * 3600  # seconds: an agent's working day
RETRY_AFTER = 30.0  # seconds a server that failed is left out of gathering


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN or TURN server (`scheme` "stun", "turn" or "turns")."""

    scheme: str
    host: str
    port: int
    transport: str = "udp"  # how it is reached: "udp" or "tcp" (turns: TLS over TCP)
    username: str = ""  # fixed TURN credentials; empty: minted from the secret
    password: str = ""

    @property
    def url(self) -> str:
        """The server's URI (RFC 7064, RFC 7065), as a browser's iceServers want it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        url = f"{self.scheme}:{host}:{self.port}"
        return url if self.scheme == "stun" else f"{url}?transport={self.transport}"


def turn_credentials(secret: str, user: str, ttl: int, now: float | None = None) -> tuple[str, str]:
    """(username, password) for coturn's use-auth-secret: valid `ttl` seconds from `now`."""
    expiry = int(time.time() if now is None else now) + ttl
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


class ServerHealth:
    """Which STUN/TURN servers failed lately, and saying so once.

    A server that failed (no answer, refused credentials) is not asked again
    for `RETRY_AFTER` seconds: calls meanwhile go on with the candidates the
    other servers give (at least the host candidate). The first failure is
    logged as a warning with the reason; failures again before it recovers
    at debug level; its recovery at info level.
    """

    def __init__(self) -> None:
        self._failed: dict[str, float] = {}  # url -> when it may be tried again (monotonic)

    def usable(self, server: IceServer, now: float | None = None) -> bool:
        until = self._failed.get(server.url)
        return until is None or (time.monotonic() if now is None else now) >= until

    def failed(self, server: IceServer, reason: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        again = server.url in self._failed
        self._failed[server.url] = now + RETRY_AFTER
        (log.debug if again else log.warning)(
            "ICE server %s: %s; calls go on without its candidate (tried again in %g s)",
            server.url, reason, RETRY_AFTER,
        )  # fmt: skip

    def worked(self, server: IceServer) -> None:
        if self._failed.pop(server.url, None) is not None:
            log.info("ICE server %s answers again", server.url)


@dataclass(frozen=True, slots=True)
class IceSettings:
    """How a node's WebRTC legs do ICE (`[media]` stun_servers, turn_servers,
    turn_secret, ice_lite, ice_policy). The default: host candidate only."""

    stun: tuple[IceServer, ...] = ()
    turn: tuple[IceServer, ...] = ()
    turn_secret: str = ""
    lite: bool = False  # ICE-lite with the host candidate alone (a node with a public address)
    policy: str = "all"  # "relay": advertise the TURN relay candidates only
    health: ServerHealth = field(default_factory=ServerHealth, compare=False, repr=False)

    @classmethod
    def from_config(cls, media: MediaConfig) -> IceSettings:
        def server(url: Any, username: str = "", password: str = "") -> IceServer:
            return IceServer(url.scheme, url.host, url.port, url.transport, username, password)

        return cls(
            stun=tuple(server(url) for url in media.stun_servers),
            turn=tuple(server(t.url, t.username, t.password) for t in media.turn_servers),
            turn_secret=media.turn_secret,
            lite=media.ice_lite,
            policy=media.ice_policy,
        )

    def node_login(self, server: IceServer, now: float | None = None) -> tuple[str, str]:
        """The node's own credentials at a TURN server: its fixed ones, or minted."""
        if server.username or not self.turn_secret:
            return server.username, server.password
        return turn_credentials(self.turn_secret, NODE_TURN_USER, NODE_CREDENTIAL_TTL, now)


def browser_ice_servers(
    settings: IceSettings, user: str, ttl: int = BROWSER_CREDENTIAL_TTL, now: float | None = None
) -> list[dict[str, Any]]:
    """The ``iceServers`` of a browser agent's RTCPeerConnection (W3C RTCIceServer).

    With `turn_secret`, each TURN server gets credentials minted for `user`
    (the agent), valid `ttl` seconds; without it, the server's fixed
    credentials (which every agent's browser can then read: prefer the
    secret).
    """
    servers: list[dict[str, Any]] = []
    if settings.stun:
        servers.append({"urls": [s.url for s in settings.stun]})
    for server in settings.turn:
        if settings.turn_secret:
            username, password = turn_credentials(settings.turn_secret, user, ttl, now)
        else:
            username, password = server.username, server.password
        servers.append({"urls": [server.url], "username": username, "credential": password})
    return servers
