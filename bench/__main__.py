"""Run the benchmarks: `python -m bench [--smoke] [--only NAME]`.

Figures go to bench/results/bench.json and bench.md (smoke.* for a smoke
run) and the same table is printed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from .report import write

# Each benchmark's module is imported when it runs, not before: the parser
# bench measures in this process, and a heap grown by the later benches'
# imports (aiortc, numpy) slows it by a fifth (measured).
BENCHMARKS = (
    "parser", "register", "calls", "relay", "recording", "codecs", "webrtc", "acd", "channels",
    "ivr",
)  # fmt: skip


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
        module = importlib.import_module(f".{name}", __package__)
        rows.extend(module.run(opts.smoke))
    out = Path(__file__).resolve().parent / "results"
    print(write(rows, out, opts.smoke))
    print(f"written to {out}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
