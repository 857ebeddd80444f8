"""The CDR of a finished call, built from the call model alone (no sockets)."""

from __future__ import annotations

from typing import Any

from switch.call.app import AppCall, Connected, Party
from switch.call.cdr import build_cdr, cdr_id, transfers
from switch.call.model import Call, Hangup, LegEnd
from switch.call.routing import Target
from switch.media.relay import LegQuality
from switch.registrar.guard import Caller
from switch.sip.flow import Flow
from switch.sip.message import Request, parse_message

FLOW = Flow("udp", ("127.0.0.1", 5070))


def _invite(from_: str = '"Ann Smith" <sip:+15551230000@carrier.example>;tag=x') -> Request:
    data = (
        "INVITE sip:+15559990000@switch.example SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
        f"From: {from_}\r\n"
        "To: <sip:+15559990000@switch.example>\r\n"
        "Call-ID: abc@carrier\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def _call(caller: Caller, target: Target | None = None, **kw: Any) -> Call:
    call = Call(caller, "+15559990000", _invite(), FLOW, object(), target=target)  # type: ignore[arg-type]
    call.id = 42
    call.started_at = 1000.0
    for key, value in kw.items():
        setattr(call, key, value)
    return call


def _quality(lost: int, codec: str = "pcmu") -> LegQuality:
    return LegQuality(1000, lost, 0.004, 1000, 0.02, None, None, 0, codec)


def test_an_inbound_call_to_an_agent() -> None:
    agent = Target("sip:1001@10.0.0.5", FLOW, "agent", "1001")
    call = _call(
        Caller("demo", "trunk", "carrier", did="+15559990000"),
        agent,
        answered_at=1004.0,
        ended_at=1064.5,
        hangup=Hangup("caller", 200, "BYE", 'Q.850;cause=16;text="Normal"'),
        recording_path="/data/recordings/demo/42.wav",
        quality={"a": _quality(0), "b": _quality(50)},
        legs=[
            LegEnd("a", "trunk demo/carrier", "caller", 200, "BYE", None, 1064.5),
            LegEnd(
                "b",
                "agent demo/1001 sip:1001@10.0.0.5",
                "node",
                200,
                "BYE from the caller",
                None,
                1064.5,
            ),
        ],
    )
    cdr = build_cdr(call, "node1", "+15551230000")
    assert cdr["id"] == cdr_id("node1", call) == "node1:42:1000000000"
    assert (cdr["node"], cdr["call_id"], cdr["sip_call_id"]) == ("node1", 42, "abc@carrier")
    assert (cdr["tenant"], cdr["direction"], cdr["trunk"]) == ("demo", "inbound", "carrier")
    assert (cdr["caller"], cdr["caller_name"], cdr["did"]) == (
        "+15551230000", "Ann Smith", "+15559990000",
    )  # fmt: skip
    assert (cdr["callee"], cdr["agent"], cdr["app"]) == ("1001", "1001", None)
    assert (cdr["start_time"], cdr["answer_time"], cdr["end_time"]) == (1000.0, 1004.0, 1064.5)
    assert (cdr["duration"], cdr["billsec"], cdr["ring_time"], cdr["talk_time"]) == (
        64.5, 60.5, 4.0, 60.5,
    )  # fmt: skip
    assert cdr["hold_time"] == 0.0 and cdr["wrapup_time"] is None
    assert (cdr["hangup_by"], cdr["hangup_code"], cdr["hangup_reason"]) == ("caller", 200, "BYE")
    assert cdr["reason_header"] == 'Q.850;cause=16;text="Normal"'
    assert cdr["recording"] == "/data/recordings/demo/42.wav"
    assert set(cdr["quality"]) == {"a", "b"}
    assert cdr["quality"]["b"]["packets_lost"] == 50
    mos = [cdr["quality"][leg]["mos"] for leg in "ab"]
    assert cdr["mos_min"] == min(mos) == mos[1] < mos[0]  # the lossy leg
    assert [(leg["leg"], leg["ended_by"], leg["reason"]) for leg in cdr["legs"]] == [
        ("a", "caller", "BYE"),
        ("b", "node", "BYE from the caller"),
    ]
    assert cdr["transfers"] == [] and cdr["ivr"] is None and cdr["queue"] is None


def test_an_outbound_call_refused_by_the_trunk() -> None:
    trunk = Target("sip:+4930123@gw.example", FLOW, "trunk", "carrier", number="+4930123")
    call = _call(
        Caller("demo", "agent", "1001"),
        trunk,
        ended_at=1003.0,
        hangup=Hangup("callee", 486, "Busy Here"),
        legs=[
            LegEnd(
                "b",
                "trunk demo/carrier sip:+4930123@gw.example",
                "callee",
                486,
                "Busy Here",
                None,
                1003.0,
            )
        ],
    )
    cdr = build_cdr(call, "node1", "1001")
    assert (cdr["direction"], cdr["trunk"], cdr["callee"], cdr["agent"]) == (
        "outbound", "carrier", "+4930123", "1001",
    )  # fmt: skip
    assert cdr["answer_time"] is None and cdr["billsec"] == 0.0 and cdr["talk_time"] == 0.0
    assert cdr["ring_time"] == 3.0  # rang until refused
    assert (cdr["hangup_by"], cdr["hangup_code"]) == ("callee", 486)
    assert cdr["quality"] is None and cdr["mos_min"] is None


def test_a_refused_call_has_a_record_too() -> None:
    call = _call(Caller("demo", "trunk", "carrier"), ended_at=1000.0,
                 hangup=Hangup("node", 404, "Not Found"))  # fmt: skip
    cdr = build_cdr(call, "node1", "+15551230000")
    assert (cdr["callee"], cdr["ring_time"], cdr["duration"]) == (None, 0.0, 0.0)
    assert (cdr["hangup_by"], cdr["hangup_code"], cdr["hangup_reason"]) == (
        "node", 404, "Not Found",
    )  # fmt: skip


async def test_an_ivr_call_queued_and_answered_by_an_agent() -> None:
    call = _call(Caller("demo", "trunk", "carrier"), answered_at=1001.0, ended_at=1100.0,
                 hangup=Hangup("callee", 200, "BYE"))  # fmt: skip
    app = AppCall("ivr", "main", Party("+15551230000", "", "demo"), "+15559990000", 42,
                  answer=None, hangup=None)  # type: ignore[arg-type]  # fmt: skip
    ivr = {"ivr": "main", "digits": "2", "steps": ["welcome", "menu", "support"],
           "variables": {"account": "77"},
           "queue": {"result": "answered", "queue": "support", "waited": 12.25, "agent": "1002",
                     "destination": None}}  # fmt: skip
    app.variables["ivr"] = ivr
    app.connected = Connected("1002", "agent", "1002", "sip:1002@10.0.0.6", 1040.0, 3.5)
    call.app = app
    cdr = build_cdr(call, "node1", "+15551230000")
    assert cdr["app"] == "ivr" and cdr["ivr"] == ivr
    assert (cdr["queue"], cdr["wait"], cdr["agent"], cdr["callee"]) == (
        "support", 12.25, "1002", "1002",
    )  # fmt: skip
    assert (cdr["ring_time"], cdr["talk_time"], cdr["billsec"]) == (3.5, 60.0, 99.0)


async def test_the_queue_application_and_an_abandon() -> None:
    call = _call(Caller("demo", "trunk", "carrier"), answered_at=1000.5, ended_at=1030.0,
                 hangup=Hangup("caller", 200, "BYE"))  # fmt: skip
    app = AppCall("queue", "support", Party("+1555", "", "demo"), "+1999", 42,
                  answer=None, hangup=None)  # type: ignore[arg-type]  # fmt: skip
    app.variables["queue"] = {"result": "abandoned", "queue": "support", "waited": 29.5}
    call.app = app
    cdr = build_cdr(call, "node1", "+1555")
    assert (cdr["queue"], cdr["wait"], cdr["agent"], cdr["callee"]) == (
        "support", 29.5, None, None,
    )  # fmt: skip
    assert (cdr["talk_time"], cdr["billsec"]) == (0.0, 29.5)


def test_transfers_name_who_left_and_who_took_over() -> None:
    call = _call(
        Caller("demo", "trunk", "carrier"),
        legs=[
            LegEnd(
                "b",
                "agent demo/1001 sip:1001@h",
                "callee",
                200,
                "transferred (blind)",
                None,
                1010.0,
            ),
            LegEnd(
                "b",
                "agent demo/1002 sip:1002@h",
                "callee",
                200,
                "transferred (attended)",
                None,
                1020.0,
            ),
            LegEnd("a", "trunk demo/carrier", "caller", 200, "BYE", None, 1030.0),
            LegEnd(
                "b", "agent demo/1003 sip:1003@h", "node", 200, "BYE from the caller", None, 1030.0
            ),
        ],
    )
    assert transfers(call) == [
        {
            "at": 1010.0,
            "side": "b",
            "from": "agent demo/1001 sip:1001@h",
            "to": "agent demo/1002 sip:1002@h",
            "kind": "blind",
        },
        {
            "at": 1020.0,
            "side": "b",
            "from": "agent demo/1002 sip:1002@h",
            "to": "agent demo/1003 sip:1003@h",
            "kind": "attended",
        },
    ]


def test_hold_time_is_taken_out_of_the_talk_time() -> None:
    sdp = (
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n"
    )
    agent = Target("sip:1001@10.0.0.5", FLOW, "agent", "1001")
    call = _call(Caller("demo", "trunk", "carrier"), agent, answered_at=1000.0, ended_at=1100.0)
    call.holds.offered("b", sdp, 1020.0)
    call.holds.offered("b", sdp.replace(b"sendonly", b"sendrecv"), 1050.0)
    call.holds.offered("a", sdp, 1090.0)  # still on hold when the call ends
    cdr = build_cdr(call, "node1", "+1555")
    assert (cdr["hold_time"], cdr["talk_time"], cdr["billsec"]) == (40.0, 60.0, 100.0)
