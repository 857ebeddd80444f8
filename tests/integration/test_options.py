"""A live node answers OPTIONS over UDP and TCP, with SIPp as the far end."""

from __future__ import annotations

import pytest

from tests.integration.conftest import sip_address
from tests.support.sipp import needs_sipp, run_sipp


@needs_sipp
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sipp_options_gets_200(node, transport):
    target = sip_address(node, transport)
    result = await run_sipp(
        "options.xml", target, transport="u1" if transport == "udp" else "t1", calls=20, rate=50
    )
    assert result.ok, result.output
    assert node.stack.stats["received"] >= 20


async def test_options_over_websocket(node):
    import aiohttp

    from switch.sip.message import Response, parse_message

    data = (
        "OPTIONS sip:switch@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKws1\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:1001@demo.invalid>;tag=ws1\r\n"
        "To: <sip:switch@127.0.0.1>\r\n"
        "Call-ID: ws-options-1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{node.http_url}/sip", protocols=("sip",)) as ws,
    ):
        assert ws.protocol == "sip"
        await ws.send_str(data)
        reply = await ws.receive(timeout=5)
    resp = parse_message(reply.data.encode() if isinstance(reply.data, str) else reply.data)
    assert isinstance(resp, Response)
    assert resp.status == 200
    # The browser's made-up host is kept; where it really is goes in received.
    assert resp.top_via.host == "df7jal23ls0d.invalid"
    assert resp.top_via.params["received"] == "127.0.0.1"
