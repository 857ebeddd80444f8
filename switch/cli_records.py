"""`switch cdrs`: the last CDRs of a node's records database, as a table or JSON.

Reads the database the config names (`[records]`); records still waiting in
the node's outbox (the database was down) are not there yet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from switch.config import load_config, load_demo_config

_COLUMNS = (
    ("START (UTC)", lambda r: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["start_time"]))),
    ("TENANT", lambda r: r["tenant"]),
    ("DIRECTION", lambda r: r["direction"]),
    ("CALLER", lambda r: r["caller"]),
    ("DID", lambda r: r["did"]),
    ("CALLEE", lambda r: r["callee"]),
    ("SECONDS", lambda r: f"{r['duration']:.1f}" if r["duration"] is not None else ""),
    ("BILLSEC", lambda r: f"{r['billsec']:.1f}" if r["billsec"] is not None else ""),
    ("QUEUE", lambda r: r["queue"]),
    ("AGENT", lambda r: r["agent"]),
    ("HANGUP", lambda r: f"{r['hangup_by'] or ''} {r['hangup_code'] or ''}".strip()),
    ("DISPOSITION", lambda r: r["disposition"]),
)


class CdrsError(Exception):
    """The CDRs cannot be read; the message says why."""


def fetch_cdrs(args: argparse.Namespace) -> list[dict[str, Any]]:
    from switch.store.records import Unavailable, open_backend
    from switch.store.records.service import decode

    config = load_config(args.config) if args.config else load_demo_config()
    config = config.with_overrides(data_dir=args.data_dir)

    async def read() -> list[dict[str, Any]]:
        backend = open_backend(config.records.backend, config.records.dsn)
        try:
            return [decode(row) for row in await backend.fetch("cdrs", args.last)]
        except Unavailable as exc:
            raise CdrsError(str(exc)) from None
        finally:
            await backend.close()

    return asyncio.run(read())


def table(rows: list[dict[str, Any]]) -> str:
    cells = [[title for title, _ in _COLUMNS]]
    cells += [["" if (v := get(row)) is None else str(v) for _, get in _COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def cdrs_command(args: argparse.Namespace) -> int:
    if args.last < 1:
        raise CdrsError(f"--last {args.last}: give a number of CDRs, 1 or more")
    rows = fetch_cdrs(args)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    elif rows:
        print(table(rows))
    else:
        print("no CDRs")
    return 0


def add_cdrs_command(commands: Any) -> None:
    cdrs = commands.add_parser("cdrs", help="print the last CDRs of the records database")
    cdrs.add_argument("--config", metavar="FILE", help="TOML config file (default: the demo)")
    cdrs.add_argument("--data-dir", metavar="DIR", help="overrides node.data_dir")
    cdrs.add_argument("-n", "--last", type=int, default=20, metavar="N", help="default: 20")
    cdrs.add_argument("--json", action="store_true", help="every column, as JSON")
    cdrs.set_defaults(handler=cdrs_command)
