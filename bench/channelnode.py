"""The node of bench/channels.py: our node with one more application, "bench".

Run by bench/channels.py as a child process on the node's core:

    python -m bench.channelnode CONFIG STATS

It is `switch run --config CONFIG` (the same `switch.node.run`, uvloop and
all) with the application mapping extended, as a test would: every call to
the bench DID is answered by `ivr_caller`, which plays a spoken prompt in a
loop (rendered once with espeak-ng; the generated melody if espeak-ng is
missing), barge-in on, and listens for keys, counting each one heard and
starting the prompt again after it, as an IVR menu does. Every 0.25 s the
counts go to the STATS file (JSON, written atomically), where the load
generator reads how many keys the node heard.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path

from switch.apps.builtin import builtin_apps
from switch.call.app import AppCall
from switch.config import load_config
from switch.media.channel import Closed, Played
from switch.media.clock import media_clock
from switch.media.dtmf.digits import Digit
from switch.media.player import Clip, Player
from switch.media.tones import melody
from switch.media.wav import Audio

APP = "bench"
PROMPT = (
    "Thank you for calling. For sales, press one. For support, press two. "
    "To hear these options again, press star."
)
STATS_EVERY = 0.25  # seconds


class Counts:
    def __init__(self, path: Path, prompt: Audio) -> None:
        self.path = path
        self.prompt = prompt
        self.answered = self.ended = self.keys = self.prompts = 0
        self._writer: asyncio.Task[None] | None = None
        # The collector's pauses over 5 ms: (monotonic time, generation, ms),
        # the last 200, to tell them from the machine's own scheduling when
        # the media clock is late.
        self.pauses: list[tuple[float, int, float]] = []
        self._gc_start = 0.0
        gc.callbacks.append(self._collected)

    def _collected(self, phase: str, info: dict) -> None:
        now = time.monotonic()
        if phase == "start":
            self._gc_start = now
            return
        ms = (now - self._gc_start) * 1000
        if ms > 5:
            self.pauses = [*self.pauses[-199:], (now, info["generation"], round(ms, 1))]

    def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_forever())

    async def _write_forever(self) -> None:
        while True:
            self.write()
            await asyncio.sleep(STATS_EVERY)

    def write(self) -> None:
        clock = media_clock()
        pacer = clock.pacer
        stats = {
            "answered": self.answered,
            "ended": self.ended,
            "keys": self.keys,
            "prompts": self.prompts,
            "channels": len(clock),
            "clock_late": pacer.late if pacer else 0,
            "clock_skipped": pacer.skipped if pacer else 0,
            "clock_lateness": pacer.lateness if pacer else [0, 0, 0, 0],
            "gc_pauses": self.pauses,
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats))
        os.replace(tmp, self.path)

    async def ivr_caller(self, call: AppCall) -> None:
        """An IVR menu: the prompt in a loop until a key, then again."""
        self.start()
        channel = await call.answer()
        self.answered += 1
        player = Player([Clip(self.prompt)], channel.rate, loop=True)
        channel.play(player, barge_in=True)
        self.prompts += 1
        while True:
            event = await channel.events.get()
            if isinstance(event, Digit):
                self.keys += 1
            elif isinstance(event, Played) and event.reason == "digit":
                channel.play(Player([Clip(self.prompt)], channel.rate, loop=True), barge_in=True)
                self.prompts += 1
            elif isinstance(event, Closed):
                break
        self.ended += 1


async def _prompt(data_dir: Path) -> Audio:
    from switch.media.tts import Speech, TtsError, cache_dir

    try:
        return await Speech(cache_dir(data_dir)).say(PROMPT, "en", 8000)
    except TtsError as exc:
        print(f"bench: espeak-ng failed ({exc}); the prompt is the melody", file=sys.stderr)
        return Audio(melody(8000), 8000)


def main(argv: list[str]) -> int:
    config_path, stats_path = Path(argv[0]), Path(argv[1])
    apps = builtin_apps()
    config = load_config(config_path, apps=[*apps, APP])
    config.node.data_dir.mkdir(parents=True, exist_ok=True)
    prompt = asyncio.run(_prompt(config.node.data_dir))
    counts = Counts(stats_path, prompt)
    apps[APP] = counts.ivr_caller
    from switch.node import run

    return run(config, apps)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
