"""Call quality as a MOS estimate: the ITU-T G.107 E-model, simplified.

The E-model rates a connection with R (0..100) by subtracting impairments
from the best a narrowband call can be:

    R = Ro - Is - Id(Ta) - Ie_eff(codec, loss, burstiness)

- Ro - Is: the signal-to-noise and simultaneous impairments of the
  handsets and rooms. We have no figures for those, so they are G.107's
  default values (SLR 8 dB, RLR 2 dB, STMR 15 dB, TELR 65 dB, room noise
  35 dB(A), ...), which give Ro = 94.77 and Is = 1.41, computed below with
  G.107's own formulas. (Is depends on the delay through one term below
  0.001 for any delay; we take it at zero delay.)
- Id: the delay impairment, from the one-way (mouth-to-ear) delay Ta in
  ms, with G.107's formulas for talker echo (Idte), listener echo (Idle)
  and pure delay (Idd), default parameters, T = Ta and Tr = 2·Ta. With
  no delay it is 0.15, so a perfect G.711 call scores R = 93.2.
- Ie_eff = Ie + (95 - Ie) · Ppl / (Ppl / BurstR + Bpl): the codec's own
  impairment Ie and its robustness to loss Bpl, at Ppl percent of packets
  lost, BurstR = 1 for random loss (larger for bursts).
- A (the advantage factor) is 0: callers on a fixed line expect the most.

R becomes a MOS (1..4.5, conversational quality) by G.107 Annex B.

Codec values (`IMPAIRMENTS`) come from ITU-T G.113 Appendix I: G.711
with no concealment, Ie 0 and Bpl 4.3; G.711 with the concealment of
G.711 Appendix I, Ie 0 and Bpl 25.1; G.729A, Ie 11 and Bpl 19.0. ITU-T
publishes none for Opus; ours (Ie 0, Bpl 25.1) rate it as G.711 with
concealment: at the bit rates WebRTC uses, Opus is at least transparent
on this narrowband scale and its concealment is at least as good, so the
estimate never flatters an Opus call.

`leg_estimate()` turns the relay's `LegQuality` of a leg into a figure for
the call record and the CTI: loss is the worse of the two directions (what
the node lost from the endpoint, what the endpoint reports losing), the
delay is half the RTCP round trip plus the jitter buffer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .relay import LegQuality


class QualityError(ValueError):
    """Figures the E-model cannot rate: an unknown codec, a loss outside 0..100%."""


@dataclass(frozen=True, slots=True)
class Impairment:
    """A codec in the E-model: equipment impairment and packet-loss robustness."""

    ie: float
    bpl: float


G711 = Impairment(ie=0.0, bpl=4.3)  # no packet loss concealment
G711_PLC = Impairment(ie=0.0, bpl=25.1)  # with G.711 Appendix I concealment
G729A = Impairment(ie=11.0, bpl=19.0)
OPUS = Impairment(ie=0.0, bpl=25.1)  # our choice: see the module docstring

# By SDP encoding name (lower case), for a receiver that conceals loss; see
# `impairment()` for one that does not.
IMPAIRMENTS: dict[str, Impairment] = {
    "pcmu": G711_PLC,
    "pcma": G711_PLC,
    "g729": G729A,
    "opus": OPUS,
}


def impairment(codec: str, plc: bool = True) -> Impairment:
    """The E-model values of `codec` (SDP name, any case); `plc=False` for
    G.711 heard by a receiver without packet loss concealment."""
    name = codec.lower()
    if name not in IMPAIRMENTS:
        known = ", ".join(sorted(IMPAIRMENTS))
        raise QualityError(f"no E-model values for codec {codec!r}; known: {known}")
    if not plc and name in ("pcmu", "pcma"):
        return G711
    return IMPAIRMENTS[name]


# -- G.107 with its default parameters ---------------------------------------------------

_SLR, _RLR, _STMR, _LSTR, _DS = 8.0, 2.0, 15.0, 18.0, 3.0  # dB
_TELR, _WEPL = 65.0, 110.0  # dB
_QDU = 1.0  # quantising distortion units
_NC, _NFOR = -70.0, -64.0  # dBm0p
_PS, _PR = 35.0, 35.0  # room noise, dB(A)
_MT, _ST = 100.0, 1.0  # pure-delay onset (ms) and sensitivity


def _noise_floor() -> float:
    """No: the total noise at the receive side, dBm0p (G.107 §3.2)."""
    olr = _SLR + _RLR
    nfo = _NFOR + _RLR
    pre = _PR + 10 * math.log10(1 + 10 ** ((10 - _LSTR) / 10))
    nor = _RLR - 121 + pre + 0.008 * (pre - 35) ** 2
    nos = _PS - _SLR - _DS - 100 + 0.004 * (_PS - olr - _DS - 14) ** 2
    return 10 * math.log10(sum(10 ** (n / 10) for n in (_NC, nos, nor, nfo)))


def _simultaneous(ro: float, no: float) -> float:
    """Is = Iolr + Ist + Iq (G.107 §3.4), at zero delay."""
    xolr = _SLR + _RLR + 0.2 * (64 + no - _RLR)
    iolr = 20 * ((1 + (xolr / 8) ** 8) ** (1 / 8) - xolr / 8)
    stmro = -10 * math.log10(10 ** (-_STMR / 10) + 10 ** (-_TELR / 10))
    ist = (
        12 * (1 + ((stmro - 13) / 6) ** 8) ** (1 / 8)
        - 28 * (1 + ((stmro + 1) / 19.4) ** 35) ** (1 / 35)
        - 13 * (1 + ((stmro - 3) / 33) ** 13) ** (1 / 13)
        + 29
    )
    q = 37 - 15 * math.log10(_QDU)
    g = 1.07 + 0.258 * q + 0.0602 * q**2
    y = (ro - 100) / 15 + 46 / 8.4 - g / 9
    z = 46 / 30 - g / 40
    iq = 15 * math.log10(1 + 10**y + 10**z)
    return iolr + ist + iq


NO = _noise_floor()
RO = 15 - 1.5 * (_SLR + NO)  # basic signal-to-noise ratio: 94.77
IS = _simultaneous(RO, NO)  # 1.41


def delay_impairment(ta_ms: float) -> float:
    """Id = Idte + Idle + Idd (G.107 §3.5) for a one-way delay of `ta_ms`."""
    if not ta_ms >= 0:
        raise QualityError(f"one-way delay {ta_ms} ms: it must be a number >= 0")
    t, tr = ta_ms, 2 * ta_ms  # echo path delays: talker (one way), listener (round trip)
    roe = -1.5 * (NO - _RLR)
    terv = _TELR - 40 * math.log10((1 + t / 10) / (1 + t / 150)) + 6 * math.exp(-0.3 * t**2)
    re = 80 + 2.5 * (terv - 14)
    idte = ((roe - re) / 2 + math.sqrt((roe - re) ** 2 / 4 + 100) - 1) * (1 - math.exp(-t))
    rle = 10.5 * (_WEPL + 7) * (tr + 1) ** -0.25
    idle = (RO - rle) / 2 + math.sqrt((RO - rle) ** 2 / 4 + 169)
    idd = 0.0
    if ta_ms > _MT:
        x = math.log(ta_ms / _MT) / math.log(2)
        e = 6 * _ST
        idd = 25 * ((1 + x**e) ** (1 / e) - 3 * (1 + (x / 3) ** e) ** (1 / e) + 2)
    return idte + idle + idd


def effective_impairment(codec: Impairment, loss_percent: float, burst_ratio: float = 1.0) -> float:
    """Ie_eff (G.107 §3.6): the codec's impairment at `loss_percent` lost packets."""
    if not 0 <= loss_percent <= 100:
        raise QualityError(f"packet loss {loss_percent}%: it must be between 0 and 100")
    if not burst_ratio > 0:
        raise QualityError(f"burst ratio {burst_ratio}: it must be > 0 (1 for random loss)")
    ppl = loss_percent
    return codec.ie + (95 - codec.ie) * ppl / (ppl / burst_ratio + codec.bpl)


def r_to_mos(r: float) -> float:
    """G.107 Annex B: the rating R as a conversational MOS, 1 to 4.5."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    # The cubic dips below 1 for R under about 6.5; MOS has no such values.
    return max(1.0, 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A MOS estimate and what it is made of, for the call record and the CTI."""

    mos: float
    r: float
    id: float  # delay impairment
    ie_eff: float  # codec and loss impairment
    delay_ms: float  # one-way delay it was rated at
    loss_percent: float  # packet loss it was rated at

    def to_dict(self) -> dict[str, float]:
        """Rounded as a person reads them."""
        return {
            "mos": round(self.mos, 2),
            "r": round(self.r, 1),
            "id": round(self.id, 1),
            "ie_eff": round(self.ie_eff, 1),
            "delay_ms": round(self.delay_ms),
            "loss_percent": round(self.loss_percent, 2),
        }


def estimate(
    delay_ms: float,
    loss_percent: float = 0.0,
    codec: str | Impairment = "pcmu",
    *,
    plc: bool = True,
    burst_ratio: float = 1.0,
) -> Estimate:
    """The E-model rating of a call with this one-way delay, loss and codec."""
    values = codec if isinstance(codec, Impairment) else impairment(codec, plc)
    id_ = delay_impairment(delay_ms)
    ie_eff = effective_impairment(values, loss_percent, burst_ratio)
    r = RO - IS - id_ - ie_eff
    return Estimate(r_to_mos(r), r, id_, ie_eff, delay_ms, loss_percent)


def leg_estimate(
    quality: LegQuality,
    codec: str | Impairment = "pcmu",
    *,
    plc: bool = True,
    ptime_ms: float = 20.0,
    jitter_buffer_ms: float | None = None,
) -> Estimate:
    """The MOS estimate of one leg from the relay's figures for it.

    Loss: the worse of what the node lost of the endpoint's stream and the
    fraction the endpoint last reported losing of ours. Delay: half the
    round trip (0 until RTCP has measured one) plus the jitter buffer: the
    given depth when the leg has a buffer that knows it, else what an
    adaptive one settles at, one packet plus twice the jitter (the worse
    of the two directions' figures).
    """
    expected = quality.packets_received + quality.packets_lost
    loss = 100 * quality.packets_lost / expected if expected else 0.0
    if quality.reported_fraction_lost is not None:
        loss = max(loss, 100 * quality.reported_fraction_lost)
    if jitter_buffer_ms is None:
        jitter = max(quality.jitter, quality.reported_jitter or 0.0)
        jitter_buffer_ms = ptime_ms + 2000 * jitter
    delay = 1000 * (quality.rtt or 0.0) / 2 + jitter_buffer_ms
    return estimate(delay, min(loss, 100.0), codec, plc=plc)
