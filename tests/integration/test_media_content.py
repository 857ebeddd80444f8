"""Two-way audio through the relay, checked by content rather than packet counts.

A carrier's call on the demo trunk is answered by an agent's desk phone;
the carrier sends a 400 Hz tone, the phone 1000 Hz, both as 20 ms PCMU in
real time. Each must hear the other's tone at its frequency, and all of it:
on a plain relayed call (the fast path, packets untouched) and on calls
whose DTMF the node converts (the legs tapped, every packet forwarded by
the DTMF bridge, so the audio must come through it unharmed).

WebRTC <-> RTP, pass-through and through the Opus <-> PCMU transcoder, is
checked the same way in `test_webrtc_calls`.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.test_dtmf_calls import TRUNK_SSRC, trunk_calls_agent
from tests.media.audio import peaks
from tests.support.rtpend import audio_of, fields, pcmu, tone

SECONDS = 2.5


@pytest.mark.parametrize("dtmf", ["auto", "info", "inband"])
async def test_tones_cross_a_relayed_call_both_ways(tmp_path, dtmf):
    async with trunk_calls_agent(tmp_path, dtmf, trunk_events=True) as call:
        carrier_says = pcmu(tone(400, SECONDS), TRUNK_SSRC)
        phone_says = pcmu(tone(1000, SECONDS), 0x1000)
        await asyncio.gather(
            call.trunk_media.play(call.to_node_from_trunk, carrier_says),
            call.agent_media.play(call.to_node_from_agent, phone_says),
        )
        await asyncio.sleep(0.3)
        (live,) = call.node.calls._by_invite.values()  # type: ignore[union-attr]
        converted = live.dtmf is not None and live.dtmf.link is not None
        assert converted == (dtmf != "auto")  # auto: both legs RFC 4733, nothing tapped
        for heard, said, freq in (
            (call.agent_media.received, carrier_says, 400),
            (call.trunk_media.received, phone_says, 1000),
        ):
            audio = [p for p in heard if fields(p)[0] == 0]
            assert len(audio) == len(said)  # all of it...
            pcm = audio_of(audio)
            assert peaks(pcm, 8000, 1) == pytest.approx([freq], abs=10)  # ...and the right tone
            seqs = sorted(fields(p)[1] for p in audio)
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # numbered without holes
