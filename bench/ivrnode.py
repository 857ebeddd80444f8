"""The node of bench/ivr.py: the real IVR (runner, engine, flow) on every call to the bench DID.

    python -m bench.ivrnode CONFIG STATS

It is `switch run --config CONFIG` with the "ivr" application wrapped to
count the keys the flows heard (live runs' keys plus those of the runs
that have ended), written with bench/channelnode.py's stats every 0.25 s.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from switch.apps.builtin import builtin_apps
from switch.apps.ivr import load_flows
from switch.apps.services import NodeApps
from switch.call.app import AppCall
from switch.config import load_config
from switch.media.wav import Audio

from .channelnode import Counts


class IvrCounts(Counts):
    def __init__(self, path: Path, apps: NodeApps) -> None:
        super().__init__(path, Audio(b"", 8000))
        self.apps = apps
        self.ivr = apps.apps()["ivr"]
        self.ended_keys = 0

    def write(self) -> None:
        runs = self.apps.services.runs
        self.keys = self.ended_keys + sum(len(run.digits) for run in runs.values())
        self.prompts = len(runs)
        super().write()

    async def run_ivr(self, call: AppCall) -> None:
        self.start()
        self.answered += 1
        try:
            await self.ivr(call)
        finally:
            summary = call.variables.get("ivr") or {}
            self.ended_keys += len(summary.get("digits", ""))
            self.ended += 1


def main(argv: list[str]) -> int:
    config_path, stats_path = Path(argv[0]), Path(argv[1])
    config = load_config(config_path)
    config.node.data_dir.mkdir(parents=True, exist_ok=True)
    flows = load_flows(config)
    node_apps = NodeApps(config, lambda: flows)
    counts = IvrCounts(stats_path, node_apps)
    # The prompt rendered once before the calls come (espeak-ng's cache on disk).
    asyncio.run(node_apps.speech.say(PROMPT, "en", 8000))
    apps = {**builtin_apps(), **node_apps.apps(), "ivr": counts.run_ivr}
    from switch.node import run

    return run(config, apps)


PROMPT = (
    "Thank you for calling. For sales, press one. For support, press two. "
    "To hear these options again, press star."
)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
