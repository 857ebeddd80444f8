"""The one validated configuration of a switch node.

A config file is TOML. Node-wide sections (`[node]`, `[sip]`, `[http]`, `[state]`,
`[records]`) sit at the top. Everything a client company owns (agents, trunks,
queues, ivr, dids, outbound, users) lives under `[tenants.<id>.<kind>.<name>]`;
the same tables written at top level belong to the implied tenant "default", so
a one-company switch never has to mention tenants.

`load_config()` and `load_demo_config()` return a frozen `Config` or raise
`ConfigError`, whose lines each read `<file>: <key path>: <what is wrong>`, with
key paths spelled as they are written in the file. Every problem found is
reported, not only the first, so an operator fixes a file in one pass.
"""

from __future__ import annotations

import ast
import copy
import difflib
import ipaddress
import itertools
import json
import os
import re
import socket
import tomllib
import warnings
import zoneinfo
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, tzinfo
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .numbers import NumberClass, NumberFormat, Plan, e164_set, to_e164

__all__ = [
    "BUILTIN_IVR_FLOWS",
    "DEFAULT_TENANT",
    "DEMO_PASSWORDS",
    "DEMO_SOURCE",
    "Agent",
    "Config",
    "ConfigError",
    "Did",
    "DnsConfig",
    "HostPort",
    "Hours",
    "HttpConfig",
    "IceUrl",
    "InboundRegister",
    "Ivr",
    "NodeConfig",
    "NotifyConfig",
    "Numbers",
    "OutboundRoute",
    "Queue",
    "RecordingConfig",
    "RecordsConfig",
    "RegistrarConfig",
    "SipConfig",
    "StateConfig",
    "Tenant",
    "TimeRange",
    "Trunk",
    "TurnServer",
    "User",
    "demo_config_text",
    "load_config",
    "load_demo_config",
    "parse_days",
    "parse_time_range",
]

DEFAULT_TENANT = "default"
DEMO_SOURCE = "<demo>"
# Flows shipped inside the package (switch/apps/ivr must provide each of these).
BUILTIN_IVR_FLOWS = ("demo",)
# The applications a node has unless it is built with others
# (switch.apps.builtin_apps; a test keeps the two in step). A DID's `app`
# must name one of them, or of the names given to load_config(apps=...).
BUILTIN_APPS = ("echo",)
# The passwords of switch/demo.toml: anyone who has read the README knows them.
DEMO_PASSWORDS = frozenset({*(f"agent{ext}" for ext in range(1001, 1006)), "supervisor", "admin"})

Strategy = Literal[
    "ringall",
    "longest-idle",
    "round-robin",
    "fewest-calls",
    "least-talk-time",
    "random",
    "linear",
    "weighted-random",
]
Transport = Literal["udp", "tcp", "tls"]
Codec = Literal["pcmu", "pcma", "g722", "opus", "telephone-event"]
# operator: an admin of every tenant (the operator's own staff; the API's X-Tenant header).
Role = Literal["agent", "supervisor", "admin", "operator"]
LogLevel = Literal["debug", "info", "warning", "error"]

_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


class ConfigError(Exception):
    """A configuration a person has to fix. `str()` is one line per problem."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines: list[str] = list(lines)
        super().__init__("\n".join(self.lines))


class _Problems(ValueError):
    """Raised by our validators; each item may point at a key below the one validated.

    Pydantic keeps the exception object in the error's ctx, which lets the
    translator put the message on the key a person has to edit.
    """

    def __init__(self, items: list[tuple[tuple[str, ...], str]]) -> None:
        self.items = items
        super().__init__("; ".join(message for _, message in items))


def _problem(message: str, *key: str) -> _Problems:
    return _Problems([(key, message)])


# ---------------------------------------------------------------------------
# How values are shown in messages: as close to TOML as is readable.


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    if isinstance(value, dict):
        return "a table"
    return repr(value) if isinstance(value, str | int | float) else str(value)


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return "a table"


def _got(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    return f"{_show(value)} ({_toml_type(value)})"


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _dotted(path: Iterable[str]) -> str:
    # Quote like TOML does, so the path can be pasted back into the file.
    return ".".join(part if _BARE_KEY.fullmatch(part) else json.dumps(part) for part in path)


def _unknown_key(key: str, allowed: Iterable[str]) -> str:
    allowed = sorted(allowed)
    message = f"unknown key (expected one of {', '.join(allowed)})"
    close = difflib.get_close_matches(key, allowed, n=1)
    return f"{message}; did you mean {close[0]!r}?" if close else message


# ---------------------------------------------------------------------------
# Addresses and paths


class HostPort(NamedTuple):
    """A host (name or IP address, IPv6 without brackets) and a port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_wildcard(self) -> bool:
        return self.host in _WILDCARD_HOSTS


_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_host(text: str) -> bool:
    if _is_ip(text):
        return True
    # "10.0.0.300" would pass as a host name; it is a mistyped address.
    return bool(_HOSTNAME.fullmatch(text)) and not re.fullmatch(r"[0-9.]+", text)


def _split_host_port(text: str) -> tuple[str, str | None] | None:
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or not _is_ip(text[1:end]) or ":" not in text[1:end]:
            return None
        rest = text[end + 1 :]
        if not rest:
            return text[1:end], None
        return (text[1:end], rest[1:]) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, port
    # A bare IPv6 address is ambiguous with a port: it must be bracketed.
    return None if ":" in text else (text, None)


def _host_port_parser(example_port: int, *, port_required: bool):
    if port_required:
        form = f"HOST:PORT (e.g. 0.0.0.0:{example_port} or [::]:{example_port})"
    else:
        form = "HOST[:PORT] (e.g. sip.carrier.example or 203.0.113.5:5060)"

    def parse(value: Any) -> HostPort:
        if isinstance(value, HostPort):
            return value
        if not isinstance(value, str):
            raise ValueError(f"{_show(value)} is not {form}")
        parts = _split_host_port(value)
        if parts is None or not parts[0] or not _is_host(parts[0]):
            raise ValueError(f"{_show(value)} is not {form}")
        host, port_text = parts
        if port_text is None:
            if port_required:
                raise ValueError(f"{_show(value)} is not {form}")
            return HostPort(host, 0)  # the trunk fills in its transport's default port
        if not port_text.isdigit():
            raise ValueError(f"{_show(value)} is not {form}")
        port = int(port_text)
        low = 0 if port_required else 1  # port 0 = "any free port", only for listening
        if not low <= port <= 65535:
            raise ValueError(f"{_show(value)}: port {port} is not between {low} and 65535")
        return HostPort(host, port)

    return parse


SipListen = Annotated[
    HostPort, PlainValidator(_host_port_parser(5060, port_required=True)), PlainSerializer(str)
]
TlsListen = Annotated[
    HostPort, PlainValidator(_host_port_parser(5061, port_required=True)), PlainSerializer(str)
]
HttpListen = Annotated[
    HostPort, PlainValidator(_host_port_parser(8080, port_required=True)), PlainSerializer(str)
]
RemoteHost = Annotated[
    HostPort, PlainValidator(_host_port_parser(5060, port_required=False)), PlainSerializer(str)
]


def _input_file(value: Any, info: ValidationInfo) -> Path | None:
    """A file the switch reads, relative to the config file's directory.

    The config and its companion files (flows, certificates) travel together,
    so relative paths must not depend on the directory switch was started in.
    """
    if value is None or value == "" or isinstance(value, Path):
        return value or None
    if not isinstance(value, str):
        raise ValueError(f"expected a file path, got {_got(value)}")
    written = Path(value).expanduser()
    base = (info.context or {}).get("base_dir")
    full = written if written.is_absolute() or base is None else Path(base) / written
    where = "" if full == written else f" (looked for {full})"
    if not full.exists():
        raise ValueError(f"{_show(value)} does not exist{where}")
    if not full.is_file():
        raise ValueError(f"{_show(value)} is a directory, expected a file{where}")
    return full


InputFile = Annotated[
    Path | None,
    PlainValidator(_input_file),
    PlainSerializer(lambda path: None if path is None else str(path)),
]


def _directory(value: Any) -> Any:
    if isinstance(value, str):
        if not value:
            raise ValueError('must not be empty (e.g. "./data")')
        return Path(value).expanduser()
    if isinstance(value, Path):
        return value
    raise ValueError(f"expected a directory path, got {_got(value)}")


Directory = Annotated[Path, BeforeValidator(_directory)]


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    example = "e.g. 203.0.113.5 or 203.0.113.0/24"
    if not isinstance(value, str):
        raise ValueError(f"expected an IP address or network ({example}), got {_got(value)}")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        if _is_host(value):
            raise ValueError(
                f"{_show(value)} is a host name; inbound_from needs IP addresses ({example})"
            ) from None
        raise ValueError(f"{_show(value)} is not an IP address or network ({example})") from None
    raise ValueError(f"{_show(value)} has host bits set; did you mean '{loose}'?")


IpNetwork = Annotated[
    ipaddress.IPv4Network | ipaddress.IPv6Network, PlainValidator(_network), PlainSerializer(str)
]


def _dial_string(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(r"\+?[0-9]*", value):
        raise ValueError(
            f"{_show(value)} is not a dial string (digits, optionally starting with +)"
        )
    return value


DialString = Annotated[str, BeforeValidator(_dial_string)]


def _phone_number(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(r"\+?[0-9]+", value):
        raise ValueError(
            f"{_show(value)} is not a phone number (digits, optionally starting with +)"
        )
    return value


PhoneNumber = Annotated[str, BeforeValidator(_phone_number)]


# ---------------------------------------------------------------------------
# Models. Strict: TOML has types, and a quoted "20" where 20 was meant is
# more often a mistake than a convenience. Frozen: read-only after load.


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def _set(self, name: str, value: Any) -> None:
        # Defaults that depend on other fields are filled in once, during
        # validation, before anyone can see the (frozen) object.
        self.__dict__[name] = value


class NodeConfig(_Model):
    name: str = Field(default_factory=socket.gethostname, min_length=1)
    data_dir: Directory = Path("data")
    log_level: LogLevel = "info"


class SipConfig(_Model):
    listen: SipListen = HostPort("127.0.0.1", 5060)
    transports: list[Transport] = Field(default_factory=lambda: ["udp", "tcp"], min_length=1)
    tls_listen: TlsListen = HostPort("127.0.0.1", 5061)
    tls_cert: InputFile = None
    tls_key: InputFile = None
    # Empty means the listen host; with a wildcard listen it stays empty and
    # the transport uses the local address of the socket facing each peer.
    public_address: str = ""
    max_message_size: int = Field(65536, ge=1024, le=16 * 1024 * 1024)
    tcp_idle_timeout: int = Field(600, ge=1)
    t1_ms: int = Field(500, ge=1)
    t2_ms: int = Field(4000, ge=1)
    t4_ms: int = Field(5000, ge=1)

    @field_validator("transports")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        for item in value:
            if value.count(item) > 1:
                raise ValueError(f"{item!r} is listed twice")
        return value

    @field_validator("public_address")
    @classmethod
    def _public_host(cls, value: str) -> str:
        bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
        if value and not _is_host(bare):
            raise ValueError(
                f"{_show(value)} is not a host name or IP address "
                "(write it without a port: the port is the one in sip.listen)"
            )
        return bare

    @model_validator(mode="after")
    def _consistent(self) -> SipConfig:
        problems = []
        if "tls" in self.transports:
            for key in ("tls_cert", "tls_key"):
                if getattr(self, key) is None:
                    problems.append(
                        ((key,), 'required when "tls" is in transports (path to a PEM file)')
                    )
        if self.t2_ms < self.t1_ms:
            problems.append(
                (("t2_ms",), f"{self.t2_ms} is smaller than t1_ms ({self.t1_ms}); T2 must be >= T1")
            )
        if problems:
            raise _Problems(problems)
        if not self.public_address and not self.listen.is_wildcard:
            self._set("public_address", self.listen.host)
        return self


class HttpConfig(_Model):
    listen: HttpListen = HostPort("127.0.0.1", 8080)
    tls_cert: InputFile = None
    tls_key: InputFile = None
    # The key that signs the API's tokens (JWT, HS256). Empty: a random one
    # per node start (tokens end with a restart). Nodes behind one address
    # must share one, or a token from one is refused by the others.
    jwt_secret: str = ""

    @field_validator("jwt_secret")
    @classmethod
    def _long_secret(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError(
                f"is {len(value)} characters; use at least 32 random ones "
                "(e.g. the output of `openssl rand -hex 32`), or leave it out"
            )
        return value

    @property
    def tls(self) -> bool:
        """True when the HTTP listener serves HTTPS and WSS."""
        return self.tls_cert is not None and self.tls_key is not None

    @model_validator(mode="after")
    def _both_or_neither(self) -> HttpConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            present, absent = (
                ("tls_cert", "tls_key") if self.tls_key is None else ("tls_key", "tls_cert")
            )
            raise _problem(
                f"required because {present} is set (HTTPS needs both, plain HTTP neither)",
                absent,
            )
        return self


class IceUrl(NamedTuple):
    """A STUN or TURN server, as its URI names it (RFC 7064, RFC 7065)."""

    scheme: str  # "stun", "turn" or "turns" (TURN over TLS)
    host: str  # name or IP address (IPv6 without brackets)
    port: int
    transport: str  # "udp" or "tcp": how the node reaches the server

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        url = f"{self.scheme}:{host}:{self.port}"
        return url if self.scheme == "stun" else f"{url}?transport={self.transport}"


_ICE_DEFAULT_PORT = {"stun": 3478, "turn": 3478, "turns": 5349}


def _ice_url(kind: str):
    """A validator of `stun:HOST[:PORT]` (kind "stun") or
    `turn:HOST[:PORT][?transport=udp|tcp]` / `turns:...` (kind "turn")."""
    example = (
        '"stun:stun.example.com:3478"'
        if kind == "stun"
        else '"turn:turn.example.com:3478?transport=udp" (or transport=tcp, or turns: for TLS)'
    )

    def parse(value: Any) -> IceUrl:
        if isinstance(value, IceUrl):
            return value
        if not isinstance(value, str):
            raise ValueError(f"expected a {kind.upper()} URL such as {example}, got {_got(value)}")
        scheme, colon, rest = value.partition(":")
        schemes = ("stun",) if kind == "stun" else ("turn", "turns")
        if not colon or scheme.lower() not in schemes:
            raise ValueError(f"{_show(value)} is not a {kind.upper()} URL: write {example}")
        scheme = scheme.lower()
        address, _, query = rest.partition("?")
        transport = "tcp" if scheme == "turns" else "udp"
        if query:
            name, _, given = query.partition("=")
            if kind == "stun" or name != "transport" or given not in ("udp", "tcp"):
                allowed = "nothing" if kind == "stun" else "?transport=udp or ?transport=tcp"
                raise ValueError(f"{_show(value)}: after the address write {allowed}")
            if scheme == "turns" and given == "udp":
                raise ValueError(f"{_show(value)}: turns: is TLS over TCP; write transport=tcp")
            transport = given
        parts = _split_host_port(address)
        if parts is None or not parts[0] or not _is_host(parts[0]):
            raise ValueError(f"{_show(value)} has no valid host: write {example}")
        host, port_text = parts
        port = _ICE_DEFAULT_PORT[scheme]
        if port_text is not None:
            if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
                raise ValueError(f"{_show(value)}: the port is not a number from 1 to 65535")
            port = int(port_text)
        return IceUrl(scheme, host, port, transport)

    return parse


StunUrl = Annotated[IceUrl, PlainValidator(_ice_url("stun")), PlainSerializer(str)]
TurnUrl = Annotated[IceUrl, PlainValidator(_ice_url("turn")), PlainSerializer(str)]


class TurnServer(_Model):
    """A TURN server the node takes relay candidates from (browser agents' legs)."""

    url: TurnUrl
    # Long-term credentials (coturn: --user); empty: minted from [media] turn_secret.
    username: str = ""
    password: str = ""

    @model_validator(mode="after")
    def _pair(self) -> TurnServer:
        if bool(self.username) != bool(self.password):
            present, absent = ("username", "password")[:: 1 if self.username else -1]
            raise _problem(f"required because {present} is set (they go together)", absent)
        return self


class MediaConfig(_Model):
    """Where calls' RTP flows through the node."""

    # UDP ports for RTP (even) and RTCP (odd); two pairs per call.
    rtp_port_min: int = Field(10000, ge=1024, le=65534)
    rtp_port_max: int = Field(20000, ge=1025, le=65535)
    # The address phones and trunks send media to; default: sip.public_address.
    address: str = ""
    # Calls with no RTP from either side for this long are torn down; 0 = never.
    timeout: int = Field(60, ge=0)
    # ICE of browser agents' legs (WebRTC): STUN servers for the node's
    # server-reflexive candidate, TURN servers for its relay candidates, and
    # coturn's REST API secret (use-auth-secret) to mint TURN credentials.
    stun_servers: list[StunUrl] = Field(default_factory=list)
    turn_servers: list[TurnServer] = Field(default_factory=list)
    turn_secret: str = ""
    # true: the node's media address is reachable directly (no NAT): it runs
    # ICE-lite (RFC 8445 §2.5) with its host candidate alone.
    ice_lite: bool = False
    # "relay": the node advertises only its TURN relay candidates (a node
    # behind a NAT it cannot open).
    ice_policy: Literal["all", "relay"] = "all"

    @model_validator(mode="after")
    def _range(self) -> MediaConfig:
        if self.rtp_port_max - self.rtp_port_min < 4:
            raise _problem(
                f"{self.rtp_port_min}-{self.rtp_port_max} is too small a range "
                "(each call needs two pairs of ports)",
                "rtp_port_max",
            )
        problems: list[tuple[tuple[str, ...], str]] = []
        if not self.turn_secret:
            for server in self.turn_servers:
                if not server.username:
                    problems.append((("turn_servers",), (
                        f"{server.url} has no username and password: give them, or set "
                        "turn_secret (coturn's static-auth-secret) to mint them"
                    )))  # fmt: skip
        if self.ice_policy == "relay" and not self.turn_servers:
            problems.append((("ice_policy",), (
                '"relay" needs turn_servers (the node advertises only TURN relay '
                'candidates): add one, or write ice_policy = "all"'
            )))  # fmt: skip
        if self.ice_lite and self.ice_policy == "relay":
            problems.append((("ice_lite",), (
                'ice_lite = true is for a node reachable directly at its address, '
                'ice_policy = "relay" for one behind NAT: set ice_lite = false or '
                'ice_policy = "all"'
            )))  # fmt: skip
        if problems:
            raise _Problems(problems)
        return self


class CallsConfig(_Model):
    """How the call layer treats every call."""

    # Session timers (RFC 4028): each leg is refreshed every half interval
    # (by whichever side the negotiation picks), and a call whose far end
    # stops refreshing is hung up. 0 = off.
    session_expires: int = Field(1800, ge=0, le=86400)
    # The shortest interval accepted from the other side; shorter asks get 422.
    min_se: int = Field(90, ge=90, le=86400)
    # A 3xx from a callee: "report" it to the caller, or "follow" it (the new
    # number is routed with the caller's own permissions).
    redirects: Literal["report", "follow"] = "report"

    @model_validator(mode="after")
    def _timers(self) -> CallsConfig:
        if self.session_expires and self.session_expires < self.min_se:
            raise _problem(
                f"{self.session_expires} is shorter than min_se ({self.min_se}): "
                "raise it, or set 0 to turn session timers off",
                "session_expires",
            )
        return self


class StateConfig(_Model):
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = ""
    # Every key this cluster writes starts with it: two clusters can share
    # one Redis with different prefixes.
    key_prefix: str = Field("switch:", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")

    @model_validator(mode="after")
    def _redis_url(self) -> StateConfig:
        example = "e.g. redis://127.0.0.1:6379/0"
        if self.backend == "redis" and not self.redis_url:
            raise _problem(f'required when backend = "redis" ({example})', "redis_url")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise _problem(f"{_show(self.redis_url)} is not a Redis URL ({example})", "redis_url")
        return self


class RecordsConfig(_Model):
    backend: Literal["sqlite", "postgresql"] = "sqlite"
    # sqlite: a file path, default <node.data_dir>/switch.db (filled in at load).
    dsn: str = ""

    @model_validator(mode="after")
    def _dsn(self) -> RecordsConfig:
        example = "e.g. postgresql://switch:secret@db.example/switch"
        if self.backend == "postgresql":
            if not self.dsn:
                raise _problem(f'required when backend = "postgresql" ({example})', "dsn")
            if not self.dsn.startswith(("postgresql://", "postgres://")):
                raise _problem(f"{_show(self.dsn)} is not a PostgreSQL URL ({example})", "dsn")
        elif "://" in self.dsn:
            raise _problem(
                f'{_show(self.dsn)} is a URL, but backend = "sqlite" takes a file path '
                '(or set backend = "postgresql")',
                "dsn",
            )
        return self


class RecordingConfig(_Model):
    """Call recording (issue #5). Which calls are recorded is said by
    `record` on DIDs, outbound routes and tenants."""

    format: Literal["wav", "opus"] = "wav"  # WAV (linear PCM) or Opus in Ogg (8x smaller)
    # Default <node.data_dir>/recordings (filled in at load); relative paths
    # are taken from the directory switch is started in, as data_dir.
    directory: Directory | None = None


class NotifyConfig(_Model):
    """Where the IVR's `notify` verb sends: e-mail by SMTP, SMS and fax by an HTTP webhook."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    smtp_host: str = ""  # empty: e-mail is not sent (a log line says so)
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    sender: str = Field("switch@localhost", alias="from", min_length=3)
    # SMS and fax: a JSON POST {channel, to, body, subject, tenant} to the url,
    # with "Authorization: Bearer <token>" when a token is given.
    sms_url: str = ""
    fax_url: str = ""
    webhook_token: str = ""
    timeout: float = Field(10.0, gt=0, le=120)


class RegistrarConfig(_Model):
    """Registration, authentication and the defences around them."""

    min_expires: int = Field(60, ge=1)
    default_expires: int = Field(3600, ge=1)
    max_expires: int = Field(7200, ge=1)
    max_contacts: int = Field(10, ge=1)  # bindings per agent (desk phone, browser, ...)
    # Offered in this order, one challenge each with the same nonce; the
    # client answers whichever it chooses. MD5 comes first by default because
    # many clients read only the first challenge and know only MD5 (JsSIP,
    # SIPp, older desk phones); put "SHA-256" first when all of yours know it.
    auth_algorithms: list[Literal["SHA-256", "MD5"]] = Field(
        default_factory=lambda: ["MD5", "SHA-256"], min_length=1
    )
    nonce_ttl: int = Field(300, ge=10)
    # After auth_failures failures from one address within auth_window
    # seconds, the address is banned for ban_time seconds.
    auth_failures: int = Field(10, ge=1)
    auth_window: int = Field(60, ge=1)
    ban_time: int = Field(600, ge=1)
    # User-Agent substrings of SIP scanners; their requests are dropped silently.
    scanners: list[str] = Field(
        default_factory=lambda: [
            "friendly-scanner",
            "sipvicious",
            "sipcli",
            "vaxsipuseragent",
            "pplsip",
        ]
    )
    qualify_interval: int = Field(30, ge=5)  # seconds between OPTIONS pings of a contact

    @model_validator(mode="after")
    def _ordered(self) -> RegistrarConfig:
        if not self.min_expires <= self.default_expires <= self.max_expires:
            raise _problem(
                f"min_expires ({self.min_expires}) <= default_expires ({self.default_expires}) "
                f"<= max_expires ({self.max_expires}) must hold",
                "default_expires",
            )
        return self


def _nameserver(value: Any) -> HostPort:
    form = "IP[:PORT] (e.g. 192.0.2.53, 127.0.0.1:5353 or [2001:db8::53]:53)"
    if isinstance(value, HostPort):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a nameserver address {form}, got {_got(value)}")
    if _is_ip(value):  # a bare IPv6 address too: a nameserver is never a name
        return HostPort(value, 53)
    parts = _split_host_port(value)
    if parts is None or not _is_ip(parts[0]):
        raise ValueError(f"{_show(value)} is not a nameserver address {form}")
    host, port_text = parts
    if port_text is None:
        return HostPort(host, 53)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{_show(value)}: the port is not a number from 1 to 65535")
    return HostPort(host, int(port_text))


Nameserver = Annotated[HostPort, PlainValidator(_nameserver), PlainSerializer(str)]


class DnsConfig(_Model):
    """How trunks' host names are resolved (RFC 3263: NAPTR, SRV, then A/AAAA)."""

    # Empty: the system's resolver (/etc/resolv.conf).
    nameservers: list[Nameserver] = Field(default_factory=list)
    timeout: float = Field(2.0, ge=0.1, le=30)  # seconds for one lookup, all servers and retries
    # Seconds a name that does not exist (or lacks a record type) is remembered.
    negative_ttl: int = Field(30, ge=0, le=3600)


# ---------------------------------------------------------------------------
# ACD (switch/apps/acd): the keys queues, agents and tenants carry for call
# distribution. Kept in this one block, plus the fields marked "ACD" in
# Agent, Queue and Tenant and one call in _build (_check_acd).

# The wrap-up form's disposition codes when a tenant lists none of its own.
DEFAULT_DISPOSITIONS = ("resolved", "follow-up", "escalated", "sale", "wrong-number", "other")
# Reasons the ACD sets by itself; a tenant's own reasons must differ from them.
ACD_SYSTEM_REASONS = ("disconnected", "missed calls")


def _calendar_name(value: Any) -> Any:
    if isinstance(value, dict):
        raise ValueError(
            "a queue's hours name one of the tenant's calendars: move these keys to "
            '[tenants.X.hours.NAME] and write hours = "NAME" (the IVR reads the same calendars)'
        )
    return value


SkillLevel = Annotated[int, Field(ge=1, le=10)]


class ExitTarget(_Model):
    """Where a caller goes when a queue lets them out: exactly one key."""

    queue: str | None = None  # another queue of the tenant (the caller keeps their seniority)
    voicemail: str | None = Field(None, min_length=1)  # a mailbox name
    ivr: str | None = None  # an IVR flow of the tenant
    message: str | None = None  # said to the caller, then the call ends; "" = just hang up

    @model_validator(mode="after")
    def _one(self) -> ExitTarget:
        given = [
            key
            for key in ("queue", "voicemail", "ivr", "message")
            if getattr(self, key) is not None
        ]
        if len(given) != 1:
            raise _problem(
                "needs exactly one of queue, voicemail, ivr or message "
                '(e.g. { queue = "sales" } or { message = "Please call back later." }); '
                + ("got none" if not given else f"got {', '.join(given)}")
            )
        return self

    @property
    def kind(self) -> str:
        return next(
            k for k in ("queue", "voicemail", "ivr", "message") if getattr(self, k) is not None
        )

    @property
    def value(self) -> str:
        return getattr(self, self.kind)


def _hang_up() -> ExitTarget:
    return ExitTarget(message="")


class QueueExits(_Model):
    """Where callers go when a limit lets them out (default: the call ends)."""

    max_wait: ExitTarget = Field(default_factory=_hang_up)  # waited the queue's max_wait
    full: ExitTarget = Field(default_factory=_hang_up)  # max_len callers already wait
    empty: ExitTarget = Field(default_factory=_hang_up)  # join_empty / leave_when_empty
    closed: ExitTarget = Field(default_factory=_hang_up)  # outside hours, or a holiday


class SkillRelax(_Model):
    """From `after` seconds of waiting on, every skill level a caller requires is
    `lower` levels below the original; a level lowered to 0 is no longer required."""

    after: int = Field(ge=1)
    lower: int = Field(ge=1, le=10)


class QueueCallback(_Model):
    """Callbacks: the caller hangs up and keeps their place; the node calls back."""

    # off | agent-first (ring the agent, then dial the customer) | customer-first
    mode: Literal["off", "agent-first", "customer-first"] = "off"
    # Offer a callback (once) when the estimated wait passes this many seconds; 0 = never.
    offer_ewt: int = Field(0, ge=0)
    dial_timeout: int = Field(30, ge=5, le=300)  # seconds the customer's phone rings

    @model_validator(mode="after")
    def _on(self) -> QueueCallback:
        if self.offer_ewt and self.mode == "off":
            raise _problem(
                'offering callbacks needs mode = "agent-first" or "customer-first"', "offer_ewt"
            )
        return self


def _feature_code(value: Any) -> Any:
    if isinstance(value, str) and value and not re.fullmatch(r"[*#][0-9*#]{1,7}", value):
        raise ValueError(
            f"{_show(value)} is not a feature code: a star or hash then up to 7 digits, "
            '* or # (e.g. "*61"), or "" to turn it off'
        )
    return value


FeatureCode = Annotated[str, BeforeValidator(_feature_code)]
# What each feature code does, by its key in [tenants.<id>.acd.feature_codes].
FEATURE_ACTIONS = ("login", "logout", "available", "not_ready", "extend_wrapup")
# The node's application that answers them (switch.apps.acd_codes); the router sends them there.
FEATURE_CODES_APP = "acd-codes"


class FeatureCodes(_Model):
    """Codes an agent dials from a desk phone to change their ACD state
    (`[tenants.<id>.acd.feature_codes]`); "" turns one off."""

    login: FeatureCode = "*61"
    logout: FeatureCode = "*62"
    available: FeatureCode = "*63"
    # Alone: the first of not_ready_reasons; followed by n (*642): the n-th.
    not_ready: FeatureCode = "*64"
    extend_wrapup: FeatureCode = "*65"
    extend_by: int = Field(30, ge=1, le=3600)  # seconds each *65 adds (within wrapup_max)

    @model_validator(mode="after")
    def _distinct(self) -> FeatureCodes:
        seen: dict[str, str] = {}
        for action in FEATURE_ACTIONS:
            code = getattr(self, action)
            if not code:
                continue
            if code in seen:
                raise _problem(f"{_show(code)} is also the code for {seen[code]}", action)
            seen[code] = action
        nr = self.not_ready
        for code, action in seen.items():
            if nr and action != "not_ready" and code.startswith(nr):
                raise _problem(
                    f"{_show(code)} starts with the not_ready code {_show(nr)}, which takes "
                    "a reason number after it: choose another code",
                    action,
                )
        return self

    def codes(self) -> dict[str, str]:
        """Action -> code, for the codes that are on."""
        return {a: c for a in FEATURE_ACTIONS if (c := getattr(self, a))}

    def match(self, dialled: str) -> tuple[str, int | None] | None:
        """The action `dialled` asks for and, for not_ready, the reason's number
        (None: the code alone); None when it is no feature code."""
        for action, code in self.codes().items():
            if dialled == code:
                return action, None
        nr = self.not_ready
        if nr and dialled.startswith(nr) and dialled[len(nr) :].isdigit():
            return "not_ready", int(dialled[len(nr) :])
        return None


class AcdSettings(_Model):
    """A tenant's ACD rules (`[tenants.<id>.acd]`)."""

    # Reasons an agent may give for not ready; the ACD adds "disconnected"
    # (no device reachable) and "missed calls" (max_missed in a row) itself.
    not_ready_reasons: list[str] = Field(
        default_factory=lambda: ["break", "lunch", "training", "meeting"]
    )
    # Offers rung out in a row before the agent is set not ready ("missed calls"); 0 = never.
    max_missed: int = Field(3, ge=0, le=100)
    # Seconds a caller's number is remembered with the agent who last served it (sticky agent).
    sticky_memory: int = Field(7 * 86400, ge=0)
    # Codes agents dial from a desk phone: log in, log out, available, not ready, wrap-up.
    feature_codes: FeatureCodes = Field(default_factory=FeatureCodes)
    # Disposition codes of the agents' wrap-up form (kept on the call's CDR).
    dispositions: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=lambda: list(DEFAULT_DISPOSITIONS)
    )

    @field_validator("not_ready_reasons")
    @classmethod
    def _reasons(cls, value: list[str]) -> list[str]:
        for reason in value:
            if not reason.strip():
                raise ValueError("a reason must not be empty")
            if reason in ACD_SYSTEM_REASONS:
                raise ValueError(f"{reason!r} is set by the ACD itself; leave it out")
            if value.count(reason) > 1:
                raise ValueError(f"{reason!r} is listed twice")
        return value

    @field_validator("dispositions")
    @classmethod
    def _dispositions(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('list at least one disposition (e.g. ["resolved", "other"])')
        for code in value:
            if value.count(code) > 1:
                raise ValueError(f"{code!r} is listed twice")
        return value


def _check_feature_codes(
    tenant: str, codes: FeatureCodes, objects: dict[str, dict[str, Any]], report: _Report
) -> None:
    """A feature code must not be what an agent dials for an extension or a DID:
    it would hide it. (An outbound route's prefix is digits or "+", and a code
    starts with "*" or "#": they cannot meet.)"""
    path = ("tenants", tenant, "acd", "feature_codes")
    for action, code in codes.codes().items():
        clash = None
        if code in objects["agents"]:
            clash = f"agent {code}'s extension"
        elif code in objects["dids"]:
            clash = f"DID {code}"
        if clash is not None:
            report.add((*path, action), f"{_show(code)} is also {clash}: choose another code")


def _check_acd(
    tenant: str,
    source: _TenantSource,
    objects: dict[str, dict[str, Any]],
    plan: Plan | None,
    report: _Report,
) -> None:
    """Tiers, exits and VIP numbers must fit the tenant's queues, flows and dialling plan."""
    queues = objects["queues"]
    for ext, agent in objects["agents"].items():
        path = source.path("agents", ext)
        for queue in agent.tiers:
            if queue not in agent.queues:
                report.add(
                    (*path, "tiers", queue),
                    f"agent {ext} is not in queue {queue!r}: add it to queues, or remove the tier",
                )
    for name, queue in queues.items():
        path = source.path("queues", name)
        for reason in ("max_wait", "full", "empty", "closed"):
            target = getattr(queue.exits, reason)
            where = (*path, "exits", reason)
            if target.queue is not None:
                if target.queue == name:
                    report.add((*where, "queue"), "a queue cannot send its callers to itself")
                elif target.queue not in source.names("queues"):
                    known = _listing("queues", source.names("queues"))
                    report.add(
                        (*where, "queue"),
                        f"queue {target.queue!r} does not exist in tenant {tenant!r} ({known})",
                    )
            if target.ivr is not None and target.ivr not in source.names("ivr"):
                known = _listing("ivr", source.names("ivr"))
                report.add(
                    (*where, "ivr"),
                    f"ivr {target.ivr!r} does not exist in tenant {tenant!r} ({known})",
                )
        if plan is not None:
            for number in queue.vip_numbers:
                if to_e164(number, plan) is None:
                    report.add(
                        (*path, "vip_numbers"),
                        f"{_show(number)} is not a phone number in the tenant's plan",
                    )


# ---------------------------------------------------------------------------


class Agent(_Model):
    name: str = ""
    password: str = Field(min_length=1)
    # Ping this agent's registered devices with OPTIONS and drop the ones
    # that stop answering (Asterisk's qualify).
    qualify: bool = False
    queues: list[str] = Field(default_factory=list)
    skills: dict[str, Annotated[int, Field(ge=1, le=10)]] = Field(default_factory=dict)
    # The number customers see when this agent calls out (a DID of the
    # tenant, say); default: the route's, the trunk's, then the tenant's.
    caller_id: PhoneNumber | None = None
    withhold_caller_id: bool = False  # present no number (RFC 3323 anonymous)
    # Classes of numbers this agent may dial; default: the tenant's numbers.may_dial.
    may_dial: list[NumberClass] | None = None
    # Seconds this agent's phone rings on a direct call before the caller gets 480; 0 = no limit.
    ring_timeout: int = Field(0, ge=0)
    # ACD: the tier (penalty) of this agent in some of its queues (default 1,
    # offered first; tier n is offered a caller once the queue's tier_waits say so),
    # and its weight for the weighted-random strategy.
    tiers: dict[str, Annotated[int, Field(ge=1, le=9)]] = Field(default_factory=dict)
    weight: int = Field(1, ge=1, le=100)


class InboundRegister(_Model):
    """Credentials a trunk without a fixed address (a customer's PBX) registers
    to us with; its calls then come from where it registered."""

    username: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.+-]+$")
    password: str = Field(min_length=1)


# Pydantic warns that the field "register" shadows ABCMeta.register, a class-level
# method nobody calls on a Trunk; the file's key is "register", so the field is too.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class Trunk(_Model):
        inbound_from: list[IpNetwork] = Field(default_factory=list)
        outbound_host: RemoteHost | None = None
        # Left out: for a host name without a port, the carrier's NAPTR
        # records choose (RFC 3263) and it stays None; otherwise "udp".
        transport: Transport | None = None
        max_calls: int = Field(0, ge=0)  # 0 = unlimited
        codecs: list[Codec] = Field(
            default_factory=lambda: ["pcmu", "pcma", "telephone-event"], min_length=1
        )
        username: str | None = None
        password: str | None = None
        # Outbound registration: we register to the carrier (its registrar).
        register: bool = False
        auth_username: str | None = None  # when the carrier's differs from username
        registrar: RemoteHost | None = None  # default: outbound_host
        register_expires: int = Field(3600, ge=10)  # asked for; the carrier's grant wins
        register_retry: int = Field(60, ge=1)  # seconds before retrying a failure; doubles
        contact_user: str | None = Field(None, pattern=r"^[A-Za-z0-9_.+-]+$")  # default: username
        # Inbound registration: the trunk registers to us (a PBX without a fixed IP).
        inbound_register: InboundRegister | None = None
        # Seconds between OPTIONS pings of outbound_host; a trunk that stops
        # answering is skipped by routing until it answers again. 0 = never.
        keepalive: int = Field(30, ge=0)
        # A trusted trunk's P-Asserted-Identity is believed (RFC 3325), and
        # calls out through it carry one, with Privacy honoured by the carrier.
        trusted: bool = False
        # How the called and calling numbers are written toward this trunk.
        number_format: NumberFormat = "e164"
        caller_id: PhoneNumber | None = None  # presented on calls out, after agent and route
        # Seconds to wait for any answer (even 100 Trying) before the call is
        # tried on the route's next trunk (Kamailio's fr_timer); 0 = SIP's 32 s.
        setup_timeout: float = Field(5.0, ge=0, le=32)
        # How the trunk carries DTMF: RFC 4733 telephone-events in RTP, SIP
        # INFO (application/dtmf-relay), tones in the audio ("inband", which
        # the node must decode to hear), or "auto": RFC 4733 when the call
        # negotiated telephone-event, in-band otherwise (Asterisk's "auto").
        dtmf: Literal["rfc4733", "info", "inband", "auto"] = "auto"

        def accepts(self, address: str) -> bool:
            """True when a request from `address` may come from this trunk."""
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return False
            return any(ip in network for network in self.inbound_from)

        @model_validator(mode="after")
        def _usable(self) -> Trunk:
            problems: list[tuple[tuple[str, ...], str]] = []
            ways = (self.inbound_from, self.outbound_host, self.register, self.inbound_register)
            if not any(ways):
                problems.append(
                    (
                        (),
                        "a trunk needs inbound_from (to accept calls), "
                        "outbound_host (to place calls) or both; or register = true (we "
                        "register to the carrier) or inbound_register (it registers to us)",
                    )
                )
            if self.inbound_from and self.inbound_register is not None:
                problems.append(
                    (
                        ("inbound_register",),
                        "a trunk is known either by its address (inbound_from) or by its "
                        "registration (inbound_register), not both: remove one",
                    )
                )
            if all(codec == "telephone-event" for codec in self.codecs):
                problems.append(
                    (("codecs",), "needs at least one audio codec (pcmu, pcma, g722 or opus)")
                )
            if (self.username is None) != (self.password is None):
                absent = "password" if self.password is None else "username"
                present = "username" if absent == "password" else "password"
                problems.append(
                    ((absent,), f"required because {present} is set (they go together)")
                )
            if self.register:
                needed = [k for k in ("username", "password") if getattr(self, k) is None]
                if self.outbound_host is None and self.registrar is None:
                    needed.insert(0, "outbound_host")
                if needed:
                    problems.append(
                        (("register",), f"register = true also needs {', '.join(needed)}")
                    )
            else:
                for key in (
                    "auth_username", "registrar", "register_expires", "register_retry",
                    "contact_user",
                ):  # fmt: skip
                    if key in self.model_fields_set:
                        problems.append(((key,), "only used with register = true"))
            if problems:
                raise _Problems(problems)
            # A host name without a port is located by DNS (RFC 3263): its
            # port stays 0 for SRV to fill in, and its transport None for
            # NAPTR to choose unless one is given. Anything else has defaults.
            host = self.outbound_host
            by_dns = host is not None and host.port == 0 and not _is_ip(host.host)
            if self.transport is None and not by_dns:
                self._set("transport", "udp")
            if host is not None and host.port == 0 and not by_dns:
                port = 5061 if self.transport == "tls" else 5060
                self._set("outbound_host", HostPort(host.host, port))
            if (
                self.registrar is not None
                and self.registrar.port == 0
                and _is_ip(self.registrar.host)
            ):
                port = 5061 if self.transport == "tls" else 5060
                self._set("registrar", HostPort(self.registrar.host, port))
            return self

        @property
        def registrar_host(self) -> HostPort | None:
            """Where outbound REGISTERs go (with register = true)."""
            return self.registrar or self.outbound_host

        @property
        def our_contact_user(self) -> str:
            """The user of the Contact we register: the carrier calls it."""
            return self.contact_user or self.username or "s"


class Queue(_Model):
    strategy: Strategy = "longest-idle"
    timeout: int = Field(20, ge=1)  # seconds one agent is rung before the next is tried
    wrapup: int = Field(10, ge=0)  # seconds after a call before the agent is offered another
    max_wait: int = Field(0, ge=0)  # seconds; 0 = no limit
    max_len: int = Field(0, ge=0)  # callers waiting; 0 = no limit
    music: str = "default"
    # ACD routing (switch/apps/acd; the README's ACD section says how they combine).
    # Seconds an agent may extend wrap-up to in all; default: max(wrapup, 120).
    wrapup_max: int | None = Field(None, ge=0)
    # Ranking: a caller of priority p in a queue of weight w ranks as if they had
    # arrived priority_step * (p + w) seconds earlier (priorities 0-9).
    weight: int = Field(0, ge=0, le=9)
    priority_step: int = Field(60, ge=0, le=3600)
    vip_numbers: list[PhoneNumber] = Field(default_factory=list)  # callers given vip_priority
    vip_priority: int = Field(5, ge=1, le=9)
    # Tier 2 agents are offered a caller after tier_waits[0] seconds, tier 3 after [1],
    # ...; a tier past the list opens with the last; without tier_waits tiers only order.
    tier_waits: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)
    # Skills every caller of this queue needs (the IVR may add more), and how
    # the requirement is relaxed while a caller waits.
    skills: dict[str, SkillLevel] = Field(default_factory=dict)
    relax: list[SkillRelax] = Field(default_factory=list)
    # Seconds a repeat caller waits for the agent who served them last; 0 = off.
    sticky_wait: int = Field(0, ge=0, le=600)
    # Callers may join when no agent who could take them is logged in (and
    # ready or busy); leave_when_empty sends waiting callers out when the last goes.
    join_empty: bool = True
    leave_when_empty: bool = False
    announce_every: int = Field(0, ge=0)  # seconds between position/EWT announcements; 0 = off
    callback: QueueCallback = Field(default_factory=QueueCallback)
    # The name of one of the tenant's calendars ([tenants.X.hours.NAME]); none: always open.
    hours: Annotated[str | None, BeforeValidator(_calendar_name)] = None
    exits: QueueExits = Field(default_factory=QueueExits)

    @model_validator(mode="after")
    def _acd(self) -> Queue:
        problems: list[tuple[tuple[str, ...], str]] = []
        if any(b < a for a, b in itertools.pairwise(self.tier_waits)):
            problems.append(
                (("tier_waits",), f"{_show(self.tier_waits)} must not decrease (e.g. [30, 60])")
            )
        afters = [step.after for step in self.relax]
        if any(b <= a for a, b in itertools.pairwise(afters)):
            problems.append((("relax",), f"the steps' after ({_show(afters)}) must increase"))
        lowers = [step.lower for step in self.relax]
        if any(b < a for a, b in itertools.pairwise(lowers)):
            problems.append(
                (
                    ("relax",),
                    f"the steps' lower ({_show(lowers)}) must not decrease: each step says how "
                    "many levels are taken off the original requirement from then on",
                )
            )
        if self.wrapup_max is not None and self.wrapup_max < self.wrapup:
            problems.append(
                (
                    ("wrapup_max",),
                    f"{self.wrapup_max} is less than wrapup ({self.wrapup}); "
                    f"raise it to at least {self.wrapup}",
                )
            )
        if problems:
            raise _Problems(problems)
        if self.wrapup_max is None:
            self._set("wrapup_max", max(self.wrapup, 120))
        return self


class Ivr(_Model):
    file: InputFile = None
    builtin: str | None = None

    @field_validator("builtin")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value not in BUILTIN_IVR_FLOWS:
            raise ValueError(
                f"{_show(value)} is not a builtin flow "
                f"(builtin flows: {', '.join(BUILTIN_IVR_FLOWS)})"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Ivr:
        if self.file is None and self.builtin is None:
            raise _problem('needs file = "path/to/flow.yaml" or builtin = "demo"')
        if self.file is not None and self.builtin is not None:
            raise _problem("has both file and builtin; keep one")
        return self


# ---------------------------------------------------------------------------
# Business hours and holidays: named calendars of a tenant, read by IVR
# flows (`branch` on `open` or `holiday`) and, later, by queues.


def _time_zone(value: str) -> str:
    if value == "UTC":  # valid even where the system has no tz database
        return value
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        message = (
            f"{_show(value)} is not an IANA time zone (e.g. UTC, Europe/Paris, America/New_York)"
        )
        close = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), n=1)
        raise ValueError(f"{message}; did you mean {close[0]!r}?" if close else message) from None
    return value


DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
_CLOCK = re.compile(r"([01][0-9]|2[0-4]):([0-5][0-9])")


class TimeRange(NamedTuple):
    """From `start` to `end`, in minutes after midnight; `end` is excluded (24:00 = 1440)."""

    start: int
    end: int

    def __str__(self) -> str:
        return "-".join(f"{m // 60:02d}:{m % 60:02d}" for m in (self.start, self.end))

    def holds(self, minute: int) -> bool:
        return self.start <= minute < self.end


def parse_time_range(text: Any) -> TimeRange:
    """ "09:00-17:30" -> TimeRange(540, 1050); ValueError says what is wrong and what is right."""
    form = 'HH:MM-HH:MM, e.g. "09:00-17:30"'
    if not isinstance(text, str):
        raise ValueError(f"expected a time range ({form}), got {_got(text)}")
    start_text, dash, end_text = text.replace(" ", "").partition("-")
    clocks = [_CLOCK.fullmatch(part) for part in (start_text, end_text)]
    if not dash or not all(clocks):
        raise ValueError(f"{_show(text)} is not a time range ({form})")
    start, end = (int(m.group(1)) * 60 + int(m.group(2)) for m in clocks if m is not None)
    if start > 1440 or end > 1440:
        raise ValueError(f"{_show(text)}: the latest time of a day is 24:00")
    if end <= start:
        raise ValueError(
            f"{_show(text)} ends before it starts; a range cannot cross midnight: "
            f'split it in two ("{start_text}-24:00" and "00:00-{end_text}" the next day)'
        )
    return TimeRange(start, end)


def parse_days(text: Any) -> frozenset[int]:
    """ "mon-fri" or ["sat", "sun"] -> weekday numbers (Monday = 0)."""
    form = 'day names mon..sun, ranges like "mon-fri", or a list ["sat", "sun"]'
    items = [text] if isinstance(text, str) else text
    if not isinstance(items, list) or not items:
        raise ValueError(f"expected {form}, got {_got(text)}")
    days: set[int] = set()
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"expected {form}, got {_got(item)}")
        for part in item.replace(" ", "").lower().split(","):
            first, dash, last = part.partition("-")
            if first not in DAY_NAMES or (dash and last not in DAY_NAMES):
                close = difflib.get_close_matches(first, DAY_NAMES, n=1)
                hint = f"; did you mean {close[0]!r}?" if close and not dash else ""
                raise ValueError(f"{_show(part)} is not a day ({form}){hint}")
            a = DAY_NAMES.index(first)
            b = DAY_NAMES.index(last) if dash else a
            # "fri-mon" wraps over the weekend.
            days.update(day % 7 for day in range(a, b + 1 if b >= a else b + 8))
    return frozenset(days)


class Holiday(NamedTuple):
    """One date ("2025-12-25") or the same day every year ("12-25": year 0)."""

    year: int
    month: int
    day: int

    def __str__(self) -> str:
        day = f"{self.month:02d}-{self.day:02d}"
        return f"{self.year:04d}-{day}" if self.year else day

    def on(self, when: date) -> bool:
        same_day = (when.month, when.day) == (self.month, self.day)
        return same_day and self.year in (0, when.year)


def _holiday(value: Any) -> Holiday:
    form = 'a date: 2025-12-25 (that day) or "12-25" (every year)'
    if isinstance(value, Holiday):
        return value
    if isinstance(value, datetime) or not isinstance(value, date | str):
        raise ValueError(f"expected {form}, got {_got(value)}")
    if isinstance(value, date):
        return Holiday(value.year, value.month, value.day)
    match = re.fullmatch(r"(?:([0-9]{4})-)?([0-9]{2})-([0-9]{2})", value)
    if match is None:
        raise ValueError(f"{_show(value)} is not {form}")
    year, month, day = (int(part) if part else 0 for part in match.groups())
    try:
        date(year or 2000, month, day)  # 2000 is a leap year: "02-29" is allowed
    except ValueError:
        raise ValueError(f"{_show(value)} is not a day of the calendar") from None
    return Holiday(year, month, day)


HolidayDate = Annotated[Holiday, PlainValidator(_holiday), PlainSerializer(str)]
DayHours = Annotated[
    list[Annotated[TimeRange, PlainValidator(parse_time_range), PlainSerializer(str)]],
    BeforeValidator(lambda value: [value] if isinstance(value, str) else value),
]


class Hours(_Model):
    """A named calendar: weekly opening times and holidays, in one time zone.

    [tenants.X.hours.office]
    timezone = "Europe/London"       # default: the tenant's
    mon = ["09:00-12:30", "13:30-17:30"]
    holidays = [2025-12-25, "01-01"]  # a date, or "MM-DD" every year
    """

    timezone: str = ""  # filled in with the tenant's at load
    mon: DayHours = Field(default_factory=list)
    tue: DayHours = Field(default_factory=list)
    wed: DayHours = Field(default_factory=list)
    thu: DayHours = Field(default_factory=list)
    fri: DayHours = Field(default_factory=list)
    sat: DayHours = Field(default_factory=list)
    sun: DayHours = Field(default_factory=list)
    holidays: list[HolidayDate] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _iana(cls, value: str) -> str:
        return _time_zone(value) if value else value

    @property
    def zone(self) -> tzinfo:
        # UTC needs no tz database (a container may have none).
        if self.timezone in ("", "UTC"):
            return UTC
        return zoneinfo.ZoneInfo(self.timezone)

    def local(self, when: datetime) -> datetime:
        """`when` (aware) on this calendar's clock."""
        return when.astimezone(self.zone)

    def is_holiday(self, when: datetime) -> bool:
        day = self.local(when).date()
        return any(holiday.on(day) for holiday in self.holidays)

    def is_open(self, when: datetime) -> bool:
        """Inside the opening times of that weekday, and not a holiday."""
        local = self.local(when)
        if any(holiday.on(local.date()) for holiday in self.holidays):
            return False
        minute = local.hour * 60 + local.minute
        ranges = getattr(self, DAY_NAMES[local.weekday()])
        return any(time_range.holds(minute) for time_range in ranges)


_DID_TARGETS = ("ivr", "queue", "agent", "app", "forward")


class Did(_Model):
    ivr: str | None = None
    queue: str | None = None
    agent: str | None = None
    app: str | None = None  # an application's name: checked against the node's (`apps`)
    forward: PhoneNumber | None = None
    trunk: str | None = None  # the trunk that carries a forwarded call
    record: bool | None = None  # record its calls; unset: the tenant's `record`

    @property
    def target(self) -> tuple[str, str]:
        """(kind, value), e.g. ("queue", "support") or ("forward", "4000")."""
        for kind in _DID_TARGETS:
            value = getattr(self, kind)
            if value is not None:
                return kind, value
        raise AssertionError("validated DIDs always have a target")

    @model_validator(mode="after")
    def _one_target(self) -> Did:
        targets = [kind for kind in _DID_TARGETS if getattr(self, kind) is not None]
        choices = "ivr, queue, agent, app or forward"
        if not targets:
            raise _problem(f"needs a target: one of {choices}")
        if len(targets) > 1:
            raise _problem(
                f"has {len(targets)} targets ({', '.join(targets)}); a DID routes to exactly one "
                f"of {choices}"
            )
        if self.forward is not None and self.trunk is None:
            raise _problem('needs trunk = "<trunk name>": the trunk that carries the call', "trunk")
        if self.forward is None and self.trunk is not None:
            raise _problem("only used with forward", "trunk")
        return self


class OutboundRoute(_Model):
    prefix: DialString = ""
    strip: int = Field(0, ge=0)
    prepend: DialString = ""
    trunk: str | None = None
    trunks: list[str] = Field(default_factory=list)  # failover, tried in order after trunk
    # Every agent may call abroad through this route (as if "international"
    # were in its may_dial): the older, coarser switch.
    allow_international: bool = False
    caller_id: PhoneNumber | None = None  # presented on calls out, after the agent's
    # Seconds a callee may ring before the caller gets 480; 0 = no limit.
    ring_timeout: int = Field(0, ge=0)
    record: bool | None = None  # record its calls; unset: the tenant's `record`

    @property
    def trunk_order(self) -> list[str]:
        """Trunks to try, first choice first."""
        order = [self.trunk] if self.trunk else []
        return order + [name for name in self.trunks if name not in order]

    @model_validator(mode="after")
    def _has_trunk(self) -> OutboundRoute:
        if self.trunk is None and not self.trunks:
            raise _problem('needs trunk = "<trunk name>" (and trunks = [...] to fail over)')
        return self

    @model_validator(mode="after")
    def _e164_prefix(self) -> OutboundRoute:
        # A "+" prefix matches the normalised number, which has no access code
        # to strip: strip and prepend would cut or pad a number in E.164.
        if self.prefix.startswith("+"):
            for key in ("strip", "prepend"):
                if getattr(self, key):
                    raise _problem(
                        f'only for access-code prefixes like "9": prefix {_show(self.prefix)} '
                        "matches the number in E.164, which has nothing to strip or prepend",
                        key,
                    )
        return self


class Numbers(_Model):
    """A tenant's dialling plan, caller IDs and who may call what (defaults: NANP)."""

    country_code: str = "1"
    national_prefix: str = "1"  # "0" in most of Europe; "" where there is none
    international_prefix: str = "011"  # "00" in most of the world
    # Always allowed, sent to the trunk as dialled, never normalised.
    emergency: list[str] = Field(default_factory=lambda: ["911", "112"])
    # Number prefixes, in any format of the plan ("07" or "+447"); stored as E.164.
    mobile: list[PhoneNumber] = Field(default_factory=list)
    premium: list[PhoneNumber] = Field(default_factory=list)
    # What agents may dial unless an agent says otherwise (toll fraud:
    # international and premium are off until someone turns them on).
    may_dial: list[NumberClass] = Field(
        default_factory=lambda: ["internal", "emergency", "national", "mobile"]
    )
    caller_id: PhoneNumber | None = None  # the company's main number, presented by default
    caller_ids: list[PhoneNumber] = Field(default_factory=list)  # presentable besides the DIDs
    # Present any number (the carrier checks); off: only the tenant's own numbers.
    any_caller_id: bool = False

    @property
    def plan(self) -> Plan:
        return Plan(self.country_code, self.national_prefix, self.international_prefix)

    @model_validator(mode="after")
    def _plan(self) -> Numbers:
        problems: list[tuple[tuple[str, ...], str]] = []
        rules = [
            ("country_code", r"[1-9][0-9]{0,2}", 'a country code: 1 to 3 digits (e.g. "44")'),
            ("national_prefix", r"[0-9]{0,3}", 'digits or "" (e.g. "0")'),
            ("international_prefix", r"[0-9]{1,4}", 'digits (e.g. "00" or "011")'),
        ]
        for key, pattern, form in rules:
            if not re.fullmatch(pattern, getattr(self, key)):
                problems.append(((key,), f"{_show(getattr(self, key))} is not {form}"))
        for number in self.emergency:
            if not re.fullmatch(r"[0-9]{2,6}", number):
                problems.append(
                    (("emergency",), f"{_show(number)} is not an emergency number (2-6 digits)")
                )
        if problems:
            raise _Problems(problems)
        if self.national_prefix and self.national_prefix.startswith(self.international_prefix):
            raise _problem(
                f"{_show(self.national_prefix)} starts with the international prefix "
                f"{_show(self.international_prefix)}: national numbers would read as "
                "international ones",
                "national_prefix",
            )
        for key in ("mobile", "premium"):
            normalised = []
            for prefix in getattr(self, key):
                e164 = to_e164(prefix, self.plan)
                if e164 is None:
                    problems.append(
                        ((key,), f'{_show(prefix)} is not a number prefix (e.g. "07" or "+447")')
                    )
                normalised.append(e164)
            self._set(key, normalised)
        if problems:
            raise _Problems(problems)
        return self


class User(_Model):
    password: str = Field(min_length=1)
    role: Role = "agent"


class ApiKey(_Model):
    """A key an integration (a CRM, a script) sends as `X-API-Key`, with a role in its tenant."""

    key: str = Field(min_length=24)
    role: Literal["supervisor", "admin"] = "supervisor"


class _TenantSettings(_Model):
    name: str = ""
    timezone: str = "UTC"
    # SIP domains of this tenant (the host part agents register to). Needed
    # only when two tenants share an extension number.
    domains: list[str] = Field(default_factory=list)
    numbers: Numbers = Field(default_factory=Numbers)
    record: bool = False  # record calls whose DID or outbound route does not say
    acd: AcdSettings = Field(default_factory=AcdSettings)  # ACD

    @field_validator("timezone")
    @classmethod
    def _iana(cls, value: str) -> str:
        return _time_zone(value)


class Tenant(_Model):
    id: str
    name: str
    timezone: str = "UTC"
    domains: list[str] = Field(default_factory=list)
    numbers: Numbers = Field(default_factory=Numbers)
    record: bool = False
    acd: AcdSettings = Field(default_factory=AcdSettings)  # ACD
    agents: dict[str, Agent] = Field(default_factory=dict)
    trunks: dict[str, Trunk] = Field(default_factory=dict)
    queues: dict[str, Queue] = Field(default_factory=dict)
    ivr: dict[str, Ivr] = Field(default_factory=dict)
    dids: dict[str, Did] = Field(default_factory=dict)
    outbound: dict[str, OutboundRoute] = Field(default_factory=dict)
    users: dict[str, User] = Field(default_factory=dict)
    hours: dict[str, Hours] = Field(default_factory=dict)
    api_keys: dict[str, ApiKey] = Field(default_factory=dict)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class Config(_Model):
    node: NodeConfig
    sip: SipConfig
    http: HttpConfig
    media: MediaConfig
    calls: CallsConfig
    state: StateConfig
    records: RecordsConfig
    registrar: RegistrarConfig
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    tenants: dict[str, Tenant]
    dns: DnsConfig = Field(default_factory=DnsConfig)
    source: str  # the file it came from, or "<demo>"

    # What was read, so that overrides are validated exactly like the file.
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)
    _base_dir: Path | None = PrivateAttr(default=None)
    _apps: tuple[str, ...] | None = PrivateAttr(default=None)  # the names it was checked against

    def uses_demo_passwords(self) -> bool:
        """True when an agent or user still has a password from the demo config."""
        return any(
            account.password in DEMO_PASSWORDS
            for tenant in self.tenants.values()
            for account in [*tenant.agents.values(), *tenant.users.values()]
        )

    def with_overrides(
        self,
        sip_listen: str | None = None,
        http_listen: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> Config:
        """A new Config with command-line values in place of the file's.

        Errors in an override name the flag (`--sip-listen: ...`), not the file.
        """
        overrides = [
            (("sip", "listen"), "--sip-listen", sip_listen),
            (("http", "listen"), "--http-listen", http_listen),
            (("node", "data_dir"), "--data-dir", data_dir),
        ]
        raw = copy.deepcopy(self._raw)
        flags: dict[tuple[str, ...], str] = {}
        for (section, key), flag, value in overrides:
            if value is not None:
                raw.setdefault(section, {})[key] = (
                    os.fspath(value) if isinstance(value, os.PathLike) else value
                )
                flags[(section, key)] = flag
        if not flags:
            return self
        return _build(raw, self.source, self._base_dir, flags, self._apps)


_SECTIONS: dict[str, type[_Model]] = {
    "node": NodeConfig,
    "sip": SipConfig,
    "http": HttpConfig,
    "media": MediaConfig,
    "calls": CallsConfig,
    "state": StateConfig,
    "records": RecordsConfig,
    "registrar": RegistrarConfig,
    "dns": DnsConfig,
    "recording": RecordingConfig,
    "notify": NotifyConfig,
}
_KINDS: dict[str, type[_Model]] = {
    "agents": Agent,
    "trunks": Trunk,
    "queues": Queue,
    "ivr": Ivr,
    "dids": Did,
    "outbound": OutboundRoute,
    "users": User,
    "hours": Hours,
    "api_keys": ApiKey,
}
_SINGULAR = {
    "agents": "agent",
    "trunks": "trunk",
    "queues": "queue",
    "ivr": "ivr",
    "dids": "DID",
    "outbound": "outbound route",
    "users": "user",
    "hours": "hours calendar",
    "api_keys": "API key",
}
# Names are used in URLs, reports and cross-references: keep them plain.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_NAME_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "tenants": (
        re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*"),
        "is not a tenant id: use letters, digits, '-' and '_' (e.g. acme-corp)",
    ),
    "agents": (re.compile(r"[0-9]+"), 'is not an extension: use digits (e.g. "1001")'),
    "dids": (
        re.compile(r"\+?[0-9]+"),
        'is not a phone number: use digits, optionally starting with + (e.g. "+15551234567")',
    ),
    "users": (
        re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]*"),
        "is not a login: use letters, digits and . _ - @ +",
    ),
}
_NAME_RULE = (_NAME, "is not a name: use letters, digits, '-', '_' and '.' (e.g. support)")


# ---------------------------------------------------------------------------
# Turning pydantic's errors into sentences

_EXPECTED_TYPE = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _type_hint(kind: str, value: Any) -> str:
    if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        return f' (put it in quotes: "{value}")'
    if kind == "list_type" and isinstance(value, str):
        return f" (for a single item write [{json.dumps(value)}])"
    if kind == "bool_type" and isinstance(value, str):
        return " (without quotes)"
    return ""


def _explain(model: type[BaseModel], error: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    # List positions are dropped from paths: TOML has no syntax for them and
    # the message quotes the offending item anyway.
    loc = tuple(part for part in error["loc"] if isinstance(part, str))
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind in ("value_error", "assertion_error"):
        cause = ctx.get("error")
        if isinstance(cause, _Problems):
            return [(loc + key, message) for key, message in cause.items]
        return [(loc, str(cause))]
    if kind == "missing":
        return [(loc, "required key is missing")]
    if kind == "extra_forbidden":
        allowed = model.model_fields if len(loc) == 1 else None
        return [(loc, _unknown_key(loc[-1], allowed) if allowed else "unknown key")]
    if kind == "literal_error":
        options = re.findall(r"'((?:[^'\\]|\\.)*)'", ctx.get("expected", ""))
        return [(loc, f"{_show(value)} is not one of {', '.join(options)}")]
    if kind in _EXPECTED_TYPE:
        return [
            (loc, f"expected {_EXPECTED_TYPE[kind]}, got {_got(value)}{_type_hint(kind, value)}")
        ]
    bounds = {
        "greater_than_equal": ("ge", "{} is too small (must be at least {})"),
        "greater_than": ("gt", "{} is too small (must be more than {})"),
        "less_than_equal": ("le", "{} is too large (must be at most {})"),
        "less_than": ("lt", "{} is too large (must be less than {})"),
    }
    if kind in bounds:
        key, sentence = bounds[kind]
        return [(loc, sentence.format(_show(value), ctx.get(key)))]
    if kind in ("too_short", "string_too_short"):
        if ctx.get("min_length") == 1:
            return [(loc, "must not be empty")]
        return [(loc, f"needs at least {ctx.get('min_length')} items")]
    if kind in ("too_long", "string_too_long"):
        return [(loc, f"{_show(value)} is too long (at most {ctx.get('max_length')})")]
    message = str(error.get("msg", "is not valid")).replace("Input should be", "expected")
    return [(loc, f"{message[:1].lower()}{message[1:]}, got {_got(value)}")]


def _position(raw: dict[str, Any], path: tuple[str, ...]) -> tuple[int, ...]:
    """Where `path` is in the file, as table indexes; a missing key sorts after its table."""
    position: list[int] = []
    node: Any = raw
    for part in path:
        if not isinstance(node, dict):
            break
        keys = list(node)
        if part not in node:
            position.append(len(keys))
            break
        position.append(keys.index(part))
        node = node[part]
    return tuple(position)


class _Report:
    """Collects problem lines, in the order of the file, so they read top to bottom.

    A problem caused by a command-line flag names the flag instead of the file.
    """

    def __init__(
        self, source: str, raw: dict[str, Any], flags: Mapping[tuple[str, ...], str]
    ) -> None:
        self.source = source
        self.raw = raw
        self.flags = flags
        self._found: list[tuple[tuple[int, ...], str]] = []

    @property
    def lines(self) -> list[str]:
        return [line for _, line in sorted(self._found, key=lambda found: found[0])]

    def add(self, path: tuple[str, ...], message: str) -> None:
        if path in self.flags:
            found = ((-1,), f"{self.flags[path]}: {message}")
        elif path:
            found = (_position(self.raw, path), f"{self.source}: {_dotted(path)}: {message}")
        else:
            found = ((), f"{self.source}: {message}")
        if found not in self._found:
            self._found.append(found)

    def validate(
        self, model: type[_Model], data: Any, path: tuple[str, ...], context: dict[str, Any]
    ) -> Any:
        """The validated model, or None after reporting every problem in `data`."""
        try:
            return model.model_validate(data, context=context)
        except ValidationError as exc:
            for error in exc.errors():
                for loc, message in _explain(model, error):
                    self.add(path + loc, message)
            return None


# ---------------------------------------------------------------------------
# Loading


def _toml_message(exc: tomllib.TOMLDecodeError, source: str) -> str:
    text = str(exc)
    # tomllib prints keys as Python tuples: "Cannot declare ('a', 'b') twice".
    text = re.sub(
        r"\(('(?:[^'\\]|\\.)*'(?:, '(?:[^'\\]|\\.)*')*),?\)",
        lambda match: _dotted(ast.literal_eval(f"({match.group(1)},)")),
        text,
    )
    where = re.fullmatch(r"(.*) \(at (?:line (\d+), column (\d+)|end of document)\)", text, re.S)
    if where is None:
        return f"{source}: TOML syntax error: {text}"
    message, line, column = where.groups()
    place = f"line {line}, column {column}" if line else "end of file"
    return f"{source}: {place}: TOML syntax error: {message}"


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        # Editors on Windows like to start files with a byte-order mark.
        return tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_toml_message(exc, source)]) from None


class _TenantSource:
    """One tenant's tables as found in the file, with the paths they were written at."""

    def __init__(self) -> None:
        self.settings: dict[str, Any] = {}
        self.objects: dict[str, dict[str, tuple[tuple[str, ...], Any]]] = {k: {} for k in _KINDS}

    def names(self, kind: str) -> list[str]:
        return sorted(self.objects[kind])

    def path(self, kind: str, name: str) -> tuple[str, ...]:
        return self.objects[kind][name][0]


def _gather(raw: dict[str, Any], report: _Report) -> dict[str, _TenantSource]:
    sources: dict[str, _TenantSource] = {}

    def add_kind(tenant: str, kind: str, table: Any, path: tuple[str, ...]) -> None:
        if not isinstance(table, dict):
            report.add(path, f"expected a table of {kind}, got {_got(table)}")
            return
        objects = sources.setdefault(tenant, _TenantSource()).objects[kind]
        for name, data in table.items():
            if name in objects:
                report.add(
                    (*path, name),
                    f"also defined as {_dotted(objects[name][0])} (objects at top level belong "
                    f"to tenant {DEFAULT_TENANT!r}); define it once",
                )
                continue
            pattern, rule = _NAME_RULES.get(kind, _NAME_RULE)
            if not pattern.fullmatch(name):
                report.add((*path, name), f"{_show(name)} {rule}")
            objects[name] = ((*path, name), data)

    for key, value in raw.items():
        if key in _KINDS:
            add_kind(DEFAULT_TENANT, key, value, (key,))
        elif key == "tenants":
            if not isinstance(value, dict):
                report.add((key,), f"expected a table of tenants, got {_got(value)}")
                continue
            for tenant, table in value.items():
                path = ("tenants", tenant)
                pattern, rule = _NAME_RULES["tenants"]
                if not pattern.fullmatch(tenant):
                    report.add(path, f"{_show(tenant)} {rule}")
                if not isinstance(table, dict):
                    report.add(path, f"expected a table, got {_got(table)}")
                    continue
                source = sources.setdefault(tenant, _TenantSource())
                for item, item_value in table.items():
                    if item in _KINDS:
                        add_kind(tenant, item, item_value, (*path, item))
                    elif item in _TenantSettings.model_fields:
                        source.settings[item] = item_value
                    else:
                        allowed = [*_TenantSettings.model_fields, *_KINDS]
                        report.add((*path, item), _unknown_key(item, allowed))
        elif key not in _SECTIONS:
            report.add((key,), _unknown_key(key, [*_SECTIONS, *_KINDS, "tenants"]))
    return sources


def _listing(kind: str, names: list[str]) -> str:
    if not names:
        return f"no {kind} defined"
    shown = names if len(names) <= 10 else [*names[:10], f"and {len(names) - 10} more"]
    return f"{kind}: {', '.join(shown)}"


def _check_references(
    tenant: str,
    source: _TenantSource,
    objects: dict[str, dict[str, Any]],
    report: _Report,
    apps: tuple[str, ...] = BUILTIN_APPS,
) -> None:
    """References between objects must resolve inside the same tenant.

    A reference to an object that exists but has errors of its own is not
    reported again: those errors already say what to fix.
    """

    def check(path: tuple[str, ...], kind: str, name: str) -> None:
        known = source.names(kind)
        if name not in known:
            report.add(
                path,
                f"{_SINGULAR[kind]} {name!r} does not exist in tenant {tenant!r} "
                f"({_listing(kind, known)})",
            )

    for ext, agent in objects["agents"].items():
        for queue in agent.queues:
            check((*source.path("agents", ext), "queues"), "queues", queue)
    for name, queue in objects["queues"].items():
        if queue.hours is not None:
            check((*source.path("queues", name), "hours"), "hours", queue.hours)
    for number, did in objects["dids"].items():
        path = source.path("dids", number)
        kind, value = did.target
        if kind in ("ivr", "queue", "agent"):
            check((*path, kind), {"ivr": "ivr", "queue": "queues", "agent": "agents"}[kind], value)
        if kind == "app" and value not in apps:
            report.add((*path, "app"), f"{value!r} is not one of {', '.join(apps)}")
        if did.trunk is not None:
            check((*path, "trunk"), "trunks", did.trunk)
    prefixes: dict[str, str] = {}
    for name, route in objects["outbound"].items():
        path = source.path("outbound", name)
        if route.trunk is not None:
            check((*path, "trunk"), "trunks", route.trunk)
        for trunk in route.trunks:
            check((*path, "trunks"), "trunks", trunk)
        if route.prefix in prefixes:
            other = _dotted(source.path("outbound", prefixes[route.prefix]))
            report.add(
                (*path, "prefix"),
                f"{_show(route.prefix)} is also the prefix of {other}; "
                "two routes cannot share a prefix",
            )
        else:
            prefixes[route.prefix] = name


def _check_numbers(
    tenant: str,
    numbers: Numbers,
    source: _TenantSource,
    objects: dict[str, dict[str, Any]],
    report: _Report,
) -> None:
    """Caller IDs must be numbers the tenant owns, and extensions must not be emergency numbers.

    Presenting someone else's number is spoofing: carriers block it, and
    regulators (STIR/SHAKEN, Ofcom) fine it.
    """
    plan = numbers.plan
    # As caller_id.owned_numbers reads them (the call layer cannot be imported here).
    main = [numbers.caller_id] if numbers.caller_id is not None else []
    owned = e164_set([*objects["dids"], *numbers.caller_ids, *main], plan)
    shown = ", ".join(sorted(objects["dids"])[:5]) or "none"
    settings_path = ("tenants", tenant, "numbers")

    def check(path: tuple[str, ...], number: str | None, must_own: bool = True) -> None:
        if number is None:
            return
        e164 = to_e164(number, plan)
        if e164 is None:
            report.add(path, f"{_show(number)} is not a phone number in the tenant's plan")
        elif must_own and not numbers.any_caller_id and e164 not in owned:
            report.add(
                path,
                f"{_show(number)} is not a number of tenant {tenant!r} (its DIDs: {shown}); "
                f"add it to {_dotted(settings_path)}.caller_ids, or set "
                f"{_dotted(settings_path)}.any_caller_id = true if your carrier lets you "
                "present any number",
            )

    seen: dict[str, str] = {}
    for did in objects["dids"]:
        e164 = to_e164(did, plan)
        if e164 is not None and e164 in seen:
            report.add(
                source.path("dids", did),
                f"{_show(did)} is the same number as DID {_show(seen[e164])} ({e164}); "
                "define it once",
            )
        elif e164 is not None:
            seen[e164] = did
    check((*settings_path, "caller_id"), numbers.caller_id, must_own=False)
    for number in numbers.caller_ids:
        check((*settings_path, "caller_ids"), number, must_own=False)
    for kind in ("agents", "outbound", "trunks"):
        for name, obj in objects[kind].items():
            check((*source.path(kind, name), "caller_id"), obj.caller_id)
    for ext in objects["agents"]:
        if ext in numbers.emergency:
            report.add(
                source.path("agents", ext),
                f"extension {ext} is also an emergency number ({_dotted(settings_path)}."
                "emergency): emergency calls must reach the emergency services; "
                "pick another extension",
            )


def _check_trunk_accounts(
    source: _TenantSource, objects: dict[str, dict[str, Any]], report: _Report
) -> None:
    """A trunk that registers to us is an account of its tenant, beside the
    agents: its username must name nothing else there."""
    taken = {ext: source.path("agents", ext) for ext in objects["agents"]}
    for name, trunk in objects["trunks"].items():
        if trunk.inbound_register is None:
            continue
        username = trunk.inbound_register.username
        path = (*source.path("trunks", name), "inbound_register", "username")
        if username in taken:
            report.add(
                path,
                f"{_show(username)} is also {_dotted(taken[username])}; "
                "a trunk's username must differ from every agent's and trunk's of its tenant",
            )
        else:
            taken[username] = path


def _overlaps(a: HostPort, b: HostPort) -> bool:
    if a.port == 0 or a.port != b.port:
        return False
    return a.host == b.host or a.is_wildcard or b.is_wildcard


def _check_listeners(sip: SipConfig, http: HttpConfig, report: _Report) -> None:
    # UDP and TCP may share a port number; two TCP listeners may not.
    if "tcp" in sip.transports and _overlaps(http.listen, sip.listen):
        report.add(
            ("http", "listen"),
            f"{_show(str(http.listen))} is also sip.listen, where SIP over TCP listens; "
            "pick another port",
        )
    if "tls" in sip.transports:
        if _overlaps(http.listen, sip.tls_listen):
            report.add(
                ("http", "listen"),
                f"{_show(str(http.listen))} is also sip.tls_listen; pick another port",
            )
        if "tcp" in sip.transports and _overlaps(sip.tls_listen, sip.listen):
            report.add(
                ("sip", "tls_listen"),
                f"{_show(str(sip.tls_listen))} is also sip.listen; pick another port",
            )


def _build(
    raw: dict[str, Any],
    source: str,
    base_dir: Path | None,
    flags: Mapping[tuple[str, ...], str] | None = None,
    apps: Iterable[str] | None = None,
) -> Config:
    report = _Report(source, raw, flags or {})
    names = tuple(apps) if apps is not None else None
    known = names if names is not None else BUILTIN_APPS
    context = {"base_dir": base_dir}
    tenant_sources = _gather(raw, report)
    sections = {
        name: report.validate(model, raw.get(name, {}), (name,), context)
        for name, model in _SECTIONS.items()
    }

    tenants: dict[str, Tenant] = {}
    owners: dict[str, tuple[str, ...]] = {}  # DID number -> where it was first assigned
    for tenant_id, tenant_source in tenant_sources.items():
        settings = report.validate(
            _TenantSettings, tenant_source.settings, ("tenants", tenant_id), context
        )
        objects: dict[str, dict[str, Any]] = {kind: {} for kind in _KINDS}
        for kind, entries in tenant_source.objects.items():
            for name, (path, data) in entries.items():
                validated = report.validate(_KINDS[kind], data, path, context)
                if validated is not None:
                    objects[kind][name] = validated
        _check_references(tenant_id, tenant_source, objects, report, known)
        if settings is not None:
            _check_numbers(tenant_id, settings.numbers, tenant_source, objects, report)
        _check_trunk_accounts(tenant_source, objects, report)
        _check_acd(tenant_id, tenant_source, objects, settings and settings.numbers.plan, report)
        if settings is not None:
            _check_feature_codes(tenant_id, settings.acd.feature_codes, objects, report)
        # The carrier hands us a number, not a tenant: a number has one owner.
        for number, (path, _) in tenant_source.objects["dids"].items():
            if number in owners:
                report.add(
                    path,
                    f"the number {number!r} is also a DID at {_dotted(owners[number])}; "
                    "a number can belong to one tenant only",
                )
            else:
                owners[number] = path
        if settings is not None:
            # A calendar without a time zone keeps the tenant's clock.
            zone = {"timezone": settings.timezone}
            objects["hours"] = {
                name: hours if hours.timezone else hours.model_copy(update=zone)
                for name, hours in objects["hours"].items()
            }
            tenants[tenant_id] = Tenant(
                id=tenant_id,
                name=settings.name or tenant_id,
                timezone=settings.timezone,
                domains=[d.lower() for d in settings.domains],
                numbers=settings.numbers,
                record=settings.record,
                acd=settings.acd,
                **objects,
            )

    if sections["sip"] is not None and sections["http"] is not None:
        _check_listeners(sections["sip"], sections["http"], report)
    if report.lines:
        raise ConfigError(report.lines)

    records = sections["records"]
    if records.backend == "sqlite" and not records.dsn:
        sections["records"] = records.model_copy(
            update={"dsn": str(sections["node"].data_dir / "switch.db")}
        )
    recording = sections["recording"]
    if recording.directory is None:
        sections["recording"] = recording.model_copy(
            update={"directory": sections["node"].data_dir / "recordings"}
        )
    config = Config(**sections, tenants=tenants, source=source)
    config._raw = raw
    config._base_dir = base_dir
    config._apps = names
    return config


def load_config(path: str | os.PathLike[str], apps: Iterable[str] | None = None) -> Config:
    """Read and validate a TOML config file; raise ConfigError listing every problem.

    `apps`: the names of the applications the node will have (default
    BUILTIN_APPS), which a DID's `app` must name."""
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{name}: no such file"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{name}: is a directory, expected a TOML file"]) from None
    except PermissionError:
        raise ConfigError([f"{name}: permission denied (cannot read the file)"]) from None
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read: {exc.strerror}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{name}: line {line}: not UTF-8 text (TOML files are UTF-8)"]) from None
    return _build(_parse(text, name), name, Path(name).absolute().parent, apps=apps)


def demo_config_text() -> str:
    """The demo configuration shipped with switch, comments included."""
    return resources.files("switch").joinpath("demo.toml").read_text(encoding="utf-8")


def load_demo_config(apps: Iterable[str] | None = None) -> Config:
    """The demo configuration, validated; `switch run` uses it when given no --config."""
    return _build(_parse(demo_config_text(), DEMO_SOURCE), DEMO_SOURCE, None, apps=apps)
