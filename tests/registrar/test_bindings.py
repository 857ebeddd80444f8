"""plan_register: what a REGISTER asks of the location store (RFC 3261 §10.3, RFC 5626).

Sans-IO: requests are parsed from raw text (so that malformed headers are
possible) and the plan is checked as data; `after()` applies it to plain
bindings the way the location store does. What depends on the stored bindings
(Call-ID and CSeq ordering, the limit of bindings per AOR) is the store's job
and is tested in tests/store/test_location.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import pytest

from switch.registrar.bindings import Policy, RegisterError, contact_header, plan_register
from switch.sip.address import parse_address
from switch.sip.flow import Flow
from switch.sip.headers import unquote
from switch.sip.message import Request, parse_message
from switch.store.location import ALL, Binding, Change

NOW = 1_700_000_000.0
AOR = "demo/1001"
CALL_ID = "reg-call-1@198.51.100.7"
FLOW = Flow("tcp", ("198.51.100.7", 40000), ("192.0.2.10", 5060), conn_id=7)
POLICY = Policy(min_expires=60, default_expires=3600, max_expires=7200, max_contacts=10)
INSTANCE = "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"


def register(*headers: str, call_id: str = CALL_ID, cseq: int = 1) -> Request:
    """A REGISTER for 1001 with the given extra header lines, parsed from text."""
    lines = [
        "REGISTER sip:example.com SIP/2.0",
        "Via: SIP/2.0/TCP 198.51.100.7:40000;branch=z9hG4bK-reg-1",
        "Max-Forwards: 70",
        "From: <sip:1001@example.com>;tag=f1",
        "To: <sip:1001@example.com>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        *headers,
        "Content-Length: 0",
    ]
    msg = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def plan(
    req: Request,
    *,
    now: float = NOW,
    policy: Policy = POLICY,
    flow: Flow = FLOW,
    node: str = "node-a",
) -> list[Change]:
    return plan_register(req, AOR, flow, now, policy, node)


def refused(req: Request, **options: object) -> RegisterError:
    with pytest.raises(RegisterError) as caught:
        plan(req, **options)  # type: ignore[arg-type]
    return caught.value


def puts(changes: Sequence[Change]) -> list[Binding]:
    return [c for c in changes if isinstance(c, Binding)]


def removals(changes: Sequence[Change]) -> list[str]:
    return [c for c in changes if isinstance(c, str)]


def after(current: Iterable[Binding], changes: Sequence[Change]) -> dict[str, Binding]:
    """The AOR's bindings once the store has applied the plan, by key."""
    kept = {b.key: b for b in current}
    for change in changes:
        if change == ALL:
            kept.clear()
        elif isinstance(change, str):
            kept.pop(change, None)
        else:
            kept[change.key] = change
    return kept


def stored(contact: str = "sip:1001@198.51.100.7:40000;transport=tcp", **fields: object) -> Binding:
    """A binding already in the store, made by an earlier REGISTER."""
    values: dict[str, object] = {
        "aor": AOR,
        "contact": contact,
        "expires_at": NOW + 1800,
        "call_id": CALL_ID,
        "cseq": 1,
        "registered_at": NOW - 1800,
    }
    values.update(fields)
    return Binding(**values)  # type: ignore[arg-type]


def only_put(changes: Sequence[Change]) -> Binding:
    assert removals(changes) == []
    [binding] = puts(changes)
    return binding


def expires_of(binding: Binding, now: float = NOW) -> float:
    return binding.expires_at - now


# -- query and add -----------------------------------------------------------------


def test_query_without_contact_changes_nothing() -> None:
    assert plan(register()) == []
    assert plan(register("Expires: 0")) == []  # Expires alone removes nothing


def test_new_binding_records_the_request_and_the_flow() -> None:
    changes = plan(
        register(
            "Contact: <sip:1001@198.51.100.7:40000;transport=tcp>;expires=600;q=0.7",
            "Path: <sip:edge1.example;lr>, <sip:edge2.example;lr>",
            "Path: <sip:edge3.example;lr>",
            "User-Agent: deskphone/2.1",
            cseq=42,
        ),
        node="node-b",
    )
    assert changes == [
        Binding(
            aor=AOR,
            contact="sip:1001@198.51.100.7:40000;transport=tcp",
            expires_at=NOW + 600,
            call_id=CALL_ID,
            cseq=42,
            q=0.7,
            instance=None,
            reg_id=None,
            path=(
                "<sip:edge1.example;lr>",
                "<sip:edge2.example;lr>",
                "<sip:edge3.example;lr>",
            ),
            transport="tcp",
            source=("198.51.100.7", 40000),
            local=("192.0.2.10", 5060),
            conn_id=7,
            node="node-b",
            user_agent="deskphone/2.1",
            registered_at=NOW,
        )
    ]


def test_udp_flow_has_no_connection() -> None:
    flow = Flow("udp", ("203.0.113.9", 5062), ("192.0.2.10", 5060))
    binding = only_put(plan(register("Contact: <sip:1001@10.0.0.5:5062>"), flow=flow))
    assert (binding.transport, binding.source, binding.local, binding.conn_id) == (
        "udp",
        ("203.0.113.9", 5062),
        ("192.0.2.10", 5060),
        None,
    )
    assert binding.path == ()
    assert binding.user_agent == ""


def test_user_agent_is_bounded() -> None:
    binding = only_put(plan(register("Contact: <sip:a@h>", "User-Agent: " + "x" * 5000)))
    assert binding.user_agent == "x" * 200


def test_sips_contact_and_compact_form() -> None:
    binding = only_put(plan(register("m: <sips:1001@phone.example>")))
    assert binding.contact == "sips:1001@phone.example"


def test_addr_spec_contact_params_belong_to_the_header() -> None:
    # Without <>, ";expires" and ";q" are header parameters, not URI ones.
    binding = only_put(plan(register("Contact: sip:1001@10.0.0.5;expires=120;q=0.5")))
    assert binding.contact == "sip:1001@10.0.0.5"
    assert (expires_of(binding), binding.q) == (120, 0.5)


# -- expiry ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expires"),
    [
        pytest.param(("Contact: <sip:a@h>",), 3600, id="default"),
        pytest.param(("Expires: 120", "Contact: <sip:a@h>"), 120, id="header"),
        pytest.param(("Contact: <sip:a@h>;expires=300",), 300, id="param"),
        pytest.param(("Expires: 120", "Contact: <sip:a@h>;expires=300"), 300, id="param-wins"),
        pytest.param(("Expires: 0", "Contact: <sip:a@h>;expires=300"), 300, id="param-over-0"),
        pytest.param(("Expires: 60", "Contact: <sip:a@h>"), 60, id="min-is-allowed"),
        pytest.param(("Expires: 7200", "Contact: <sip:a@h>"), 7200, id="max-is-allowed"),
        pytest.param(("Expires: 100000", "Contact: <sip:a@h>"), 7200, id="header-clamped"),
        pytest.param(("Contact: <sip:a@h>;expires=7201",), 7200, id="param-clamped"),
        pytest.param(("Expires: 4294967295", "Contact: <sip:a@h>"), 7200, id="2**32-1"),
        pytest.param(("Expires: 0120", "Contact: <sip:a@h>"), 120, id="leading-zero"),
    ],
)
def test_expires_precedence_and_clamping(headers: tuple[str, ...], expires: int) -> None:
    binding = only_put(plan(register(*headers)))
    assert expires_of(binding) == expires
    assert binding.registered_at == NOW


def test_policy_default_expires_is_used() -> None:
    policy = Policy(min_expires=30, default_expires=900, max_expires=1800)
    binding = only_put(plan(register("Contact: <sip:a@h>"), policy=policy))
    assert expires_of(binding) == 900


def test_each_contact_has_its_own_expires() -> None:
    changes = plan(
        register("Expires: 900", "Contact: <sip:a@h>;expires=120, <sip:b@h>, <sip:c@h>;expires=0")
    )
    assert {b.contact: expires_of(b) for b in puts(changes)} == {"sip:a@h": 120, "sip:b@h": 900}
    assert removals(changes) == ["sip:c@h"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(("Expires: 59", "Contact: <sip:a@h>"), id="header"),
        pytest.param(("Contact: <sip:a@h>;expires=1",), id="param"),
        pytest.param(("Expires: 3600", "Contact: <sip:a@h>;expires=30"), id="param-over-header"),
        pytest.param(("Contact: <sip:ok@h>, <sip:a@h>;expires=10",), id="one-of-several"),
    ],
)
def test_too_brief_is_423_with_min_expires(headers: tuple[str, ...]) -> None:
    error = refused(register(*headers))
    assert error.status == 423
    assert error.reason == "Interval Too Brief"
    assert error.headers == (("Min-Expires", "60"),)


def test_min_expires_header_follows_the_policy() -> None:
    policy = Policy(min_expires=300, default_expires=3600, max_expires=7200)
    error = refused(register("Expires: 299", "Contact: <sip:a@h>"), policy=policy)
    assert (error.status, error.headers) == (423, (("Min-Expires", "300"),))
    assert expires_of(only_put(plan(register("Expires: 300", "Contact: <sip:a@h>")))) == 300


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(("Expires: 0", "Contact: <sip:a@h>"), id="header"),
        pytest.param(("Contact: <sip:a@h>;expires=0",), id="param"),
        pytest.param(("Expires: 3600", "Contact: <sip:a@h>;expires=0"), id="param-over-header"),
    ],
)
def test_expires_zero_removes_the_binding(headers: tuple[str, ...]) -> None:
    current = [stored("sip:a@h"), stored("sip:other@h")]
    changes = plan(register(*headers, cseq=2))
    assert changes == ["sip:a@h"]
    assert list(after(current, changes)) == ["sip:other@h"]


def test_removal_yields_the_key_whether_stored_or_not() -> None:
    # The plan does not know what is stored; removing what is not there is
    # no error (RFC 3261 §10.3 step 8): the store simply finds nothing.
    assert plan(register("Expires: 0", "Contact: <sip:a@h>")) == ["sip:a@h"]
    assert plan(register("Contact: <sip:a@h>;expires=0")) == ["sip:a@h"]
    assert after([stored("sip:other@h")], ["sip:a@h"]) == {"sip:other@h": stored("sip:other@h")}


def test_removal_of_an_outbound_binding_yields_its_instance_key() -> None:
    req = register(f'Contact: <sip:a@h>;+sip.instance="{INSTANCE}";reg-id=1;expires=0')
    assert plan(req) == [f"{INSTANCE}/1"]


def test_remove_one_and_add_another_in_one_request() -> None:
    changes = plan(register("Contact: <sip:old@h>;expires=0, <sip:new@h>", cseq=2))
    assert removals(changes) == ["sip:old@h"]
    assert [b.contact for b in puts(changes)] == ["sip:new@h"]


# -- bad values: 400 with a reason that names the problem ------------------------------

BAD_SECONDS = [
    pytest.param("-1", id="negative"),
    pytest.param("abc", id="word"),
    pytest.param("1.5", id="fraction"),
    pytest.param("60s", id="unit"),
    pytest.param("+60", id="sign"),
    pytest.param("0x10", id="hex"),
    pytest.param("6 0", id="space"),
    pytest.param("\u00b2", id="superscript-digit"),  # str.isdigit() says yes, int() says no
    pytest.param("\u0661\u0662\u0660", id="arabic-indic-digits"),
    pytest.param("99999999999", id="huge"),
    pytest.param("9" * 5000, id="enormous"),
]


@pytest.mark.parametrize("value", BAD_SECONDS)
def test_bad_expires_header_is_400(value: str) -> None:
    error = refused(register(f"Expires: {value}", "Contact: <sip:a@h>"))
    assert error.status == 400
    assert error.reason.startswith("Bad Request (Expires ")
    assert "is not a number of seconds" in error.reason
    assert repr(value[:20]) in error.reason  # the value, cut short
    assert len(error.reason) < 100


def test_empty_expires_header_is_400() -> None:
    error = refused(register("Expires:", "Contact: <sip:a@h>"))
    assert error.status == 400
    assert "Expires '' is not a number of seconds" in error.reason


@pytest.mark.parametrize("value", [*BAD_SECONDS, pytest.param("", id="empty")])
def test_bad_contact_expires_is_400(value: str) -> None:
    error = refused(register(f"Contact: <sip:a@h>;expires={value}"))
    assert error.status == 400
    assert error.reason.startswith(f"Bad Request (Contact expires {value[:20]!r} ")
    assert "is not a number of seconds" in error.reason
    assert len(error.reason) < 100


@pytest.mark.parametrize(
    ("value", "q"),
    [("0", 0.0), ("0.5", 0.5), ("1", 1.0), ("1.000", 1.0), ("0.123", 0.123), ("0.10", 0.1)],
)
def test_q_values(value: str, q: float) -> None:
    assert only_put(plan(register(f"Contact: <sip:a@h>;q={value}"))).q == q


def test_q_keeps_three_decimals() -> None:
    assert only_put(plan(register("Contact: <sip:a@h>;q=0.00001"))).q == 0.0
    assert only_put(plan(register("Contact: <sip:a@h>;q=0.12345"))).q == 0.123


@pytest.mark.parametrize("value", ["1.1", "2", "-0.1", "abc", "", "nan", "inf", "-inf", "0.5.1"])
def test_bad_q_is_400(value: str) -> None:
    error = refused(register(f"Contact: <sip:a@h>;q={value}"))
    assert error.status == 400
    assert error.reason.startswith("Bad Request (q ")
    assert "is not a number from 0 to 1" in error.reason


@pytest.mark.parametrize(
    "contact",
    [
        pytest.param("<sip:1001@198.51.100.7", id="no-closing-bracket"),
        pytest.param("<sip:1001@198.51.100.7>;;", id="empty-param"),
        pytest.param('"Alice <sip:1001@198.51.100.7>', id="unterminated-display"),
        pytest.param("<sip:1001@198.51.100.7> junk", id="text-after-bracket"),
        pytest.param("<>", id="empty-uri"),
        pytest.param("sip:", id="scheme-only"),
        pytest.param("garbage", id="no-scheme"),
        pytest.param("<sip:1001@[2001:db8::1>", id="bad-ipv6"),
        pytest.param("<sip:1001@198.51.100.7:99999>", id="bad-port"),
        pytest.param("<sip:@198.51.100.7>", id="empty-user"),
        pytest.param("<sip:1001@198.51.100.7>, *", id="wildcard-among-others"),
        pytest.param("", id="empty"),
    ],
)
def test_malformed_contact_is_400_not_a_crash(contact: str) -> None:
    error = refused(register(f"Contact: {contact}"))
    assert error.status == 400
    assert error.reason.startswith("Bad Request (malformed Contact")


def test_malformed_contact_refuses_the_whole_request() -> None:
    error = refused(register("Contact: <sip:good@h>", "Contact: <sip:bad@h"))
    assert error.status == 400


@pytest.mark.parametrize(
    "uri",
    ["tel:+15551234567", "http://example.com/phone", "mailto:1001@example.com", "urn:x:y"],
)
def test_non_sip_contact_is_400(uri: str) -> None:
    error = refused(register(f"Contact: <sip:ok@h>, <{uri}>"))
    assert error.status == 400
    assert error.reason == f"Bad Request (Contact {uri!r} is not a sip: or sips: URI)"


# -- Contact: * ---------------------------------------------------------------------------


def test_wildcard_with_expires_zero_removes_all() -> None:
    current = [
        stored("sip:a@h"),
        stored("sip:b@h", call_id="another-call", cseq=99),
        stored("sip:c@h", instance=INSTANCE, reg_id=1),
    ]
    changes = plan(register("Contact: *", "Expires: 0", cseq=2))
    assert changes == [ALL]
    assert after(current, changes) == {}


def test_wildcard_is_all_whether_anything_is_stored_or_not() -> None:
    # Same plan with no bindings: the store finds nothing to remove.
    assert plan(register("Contact: *", "Expires: 0")) == [ALL]
    assert plan(register("m: *", "Expires: 00")) == [ALL]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(("Contact: *",), id="no-expires"),
        pytest.param(("Contact: *", "Expires: 3600"), id="expires-nonzero"),
    ],
)
def test_wildcard_needs_expires_zero(headers: tuple[str, ...]) -> None:
    error = refused(register(*headers, cseq=2))
    assert error.status == 400
    assert "'*'" in error.reason and "Expires: 0" in error.reason


def test_wildcard_with_contact_expires_param_is_400() -> None:
    error = refused(register("Contact: *;expires=0", "Expires: 0"))
    assert error.status == 400


# -- Call-ID and CSeq: recorded here, checked by the store (RFC 3261 §10.3 step 7) --------


@pytest.mark.parametrize("cseq", [1, 5, 6])
def test_each_binding_records_the_call_id_and_cseq(cseq: int) -> None:
    changes = plan(register("Contact: <sip:a@h>, <sip:b@h>", call_id="rebooted", cseq=cseq))
    assert [(b.call_id, b.cseq) for b in puts(changes)] == [("rebooted", cseq)] * 2


def test_a_refresh_is_a_put_with_the_new_times() -> None:
    # The same contact again, later: a put of the same key with a new expiry;
    # whether its CSeq is newer is for the store to say.
    old = stored("sip:a@h", cseq=5, expires_at=NOW + 10, registered_at=NOW - 3590)
    later = NOW + 5
    binding = only_put(plan(register("Contact: <sip:a@h>", cseq=6), now=later))
    assert binding.key == old.key
    assert (binding.cseq, binding.expires_at, binding.registered_at) == (6, later + 3600, later)
    assert list(after([old], [binding])) == ["sip:a@h"]


# -- several contacts -----------------------------------------------------------------


def test_several_contacts_with_q_values() -> None:
    changes = plan(
        register(
            "Contact: <sip:desk@10.0.0.5>;q=1.0, <sip:soft@10.0.0.6>;q=0.5",
            "Contact: <sip:mobile@10.0.0.7>;q=0.1",
        )
    )
    assert removals(changes) == []
    assert [(b.contact, b.q) for b in puts(changes)] == [
        ("sip:desk@10.0.0.5", 1.0),
        ("sip:soft@10.0.0.6", 0.5),
        ("sip:mobile@10.0.0.7", 0.1),
    ]
    assert {(b.call_id, b.cseq, b.expires_at) for b in puts(changes)} == {(CALL_ID, 1, NOW + 3600)}


def test_duplicate_contact_is_counted_once() -> None:
    # Once in the plan, so once against the store's max_bindings as well.
    changes = plan(register("Contact: <sip:a@h>, <sip:a@h>;expires=120", "Contact: <sip:a@h>"))
    assert [b.key for b in puts(changes)] == ["sip:a@h"]
    assert expires_of(only_put(changes)) == 3600  # the first one counts
    changes = plan(register("Contact: <sip:a@h>;expires=0, <sip:a@h>"))
    assert changes == ["sip:a@h"]


def test_the_plan_does_not_depend_on_max_contacts() -> None:
    # Eviction of the oldest bindings is the store's (apply(max_bindings=...)).
    contacts = ", ".join(f"<sip:{n}@h>" for n in range(5))
    policy = dataclasses.replace(POLICY, max_contacts=2)
    changes = plan(register(f"Contact: {contacts}"), policy=policy)
    assert removals(changes) == []
    assert [b.contact for b in puts(changes)] == [f"sip:{n}@h" for n in range(5)]


# -- RFC 5626: +sip.instance and reg-id --------------------------------------------------


def outbound(contact: str, reg_id: str = "1", instance: str = INSTANCE) -> str:
    return f'Contact: <{contact}>;+sip.instance="{instance}";reg-id={reg_id}'


def test_instance_and_reg_id_make_the_key() -> None:
    binding = only_put(plan(register(outbound("sip:1001@198.51.100.7:40000;transport=tcp"))))
    assert binding.instance == INSTANCE  # unquoted
    assert binding.reg_id == 1
    assert binding.key == f"{INSTANCE}/1"


def test_same_instance_new_contact_replaces_its_binding() -> None:
    old = stored("sip:1001@198.51.100.7:40000;transport=tcp", instance=INSTANCE, reg_id=1)
    # The device reconnected from a new port, with a new Call-ID.
    new_flow = Flow("tcp", ("198.51.100.7", 40001), ("192.0.2.10", 5060), conn_id=8)
    req = register(outbound("sip:1001@198.51.100.7:40001;transport=tcp"), call_id="second")
    changes = plan(req, flow=new_flow)
    result = after([old], changes)
    assert list(result) == [f"{INSTANCE}/1"]
    new = result[f"{INSTANCE}/1"]
    assert (new.contact, new.source, new.conn_id) == (
        "sip:1001@198.51.100.7:40001;transport=tcp",
        ("198.51.100.7", 40001),
        8,
    )


def test_same_instance_other_reg_id_is_another_flow() -> None:
    old = stored("sip:1001@198.51.100.7:40000", instance=INSTANCE, reg_id=1)
    changes = plan(register(outbound("sip:1001@203.0.113.4:5060", reg_id="2")))
    assert sorted(after([old], changes)) == sorted([f"{INSTANCE}/1", f"{INSTANCE}/2"])


def test_instance_without_reg_id_is_keyed_by_contact() -> None:
    req = register(
        f'Contact: <sip:a@h>;+sip.instance="{INSTANCE}", <sip:b@h>;+sip.instance="{INSTANCE}"'
    )
    changes = plan(req)
    assert [(b.key, b.instance, b.reg_id) for b in puts(changes)] == [
        ("sip:a@h", INSTANCE, None),
        ("sip:b@h", INSTANCE, None),
    ]


def test_reg_id_without_instance_is_keyed_by_contact() -> None:
    binding = only_put(plan(register("Contact: <sip:a@h>;reg-id=1")))
    assert (binding.key, binding.instance, binding.reg_id) == ("sip:a@h", None, 1)


def test_empty_instance_does_not_make_devices_share_a_key() -> None:
    changes = plan(register(outbound("sip:a@h", instance=""), outbound("sip:b@h", instance="")))
    assert [b.key for b in puts(changes)] == ["sip:a@h", "sip:b@h"]


@pytest.mark.parametrize("reg_id", ["abc", "-1", "1.0", "", "\u00b2", "1234567890", "0x1"])
def test_bad_reg_id_is_400(reg_id: str) -> None:
    error = refused(register(outbound("sip:a@h", reg_id=reg_id)))
    assert error.status == 400
    assert error.reason.startswith("Bad Request (reg-id ")
    assert "is not a number" in error.reason


# -- contact_header --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "shown"),
    [(3600, "3600"), (59.6, "60"), (59.4, "59"), (0.4, "0"), (-5, "0")],
)
def test_contact_header_expires_is_rounded_time_left(left: float, shown: str) -> None:
    binding = stored("sip:a@h", expires_at=NOW + left)
    assert contact_header(binding, NOW) == f"<sip:a@h>;expires={shown}"


@pytest.mark.parametrize(
    ("q", "shown"),
    [(1.0, ""), (0.5, ";q=0.5"), (0.0, ";q=0"), (0.125, ";q=0.125"), (0.00001, ";q=0")],
)
def test_contact_header_q_only_when_not_1(q: float, shown: str) -> None:
    binding = stored("sip:a@h", expires_at=NOW + 60, q=q)
    assert contact_header(binding, NOW) == f"<sip:a@h>;expires=60{shown}"


def test_contact_header_outbound_params() -> None:
    binding = stored("sip:a@h;transport=tcp", expires_at=NOW + 60, instance=INSTANCE, reg_id=2)
    assert contact_header(binding, NOW) == (
        f'<sip:a@h;transport=tcp>;expires=60;+sip.instance="{INSTANCE}";reg-id=2'
    )
    plain = dataclasses.replace(binding, instance=INSTANCE, reg_id=None, q=0.2)
    assert contact_header(plain, NOW) == (
        f'<sip:a@h;transport=tcp>;expires=60;q=0.2;+sip.instance="{INSTANCE}"'
    )


@pytest.mark.parametrize(
    "contact",
    [
        "Contact: <sip:a@h;transport=tcp>;expires=600;q=0.25",
        f'Contact: <sips:a@h>;+sip.instance="{INSTANCE}";reg-id=3',
        'Contact: <sip:a@h>;+sip.instance="<urn:odd\\"quote\\\\back>";reg-id=1;q=0.5',
        "Contact: <sip:a@h>;q=0.00001",
    ],
)
def test_contact_header_reads_back_as_the_binding(contact: str) -> None:
    binding = only_put(plan(register(contact)))
    address = parse_address(contact_header(binding, NOW))
    assert str(address.uri) == binding.contact
    assert int(address.params["expires"] or "") == expires_of(binding)
    assert float(address.params.get("q") or 1) == binding.q
    instance = address.params.get("+sip.instance")
    assert (unquote(instance) if instance else None) == binding.instance
    reg_id = address.params.get("reg-id")
    assert (int(reg_id) if reg_id else None) == binding.reg_id
