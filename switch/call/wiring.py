"""The call layer of a node, built from the config: one function.

`switch.node` hands in its SIP stack as a `SipPort` (the few callables the
call layer sends through) and the registrar's accounts and authenticator,
and gets back the parts to wire into the dispatcher and run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..config import Config
from ..media.ice import IceSettings
from ..media.relay import PortPool
from ..registrar.accounts import Accounts
from ..registrar.auth import Authenticator
from ..registrar.guard import Guard
from ..sip.flow import Flow
from ..sip.message import Request, Response
from ..sip.transaction import ClientTransaction
from ..store.state import State
from .app import Apps
from .b2bua import Calls
from .carrier import CarrierRegistrations
from .recording import Recordings
from .routing import Locate, Router
from .trunks import TrunkMonitor


@dataclass(frozen=True, slots=True)
class SipPort:
    """The node's SIP stack, as the call layer uses it."""

    send_request: Callable[..., ClientTransaction]  # (request, flow, on_event)
    request: Callable[[Request, Flow], Awaitable[Response]]  # the final response
    send_stateless: Callable[[bytes, Flow], None]  # an ACK to a 2xx, say
    respond: Callable[[Response], None]
    sent_by: Callable[[Flow], str]  # our address as the far end of a flow sees it
    locate: Locate  # DNS for hosts given by name (RFC 3263)
    server: str  # Server / User-Agent


@dataclass(frozen=True, slots=True)
class CallParts:
    carriers: CarrierRegistrations  # we register to carriers (register = true)
    guard: Guard  # who may call: trunks by address, agents and PBXs by digest
    trunks: TrunkMonitor  # OPTIONS keepalive of trunks
    calls: Calls  # the B2BUA


def build_calls(
    config: Config,
    state: State,
    accounts: Accounts,
    auth: Authenticator,
    sip: SipPort,
    apps: Apps | None = None,
) -> CallParts:
    """`apps`: name -> application, for the DIDs the node answers itself."""
    carriers = CarrierRegistrations(config, sip.request, sip.sent_by, sip.server, locate=sip.locate)
    # A carrier we register to calls from its registrar's address.
    guard = Guard(config, accounts, auth, state.locations, carrier_for=carriers.carrier_for)
    trunks = TrunkMonitor(config, sip.request, sip.sent_by, sip.server, locate=sip.locate)
    media, calls_config = config.media, config.calls
    listen = config.sip.listen.host
    router = Router(config, state.locations, trunks.is_up, locate=sip.locate)
    recordings = Recordings(config, router)
    recordings.report_leftovers()  # a crash's remnants, for the operator
    calls = Calls(
        router,
        sip.send_request,
        sip.respond,
        sip.send_stateless,
        sip.sent_by,
        sip.server,
        media=PortPool(listen, media.rtp_port_min, media.rtp_port_max),
        media_address=media.address or config.sip.public_address or listen,
        session_expires=calls_config.session_expires,
        min_se=calls_config.min_se,
        redirects=calls_config.redirects,
        recordings=recordings,
        apps=apps,
    )
    calls.ice = IceSettings.from_config(media)
    return CallParts(carriers, guard, trunks, calls)
