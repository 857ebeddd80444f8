"""Agents register with a live node: SIPp as the phone, digest auth, the location store."""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import sip_address
from tests.support.sipp import needs_sipp, run_sipp

pytestmark = needs_sipp


def _agent(ext: str, password: str, expires: int = 3600) -> list[str]:
    return [
        "-s",
        ext,
        "-au",
        ext,
        "-ap",
        password,
        "-key",
        "domain",
        "demo.invalid",
        "-key",
        "expires",
        str(expires),
    ]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_register_with_digest_auth(node, transport):
    target = sip_address(node, transport)
    sipp_transport = "u1" if transport == "udp" else "t1"
    result = await run_sipp(
        "register.xml", target, transport=sipp_transport, extra=_agent("1001", "agent1001", 600)
    )
    assert result.ok, result.output
    bindings = await node.state.locations.get("demo/1001", time.time())
    if transport == "tcp":
        # SIPp closed its connection at the end of the call, and a binding
        # made over a connection goes with it.
        assert bindings == []
        return
    [binding] = bindings
    assert binding.contact.startswith("sip:1001@127.0.0.1:")
    assert binding.transport == "udp"
    assert binding.source[0] == "127.0.0.1"
    assert 590 <= binding.expires_at - time.time() <= 600


async def test_refresh_keeps_one_binding_and_extends_it(node):
    result = await run_sipp(
        "refresh.xml", sip_address(node), extra=_agent("1002", "agent1002", 300)
    )
    assert result.ok, result.output
    [binding] = await node.state.locations.get("demo/1002", time.time())
    assert binding.cseq == 4  # the refresh, not the first registration


async def test_unregister_removes_the_binding(node):
    result = await run_sipp("unregister.xml", sip_address(node), extra=_agent("1003", "agent1003"))
    assert result.ok, result.output
    assert await node.state.locations.get("demo/1003", time.time()) == []


async def test_wrong_password_and_unknown_user_get_the_same_403(node, caplog):
    caplog.set_level("WARNING", logger="switch.auth")
    wrong = await run_sipp(
        "register_wrong_password.xml", sip_address(node), extra=_agent("1004", "not-it")
    )
    assert wrong.ok, wrong.output
    unknown = await run_sipp(
        "register_wrong_password.xml", sip_address(node), extra=_agent("7777", "agent7777")
    )
    assert unknown.ok, unknown.output
    assert await node.state.locations.get("demo/1004", time.time()) == []
    failures = [r.getMessage() for r in caplog.records if "auth failure" in r.getMessage()]
    assert any("user=1004" in line and "reason=wrong_password" in line for line in failures)
    assert any("user=7777" in line and "reason=unknown_user" in line for line in failures)
    assert all("ip=127.0.0.1" in line for line in failures)


async def test_many_agents_register_at_once(node):
    # Five phones, twenty registrations each, interleaved: no failure, and
    # each ends with exactly one binding (the same Contact replaces itself).
    import asyncio

    results = await asyncio.gather(
        *(
            run_sipp(
                "register.xml",
                sip_address(node),
                calls=20,
                rate=100,
                extra=_agent(f"100{i}", f"agent100{i}"),
            )
            for i in range(1, 6)
        )
    )
    for result in results:
        assert result.ok, result.output
    for i in range(1, 6):
        assert len(await node.state.locations.get(f"demo/100{i}", time.time())) == 1
