"""The flow checker: each bad flow gives its message, with file, line, column, step and fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from switch.apps.ivr import FlowError, load_flow, load_flow_file
from switch.apps.ivr import verbs as v

from .caller import FLOWS, context

# Every bad_*.yaml of tests/ivr/flows and what the checker says of it, word
# for word after "<file>:". `{flows}` is that directory.
EXPECTED = {
    "calendar": [
        "4:24: step 'welcome': branch.when.open: unknown calendar 'ofice' in tenant 'demo'; "
        "did you mean 'office'? use one of: office, or define [tenants.demo.hours.ofice]",
    ],
    "duplicate_step": [
        "6:3: step 'menu' is defined twice (first at line 4); rename one or merge them",
    ],
    "empty": [
        "1:1: the file is empty; a flow needs steps: "
        "(see the demo flow, switch/apps/ivr/flows/demo.yaml)",
    ],
    "endless_loop": [
        "5:3: step 'hold': loops forever (hold -> again -> hold): nothing in the loop ends the "
        "call, leads out of it or waits for the caller; add a branch to a step outside the loop, "
        "a hangup, or a gather/menu",
    ],
    "finish_key": [
        "5:20: step 'welcome': gather.finish_key: no value (# starts a comment in YAML); "
        'write the key in quotes: "#" (or "" for no key)',
    ],
    "goto_target": [
        "4:13: step 'welcome': goto: no step named 'mian_menu'; did you mean 'main_menu'? "
        "steps: welcome, main_menu",
    ],
    "http_host": [
        "4:14: step 'welcome': http.url: must start with http:// or https:// and a host written "
        "in the flow (a variable may fill in the path or the query, never the host); "
        "write e.g. https://crm.example/lookup?n={{ caller.number }}",
    ],
    "indentation": [
        "4:7: step 'welcome': say: 'language' is beside the verb, not in it (a list item holds "
        "one verb); make it a key of say: - say: {..., language: ...}",
    ],
    "many": [
        "1:8: start: no step named 'welcom'; did you mean 'welcome'? steps: welcome",
        "5:7: step 'welcome': unknown verb 'sya'; did you mean 'say'? verbs: answer, play, say, "
        "gather, menu, record, set, branch, http, enqueue, dial, voicemail, callback, notify, "
        "transfer, hangup, goto",
        "6:29: step 'welcome': gather.min: 6 is more than max (4); make min at most max",
        "7:13: step 'welcome': goto: no step named 'nowhere'; steps: welcome",
    ],
    "menu_target": [
        "6:16: step 'main': menu.options.2: no step named 'salse'; did you mean 'sales'? "
        "steps: main, support, sales",
    ],
    "missing_key": [
        "4:9: step 'main': menu: missing 'default'; add default: support",
    ],
    "missing_prompt": [
        "3:13: step 'welcome': play: prompt file 'sounds/welcome.wav' does not exist (looked for "
        "{flows}/sounds/welcome.wav); record it there or correct the path (relative to the flow "
        "file)",
    ],
    "no_steps": [
        "1:1: no steps: a flow needs steps: with at least one step; add steps:",
    ],
    "queue_agent": [
        "3:21: step 'welcome': dial.agent: unknown agent '1009' in tenant 'demo'; use one of: "
        '1001, 1002, or define [tenants.demo.agents."1009"]',
        "5:24: step 'queue': enqueue.queue: unknown queue 'suport' in tenant 'demo'; did you mean "
        "'support'? use one of: sales, support, or define [tenants.demo.queues.suport]",
    ],
    "tab_indent": [
        "3:1: YAML syntax error: found character that cannot start any token (while scanning for "
        "the next token); indent with spaces: YAML does not allow tabs",
    ],
    "template": [
        "3:22: step 'welcome': say: bad template: unknown name '__import__' in "
        "{{ __import__('os').system('id') }}; templates read only caller.*, call.*, vars.*",
        "4:34: step 'welcome': set.next: bad template: unexpected '+ 1' in {{ vars.count + 1 }}: "
        "a template reads a value ({{ vars.name }}) and may filter it ({{ vars.name | upper }}); "
        "it does not compute or call",
        "5:31: step 'welcome': say: bad template: caller.numbr is not a value; did you mean "
        "'caller.number'? caller has caller.number, caller.name",
    ],
    "time_condition": [
        "4:24: step 'welcome': branch.when.time: invalid time condition: '17:30-09:00' ends before "
        'it starts; a range cannot cross midnight: split it in two ("17:30-24:00" and '
        '"00:00-09:00" the next day)',
        "6:24: step 'welcome': branch.when.days: invalid day condition: 'mon-fry' is not a day "
        '(day names mon..sun, ranges like "mon-fri", or a list ["sat", "sun"]); '
        "write e.g. mon-fri",
    ],
    "timezone": [
        "1:11: timezone: 'Europe/Londn' is not an IANA time zone; did you mean 'Europe/London'?",
    ],
    "unknown_key": [
        "5:9: step 'account': gather: unknown key 'max_digit'; did you mean 'max'? gather takes: "
        "prompt, into, min, max, finish_key, first_digit_timeout, inter_digit_timeout, retries, "
        "invalid_prompt, no_input_prompt, pattern, barge_in, next, fallback",
    ],
    "unknown_top_key": [
        "1:1: flow: unknown key 'langauge'; did you mean 'language'? flow takes: steps, start, "
        "language, voice, timezone, vars, fallback, loop_limit",
    ],
    "unknown_verb": [
        "4:7: step 'welcome': unknown verb 'plya'; did you mean 'play'? verbs: answer, play, say, "
        "gather, menu, record, set, branch, http, enqueue, dial, voicemail, callback, notify, "
        "transfer, hangup, goto",
    ],
    "unreachable": [
        "5:3: step 'after_hours': this step is never reached: no goto, menu, branch or fallback "
        "leads to it from the start step 'welcome'; remove it or jump to it from another step",
    ],
    "value_type": [
        "6:18: step 'main': menu.timeout: expected a number of seconds, got 'soon' (text); "
        "write e.g. timeout: 5",
        "7:18: step 'main': menu.retries: -1 is out of range; use 0 to 10",
    ],
    "verb_after_goto": [
        "4:7: step 'welcome': say is never run: goto at line 3 always leaves the step; remove it "
        "or move it to a step of its own",
    ],
    "yaml_syntax": [
        "5:1: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence "
        "at line 3, column 12); fix the YAML there",
    ],
}


def problems(path: Path) -> list[str]:
    with pytest.raises(FlowError) as caught:
        load_flow_file(path, context())
    assert str(caught.value) == "\n".join(caught.value.lines)
    return caught.value.lines


def test_every_bad_file_has_its_expectation() -> None:
    files = sorted(path.stem.removeprefix("bad_") for path in FLOWS.glob("bad_*.yaml"))
    assert files == sorted(EXPECTED)
    assert len(files) >= 12


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_flow_message(name: str) -> None:
    path = FLOWS / f"bad_{name}.yaml"
    expected = [f"{path}:{line.replace('{flows}', str(FLOWS))}" for line in EXPECTED[name]]
    assert problems(path) == expected


def check(text: str, **changes) -> list[str]:
    with pytest.raises(FlowError) as caught:
        load_flow(textwrap.dedent(text), "f.yaml", context(**changes))
    return caught.value.lines


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "steps: {a: [{say: {text: hi, voice: 'x y'}}]}",
            "f.yaml:1:37: step 'a': say.voice: 'x y' is not a voice; use an espeak-ng voice such "
            "as en, en-us or cmn (see espeak-ng --voices)",
        ),
        (
            "steps: {a: [{set: {2x: '1'}}]}",
            "f.yaml:1:20: step 'a': set: '2x' is not a variable name; use letters, digits and _ "
            "(e.g. account_number)",
        ),
        (
            "steps: {a: [{say: {{ vars.x }}}]}",
            "f.yaml:1:19: step 'a': say: a value starting with {{ must be in quotes; "
            'write it as "{{ ... }}"',
        ),
        (
            "steps: {a: [{notify: {channel: sms, to: '1', body: b, subject: s}}]}",
            "f.yaml:1:55: step 'a': notify.subject: only for channel: email; remove it",
        ),
        (
            "steps: {a: [{notify: {channel: fax, to: '1', body: b}}]}",
            "f.yaml:1:32: step 'a': notify: a fax needs attachment: the file to send "
            "(e.g. brochure.pdf); add it",
        ),
        (
            "steps: {a: [{notify: {channel: pigeon, to: '1', body: b}}]}",
            "f.yaml:1:32: step 'a': notify.channel: 'pigeon' is not a choice; use one of: "
            "email, sms, fax",
        ),
        (
            "steps: {a: [{menu: {options: {'10': a}, default: a}}]}",
            "f.yaml:1:31: step 'a': menu.options: unknown key '10'; menu takes: "
            "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, *, #",
        ),
        (
            "steps: {a: [{branch: [{else: a}, {when: {did: '1'}, goto: a}]}]}",
            "f.yaml:1:23: step 'a': branch: else must be alone, in the last case; "
            "move it to the end, on its own (- else: step)",
        ),
        (
            "steps: {a: [{branch: [{when: {equals: x}, goto: a}]}, hangup]}",
            "f.yaml:1:31: step 'a': branch.when.equals: tests a variable; add var: NAME beside it",
        ),
        (
            "steps: {a: [{branch: [{when: {queue: support}, goto: a}]}, hangup]}",
            "f.yaml:1:31: step 'a': branch.when: queue needs one of agents_available, waiting or "
            "estimated_wait (e.g. agents_available: {min: 1}); use any/all to combine them",
        ),
        (
            "steps: {a: [{dial: {agent: '1001', number: '1'}}]}",
            "f.yaml:1:20: step 'a': dial: needs exactly one of agent, extension or number "
            "(found agent, number); keep one",
        ),
        (
            "steps: {a: [{play: sounds}]}",
            "f.yaml:1:20: step 'a': play: prompt file 'sounds' is a directory (looked for "
            "{flows}/sounds); name a WAV file",
        ),
        (
            "steps: {a: [{play: bad_empty.yaml}]}",
            "f.yaml:1:20: step 'a': play: prompt file 'bad_empty.yaml' cannot be played: ",
        ),
        (
            "steps: {a: [], b: [hangup]}",
            "f.yaml:1:9: step 'a': expected a list of verbs, got nothing; write each verb on "
            "its own line starting with - (e.g. - say: Hello)",
        ),
        (
            "steps: {9a: [hangup]}",
            "f.yaml:1:9: '9a' is not a step name; start with a letter (letters, digits, _ - .), "
            "e.g. main_menu",
        ),
        (
            "steps: {a: [{gather: {max: 2, max: 3}}]}",
            "f.yaml:1:31: step 'a': gather: 'max' is written twice (first at line 1); keep one",
        ),
        (
            "steps: {a: [{gather: {pattern: '[0-9'}}]}",
            "f.yaml:1:32: step 'a': gather.pattern: '[0-9' is not a regular expression",
        ),
        (
            "steps: {a: [gather]}",
            "f.yaml:1:13: step 'a': gather: needs a value; see the example in README.md "
            "(e.g. - gather: {max: 4, into: account})",
        ),
        (
            "steps: {a: [{say: '{{ vars.x | shout }}'}]}",
            "f.yaml:1:32: step 'a': say: bad template: unknown filter 'shout'; filters are upper, "
            "lower, trim, digits, spell, urlencode, json, default",
        ),
        (
            "steps: {a: [{say: hi}, {goto: a}]}",
            "f.yaml:1:9: step 'a': loops forever (a -> a): nothing in the loop ends the call, "
            "leads out of it or waits for the caller; add a branch to a step outside the loop, "
            "a hangup, or a gather/menu",
        ),
    ],
)
def test_more_mistakes(text: str, message: str) -> None:
    lines = check(text)
    assert len(lines) == 1, lines
    assert lines[0].startswith(message.replace("{flows}", str(FLOWS)))


def test_all_problems_of_a_file_are_reported_in_file_order() -> None:
    lines = check("""\
        steps:
          a:
            - goto: c
            - plya: x
          b:
            - enqueue: nowhere
    """)
    assert [line.split(": ")[0] for line in lines] == ["f.yaml:3:13", "f.yaml:4:7", "f.yaml:6:16"]


def test_a_loop_with_caller_input_or_a_way_out_is_fine() -> None:
    flow = load_flow(
        textwrap.dedent("""
            steps:
              hold:
                - play: sounds/beep.wav
                - branch:
                    - when: {queue: support, agents_available: {min: 1}}
                      goto: queue
                - goto: hold
              queue:
                - enqueue: support
        """),
        "f.yaml",
        context(),
    )
    assert flow.start == "hold"
    load_flow("steps: {a: [{menu: {options: {'1': a}, default: a}}]}", "f.yaml", context())


def test_a_good_flow_with_every_verb(tmp_path: Path) -> None:
    flow = load_flow_file(FLOWS / "every_verb.yaml", context())
    kinds = {type(verb).__name__ for step in flow.steps.values() for verb in step.verbs}
    assert kinds == {
        "Answer", "Play", "Gather", "Menu", "Record", "Set", "Branch", "Http", "Enqueue", "Dial",
        "Voicemail", "Callback", "Notify", "Transfer", "Hangup", "Goto",
    }  # fmt: skip
    assert flow.timezone == "Europe/London" and flow.fallback == "operator"
    assert flow.variables["brand"].render({}) == "Demo"
    first = flow.steps["welcome"].verbs[0]
    assert first == v.Answer(v.At(10, 7))
