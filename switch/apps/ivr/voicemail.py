"""Voicemail: a greeting, a beep, the caller's message as a WAV with JSON beside it.

Messages are kept in `<data_dir>/voicemail/<tenant>/<mailbox>/`: the WAV
is written atomically by the channel, then `<same name>.json` (caller,
DID, time, length, the IVR's variables) atomically too; a message whose
JSON exists is complete.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...media.channel import Channel
from ...media.player import Item

log = logging.getLogger("switch.ivr")

MAX_SECONDS = 180.0
SILENCE_SECONDS = 5.0
_SAFE = re.compile(r"[^A-Za-z0-9_.+-]")


def _safe(name: str) -> str:
    cleaned = _SAFE.sub("_", name).lstrip(".")
    return cleaned or "_"


class Voicemails:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "voicemail"

    def box(self, tenant: str, mailbox: str) -> Path:
        return self.root / _safe(tenant) / _safe(mailbox)

    async def take(
        self,
        channel: Channel,
        tenant: str,
        mailbox: str,
        greeting: Sequence[Item],
        meta: dict[str, Any],
        *,
        max_seconds: float = MAX_SECONDS,
        silence_seconds: float = SILENCE_SECONDS,
    ) -> Path | None:
        """Play the greeting, record after a beep; the WAV's path, or None if nothing was said."""
        if greeting and not channel.closed:
            await channel.play(greeting, barge_in=False)
        folder = self.box(tenant, mailbox)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        stem = f"{stamp}-{_safe(str(meta.get('call', '')))}"
        wav = folder / f"{stem}.wav"
        result = await channel.record(
            wav, max_seconds=max_seconds, silence_seconds=silence_seconds, stop_on="#", beep=True
        )
        if result.path is None:
            if result.error:
                log.warning("voicemail %s/%s: %s", tenant, mailbox, result.error)
            return None
        info = {
            **meta,
            "tenant": tenant,
            "mailbox": mailbox,
            "file": wav.name,
            "seconds": round(result.seconds, 2),
            "ended": result.reason,
            "at": time.time(),
        }
        await asyncio.to_thread(_write_json, folder / f"{stem}.json", info)
        log.info("voicemail %s/%s: %.1f s from %s", tenant, mailbox, result.seconds,
                 meta.get("caller", "?"))  # fmt: skip
        return wav


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, default=str, indent=1), encoding="utf-8")
    os.replace(tmp, path)
