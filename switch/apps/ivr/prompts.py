"""A run's prompts as playlist items: speech rendered (espeak-ng, cached), files read.

Speech is cached on disk by `switch.media.tts` and here in memory too, so
that hundreds of callers hearing the same menu share one `Audio` (and the
player's conversions of it) without reading the cache file per play.
Files are read once per (path, mtime).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from ...media import player
from ...media.tts import Speech
from ...media.wav import Audio, read_prompt
from . import commands as cmd

CACHED = 256  # prompts kept in memory


class Prompts:
    def __init__(self, speech: Speech, rate: int = 8000) -> None:
        self.speech = speech
        self.rate = rate  # speech is rendered at 8 kHz; the player converts for Opus legs
        self._audio: OrderedDict[tuple, Audio] = OrderedDict()

    def _cached(self, key: tuple) -> Audio | None:
        audio = self._audio.get(key)
        if audio is not None:
            self._audio.move_to_end(key)
        return audio

    def _keep(self, key: tuple, audio: Audio) -> Audio:
        self._audio[key] = audio
        while len(self._audio) > CACHED:
            self._audio.popitem(last=False)
        return audio

    async def audio(self, item: cmd.Speech | cmd.File) -> Audio:
        if isinstance(item, cmd.Speech):
            key: tuple = ("say", item.text, item.voice)
            audio = self._cached(key)
            if audio is None:
                audio = self._keep(key, await self.speech.say(item.text, item.voice, self.rate))
            return audio
        path = Path(item.path)
        mtime = (await asyncio.to_thread(path.stat)).st_mtime_ns
        key = ("file", str(path), mtime)
        audio = self._cached(key)
        if audio is None:
            audio = self._keep(key, await asyncio.to_thread(read_prompt, path))
        return audio

    async def items(self, items: Iterable[cmd.PlayItem], loop: int = 1) -> list[player.Item]:
        """The playlist of a Play: its items `loop` times (loop 0 is looped by the player)."""
        out: list[player.Item] = []
        for item in items:
            if isinstance(item, cmd.Silence):
                out.append(player.Silence(item.ms))
            else:
                out.append(player.Clip(await self.audio(item)))
        return out * max(1, loop)
