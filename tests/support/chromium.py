"""Debian's Chromium driven by Playwright (the Python package), for the webphone tests.

Playwright's own browser builds are never downloaded: the tests launch
/usr/bin/chromium (Debian package `chromium`, installed by `make test`) and
skip, saying so, where it is absent. Media is faked: permission prompts are
granted (or, with `microphone=False`, there is no grant), and the microphone
plays a WAV file the test writes, so that what the far end hears can be
checked by content.
"""

from __future__ import annotations

import contextlib
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (`make test` installs the package)",
)

FLAGS = [
    "--use-fake-device-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # The node listens on 127.0.0.1: let WebRTC offer loopback candidates.
    "--allow-loopback-in-peer-connection",
]


def tone_wav(path: Path, hz: float, seconds: float = 2.0, rate: int = 48000) -> Path:
    """A mono 16-bit WAV of a sine at about -10 dBFS (the fake microphone loops it)."""
    t = np.arange(int(rate * seconds)) / rate
    pcm = (10000 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


@contextlib.asynccontextmanager
async def chromium(
    microphone_wav: Path | None = None, microphone: bool = True
) -> AsyncIterator[Browser]:
    """Headless Chromium; `microphone=False`: getUserMedia is refused (no prompt UI)."""
    flags = list(FLAGS)
    if microphone:
        flags.append("--use-fake-ui-for-media-stream")
    if microphone_wav is not None:
        flags.append(f"--use-file-for-fake-audio-capture={microphone_wav}")
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=flags, timeout=30_000
        )
        try:
            yield browser
        finally:
            await browser.close()


def screenshot_path(name: str) -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT / f"{name}.png"
