"""The IVR engine with a virtual clock and a scripted caller: every verb, timeout and retry."""

from __future__ import annotations

import logging

import pytest

from switch.apps.ivr import QueueState
from switch.apps.ivr import commands as cmd
from switch.apps.ivr import events as ev

from .caller import FLOWS, Caller, flow, spoken

# ---------------------------------------------------------------------------
# answer, play, say, the end of a flow


def test_answer_is_sent_once_and_the_end_of_the_steps_hangs_up() -> None:
    caller = Caller(
        flow("""
        steps:
          welcome:
            - answer
            - say: Hello
            - answer
    """)
    )
    out = caller.start()
    assert caller.kinds(out) == ["Answer", "Play"]
    out = caller.finish_play()
    assert out == [cmd.Hangup("end of flow")]
    assert caller.run.done and caller.run.outcome == "hangup:end of flow"
    assert caller.kinds().count("Answer") == 1


def test_a_prompt_answers_the_call_first_even_without_answer() -> None:
    caller = Caller(flow("steps: {welcome: [{say: Hello}, hangup]}"))
    assert caller.kinds(caller.start()) == ["Answer", "Play"]


def test_play_files_in_a_loop_and_ignores_keys_without_barge_in() -> None:
    caller = Caller(
        flow("""
        steps:
          hold:
            - play: {files: [sounds/beep.wav, sounds/beep.wav], loop: 3}
            - hangup: {reason: done}
    """)
    )
    out = caller.start()
    play = caller.last(cmd.Play)
    assert play.items == (cmd.File(FLOWS / "sounds/beep.wav"),) * 2
    assert (play.loop, play.barge_in) == (3, False)
    assert caller.press("5") == []  # no barge-in: the key is noted, the prompt goes on
    assert caller.trail("digit", "ignored") == [("digit", "5"), ("ignored", "5")]
    out = caller.finish_play()
    assert out == [cmd.Hangup("done")]
    assert caller.run.outcome == "hangup:done"


def test_play_with_barge_in_stops_on_a_key() -> None:
    caller = Caller(
        flow("""
        steps:
          music:
            - play: {files: sounds/beep.wav, loop: 0, barge_in: true}
            - say: Thanks
    """)
    )
    caller.start()
    first = caller.last(cmd.Play)
    assert first.loop == 0
    out = caller.press("1")
    assert out[0] == cmd.StopPlay(first.id)
    assert spoken(out) == ["Thanks"]
    # The runner's late PlayDone of the stopped prompt changes nothing.
    assert caller.send(ev.PlayDone(first.id)) == []


def test_say_renders_templates_in_its_voice() -> None:
    caller = Caller(
        flow("""
            language: en
            steps:
              welcome:
                - say: "Calling from {{ caller.number | spell }}, {{ caller.name }}."
                - say: {text: "您好", language: cmn}
                - say: {text: "Hi", voice: en-us, language: en}
        """),
        number="1234",
    )
    caller.start()
    assert caller.last(cmd.Play).items == (cmd.Speech("Calling from 1 2 3 4, Ann Caller.", "en"),)
    caller.finish_play()
    assert caller.last(cmd.Play).items == (cmd.Speech("您好", "cmn"),)
    caller.finish_play()
    assert caller.last(cmd.Play).items == (cmd.Speech("Hi", "en-us"),)


def test_an_empty_rendered_prompt_is_skipped() -> None:
    caller = Caller(flow('steps: {a: [{say: "{{ vars.nothing }}"}, hangup]}'))
    assert caller.kinds(caller.start()) == ["Answer", "Hangup"]


def test_prompt_items_mix_speech_files_and_pauses() -> None:
    caller = Caller(
        flow("""
        steps:
          a:
            - gather:
                prompt: ["One", {play: sounds/beep.wav}, {pause: 0.5}, {say: 二, language: cmn}]
            - hangup
    """)
    )
    caller.start()
    assert caller.last(cmd.Play).items == (
        cmd.Speech("One", "en"),
        cmd.File(FLOWS / "sounds/beep.wav"),
        cmd.Silence(500),
        cmd.Speech("二", "cmn"),
    )


# ---------------------------------------------------------------------------
# gather

GATHER = """
    steps:
      account:
        - gather:
            prompt: Enter your account number, then hash.
            into: account
            min: 4
            max: 6
            finish_key: "#"
            first_digit_timeout: 5
            inter_digit_timeout: 3
            retries: 1
            invalid_prompt: That is not an account number.
            no_input_prompt: I did not hear anything.
            fallback: operator
        - say: "Account {{ vars.account }}"
      operator:
        - transfer: "1001"
"""


def test_gather_takes_digits_until_max() -> None:
    caller = Caller(flow(GATHER))
    caller.start()
    caller.finish_play()
    out = caller.press("123456", gap=1)
    assert spoken(out) == ["Account 123456"]
    assert caller.run.variables["account"] == "123456"
    assert ("input", "123456") in caller.trail()


def test_gather_ends_at_the_finish_key() -> None:
    caller = Caller(flow(GATHER))
    caller.start()
    caller.finish_play()
    assert spoken(caller.press("4321#")) == ["Account 4321"]


def test_gather_inter_digit_timeout_ends_the_entry() -> None:
    caller = Caller(flow(GATHER))
    caller.start()
    caller.finish_play()
    caller.press("98765")
    assert caller.run.next_deadline() == caller.now + 3
    assert caller.wait(2.9) == []
    assert spoken(caller.wait(0.2)) == ["Account 98765"]


def test_gather_first_digit_timer_starts_when_the_prompt_ends() -> None:
    caller = Caller(flow(GATHER))
    caller.start()
    assert caller.run.next_deadline() is None  # the prompt is playing
    assert caller.wait(60) == []
    caller.finish_play()
    assert caller.run.next_deadline() == caller.now + 5


def test_gather_no_input_retries_with_its_prompt_then_takes_input() -> None:
    caller = Caller(flow(GATHER))
    caller.start()
    caller.finish_play()
    out = caller.wait(5)
    assert spoken(out) == ["I did not hear anything.", "Enter your account number, then hash."]
    assert caller.trail("no_input") == [("no_input", "")]
    caller.finish_play()
    assert spoken(caller.press("5555#")) == ["Account 5555"]


def test_gather_too_short_is_invalid_and_retried() -> None:
    caller = Caller(flow(GATHER))
    caller.start()
    caller.finish_play()
    out = caller.press("12#")
    assert spoken(out) == [
        "That is not an account number.",
        "Enter your account number, then hash.",
    ]
    assert caller.trail("invalid") == [("invalid", "12")]


def test_gather_falls_back_after_its_retries() -> None:
    caller = Caller(flow(GATHER))
    caller.start()
    caller.finish_play()
    caller.press("1#")  # invalid
    caller.finish_play()
    out = caller.wait(5)  # then silence: no tries left
    assert out == [cmd.Transfer("1001")]
    assert caller.run.variables["account"] == ""
    assert caller.trail("fallback") == [("fallback", "operator")]
    assert caller.run.outcome == "transfer:1001"


def test_gather_without_fallback_goes_on_with_nothing() -> None:
    caller = Caller(
        flow("""
        steps:
          a:
            - gather: {retries: 0, first_digit_timeout: 2}
            - say: "got [{{ vars.digits }}]"
    """)
    )
    caller.start()
    assert spoken(caller.wait(2)) == ["got []"]


def test_gather_pattern_and_next() -> None:
    caller = Caller(
        flow("""
        steps:
          a:
            - gather: {max: 3, pattern: "9[0-9]+", next: good, retries: 0, fallback: bad}
          good:
            - say: good
          bad:
            - say: bad
    """)
    )
    caller.start()
    assert spoken(caller.press("123")) == ["bad"]
    caller = Caller(caller.run.flow)
    caller.start()
    assert spoken(caller.press("912")) == ["good"]
    assert caller.run.variables["digits"] == "912"


def test_gather_barge_in_stops_the_prompt_and_counts_the_key() -> None:
    caller = Caller(flow(GATHER))
    caller.start()
    prompt = caller.last(cmd.Play)
    assert prompt.barge_in
    out = caller.press("7")
    assert out == [cmd.StopPlay(prompt.id)]
    assert caller.run.next_deadline() == caller.now + 3  # inter-digit, not first-digit
    assert spoken(caller.press("777#")) == ["Account 7777"]


def test_gather_without_barge_in_ignores_keys_during_the_prompt() -> None:
    caller = Caller(
        flow("""
        steps:
          a:
            - gather: {prompt: Listen to all of this, barge_in: false, max: 2}
            - say: "got {{ vars.digits }}"
    """)
    )
    caller.start()
    assert caller.press("1") == []
    caller.finish_play()
    assert spoken(caller.press("23")) == ["got 23"]


# ---------------------------------------------------------------------------
# menu

MENU = """
    steps:
      welcome:
        - say: {text: Welcome, barge_in: true}
        - goto: main
      main:
        - menu:
            prompt: Press 1 or 2.
            options: {"1": one, "2": two}
            timeout: 4
            retries: 1
            invalid_prompt: Not a choice.
            default: fallback
      one:
        - hangup: {reason: one}
      two:
        - hangup: {reason: two}
      fallback:
        - hangup: {reason: fallback}
"""


def test_menu_goes_to_the_step_of_the_key() -> None:
    caller = Caller(flow(MENU))
    caller.start()
    caller.finish_play()  # the welcome
    caller.finish_play()  # the menu
    assert caller.press("2") == [cmd.Hangup("two")]
    assert caller.run.summary()["steps"] == ["welcome", "main", "two"]


def test_menu_key_during_the_greeting_is_typed_ahead() -> None:
    caller = Caller(flow(MENU))
    caller.start()
    welcome = caller.last(cmd.Play)
    out = caller.press("1")
    assert out == [cmd.StopPlay(welcome.id), cmd.Hangup("one")]  # no menu prompt at all


def test_menu_invalid_key_then_good_key() -> None:
    caller = Caller(flow(MENU))
    caller.start()
    caller.finish_play()
    caller.finish_play()
    out = caller.press("9")
    assert spoken(out) == ["Not a choice.", "Press 1 or 2."]
    caller.finish_play()
    assert caller.press("1") == [cmd.Hangup("one")]


def test_menu_default_after_invalid_tries() -> None:
    caller = Caller(flow(MENU))
    caller.start()
    caller.finish_play()
    caller.finish_play()
    caller.press("9")
    caller.finish_play()
    assert caller.press("8") == [cmd.Hangup("fallback")]
    assert caller.trail("invalid") == [("invalid", "9"), ("invalid", "8")]


def test_menu_default_after_silence() -> None:
    caller = Caller(flow(MENU))
    caller.start()
    caller.finish_play()
    caller.finish_play()
    assert caller.wait(3.9) == []
    out = caller.wait(0.1)  # no input, and the no-input prompt defaults to the invalid one
    assert spoken(out) == ["Not a choice.", "Press 1 or 2."]
    caller.finish_play()
    assert caller.wait(4) == [cmd.Hangup("fallback")]


# ---------------------------------------------------------------------------
# record

RECORD = """
    steps:
      message:
        - record:
            prompt: Leave a message after the tone.
            into: message
            max_length: 30
            silence: 4
            beep: true
            finish_keys: "#*"
        - say: "Saved {{ vars.message }}"
"""


def test_record_after_its_prompt_and_stop_on_a_finish_key() -> None:
    caller = Caller(flow(RECORD))
    caller.start()
    assert caller.press("#") == []  # the prompt is playing: not yet recording
    out = caller.finish_play()
    start = out[0]
    assert isinstance(start, cmd.StartRecord)
    assert (start.silence, start.beep) == (4, True)
    assert start.name.startswith("demo-main-message-")
    assert caller.press("1") == []  # not a finish key
    assert caller.press("*") == [cmd.StopRecord(start.id)]
    out = caller.send(ev.RecordDone(start.id, "/rec/m.wav", 12.5, "stopped"))
    assert spoken(out) == ["Saved /rec/m.wav"]
    assert ("record", "stopped 12.5 s /rec/m.wav") in caller.trail()


def test_record_max_length_is_kept_by_the_engine() -> None:
    caller = Caller(flow(RECORD))
    caller.start()
    start = caller.finish_play()[0]
    assert caller.wait(29.9) == []
    assert caller.wait(0.1) == [cmd.StopRecord(start.id)]
    out = caller.send(ev.RecordDone(start.id, "/rec/long.wav", 30.0, "stopped"))
    assert spoken(out) == ["Saved /rec/long.wav"]


def test_record_silence_ends_it_through_the_runner() -> None:
    caller = Caller(flow(RECORD))
    caller.start()
    start = caller.finish_play()[0]
    out = caller.send(ev.RecordDone(start.id, "/rec/short.wav", 3.0, "silence"))
    assert spoken(out) == ["Saved /rec/short.wav"]


def test_record_goes_on_when_the_runner_never_answers(caplog: pytest.LogCaptureFixture) -> None:
    caller = Caller(flow(RECORD))
    caller.start()
    caller.finish_play()
    caller.wait(30)  # StopRecord sent
    with caplog.at_level(logging.WARNING, "switch.ivr"):
        out = caller.wait(5)
    assert spoken(out) == ["Saved"]  # stripped: nothing was recorded
    assert "no RecordDone" in caplog.text


# ---------------------------------------------------------------------------
# set and branch


class Queues:
    def __init__(self, **states: QueueState) -> None:
        self.states = states

    def queue_state(self, tenant: str, queue: str) -> QueueState:
        assert tenant == "demo"
        return self.states[queue]


def branch_to(when: str, now_offset: float = 0.0, **caller_args) -> str:
    """The step a one-case branch goes to: "yes" or "no"."""
    caller = Caller(
        flow(f"""
            steps:
              a:
                - set: {{tier: gold, count: "12", empty: ""}}
                - branch:
                    - when: {when}
                      goto: "yes"
                    - else: "no"
              "yes":
                - hangup: {{reason: "yes"}}
              "no":
                - hangup: {{reason: "no"}}
        """),
        **caller_args,
    )
    caller.now += now_offset
    caller.start()
    return caller.run.outcome.removeprefix("hangup:")


def test_branch_on_caller_and_did() -> None:
    assert branch_to('{caller: "+44*"}') == "yes"
    assert branch_to('{caller: ["+1*", "+33*"]}') == "no"
    assert branch_to('{did: "10?"}') == "yes"
    assert branch_to('{did: "200"}') == "no"


def test_branch_on_variables() -> None:
    assert branch_to("{var: tier, equals: gold}") == "yes"
    assert branch_to('{var: tier, equals: "{{ caller.name }}"}') == "no"
    assert branch_to("{var: tier, in: [silver, gold]}") == "yes"
    assert branch_to("{var: empty, empty: true}") == "yes"
    assert branch_to("{var: missing, empty: false}") == "no"
    assert branch_to("{var: count, min: 10, max: 12}") == "yes"
    assert branch_to("{var: count, min: 13}") == "no"
    assert branch_to("{var: tier, min: 1}") == "no"  # not a number
    assert branch_to('{var: count, matches: "1[0-9]"}') == "yes"
    assert branch_to("{var: tier}") == "yes"  # set and not empty


def test_branch_on_time_and_days_in_the_flow_zone() -> None:
    # Monday 10:00 UTC.
    assert branch_to('{time: "09:00-10:30"}') == "yes"
    assert branch_to('{time: ["00:00-09:00", "10:01-24:00"]}') == "no"
    assert branch_to("{days: mon-fri}") == "yes"
    assert branch_to("{days: [sat, sun]}") == "no"
    assert branch_to("{days: fri-mon}") == "yes"  # wraps over the weekend
    assert branch_to('{time: "09:00-10:30"}', now_offset=14 * 3600) == "no"  # Monday 24:00


def test_branch_time_uses_the_flow_timezone() -> None:
    text = """
        timezone: Asia/Shanghai
        steps:
          a:
            - branch:
                - when: {time: "18:00-18:30", days: mon}
                  goto: b
            - hangup: {reason: "no"}
          b:
            - hangup: {reason: "yes"}
    """
    caller = Caller(flow(text))  # 10:00 UTC is 18:00 in Shanghai
    caller.start()
    assert caller.run.outcome == "hangup:yes"


def test_branch_on_business_hours_and_holidays() -> None:
    assert branch_to("{open: office}") == "yes"  # 11:00 BST on a Monday
    assert branch_to("{open: office}", now_offset=8 * 3600) == "no"  # 19:00 BST
    assert branch_to("{holiday: office}") == "no"
    week = 7 * 24 * 3600  # Monday 9 June 2025 is a holiday of the calendar
    assert branch_to("{holiday: office}", now_offset=week) == "yes"
    assert branch_to("{open: office}", now_offset=week) == "no"


def test_branch_on_queue_state() -> None:
    queues = Queues(
        support=QueueState(agents_available=2, waiting=3, estimated_wait=40.0),
        sales=QueueState(agents_available=0, waiting=0, estimated_wait=None),
    )
    when = "{queue: support, agents_available: {min: 1}}"
    assert branch_to(when, queue_info=queues) == "yes"
    assert branch_to("{queue: sales, agents_available: {min: 1}}", queue_info=queues) == "no"
    assert branch_to("{queue: support, estimated_wait: {max: 60}}", queue_info=queues) == "yes"
    assert branch_to("{queue: support, waiting: {max: 2}}", queue_info=queues) == "no"
    # An unknown wait is not a short one.
    assert branch_to("{queue: sales, estimated_wait: {max: 60}}", queue_info=queues) == "no"
    # Without a provider: no agents.
    assert branch_to("{queue: support, agents_available: {min: 1}}") == "no"


def test_branch_any_all_not_and_several_keys() -> None:
    assert branch_to('{any: [{caller: "+1*"}, {did: "100"}]}') == "yes"
    assert branch_to('{all: [{caller: "+44*"}, {did: "200"}]}') == "no"
    assert branch_to('{not: {caller: "+1*"}}') == "yes"
    assert branch_to('{caller: "+44*", did: "200"}') == "no"  # keys of one `when` all hold


def test_branch_without_a_matching_case_goes_on() -> None:
    caller = Caller(
        flow("""
        steps:
          a:
            - branch:
                - when: {caller: "+1*"}
                  goto: b
            - hangup: {reason: on}
          b:
            - hangup
    """)
    )
    caller.start()
    assert caller.run.outcome == "hangup:on"
    assert ("branch", "no case") in caller.trail()


def test_a_failing_queue_provider_is_a_false_condition(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def queue_state(self, tenant: str, queue: str) -> QueueState:
            raise RuntimeError("store away")

    with caplog.at_level(logging.ERROR, "switch.ivr"):
        assert branch_to("{queue: support, waiting: {max: 5}}", queue_info=Broken()) == "no"
    assert "taken as false" in caplog.text


# ---------------------------------------------------------------------------
# http

HTTP = """
    steps:
      lookup:
        - http:
            url: "https://crm.example/callers?number={{ caller.number }}"
            method: POST
            headers: {X-Caller: "{{ caller.name }}"}
            body: {did: "{{ call.did }}"}
            timeout: 2
            into: crm
            fallback: unknown
        - say: "Hello {{ vars.crm.name }}, tier {{ vars.crm.tiers.0 }}"
      unknown:
        - say: Hello stranger
"""


def test_http_answer_lands_in_variables() -> None:
    caller = Caller(flow(HTTP), number="+44 7700&x=1")
    out = caller.start()
    request = out[0]
    assert isinstance(request, cmd.HttpRequest)
    # The caller's number cannot add a query parameter: it is escaped.
    assert request.url == "https://crm.example/callers?number=%2B44%207700%26x%3D1"
    assert request.method == "POST" and request.timeout == 2
    assert request.headers == {"X-Caller": "Ann Caller"}
    assert request.body == {"did": "100"}
    out = caller.send(ev.HttpResponse(request.id, 200, {"name": "Ann", "tiers": ["gold"]}))
    assert spoken(out) == ["Hello Ann, tier gold"]
    assert caller.run.variables["crm"] == {"name": "Ann", "tiers": ["gold"]}
    assert caller.run.summary()["variables"]["crm"]["name"] == "Ann"


def test_http_header_values_cannot_hold_a_new_line() -> None:
    caller = Caller(flow(HTTP), name="Ann\r\nX-Evil: 1")
    request = caller.start()[0]
    assert request.headers == {"X-Caller": "Ann X-Evil: 1"}


@pytest.mark.parametrize(
    "answer",
    [
        lambda rid: ev.HttpResponse(rid, 500, {"error": "x"}),
        lambda rid: ev.HttpFailed(rid, "refused"),
    ],
)
def test_http_failure_goes_to_the_fallback(answer) -> None:
    caller = Caller(flow(HTTP))
    request = caller.start()[0]
    assert spoken(caller.send(answer(request.id))) == ["Hello stranger"]
    assert caller.trail("http_failed")


def test_http_timeout_goes_to_the_fallback_and_a_late_answer_is_dropped() -> None:
    caller = Caller(flow(HTTP))
    request = caller.start()[0]
    assert caller.wait(1.9) == []
    assert spoken(caller.wait(0.1)) == ["Hello stranger"]
    assert caller.send(ev.HttpResponse(request.id, 200, {"name": "Late"})) == []
    assert "crm" not in caller.run.variables


def test_http_failure_without_fallback_goes_on() -> None:
    caller = Caller(
        flow("""
        steps:
          a:
            - http: {url: "http://crm.example/x"}
            - say: "next [{{ vars.http }}]"
    """)
    )
    request = caller.start()[0]
    assert spoken(caller.send(ev.HttpFailed(request.id, "refused"))) == ["next []"]


# ---------------------------------------------------------------------------
# enqueue, dial, voicemail, callback, notify, transfer, hangup, goto


def test_enqueue_hands_the_caller_and_its_variables_to_a_queue() -> None:
    caller = Caller(
        flow("""
        steps:
          a:
            - set: {account: "42"}
            - enqueue: {queue: sales, priority: 5, skills: {mandarin: 7}}
    """)
    )
    assert caller.start() == [cmd.Enqueue("sales", 5, {"mandarin": 7}, {"account": "42"})]
    assert caller.run.done and caller.run.outcome == "enqueue:sales"
    assert caller.run.next_deadline() is None
    assert caller.send(ev.Digit("1")) == []  # the IVR is done with the call


DIAL = """
    steps:
      a:
        - dial: {agent: "1001", timeout: 20, fallback: busy}
      busy:
        - dial: {number: "+44{{ vars.ext }}", timeout: 10}
        - voicemail: {mailbox: support, greeting: Nobody is here.}
"""


def test_dial_answered_ends_the_flow() -> None:
    caller = Caller(flow(DIAL))
    dial = caller.start()[0]
    assert isinstance(dial, cmd.Dial)
    assert (dial.kind, dial.target, dial.timeout) == ("agent", "1001", 20)
    assert caller.send(ev.DialResult(dial.id, True)) == []
    assert caller.run.outcome == "dial:1001"


def test_dial_not_answered_goes_to_the_fallback_then_voicemail() -> None:
    caller = Caller(flow(DIAL))
    dial = caller.start()[0]
    out = caller.send(ev.DialResult(dial.id, False, "busy"))
    second = out[0]
    assert (second.kind, second.target) == ("number", "+44")
    out = caller.send(ev.DialResult(second.id, False, "no answer"))
    assert out == [cmd.Voicemail("support", (cmd.Speech("Nobody is here.", "en"),))]
    assert caller.run.outcome == "voicemail:support"
    assert caller.trail("dial_failed") == [("dial_failed", "busy"), ("dial_failed", "no answer")]


def test_dial_gives_up_when_the_runner_never_answers() -> None:
    caller = Caller(flow(DIAL))
    dial = caller.start()[0]
    assert caller.wait(24.9) == []
    out = caller.wait(0.1)  # timeout + 5 s of grace
    assert out[0] == cmd.CancelDial(dial.id)
    assert isinstance(out[1], cmd.Dial)


def test_callback_notify_transfer() -> None:
    caller = Caller(
        flow("""
        steps:
          a:
            - callback: {queue: support}
            - callback: {queue: sales, number: "{{ vars.other }}"}
            - notify:
                channel: sms
                to: "{{ caller.number }}"
                body: "Our brochure: https://demo.example/b"
            - notify:
                channel: fax
                to: "+442079460000"
                body: "Brochure"
                attachment: sounds/beep.wav
            - goto: b
          b:
            - transfer: {to: "+44{{ call.did }}"}
    """)
    )
    out = caller.start()
    assert out == [
        cmd.Callback("support", "+447700900123", {}),
        cmd.Callback("sales", "", {}),
        cmd.Notify("sms", "+447700900123", "Our brochure: https://demo.example/b"),
        cmd.Notify("fax", "+442079460000", "Brochure", None, FLOWS / "sounds/beep.wav"),
        cmd.Transfer("+44100"),
    ]
    assert caller.run.outcome == "transfer:+44100"


def test_voicemail_alone_uses_the_ivr_name() -> None:
    caller = Caller(flow("steps: {a: [voicemail]}"))
    assert caller.start() == [cmd.Voicemail("main")]


# ---------------------------------------------------------------------------
# The trail, hangups, stale events, runaway loops


def test_trail_has_every_step_and_key_with_times() -> None:
    caller = Caller(flow(MENU))
    t0 = caller.now
    caller.start()
    caller.wait(1)
    caller.press("5")  # barges in, typed ahead, then refused by the menu
    caller.finish_play()
    caller.press("2", gap=2)
    steps = [(e.at - t0, e.kind, e.detail) for e in caller.run.trail]
    assert steps == [
        (0, "step", "welcome"),
        (1, "digit", "5"),
        (1, "step", "main"),
        (1, "invalid", "5"),
        (3, "digit", "2"),
        (3, "input", "2"),
        (3, "step", "two"),
        (3, "end", "hangup:two"),
    ]
    summary = caller.run.summary()
    assert summary["digits"] == "52"
    assert summary["steps"] == ["welcome", "main", "two"]
    assert summary["outcome"] == "hangup:two"
    assert summary["version"] == caller.run.flow.digest


def test_caller_hangup_ends_the_run_quietly() -> None:
    caller = Caller(flow(GATHER))
    caller.start()
    assert caller.send(ev.CallerHangup()) == []
    assert caller.run.done and caller.run.outcome == "caller_hangup"
    assert caller.run.next_deadline() is None
    assert caller.send(ev.Digit("1")) == [] and caller.wait(100) == []


def test_events_for_something_else_are_ignored() -> None:
    caller = Caller(flow(HTTP))
    request = caller.start()[0]
    assert caller.send(ev.PlayDone(999)) == []
    assert caller.send(ev.HttpResponse(request.id + 1, 200, {})) == []
    assert caller.send(ev.DialResult(request.id, True)) == []
    assert caller.send(ev.Digit("x")) == []
    assert not caller.run.done


RUNAWAY = """
    fallback: {fallback}
    loop_limit: 20
    steps:
      spin:
        - branch:
            - when: {{var: stop, equals: "yes"}}
              goto: out
        - goto: spin
      out:
        - hangup: {{reason: out}}
      operator:
        - say: Let me find someone.
        - goto: spin
"""


def test_a_runaway_loop_goes_to_the_fallback_once_then_hangs_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caller = Caller(flow(RUNAWAY.format(fallback="operator")))
    with caplog.at_level(logging.WARNING, "switch.ivr"):
        out = caller.start()
    assert spoken(out) == ["Let me find someone."]
    assert "20 steps without a key pressed" in caplog.text
    assert "going to the fallback step 'operator'" in caplog.text
    assert "ivr demo/main call call-1 step 'spin'" in caplog.text
    out = caller.finish_play()
    assert out == [cmd.Hangup("loop")]
    assert caller.run.outcome == "hangup:loop"


def test_keys_pressed_keep_a_looping_menu_alive() -> None:
    caller = Caller(
        flow("""
        loop_limit: 10
        steps:
          main:
            - menu: {options: {"1": main, "2": done}, default: done, timeout: 60}
          done:
            - hangup: {reason: done}
    """)
    )
    caller.start()
    caller.press("1" * 30)
    assert not caller.run.done
    assert caller.press("2") == [cmd.Hangup("done")]


def test_start_twice_is_a_mistake() -> None:
    caller = Caller(flow("steps: {a: [hangup]}"))
    caller.start()
    with pytest.raises(RuntimeError):
        caller.start()
