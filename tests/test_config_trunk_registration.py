"""Config of trunk registration: we to a carrier (register), a PBX to us (inbound_register)."""

from __future__ import annotations

from pathlib import Path

from switch.config import HostPort, load_config
from tests.test_config import errors_of, write


def test_registration_settings_and_their_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [trunks.carrier]
        outbound_host = "198.51.100.1"
        username = "acct"
        password = "secret"
        register = true
        [trunks.elsewhere]
        registrar = "reg.carrier.example"
        transport = "tls"
        username = "acct2"
        password = "secret"
        auth_username = "auth2"
        register = true
        register_expires = 600
        register_retry = 5
        contact_user = "inbound"
        [trunks.pbx]
        inbound_register = { username = "pbx1", password = "pbx-secret" }
        """,
    )
    trunks = load_config(path).tenants["default"].trunks
    carrier = trunks["carrier"]
    assert carrier.registrar_host == HostPort("198.51.100.1", 5060)
    assert (carrier.register_expires, carrier.register_retry) == (3600, 60)
    assert carrier.our_contact_user == "acct" and carrier.auth_username is None
    elsewhere = trunks["elsewhere"]
    assert elsewhere.outbound_host is None  # receives calls only
    # A name without a port: DNS (SRV for _sips._tcp) says where, RFC 3263.
    assert elsewhere.registrar_host == HostPort("reg.carrier.example", 0)
    assert elsewhere.our_contact_user == "inbound" and elsewhere.auth_username == "auth2"
    pbx = trunks["pbx"]
    assert pbx.inbound_register is not None and pbx.inbound_register.username == "pbx1"
    assert not pbx.register


def test_registration_mistakes_are_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [agents."1001"]
        password = "x"
        [trunks.half]
        username = "acct"
        password = "secret"
        register = true
        [trunks.unused]
        inbound_from = ["203.0.113.5"]
        register_expires = 600
        contact_user = "x"
        [trunks.both]
        inbound_from = ["203.0.113.6"]
        inbound_register = { username = "pbx1", password = "p" }
        [trunks.clash]
        inbound_register = { username = "1001", password = "p" }
        [trunks.empty]
        inbound_register = { username = "", password = "p" }
        [trunks.short]
        outbound_host = "198.51.100.1"
        username = "acct"
        password = "secret"
        register = true
        register_expires = 5
        """,
    )
    errors = errors_of(path)
    assert f"{path}: trunks.half.register: register = true also needs outbound_host" in errors
    assert f"{path}: trunks.unused.register_expires: only used with register = true" in errors
    assert f"{path}: trunks.unused.contact_user: only used with register = true" in errors
    assert (
        f"{path}: trunks.both.inbound_register: a trunk is known either by its address "
        "(inbound_from) or by its registration (inbound_register), not both: remove one"
    ) in errors
    assert (
        f"{path}: trunks.clash.inbound_register.username: '1001' is also agents.1001; "
        "a trunk's username must differ from every agent's and trunk's of its tenant"
    ) in errors
    assert any(e.startswith(f"{path}: trunks.empty.inbound_register.username:") for e in errors)
    assert any(e.startswith(f"{path}: trunks.short.register_expires:") for e in errors)
    assert len(errors) == 7, errors
