"""The `callback` verb: a caller's request to be called back, kept for the ACD.

Stored as JSON lines in `<data_dir>/callbacks.jsonl` (one object a line:
tenant, queue, number, at, call, variables), appended in a thread; the
ACD's callback feature reads them (`pending()`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("switch.ivr")


class Callbacks:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = asyncio.Lock()

    async def add(
        self, tenant: str, queue: str, number: str, call_id: str, variables: dict[str, Any]
    ) -> None:
        entry = {
            "tenant": tenant,
            "queue": queue,
            "number": number,
            "at": time.time(),
            "call": call_id,
            "variables": variables,
        }
        line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        async with self._lock:
            await asyncio.to_thread(self._append, line)
        log.info("callback: %s asked to be called back on %s (queue %s)", call_id, number, queue)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)

    def pending(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]
