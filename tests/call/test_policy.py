"""Who may call what, how numbers reach trunks, and who the far end sees: no sockets."""

from __future__ import annotations

import logging
import textwrap

import pytest

from switch.call.caller_id import Identity, presented
from switch.call.routing import Rejection, Router, Target
from switch.config import Config, load_config
from switch.registrar.guard import Caller
from switch.sip.flow import Flow
from switch.store.location import MemoryLocationStore

CONFIG = """
[tenants.acme]
[tenants.acme.numbers]
country_code = "44"
national_prefix = "0"
international_prefix = "00"
emergency = ["999", "112"]
mobile = ["07"]
premium = ["09", "+881"]
caller_id = "+442079460000"
caller_ids = ["02079460009"]

[tenants.acme.agents."1001"]
password = "x"
name = "Alice Archer"

[tenants.acme.agents."1002"]
password = "x"
may_dial = ["internal", "emergency", "national", "mobile", "international"]
caller_id = "+442079460001"

[tenants.acme.agents."1003"]
password = "x"
may_dial = ["internal", "emergency"]
withhold_caller_id = true

[tenants.acme.trunks.carrier]
inbound_from = ["192.0.2.1"]
outbound_host = "192.0.2.1:5060"
number_format = "national"
setup_timeout = 2.5

[tenants.acme.trunks.backup]
outbound_host = "192.0.2.2:5060"
number_format = "international"

[tenants.acme.dids."+442079460001"]
agent = "1001"

[tenants.acme.dids."02079460002"]
forward = "+33123456789"
trunk = "backup"

[tenants.acme.outbound.external]
prefix = "9"
strip = 1
trunk = "carrier"
trunks = ["backup"]
ring_timeout = 30

[tenants.acme.outbound.france]
prefix = "+33"
trunk = "backup"
caller_id = "02079460009"
allow_international = true
"""


def config(tmp_path, text: str = CONFIG) -> Config:
    path = tmp_path / "switch.toml"
    path.write_text(textwrap.dedent(text))
    return load_config(path)


@pytest.fixture
def router(tmp_path) -> Router:
    return Router(config(tmp_path), MemoryLocationStore())


def agent(ext: str) -> Caller:
    return Caller("acme", "agent", ext)


async def test_a_national_number_goes_out_in_each_trunks_format(router):
    target = await router.route(agent("1001"), "9 020-7946-0123")
    assert isinstance(target, Target)
    assert target.uri == "sip:02079460123@192.0.2.1:5060" and target.number == "+442079460123"
    [backup] = target.fallbacks
    assert backup.uri == "sip:442079460123@192.0.2.2:5060"
    assert (target.route, target.setup_timeout, target.ring_timeout) == ("external", 2.5, 30)
    assert backup.setup_timeout == 5.0  # the default


async def test_mobile_numbers_are_allowed_by_default(router):
    target = await router.route(agent("1001"), "9+447700900123")
    assert isinstance(target, Target) and target.number == "+447700900123"


@pytest.mark.parametrize(
    ("dialled", "kind"),
    [("90033123456789", "international"), ("909098790000", "premium"), ("9+881612345", "premium")],
)
async def test_classes_off_by_default_are_403_naming_the_class_and_the_fix(
    router, caplog, dialled, kind
):
    with caplog.at_level(logging.WARNING, logger="switch.call"):
        refused = await router.route(agent("1001"), dialled)
    assert isinstance(refused, Rejection) and refused.status == 403
    assert f"{kind} numbers are not allowed for agent 1001" in refused.reason
    assert f'add "{kind}" to may_dial' in refused.reason
    assert "call refused: tenant=acme agent=1001 number=+" in caplog.text
    assert f"class={kind}" in caplog.text


async def test_an_agent_allowed_abroad_calls_abroad_but_not_premium(router):
    target = await router.route(agent("1002"), "90033123456789")
    assert isinstance(target, Target) and target.uri == "sip:0033123456789@192.0.2.1:5060"
    refused = await router.route(agent("1002"), "909098790000")
    assert isinstance(refused, Rejection) and "premium" in refused.reason


async def test_an_agent_limited_to_internal_calls_may_not_dial_out(router):
    refused = await router.route(agent("1003"), "902079460123")
    assert isinstance(refused, Rejection) and refused.status == 403
    assert "national numbers are not allowed for agent 1003" in refused.reason


@pytest.mark.parametrize(
    ("dialled", "sent"), [("999", "999"), ("112", "112"), ("9999", "999"), ("9 112", "112")]
)
async def test_emergency_numbers_always_pass_and_go_as_dialled(router, dialled, sent):
    target = await router.route(agent("1003"), dialled)  # 1003 may not even call nationally
    assert isinstance(target, Target)
    assert target.uri == f"sip:{sent}@192.0.2.1:5060" and target.number == sent


async def test_an_e164_route_matches_whatever_format_the_agent_typed(router):
    # No access code: "+33" matches the normalised number; the route allows abroad.
    target = await router.route(agent("1001"), "0033 1 23 45 67 89")
    assert isinstance(target, Target) and target.route == "france"
    assert target.uri == "sip:33123456789@192.0.2.2:5060"


async def test_what_normalises_to_nothing_is_404(router):
    refused = await router.route(agent("1001"), "9+")
    assert isinstance(refused, Rejection) and refused.status == 404


async def test_an_extension_needs_the_internal_class(tmp_path):
    text = CONFIG.replace('may_dial = ["internal", "emergency"]', 'may_dial = ["emergency"]')
    router = Router(config(tmp_path, text), MemoryLocationStore())
    refused = await router.route(agent("1003"), "1001")
    assert isinstance(refused, Rejection) and "internal numbers" in refused.reason


async def test_allow_international_on_a_route_still_lets_everyone_abroad(tmp_path):
    text = CONFIG.replace("ring_timeout = 30", "ring_timeout = 30\nallow_international = true")
    router = Router(config(tmp_path, text), MemoryLocationStore())
    assert isinstance(await router.route(agent("1001"), "90033123456789"), Target)
    assert isinstance(await router.route(agent("1001"), "909098790000"), Rejection)


@pytest.mark.parametrize("did", ["02079460002", "+442079460002", "442079460002", "00442079460002"])
async def test_a_did_matches_in_any_format_the_carrier_sends(router, did):
    target = await router.route(Caller("acme", "trunk", "carrier"), did)
    assert isinstance(target, Target)
    assert target.uri == "sip:33123456789@192.0.2.2:5060"  # forwarded in the trunk's format
    assert (target.number, target.setup_timeout) == ("+33123456789", 5.0)


# -- caller ID ---------------------------------------------------------------------------


async def _out(router: Router, ext: str, dialled: str = "902079460123") -> Target:
    target = await router.route(agent(ext), dialled)
    assert isinstance(target, Target)
    return target


async def test_an_agent_presents_its_own_number_then_the_route_then_the_tenants(router):
    tenant = router.config.tenants["acme"]
    own = await _out(router, "1002")
    assert presented(tenant, agent("1002"), own, "1002", "") == Identity("02079460001", "", False)
    main = await _out(router, "1001")
    assert presented(tenant, agent("1001"), main, "1001", "Alice") == Identity(
        "02079460000", "Alice Archer", False
    )
    france = await _out(router, "1001", "+33123456789")
    # The route's number, written as the backup trunk wants it.
    assert presented(tenant, agent("1001"), france, "1001", "").number == "442079460009"


async def test_a_preferred_identity_is_used_only_when_the_tenant_owns_it(router, caplog):
    tenant = router.config.tenants["acme"]
    target = await _out(router, "1001")
    owned = presented(tenant, agent("1001"), target, "1001", "", preferred="+442079460009")
    assert owned.number == "02079460009"
    assert "caller id refused" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="switch.call"):
        spoofed = presented(tenant, agent("1001"), target, "1001", "", preferred="+12125550100")
    assert spoofed.number == "02079460000"  # the tenant's main number instead
    assert "caller id refused: tenant=acme agent=1001 number=+12125550100" in caplog.text


async def test_any_caller_id_lets_the_agent_choose_any_number(tmp_path):
    text = CONFIG.replace('caller_ids = ["02079460009"]', "caller_ids = []\nany_caller_id = true")
    router = Router(config(tmp_path, text), MemoryLocationStore())
    target = await _out(router, "1001")
    who = presented(
        router.config.tenants["acme"], agent("1001"), target, "1001", "", "+12125550100"
    )
    assert who.number == "0012125550100"


async def test_withheld_by_the_agents_setting_or_by_its_phone_but_not_for_emergencies(router):
    tenant = router.config.tenants["acme"]
    target = await _out(router, "1001")
    assert presented(tenant, agent("1003"), target, "1003", "").withheld  # 1003 withholds
    assert presented(tenant, agent("1001"), target, "1001", "", privacy=True).withheld
    assert not presented(tenant, agent("1001"), target, "1001", "").withheld
    # The emergency services always get the number, whatever the agent or its phone asks.
    emergency = await _out(router, "1003", "999")
    assert not presented(tenant, agent("1003"), emergency, "1003", "", privacy=True).withheld


async def test_without_any_configured_number_the_extension_goes_as_before(tmp_path):
    text = CONFIG.replace('caller_id = "+442079460000"\n', "")
    router = Router(config(tmp_path, text), MemoryLocationStore())
    target = await _out(router, "1001")
    assert presented(router.config.tenants["acme"], agent("1001"), target, "1001", "").number == (
        "1001"
    )


async def test_a_customers_number_is_e164_for_agents_and_in_format_for_trunks(router):
    tenant = router.config.tenants["acme"]
    trunk = Caller("acme", "trunk", "carrier")
    to_agent = Target("sip:1001@198.51.100.1", Flow("udp", ("198.51.100.1", 5060)), "agent", "1001")
    assert presented(tenant, trunk, to_agent, "07700 900123", "Bob") == Identity(
        "+447700900123", "Bob", False
    )
    forwarded = await router.route(trunk, "02079460002")
    assert isinstance(forwarded, Target)
    assert presented(tenant, trunk, forwarded, "+447700900123", "").number == "447700900123"
    assert presented(tenant, trunk, forwarded, "anonymous", "", privacy=True) == Identity(
        "anonymous", "", True
    )
