"""Feature codes in the config ([tenants.<id>.acd.feature_codes]): defaults, matching, clashes."""

from __future__ import annotations

from pathlib import Path

from switch.config import FeatureCodes, load_config, load_demo_config
from tests.acd.test_config_acd import errors, write

BASE = """
[tenants.acme]
[tenants.acme.agents."1001"]
password = "x"
queues = ["support"]
[tenants.acme.queues.support]
"""


def test_defaults_match_each_action_and_the_reason_number() -> None:
    codes = load_demo_config().tenants["demo"].acd.feature_codes
    assert codes.codes() == {
        "login": "*61",
        "logout": "*62",
        "available": "*63",
        "not_ready": "*64",
        "extend_wrapup": "*65",
    }
    assert codes.match("*61") == ("login", None)
    assert codes.match("*64") == ("not_ready", None)
    assert codes.match("*642") == ("not_ready", 2)
    assert codes.match("*65") == ("extend_wrapup", None)
    assert codes.match("*66") is None
    assert codes.match("*64x") is None
    assert codes.match("1001") is None


def test_codes_are_configurable_and_can_be_turned_off(tmp_path: Path) -> None:
    text = BASE + '[tenants.acme.acd.feature_codes]\nlogin = "#21"\nlogout = ""\nextend_by = 60\n'
    codes = load_config(write(tmp_path, text)).tenants["acme"].acd.feature_codes
    assert codes.match("#21") == ("login", None)
    assert codes.match("*61") is None and codes.match("*62") is None
    assert codes.extend_by == 60


def test_a_bad_or_repeated_code_is_refused_with_what_to_write(tmp_path: Path) -> None:
    bad = errors(tmp_path, BASE + '[tenants.acme.acd.feature_codes]\nlogin = "61"\n')
    assert any("feature_codes.login" in e and "a star or hash" in e for e in bad), bad
    twice = errors(tmp_path, BASE + '[tenants.acme.acd.feature_codes]\nlogout = "*61"\n')
    assert any("'*61' is also the code for login" in e for e in twice), twice
    hidden = errors(tmp_path, BASE + '[tenants.acme.acd.feature_codes]\nlogin = "*641"\n')
    assert any("starts with the not_ready code" in e for e in hidden), hidden


def test_a_code_that_is_an_extension_or_a_did_is_refused(tmp_path: Path) -> None:
    text = (
        BASE
        + """
[tenants.acme.agents."*70"]
password = "y"
[tenants.acme.acd.feature_codes]
login = "*70"
logout = "*99"
available = "#5"
[tenants.acme.dids."*99"]
app = "echo"
"""
    )
    found = errors(tmp_path, text)
    assert any("feature_codes.login" in e and "agent *70's extension" in e for e in found), found
    assert any("feature_codes.logout" in e and "DID *99" in e for e in found), found


def test_the_model_alone() -> None:
    assert FeatureCodes().match("*63") == ("available", None)
