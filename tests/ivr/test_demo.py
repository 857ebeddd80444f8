"""The demo IVR (DID 100): its greeting, its menu, and every way out of it."""
# ruff: noqa: RUF001 (Mandarin prompts use full-width commas on purpose)

from __future__ import annotations

import pytest

from switch.apps.ivr import commands as cmd
from switch.apps.ivr import load_flows
from switch.apps.ivr.verbs import Flow
from switch.config import load_demo_config

from .caller import Caller, spoken

MENU_EN = "For support, press 1. For sales, press 2. To receive our information by e-mail, press 3."


@pytest.fixture(scope="module")
def demo() -> Flow:
    flows = load_flows(load_demo_config())
    flow = flows.get("demo", "demo")
    assert flow is not None
    assert flow.source.endswith("switch/apps/ivr/flows/demo.yaml")
    return flow


def at_menu(demo: Flow) -> Caller:
    """A caller who has heard both greetings and the menu's prompt."""
    caller = Caller(demo)
    out = caller.start()
    assert caller.kinds(out) == ["Answer", "Play"]
    assert caller.last(cmd.Play).items == (cmd.Speech("Welcome to the Demo Company.", "en"),)
    out = caller.finish_play()
    assert caller.last(cmd.Play).items == (cmd.Speech("欢迎致电演示公司。", "cmn"),)
    out = caller.finish_play()
    menu = caller.last(cmd.Play)
    assert [(item.text, item.voice) for item in menu.items] == [
        (MENU_EN, "en"),
        ("技术支持请按1，销售请按2，通过电子邮件获取资料请按3。", "cmn"),
    ]
    assert menu.barge_in
    caller.finish_play()
    return caller


def test_1_goes_to_the_support_queue(demo: Flow) -> None:
    caller = at_menu(demo)
    out = caller.press("1")
    assert out == [
        cmd.Enqueue("support", 0, {}, {"email": "caller@demo.example", "department": "support"})
    ]
    assert caller.run.outcome == "enqueue:support"


def test_2_goes_to_the_sales_queue(demo: Flow) -> None:
    caller = at_menu(demo)
    assert caller.press("2")[0].queue == "sales"


def test_3_sends_information_by_email_then_says_goodbye(demo: Flow) -> None:
    caller = at_menu(demo)
    out = caller.press("3")
    notify = out[0]
    assert isinstance(notify, cmd.Notify)
    assert (notify.channel, notify.to) == ("email", "caller@demo.example")
    assert "+447700900123" in notify.body
    assert spoken(out) == [
        "Thank you. We have sent our information to your e-mail address. Goodbye."
    ]
    caller.finish_play()
    assert caller.finish_play() == [cmd.Hangup("flow")]


def test_two_invalid_keys_fall_back_to_support(demo: Flow) -> None:
    caller = at_menu(demo)
    out = caller.press("7")
    assert spoken(out) == [
        "Sorry, that is not one of the choices.",
        "对不起，您的选择无效。",
        MENU_EN,
        "技术支持请按1，销售请按2，通过电子邮件获取资料请按3。",
    ]
    caller.finish_play()
    out = caller.press("9")
    assert isinstance(out[0], cmd.Enqueue) and out[0].queue == "support"
    assert caller.trail("invalid") == [("invalid", "7"), ("invalid", "9")]


def test_nothing_pressed_falls_back_to_support(demo: Flow) -> None:
    caller = at_menu(demo)
    assert caller.wait(4.9) == []
    out = caller.wait(0.1)
    assert spoken(out)[:2] == ["Sorry, I did not hear a choice.", "对不起，我们没有收到您的选择。"]
    caller.finish_play()
    out = caller.wait(5)
    assert isinstance(out[0], cmd.Enqueue) and out[0].queue == "support"
    assert caller.trail("no_input") == [("no_input", ""), ("no_input", "")]
    assert caller.run.digits == ""


def test_a_key_during_the_greeting_skips_the_rest(demo: Flow) -> None:
    caller = Caller(demo)
    caller.start()
    greeting = caller.last(cmd.Play)
    out = caller.press("2")
    assert out[0] == cmd.StopPlay(greeting.id)
    assert isinstance(out[1], cmd.Enqueue) and out[1].queue == "sales"
    assert caller.run.summary()["steps"] == ["welcome", "main_menu", "sales"]


def test_every_builtin_flow_is_shipped_and_good() -> None:
    from switch.apps.ivr import FlowContext, builtin_path, load_flow_file
    from switch.config import BUILTIN_IVR_FLOWS

    demo_tenant = load_demo_config().tenants["demo"]
    for name in BUILTIN_IVR_FLOWS:
        path = builtin_path(name)
        context = FlowContext(
            tenant="demo",
            ivr=name,
            queues=frozenset(demo_tenant.queues),
            agents=frozenset(demo_tenant.agents),
            base_dir=path.parent,
        )
        assert load_flow_file(path, context).name == name
