"""The registrar layer of a node, built from the config: one function.

`switch.node` hands in what only it has (the stores, how to answer a
request, how to reach a binding) and gets the parts back to wire into the
SIP stack and the dispatcher.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Config
from ..sip.message import Request, Response
from ..store.directory import Directory
from ..store.location import Binding
from ..store.state import State
from .accounts import Accounts
from .auth import Authenticator
from .bindings import Policy
from .gate import Gate
from .qualify import Qualifier
from .service import Registrar

Reply = Callable[[Request, int, str | None, list[tuple[str, str]]], None]


@dataclass(frozen=True, slots=True)
class RegistrarParts:
    accounts: Accounts  # agents and trunks that register, with their digest hashes
    auth: Authenticator  # digest challenges and checks (REGISTER, INVITE)
    gate: Gate  # banned addresses and scanners, before parsing
    registrar: Registrar  # REGISTER
    qualifier: Qualifier  # OPTIONS pings of agents with qualify = true


async def build_registrar(
    config: Config,
    state: State,
    directory: Directory | None,
    *,
    reply: Reply,
    send_to_binding: Callable[[Request, Binding], asyncio.Future[Response]],
    sent_by_binding: Callable[[Binding], str],
    on_registered: Callable[[str, list[Binding]], None],
    server: str,
) -> RegistrarParts:
    reg = config.registrar
    accounts = Accounts(config, directory)
    await accounts.load_directory()
    gate = Gate(state.bans, reg.scanners)
    await gate.sync()
    auth = Authenticator(
        accounts,
        await state.shared_secret("digest-nonce"),
        state.bans,
        algorithms=reg.auth_algorithms,
        nonce_ttl=reg.nonce_ttl,
        on_ban=gate.add,
    )
    registrar = Registrar(
        accounts,
        auth,
        state.locations,
        Policy(reg.min_expires, reg.default_expires, reg.max_expires, reg.max_contacts),
        config.node.name,
        reply,
        on_registered=on_registered,
        server=server,
        # REGISTER is served without a task only where the store never
        # waits (see switch/eager.py).
        eager=state.backend == "memory",
    )
    qualifier = Qualifier(
        state.locations, send_to_binding, sent_by_binding, server, interval=reg.qualify_interval
    )
    return RegistrarParts(accounts, auth, gate, registrar, qualifier)
