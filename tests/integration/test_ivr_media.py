"""The IVR's prompts as the caller hears them: a tone WAV as the prompt, found by its
frequencies in the RTP the node sends, and barge-in (a key cuts it at once, the
flow's next prompt follows)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switch.config import demo_config_text, load_config
from switch.media import g711
from switch.media.tones import Step, Tone, render
from switch.media.wav import Audio, write_wav
from switch.node import Node
from tests.integration.conftest import ended_calls
from tests.integration.test_apps import _events, _next_bye, _ok_to, trunk_call
from tests.media.audio import peaks, rms

FLOW = """
start: a
steps:
  a:
    - play: {files: chord.wav, barge_in: true}
    - play: high.wav
    - hangup
"""


@contextlib.asynccontextmanager
async def tone_node(tmp_path: Path) -> AsyncIterator[Node]:
    chord = Tone((Step((550.0, 1650.0), 10_000),), level=-12)
    write_wav(tmp_path / "chord.wav", Audio(render(chord, 8000), 8000))
    high = Tone((Step((1000.0,), 600),), level=-12)
    write_wav(tmp_path / "high.wav", Audio(render(high, 8000), 8000))
    (tmp_path / "tone.yaml").write_text(FLOW)
    text = demo_config_text().replace("keepalive = 30 ", "keepalive = 0 ", 1)
    old = '[tenants.demo.dids."300"]\napp = "echo"'
    assert old in text
    text = text.replace(old, '[tenants.demo.dids."300"]\nivr = "tone"')
    text += '\n[tenants.demo.ivr.tone]\nfile = "tone.yaml"\n'
    path = tmp_path / "node.toml"
    path.write_text(text)
    config = load_config(path).with_overrides(
        sip_listen="127.0.0.1:0", http_listen="127.0.0.1:0", data_dir=tmp_path / "data"
    )
    node = Node(config)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


async def test_the_prompt_is_heard_by_its_content_and_a_key_barges_in(tmp_path):
    async with tone_node(tmp_path) as node, trunk_call(node) as (trunk, media, _, node_media):
        ended = ended_calls(node)
        await asyncio.sleep(1.5)
        pressed = time.monotonic()
        for packet in _events("5", 8000, 100):
            media.transport.sendto(packet, node_media)
        bye = await asyncio.wait_for(_next_bye(trunk), 5)
        trunk.send(_ok_to(bye))
        voice = [(t, g711.ulaw_decode(d[12:])) for t, d in media.packets if d[1] & 0x7F == 0]
        before = b"".join(pcm for t, pcm in voice if t < pressed)
        after = [(t, pcm) for t, pcm in voice if t >= pressed and rms(pcm) > 500]
        # The chord, by its two frequencies, for as long as the caller listened.
        assert len(before) / 2 / 8000 >= 1.0
        assert peaks(before[-8000:], 8000, 2) == pytest.approx([550, 1650], abs=10)
        # Cut at once by the key: then the flow's next prompt, 1000 Hz, alone.
        chord_after = [pcm for _, pcm in after if _has(pcm, 550)]
        assert len(chord_after) <= 2 and len(after) >= 25
        high = b"".join(pcm for _, pcm in after if not _has(pcm, 550))
        assert 0.5 <= len(high) / 2 / 8000 <= 0.8
        assert peaks(high[1600:-1600], 8000, 1) == pytest.approx([1000], abs=15)
        await asyncio.sleep(0.1)
    summary = ended[0].app.variables["ivr"]
    assert summary["digits"] == "5" and summary["outcome"] == "hangup:flow"


def _has(pcm: bytes, hz: float) -> bool:
    return any(abs(p - hz) < 30 for p in peaks(pcm, 8000, 2))
