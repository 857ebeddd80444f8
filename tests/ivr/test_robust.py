"""No flow file, however broken, makes the checker fail with anything but its own messages;
no run of a good flow fails on events in any order."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switch.apps.ivr import CallInfo, FlowError, Run, load_flow
from switch.apps.ivr import events as ev
from switch.apps.ivr.parse import TOP_KEYS, VERBS

from .caller import FLOWS, context

GOOD = (FLOWS / "every_verb.yaml").read_text()
PIECES = ["{", "}", "[", "]", ":", "- ", "\n", "  ", "'", '"', "{{", "}}", "~", "*a", "&a ",
          "!!binary ", "\t", "|", "#", "?", ",", "\x00", "~user/x.wav", "goto", "null"]  # fmt: skip
KEYS = ["prompt", "into", "min", "max", "finish_key", "retries", "options", "default", "timeout",
        "text", "language", "files", "loop", "url", "queue", "agent", "number", "channel", "to",
        "body", "when", "goto", "else", "var", "equals", "time", "days", "open", "any", "not",
        "say", "play", "pause", "1", "#"]  # fmt: skip
SCALARS = st.sampled_from(
    [
        None,
        True,
        0,
        -1,
        2.5,
        1e12,
        "",
        "a",
        "support",
        "1001",
        "office",
        "{{ vars.x }}",
        "{{ bad",
        "09:00-17:00",
        "mon-fri",
        "sounds/beep.wav",
        "#",
        "en",
        "GET",
        "sms",
        "[0-9]+",
        "(",
        "https://x.example/{{ caller.number }}",
    ]
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=8,
)
VERB = st.sampled_from(VERBS) | st.dictionaries(
    st.sampled_from(VERBS), VALUES, min_size=1, max_size=1
)
DOCS = st.fixed_dictionaries(
    {
        "steps": st.dictionaries(
            st.sampled_from(["a", "b", "c"]), st.lists(VERB, max_size=3), min_size=1
        )
    },
    optional={key: VALUES for key in TOP_KEYS if key != "steps"},
)


def checked(text: str):
    try:
        return load_flow(text, "f.yaml", context())
    except FlowError as exc:
        assert exc.lines and all(line.startswith("f.yaml:") for line in exc.lines)
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(GOOD)), st.sampled_from(PIECES), st.booleans()),
        min_size=1,
        max_size=4,
    )
)
def test_mangled_files_get_messages(edits: list[tuple[int, str, bool]]) -> None:
    text = GOOD
    for at, piece, insert in edits:
        text = text[:at] + piece + text[at:] if insert else text[:at] + text[at + 1 :]
    checked(text)


EVENTS = st.lists(
    st.one_of(
        st.builds(ev.Digit, st.sampled_from("0123456789*#x")),
        st.builds(ev.PlayDone, st.integers(1, 6)),
        st.builds(ev.RecordDone, st.integers(1, 6), st.just("/r.wav"), st.just(1.0)),
        st.builds(ev.HttpResponse, st.integers(1, 6), st.sampled_from([200, 404]), VALUES),
        st.builds(ev.HttpFailed, st.integers(1, 6), st.just("refused")),
        st.builds(ev.DialResult, st.integers(1, 6), st.booleans()),
        st.floats(0.1, 60),  # time passes and timers fire
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCS, EVENTS)
def test_random_flows_are_checked_and_good_ones_run(doc: dict, events: list) -> None:
    flow = checked(yaml.safe_dump(doc, allow_unicode=True))
    if flow is None:
        return
    now = 1_700_000_000.0
    run = Run(flow, CallInfo("demo", "+447700900123", did="100"), now)
    run.start(now)
    for event in events:
        if isinstance(event, float):
            now += event
            run.handle_timer(now)
            deadline = run.next_deadline()
            assert deadline is None or deadline > now  # what was due has been handled
        else:
            run.handle(event, now)
        if run.done:
            assert run.next_deadline() is None and run.outcome


@settings(max_examples=200, deadline=None)
@given(EVENTS)
def test_the_every_verb_flow_survives_any_events(events: list) -> None:
    flow = load_flow(GOOD, "every_verb.yaml", context())
    now = 1_700_000_000.0
    run = Run(flow, CallInfo("demo", "+447700900123", did="100"), now)
    run.start(now)
    for event in events:
        if isinstance(event, float):
            now += event
            run.handle_timer(now)
        else:
            run.handle(event, now)
    assert run.trail[0].kind == "step"
