"""Phone numbers: a tenant's dialling plan, E.164, and which class a number is in.

Pure functions, no I/O, nothing from the rest of switch: the config uses
them at load (DIDs and caller IDs written in any format are compared as
E.164) and the call layer on every call.

A number is normalised the way a phone of the tenant's country reads it:
``+`` or the international prefix ("00", "011") starts a number with its
country code; the national prefix ("0" in most of Europe, "1" in NANP)
starts a national number; anything else is a national significant number
(what NANP callers dial as 10 digits). Spaces, dashes, dots, slashes and
parentheses are what people write between digits, and are dropped; so is
the "(0)" of "+44 (0)20 ...", which is not dialled from abroad.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CLASSES",
    "NumberClass",
    "NumberFormat",
    "Plan",
    "classify",
    "clean",
    "e164_set",
    "format_number",
    "to_e164",
]

NumberFormat = Literal["e164", "international", "national"]
NumberClass = Literal["internal", "emergency", "national", "mobile", "premium", "international"]
CLASSES: tuple[NumberClass, ...] = (
    "internal",
    "emergency",
    "national",
    "mobile",
    "premium",
    "international",
)

# ITU-T E.164: at most 15 digits after the "+".
_MAX_DIGITS = 15
_SEPARATORS = str.maketrans("", "", " \t-./()")


@dataclass(frozen=True, slots=True)
class Plan:
    """How numbers are dialled in a tenant's country (defaults: NANP)."""

    country_code: str = "1"
    national_prefix: str = "1"
    international_prefix: str = "011"


def clean(text: str) -> str | None:
    """`text` without the separators people write, or None when it is not a number.

    The result is digits, optionally after one leading "+".
    """
    text = text.strip()
    if text.startswith("+"):
        text = text.replace("(0)", "")
    number = text.translate(_SEPARATORS)
    digits = number[1:] if number.startswith("+") else number
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    return number


def to_e164(dialled: str, plan: Plan) -> str | None:
    """The number as E.164 ("+" and up to 15 digits), or None when it is not one."""
    number = clean(dialled)
    if number is None:
        return None
    if number.startswith("+"):
        digits = number[1:]
    elif plan.international_prefix and number.startswith(plan.international_prefix):
        digits = number[len(plan.international_prefix) :]
    elif plan.national_prefix and number.startswith(plan.national_prefix):
        digits = plan.country_code + number[len(plan.national_prefix) :]
    else:
        digits = plan.country_code + number
    # A country code alone ("0" dialled, say) or too long a number is nothing to call.
    if len(digits) <= len(plan.country_code) or len(digits) > _MAX_DIGITS or digits[0] == "0":
        return None
    return "+" + digits


def e164_set(numbers: Iterable[str], plan: Plan) -> set[str]:
    """The numbers that are numbers, as E.164 (a tenant's own: DIDs, caller IDs)."""
    return {e164 for number in numbers if (e164 := to_e164(number, plan)) is not None}


def format_number(e164: str, number_format: NumberFormat, plan: Plan) -> str:
    """An E.164 number written the way a trunk wants it.

    "e164": +CC..., "international": CC... (no "+"), "national": as dialled
    in the tenant's country (national prefix, or the international prefix
    for a number abroad).
    """
    digits = e164.removeprefix("+")
    if number_format == "e164":
        return "+" + digits
    if number_format == "international":
        return digits
    if digits.startswith(plan.country_code):
        return plan.national_prefix + digits[len(plan.country_code) :]
    return plan.international_prefix + digits


def classify(
    e164: str, plan: Plan, mobile: tuple[str, ...] = (), premium: tuple[str, ...] = ()
) -> NumberClass:
    """Which class an E.164 number is in, for permissions.

    `mobile` and `premium` are E.164 prefixes. Premium is looked at first, so
    that an operator can list costly ranges abroad too (satellite "+881",
    the Caribbean's "+1876" in NANP): those stay off even for agents who may
    call abroad.
    """
    if any(e164.startswith(prefix) for prefix in premium):
        return "premium"
    if not e164.startswith("+" + plan.country_code):
        return "international"
    if any(e164.startswith(prefix) for prefix in mobile):
        return "mobile"
    return "national"
