"""Run the benchmarks: `python -m bench [--smoke] [--only NAME]`.

Figures go to bench/results/bench.json and bench.md (smoke.* for a smoke
run) and the same table is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import calls, codecs, parser, register, relay, webrtc
from .report import write

BENCHMARKS = {
    "parser": parser.run,
    "register": register.run,
    "calls": calls.run,
    "relay": relay.run,
    "codecs": codecs.run,
    "webrtc": webrtc.run,
}


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(prog="make bench")
    args.add_argument("--smoke", action="store_true", help="short runs, to prove they work")
    args.add_argument("--only", choices=sorted(BENCHMARKS), action="append")
    opts = args.parse_args(argv)
    # One core: the figures are per core, and the other one is left to the
    # load generators (SIPp) that later benchmarks run beside the node.
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rows = []
    for name in opts.only or BENCHMARKS:
        print(f"bench: running {name}...", file=sys.stderr, flush=True)
        rows.extend(BENCHMARKS[name](opts.smoke))
    out = Path(__file__).resolve().parent / "results"
    print(write(rows, out, opts.smoke))
    print(f"written to {out}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
