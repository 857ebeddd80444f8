"""Flow templates: values and filters from fixed lists, and never code."""

from __future__ import annotations

import pytest

from switch.apps.ivr.template import TemplateError, parse_template

SCOPE = {
    "caller": {"number": "+447700900123", "name": "Ann"},
    "call": {"id": "c1", "did": "100", "tenant": "demo", "ivr": "main"},
    "vars": {
        "account": "12 34",
        "crm": {"name": "Ann Lee", "tiers": ["gold", "vip"], "active": True, "balance": None},
        "count": 3,
    },
}


@pytest.mark.parametrize(
    ("source", "rendered"),
    [
        ("plain text", "plain text"),
        ("{{ caller.number }}", "+447700900123"),
        ("{{caller.name}} on {{ call.did }}", "Ann on 100"),
        ("{{ vars.crm.name | upper }}", "ANN LEE"),
        ("{{ vars.crm.name | lower | trim }}", "ann lee"),
        ("{{ vars.crm.tiers.1 }}", "vip"),
        ("{{ vars.crm.tiers.7 }}", ""),
        ("{{ vars.crm.active }}", "true"),
        ("{{ vars.crm.balance | default('0.00') }}", "0.00"),
        ('{{ vars.nothing | default("there") }}', "there"),
        ("{{ vars.account | digits }}", "1234"),
        ("{{ vars.account | spell }}", "1 2 3 4"),
        ("{{ vars.account | urlencode }}", "12%2034"),
        ("{{ vars.crm.tiers | json }}", '["gold", "vip"]'),
        ("{{ vars.crm.tiers }}", '["gold", "vip"]'),
        ("{{ vars.count }}", "3"),
        ("{{ vars.missing.deeper.still }}", ""),
        ("{{ vars.account.0 }}", ""),  # text has no parts
        ("}} alone is text {", "}} alone is text {"),
    ],
)
def test_render(source: str, rendered: str) -> None:
    assert parse_template(source).render(SCOPE) == rendered


def test_escape_applies_to_values_only() -> None:
    template = parse_template("https://x.example/?q={{ vars.account }}&a=1")
    assert template.render(SCOPE, escape=lambda value: value.replace(" ", "+")) == (
        "https://x.example/?q=12+34&a=1"
    )


def test_values_are_looked_up_as_keys_never_as_attributes() -> None:
    for source in ("{{ vars.__class__ }}", "{{ vars.crm.__dict__ }}", "{{ vars.crm.keys }}"):
        assert parse_template(source).render(SCOPE) == ""


@pytest.mark.parametrize(
    ("source", "message", "offset"),
    [
        ("{{ __import__('os').system('id') }}", "unknown name '__import__'", 3),
        ("{{ vars.a + 1 }}", "unexpected '+ 1'", 10),
        ("{{ vars.a() }}", "unexpected '()'", 9),
        ("{{ vars.a[0] }}", "unexpected '[0]'", 9),
        ("{{ vars.a | upper() }}", "filter 'upper' takes no argument", 12),
        ("{{ vars.a | default(vars.b) }}", "default needs a quoted text", 12),
        ("{{ vars.a | eval }}", "unknown filter 'eval'", 12),
        ("{{ lambda: 1 }}", "unknown name 'lambda'", 3),
        ("{{ caller.password }}", "caller.password is not a value", 3),
        ("{{ vars }}", "vars alone is not a value", 3),
        ("{{ }}", "does not start with a name", 3),
        ("hello {{ vars.a", "never closed", 6),
        ("{{ vars.a {{ vars.b }}", "{{ inside {{ ... }}", 10),
    ],
)
def test_refused(source: str, message: str, offset: int) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(source)
    assert message in str(caught.value)
    assert caught.value.offset == offset


def test_a_callers_input_is_data_not_template() -> None:
    scope = {**SCOPE, "vars": {"digits": "{{ caller.number }}"}}
    assert parse_template("you typed {{ vars.digits }}").render(scope) == (
        "you typed {{ caller.number }}"
    )
