"""The transaction layer, driven with a fake clock: `now` is whatever we pass."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.sip.flow import Flow
from switch.sip.message import Request, Response, make_response, parse_message
from switch.sip.timers import Timers
from switch.sip.transaction import (
    MACHINES,
    TU_INPUTS,
    AckReceived,
    AckTimeout,
    CancelReceived,
    ClientTransaction,
    Input,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    State,
    StrayResponse,
    TransactionError,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
    new_branch,
)

UDP = Flow("udp", ("192.0.2.10", 5060), ("192.0.2.1", 5060))
TCP = Flow("tcp", ("192.0.2.10", 5060), ("192.0.2.1", 5060), conn_id=7)


def request(
    method: str = "INVITE",
    branch: str | None = "z9hG4bKinv1",
    cseq: int = 1,
    via_host: str = "192.0.2.10",
    to_tag: str | None = None,
    cseq_method: str | None = None,
    route: str | None = None,
) -> Request:
    via = f"SIP/2.0/UDP {via_host}:5060" + (f";branch={branch}" if branch else "")
    headers: list[tuple[str, object]] = [
        ("Via", via),
        ("Max-Forwards", 70),
        ("From", "<sip:alice@example.com>;tag=a1"),
        ("To", "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")),
        ("Call-ID", "call-1@example.com"),
        ("CSeq", f"{cseq} {cseq_method or method}"),
    ]
    if route:
        headers.append(("Route", route))
    headers.append(("Content-Length", 0))
    return Request(method, "sip:bob@example.com", headers)


def wire(msg: Request | Response) -> Request | Response:
    """The message as the transport would hand it over: parsed from bytes."""
    return parse_message(bytes(msg))


def answer(req: Request, status: int, tag: str | None = "b2") -> Response:
    return make_response(req, status, to_tag=None if status == 100 else tag)


def ack_for(req: Request, resp: Response, branch: str | None = None) -> Request:
    """An ACK as a UAC sends it: same branch for a non-2xx, a new one for a 2xx."""
    via = req.top_via
    ack = Request(
        "ACK",
        req.uri_text,
        [
            ("Via", f"SIP/2.0/UDP {via.host}:{via.port}" + (f";branch={branch}" if branch else "")),
            ("Max-Forwards", 70),
            ("From", req.get("from")),
            ("To", resp.get("to")),
            ("Call-ID", req.call_id),
            ("CSeq", f"{req.cseq.number} ACK"),
            ("Content-Length", 0),
        ],
    )
    return wire(ack)  # type: ignore[return-value]


def drive(layer: TransactionLayer, until: float) -> tuple[list, list]:
    """Fire every deadline up to `until`: (time, bytes, flow) sent and (time, event)."""
    sent, events = [], []
    while (t := layer.next_deadline()) is not None and t <= until:
        layer.handle_timer(t)
        sent += [(t, data, flow) for data, flow in layer.datagrams_to_send()]
        events += [(t, event) for event in layer.events()]
    return sent, events


def assert_empty(layer: TransactionLayer) -> None:
    assert len(layer) == 0
    assert layer._client == {}
    assert layer._server == {}
    assert layer._server_2543 == {}
    assert layer._accepted == {}
    assert layer.next_deadline() is None
    assert layer._heap == [] and layer._stale == 0  # the stale count stayed true


# -- timers -------------------------------------------------------------------------


def test_timer_values_from_t1_t2_t4() -> None:
    t = Timers()
    assert (t.t1, t.t2, t.t4) == (0.5, 4.0, 5.0)
    assert (t.a, t.b, t.d, t.e, t.f, t.g, t.h) == (0.5, 32.0, 32.0, 0.5, 32.0, 0.5, 32.0)
    assert (t.i, t.j, t.k, t.l, t.m) == (5.0, 32.0, 5.0, 32.0, 32.0)
    assert Timers(t1=1.0).d == 64.0  # D outlives the server's 64*T1 retransmissions


def test_timer_durations_on_reliable_flows() -> None:
    t = Timers()
    assert [t.duration(x, True) for x in "AEG"] == [None, None, None]
    assert [t.duration(x, True) for x in "DIJK"] == [0.0, 0.0, 0.0, 0.0]
    assert [t.duration(x, True) for x in "BFHLM"] == [32.0] * 5
    assert [t.duration(x, False) for x in "DIJK"] == [32.0, 5.0, 32.0, 5.0]


def test_new_branch_has_the_cookie_and_is_fresh() -> None:
    branches = {new_branch() for _ in range(1000)}
    assert len(branches) == 1000
    assert all(b.startswith("z9hG4bK") and len(b) == 27 for b in branches)


# -- client transactions ----------------------------------------------------------------


def test_invite_client_retransmits_on_timer_a_and_times_out_on_b() -> None:
    layer = TransactionLayer()
    req = request(via_host="192.0.2.1")
    tx = layer.send_request(req, UDP, 0.0)
    assert layer.datagrams_to_send() == [(bytes(req), UDP)]
    assert tx.state is State.CALLING and tx.is_invite and tx.key == ("z9hG4bKinv1", "INVITE")
    sent, events = drive(layer, 100.0)
    assert [t for t, _, _ in sent] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(data == bytes(req) and flow == UDP for _, data, flow in sent)
    assert events == [(32.0, TransactionTimeout(tx)), (32.0, TransactionTerminated(tx))]
    assert tx.state is State.TERMINATED
    assert_empty(layer)


def test_non_invite_client_retransmits_capped_at_t2_and_times_out_on_f() -> None:
    layer = TransactionLayer()
    req = request("OPTIONS", via_host="192.0.2.1")
    tx = layer.send_request(req, UDP, 0.0)
    assert layer.datagrams_to_send() == [(bytes(req), UDP)]
    sent, events = drive(layer, 100.0)
    assert [t for t, _, _ in sent] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events == [(32.0, TransactionTimeout(tx)), (32.0, TransactionTerminated(tx))]
    assert_empty(layer)


def test_non_invite_client_in_proceeding_retransmits_every_t2_then_lingers_k() -> None:
    layer = TransactionLayer()
    req = request("BYE", via_host="192.0.2.1")
    tx = layer.send_request(req, UDP, 0.0)
    layer.datagrams_to_send()
    sent, _ = drive(layer, 1.0)
    trying = wire(answer(req, 100))
    layer.receive(trying, UDP, 1.0)
    assert tx.state is State.PROCEEDING
    assert layer.events() == [ResponseReceived(trying, tx)]
    more, _ = drive(layer, 30.0)
    sent += more
    assert [t for t, _, _ in sent] == [0.5, 1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    ok = wire(answer(req, 200))
    layer.receive(ok, UDP, 30.0)
    assert tx.state is State.COMPLETED and tx.last_response is ok
    assert layer.events() == [ResponseReceived(ok, tx)]
    layer.receive(wire(answer(req, 200)), UDP, 31.0)  # retransmission: absorbed
    assert layer.events() == []
    assert layer.next_deadline() == 35.0  # timer K = T4
    sent, events = drive(layer, 100.0)
    assert sent == [] and events == [(35.0, TransactionTerminated(tx))]
    assert_empty(layer)


def test_no_request_retransmissions_over_reliable_flows() -> None:
    layer = TransactionLayer()
    invite = layer.send_request(request(via_host="192.0.2.1"), TCP, 0.0)
    options = layer.send_request(request("OPTIONS", "z9hG4bKopt", via_host="192.0.2.1"), TCP, 0.0)
    assert len(layer.datagrams_to_send()) == 2
    sent, events = drive(layer, 100.0)
    assert sent == []
    assert events == [
        (32.0, TransactionTimeout(invite)),
        (32.0, TransactionTerminated(invite)),
        (32.0, TransactionTimeout(options)),
        (32.0, TransactionTerminated(options)),
    ]
    assert_empty(layer)


def test_non_invite_client_over_tcp_ends_with_the_final_response() -> None:
    layer = TransactionLayer()
    req = request("OPTIONS", via_host="192.0.2.1")
    tx = layer.send_request(req, TCP, 0.0)
    ok = wire(answer(req, 200))
    layer.receive(ok, TCP, 0.3)
    assert layer.events() == [ResponseReceived(ok, tx), TransactionTerminated(tx)]  # K = 0
    assert_empty(layer)


def test_invite_client_provisional_stops_retransmissions_and_timer_b() -> None:
    layer = TransactionLayer()
    req = request(via_host="192.0.2.1")
    tx = layer.send_request(req, UDP, 0.0)
    layer.datagrams_to_send()
    ringing = wire(answer(req, 180))
    layer.receive(ringing, UDP, 0.2)
    assert tx.state is State.PROCEEDING and tx.last_response is ringing
    assert layer.events() == [ResponseReceived(ringing, tx)]
    # An INVITE may ring for as long as the callee likes: no timer runs.
    assert layer.next_deadline() is None
    assert drive(layer, 1000.0) == ([], [])


def test_invite_client_acks_a_failure_itself_and_absorbs_its_retransmissions() -> None:
    layer = TransactionLayer()
    req = request(via_host="192.0.2.1", route="<sip:proxy.example.com;lr>")
    tx = layer.send_request(req, UDP, 0.0)
    layer.datagrams_to_send()
    busy = wire(answer(req, 486))
    layer.receive(busy, UDP, 1.0)
    assert tx.state is State.COMPLETED
    assert layer.events() == [ResponseReceived(busy, tx)]
    ack = (
        b"ACK sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv1\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:alice@example.com>;tag=a1\r\n"
        b"To: <sip:bob@example.com>;tag=b2\r\n"
        b"Call-ID: call-1@example.com\r\n"
        b"CSeq: 1 ACK\r\n"
        b"Route: <sip:proxy.example.com;lr>\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert layer.datagrams_to_send() == [(ack, UDP)]
    layer.receive(wire(answer(req, 486)), UDP, 1.6)  # the server did not see our ACK
    assert layer.datagrams_to_send() == [(ack, UDP)]
    assert layer.events() == []  # not passed up twice
    assert layer.next_deadline() == 33.0  # timer D = 32 s after the failure
    sent, events = drive(layer, 100.0)
    assert sent == [] and events == [(33.0, TransactionTerminated(tx))]
    assert_empty(layer)


def test_invite_client_failure_over_tcp_ends_at_once() -> None:
    layer = TransactionLayer()
    req = request(via_host="192.0.2.1")
    tx = layer.send_request(req, TCP, 0.0)
    layer.datagrams_to_send()
    layer.receive(wire(answer(req, 603)), TCP, 1.0)
    assert [type(e) for e in layer.events()] == [ResponseReceived, TransactionTerminated]
    assert tx.state is State.TERMINATED
    assert len(layer.datagrams_to_send()) == 1  # the ACK
    assert_empty(layer)


def test_invite_client_accepted_passes_every_2xx_up_until_timer_m() -> None:
    layer = TransactionLayer()
    req = request(via_host="192.0.2.1")
    tx = layer.send_request(req, UDP, 0.0)
    layer.datagrams_to_send()
    ok = wire(answer(req, 200))
    layer.receive(ok, UDP, 2.0)
    assert tx.state is State.ACCEPTED
    assert layer.events() == [ResponseReceived(ok, tx)]
    assert layer.datagrams_to_send() == []  # the TU ACKs a 2xx, not the transaction
    fork = wire(answer(req, 200, tag="fork2"))
    layer.receive(fork, UDP, 3.0)
    again = wire(answer(req, 200))
    layer.receive(again, UDP, 4.0)
    assert layer.events() == [ResponseReceived(fork, tx), ResponseReceived(again, tx)]
    assert layer.next_deadline() == 34.0  # timer M = 64*T1 after the first 2xx
    sent, events = drive(layer, 100.0)
    assert sent == [] and events == [(34.0, TransactionTerminated(tx))]
    late = wire(answer(req, 200))
    layer.receive(late, UDP, 40.0)
    assert layer.events() == [StrayResponse(late, UDP)]
    assert_empty(layer)


def test_stray_response_matches_no_transaction() -> None:
    layer = TransactionLayer()
    req = request(via_host="192.0.2.1")
    tx = layer.send_request(req, UDP, 0.0)
    stray = wire(answer(request(branch="z9hG4bKother", via_host="192.0.2.1"), 200))
    layer.receive(stray, UDP, 1.0)
    # Same branch, other method: a response to a CANCEL we never sent.
    cancel_resp = wire(answer(request("CANCEL", via_host="192.0.2.1"), 200))
    layer.receive(cancel_resp, UDP, 1.0)
    assert layer.events() == [StrayResponse(stray, UDP), StrayResponse(cancel_resp, UDP)]
    assert tx.state is State.CALLING


def test_transport_error_ends_client_transactions_on_that_flow() -> None:
    layer = TransactionLayer()
    on_tcp = layer.send_request(request(via_host="192.0.2.1"), TCP, 0.0)
    on_udp = layer.send_request(request("OPTIONS", "z9hG4bKo", via_host="192.0.2.1"), UDP, 0.0)
    layer.transport_error(TCP, 1.0)
    assert layer.events() == [TransportError(on_tcp), TransactionTerminated(on_tcp)]
    assert on_udp.state is State.TRYING and len(layer) == 1


def test_send_request_refuses_tu_mistakes() -> None:
    layer = TransactionLayer()
    with pytest.raises(TransactionError, match="ACK is not a transaction"):
        layer.send_request(request("ACK"), UDP, 0.0)
    with pytest.raises(TransactionError, match="lacks z9hG4bK"):
        layer.send_request(request(branch="1234"), UDP, 0.0)
    with pytest.raises(TransactionError, match="CSeq method INVITE is not BYE"):
        layer.send_request(request("BYE", cseq_method="INVITE"), UDP, 0.0)
    layer.send_request(request(), UDP, 0.0)
    with pytest.raises(TransactionError, match="branch z9hG4bKinv1 exists"):
        layer.send_request(request(), UDP, 0.0)


# -- server transactions ------------------------------------------------------------------


def test_invite_server_answers_100_trying_at_once() -> None:
    layer = TransactionLayer()
    invite = wire(request())
    layer.receive(invite, UDP, 0.0)
    [event] = layer.events()
    assert isinstance(event, RequestReceived)
    tx = event.transaction
    assert (event.request, event.flow) == (invite, UDP)
    assert tx.state is State.PROCEEDING and tx.key == ("z9hG4bKinv1", "192.0.2.10", 5060, "INVITE")
    trying = (
        b"SIP/2.0 100 Trying\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKinv1\r\n"
        b"From: <sip:alice@example.com>;tag=a1\r\n"
        b"To: <sip:bob@example.com>\r\n"
        b"Call-ID: call-1@example.com\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert layer.datagrams_to_send() == [(trying, UDP)]
    # A retransmitted INVITE gets the last response again, and no new event.
    layer.receive(wire(request()), UDP, 0.5)
    assert layer.datagrams_to_send() == [(trying, UDP)]
    ringing = answer(invite, 180)
    layer.send_response(ringing, 1.0)
    assert layer.datagrams_to_send() == [(bytes(ringing), UDP)]
    layer.receive(wire(request()), UDP, 1.5)
    assert layer.datagrams_to_send() == [(bytes(ringing), UDP)]
    assert layer.events() == []
    assert layer.next_deadline() is None  # Proceeding waits for the TU


def test_invite_server_failure_retransmits_until_timer_h() -> None:
    layer = TransactionLayer()
    invite = wire(request())
    layer.receive(invite, UDP, 0.0)
    [event] = layer.events()
    layer.datagrams_to_send()
    busy = answer(invite, 486)
    layer.send_response(busy, 0.0)
    assert layer.datagrams_to_send() == [(bytes(busy), UDP)]
    sent, events = drive(layer, 100.0)
    assert [t for t, _, _ in sent] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(data == bytes(busy) for _, data, _ in sent)
    tx = event.transaction
    assert events == [(32.0, AckTimeout(tx)), (32.0, TransactionTerminated(tx))]
    assert_empty(layer)


def test_invite_server_absorbs_ack_to_failure_then_waits_timer_i() -> None:
    layer = TransactionLayer()
    invite = wire(request())
    layer.receive(invite, UDP, 0.0)
    [event] = layer.events()
    tx = event.transaction
    busy = answer(invite, 486)
    layer.send_response(busy, 0.0)
    drive(layer, 2.0)
    layer.datagrams_to_send()
    ack = ack_for(invite, busy, branch="z9hG4bKinv1")
    layer.receive(ack, UDP, 2.0)
    assert tx.state is State.CONFIRMED
    assert layer.events() == []  # the ACK to a failure stays in the transaction
    layer.receive(ack_for(invite, busy, branch="z9hG4bKinv1"), UDP, 3.0)
    layer.receive(wire(request()), UDP, 3.0)  # a stale INVITE: ignored and counted
    assert layer.events() == [] and layer.datagrams_to_send() == []
    assert layer.ignored[("INVITE server", "Confirmed", "retransmitted request")] == 1
    sent, events = drive(layer, 100.0)
    assert sent == []  # G stopped at the ACK
    assert events == [(7.0, TransactionTerminated(tx))]  # timer I = T4
    assert_empty(layer)


def test_invite_server_over_tcp_sends_once_and_ends_at_the_ack() -> None:
    layer = TransactionLayer()
    invite = wire(request())
    layer.receive(invite, TCP, 0.0)
    [event] = layer.events()
    busy = answer(invite, 480)
    layer.send_response(busy, 0.0)
    assert len(layer.datagrams_to_send()) == 2  # 100 Trying and 480
    assert layer.next_deadline() == 32.0  # H only: no G on TCP
    layer.receive(ack_for(invite, busy, branch="z9hG4bKinv1"), TCP, 1.0)
    assert layer.events() == [TransactionTerminated(event.transaction)]  # timer I = 0
    assert layer.datagrams_to_send() == []
    assert_empty(layer)


def test_invite_server_retransmits_2xx_from_accepted_until_the_ack() -> None:
    layer = TransactionLayer()
    invite = wire(request())
    layer.receive(invite, UDP, 0.0)
    [event] = layer.events()
    tx = event.transaction
    layer.datagrams_to_send()
    ok = answer(invite, 200)
    layer.send_response(ok, 0.0)
    assert tx.state is State.ACCEPTED
    assert layer.datagrams_to_send() == [(bytes(ok), UDP)]
    sent, _ = drive(layer, 8.0)
    assert [t for t, _, _ in sent] == [0.5, 1.5, 3.5, 7.5]
    assert all(data == bytes(ok) for _, data, _ in sent)
    layer.receive(wire(request()), UDP, 8.0)  # RFC 6026: absorbed, no new request
    assert layer.datagrams_to_send() == [] and layer.events() == []
    ack = ack_for(invite, ok, branch="z9hG4bKack1")  # an ACK to a 2xx has its own branch
    layer.receive(ack, UDP, 9.0)
    assert layer.events() == [AckReceived(ack, UDP, tx)]
    assert tx.state is State.ACCEPTED
    sent, events = drive(layer, 100.0)
    assert sent == []
    assert events == [(32.0, TransactionTerminated(tx))]  # timer L, no AckTimeout
    late_ack = ack_for(invite, ok, branch="z9hG4bKack1")
    layer.receive(late_ack, UDP, 40.0)
    assert layer.events() == [AckReceived(late_ack, UDP, None)]
    assert_empty(layer)


def test_invite_server_without_ack_to_2xx_reports_ack_timeout_at_l() -> None:
    layer = TransactionLayer()
    invite = wire(request())
    layer.receive(invite, UDP, 0.0)
    [event] = layer.events()
    layer.send_response(answer(invite, 200), 0.0)
    layer.datagrams_to_send()
    sent, events = drive(layer, 100.0)
    assert [t for t, _, _ in sent] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    tx = event.transaction
    assert events == [(32.0, AckTimeout(tx)), (32.0, TransactionTerminated(tx))]
    assert_empty(layer)


def test_2xx_is_retransmitted_over_tcp_too() -> None:
    # RFC 3261 §13.3.1.4: hops beyond the TCP one may be UDP.
    layer = TransactionLayer()
    invite = wire(request())
    layer.receive(invite, TCP, 0.0)
    layer.send_response(answer(invite, 200), 0.0)
    layer.datagrams_to_send()
    sent, _ = drive(layer, 4.0)
    assert [(t, flow) for t, _, flow in sent] == [(0.5, TCP), (1.5, TCP), (3.5, TCP)]


def test_non_invite_server_answers_retransmissions_with_the_last_response() -> None:
    layer = TransactionLayer()
    req = wire(request("REGISTER", "z9hG4bKreg"))
    layer.receive(req, UDP, 0.0)
    [event] = layer.events()
    tx = event.transaction
    assert tx.state is State.TRYING and not tx.is_invite
    assert layer.datagrams_to_send() == []  # no 100 Trying for non-INVITE
    layer.receive(wire(request("REGISTER", "z9hG4bKreg")), UDP, 0.5)
    assert layer.datagrams_to_send() == [] and layer.events() == []
    ok = answer(req, 200)
    layer.send_response(ok, 1.0)
    assert tx.state is State.COMPLETED
    assert layer.datagrams_to_send() == [(bytes(ok), UDP)]
    layer.receive(wire(request("REGISTER", "z9hG4bKreg")), UDP, 2.0)
    assert layer.datagrams_to_send() == [(bytes(ok), UDP)]
    sent, events = drive(layer, 100.0)
    assert sent == [] and events == [(33.0, TransactionTerminated(tx))]  # timer J
    assert_empty(layer)


def test_non_invite_server_over_tcp_ends_with_its_final_response() -> None:
    layer = TransactionLayer()
    req = wire(request("OPTIONS", "z9hG4bKo"))
    layer.receive(req, TCP, 0.0)
    [event] = layer.events()
    layer.send_response(answer(req, 200), 0.0)
    assert layer.events() == [TransactionTerminated(event.transaction)]
    assert_empty(layer)


def test_cancel_of_a_live_invite_is_answered_200() -> None:
    layer = TransactionLayer()
    invite = wire(request())
    layer.receive(invite, UDP, 0.0)
    [event] = layer.events()
    inv_tx = event.transaction
    layer.send_response(answer(invite, 180, tag="b2"), 0.5)
    layer.datagrams_to_send()
    cancel = wire(request("CANCEL"))
    layer.receive(cancel, UDP, 1.0)
    assert layer.events() == [CancelReceived(cancel, UDP, inv_tx)]
    [(data, flow)] = layer.datagrams_to_send()
    resp = parse_message(data)
    assert isinstance(resp, Response) and flow == UDP
    assert (resp.status, resp.cseq, resp.to.tag) == (200, (1, "CANCEL"), "b2")
    # A retransmitted CANCEL gets the same 200; the TU then ends the INVITE.
    layer.receive(wire(request("CANCEL")), UDP, 1.5)
    assert layer.datagrams_to_send() == [(data, UDP)]
    assert layer.events() == []
    layer.send_response(answer(invite, 487, tag="b2"), 1.0)
    assert inv_tx.state is State.COMPLETED


def test_cancel_without_invite_is_answered_481() -> None:
    layer = TransactionLayer()
    cancel = wire(request("CANCEL", "z9hG4bKnone"))
    layer.receive(cancel, UDP, 0.0)
    assert layer.events() == [CancelReceived(cancel, UDP, None)]
    [(data, _)] = layer.datagrams_to_send()
    resp = parse_message(data)
    assert isinstance(resp, Response)
    assert (resp.status, resp.reason, resp.cseq.method) == (
        481,
        "Call/Transaction Does Not Exist",
        "CANCEL",
    )
    assert resp.to.tag  # a UAS always tags its non-100 responses


def test_cancel_of_an_invite_from_another_sent_by_does_not_match() -> None:
    layer = TransactionLayer()
    layer.receive(wire(request()), UDP, 0.0)
    layer.events()
    layer.datagrams_to_send()
    cancel = wire(request("CANCEL", via_host="198.51.100.7"))
    layer.receive(cancel, UDP, 0.0)
    assert layer.events() == [CancelReceived(cancel, UDP, None)]
    [(data, _)] = layer.datagrams_to_send()
    assert data.startswith(b"SIP/2.0 481 ")


def test_ack_to_2xx_with_no_transaction_goes_to_the_tu() -> None:
    layer = TransactionLayer()
    invite = request()
    ack = ack_for(invite, answer(invite, 200), branch="z9hG4bKack9")
    layer.receive(ack, UDP, 0.0)
    assert layer.events() == [AckReceived(ack, UDP, None)]
    assert layer.datagrams_to_send() == [] and len(layer) == 0


def test_rfc2543_requests_match_without_a_cookie() -> None:
    layer = TransactionLayer()
    for branch in ("1234", None):
        invite = wire(request(branch=branch))
        layer.receive(invite, UDP, 0.0)
        [event] = layer.events()
        tx = event.transaction
        trying = layer.datagrams_to_send()
        layer.receive(wire(request(branch=branch)), UDP, 0.5)  # retransmission
        assert layer.events() == [] and layer.datagrams_to_send() == trying
        busy = answer(invite, 486, tag="b2")
        layer.send_response(busy, 1.0)  # found without a branch
        assert tx.state is State.COMPLETED
        layer.datagrams_to_send()
        # The ACK carries the To tag of our 486, which the INVITE lacked.
        layer.receive(ack_for(invite, busy, branch=branch), UDP, 2.0)
        assert tx.state is State.CONFIRMED and layer.events() == []
        drive(layer, 100.0)
        assert_empty(layer)


def test_rfc2543_ack_with_a_foreign_to_tag_is_not_absorbed() -> None:
    layer = TransactionLayer()
    invite = wire(request(branch=None))
    layer.receive(invite, UDP, 0.0)
    [event] = layer.events()
    layer.send_response(answer(invite, 486, tag="b2"), 0.0)
    ack = ack_for(invite, answer(invite, 486, tag="zz"))
    layer.receive(ack, UDP, 1.0)
    assert event.transaction.state is State.COMPLETED
    assert layer.events() == [AckReceived(ack, UDP, None)]


def test_rfc2543_requests_differing_in_cseq_are_two_transactions() -> None:
    layer = TransactionLayer()
    layer.receive(wire(request(branch=None, cseq=1)), UDP, 0.0)
    layer.receive(wire(request(branch=None, cseq=2)), UDP, 0.0)
    layer.receive(wire(request("CANCEL", branch=None, cseq=2)), UDP, 0.0)
    events = layer.events()
    assert [type(e) for e in events] == [RequestReceived, RequestReceived, CancelReceived]
    assert events[2].invite_transaction is events[1].transaction


def test_tu_response_for_unknown_transaction_is_a_clear_error() -> None:
    layer = TransactionLayer()
    with pytest.raises(TransactionError, match="no server transaction for 200 to INVITE"):
        layer.send_response(answer(request(), 200), 0.0)
    req = wire(request("OPTIONS", "z9hG4bKo"))
    layer.receive(req, TCP, 0.0)
    layer.send_response(answer(req, 200), 0.0)  # ends at once on TCP
    with pytest.raises(TransactionError, match="it ended or never existed"):
        layer.send_response(answer(req, 200), 0.1)


def test_tu_response_in_the_wrong_state_is_a_clear_error() -> None:
    layer = TransactionLayer()
    invite = wire(request())
    layer.receive(invite, UDP, 0.0)
    layer.send_response(answer(invite, 486), 0.0)
    with pytest.raises(TransactionError, match="INVITE server transaction in Completed cannot"):
        layer.send_response(answer(invite, 200), 0.1)


# -- every (state, input) pair ------------------------------------------------------------


def _in_state(machine: str, state: State) -> tuple[TransactionLayer, object]:
    """A fresh layer with one transaction of `machine` in `state`, over UDP."""
    layer = TransactionLayer()
    if machine.endswith("client"):
        invite = machine == "INVITE client"
        req = request("INVITE" if invite else "OPTIONS", via_host="192.0.2.1")
        tx = layer.send_request(req, UDP, 0.0)
        responses = {
            State.PROCEEDING: [180],
            State.COMPLETED: [486 if invite else 200],
            State.ACCEPTED: [200],
        }
        for status in responses.get(state, []):
            layer.receive(wire(answer(req, status)), UDP, 0.0)
    else:
        invite = machine == "INVITE server"
        req = wire(request("INVITE" if invite else "OPTIONS"))
        layer.receive(req, UDP, 0.0)
        tx = layer.events()[0].transaction
        statuses = {
            State.PROCEEDING: [180] if invite else [100],
            State.COMPLETED: [486] if invite else [200],
            State.CONFIRMED: [486],
            State.ACCEPTED: [200],
            State.TERMINATED: [486] if invite else [200],
        }
        for status in statuses.get(state, []):
            layer.send_response(answer(req, status), 0.0)
        if state is State.CONFIRMED:
            layer.receive(ack_for(req, tx.last_response, "z9hG4bKinv1"), UDP, 0.0)
    if state is State.TERMINATED:
        drive(layer, 100.0)
    layer.datagrams_to_send()
    layer.events()
    assert tx.state is state
    return layer, tx


def _message_for(inp: Input, tx: object) -> Request | Response | None:
    req = tx.request
    status = {
        Input.TU_1XX: 180,
        Input.TU_2XX: 200,
        Input.TU_FINAL: 486,
        Input.RECV_1XX: 180,
        Input.RECV_2XX: 200,
        Input.RECV_FINAL: 486,
    }
    if inp in status:
        return answer(req, status[inp])
    if inp in (Input.REQUEST, Input.RETRANSMISSION):
        return req
    if inp is Input.ACK:
        return ack_for(req, tx.last_response or answer(req, 486), "z9hG4bKinv1")
    return None


PAIRS = [
    (name, state, inp)
    for name, machine in MACHINES.items()
    for state in sorted(machine.states, key=lambda s: s.value)
    for inp in Input
]


@pytest.mark.parametrize(("name", "state", "inp"), PAIRS, ids=lambda x: getattr(x, "value", x))
def test_every_state_input_pair(name: str, state: State, inp: Input) -> None:
    layer, tx = _in_state(name, state)
    row = MACHINES[name].table.get((state, inp))
    msg = _message_for(inp, tx)
    if row is not None:
        layer._step(tx, inp, 1.0, msg, UDP)
        assert tx.state is row[0]
        if row[0] is State.TERMINATED:
            assert_empty(layer)
    elif inp in TU_INPUTS:
        with pytest.raises(TransactionError, match=f"{name} transaction in {state.value}"):
            layer._step(tx, inp, 1.0, msg, UDP)
        assert tx.state is state
    else:
        layer._step(tx, inp, 1.0, msg, UDP)
        assert tx.state is state
        assert layer.ignored == {(name, state.value, inp.value): 1}
        assert layer.datagrams_to_send() == [] and layer.events() == []


def test_every_table_names_a_start_and_reaches_terminated() -> None:
    for machine in MACHINES.values():
        assert sum(1 for state, _ in machine.table if state is None) == 1
        assert State.TERMINATED in machine.states


# -- tables empty once every machine has ended -----------------------------------------------


def test_tables_empty_after_every_machine_terminates() -> None:
    layer = TransactionLayer()
    # Clients: INVITE failed, INVITE answered, OPTIONS answered, BYE timed out.
    inv_fail = request(branch="z9hG4bKc1", via_host="192.0.2.1")
    inv_ok = request(branch="z9hG4bKc2", via_host="192.0.2.1", cseq=2)
    opts = request("OPTIONS", "z9hG4bKc3", via_host="192.0.2.1")
    layer.send_request(inv_fail, UDP, 0.0)
    layer.send_request(inv_ok, UDP, 0.0)
    layer.send_request(opts, UDP, 0.0)
    layer.send_request(request("BYE", "z9hG4bKc4", via_host="192.0.2.1"), UDP, 0.0)
    layer.receive(wire(answer(inv_fail, 486)), UDP, 1.0)
    layer.receive(wire(answer(inv_ok, 200)), UDP, 1.0)
    layer.receive(wire(answer(opts, 200)), UDP, 1.0)
    # Servers: INVITE failed and ACKed, INVITE answered and ACKed, INVITE
    # answered and never ACKed, REGISTER answered, CANCEL of nothing, RFC 2543.
    for branch, status in (("z9hG4bKs1", 486), ("z9hG4bKs2", 200), ("z9hG4bKs3", 200)):
        inv = wire(request(branch=branch, cseq=int(branch[-1])))
        layer.receive(inv, UDP, 1.0)
        resp = answer(inv, status, tag=branch)
        layer.send_response(resp, 1.0)
        if branch != "z9hG4bKs3":
            ack_branch = branch if status >= 300 else branch + "ack"
            layer.receive(ack_for(inv, resp, ack_branch), UDP, 2.0)
    reg = wire(request("REGISTER", "z9hG4bKs4"))
    layer.receive(reg, UDP, 1.0)
    layer.send_response(answer(reg, 200), 1.0)
    layer.receive(wire(request("CANCEL", "z9hG4bKs5")), UDP, 1.0)
    old = wire(request(branch=None, cseq=9))
    layer.receive(old, UDP, 1.0)
    layer.send_response(answer(old, 404), 1.0)
    assert len(layer) == 10
    assert len(layer._accepted) == 2 and len(layer._server_2543) == 1
    _, events = drive(layer, 1000.0)
    ended = [e for _, e in events if isinstance(e, TransactionTerminated)]
    assert len(ended) == 10
    assert all(e.transaction.state is State.TERMINATED for e in ended)
    assert_empty(layer)


def test_cancelled_timers_do_not_pile_up_in_the_heap() -> None:
    layer = TransactionLayer()
    for n in range(3000):
        req = request("OPTIONS", f"z9hG4bK{n}", via_host="192.0.2.1")
        layer.send_request(req, UDP, 0.0)
        layer.receive(wire(answer(req, 200)), UDP, 0.1)
    # Each answered OPTIONS left E and F behind: the heap was rebuilt.
    assert len(layer._heap) < 2 * 3000
    assert layer._stale == sum(not layer._live(entry) for entry in layer._heap)
    assert layer.next_deadline() == pytest.approx(5.1)  # the first timer K
    drive(layer, 10.0)
    assert_empty(layer)


# -- random walks -------------------------------------------------------------------------------

TU_INPUT = {1: Input.TU_1XX, 2: Input.TU_2XX} | dict.fromkeys(range(3, 7), Input.TU_FINAL)

SERVER_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("retransmit"), st.none()),
        st.tuples(st.just("ack"), st.none()),
        st.tuples(st.just("ack2xx"), st.none()),
        st.tuples(st.just("cancel"), st.none()),
        st.tuples(st.just("tu"), st.sampled_from([100, 180, 183, 200, 202, 302, 486, 503, 603])),
        st.tuples(st.just("advance"), st.floats(0.0, 10.0)),
        st.tuples(st.just("error"), st.none()),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(method=st.sampled_from(["INVITE", "MESSAGE"]), tcp=st.booleans(), ops=SERVER_OPS)
def test_server_random_walk_never_crashes_and_cleans_up(method, tcp, ops) -> None:
    flow = TCP if tcp else UDP
    table = MACHINES["INVITE server" if method == "INVITE" else "non-INVITE server"].table
    layer = TransactionLayer()
    req = wire(request(method))
    layer.receive(req, flow, 0.0)
    tx = layer.events()[0].transaction
    now = 0.0
    last_tu: Response | None = None
    for op, arg in ops:
        if op == "retransmit":
            layer.receive(wire(request(method)), flow, now)
        elif op == "ack" and last_tu is not None:
            layer.receive(ack_for(req, last_tu, "z9hG4bKinv1"), flow, now)
        elif op == "ack2xx" and last_tu is not None:
            layer.receive(ack_for(req, last_tu, "z9hG4bKother"), flow, now)
        elif op == "cancel":
            layer.receive(wire(request("CANCEL")), flow, now)
        elif op == "tu":
            resp = answer(req, arg)
            # After a transport error a retransmission starts a new transaction.
            current = layer._server.get(tx.key)
            allowed = current is not None and (current.state, TU_INPUT[arg // 100]) in table
            try:
                layer.send_response(resp, now)
                last_tu = resp
                assert allowed
            except TransactionError:
                assert not allowed
        elif op == "advance":
            now += arg
            layer.handle_timer(now)
        elif op == "error":
            layer.transport_error(flow, now)
        for _, out_flow in layer.datagrams_to_send():
            assert out_flow == flow
    for live in list(layer._server.values()):
        if live.state in (State.TRYING, State.PROCEEDING):  # waiting for the TU
            layer.send_response(answer(live.request, 500), now)
    drive(layer, now + 1000.0)
    assert tx.state is State.TERMINATED
    assert_empty(layer)


CLIENT_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("response"), st.sampled_from([100, 180, 200, 404, 486, 503])),
        st.tuples(st.just("advance"), st.floats(0.0, 10.0)),
        st.tuples(st.just("error"), st.none()),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(method=st.sampled_from(["INVITE", "BYE"]), tcp=st.booleans(), ops=CLIENT_OPS)
def test_client_random_walk_never_crashes_and_cleans_up(method, tcp, ops) -> None:
    flow = TCP if tcp else UDP
    layer = TransactionLayer()
    req = request(method, via_host="192.0.2.1")
    tx = layer.send_request(req, flow, 0.0)
    now = 0.0
    for op, arg in ops:
        if op == "response":
            layer.receive(wire(answer(req, arg)), flow, now)
        elif op == "advance":
            now += arg
            layer.handle_timer(now)
        else:
            layer.transport_error(flow, now)
        for event in layer.events():
            if isinstance(event, ResponseReceived):
                assert event.transaction is tx
    if tx.state is State.PROCEEDING and tx.is_invite:
        layer.receive(wire(answer(req, 487)), flow, now)  # only a final ends ringing
    drive(layer, now + 1000.0)
    assert tx.state is State.TERMINATED
    assert isinstance(tx, ClientTransaction) and not isinstance(tx, ServerTransaction)
    assert_empty(layer)
