"""Ogg pages and Opus in Ogg: the bytes RFC 3533 and RFC 7845 fix, checked
byte by byte; lacing, pages across packets, granules, EOS; and what the
Opus tools (opus-tools, an independent implementation) make of our files."""

from __future__ import annotations

import io
import random
import shutil
import struct
import subprocess

import numpy as np
import opuslib_next
import pytest

from switch.media.ogg import (
    BOS,
    CONTINUED,
    EOS,
    NO_GRANULE,
    OggError,
    OggOpusWriter,
    OggStream,
    crc32,
    lacing,
    opus_head,
    opus_tags,
    page,
    read_packets,
    read_pages,
)
from switch.media.opus import OpusEncoder
from tests.media.audio import peaks

needs_opus_tools = pytest.mark.skipif(
    shutil.which("opusinfo") is None or shutil.which("opusenc") is None,
    reason="opus-tools is not installed (make test installs it)",
)


def _crc_bitwise(data: bytes) -> int:
    """Ogg's CRC the slow way, straight from its definition (RFC 3533 §6):
    polynomial 0x04C11DB7, most significant bit first, start 0, no final XOR."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def test_crc_matches_the_definition():
    # The catalogue's CRC-32/CKSUM check value (0x765E7680) is this CRC with
    # a final XOR of all ones: the same polynomial, start and bit order.
    assert crc32(b"123456789") == 0x765E7680 ^ 0xFFFFFFFF == _crc_bitwise(b"123456789")
    assert crc32(b"") == 0
    rng = random.Random(7)
    for size in (1, 2, 3, 27, 255, 256, 4000):
        data = rng.randbytes(size)
        assert crc32(data) == _crc_bitwise(data), size


@pytest.mark.parametrize(
    ("length", "table"),
    [(0, [0]), (1, [1]), (254, [254]), (255, [255, 0]), (256, [255, 1]), (600, [255, 255, 90])],
)
def test_lacing(length, table):
    assert list(lacing(length)) == table


def test_a_page_byte_by_byte():
    data = page(b"abc", b"\x03", serial=0x01020304, sequence=5, granule=960, flags=EOS)
    expected = (
        b"OggS"  # capture pattern
        + b"\x00"  # version
        + b"\x04"  # flags: EOS
        + (960).to_bytes(8, "little")  # granule position
        + bytes([4, 3, 2, 1])  # serial, little-endian
        + (5).to_bytes(4, "little")  # page sequence number
        + b"\x00\x00\x00\x00"  # CRC (computed over the page with this zeroed)
        + b"\x01\x03"  # one segment, of 3 bytes
        + b"abc"
    )
    crc = _crc_bitwise(expected)
    assert data == expected[:22] + crc.to_bytes(4, "little") + expected[26:]


def test_a_page_refuses_an_inconsistent_segment_table():
    with pytest.raises(ValueError, match="adds up to 4 bytes; body has 3"):
        page(b"abc", b"\x04", serial=0, sequence=0, granule=0)
    with pytest.raises(ValueError, match="at most 255 segments"):
        page(bytes(256), b"\x01" * 256, serial=0, sequence=0, granule=0)


def test_opus_head_is_the_rfc_layout():
    # RFC 7845 §5.1: magic, version 1, channels, pre-skip (LE16), input rate
    # (LE32), output gain (LE16, Q7.8 dB), mapping family 0.
    assert opus_head(2, 312, 8000) == (
        b"OpusHead\x01\x02" + b"\x38\x01" + b"\x40\x1f\x00\x00" + b"\x00\x00" + b"\x00"
    )
    assert len(opus_head(1, 0, 48000, gain=-256)) == 19
    assert opus_head(1, 0, 48000, gain=-256)[16:18] == b"\x00\xff"
    with pytest.raises(ValueError, match="mono or stereo"):
        opus_head(3, 312, 8000)


def test_opus_tags_is_the_rfc_layout():
    # RFC 7845 §5.2: magic, vendor length (LE32) and string, comment count,
    # then each comment's length and text.
    assert opus_tags("switch", ["CALL=abc"]) == (
        b"OpusTags" + b"\x06\x00\x00\x00switch" + b"\x01\x00\x00\x00" + b"\x08\x00\x00\x00CALL=abc"
    )
    with pytest.raises(ValueError, match="TAG=value"):
        opus_tags("switch", ["no equals sign"])


def test_the_header_pages_byte_by_byte():
    out = io.BytesIO()
    OggOpusWriter(out, channels=2, pre_skip=312, input_rate=8000, vendor="v", serial=9)
    head, tags = opus_head(2, 312, 8000), opus_tags("v")

    def expected(flags: int, sequence: int, body: bytes) -> bytes:
        raw = bytearray(
            struct.pack("<4sBBqIIIB", b"OggS", 0, flags, 0, 9, sequence, 0, 1)
            + bytes([len(body)])
            + body
        )
        struct.pack_into("<I", raw, 22, _crc_bitwise(bytes(raw)))
        return bytes(raw)

    # The ID header alone on the first page (BOS), the comment header on the
    # second, both with granule position 0 (RFC 7845 §3).
    assert out.getvalue() == expected(BOS, 0, head) + expected(0, 1, tags)


def test_a_packet_longer_than_255_bytes_is_laced_and_read_back():
    stream = OggStream(serial=1)
    packets = [bytes([i]) * n for i, n in enumerate((600, 255, 0, 510, 3))]
    for i, packet in enumerate(packets):
        stream.add(packet, 100 * (i + 1))
    (only,) = stream.pages(eos=True)
    parsed = list(read_pages(only))
    assert len(parsed) == 1
    assert list(parsed[0].segments) == [255, 255, 90, 255, 0, 0, 255, 255, 0, 3]
    assert parsed[0].granule == 500 and parsed[0].flags == BOS | EOS
    assert read_packets(parsed) == packets


def test_a_packet_that_does_not_fit_goes_on_in_the_next_page():
    stream = OggStream(serial=1)
    big = bytes(range(256)) * 300  # 76800 bytes: 302 segments, more than a page holds
    stream.add(b"first", 960)
    stream.add(big, 1920)
    stream.add(b"last", 2880)
    data = b"".join(stream.pages(eos=True))
    pages = list(read_pages(data))
    assert [len(p.segments) for p in pages] == [255, 49]
    # No packet ends on the first page but "first": its granule is first's.
    # The second page continues the big packet and ends the stream.
    assert [p.granule for p in pages] == [960, 2880]
    assert [p.flags for p in pages] == [BOS, CONTINUED | EOS]
    assert [p.sequence for p in pages] == [0, 1]
    assert read_packets(pages) == [b"first", big, b"last"]


def test_a_page_where_no_packet_ends_has_no_granule():
    stream = OggStream(serial=1)
    stream.add(bytes(255 * 600), 960)  # 601 segments: three pages
    pages = list(read_pages(b"".join(stream.pages(eos=True))))
    assert [p.granule for p in pages] == [NO_GRANULE, NO_GRANULE, 960]
    assert [p.flags for p in pages] == [BOS, CONTINUED, CONTINUED | EOS]


def _writer(page_samples: int = 48000) -> tuple[io.BytesIO, OggOpusWriter]:
    out = io.BytesIO()
    writer = OggOpusWriter(
        out, channels=2, pre_skip=312, input_rate=8000, vendor="t", page_samples=page_samples
    )
    return out, writer


def test_granules_count_48_khz_samples_and_a_page_holds_a_second():
    out, writer = _writer()
    for i in range(40):  # 40 packets of 60 ms: 2.4 s
        writer.write(bytes([i]) * 20, 2880)
    writer.close()
    pages = list(read_pages(out.getvalue()))
    audio = pages[2:]
    # A page is written once a second is queued, and the packet that comes
    # then starts the next page (17 x 60 ms = 1.02 s).
    assert [len(p.segments) for p in audio] == [17, 17, 6]
    assert [p.granule for p in audio] == [17 * 2880, 34 * 2880, 40 * 2880]
    assert [p.flags for p in pages] == [BOS, 0, 0, 0, EOS]
    assert [p.sequence for p in pages] == [0, 1, 2, 3, 4]
    assert len({p.serial for p in pages}) == 1
    packets = read_packets(pages)
    assert packets[2:] == [bytes([i]) * 20 for i in range(40)]


def test_the_end_is_trimmed_to_the_true_length():
    out, writer = _writer()
    for _ in range(3):
        writer.write(b"x", 2880)
    writer.close(length=2 * 2880 + 1000)  # the last frame holds 1000 real samples
    last = list(read_pages(out.getvalue()))[-1]
    assert last.flags & EOS
    assert last.granule == 312 + 2 * 2880 + 1000  # pre-skip plus the length


def test_pages_never_exceed_255_segments():
    out, writer = _writer(page_samples=10**9)  # only the segment count flushes
    for _ in range(1000):
        writer.write(b"y" * 300, 960)  # two segments each
    writer.close()
    pages = list(read_pages(out.getvalue()))
    assert max(len(p.segments) for p in pages) <= 255
    assert sum(len(p.segments) for p in pages[2:]) == 2000
    assert len(read_packets(pages)) == 1002


def test_the_reader_refuses_a_damaged_stream():
    out, writer = _writer()
    writer.write(b"z" * 50, 960)
    writer.close()
    data = bytearray(out.getvalue())
    data[-3] ^= 0x01  # one bit of audio
    with pytest.raises(OggError, match="bad CRC in page 2"):
        list(read_pages(bytes(data)))
    with pytest.raises(OggError, match="truncated"):
        list(read_pages(out.getvalue()[:-2]))
    with pytest.raises(OggError, match="no Ogg page at byte 0"):
        list(read_pages(b"RIFF" + bytes(40)))


def _stereo_tones(left: float, right: float, seconds: float, rate: int = 8000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    x = np.empty(2 * len(t), "<i2")
    x[0::2] = 8000 * np.sin(2 * np.pi * left * t)
    x[1::2] = 8000 * np.sin(2 * np.pi * right * t)
    return x.tobytes()


def _encode_file(pcm: bytes, rate: int = 8000) -> bytes:
    """Stereo `pcm` at `rate` as an Ogg Opus file, 60 ms packets."""
    encoder = OpusEncoder(rate, channels=2, fec=False, expected_loss=0)
    out = io.BytesIO()
    scale = 48000 // rate
    writer = OggOpusWriter(
        out, channels=2, pre_skip=encoder.lookahead * scale, input_rate=rate, vendor="test"
    )
    frame = rate * 60 // 1000 * 4
    padded = pcm + bytes(-len(pcm) % frame + frame)  # and the encoder's delay out
    for i in range(0, len(padded), frame):
        writer.write(encoder.encode(padded[i : i + frame]), frame // 4 * scale)
    writer.close(len(pcm) // 4 * scale)
    return out.getvalue()


def test_an_opus_file_decodes_back_to_its_tones():
    data = _encode_file(_stereo_tones(440, 1000, 2.0))
    pages = list(read_pages(data))
    head, tags, *audio = read_packets(pages)
    assert head[:8] == b"OpusHead" and head[9] == 2
    pre_skip = int.from_bytes(head[10:12], "little")
    assert tags.startswith(b"OpusTags")
    decoder = opuslib_next.Decoder(48000, 2)
    pcm = b"".join(decoder.decode(packet, 5760) for packet in audio)
    x = np.frombuffer(pcm, "<i2")
    length = pages[-1].granule - pre_skip
    assert length == 2 * 48000
    x = x[2 * pre_skip : 2 * (pre_skip + length)]
    left, right = x[0::2], x[1::2]
    middle = slice(12000, 84000)  # away from the start's and end's edges
    assert peaks(left[middle].tobytes(), 48000, 1) == pytest.approx([440], abs=2)
    assert peaks(right[middle].tobytes(), 48000, 1) == pytest.approx([1000], abs=2)


@needs_opus_tools
def test_opus_tools_read_our_files(tmp_path):
    path = tmp_path / "ours.opus"
    path.write_bytes(_encode_file(_stereo_tones(440, 1000, 1.5)))
    info = subprocess.run(["opusinfo", str(path)], capture_output=True, text=True, timeout=30)
    assert info.returncode == 0, info.stdout + info.stderr
    assert "WARNING" not in info.stdout + info.stderr
    assert "Channels: 2" in info.stdout
    assert "Original sample rate: 8000 Hz" in info.stdout
    decoded = tmp_path / "out.wav"
    subprocess.run(
        ["opusdec", "--quiet", "--rate", "48000", str(path), str(decoded)], check=True, timeout=30
    )
    # Exactly the length written: pre-skip and end trimming as opusdec reads them.
    assert (decoded.stat().st_size - 44) // 4 == int(1.5 * 48000)


@needs_opus_tools
def test_we_read_what_opusenc_writes(tmp_path):
    # An independent writer's pages pass our CRC check and give its packets.
    from switch.media.wav import Audio, write_wav

    write_wav(tmp_path / "in.wav", Audio(_stereo_tones(300, 700, 1.0), 8000, 2))
    subprocess.run(
        ["opusenc", "--quiet", str(tmp_path / "in.wav"), str(tmp_path / "ref.opus")],
        check=True,
        timeout=30,
    )
    pages = list(read_pages((tmp_path / "ref.opus").read_bytes()))
    packets = read_packets(pages)
    assert packets[0].startswith(b"OpusHead") and packets[1].startswith(b"OpusTags")
    assert pages[0].flags == BOS and pages[-1].flags & EOS
    assert len(packets) > 10
