"""The config keys of the API: [http] jwt_secret and a tenant's api_keys."""

from __future__ import annotations

import pytest

from switch.config import ConfigError, load_config


def errors(tmp_path, text: str) -> list[str]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [line.split(": ", 1)[1] for line in caught.value.lines]


def test_a_short_jwt_secret_is_refused_with_how_to_make_one(tmp_path):
    assert errors(tmp_path, '[http]\njwt_secret = "short"\n') == [
        "http.jwt_secret: is 5 characters; use at least 32 random ones (e.g. the output of "
        "`openssl rand -hex 32`), or leave it out"
    ]


def test_api_keys_need_a_long_key_and_a_supervisor_or_admin_role(tmp_path):
    text = """
[tenants.acme.api_keys.crm]
key = "short"
role = "agent"
"""
    found = errors(tmp_path, text)
    assert any("tenants.acme.api_keys.crm.key" in line and "24" in line for line in found), found
    assert any("tenants.acme.api_keys.crm.role" in line for line in found), found


def test_api_keys_load(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[tenants.acme.api_keys.crm]\nkey = "k-0123456789abcdef012345678"\n')
    key = load_config(path).tenants["acme"].api_keys["crm"]
    assert (key.key, key.role) == ("k-0123456789abcdef012345678", "supervisor")
