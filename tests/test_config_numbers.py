"""Config of numbers: dialling plans, caller IDs, classes, trunk formats, with errors to act on."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from switch.config import ConfigError, load_config, load_demo_config

BASE = """
[tenants.acme.numbers]
{numbers}

[tenants.acme.agents."1001"]
password = "x"
{agent}

[tenants.acme.trunks.carrier]
outbound_host = "192.0.2.1"
{trunk}

[tenants.acme.dids."+442079460001"]
agent = "1001"

[tenants.acme.outbound.out]
prefix = "9"
strip = 1
trunk = "carrier"
{route}
"""


def load(tmp_path: Path, numbers: str = "", agent: str = "", trunk: str = "", route: str = ""):
    path = tmp_path / "switch.toml"
    text = BASE.format(numbers=numbers, agent=agent, trunk=trunk, route=route)
    path.write_text(textwrap.dedent(text))
    return load_config(path), path


def errors(tmp_path: Path, **parts: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, **parts)
    return caught.value.lines


def test_defaults_are_nanp_with_toll_fraud_classes_off(tmp_path):
    config, _ = load(tmp_path)
    numbers = config.tenants["acme"].numbers
    assert (numbers.country_code, numbers.national_prefix, numbers.international_prefix) == (
        "1",
        "1",
        "011",
    )
    assert set(numbers.may_dial) == {"internal", "emergency", "national", "mobile"}
    trunk = config.tenants["acme"].trunks["carrier"]
    assert (trunk.number_format, trunk.setup_timeout) == ("e164", 5.0)
    assert config.tenants["acme"].outbound["out"].ring_timeout == 0


def test_mobile_and_premium_prefixes_are_kept_as_e164(tmp_path):
    numbers_text = 'country_code = "44"\nnational_prefix = "0"\ninternational_prefix = "00"\n'
    numbers_text += 'mobile = ["07"]\npremium = ["+44 9"]'
    assert errors(tmp_path, numbers=numbers_text)[0].endswith(
        "tenants.acme.numbers.premium: '+44 9' is not a phone number "
        "(digits, optionally starting with +)"
    )
    config, _ = load(tmp_path, numbers=numbers_text.replace("+44 9", "09"))
    assert config.tenants["acme"].numbers.mobile == ["+447"]
    assert config.tenants["acme"].numbers.premium == ["+449"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('country_code = "044"', "numbers.country_code: '044' is not a country code"),
        ('international_prefix = ""', "numbers.international_prefix: '' is not digits"),
        ('national_prefix = "x"', "numbers.national_prefix: 'x' is not digits"),
        ('emergency = ["9-1-1"]', "numbers.emergency: '9-1-1' is not an emergency number"),
        ('may_dial = ["abroad"]', "numbers.may_dial: 'abroad' is not one of internal, emergency"),
        (
            'national_prefix = "00"\ninternational_prefix = "0"',
            "numbers.national_prefix: '00' starts with the international prefix '0'",
        ),
    ],
)
def test_a_bad_plan_says_what_is_wrong(tmp_path, line, message):
    [error] = errors(tmp_path, numbers=line)
    assert message in error


def test_an_agent_may_not_present_a_number_the_tenant_does_not_own(tmp_path):
    [error] = errors(tmp_path, agent='caller_id = "+12125550100"')
    assert "tenants.acme.agents.1001.caller_id" in error
    assert "'+12125550100' is not a number of tenant 'acme' (its DIDs: +442079460001)" in error
    assert "tenants.acme.numbers.caller_ids" in error and "any_caller_id = true" in error
    # Its own DID (in any format), a listed number, or any number when allowed: fine.
    uk = 'country_code = "44"\nnational_prefix = "0"\ninternational_prefix = "00"'
    load(tmp_path, numbers=uk, agent='caller_id = "02079460001"')
    load(tmp_path, numbers='caller_ids = ["+12125550100"]', agent='caller_id = "+12125550100"')
    load(tmp_path, numbers="any_caller_id = true", agent='caller_id = "+12125550100"')


def test_route_and_trunk_caller_ids_follow_the_same_rule(tmp_path):
    lines = errors(tmp_path, trunk='caller_id = "+15550100"', route='caller_id = "+15550101"')
    assert len(lines) == 2
    assert any("trunks.carrier.caller_id: '+15550100' is not a number of" in e for e in lines)
    assert any("outbound.out.caller_id: '+15550101' is not a number of" in e for e in lines)


def test_an_extension_may_not_be_an_emergency_number(tmp_path):
    path = tmp_path / "switch.toml"
    path.write_text('[tenants.acme.agents."112"]\npassword = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "tenants.acme.agents.112: extension 112 is also an emergency number" in str(caught.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('number_format = "E164"', "'E164' is not one of e164, international, national"),
        ("setup_timeout = 60", "60 is too large (must be at most 32.0)"),
        ("setup_timeout = -1", "-1 is too small (must be at least 0.0)"),
    ],
)
def test_bad_trunk_number_settings(tmp_path, line, message):
    [error] = errors(tmp_path, trunk=line)
    assert f"tenants.acme.trunks.carrier.{line.split()[0]}: {message}" in error


def test_the_demo_plan_is_the_uk_one_with_international_off():
    demo = load_demo_config().tenants["demo"]
    assert demo.numbers.country_code == "44" and "international" not in demo.numbers.may_dial
    assert demo.outbound["external"].allow_international is False
    assert demo.trunks["demo-trunk"].number_format == "e164"


def test_one_number_written_twice_as_a_did_is_an_error(tmp_path):
    path = tmp_path / "switch.toml"
    path.write_text(
        '[tenants.acme.numbers]\ncountry_code = "44"\nnational_prefix = "0"\n'
        'international_prefix = "00"\n\n[tenants.acme.agents."1001"]\npassword = "x"\n\n'
        '[tenants.acme.dids."+442079460001"]\nagent = "1001"\n\n'
        '[tenants.acme.dids."02079460001"]\nagent = "1001"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.lines[0].endswith(
        "tenants.acme.dids.02079460001: '02079460001' is the same number as DID "
        "'+442079460001' (+442079460001); define it once"
    )


@pytest.mark.parametrize(("line", "key"), [("strip = 1", "strip"), ('prepend = "0"', "prepend")])
def test_an_e164_route_has_nothing_to_strip_or_prepend(tmp_path, line, key):
    path = tmp_path / "switch.toml"
    path.write_text(
        '[tenants.acme.trunks.carrier]\noutbound_host = "192.0.2.1"\n\n'
        f'[tenants.acme.outbound.uk]\nprefix = "+44"\ntrunk = "carrier"\n{line}\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [error] = caught.value.lines
    assert f"tenants.acme.outbound.uk.{key}: only for access-code prefixes" in error
