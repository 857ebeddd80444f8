"""MOS estimates, pure: the E-model against the reference figures of
ITU-T G.107 and G.113, and a leg's estimate from the relay's figures."""

from __future__ import annotations

import pytest

from switch.media import quality
from switch.media.quality import (
    G711,
    G711_PLC,
    G729A,
    Impairment,
    QualityError,
    delay_impairment,
    effective_impairment,
    estimate,
    impairment,
    leg_estimate,
    r_to_mos,
)
from switch.media.relay import LegQuality


def test_the_default_parameters_give_g107s_figures():
    # G.107: with all parameters at their defaults, No = -61.18 dBm0p,
    # Ro = 94.77, Is = 1.41, Id = 0.15, and R = 93.2.
    assert pytest.approx(-61.18, abs=0.01) == quality.NO
    assert pytest.approx(94.77, abs=0.01) == quality.RO
    assert pytest.approx(1.41, abs=0.01) == quality.IS
    assert delay_impairment(0) == pytest.approx(0.15, abs=0.01)


def test_g711_with_no_loss_and_no_delay_is_r_93_2_mos_4_41():
    best = estimate(0, 0, "PCMU")
    assert best.r == pytest.approx(93.2, abs=0.05)
    assert best.mos == pytest.approx(4.41, abs=0.005)
    assert best.ie_eff == 0 and best.id == pytest.approx(0.15, abs=0.01)


@pytest.mark.parametrize(
    ("r", "mos"),
    # G.107 Annex B / G.109 Table 1: the edges of the user-satisfaction classes.
    [(100, 4.5), (90, 4.34), (80, 4.03), (70, 3.60), (60, 3.10), (50, 2.58), (0, 1.0)],
)
def test_r_to_mos_at_the_g107_reference_points(r, mos):
    # The table rounds R = 80 (4.024) up to 4.03.
    assert r_to_mos(r) == pytest.approx(mos, abs=0.0061)


def test_r_to_mos_is_bounded():
    assert r_to_mos(-20) == 1.0
    assert r_to_mos(120) == 4.5
    values = [r_to_mos(r / 10) for r in range(0, 1001)]
    assert values == sorted(values)  # never falls as R rises


def test_g113_codec_values():
    assert impairment("pcmu") == impairment("PCMA") == G711_PLC == Impairment(0, 25.1)
    assert impairment("pcma", plc=False) == G711 == Impairment(0, 4.3)
    assert impairment("G729") == G729A == Impairment(11, 19.0)
    assert impairment("opus", plc=False) == impairment("opus")  # concealment is built in


@pytest.mark.parametrize(
    ("codec", "loss", "burst", "ie_eff"),
    [
        (G711_PLC, 0, 1, 0.0),
        (G711_PLC, 1, 1, 95 * 1 / (1 + 25.1)),  # 3.64
        (G711_PLC, 2, 1, 7.01),
        (G711, 2, 1, 30.16),  # without concealment, loss hurts far more
        (G711_PLC, 2, 2, 95 * 2 / (1 + 25.1)),  # bursty loss hurts more than random
        (G729A, 0, 1, 11.0),
        (G729A, 5, 1, 11 + 84 * 5 / (5 + 19)),
        (G711_PLC, 100, 1, 95 * 100 / 125.1),
    ],
)
def test_effective_equipment_impairment(codec, loss, burst, ie_eff):
    assert effective_impairment(codec, loss, burst) == pytest.approx(ie_eff, abs=0.01)


def test_known_points_with_loss():
    # G.711 with concealment at 1% random loss and no delay: R = 93.2 - 3.6.
    assert estimate(0, 1).r == pytest.approx(89.56, abs=0.05)
    # Without concealment the same loss costs a "satisfied" rating.
    lossy = estimate(0, 1, "pcmu", plc=False)
    assert lossy.r == pytest.approx(93.2 - 17.92, abs=0.05)
    assert lossy.mos == pytest.approx(r_to_mos(lossy.r))
    assert 3.7 < lossy.mos < 3.9


@pytest.mark.parametrize("ta", [0, 25, 50, 100, 150, 177, 200, 250, 300])
def test_delay_impairment_follows_the_published_fit_of_g107(ta):
    # Cole & Rosenbluth (ACM CCR 2001) fitted Id for G.107's defaults as
    # 0.024·Ta + 0.11·(Ta - 177.3)·H(Ta - 177.3); the full formulas agree
    # with that fit within 1.2 up to 300 ms.
    fit = 0.024 * ta + 0.11 * max(0, ta - 177.3)
    assert delay_impairment(ta) == pytest.approx(fit, abs=1.2)


def test_delay_only_costs_more_the_longer_it_is_and_pure_delay_starts_at_100_ms():
    values = [delay_impairment(ta) for ta in range(0, 800, 5)]
    assert values == sorted(values)
    # G.114: up to 150 ms one way most applications are hardly affected.
    assert estimate(150).r > 89
    assert estimate(400).r < 65


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: estimate(-1), "one-way delay -1 ms"),
        (lambda: estimate(float("nan")), "one-way delay nan ms"),
        (lambda: estimate(0, 101), "packet loss 101%"),
        (lambda: estimate(0, -0.5), "packet loss -0.5%"),
        (lambda: estimate(0, 1, burst_ratio=0), "burst ratio 0"),
        (lambda: estimate(0, 0, "speex"), "no E-model values for codec 'speex'; known: g729"),
    ],
)
def test_figures_it_cannot_rate_get_a_clear_error(call, message):
    with pytest.raises(QualityError, match=message):
        call()


def leg(**changes) -> LegQuality:
    figures = {
        "packets_received": 1000,
        "packets_lost": 0,
        "jitter": 0.0,
        "packets_sent": 1000,
        "rtt": None,
        "reported_fraction_lost": None,
        "reported_jitter": None,
        "rtcp_malformed": 0,
    }
    figures.update(changes)
    return LegQuality(**figures)


def test_a_clean_leg_rates_as_g711_with_one_packet_of_buffer():
    result = leg_estimate(leg())
    assert result.delay_ms == 20 and result.loss_percent == 0
    assert result.r == pytest.approx(93.2 - delay_impairment(20) + delay_impairment(0), abs=0.01)
    assert result.to_dict() == {
        "mos": 4.4,
        "r": round(result.r, 1),
        "id": round(result.id, 1),
        "ie_eff": 0.0,
        "delay_ms": 20,
        "loss_percent": 0.0,
    }


def test_a_leg_is_rated_on_its_worse_direction():
    # The node lost 2% of what the endpoint sent; the endpoint reports 5% lost.
    worse_far = leg(packets_received=980, packets_lost=20, reported_fraction_lost=0.05)
    assert leg_estimate(worse_far).loss_percent == pytest.approx(5)
    worse_near = leg(packets_received=900, packets_lost=100, reported_fraction_lost=0.01)
    assert leg_estimate(worse_near).loss_percent == pytest.approx(10)
    assert leg_estimate(worse_near).mos < leg_estimate(worse_far).mos


def test_a_legs_delay_is_half_the_round_trip_plus_the_jitter_buffer():
    rated = leg_estimate(leg(rtt=0.240, jitter=0.010, reported_jitter=0.030))
    assert rated.delay_ms == pytest.approx(120 + 20 + 2 * 30)
    given = leg_estimate(leg(rtt=0.240, jitter=0.010), jitter_buffer_ms=60)
    assert given.delay_ms == pytest.approx(180)
    assert given.id == pytest.approx(delay_impairment(180))


def test_a_leg_with_no_packets_yet_and_a_codec_without_plc():
    rated = leg_estimate(leg(packets_received=0), "PCMA", plc=False)
    assert rated.loss_percent == 0 and rated.ie_eff == 0
    lossy = leg_estimate(leg(packets_received=99, packets_lost=1), "PCMA", plc=False)
    assert lossy.ie_eff == pytest.approx(effective_impairment(G711, 1))
    assert leg_estimate(leg(packets_received=0, packets_lost=5)).loss_percent == 100
