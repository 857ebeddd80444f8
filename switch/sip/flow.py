"""Where a message came from, or where it goes: a transport and two addresses.

A flow is a value, not a socket. For connection-oriented transports
`conn_id` names the connection, so that a response (or a request to a
browser agent) goes back over the connection the peer opened (RFC 5626).
"""

from __future__ import annotations

from dataclasses import dataclass

RELIABLE = frozenset({"tcp", "tls", "ws", "wss"})
SECURE = frozenset({"tls", "wss"})


@dataclass(frozen=True, slots=True)
class Flow:
    transport: str  # "udp", "tcp", "tls", "ws" or "wss"
    remote: tuple[str, int]  # peer address and port
    local: tuple[str, int] = ("", 0)  # our address and port
    conn_id: int | None = None  # the connection, for stream transports

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE

    @property
    def secure(self) -> bool:
        return self.transport in SECURE

    @property
    def via_transport(self) -> str:
        """The transport token written in a Via header."""
        return self.transport.upper()

    def __str__(self) -> str:
        host, port = self.remote
        if ":" in host:
            host = f"[{host}]"
        return f"{self.transport}:{host}:{port}"
