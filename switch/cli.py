"""The `switch` command line: run a node, check a config file, print the version.

Exit codes: 0 success, 1 the check or the node failed, 2 bad usage or a
config the node cannot start with, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from switch import __version__
from switch.config import (
    DEMO_SOURCE,
    Config,
    ConfigError,
    demo_config_text,
    load_config,
    load_demo_config,
)


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
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"{args.file}: OK ({len(config.tenants)} tenants, {_count(config, 'agents')} agents, "
        f"{_count(config, 'trunks')} trunks, {_count(config, 'queues')} queues, "
        f"{_count(config, 'dids')} DIDs)"
    )
    _warn_demo_passwords(config)
    return 0


def _version(args: argparse.Namespace) -> int:
    print(f"switch {__version__}")
    return 0


def _demo_config(args: argparse.Namespace) -> int:
    sys.stdout.write(demo_config_text())
    return 0


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

    version = commands.add_parser("version", help="print the version")
    version.set_defaults(handler=_version)

    demo = commands.add_parser(
        "demo-config", help="print the demo configuration, a starting point for your own"
    )
    demo.set_defaults(handler=_demo_config)
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
            "switch: error: a command is required (run, check-config, version, demo-config)",
            file=sys.stderr,
        )
        return 2
    try:
        return handler(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
