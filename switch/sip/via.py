"""The Via header (RFC 3261 §20.42) with rport/received (RFC 3581)."""

from __future__ import annotations

import re

from .errors import ParseError
from .headers import format_params, split_params
from .uri import split_host_port

MAGIC_COOKIE = "z9hG4bK"
TRANSPORTS = frozenset({"UDP", "TCP", "TLS", "SCTP", "WS", "WSS"})


class Via:
    """One Via value: 'SIP/2.0/UDP host:port;branch=...;rport'."""

    __slots__ = ("host", "params", "port", "protocol", "transport")

    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: dict[str, str | None] | None = None,
        protocol: str = "SIP/2.0",
    ) -> None:
        self.protocol = protocol
        self.transport = transport
        self.host = host
        self.port = port
        self.params = params if params is not None else {}

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        value = self.params.get("rport")
        if value and value.isdigit() and value.isascii() and len(value) <= 5:
            return int(value)
        return None

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.protocol}/{self.transport} {self.host}{port}{format_params(self.params)}"

    def __repr__(self) -> str:
        return f"Via({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return (
            self.protocol == other.protocol
            and self.transport == other.transport
            and self.host.lower() == other.host.lower()
            and self.port == other.port
            and self.params == other.params
        )

    __hash__ = None  # type: ignore[assignment]


# The form nearly every peer sends; anything else takes the general path.
_COMMON = re.compile(r"SIP/2\.0/([A-Za-z]+) ([A-Za-z0-9\-.]+)(?::([0-9]{1,5}))?(;[^\s\"]*)?")


def parse_via(value: str) -> Via:
    """Parse a single Via value (already split from a list)."""
    m = _COMMON.fullmatch(value)
    if m is not None:
        transport, host, port, params_text = m.groups()
        if port is None or int(port) <= 65535:
            params = {}
            if params_text:
                for piece in params_text[1:].split(";"):
                    name, eq, val = piece.partition("=")
                    if not name:
                        raise ParseError(f"Via {value!r}: empty parameter")
                    params[name.lower()] = val if eq else None
            if params.get("branch", "x"):
                return Via(transport.upper(), host, int(port) if port else None, params)
    return _parse_general(value)


def _params(text: str, value: str) -> dict[str, str | None]:
    try:
        return split_params(text)
    except ValueError as exc:
        raise ParseError(f"Via {value!r}: {exc}") from None


def _parse_general(value: str) -> Via:
    # sent-protocol allows LWS around each '/': "SIP / 2.0 / UDP".
    parts = value.split("/", 2)
    if len(parts) != 3:
        raise ParseError(f"Via {value!r}: expected SIP/2.0/<transport> <host>")
    name, version, rest = parts[0].strip(), parts[1].strip(), parts[2].lstrip()
    if name.upper() != "SIP" or not version:
        raise ParseError(f"Via {value!r}: protocol must be SIP/2.0")
    cut = 0
    while cut < len(rest) and not rest[cut].isspace():
        cut += 1
    transport = rest[:cut].upper()
    if not transport or not (transport.isalnum() and transport.isascii()):
        raise ParseError(f"Via {value!r}: missing transport")
    sent = rest[cut:].strip()
    if not sent:
        raise ParseError(f"Via {value!r}: missing sent-by host")
    hostport, _, params_text = sent.partition(";")
    # LWS is allowed around ':' in sent-by; IPv6 references have none inside.
    hostport = "".join(hostport.split())
    host, port = split_host_port(hostport, f"Via {value}")
    params = _params(params_text, value)
    if "branch" in params and not params["branch"]:
        raise ParseError(f"Via {value!r}: empty branch")
    return Via(transport, host, port, params, f"{name}/{version}")
