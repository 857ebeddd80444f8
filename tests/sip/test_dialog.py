"""Dialogs (RFC 3261 §12-15): creation, routing, CSeq, target refresh, matching.

Messages are built as text and parsed, the way they arrive from the network.
Topology: Alice (UAC) -> P1 -> P2 -> P3 -> Bob (UAS). Each proxy adds its
Record-Route on top, so both ends see "P3, P2, P1".
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from switch.sip.address import parse_address
from switch.sip.dialog import (
    Dialog,
    DialogError,
    DialogId,
    DialogState,
    DialogTable,
    Role,
    check_in_dialog_request,
)
from switch.sip.errors import ParseError
from switch.sip.message import Request, Response, make_response, parse_message
from switch.sip.uri import parse_uri

CALL_ID = "c0ffee@10.0.0.1"
ALICE_CONTACT = "sip:alice@10.0.0.1:5060"
BOB_CONTACT = "sip:bob@10.0.0.2:5070;transport=tcp"
P1, P2, P3 = "<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>", "<sip:p3.example.com;lr>"
# Record-Route as both ends see it: the proxy nearest Bob on top.
RR = {0: [], 1: [P1], 3: [P3, P2, P1]}


def request(
    method: str = "INVITE",
    cseq: int = 1,
    to_tag: str | None = None,
    from_tag: str = "a1",
    contact: str | None = ALICE_CONTACT,
    record_route: Sequence[str] = (),
    uri: str = "sip:bob@example.com",
    cseq_method: str | None = None,
) -> Request:
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1",
        "Max-Forwards: 70",
        f"From: Alice <sip:alice@example.com>;tag={from_tag}",
        f"To: {to}",
        f"Call-ID: {CALL_ID}",
        f"CSeq: {cseq} {cseq_method or method}",
    ]
    if contact:
        lines.append(f"Contact: <{contact}>")
    lines += [f"Record-Route: {rr}" for rr in record_route]
    lines += ["Content-Length: 0", "", ""]
    msg = parse_message("\r\n".join(lines).encode())
    assert isinstance(msg, Request)
    return msg


def response(
    req: Request,
    status: int,
    to_tag: str | None = "b1",
    contact: str | None = BOB_CONTACT,
    record_route: Sequence[str] = (),
) -> Response:
    resp = make_response(req, status, to_tag=to_tag)
    if contact:
        resp.add("Contact", f"<{contact}>")
    for rr in record_route:
        resp.add("Record-Route", rr)
    msg = parse_message(bytes(resp))
    assert isinstance(msg, Response)
    return msg


def uac_dialog(record_route: Sequence[str] = (), status: int = 200) -> Dialog:
    invite = request()
    return Dialog.from_uac_response(invite, response(invite, status, record_route=record_route))


def uas_dialog(record_route: Sequence[str] = ()) -> Dialog:
    return Dialog.from_uas_request(
        request(record_route=record_route), "b1", local_target=parse_uri(BOB_CONTACT)
    )


# -- creation ---------------------------------------------------------------------


def test_dialog_id_is_frozen_and_hashable():
    a = DialogId(CALL_ID, "a1", "b1")
    assert a == DialogId(CALL_ID, "a1", "b1")
    assert {a: 1}[DialogId(CALL_ID, "a1", "b1")] == 1
    with pytest.raises(AttributeError):
        a.local_tag = "x"  # type: ignore[misc]


def test_uac_dialog_from_2xx():
    invite = request(cseq=7)
    d = Dialog.from_uac_response(invite, response(invite, 200))
    assert d.id == DialogId(CALL_ID, "a1", "b1")
    assert d.role is Role.UAC
    assert d.state is DialogState.CONFIRMED
    assert str(d.local_uri) == "Alice <sip:alice@example.com>;tag=a1"
    assert str(d.remote_uri) == "<sip:bob@example.com>;tag=b1"
    assert str(d.remote_target) == BOB_CONTACT
    assert d.local_seq == 7
    assert d.remote_seq is None
    assert d.secure is False
    assert str(d.local_target) == ALICE_CONTACT


def test_uac_local_seq_can_be_given():
    invite = request(cseq=7)
    d = Dialog.from_uac_response(invite, response(invite, 200), local_seq=9)
    assert d.local_seq == 9
    assert d.create_request("BYE").cseq == (10, "BYE")


def test_uas_dialog_from_request():
    d = Dialog.from_uas_request(request(cseq=42), "b1")
    assert d.id == DialogId(CALL_ID, "b1", "a1")
    assert d.role is Role.UAS
    assert d.state is DialogState.EARLY
    assert str(d.local_uri) == "<sip:bob@example.com>;tag=b1"
    assert str(d.remote_uri) == "Alice <sip:alice@example.com>;tag=a1"
    assert str(d.remote_target) == ALICE_CONTACT
    assert d.remote_seq == 42
    assert d.local_seq is None
    assert d.local_target is None


@pytest.mark.parametrize("count", [0, 1, 3])
def test_uac_route_set_is_record_route_reversed(count):
    d = uac_dialog(RR[count])
    expected = {0: [], 1: [P1], 3: [P1, P2, P3]}[count]
    assert [str(a) for a in d.route_set] == expected


@pytest.mark.parametrize("count", [0, 1, 3])
def test_uas_route_set_is_record_route_in_order(count):
    d = uas_dialog(RR[count])
    expected = {0: [], 1: [P1], 3: [P3, P2, P1]}[count]
    assert [str(a) for a in d.route_set] == expected


def test_route_set_from_one_comma_separated_record_route():
    d = uac_dialog([f"{P3}, {P2}, {P1}"])
    assert [str(a) for a in d.route_set] == [P1, P2, P3]


def test_sips_request_uri_makes_a_secure_dialog():
    invite = request(uri="sips:bob@example.com")
    assert Dialog.from_uac_response(invite, response(invite, 200)).secure is True
    assert Dialog.from_uas_request(invite, "b1").secure is True


def test_2xx_without_contact_is_a_parse_error():
    invite = request()
    with pytest.raises(ParseError, match="Contact"):
        Dialog.from_uac_response(invite, response(invite, 200, contact=None))


def test_request_without_contact_is_a_parse_error():
    with pytest.raises(ParseError, match="Contact"):
        Dialog.from_uas_request(request(contact=None), "b1")


@pytest.mark.parametrize(("status", "to_tag"), [(100, "b1"), (180, None), (486, "b1"), (302, "b1")])
def test_responses_that_create_no_dialog(status, to_tag):
    invite = request()
    with pytest.raises(ValueError, match="creates no dialog"):
        Dialog.from_uac_response(invite, response(invite, status, to_tag=to_tag))


# -- building requests ------------------------------------------------------------


def test_loose_routing_request_header_by_header():
    d = uac_dialog(RR[3])
    bye = d.create_request("BYE")
    assert bye.method == "BYE"
    assert bye.uri_text == BOB_CONTACT
    assert bye.headers() == [
        ("Max-Forwards", "70"),
        ("Route", P1),
        ("Route", P2),
        ("Route", P3),
        ("From", "Alice <sip:alice@example.com>;tag=a1"),
        ("To", "<sip:bob@example.com>;tag=b1"),
        ("Call-ID", CALL_ID),
        ("CSeq", "2 BYE"),
        ("Content-Length", "0"),
    ]
    assert "via" not in bye  # the transaction adds it


def test_uas_loose_routing_uses_record_route_order():
    d = uas_dialog(RR[3])
    d.response_sent(response(request(), 200))
    bye = d.create_request("BYE")
    assert bye.uri_text == ALICE_CONTACT
    assert bye.get_all("Route") == [P3, P2, P1]
    assert bye.get("From") == "<sip:bob@example.com>;tag=b1"
    assert bye.get("To") == "Alice <sip:alice@example.com>;tag=a1"
    assert bye.cseq == (1, "BYE")


def test_no_route_set_sends_to_the_remote_target_without_route():
    d = uac_dialog()
    info = d.create_request("INFO")
    assert info.uri_text == BOB_CONTACT
    assert "route" not in info
    assert d.next_hop() == parse_uri(BOB_CONTACT)


def test_strict_routing_request_header_by_header():
    strict = "<sip:strict.example.com;transport=tcp>"
    # Bob's side sees the strict router on top; Alice reverses, so it is last
    # in the response and first in her route set.
    d = uac_dialog([P2, strict])
    assert [str(a) for a in d.route_set] == [strict, P2]
    bye = d.create_request("BYE")
    assert bye.uri_text == "sip:strict.example.com;transport=tcp"
    assert bye.headers() == [
        ("Max-Forwards", "70"),
        ("Route", P2),
        ("Route", f"<{BOB_CONTACT}>"),
        ("From", "Alice <sip:alice@example.com>;tag=a1"),
        ("To", "<sip:bob@example.com>;tag=b1"),
        ("Call-ID", CALL_ID),
        ("CSeq", "2 BYE"),
        ("Content-Length", "0"),
    ]


def test_strict_route_loses_parameters_not_allowed_in_a_request_uri():
    d = uac_dialog(["<sip:strict.example.com;method=INVITE;maddr=10.9.9.9?X-Foo=1>"])
    bye = d.create_request("BYE")
    assert bye.uri_text == "sip:strict.example.com;maddr=10.9.9.9"
    assert bye.get_all("Route") == [f"<{BOB_CONTACT}>"]


def test_next_hop_is_the_first_route_for_loose_and_strict():
    assert str(uac_dialog(RR[3]).next_hop()) == "sip:p1.example.com;lr"
    assert str(uac_dialog(["<sip:strict.example.com>"]).next_hop()) == "sip:strict.example.com"
    assert str(uac_dialog().next_hop()) == BOB_CONTACT


def test_cseq_increments_per_request():
    d = uac_dialog()
    assert [d.create_request(m).cseq for m in ("INFO", "UPDATE", "BYE")] == [
        (2, "INFO"),
        (3, "UPDATE"),
        (4, "BYE"),
    ]
    assert d.local_seq == 4


def test_uas_first_request_starts_at_one():
    d = uas_dialog()
    d.response_sent(response(request(), 200))
    assert d.create_request("INFO").cseq == (1, "INFO")
    assert d.create_request("BYE").cseq == (2, "BYE")


def test_ack_reuses_the_invite_cseq_and_does_not_advance():
    d = uac_dialog(RR[1])
    reinvite = d.create_request("INVITE")
    assert reinvite.cseq == (2, "INVITE")
    ack = d.create_ack(reinvite.cseq.number)
    assert ack.method == "ACK"
    assert ack.uri_text == BOB_CONTACT
    assert ack.cseq == (2, "ACK")
    assert ack.get_all("Route") == [P1]
    assert d.local_seq == 2
    assert d.create_request("BYE").cseq == (3, "BYE")


@pytest.mark.parametrize("method", ["ACK", "CANCEL", "cancel"])
def test_ack_and_cancel_are_not_new_requests(method):
    d = uac_dialog()
    with pytest.raises(ValueError, match="not a new request"):
        d.create_request(method)
    assert d.local_seq == 1


def test_body_and_extra_headers():
    d = uac_dialog()
    sdp = b"v=0\r\n"
    req = d.create_request(
        "INVITE", headers=[("Supported", "timer")], body=sdp, content_type="application/sdp"
    )
    assert req.body == sdp
    assert req.get("Supported") == "timer"
    assert req.get("Content-Type") == "application/sdp"
    assert req.get("Content-Length") == str(len(sdp))


def test_target_refresh_requests_carry_our_contact():
    d = uac_dialog()
    assert d.create_request("INVITE").get("Contact") == f"<{ALICE_CONTACT}>"
    assert d.create_request("UPDATE").get("Contact") == f"<{ALICE_CONTACT}>"
    assert "contact" not in d.create_request("INFO")
    own = d.create_request("INVITE", headers=[("Contact", "<sip:other@10.0.0.9>")])
    assert own.get_all("Contact") == ["<sip:other@10.0.0.9>"]


@pytest.mark.parametrize("count", [0, 1, 3])
def test_created_requests_parse_back(count):
    d = uac_dialog(RR[count])
    req = d.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp")
    req.add("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-2", first=True)
    back = parse_message(bytes(req))
    assert isinstance(back, Request)
    assert back.method == "INVITE"
    assert back.uri == parse_uri(BOB_CONTACT)
    assert back.get_all("Route") == [P1, P2, P3][:count]
    assert back.top_via.branch == "z9hG4bK-2"
    assert back.from_.tag == "a1"
    assert back.to.tag == "b1"
    assert back.call_id == CALL_ID
    assert back.cseq == (2, "INVITE")
    assert back.max_forwards == 70
    assert back.contact[0].uri == parse_uri(ALICE_CONTACT)
    assert back.body == b"v=0\r\n"
    assert back.content_type == "application/sdp"


def test_strict_routed_request_parses_back():
    d = uac_dialog([P2, "<sip:strict.example.com>"])
    back = parse_message(bytes(d.create_request("BYE")))
    assert isinstance(back, Request)
    assert back.uri == parse_uri("sip:strict.example.com")
    assert [parse_address(r).uri for r in back.get_all("Route")] == [
        parse_uri("sip:p2.example.com;lr"),
        parse_uri(BOB_CONTACT),
    ]


# -- receiving requests -----------------------------------------------------------


def in_dialog(method: str, cseq: int, contact: str | None = None, **kw) -> Request:
    """A request from Alice to Bob inside the dialog (Bob's To tag b1)."""
    return request(method, cseq=cseq, to_tag="b1", contact=contact, **kw)


def test_received_requests_update_remote_seq():
    d = uas_dialog()
    d.receive_request(in_dialog("INFO", 2))
    assert d.remote_seq == 2
    d.receive_request(in_dialog("INFO", 10))  # gaps are allowed
    assert d.remote_seq == 10


@pytest.mark.parametrize("cseq", [1, 4, 5])
def test_out_of_order_cseq_is_500(cseq):
    d = uas_dialog()
    d.receive_request(in_dialog("INFO", 5))
    with pytest.raises(DialogError) as err:
        d.receive_request(in_dialog("INFO", cseq))
    assert (err.value.status, err.value.reason) == (500, "CSeq out of order")
    assert d.remote_seq == 5


def test_ack_and_cancel_repeat_the_invite_cseq():
    d = uas_dialog()
    d.receive_request(in_dialog("INVITE", 2))
    d.receive_request(in_dialog("ACK", 2))
    d.receive_request(in_dialog("CANCEL", 2))
    assert d.remote_seq == 2


def test_uac_dialog_accepts_any_first_cseq_from_the_callee():
    d = uac_dialog()
    bye = request("BYE", cseq=1, from_tag="b1", to_tag="a1", contact=None)
    d.receive_request(bye)
    assert d.remote_seq == 1


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_received_target_refresh_replaces_remote_target(method):
    d = uas_dialog()
    d.receive_request(in_dialog(method, 2, contact="sip:alice@192.0.2.7:5062"))
    assert d.remote_target == parse_uri("sip:alice@192.0.2.7:5062")
    assert d.create_request("INFO").uri_text == "sip:alice@192.0.2.7:5062"


def test_refresh_without_contact_keeps_the_target():
    d = uas_dialog()
    d.receive_request(in_dialog("UPDATE", 2, contact=None))
    assert str(d.remote_target) == ALICE_CONTACT


def test_non_refresh_request_does_not_move_the_target():
    d = uas_dialog()
    d.receive_request(in_dialog("INFO", 2, contact="sip:alice@192.0.2.7"))
    assert str(d.remote_target) == ALICE_CONTACT


def test_route_set_does_not_change_on_reinvite():
    d = uas_dialog(RR[1])
    d.receive_request(in_dialog("INVITE", 2, record_route=[P3]))
    assert [str(a) for a in d.route_set] == [P1]


def test_received_bye_terminates_and_later_requests_get_481():
    d = uas_dialog()
    d.response_sent(response(request(), 200))
    d.receive_request(in_dialog("BYE", 2))
    assert d.state is DialogState.TERMINATED
    with pytest.raises(DialogError) as err:
        d.receive_request(in_dialog("INFO", 3))
    assert err.value.status == 481
    d.receive_request(in_dialog("ACK", 1))  # never raises: nothing answers an ACK
    with pytest.raises(ValueError, match="terminated"):
        d.create_request("INFO")


# -- receiving responses ----------------------------------------------------------


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_2xx_to_our_refresh_replaces_remote_target(method):
    d = uac_dialog(RR[1])
    req = d.create_request(method)
    d.receive_response(response(req, 200, contact="sip:bob@192.0.2.9:5080"))
    assert d.remote_target == parse_uri("sip:bob@192.0.2.9:5080")
    assert d.state is DialogState.CONFIRMED
    assert [str(a) for a in d.route_set] == [P1]


def test_failed_reinvite_keeps_target_and_dialog():
    d = uac_dialog()
    reinvite = d.create_request("INVITE")
    d.receive_response(response(reinvite, 488, contact="sip:bob@192.0.2.9"))
    assert str(d.remote_target) == BOB_CONTACT
    assert d.state is DialogState.CONFIRMED


def test_2xx_to_info_does_not_move_the_target():
    d = uac_dialog()
    d.receive_response(response(d.create_request("INFO"), 200, contact="sip:bob@192.0.2.9"))
    assert str(d.remote_target) == BOB_CONTACT


@pytest.mark.parametrize("status", [408, 481])
def test_408_and_481_terminate_the_dialog(status):
    d = uac_dialog()
    d.receive_response(response(d.create_request("INFO"), status))
    assert d.state is DialogState.TERMINATED


def test_bye_response_terminates_except_a_challenge():
    d = uac_dialog()
    bye = d.create_request("BYE")
    d.receive_response(response(bye, 407))
    assert d.state is DialogState.CONFIRMED
    retry = d.create_request("BYE")  # with credentials, a new CSeq
    assert retry.cseq == (3, "BYE")
    d.receive_response(response(retry, 200))
    assert d.state is DialogState.TERMINATED


def test_uas_cannot_bye_an_early_dialog():
    d = uas_dialog()
    with pytest.raises(ValueError, match="early"):
        d.create_request("BYE")
    assert d.local_seq is None


def test_uac_may_bye_an_early_dialog():
    d = uac_dialog(status=180)
    assert d.create_request("BYE").cseq == (2, "BYE")


# -- early dialogs, UAS answers, forking ---------------------------------------------


def test_180_with_tag_then_200_confirms():
    invite = request()
    ringing = response(invite, 180, contact="sip:bob@10.0.0.2:5070", record_route=[P1])
    d = Dialog.from_uac_response(invite, ringing)
    assert d.state is DialogState.EARLY
    assert d.id == DialogId(CALL_ID, "a1", "b1")
    assert str(d.remote_target) == "sip:bob@10.0.0.2:5070"
    assert [str(a) for a in d.route_set] == [P1]

    d.receive_response(response(invite, 200, record_route=[P3, P2, P1]))
    assert d.state is DialogState.CONFIRMED
    assert str(d.remote_target) == BOB_CONTACT  # from the 200
    assert [str(a) for a in d.route_set] == [P1, P2, P3]  # recomputed from the 200
    assert d.local_seq == 1


def test_180_without_contact_targets_the_request_uri():
    invite = request()
    d = Dialog.from_uac_response(invite, response(invite, 180, contact=None))
    assert str(d.remote_target) == "sip:bob@example.com"


def test_later_183_moves_the_early_target():
    invite = request()
    d = Dialog.from_uac_response(invite, response(invite, 180, contact=None))
    d.receive_response(response(invite, 183, contact="sip:bob@10.0.0.2:5070"))
    assert str(d.remote_target) == "sip:bob@10.0.0.2:5070"
    assert d.state is DialogState.EARLY


@pytest.mark.parametrize("status", [199, 486, 603])
def test_early_dialog_ended_by_199_or_non_2xx_final(status):
    invite = request()
    d = Dialog.from_uac_response(invite, response(invite, 180))
    d.receive_response(response(invite, status))
    assert d.state is DialogState.TERMINATED


def test_uas_response_sent_moves_the_state():
    confirmed = uas_dialog()
    confirmed.response_sent(response(request(), 180))
    assert confirmed.state is DialogState.EARLY
    confirmed.response_sent(response(request(), 200))
    assert confirmed.state is DialogState.CONFIRMED

    rejected = uas_dialog()
    rejected.response_sent(response(request(), 486))
    assert rejected.state is DialogState.TERMINATED


def test_forked_responses_make_one_dialog_per_to_tag():
    table = DialogTable()
    invite = request()
    first = table.receive_uac_response(invite, response(invite, 180, to_tag="fork1"))
    second = table.receive_uac_response(
        invite, response(invite, 183, to_tag="fork2", contact="sip:bob@10.0.0.3")
    )
    assert first is not None and second is not None
    assert first is not second
    assert first.id == DialogId(CALL_ID, "a1", "fork1")
    assert second.id == DialogId(CALL_ID, "a1", "fork2")
    assert str(second.remote_target) == "sip:bob@10.0.0.3"
    assert len(table) == 2
    assert table.dialog_set(CALL_ID, "a1") == [first, second]

    # A repeat of fork1's 180 updates the same dialog.
    assert table.receive_uac_response(invite, response(invite, 180, to_tag="fork1")) is first
    assert len(table) == 2

    answered = table.receive_uac_response(invite, response(invite, 200, to_tag="fork2"))
    assert answered is second
    assert second.state is DialogState.CONFIRMED
    assert first.state is DialogState.EARLY  # until the INVITE transaction ends


def test_forked_2xx_from_a_new_tag_creates_a_confirmed_dialog():
    table = DialogTable()
    invite = request()
    table.receive_uac_response(invite, response(invite, 180, to_tag="fork1"))
    late = table.receive_uac_response(invite, response(invite, 200, to_tag="fork3"))
    assert late is not None
    assert late.id.remote_tag == "fork3"
    assert late.state is DialogState.CONFIRMED
    assert len(table) == 2


def test_final_error_ends_every_early_fork():
    table = DialogTable()
    invite = request()
    a = table.receive_uac_response(invite, response(invite, 180, to_tag="fork1"))
    b = table.receive_uac_response(invite, response(invite, 180, to_tag="fork2"))
    # The proxy's 486 carries a tag of its own.
    assert table.receive_uac_response(invite, response(invite, 486, to_tag="proxy")) is None
    assert a is not None and b is not None
    assert (a.state, b.state) == (DialogState.TERMINATED, DialogState.TERMINATED)


def test_100_and_tagless_180_create_nothing():
    table = DialogTable()
    invite = request()
    assert table.receive_uac_response(invite, response(invite, 100, to_tag=None)) is None
    assert table.receive_uac_response(invite, response(invite, 180, to_tag=None)) is None
    assert len(table) == 0


# -- matching ---------------------------------------------------------------------


def test_match_request_and_response_from_our_side():
    table = DialogTable()
    d = uac_dialog()  # local a1, remote b1
    table.add(d)
    from_bob = request("BYE", cseq=1, from_tag="b1", to_tag="a1")
    assert table.match(from_bob) is d
    assert table.match_response(response(d.create_request("INFO"), 200)) is d
    # The same tags the other way round belong to Bob's dialog, not ours.
    assert table.match(request("BYE", cseq=1, from_tag="a1", to_tag="b1")) is None
    assert table.match(request("BYE", cseq=1, from_tag="b1", to_tag="zz")) is None


def test_check_in_dialog_request_matches_and_applies():
    table = DialogTable()
    d = uas_dialog()
    table.add(d)
    assert check_in_dialog_request(table, in_dialog("INFO", 2)) is d
    assert d.remote_seq == 2
    with pytest.raises(DialogError) as err:
        check_in_dialog_request(table, in_dialog("INFO", 2))
    assert err.value.status == 500


def test_unknown_dialog_is_481():
    table = DialogTable()
    table.add(uas_dialog())
    stray = request("BYE", cseq=2, to_tag="unknown")
    with pytest.raises(DialogError) as err:
        check_in_dialog_request(table, stray)
    assert (err.value.status, err.value.reason) == (481, "Call/Transaction Does Not Exist")


def test_unmatched_ack_is_reported_not_answered():
    assert check_in_dialog_request(DialogTable(), request("ACK", to_tag="unknown")) is None


def test_request_without_to_tag_is_out_of_dialog():
    table = DialogTable()
    table.add(uas_dialog())
    assert check_in_dialog_request(table, request("INVITE", cseq=9)) is None


def test_removed_dialog_is_481_and_terminated_one_too():
    table = DialogTable()
    d = uas_dialog()
    table.add(d)
    d.terminate()
    with pytest.raises(DialogError) as err:
        check_in_dialog_request(table, in_dialog("INFO", 2))
    assert err.value.status == 481
    assert table.remove(d.id) is d
    assert d.id not in table
    with pytest.raises(DialogError):
        check_in_dialog_request(table, in_dialog("INFO", 3))


def test_peer_without_from_tag_matches_with_empty_remote_tag():
    table = DialogTable()
    old = request()
    old.set("From", "<sip:alice@example.com>")  # RFC 2543 peer: no tag
    d = Dialog.from_uas_request(old, "b1")
    table.add(d)
    assert d.id == DialogId(CALL_ID, "b1", "")
    info = request("INFO", cseq=2, to_tag="b1")
    info.set("From", "<sip:alice@example.com>")
    assert check_in_dialog_request(table, info) is d
    assert "tag" not in d.create_request("INFO").to.params
