"""The IVR's `dial` on a live node: the flow puts its caller through to an agent.

The demo trunk calls DID 300, routed to a flow that says a word and dials
extension 1001 (a UDP test phone registered as that agent); the agent
answers and the two talk through the node (each side's tone heard by the
other, by frequency). A second flow dials an agent who is busy: the flow
goes on to its fallback step.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from switch.sip.message import make_response
from tests.integration.conftest import ended_calls
from tests.integration.test_app_connect import (
    AGENT_HZ,
    CALLER_HZ,
    _heard,
    _in_dialog_from,
    _loud,
    _next,
    _reply,
    _sdp,
    _settle,
    _talk,
    agent_phone,
    rtp_socket,
)
from tests.integration.test_apps import app_node, trunk_call
from tests.integration.test_calls import _media_address, _next_response
from tests.media.audio import peaks

FLOW = """
start: a
steps:
  a:
    - answer
    - say: "One moment."
    - dial: {extension: "1001", timeout: 10, fallback: sorry}
  sorry:
    - set: {dial: failed}
    - hangup
"""


def _ivr_on_300(tmp_path) -> dict[str, str]:
    flow = tmp_path / "dial.yaml"
    flow.write_text(FLOW)
    return {
        # (app_node first points DID 300 at the "ivr" app; this names the flow.)
        '[tenants.demo.dids."300"]\napp = "ivr"': (
            f'[tenants.demo.ivr.dialer]\nfile = "{flow}"\n\n'
            '[tenants.demo.dids."300"]\nivr = "dialer"'
        ),
    }


async def test_a_flow_dials_an_agent_who_answers_and_the_two_talk(tmp_path):
    async with (
        app_node(tmp_path, {}, "ivr", _ivr_on_300(tmp_path)) as node,
        agent_phone(node, "1001") as agent,
        rtp_socket() as agent_media,
        trunk_call(node) as (trunk, caller_media, _answered, node_a),
    ):
        ended = ended_calls(node)
        invite = await _next(agent, "INVITE", timeout=10)
        assert invite.uri_text.startswith("sip:1001@")
        node_b = _media_address(invite.body)
        _reply(agent, invite, 200, "ag1", _sdp(agent_media.port))
        ack = await _next(agent, "ACK")
        assert ack.call_id == invite.call_id
        since = time.monotonic()
        await asyncio.gather(
            _talk(caller_media, node_a, CALLER_HZ, 1.0, 0x1111),
            _talk(agent_media, node_b, AGENT_HZ, 1.0, 0x2222),
        )
        await asyncio.sleep(0.2)
        to_agent, to_caller = _loud(_heard(agent_media)), _loud(_heard(caller_media, since))
        assert len(to_agent) >= 8000 and len(to_caller) >= 8000
        assert peaks(to_agent, 8000, 1) == pytest.approx([CALLER_HZ], abs=15)
        assert peaks(to_caller[-8000:], 8000, 1) == pytest.approx([AGENT_HZ], abs=15)
        agent.send(_in_dialog_from(agent, invite, ack_tag="ag1", cseq=1, method="BYE"))
        assert (await _next_response(agent, 200)).cseq.method == "BYE"
        caller_bye = await _next(trunk, "BYE")
        trunk.send(bytes(make_response(caller_bye, 200)))
        await _settle(node)
    (call,) = ended
    assert call.target.kind == "agent" and call.target.name == "1001"
    summary = call.app.variables["ivr"]
    assert summary["outcome"] == "dial:1001"
    assert [e["step"] for e in summary["trail"] if e["kind"] == "step"] == ["a"]


async def test_a_flow_whose_agent_is_busy_goes_to_its_fallback(tmp_path):
    async with (
        app_node(tmp_path, {}, "ivr", _ivr_on_300(tmp_path)) as node,
        agent_phone(node, "1001") as agent,
        trunk_call(node) as (trunk, _caller_media, _answered, _node_a),
    ):
        ended = ended_calls(node)
        invite = await _next(agent, "INVITE", timeout=10)
        _reply(agent, invite, 486, "ag1")
        bye = await _next(trunk, "BYE", timeout=10)  # the fallback hangs up
        trunk.send(bytes(make_response(bye, 200)))
        await _settle(node)
    (call,) = ended
    summary = call.app.variables["ivr"]
    assert summary["variables"]["dial"] == "failed"
    failed = [e for e in summary["trail"] if e["kind"] == "dial_failed"]
    assert failed and failed[0]["detail"].startswith("486")
