"""One switch node: builds the layers from a Config and runs them.

The layers never import each other upwards; this module is where they meet.
Transports deliver bytes to the endpoint (the asyncio face of the sans-IO
SIP stack); the stack's events go to the dispatcher, which answers through
the endpoint; the web app serves health and SIP over WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import __version__
from .apps.acd_records import AcdRecorder
from .apps.acd_service import AcdService
from .apps.builtin import builtin_apps
from .apps.ivr import FlowError, FlowSet, load_flows, reload_flows
from .apps.services import NodeApps
from .call.app import Apps
from .call.b2bua import Calls
from .call.carrier import CarrierRegistrations
from .call.cdr import build_cdr
from .call.dispatch import Dispatcher
from .call.model import Call
from .call.trunks import TrunkMonitor
from .call.wiring import SipPort, build_calls
from .config import DEMO_SOURCE, Config, ConfigError, HostPort, load_config, load_demo_config
from .endpoint import Endpoint
from .registrar.auth import Denied
from .registrar.gate import Gate
from .registrar.guard import GUARDED, Guard
from .registrar.qualify import Qualifier
from .registrar.service import Registrar, flow_of
from .registrar.wiring import build_registrar
from .sip.flow import Flow
from .sip.locate import Hop
from .sip.message import Request, Response
from .sip.stack import SipStack
from .sip.transaction import (
    AckTimeout,
    ClientTransaction,
    RequestReceived,
    StrayResponse,
    Timers,
    TransactionError,
)
from .store.directory import Directory, DirectoryError
from .store.location import Binding
from .store.records import Records, RecordsError, open_backend
from .store.records.wrapups import Wrapups
from .store.state import State, StateError, open_state
from .transport.dns import Resolver
from .transport.limits import Limits
from .transport.registry import Transports
from .web.api import Api
from .web.app import make_app

if TYPE_CHECKING:
    from .call.model import Call

log = logging.getLogger("switch.node")

SERVER = f"switch/{__version__}"
PID_FILE = "switch.pid"  # in node.data_dir, while the node runs: `switch reload` signals it
# Option tags we understand in Require (RFC 3261 §8.2.2.3); grows with features.
SUPPORTED: frozenset[str] = frozenset({"path", "outbound"})


class StartError(Exception):
    """The node cannot start; the message says why and what to do, in one line."""


class Node:
    """A running node. `start()` binds everything; `stop()` releases it."""

    def __init__(self, config: Config, apps: Apps | None = None) -> None:
        self.config = config
        # The applications DIDs may name (`app = "echo"`): the built-in ones,
        # or what a test or a bench hands in.
        self.apps = dict(apps) if apps is not None else builtin_apps()
        # The IVR ("ivr", DIDs with ivr = ...) and the queues ("queue"): with services of their own.
        self.app_services = NodeApps(config, lambda: self.flows)
        for name, runner in self.app_services.apps().items():
            self.apps.setdefault(name, runner)
        self.started_at = time.time()
        self.ready = False
        self.sip_listeners: list[str] = []
        self.http_url = ""
        self._runner: web.AppRunner | None = None
        self.transports: Transports | None = None
        self.endpoint: Endpoint | None = None
        self.state: State | None = None
        self.directory: Directory | None = None
        self.registrar: Registrar | None = None
        self.gate: Gate | None = None
        self.qualifier: Qualifier | None = None
        self.guard: Guard | None = None
        self.calls: Calls | None = None
        self.trunks: TrunkMonitor | None = None
        self.queues: AcdService | None = None
        self.records: Records | None = None  # CDRs and queue/agent events (issue #9)
        self.wrapups: Wrapups | None = None  # agents' wrap-up forms -> their calls' CDRs
        self.api: Api | None = None  # the REST API (switch.web.api)
        dns = config.dns
        self.resolver = Resolver(
            [(server.host, server.port) for server in dns.nameservers],
            dns.timeout,
            dns.negative_ttl,
        )
        self.carriers: CarrierRegistrations | None = None  # we register to carriers
        self._listening: dict[str, tuple[str, int]] = {}  # transport -> bound address
        self._tasks: set[asyncio.Task[Any]] = set()
        sip = config.sip
        self.stack = SipStack(
            Timers(t1=sip.t1_ms / 1000, t2=sip.t2_ms / 1000, t4=sip.t4_ms / 1000),
            supported=SUPPORTED,
            server=SERVER,
        )
        self.dispatcher = Dispatcher(self._respond, SERVER, SUPPORTED)
        # IVR flows: replaced whole by reload(); a call keeps the Flow it started with.
        self.flows = FlowSet()
        self.reload_problems: list[str] = []

    def _respond(self, resp: Response) -> None:
        if self.endpoint is None:
            return  # stopping: the answer of a late task has nowhere to go
        try:
            self.endpoint.send_response(resp)
        except TransactionError:
            # The transaction ended while the answer was being prepared
            # (a slow store, or the node stopping); the client has given up.
            log.info("late response %d dropped: its transaction has ended", resp.status)

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "node": self.config.node.name,
            "version": __version__,
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "sip_listeners": self.sip_listeners,
            "sip_stats": dict(self.stack.stats),
            "transport_stats": dict(self.transports.stats) if self.transports else {},
            "trunk_registrations": self.carriers.status() if self.carriers else {},
            "ivr": {
                "flows": len(self.flows),
                "version": self.flows.version,
                "reload_problems": self.reload_problems,
            },
            "records": self.records.status() if self.records is not None else None,
        }

    def reload(self) -> list[str]:
        """Read the config file again and swap in its IVR flows if every one is good.

        Only flows, calendars (read by flows and queues' hours) and queue music
        are reloaded; other changes need a restart (a warning names the ACD's).
        Returns the problems (none when the swap was made).
        """
        try:
            source = self.config.source
            apps = list(self.apps)  # (the names DIDs may give: this node's applications)
            fresh = load_demo_config(apps) if source == DEMO_SOURCE else load_config(source, apps)
        except ConfigError as exc:
            problems = exc.lines
        else:
            self.flows, problems = reload_flows(self.flows, fresh)
            if not problems:
                self.app_services.configure(fresh)
                if self.queues is not None:
                    for change in self.queues.configure(fresh):
                        log.warning("reload: %s; restart the node to apply it", change)
        self.reload_problems = problems
        if problems:
            log.error("reload refused, the flows in use are kept:\n  %s", "\n  ".join(problems))
        else:
            log.info("reload: %d IVR flows, version %d", len(self.flows), self.flows.version)
        return problems

    async def start(self) -> None:
        cfg = self.config
        try:
            self.flows = load_flows(cfg)
        except FlowError as exc:
            raise StartError("IVR flows:\n" + "\n".join(exc.lines)) from None
        cfg.node.data_dir.mkdir(parents=True, exist_ok=True)
        await self._open_stores()
        self.transports = Transports(
            on_message=self._on_message,
            limits=Limits(),
            max_message_size=cfg.sip.max_message_size,
            idle_timeout=float(cfg.sip.tcp_idle_timeout),
        )
        self.transports.on_connection_closed(self._connection_closed)
        self.endpoint = Endpoint(self.stack, self.transports.send, self.dispatcher)
        await self._start_services()
        await self._listen_sip()
        await self._listen_http()
        if self.trunks is not None:  # pings need the listeners up
            self._spawn(self.trunks.run(), "trunk keepalive")
        if self.carriers is not None:  # so does our Contact
            self._spawn(self.carriers.run(), "carrier registration")
        self.ready = True
        log.info("node %s ready", cfg.node.name)

    async def _open_stores(self) -> None:
        cfg = self.config
        reg = cfg.registrar
        try:
            self.state = await open_state(
                cfg.state.backend,
                cfg.state.redis_url,
                cfg.node.name,
                ban_threshold=reg.auth_failures,
                ban_window=reg.auth_window,
                ban_time=reg.ban_time,
                prefix=cfg.state.key_prefix,
            )
        except StateError as exc:
            raise StartError(f"state: {exc}") from None
        # The directory of agents is SQLite only (the CLI's agent commands say
        # so too): with PostgreSQL records, agents come from the config file.
        if cfg.records.backend == "sqlite":
            try:
                self.directory = await Directory.open(cfg.records.dsn)
            except DirectoryError as exc:
                raise StartError(f"records: {exc}") from None
        # Records wait in <data_dir>/outbox while the database cannot take them:
        # only a schema newer than this code stops the node.
        self.records = Records(
            open_backend(cfg.records.backend, cfg.records.dsn), cfg.node.data_dir / "outbox"
        )
        try:
            await self.records.start()
        except RecordsError as exc:
            raise StartError(f"records: {exc}") from None
        self.wrapups = Wrapups(self.records)

    async def _start_services(self) -> None:
        """The registrar, the guard, the call layer, and how requests reach them."""
        assert self.state is not None
        cfg, state = self.config, self.state
        reg = await build_registrar(
            cfg,
            state,
            self.directory,
            reply=self.dispatcher.reply,
            send_to_binding=self._send_request,
            sent_by_binding=self._sent_by,
            on_registered=self._registered,
            server=SERVER,
        )
        self.gate, self.registrar, self.qualifier = reg.gate, reg.registrar, reg.qualifier
        self.stack.screen = self.gate.screen
        self.stack.stateless = self.registrar.stateless_challenge
        sip = SipPort(
            self._send_request_to,
            self._request_to,
            self._send_stateless,
            self._respond,
            self._sent_by_flow,
            self._locate,
            SERVER,
        )
        self._check_apps()
        await self._start_queues()
        parts = build_calls(cfg, state, reg.accounts, reg.auth, sip, self.apps)
        self.carriers, self.guard, self.trunks, self.calls = (
            parts.carriers, parts.guard, parts.trunks, parts.calls
        )  # fmt: skip
        self.calls.on_end = self._call_ended
        if self.queues is not None:  # agents on calls the ACD did not give them are busy
            self.calls.on_agent_call = self.queues.agent_call
            self.queues.callbacks.dialler = self.calls  # queue callbacks place calls
        self.dispatcher.handle("REGISTER", self.registrar.handle)
        for method in GUARDED:
            # Screened here (trunk by address, agent by digest), then the
            # call layer. REFER and MESSAGE outside a call: not served yet.
            self.dispatcher.handle(method, self._guarded, advertise=method == "INVITE")
        self.dispatcher.handle("BYE", self.calls.in_dialog)
        for method in ("UPDATE", "INFO"):
            self.dispatcher.handle(method, self._in_dialog_only)
        self.dispatcher.on_ack = self.calls.ack
        self.dispatcher.on_cancel = self.calls.cancel
        self.dispatcher.on_other = self._other_event
        if cfg.media.timeout:
            self._spawn(self.calls.reap_forever(cfg.media.timeout), "dead calls")
        self._spawn(self.gate.run(), "ban list refresh")
        self._spawn(self.qualifier.run(), "qualify")

    async def _start_queues(self) -> None:
        """The ACD service (switch.apps.acd_service) becomes the node's queues: the
        "queue" application and the IVR's enqueue give it their callers."""
        assert self.state is not None
        apps = self.app_services
        self.queues = AcdService(self.config, self.state.locations, apps.speech)
        apps.use_queues(self.queues)
        if self.records is not None:  # the ACD's events become queue/agent rows
            self.queues.add_listener(AcdRecorder(self.records))
        await self.queues.start()

    def _call_ended(self, call: Call) -> None:
        """A call is over: its CDR goes to the records (on disk before this returns).
        An application still running (the queue's outcome comes once the caller
        has gone) gives a fuller CDR when it finishes: it replaces the first."""
        row = self._record_call(call, None)
        task = call.app.task if call.app is not None else None
        if row is not None and task is not None and not task.done():
            task.add_done_callback(lambda _: self._record_call(call, row))

    def _record_call(self, call: Call, before: dict[str, Any] | None) -> dict[str, Any] | None:
        if self.records is None or self.calls is None:
            return None
        try:
            row = build_cdr(call, self.config.node.name, self.calls.caller_number(call))
        except Exception:  # a record is never worth a call: log it and go on
            log.exception("records: the CDR of call %d could not be made", call.id)
            return None
        if row != before:
            self.records.cdr(row)
            if self.wrapups is not None:
                self.wrapups.ended(call.id, row)
        return row

    def _check_apps(self) -> None:
        """Every DID's application must be one this node has."""
        for tenant in self.config.tenants.values():
            for number, did in tenant.dids.items():
                kind, name = did.target
                if kind == "app" and name not in self.apps:
                    raise StartError(
                        f"tenants.{tenant.id}.dids.{number}.app: {name!r} is not an application "
                        f"of this node ({', '.join(self.apps) or 'none'})"
                    )

    def _guarded(self, event: RequestReceived) -> None:
        assert self.calls is not None
        req = event.request
        if req.to.tag is not None:
            # Inside a call (re-INVITE, REFER): the dialog says who sent it.
            self.calls.in_dialog(event)
            return
        self._spawn(self._screen_caller(event), f"guard {req.method}")

    def _in_dialog_only(self, event: RequestReceived) -> None:
        """UPDATE and INFO exist only inside a call (RFC 3311, RFC 6086)."""
        assert self.calls is not None
        if event.request.to.tag is None:
            self.dispatcher.reply(event.request, 481, "Call/Transaction Does Not Exist")
            return
        self.calls.in_dialog(event)

    def _other_event(self, event: Any) -> None:
        if self.calls is None:
            return
        if isinstance(event, StrayResponse):
            self.calls.stray(event)
        elif isinstance(event, AckTimeout):
            self.calls.ack_timeout(event)

    async def _locate(self, host: str, port: int, transport: str | None) -> list[Hop]:
        """A trunk host's servers in DNS, on the transports and address family we send on."""
        sip = self.config.sip
        return await self.resolver.locate(
            host, port, transport, sip.transports, _families(sip.listen.host)
        )

    def _send_request_to(self, req: Request, flow: Flow, on_event: Any = None) -> ClientTransaction:
        assert self.endpoint is not None
        return self.endpoint.send_request(req, flow, on_event)

    def _request_to(self, req: Request, flow: Flow) -> asyncio.Future[Response]:
        assert self.endpoint is not None
        return self.endpoint.request(req, flow)

    def _send_stateless(self, data: bytes, flow: Flow) -> None:
        assert self.endpoint is not None
        self.endpoint.send_stateless(data, flow)

    def _sent_by_flow(self, flow: Flow) -> str:
        """Our address as a peer on `flow` should see it (Via sent-by, Contact).

        A listener on 0.0.0.0 is no address a peer can answer to (rport
        brings answers back anyway): the public address when it is known.
        """
        if flow.transport in ("ws", "wss"):  # browsers reach us at the HTTP listener
            return self.http_url.partition("://")[2] or "switch.invalid"
        host, port = flow.local
        if not port:  # a flow we open: the address of our listener for it
            host, port = self._listening.get(flow.transport, ("127.0.0.1", 5060))
        return str(HostPort(self.config.sip.public_address or host, port))

    async def _screen_caller(self, event: RequestReceived) -> None:
        assert self.guard is not None
        req = event.request
        try:
            caller = await self.guard.check(req, event.flow)
        except Exception:
            log.exception("%s from %s: caller check failed", req.method, event.flow)
            self.dispatcher.reply(req, 500, None, [("Retry-After", "5")])
            return
        if isinstance(caller, Denied):
            self.dispatcher.reply(req, caller.status, caller.reason, list(caller.headers))
            return
        if req.method == "INVITE":
            assert self.calls is not None
            self.calls.invite(event, caller)
            return
        log.info("%s from %s %s/%s: not served yet", req.method, caller.kind, caller.tenant,
                 caller.name)  # fmt: skip
        self.dispatcher.reply(req, 501, "Not Implemented")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _registered(self, aor: str, bindings: list[Binding]) -> None:
        tenant_id, _, ext = aor.partition("/")
        tenant = self.config.tenants.get(tenant_id)
        agent = tenant.agents.get(ext) if tenant is not None else None
        # (The ACD hears of the bindings from the location store's events.)
        if agent is not None and agent.qualify and self.qualifier is not None:
            self.qualifier.watch(aor, bindings, self.config.node.name)

    def _send_request(self, req: Request, binding: Binding) -> asyncio.Future[Response]:
        assert self.endpoint is not None
        return self.endpoint.request(req, flow_of(binding))

    def _sent_by(self, binding: Binding) -> str:
        """The Via sent-by of a request to this binding: where answers may come."""
        return self._sent_by_flow(flow_of(binding))

    def _connection_closed(self, flow: Flow) -> None:
        # A binding made over a connection is reachable only through it
        # (RFC 5626 §5.3; a browser has no other address): when the
        # connection ends, so do its bindings. The device re-registers.
        if flow.conn_id is None or self.state is None or not self.ready:
            return
        self._spawn(self._forget_flow(flow.conn_id), "forget flow")

    async def _forget_flow(self, conn_id: int) -> None:
        assert self.state is not None
        try:
            removed = await self.state.locations.remove_flow(self.config.node.name, conn_id)
        except Exception:
            log.exception("cannot remove the bindings of closed connection %d", conn_id)
            return
        for binding in removed:
            log.info(
                "unregistered: aor=%s contact=%s reason=connection_closed",
                binding.aor,
                binding.contact,
            )

    def _on_message(self, data: bytes, flow: Flow) -> None:
        assert self.endpoint is not None
        if self.gate is not None and self.gate.banned(flow.remote[0]):
            self.stack.stats["dropped_banned"] += 1
            return
        self.endpoint.on_message(data, flow)

    async def _listen_sip(self) -> None:
        assert self.transports is not None
        sip = self.config.sip
        host, port = sip.listen.host, sip.listen.port
        # UDP and TCP share one port number, as peers expect of 5060. With
        # port 0 (any free port, as tests ask) the number UDP gets may be
        # taken for TCP by some connection's local port: then try another.
        # A port the config names is that port or nothing: a node without
        # its SIP listener must not start (it did, once, saying nothing).
        attempts = 20 if port == 0 and len(sip.transports) > 1 else 1
        for attempt in range(attempts):
            bound = port
            udp = None
            transport = "udp"
            try:
                if "udp" in sip.transports:
                    udp = await self.transports.listen_udp(host, port)
                    bound = udp[1]
                if "tcp" in sip.transports:
                    transport = "tcp"
                    tcp = await self.transports.listen_tcp(host, bound)
                    self.sip_listeners.append(f"tcp:{HostPort(*tcp)}")
                    self._listening["tcp"] = tcp
            except OSError as exc:
                if udp is not None:
                    self.transports.close_udp(udp)
                if udp is not None and attempt < attempts - 1:
                    continue  # (uvloop's errors may carry no errno: any failure retries)
                raise StartError(
                    f"sip.listen: cannot listen on {HostPort(host, bound)} ({transport}): "
                    f"{exc.strerror or exc}; another program may have that port (stop it, or "
                    "choose another), or the address is not one of this machine's"
                ) from None
            if udp is not None:
                self.sip_listeners.insert(0, f"udp:{HostPort(*udp)}")
                self._listening["udp"] = udp
            break
        if "tls" in sip.transports:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(sip.tls_cert), str(sip.tls_key))
            host_, port = await self.transports.listen_tls(
                sip.tls_listen.host, sip.tls_listen.port, context
            )
            self.sip_listeners.append(f"tls:{HostPort(host_, port)}")

    async def _listen_http(self) -> None:
        assert self.transports is not None
        http = self.config.http
        context = None
        if http.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(http.tls_cert), str(http.tls_key))
        # The REST API and CTI socket, on the call layer (calls, supervision,
        # originate) and the records (wrap-up forms).
        self.api = Api(
            self.config, self.queues, calls=self.calls, supervisor=self.calls,
            originate=self.calls.originate if self.calls is not None else None,
            wrapups=self.wrapups,
        )  # fmt: skip
        if self.calls is not None:
            self.calls.on_end = _both(self.calls.on_end, self.api.cti.call_ended)
        app = make_app(
            self.status, self.transports.ws_handler(secure=context is not None), api=self.api
        )
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, http.listen.host, http.listen.port, ssl_context=context)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        bound = server.sockets[0].getsockname()  # type: ignore[union-attr]
        scheme = "https" if context else "http"
        self.http_url = f"{scheme}://{HostPort(bound[0], bound[1])}"

    async def stop(self) -> None:
        self.ready = False
        if self.carriers is not None and self.endpoint is not None:
            # Unregister while the transports are still there to carry it.
            await self.carriers.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.queues is not None:
            await self.queues.stop()
        if self.registrar is not None:
            await self.registrar.close()
        if self.calls is not None:
            await self.calls.close()
        await self.app_services.close()
        if self.records is not None:
            await self.records.close()  # what the database cannot take stays in the outbox
            self.records = None
        await self.resolver.close()
        # Transports first: aiohttp's cleanup waits for open WebSocket
        # handlers, and closing the transports is what ends them.
        if self.transports is not None:
            await self.transports.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None
        if self.directory is not None:
            await self.directory.close()
            self.directory = None
        if self.state is not None:
            await self.state.close()
            self.state = None
        log.info("node %s stopped", self.config.node.name)


def _families(listen_host: str) -> tuple[str, ...]:
    """The address records usable from a listener on `listen_host`: A, AAAA or both."""
    try:
        ip = ipaddress.ip_address(listen_host)
    except ValueError:
        return ("A", "AAAA")
    if ip.version == 4:
        return ("A",)
    return ("AAAA", "A") if ip.is_unspecified else ("AAAA",)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def serve(config: Config, apps: Apps | None = None) -> None:
    """Run a node until SIGTERM or SIGINT."""
    node = Node(config, apps)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    # SIGHUP (what `switch reload` sends): IVR flows are read again.
    loop.add_signal_handler(signal.SIGHUP, node.reload)
    pid_file = config.node.data_dir / PID_FILE
    try:
        await node.start()
        pid_file.write_text(f"{os.getpid()}\n")
        # What exists now (modules, config, accounts) lives as long as the
        # process: keep it out of every future collection.
        gc.freeze()
        _print_banner(node)
        await stopping.wait()
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        with contextlib.suppress(OSError, ValueError):
            if int(pid_file.read_text()) == os.getpid():
                pid_file.unlink()
        await node.stop()


def _print_banner(node: Node) -> None:
    lines = [
        f"switch {__version__}: node {node.config.node.name} is running",
        f"  web:     {node.http_url}/",
        f"  health:  {node.http_url}/healthz",
        f"  phone:   {node.http_url}/phone/  (the agents' webphone)",
        f"  API:     {node.http_url}/api/openapi.json",
        f"  SIP:     {', '.join(node.sip_listeners)}",
        f"  SIP/WS:  {node.http_url.replace('http', 'ws', 1)}/sip",
        "  stop with Ctrl-C (or SIGTERM); reload IVR flows with `switch reload` (or SIGHUP)",
    ]
    print("\n".join(lines), flush=True)


def run(config: Config, apps: Apps | None = None) -> int:
    """Entry point of `switch run`: returns the process exit code. `apps`: the
    node's applications, if not the built-in ones (a bench's)."""
    _setup_logging(config.node.log_level)
    # Each SIP message makes a few hundred short-lived objects; with the
    # default threshold (700) the collector runs every few messages and
    # costs about 8% of a registration storm. Cycles are rare here, so
    # collect the youngest generation less often.
    gc.set_threshold(50_000, 20, 20)
    try:
        import uvloop
    except ImportError:
        uvloop = None
    try:
        if uvloop is not None:
            uvloop.run(serve(config, apps))
        else:
            asyncio.run(serve(config, apps))
    except OSError as exc:
        # The usual cause: the port is taken by another process.
        print(f"switch: cannot start: {exc}", file=sys.stderr)
        return 1
    except StartError as exc:
        print(f"switch: cannot start: {exc}", file=sys.stderr)
        return 1
    with contextlib.suppress(Exception):
        logging.shutdown()
    return 0


def _both(
    first: Callable[[Call], None] | None, second: Callable[[Call], None]
) -> Callable[[Call], None]:
    """A call-end hook calling `first` (if any) then `second`: records and CTI both hear."""
    if first is None:
        return second

    def both(call: Call) -> None:
        try:
            first(call)
        finally:
            second(call)

    return both
