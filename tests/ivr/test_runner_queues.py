"""The queue service v0 (switch.apps.queues) with a fake call and channel: music,
the waiting list, max_wait and its exit, max_len, join_empty, hours, hang-up."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest

from switch.apps.queueing import EnqueueRequest
from switch.apps.queues import QueueService
from switch.config import demo_config_text, load_config
from tests.ivr.test_runner import FakeChannel, fake_call, until

pytestmark = pytest.mark.asyncio


def config(extra: str = ""):
    text = demo_config_text()
    marker = '[tenants.demo.queues.sales]\nstrategy = "longest-idle"\n'
    assert marker in text
    path = Path(tempfile.mkdtemp()) / "node.toml"
    path.write_text(text.replace(marker, marker + extra))
    return load_config(path)


async def test_a_caller_waits_with_music_listed_with_the_ivr_variables_until_hanging_up():
    queues = QueueService(config())
    channel = FakeChannel()
    call = fake_call(channel)
    request = EnqueueRequest("demo", "sales", 2, {"english": 3}, {"department": "sales"})
    task = asyncio.ensure_future(queues.enqueue(call, channel, request))
    await until(lambda: queues.waiting("demo"))
    (waiting,) = queues.waiting("demo", "sales")
    assert (waiting.call_id, waiting.priority, waiting.caller) == (7, 2, "+447700900123")
    assert waiting.variables == {"department": "sales"} and waiting.skills == {"english": 3}
    assert queues.queue_state("demo", "sales").waiting == 1
    assert queues.waiting("demo", "support") == []
    music = channel.plays[0]
    assert music.loop is False and not music.barge_in  # a looping Player, keys do not stop it
    assert music.items.loop and not music.items.interruptible  # type: ignore[attr-defined]
    await asyncio.sleep(0.2)
    call.finished("BYE")
    outcome = await asyncio.wait_for(task, 2)
    assert outcome.result == "abandoned" and outcome.queue == "sales" and outcome.waited >= 0.2
    assert queues.waiting("demo") == []


async def test_max_wait_sends_the_caller_to_the_exit_and_a_queue_exit_moves_them():
    queues = QueueService(config('max_wait = 1\nexits.max_wait = { queue = "support" }\n'))
    channel = FakeChannel()
    call = fake_call(channel)
    task = asyncio.ensure_future(queues.enqueue(call, channel, EnqueueRequest("demo", "sales")))
    await until(lambda: queues.waiting("demo", "sales"))
    since = queues.waiting("demo")[0].since
    await until(lambda: queues.waiting("demo", "support"), 4)
    assert queues.waiting("demo", "support")[0].since == since  # seniority kept
    assert queues.waiting("demo", "sales") == []
    call.finished("BYE")
    outcome = await asyncio.wait_for(task, 2)
    assert outcome.result == "abandoned" and outcome.queue == "support"


async def test_max_wait_to_voicemail_is_an_exit_for_the_caller_of_enqueue():
    queues = QueueService(config('max_wait = 1\nexits.max_wait = { voicemail = "sales" }\n'))
    channel = FakeChannel()
    call = fake_call(channel)
    outcome = await asyncio.wait_for(
        queues.enqueue(call, channel, EnqueueRequest("demo", "sales")), 4
    )
    assert (outcome.result, outcome.destination) == ("exit", "voicemail:sales")
    assert 1 <= outcome.waited < 3
    assert not channel.playing  # the music stopped


async def test_a_full_queue_and_an_empty_one_refuse_to_their_exits():
    queues = QueueService(
        config(
            'max_len = 1\njoin_empty = true\nexits.full = { message = "All our lines are busy." }\n'
        )
    )
    first, second = FakeChannel(), FakeChannel()
    call1, call2 = fake_call(first), fake_call(second)
    task = asyncio.ensure_future(queues.enqueue(call1, first, EnqueueRequest("demo", "sales")))
    await until(lambda: queues.waiting("demo"))
    outcome = await queues.enqueue(call2, second, EnqueueRequest("demo", "sales"))
    assert (outcome.result, outcome.destination) == ("exit", "message:All our lines are busy.")
    call1.finished("BYE")
    await task

    empty = QueueService(config("join_empty = false\n"))  # no agents yet: always empty
    outcome = await empty.enqueue(call2, second, EnqueueRequest("demo", "sales"))
    assert (outcome.result, outcome.destination) == ("exit", "hangup")


async def test_a_closed_queue_sends_callers_to_its_closed_exit():
    queues = QueueService(
        config('exits.closed = { ivr = "demo" }\n[tenants.demo.queues.sales.hours]\nmon = []\n')
    )
    channel = FakeChannel()
    outcome = await queues.enqueue(fake_call(channel), channel, EnqueueRequest("demo", "sales"))
    assert (outcome.result, outcome.destination) == ("exit", "ivr:demo")


async def test_an_agent_taking_the_caller_is_answered():
    queues = QueueService(config())
    channel = FakeChannel()
    call = fake_call(channel)
    task = asyncio.ensure_future(queues.enqueue(call, channel, EnqueueRequest("demo", "sales")))
    await until(lambda: queues.waiting("demo"))
    queues._entries[("demo", "sales")][0].take("1004")  # where the ACD will hand a caller over
    outcome = await asyncio.wait_for(task, 2)
    assert (outcome.result, outcome.agent) == ("answered", "1004")
