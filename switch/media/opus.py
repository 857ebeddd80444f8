"""Opus (RFC 6716, RTP payload RFC 7587) encoder and decoder, over libopus.

Browsers send and expect Opus; the node decodes it only where audio must be
heard or made (transcoding to G.711, mixing, recording, DTMF detection).
Audio in and out is linear: 16-bit signed little-endian mono PCM bytes, at
the rate the coder was made for (48000 by default; libopus also works at
8000, 12000, 16000 and 24000 Hz and resamples inside). The RTP clock of
Opus is 48000 whatever that rate is.

The binding: ``opuslib-next`` (ctypes over the system's libopus, Debian
package libopus0), chosen over PyAV (``av``, libopus through libavcodec)
by measuring encode + decode of one 20 ms frame of 48 kHz mono audio (two
tones and noise), VoIP mode, 32 kbit/s, complexity 5, no FEC, on the
development machine (2 shared cores, Python 3.11, Debian's libopus 1.3.1
for opuslib-next, PyAV 18.1 with the libopus 1.5 its wheel bundles; best of
five runs of 1000 frames, pinned to one core):

=============================================  ===============  ============
binding                                        encode + decode  decode alone
=============================================  ===============  ============
opuslib-next classes (Encoder/Decoder)         229 µs           83 µs
PyAV CodecContext encode + decode              219 µs           --
opuslib-next states, libopus called directly   185 µs           35 µs
=============================================  ===============  ============

The encoder is most of the cost; the bindings differ in what they add
around it. PyAV makes an AudioFrame and a
Packet object per frame; opuslib-next's own ``decode`` builds a Python list
of every sample before making bytes. So this module keeps opuslib-next's
classes for what they do well (creating, configuring and freeing the libopus
states) and calls ``opus_encode``/``opus_decode`` itself with buffers it
owns. PyAV also cannot ask libopus for loss concealment without a packet,
which `OpusDecoder.conceal` needs. ``python -m bench --only codecs``
repeats the comparison.

Loss: `OpusDecoder.conceal()` fills a missing frame by libopus's packet loss
concealment; `OpusDecoder.conceal(next_payload)` recovers it from the
in-band forward error correction (FEC) that `OpusEncoder` adds by default
(``fec=True``, tuned for ``expected_loss`` percent), falling back to
concealment when that packet has none. A payload libopus cannot decode
raises `OpusError`, a ValueError; conceal in its place.
"""

from __future__ import annotations

import ctypes

try:
    import opuslib_next
    from opuslib_next.api import decoder as _decoder
    from opuslib_next.api import encoder as _encoder
    from opuslib_next.api import info as _info
except Exception as exc:  # it raises a bare Exception when libopus is not found
    raise ImportError(
        f"Opus needs the libopus shared library ({exc}): install it with "
        "`apt-get install libopus0` (Debian/Ubuntu) or your system's libopus package"
    ) from exc

RTP_CLOCK = 48000  # RFC 7587 §4.1: whatever rate the audio is
RATES = (8000, 12000, 16000, 24000, 48000)
FRAME_MS = 20
MAX_FRAME_MS = 120  # the longest a packet may hold (RFC 6716 §3.2.5)
# RFC 7587 §3.1.1 suggests a ceiling of 510 kbit/s; our frames are far below.
MAX_PAYLOAD = 1500


class OpusError(ValueError):
    """Audio libopus refused: a corrupt packet, or a frame of a size Opus cannot code."""


def version() -> str:
    """The version of libopus in use, e.g. "libopus 1.3.1" (for file headers)."""
    text = _info.get_version_string()
    return text.decode() if isinstance(text, bytes) else str(text)


def _check_rate(rate: int) -> None:
    if rate not in RATES:
        raise ValueError(
            f"Opus works at {', '.join(map(str, RATES))} Hz; got {rate}. "
            "Resample first (switch.media.resample)."
        )


def _error(code: int, what: str) -> OpusError:
    return OpusError(f"{what}: {opuslib_next.OpusError(code)} (libopus error {code})")


class OpusEncoder:
    """Encodes linear frames of 2.5, 5, 10, 20, 40 or 60 ms into Opus payloads.

    Defaults suit speech to a browser: the VoIP application mode, 32 kbit/s
    variable bitrate, in-band FEC for 10% loss, complexity 5 (libopus's
    cost roughly halves from 10 with little audible difference for speech).
    """

    def __init__(
        self,
        rate: int = 48000,
        *,
        bitrate: int = 32000,
        complexity: int = 5,
        fec: bool = True,
        expected_loss: int = 10,
        dtx: bool = False,
        channels: int = 1,
    ) -> None:
        _check_rate(rate)
        if channels not in (1, 2):
            raise ValueError(f"an Opus stream is mono or stereo here; got {channels} channels")
        if not 6000 <= bitrate <= 510000:
            raise ValueError(f"Opus bitrate is 6000 to 510000 bit/s; got {bitrate}")
        if not 0 <= complexity <= 10:
            raise ValueError(f"Opus complexity is 0 to 10; got {complexity}")
        if not 0 <= expected_loss <= 100:
            raise ValueError(f"expected loss is a percentage, 0 to 100; got {expected_loss}")
        self.rate = rate
        self.channels = channels
        self._coder = opuslib_next.Encoder(rate, channels, "voip")
        self._coder.bitrate = bitrate
        self._coder.complexity = complexity
        self._coder.inband_fec = int(fec)
        self._coder.packet_loss_perc = expected_loss
        self._coder.dtx = int(dtx)
        self._state = self._coder.encoder_state
        self._out = ctypes.create_string_buffer(MAX_PAYLOAD)
        # Bytes in a frame of 2.5, 5, 10, 20, 40 and 60 ms.
        self._sizes = {
            rate * tenths // 10000 * 2 * channels for tenths in (25, 50, 100, 200, 400, 600)
        }
        # Samples (at `rate`) the encoder delays its input by: what a file's
        # pre-skip must cover (RFC 7845 §4.2).
        self.lookahead: int = self._coder.lookahead

    def encode(self, pcm: bytes) -> bytes:
        """One frame of linear audio (e.g. 20 ms: 1920 bytes at 48 kHz; stereo
        interleaved, twice that) to one payload."""
        samples = len(pcm) // (2 * self.channels)
        if len(pcm) not in self._sizes:
            raise OpusError(
                f"an Opus frame is 2.5, 5, 10, 20, 40 or 60 ms of audio "
                f"({self.rate * FRAME_MS // 1000 * 2 * self.channels} bytes for 20 ms "
                f"at {self.rate} Hz); "
                f"got {len(pcm)} bytes"
            )
        pointer = ctypes.cast(ctypes.c_char_p(pcm), ctypes.POINTER(ctypes.c_int16))
        size = _encoder.libopus_encode(self._state, pointer, samples, self._out, MAX_PAYLOAD)
        if size < 0:
            raise _error(size, "cannot encode this frame")
        return self._out.raw[:size]

    def reset(self) -> None:
        """Start again as for a new stream (after a source change)."""
        self._coder.reset_state()


class OpusDecoder:
    """Decodes Opus payloads to linear audio at `rate`, and conceals lost ones."""

    def __init__(self, rate: int = 48000) -> None:
        _check_rate(rate)
        self.rate = rate
        self._coder = opuslib_next.Decoder(rate, 1)
        self._state = self._coder.decoder_state
        self._capacity = rate * MAX_FRAME_MS // 1000
        self._pcm = (ctypes.c_int16 * self._capacity)()
        self._pointer = ctypes.cast(self._pcm, ctypes.POINTER(ctypes.c_int16))
        # What to conceal when nothing says how long the gap is: the last
        # frame's length, as the sender keeps its packetisation.
        self.frame_samples = rate * FRAME_MS // 1000

    def _run(self, payload: bytes | None, samples: int, fec: bool) -> bytes:
        length = 0 if payload is None else len(payload)
        got = _decoder.libopus_decode(self._state, payload, length, self._pointer, samples, fec)
        if got < 0:
            what = "cannot conceal" if payload is None else "cannot decode this Opus payload"
            raise _error(got, what)
        return ctypes.string_at(self._pcm, got * 2)

    def decode(self, payload: bytes) -> bytes:
        """One payload to the linear audio it carries (OpusError if it is corrupt)."""
        if not payload:
            # An empty payload is what RFC 7587 calls a lost or DTX frame.
            return self.conceal()
        pcm = self._run(payload, self._capacity, False)
        self.frame_samples = len(pcm) // 2
        return pcm

    def conceal(self, next_payload: bytes | None = None, samples: int | None = None) -> bytes:
        """Audio for a frame that did not arrive.

        With the payload that came after it, the frame is rebuilt from that
        payload's FEC data where it has some (libopus conceals otherwise);
        decode `next_payload` itself afterwards as usual. `samples` is the
        length of the gap (default: the last frame's), a multiple of 2.5 ms.
        """
        count = self.frame_samples if samples is None else samples
        if count <= 0 or count > self._capacity or (count * 400) % self.rate:
            raise ValueError(
                f"a gap to conceal is a multiple of 2.5 ms up to {MAX_FRAME_MS} ms; "
                f"got {count} samples at {self.rate} Hz"
            )
        if next_payload:
            try:
                return self._run(next_payload, count, True)
            except OpusError:
                pass  # a corrupt next packet carries no FEC: plain concealment
        return self._run(None, count, False)

    def reset(self) -> None:
        """Start again as for a new stream."""
        self._coder.reset_state()
