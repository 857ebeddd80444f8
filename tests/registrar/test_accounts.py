"""Accounts: HA1 values of config and directory agents, and the tenant of a request."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switch.config import Config, load_config
from switch.registrar.accounts import Accounts
from switch.sip.digest import compute_ha1
from switch.store.directory import Directory

pytestmark = pytest.mark.timeout(30)

TTL = 5.0

MULTI = """
[agents."1001"]
password = "default-1001"
[agents."2001"]
password = "default-2001"

[tenants.acme]
name = "Acme Corp"  # the realm is the id, not the name
domains = ["acme.example", "SIP.Acme.Example"]
[tenants.acme.agents."1001"]
password = "acme-1001"
[tenants.acme.agents."3001"]
password = "acme-3001"

[tenants.beta.agents."1001"]
password = "beta-1001"
"""


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(path)


def ha1s_of(ext: str, realm: str, password: str) -> dict[str, str]:
    return {alg: compute_ha1(ext, realm, password, alg) for alg in ("MD5", "SHA-256")}


@pytest.fixture
async def directory(tmp_path: Path) -> AsyncIterator[Directory]:
    d = await Directory.open(tmp_path / "data" / "switch.db")
    yield d
    await d.close()


# -- agents from the config file ---------------------------------------------------------


async def test_static_agents_have_ha1_per_algorithm_with_realm_tenant(tmp_path: Path) -> None:
    accounts = Accounts(config(tmp_path, MULTI))
    assert await accounts.ha1s("default", "1001") == ha1s_of("1001", "default", "default-1001")
    assert await accounts.ha1s("acme", "1001") == ha1s_of("1001", "acme", "acme-1001")
    assert await accounts.ha1s("beta", "1001") == ha1s_of("1001", "beta", "beta-1001")
    # The same extension in two tenants: different realms, different HA1s.
    acme, beta = await accounts.ha1s("acme", "1001"), await accounts.ha1s("beta", "1001")
    assert acme is not None and beta is not None
    assert acme["MD5"] != beta["MD5"] and acme["SHA-256"] != beta["SHA-256"]
    assert len(acme["MD5"]) == 32 and len(acme["SHA-256"]) == 64


async def test_unknown_agent_is_none(tmp_path: Path) -> None:
    accounts = Accounts(config(tmp_path, MULTI))
    assert await accounts.ha1s("default", "9999") is None
    assert await accounts.ha1s("acme", "2001") is None  # 2001 is the default tenant's
    assert await accounts.ha1s("nosuch", "1001") is None


async def test_static_agent_wins_over_the_directory(tmp_path: Path, directory: Directory) -> None:
    await directory.add_agent("acme", "1001", "", "directory-password")
    accounts = Accounts(config(tmp_path, MULTI), directory, clock=Clock())
    assert await accounts.ha1s("acme", "1001") == ha1s_of("1001", "acme", "acme-1001")


# -- agents from the directory ---------------------------------------------------------


async def test_directory_agent_is_found(tmp_path: Path, directory: Directory) -> None:
    await directory.add_agent("acme", "4001", "Dana", "first")
    accounts = Accounts(config(tmp_path, MULTI), directory, cache_ttl=TTL, clock=Clock())
    assert await accounts.ha1s("acme", "4001") == ha1s_of("4001", "acme", "first")
    assert await accounts.ha1s("beta", "4001") is None


async def test_password_change_is_seen_after_the_ttl_not_before(
    tmp_path: Path, directory: Directory
) -> None:
    clock = Clock()
    await directory.add_agent("acme", "4001", "Dana", "first")
    accounts = Accounts(config(tmp_path, MULTI), directory, cache_ttl=TTL, clock=clock)
    assert await accounts.ha1s("acme", "4001") == ha1s_of("4001", "acme", "first")

    await directory.set_password("acme", "4001", "second")
    clock.now += TTL - 0.1
    assert await accounts.ha1s("acme", "4001") == ha1s_of("4001", "acme", "first")
    clock.now += 0.2
    assert await accounts.ha1s("acme", "4001") == ha1s_of("4001", "acme", "second")


async def test_an_unknown_agent_is_cached_too(tmp_path: Path, directory: Directory) -> None:
    clock = Clock()
    accounts = Accounts(config(tmp_path, MULTI), directory, cache_ttl=TTL, clock=clock)
    assert await accounts.ha1s("acme", "4001") is None
    await directory.add_agent("acme", "4001", "Dana", "first")
    clock.now += TTL - 0.1
    assert await accounts.ha1s("acme", "4001") is None
    clock.now += 0.2
    assert await accounts.ha1s("acme", "4001") == ha1s_of("4001", "acme", "first")


async def test_a_removed_agent_goes_after_the_ttl(tmp_path: Path, directory: Directory) -> None:
    clock = Clock()
    await directory.add_agent("acme", "4001", "Dana", "first")
    accounts = Accounts(config(tmp_path, MULTI), directory, cache_ttl=TTL, clock=clock)
    assert await accounts.ha1s("acme", "4001") is not None
    await directory.remove_agent("acme", "4001")
    assert await accounts.ha1s("acme", "4001") is not None
    clock.now += TTL + 0.1
    assert await accounts.ha1s("acme", "4001") is None


async def test_agent_hashed_with_another_realm_cannot_authenticate(
    tmp_path: Path, directory: Directory
) -> None:
    await directory.add_agent("acme", "4001", "", "first", realm="sip.acme.example")
    accounts = Accounts(config(tmp_path, MULTI), directory, clock=Clock())
    assert await accounts.ha1s("acme", "4001") is None


async def test_without_a_directory_only_static_agents_exist(tmp_path: Path) -> None:
    accounts = Accounts(config(tmp_path, MULTI), None)
    await accounts.load_directory()  # nothing to load, no error
    assert await accounts.ha1s("acme", "4001") is None


# -- tenant_for ----------------------------------------------------------------------------


def test_tenant_by_domain_case_insensitive(tmp_path: Path) -> None:
    accounts = Accounts(config(tmp_path, MULTI))
    assert accounts.tenant_for("1001", "acme.example") == "acme"
    assert accounts.tenant_for("1001", "ACME.example") == "acme"
    assert accounts.tenant_for("1001", "sip.acme.example") == "acme"
    # The domain wins over the extension: 2001 is only in the default tenant.
    assert accounts.tenant_for("2001", "acme.example") == "acme"


def test_tenant_by_unique_extension(tmp_path: Path) -> None:
    accounts = Accounts(config(tmp_path, MULTI))
    assert accounts.tenant_for("2001", "192.0.2.10") == "default"
    assert accounts.tenant_for("3001", "192.0.2.10") == "acme"


def test_ambiguous_or_unknown_extension_has_no_tenant(tmp_path: Path) -> None:
    accounts = Accounts(config(tmp_path, MULTI))
    assert accounts.tenant_for("1001", "192.0.2.10") is None  # in default, acme and beta
    assert accounts.tenant_for("9999", "192.0.2.10") is None
    assert accounts.tenant_for("1001", "other.example") is None


def test_single_tenant_takes_every_request(tmp_path: Path) -> None:
    accounts = Accounts(config(tmp_path, '[agents."1001"]\npassword = "x"\n'))
    assert accounts.tenant_for("1001", "192.0.2.10") == "default"
    assert accounts.tenant_for("9999", "anything.example") == "default"


async def test_directory_agents_are_known_after_load(tmp_path: Path, directory: Directory) -> None:
    await directory.add_agent("beta", "5001", "", "pw")
    await directory.add_agent("acme", "5002", "", "pw")
    await directory.add_agent("beta", "5002", "", "pw")
    await directory.add_agent("acme", "2001", "", "pw")  # 2001 is also a default agent
    clock = Clock()
    accounts = Accounts(config(tmp_path, MULTI), directory, cache_ttl=TTL, clock=clock)
    assert accounts.tenant_for("5001", "192.0.2.10") is None  # not loaded yet
    await accounts.load_directory()
    assert accounts.tenant_for("5001", "192.0.2.10") == "beta"
    assert accounts.tenant_for("5002", "192.0.2.10") is None  # in acme and beta
    assert accounts.tenant_for("2001", "192.0.2.10") is None  # in default and acme
    # Loading also fills the cache: no database read within the ttl.
    await directory.set_password("beta", "5001", "changed")
    assert await accounts.ha1s("beta", "5001") == ha1s_of("5001", "beta", "pw")


async def test_a_directory_hit_teaches_the_tenant(tmp_path: Path, directory: Directory) -> None:
    await directory.add_agent("beta", "5001", "", "pw")
    accounts = Accounts(config(tmp_path, MULTI), directory, clock=Clock())
    assert accounts.tenant_for("5001", "192.0.2.10") is None
    assert await accounts.ha1s("beta", "5001") is not None
    assert accounts.tenant_for("5001", "192.0.2.10") == "beta"
