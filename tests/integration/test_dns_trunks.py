"""Trunks given by domain name, located by DNS (RFC 3263) through a live node.

A tiny DNS server on loopback holds the carrier's zone; the "carrier" is a
test phone at the address its SRV records point to.
"""

from __future__ import annotations

import asyncio

from switch.sip.message import make_response
from tests.integration.conftest import running_node, sip_address
from tests.integration.test_calls import _agent_calls, _next_request, _next_response
from tests.support.dns import DnsServer
from tests.support.sipclient import UdpPhone, register_agent

TRANSPORT_LINE = 'transport = "udp"         # udp | tcp | tls'


def _changes(dns: DnsServer, host: str, **more: str) -> dict[str, str]:
    """The demo config with its trunk at `host` and a [dns] section for our server."""
    return {
        'outbound_host = "127.0.0.1:5090"': f'outbound_host = "{host}"',
        "[state]": f'[dns]\nnameservers = ["{dns.address}"]\ntimeout = 1\n\n[state]',
        **more,
    }


def _srv_zone(*servers: tuple[int, int]) -> dict:
    """carrier.test: SRV records (priority, port) toward 127.0.0.1."""
    return {
        "_sip._udp.carrier.test": {
            "SRV": [
                f"{priority} 0 {port} sbc{priority}.carrier.test." for priority, port in servers
            ]
        },
        **{f"sbc{priority}.carrier.test": {"A": ["127.0.0.1"]} for priority, _ in servers},
    }


async def test_an_agent_call_goes_out_to_the_server_the_trunk_domain_names(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as carrier:
        zone = {
            # NAPTR prefers UDP; the node has UDP and TCP listeners.
            "carrier.test": {
                "NAPTR": [
                    '10 10 "s" "SIP+D2U" "" _sip._udp.carrier.test.',
                    '20 10 "s" "SIP+D2T" "" _sip._tcp.carrier.test.',
                ]
            },
            **_srv_zone((10, carrier.address[1])),
        }
        async with DnsServer(zone) as dns:
            # No transport in the trunk: NAPTR decides.
            changes = _changes(dns, "carrier.test", **{TRANSPORT_LINE: ""})
            async with (
                running_node(tmp_path, changes=changes) as node,
                UdpPhone(sip_address(node), host="127.0.0.2") as alice,
            ):
                assert (await register_agent(alice, "1001", "agent1001"))[1].status == 200
                await _agent_calls(alice, "1001", "95551234")
                out = await _next_request(carrier, "INVITE")
                assert out.uri_text == "sip:+445551234@carrier.test"  # the carrier's own domain
                assert out.top_via.transport == "UDP"
                assert dns.queries == [
                    ("carrier.test", "NAPTR"),
                    ("_sip._udp.carrier.test", "SRV"),
                    ("sbc10.carrier.test", "A"),  # no AAAA: the node listens on IPv4
                    ("_sip._tcp.carrier.test", "SRV"),  # TCP: where to fail over
                ]
                carrier.send(bytes(make_response(out, 486, to_tag="busy")), sip_address(node))
                assert (await _next_response(alice, 486)).status == 486


async def test_when_the_first_srv_target_answers_503_the_call_lands_on_the_second(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as first, UdpPhone(("127.0.0.1", 9)) as second:
        zone = _srv_zone((10, first.address[1]), (20, second.address[1]))
        async with DnsServer(zone) as dns:
            changes = _changes(dns, "carrier.test")
            async with (
                running_node(tmp_path, changes=changes) as node,
                UdpPhone(sip_address(node), host="127.0.0.2") as alice,
            ):
                assert (await register_agent(alice, "1001", "agent1001"))[1].status == 200
                await _agent_calls(alice, "1001", "95551234")
                tried = await _next_request(first, "INVITE")
                first.send(bytes(make_response(tried, 503, to_tag="full")), sip_address(node))
                assert (await _next_request(first, "ACK")).cseq.method == "ACK"
                landed = await _next_request(second, "INVITE")
                assert landed.uri_text == "sip:+445551234@carrier.test"
                assert landed.call_id != tried.call_id  # a new leg, not a resend
                answer = make_response(landed, 200, to_tag="up", headers=[
                    ("Contact", f"<sip:5551234@127.0.0.1:{second.address[1]}>"),
                ])  # fmt: skip
                second.send(bytes(answer), sip_address(node))
                assert (await _next_response(alice, 200)).status == 200
                assert await first.silence(0.2)  # nothing more for the failed server
                assert node.calls is not None and len(node.calls) == 1


async def test_a_trunk_domain_that_does_not_resolve_gives_the_caller_a_503_naming_it(
    tmp_path, caplog
):
    async with DnsServer({}) as dns:  # every name: NXDOMAIN
        changes = _changes(dns, "nowhere.carrier.test")
        async with (
            running_node(tmp_path, changes=changes) as node,
            UdpPhone(sip_address(node), host="127.0.0.2") as alice,
        ):
            assert (await register_agent(alice, "1001", "agent1001"))[1].status == 200
            await _agent_calls(alice, "1001", "95551234")
            refused = await _next_response(alice, 503)
            assert "nowhere.carrier.test" in refused.reason
            assert refused.get("Retry-After") == "5"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        "cannot locate nowhere.carrier.test" in line and "NXDOMAIN" in line for line in warnings
    )


async def test_keepalive_pings_a_trunk_by_name_and_marks_an_unresolvable_one_down(tmp_path):
    async with UdpPhone(("127.0.0.1", 9)) as carrier:
        zone = _srv_zone((10, carrier.address[1]))
        async with DnsServer(zone) as dns:
            changes = _changes(
                dns,
                "carrier.test",
                **{
                    "keepalive = 30 ": "keepalive = 1 ",
                    "[tenants.demo.outbound.external]": (
                        '[tenants.demo.trunks.lost]\noutbound_host = "lost.test"\nkeepalive = 1'
                        "\n\n[tenants.demo.outbound.external]"
                    ),
                },
            )
            async with running_node(tmp_path, changes=changes) as node:
                assert node.trunks is not None
                node.trunks.timeout = 0.3
                loop = asyncio.get_running_loop()

                async def until(up: bool, trunk: str) -> None:
                    deadline = loop.time() + 5
                    while node.trunks.is_up("demo", trunk) != up:
                        assert loop.time() < deadline, (
                            f"{trunk} never went {'up' if up else 'down'}"
                        )
                        await asyncio.sleep(0.05)

                # The SRV target gets the pings, addressed to the domain;
                # unanswered, the trunk goes down, answered, up again.
                ignored = await _next_request(carrier, "OPTIONS")
                assert ignored.uri_text == "sip:carrier.test"
                await until(False, "demo-trunk")

                async def answer_pings() -> None:
                    while True:  # retransmissions of the ignored one too
                        ping = await _next_request(carrier, "OPTIONS")
                        carrier.send(bytes(make_response(ping, 200)), sip_address(node))

                answering = asyncio.ensure_future(answer_pings())
                try:
                    await until(True, "demo-trunk")
                finally:
                    answering.cancel()
                await until(False, "lost")  # its name does not resolve


async def test_a_carrier_given_by_domain_is_registered_to_at_its_srv_server(tmp_path):
    async with (
        UdpPhone(("127.0.0.1", 9)) as registrar,
        DnsServer(_srv_zone((10, registrar.address[1]))) as dns,
    ):
        account = 'username = "acct"\npassword = "secret"\nregister = true'
        old = '# username = "account"         # the carrier account (From/To of the REGISTER)'
        changes = _changes(dns, "carrier.test", **{old: account})
        async with running_node(tmp_path, changes=changes) as node:
            register = await _next_request(registrar, "REGISTER")
            # The carrier's domain in the Request-URI; its SRV server got it.
            assert register.uri_text == "sip:carrier.test"
            assert register.to.uri.user == "acct"
            contact = f"{register.get('Contact')};expires=600"
            registrar.send(bytes(make_response(register, 200, headers=[("Contact", contact)])),
                           sip_address(node))  # fmt: skip
            for _ in range(50):
                state = node.status()["trunk_registrations"]["demo/demo-trunk"]
                if state.get("registered"):
                    break
                await asyncio.sleep(0.05)
            assert state["registered"] is True
