"""A queued call's CDR (queue, wait, agent, ring and talk time) and the ACD's
events as rows (the node hands them to the records as they happen), on a
live node (the demo's queue "support" on DID 200)."""

from __future__ import annotations

import asyncio

import pytest

from switch.sip.message import make_response
from switch.store.records import open_backend
from switch.store.records.service import decode
from tests.integration.conftest import ended_calls
from tests.integration.test_acd_calls import _status, _until, queue_call, queue_node
from tests.integration.test_app_connect import _next, _reply, _sdp, _settle, agent_phone, rtp_socket
from tests.integration.test_apps import _in_dialog
from tests.integration.test_calls import _next_response
from tests.integration.test_ivr import PCAPS, _sipp, ivr_node


async def test_a_queued_call_answered_by_an_agent(tmp_path):
    async with (
        queue_node(tmp_path) as node,
        agent_phone(node, "1001") as agent,
        rtp_socket() as agent_media,
    ):
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        async with queue_call(node) as (trunk, _caller_media, answered, _node_a):
            ended = ended_calls(node)
            invite = await _next(agent, "INVITE")
            _reply(agent, invite, 180, "ag1")
            await asyncio.sleep(0.4)  # it rings
            _reply(agent, invite, 200, "ag1", _sdp(agent_media.port))
            await _next(agent, "ACK")
            await _until(lambda: _status(node, "1001")[0] == "on-call", what="1001 on call")
            await asyncio.sleep(0.5)  # they talk
            trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
            await _next_response(trunk, 200)
            bye = await _next(agent, "BYE")
            agent.send(bytes(make_response(bye, 200)))
            await _until(lambda: _status(node, "1001")[0] == "available", 5, "available again")
            await _settle(node)
        assert node.records is not None
        assert await node.records.flush()
        [cdr] = await node.records.fetch("cdrs")
        queue_rows = await node.records.fetch("queue_events")
        agent_rows = await node.records.fetch("agent_events")
    [call] = ended
    assert cdr["call_id"] == call.id
    assert (cdr["app"], cdr["did"], cdr["direction"]) == ("queue", "200", "inbound")
    assert (cdr["queue"], cdr["agent"], cdr["callee"]) == ("support", "1001", "1001")
    assert 0.3 < cdr["wait"] < 5
    assert 0.3 <= cdr["ring_time"] < 3
    assert 0.4 < cdr["talk_time"] < cdr["billsec"] <= cdr["duration"]
    assert (cdr["hangup_by"], cdr["hangup_code"]) == ("caller", 200)
    caller = str(call.id)
    assert [row["event"] for row in queue_rows if row["call_id"] == caller] == [
        "joined",
        "offered",
        "answered",
    ]
    answered_row = queue_rows[-1]
    assert (answered_row["agent"], answered_row["queue"]) == ("1001", "support")
    assert answered_row["wait"] == pytest.approx(cdr["wait"], abs=0.001)
    states = [row["state"] for row in agent_rows if row["agent"] == "1001"]
    assert states[-4:] == ["reserved", "on-call", "wrap-up", "available"]


async def test_a_call_still_up_when_the_node_stops_has_its_cdr(tmp_path):
    async with queue_node(tmp_path) as node:
        db = node.config.records.dsn
        async with queue_call(node):  # nobody to answer: the caller waits in the queue
            await _until(lambda: len(node.calls) == 1, what="the call is up")
            [call] = list(node.calls._by_invite.values())
            await node.stop()
    backend = open_backend("sqlite", db)
    try:
        [cdr] = [decode(row) for row in await backend.fetch("cdrs")]
    finally:
        await backend.close()
    assert cdr["call_id"] == call.id
    assert (cdr["hangup_by"], cdr["hangup_code"], cdr["hangup_reason"]) == (
        "node", 0, "node stopped",
    )  # fmt: skip
    assert (cdr["app"], cdr["did"]) == ("queue", "200")
    assert cdr["answer_time"] is not None and cdr["end_time"] >= cdr["answer_time"]


async def test_a_caller_who_gives_up_in_the_queue_has_the_queue_in_the_cdr(tmp_path):
    # The queue's outcome (and so the CDR's queue and wait) is known only once
    # the caller has gone: the CDR made at the end is replaced by the fuller one.
    async with queue_node(tmp_path) as node:
        ended = ended_calls(node)
        async with queue_call(node) as (trunk, _media, answered, _node_a):
            await asyncio.sleep(0.6)  # waits, nobody to answer
            trunk.send(_in_dialog(trunk, "BYE", answered, cseq=2))
            await _next_response(trunk, 200)
        await _until(lambda: bool(ended), what="the call ended")
        await _until(lambda: ended[0].app.task.done(), what="the queue application finished")
        assert node.records is not None
        assert await node.records.flush()
        [cdr] = await node.records.fetch("cdrs")
    assert (cdr["queue"], cdr["agent"], cdr["hangup_by"]) == ("support", None, "caller")
    assert 0.5 < cdr["wait"] < 5


@pytest.mark.skipif(not (PCAPS / "dtmf_2833_1.pcap").exists(), reason="sip-tester's captures")
async def test_an_ivr_caller_has_the_path_and_keys_in_the_cdr(tmp_path):
    # The demo IVR (DID 100): 1 during the greeting -> queue support; the caller
    # gives up there after a while (nobody to answer).
    async with ivr_node(tmp_path) as node:
        ended = ended_calls(node)
        result = await _sipp(node, "ivr_uac_press_1.xml", 3000)
        assert result.ok, result.output
        await _until(lambda: bool(ended) and ended[0].app.task.done(), what="the IVR finished")
        assert node.records is not None
        assert await node.records.flush()
        [cdr] = await node.records.fetch("cdrs")
    assert (cdr["app"], cdr["did"], cdr["caller"]) == ("ivr", "100", "+442079460123")
    ivr = cdr["ivr"]
    assert (ivr["digits"], ivr["steps"][-1], ivr["outcome"]) == ("1", "support", "enqueue:support")
    assert ivr["variables"]["department"] == "support"
    assert (cdr["queue"], cdr["agent"]) == ("support", None)
    assert cdr["wait"] == ivr["queue"]["waited"] > 0
