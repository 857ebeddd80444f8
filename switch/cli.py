"""The `switch` command line: run a node, check a config file and its IVR flows, have a
running node reload its flows, print the version, manage the agents of the directory
database (`switch agent ...`), print the last CDRs (`switch cdrs`).

Exit codes: 0 success, 1 the check or the node failed, 2 bad usage or a
config the node cannot start with, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from switch import __version__
from switch.apps.ivr import FlowError, load_flows
from switch.cli_records import CdrsError, add_cdrs_command
from switch.config import (
    DEMO_SOURCE,
    Config,
    ConfigError,
    demo_config_text,
    load_config,
    load_demo_config,
)

if TYPE_CHECKING:
    from switch.store.directory import Directory

PID_FILE = "switch.pid"  # as switch.node writes it (not imported: the node is heavy)


def _warn(message: str) -> None:
    print(f"switch: warning: {message}", file=sys.stderr)


def _warn_demo_passwords(config: Config) -> None:
    if config.uses_demo_passwords():
        _warn(
            f"{config.source} still uses demo passwords (agent1001, supervisor, admin, ...); "
            "change them before other machines can reach this node"
        )


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config) if args.config else load_demo_config()
    config = config.with_overrides(
        sip_listen=args.sip_listen, http_listen=args.http_listen, data_dir=args.data_dir
    )
    load_flows(config)  # a FlowError is a ConfigError: the node does not start
    if config.source == DEMO_SOURCE:
        print(
            "switch: no --config given: running the demo configuration "
            "(see it with `switch demo-config`)",
            file=sys.stderr,
        )
    _warn_demo_passwords(config)
    # Imported here so that check-config and version work without the node's
    # heavier dependencies (media, web) installed.
    try:
        node = importlib.import_module("switch.node")
    except ModuleNotFoundError as exc:
        if exc.name == "switch.node":
            print("switch: cannot start: this build has no switch.node", file=sys.stderr)
        else:
            print(
                f"switch: cannot start: the Python module {exc.name!r} is not installed",
                file=sys.stderr,
            )
        return 1
    return node.run(config)


def _count(config: Config, kind: str) -> int:
    return sum(len(getattr(tenant, kind)) for tenant in config.tenants.values())


def _check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
        flows = load_flows(config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"{args.file}: OK ({len(config.tenants)} tenants, {_count(config, 'agents')} agents, "
        f"{_count(config, 'trunks')} trunks, {_count(config, 'queues')} queues, "
        f"{_count(config, 'dids')} DIDs, {len(flows)} IVR flows)"
    )
    _warn_demo_passwords(config)
    return 0


def _reload(args: argparse.Namespace) -> int:
    """Check the config and its flows here, then SIGHUP the running node (its pid file).

    Checked first so that the operator reads the problems at once; the node
    checks again and keeps its flows if they are bad, and logs the outcome.
    """
    config = load_config(args.config) if args.config else load_demo_config()
    try:
        load_flows(config)
    except FlowError as exc:
        print(exc, file=sys.stderr)
        print("switch: the node was not asked to reload: fix the problems above", file=sys.stderr)
        return 1
    pid_file = Path(args.pid_file) if args.pid_file else config.node.data_dir / PID_FILE
    try:
        pid = int(pid_file.read_text().strip())
    except FileNotFoundError:
        raise _Refused(
            f"no pid file at {pid_file}: is the node running, with this config and from this "
            "directory (node.data_dir is relative to it)? Or give --pid-file"
        ) from None
    except (OSError, ValueError) as exc:
        raise _Refused(f"cannot read a pid from {pid_file}: {exc}") from None
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise _Refused(f"no process {pid} (from {pid_file}): the node is not running") from None
    except PermissionError:
        raise _Refused(f"not allowed to signal process {pid}: run as the node's user") from None
    print(f"switch: asked the node (pid {pid}) to reload its IVR flows; it logs the outcome")
    return 0


def _version(args: argparse.Namespace) -> int:
    print(f"switch {__version__}")
    return 0


def _demo_config(args: argparse.Namespace) -> int:
    sys.stdout.write(demo_config_text())
    return 0


# ---------------------------------------------------------------------------
# switch agent add | set-password | list | remove: the directory database.
# Agents written in the config file are shown by `list` but edited in the file.


class _Refused(Exception):
    """An agent command that cannot be done; the message is one line for the operator."""


def _agent_config(args: argparse.Namespace) -> Config:
    return load_config(args.config) if args.config else load_demo_config()


def _check_tenant(config: Config, tenant: str) -> None:
    if tenant not in config.tenants:
        known = ", ".join(sorted(config.tenants)) or "none"
        raise _Refused(f"unknown tenant {tenant!r} (known tenants: {known})")


def _in_config(config: Config, tenant: str, extension: str) -> bool:
    return extension in config.tenants[tenant].agents


def _read_password(given: str | None) -> str:
    if given is not None:
        password = given
    else:
        try:
            password = getpass.getpass("Password: ")
            again = getpass.getpass("Password (again): ")
        except EOFError:
            raise _Refused("no password given (use --password, or run in a terminal)") from None
        if password != again:
            raise _Refused("the two passwords do not match")
    if not password:
        raise _Refused("the password must not be empty")
    return password


def _with_directory(config: Config, job: Callable[[Directory], Awaitable[int]]) -> int:
    # Imported here so that the other commands do not pay for the store.
    from switch.store.directory import Directory, DirectoryError

    if config.records.backend != "sqlite":
        raise _Refused(
            f"records.backend = {config.records.backend!r}: "
            "agent commands support the SQLite directory only"
        )

    async def run() -> int:
        directory = await Directory.open(Path(config.records.dsn))
        try:
            return await job(directory)
        finally:
            await directory.close()

    try:
        return asyncio.run(run())
    except DirectoryError as exc:
        raise _Refused(str(exc)) from None


def _agent_add(args: argparse.Namespace) -> int:
    config = _agent_config(args)
    _check_tenant(config, args.tenant)
    if _in_config(config, args.tenant, args.ext):
        raise _Refused(
            f"agent {args.ext} already exists in tenant {args.tenant} "
            f"(in the config file {config.source})"
        )
    password = _read_password(args.password)

    async def add(directory: Directory) -> int:
        await directory.add_agent(args.tenant, args.ext, args.name, password)
        return 0

    _with_directory(config, add)
    name = f" ({args.name})" if args.name else ""
    print(f"added agent {args.ext}{name} to tenant {args.tenant}")
    return 0


def _agent_set_password(args: argparse.Namespace) -> int:
    config = _agent_config(args)
    _check_tenant(config, args.tenant)

    async def exists(directory: Directory) -> int:
        return int(await directory.get(args.tenant, args.ext) is not None)

    # Asked before the prompt, so that nobody types a password twice for nothing.
    if not _with_directory(config, exists):
        if _in_config(config, args.tenant, args.ext):
            raise _Refused(
                f"agent {args.ext} of tenant {args.tenant} is defined in the config file "
                f"{config.source}: change its password there"
            )
        raise _Refused(f"agent {args.ext} not found in tenant {args.tenant}")
    password = _read_password(args.password)

    async def set_password(directory: Directory) -> int:
        await directory.set_password(args.tenant, args.ext, password)
        return 0

    _with_directory(config, set_password)
    print(f"changed the password of agent {args.ext} in tenant {args.tenant}")
    return 0


def _agent_remove(args: argparse.Namespace) -> int:
    config = _agent_config(args)
    _check_tenant(config, args.tenant)

    async def remove(directory: Directory) -> int:
        if await directory.get(args.tenant, args.ext) is None:
            return 1
        await directory.remove_agent(args.tenant, args.ext)
        return 0

    if _with_directory(config, remove):
        if _in_config(config, args.tenant, args.ext):
            raise _Refused(
                f"agent {args.ext} of tenant {args.tenant} is defined in the config file "
                f"{config.source}: remove it there"
            )
        raise _Refused(f"agent {args.ext} not found in tenant {args.tenant}")
    print(f"removed agent {args.ext} from tenant {args.tenant}")
    return 0


def _agent_list(args: argparse.Namespace) -> int:
    config = _agent_config(args)
    if args.tenant is not None:
        _check_tenant(config, args.tenant)
    rows: dict[tuple[str, str], tuple[str, str]] = {}  # (tenant, ext) -> (name, source)
    for tenant_id, tenant in config.tenants.items():
        if args.tenant in (None, tenant_id):
            for ext, agent in tenant.agents.items():
                rows[(tenant_id, ext)] = (agent.name, "config")

    async def collect(directory: Directory) -> int:
        for record in await directory.list(args.tenant):
            # The config file wins where both define an agent: say so.
            if (record.tenant, record.extension) in rows:
                name, _ = rows[(record.tenant, record.extension)]
                rows[(record.tenant, record.extension)] = (name, "config+directory")
            else:
                rows[(record.tenant, record.extension)] = (record.name, "directory")
        return 0

    _with_directory(config, collect)
    if not rows:
        print("no agents" + (f" in tenant {args.tenant}" if args.tenant else ""))
        return 0
    table = [("TENANT", "EXT", "NAME", "SOURCE")]
    table += [(t, e, n, s) for (t, e), (n, s) in sorted(rows.items())]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[3]]))
    return 0


def _agent_usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def usage(args: argparse.Namespace) -> int:
        parser.print_usage(sys.stderr)
        print(
            "switch agent: error: a subcommand is required (add, set-password, list, remove)",
            file=sys.stderr,
        )
        return 2

    return usage


def _agent_commands(commands: Any) -> None:
    config_help = "TOML config file, for its tenants and database (default: the demo)"
    agent = commands.add_parser("agent", help="add, list and remove agents of the directory")
    agent.set_defaults(handler=_agent_usage(agent))
    sub = agent.add_subparsers(dest="agent_command", metavar="SUBCOMMAND")

    add = sub.add_parser("add", help="add an agent (prompts for the password)")
    add.add_argument("tenant", metavar="TENANT")
    add.add_argument("ext", metavar="EXT", help="extension, also the SIP user name")
    add.add_argument("--name", default="", help="display name")
    add.add_argument("--password", metavar="PW", help="default: asked twice, not echoed")
    add.add_argument("--config", metavar="FILE", help=config_help)
    add.set_defaults(handler=_agent_add)

    set_password = sub.add_parser("set-password", help="change an agent's password")
    set_password.add_argument("tenant", metavar="TENANT")
    set_password.add_argument("ext", metavar="EXT")
    set_password.add_argument("--password", metavar="PW", help="default: asked twice")
    set_password.add_argument("--config", metavar="FILE", help=config_help)
    set_password.set_defaults(handler=_agent_set_password)

    listing = sub.add_parser("list", help="list agents, from the config file and the directory")
    listing.add_argument("tenant", metavar="TENANT", nargs="?")
    listing.add_argument("--config", metavar="FILE", help=config_help)
    listing.set_defaults(handler=_agent_list)

    remove = sub.add_parser("remove", help="remove an agent from the directory")
    remove.add_argument("tenant", metavar="TENANT")
    remove.add_argument("ext", metavar="EXT")
    remove.add_argument("--config", metavar="FILE", help=config_help)
    remove.set_defaults(handler=_agent_remove)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switch", description="An internet call center: SIP registrar and B2BUA."
    )
    parser.add_argument("--version", action="version", version=f"switch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run a node (the demo configuration by default)")
    run.add_argument("--config", metavar="FILE", help="TOML config file (default: the demo)")
    run.add_argument("--sip-listen", metavar="HOST:PORT", help="overrides sip.listen")
    run.add_argument("--http-listen", metavar="HOST:PORT", help="overrides http.listen")
    run.add_argument("--data-dir", metavar="DIR", help="overrides node.data_dir")
    run.set_defaults(handler=_run)

    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(handler=_check_config)

    reload = commands.add_parser(
        "reload", help="check the config's IVR flows, then have the running node load them"
    )
    reload.add_argument("--config", metavar="FILE", help="TOML config file (default: the demo)")
    reload.add_argument("--pid-file", metavar="PATH", help=f"default: <node.data_dir>/{PID_FILE}")
    reload.set_defaults(handler=_reload)

    version = commands.add_parser("version", help="print the version")
    version.set_defaults(handler=_version)

    demo = commands.add_parser(
        "demo-config", help="print the demo configuration, a starting point for your own"
    )
    demo.set_defaults(handler=_demo_config)

    _agent_commands(commands)
    add_cdrs_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits on --help, --version and bad usage; return its code instead,
        # so that callers (and tests) get an int like every other outcome.
        return exc.code if isinstance(exc.code, int) else 2
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        print(
            "switch: error: a command is required "
            "(run, check-config, reload, version, demo-config, agent, cdrs)",
            file=sys.stderr,
        )
        return 2
    try:
        return handler(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (_Refused, CdrsError) as exc:
        print(f"switch: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
