"""Phone numbers without a network: normalisation to E.164, formats for trunks, classes."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from switch.numbers import Plan, classify, clean, format_number, to_e164

UK = Plan("44", "0", "00")
NANP = Plan()  # the default: "1", "1", "011"
FRANCE = Plan("33", "0", "00")


@pytest.mark.parametrize(
    ("dialled", "plan", "e164"),
    [
        ("020 7946 0000", UK, "+442079460000"),
        ("+44 20 7946 0000", UK, "+442079460000"),
        ("+44 (0)20 7946 0000", UK, "+442079460000"),  # the "(0)" is not dialled from abroad
        ("0044 20-7946-0000", UK, "+442079460000"),
        ("0033 1 23 45 67 89", UK, "+33123456789"),
        ("01.23.45.67.89", FRANCE, "+33123456789"),
        ("(212) 555-0100", NANP, "+12125550100"),
        ("1 212 555 0100", NANP, "+12125550100"),
        ("011 44 20 7946 0000", NANP, "+442079460000"),
        ("+1-212-555-0100", NANP, "+12125550100"),
    ],
)
def test_what_people_dial_becomes_e164(dialled, plan, e164):
    assert to_e164(dialled, plan) == e164


@pytest.mark.parametrize(
    "dialled",
    ["", "+", "00", "abc", "020 7946 000x", "+0123", "+1234567890123456", "٠١٢٣٤"],
)
def test_what_is_no_number_is_none(dialled):
    assert to_e164(dialled, UK) is None


def test_clean_drops_only_separators():
    assert clean(" +44 (0)20/7946.0000 ") == "+442079460000"
    assert clean("12#3") is None
    assert clean("++44") is None


@pytest.mark.parametrize(
    ("number_format", "uk", "abroad"),
    [
        ("e164", "+442079460000", "+12125550100"),
        ("international", "442079460000", "12125550100"),
        ("national", "02079460000", "0012125550100"),
    ],
)
def test_a_trunk_gets_the_number_in_its_format(number_format, uk, abroad):
    assert format_number("+442079460000", number_format, UK) == uk
    assert format_number("+12125550100", number_format, UK) == abroad


@pytest.mark.parametrize(
    ("e164", "kind"),
    [
        ("+442079460000", "national"),
        ("+447700900123", "mobile"),
        ("+449098790000", "premium"),
        ("+33123456789", "international"),
        ("+881612345678", "premium"),  # a costly range abroad is premium, not merely abroad
    ],
)
def test_numbers_fall_in_classes(e164, kind):
    assert classify(e164, UK, mobile=("+447",), premium=("+449", "+881")) == kind


# Real plans: NANP, the UK, France, Germany, China, Italy (no national prefix), Russia.
plans = st.sampled_from(
    [
        NANP,
        UK,
        FRANCE,
        Plan("49", "0", "00"),
        Plan("86", "0", "00"),
        Plan("39", "", "00"),
        Plan("7", "8", "810"),
    ]
)
significant = st.text("0123456789", min_size=4, max_size=10)
separators = st.lists(st.sampled_from(["", " ", "-", ".", "/"]), min_size=10, max_size=10)


@given(plans, significant, separators)
def test_every_way_of_writing_a_number_is_the_same_e164(plan, nsn, seps):
    national = plan.national_prefix + nsn
    # Numbers a phone of that country could not dial either are not numbers.
    assume(nsn[0] != "0" or not plan.national_prefix)
    assume(not national.startswith(plan.international_prefix))
    e164 = "+" + plan.country_code + nsn
    spaced = "".join(d + s for d, s in zip(national, seps, strict=False)) + national[len(seps) :]
    for written in (e164, plan.international_prefix + plan.country_code + nsn, spaced):
        assert to_e164(written, plan) == e164, written
    # What a trunk is sent in "e164" or "national" reads back as the same number.
    for number_format in ("e164", "national"):
        assert to_e164(format_number(e164, number_format, plan), plan) == e164


@given(plans, st.text(max_size=24))
def test_anything_at_all_gives_e164_or_none(plan, text):
    e164 = to_e164(text, plan)
    assert e164 is None or (e164[0] == "+" and e164[1:].isdigit() and len(e164) <= 16)
