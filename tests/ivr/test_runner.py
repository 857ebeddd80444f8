"""The runner with a fake call and channel (no SIP, no RTP): every command, carried out.

The fake channel records what the runner asked (plays, recordings) and
the test plays the caller: keys as `DigitBegin`, plays ending as `Played`,
the hang-up as the call's end. Web services (http, the SMS webhook) are
local aiohttp servers.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from switch.apps.ivr import FlowSet
from switch.apps.ivr import commands as cmd
from switch.apps.ivr.callback import Callbacks
from switch.apps.ivr.http import HttpClient
from switch.apps.ivr.notify import Notifier
from switch.apps.ivr.prompts import Prompts
from switch.apps.ivr.runner import IvrApp, Runner, Services
from switch.apps.ivr.voicemail import Voicemails
from switch.apps.queueing import EnqueueRequest, QueueOutcome
from switch.call.app import AppCall, CallEnded, Connected, NotConnected, Party
from switch.config import NotifyConfig
from switch.media.channel import Closed, Played, Recorded
from switch.media.dtmf.digits import DigitBegin
from switch.media.player import Player
from switch.media.take import RecordResult
from switch.media.wav import Audio, read_wav, write_wav
from tests.ivr.caller import flow

pytestmark = pytest.mark.asyncio


class FakeSpeech:
    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []

    async def say(self, text: str, voice: str = "en", rate: int = 8000) -> Audio:
        self.said.append((text, voice))
        return Audio(bytes(320 * max(1, len(text))), 8000)


class FakePlayback:
    def __init__(self, number: int, items: list, barge_in: bool, loop: bool) -> None:
        self.number = number
        self.items = items
        self.barge_in = barge_in
        self.loop = loop
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def __await__(self):
        return asyncio.shield(self.done).__await__()


class FakeChannel:
    rate = 8000

    def __init__(self) -> None:
        self.events: asyncio.Queue = asyncio.Queue()
        self.plays: list[FakePlayback] = []
        self.records: list[dict[str, Any]] = []
        self.current: FakePlayback | None = None
        self.closed = False
        self.record_audio: bytes | None = None  # what the caller "says" into a recording
        self.fail_record = False

    @property
    def playing(self) -> bool:
        return self.current is not None

    def play(self, items, *, barge_in=None, loop=False) -> FakePlayback:
        self._end("stopped")
        items = items if isinstance(items, Player) else list(items)
        playback = FakePlayback(len(self.plays) + 1, items, bool(barge_in), loop)
        self.plays.append(playback)
        self.current = playback
        if self.closed:
            self._end("closed")
        return playback

    def _end(self, reason: str, digit: str | None = None) -> None:
        playback, self.current = self.current, None
        if playback is not None:
            playback.done.set_result(reason)
            self.events.put_nowait(Played(reason, digit, playback.number))

    def stop(self) -> None:
        self._end("stopped")

    def finish_play(self) -> None:
        """The prompt playing has played to its end."""
        self._end("end")

    def press(self, key: str) -> None:
        self.events.put_nowait(DigitBegin(key))
        if self.current is not None and self.current.barge_in:
            self._end("digit", key)

    def record(self, path, *, max_seconds, silence_seconds, stop_on, beep, **_) -> Any:
        if self.fail_record:
            raise OSError("disk on fire")
        self._end("stopped")
        entry = {"path": Path(path), "silence": silence_seconds, "beep": beep, "stop_on": stop_on}
        entry["done"] = asyncio.get_running_loop().create_future()
        self.records.append(entry)
        if self.record_audio is not None:  # voicemail: the caller speaks, then is silent
            write_wav(path, Audio(self.record_audio, 8000))
            result = RecordResult(Path(path), len(self.record_audio) / 16000, "silence")
            entry["done"].set_result(result)
            self.events.put_nowait(Recorded(result))
        return entry["done"]

    def stop_recording(self) -> None:
        entry = self.records[-1]
        if not entry["done"].done():
            write_wav(entry["path"], Audio(bytes(16000), 8000))
            result = RecordResult(entry["path"], 1.0, "stopped")
            entry["done"].set_result(result)
            self.events.put_nowait(Recorded(result))

    def close(self, reason: str = "hangup") -> None:
        if not self.closed:
            self.closed = True
            self._end("closed")
            self.events.put_nowait(Closed(reason))


def fake_call(channel: FakeChannel, argument: str = "main") -> AppCall:
    async def answer():
        return channel

    hangups: list[str] = []

    def hangup(cause: str, status: int | None) -> None:
        hangups.append(cause)
        call.finished(f"hung up: {cause}")

    call = AppCall("ivr", argument, Party("+447700900123", "Ann", "demo"), "100", 7, answer,
                   hangup)  # fmt: skip
    call.hangups = hangups  # type: ignore[attr-defined]
    return call


class FakeQueues:
    def __init__(self) -> None:
        self.requests: list[EnqueueRequest] = []
        self.outcome = QueueOutcome("abandoned", "support", 1.0)

    async def enqueue(self, call, channel, request) -> QueueOutcome:
        self.requests.append(request)
        return self.outcome

    def waiting(self, tenant, queue=None):
        return []

    def queue_state(self, tenant, queue):
        from switch.apps.ivr import QueueState

        return QueueState(agents_available=0, waiting=3)


def services(tmp_path: Path, **changes: Any) -> Services:
    base: dict[str, Any] = {
        "prompts": Prompts(FakeSpeech()),  # type: ignore[arg-type]
        "queues": FakeQueues(),
        "http": HttpClient(),
        "voicemails": Voicemails(tmp_path),
        "callbacks": Callbacks(tmp_path / "callbacks.jsonl"),
        "recordings": tmp_path / "rec",
    }
    base.update(changes)
    return Services(**base)


async def until(predicate, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.01)


def start(call: AppCall, text: str, svc: Services) -> asyncio.Task:
    return asyncio.ensure_future(Runner(call, flow(text), svc).run())


MENU = """
start: welcome
steps:
  welcome:
    - say: {text: "Welcome.", barge_in: true}
    - menu:
        prompt: "Press 1 for support, 2 for sales."
        options: {"1": support, "2": sales}
        timeout: 0.5
        retries: 1
        default: support
  support:
    - set: {department: support}
    - enqueue: {queue: support, priority: 3}
  sales:
    - set: {department: sales}
    - enqueue: sales
"""


async def test_a_key_during_the_greeting_barges_in_and_lands_in_its_queue(tmp_path):
    channel, svc = FakeChannel(), services(tmp_path)
    call = fake_call(channel)
    task = start(call, MENU, svc)
    await until(lambda: channel.plays)
    assert channel.plays[0].barge_in
    channel.press("2")
    await asyncio.wait_for(task, 5)
    (request,) = svc.queues.requests  # type: ignore[union-attr]
    assert (request.tenant, request.queue) == ("demo", "sales")
    assert request.variables == {"department": "sales"}
    summary = call.variables["ivr"]
    assert summary["digits"] == "2" and summary["outcome"] == "enqueue:sales"
    assert summary["queue"]["result"] == "abandoned"
    assert call.hangups == []  # type: ignore[attr-defined]  # (abandoned: the caller hung up)


async def test_the_menu_prompt_then_no_key_twice_goes_to_the_default(tmp_path):
    channel, svc = FakeChannel(), services(tmp_path)
    call = fake_call(channel)
    task = start(call, MENU, svc)
    await until(lambda: channel.plays)
    channel.finish_play()  # the greeting
    await until(lambda: len(channel.plays) == 2)
    channel.finish_play()  # the menu: then 0.3 s of silence, a retry, silence again
    await until(lambda: len(channel.plays) == 3)
    channel.finish_play()
    await asyncio.wait_for(task, 5)
    assert svc.queues.requests[0].queue == "support"  # type: ignore[union-attr]
    assert svc.queues.requests[0].priority == 3  # type: ignore[union-attr]
    kinds = [e["kind"] for e in call.variables["ivr"]["trail"]]
    assert kinds.count("no_input") == 2 and "fallback" in kinds


async def test_a_new_prompt_replaces_the_one_playing_and_stale_ends_are_ignored(tmp_path):
    text = """
    start: a
    steps:
      a:
        - say: {text: "One.", barge_in: true}
        - say: {text: "Two.", barge_in: true}
        - gather: {into: code, min: 2, max: 2, first_digit_timeout: 5}
        - hangup
    """
    channel, svc = FakeChannel(), services(tmp_path)
    call = fake_call(channel)
    task = start(call, text, svc)
    await until(lambda: channel.plays)
    channel.press("4")  # barges into "One.", kept for the gather: "Two." is skipped
    await until(lambda: channel.events.empty())
    channel.press("2")
    await asyncio.wait_for(task, 5)
    assert call.variables["ivr"]["variables"]["code"] == "42"
    spoken = [item.audio.duration for play in channel.plays for item in play.items]
    assert len(channel.plays) == 1 and len(spoken) == 1
    assert call.hangups == ["normal"]  # type: ignore[attr-defined]


async def test_prompt_files_and_loops_and_silence(tmp_path):
    wav = tmp_path / "hello.wav"
    write_wav(wav, Audio(bytes(800), 8000))
    text = f"""
    start: a
    steps:
      a:
        - play: {{files: ["{wav}", "{wav}"], loop: 3}}
        - gather:
            prompt: [Hi, {{pause: 0.2}}, {{play: "{wav}"}}]
            into: x
            first_digit_timeout: 0.5
            retries: 0
        - hangup
    """
    channel, svc = FakeChannel(), services(tmp_path)
    call = fake_call(channel)
    task = start(call, text, svc)
    await until(lambda: channel.plays)
    items = channel.plays[0].items
    assert len(items) == 6 and items[0].audio.pcm == bytes(800)
    channel.finish_play()
    await until(lambda: len(channel.plays) == 2)
    said, pause, clip = channel.plays[1].items
    assert said.audio.duration > 0 and pause.ms == 200 and clip.audio.pcm == bytes(800)
    channel.finish_play()
    await asyncio.wait_for(task, 5)


async def test_record_with_beep_and_silence_then_the_path_in_a_variable(tmp_path):
    text = """
    start: a
    steps:
      a:
        - record: {into: message, max_length: 30, silence: 3, beep: true, finish_keys: "#"}
        - hangup
    """
    channel, svc = FakeChannel(), services(tmp_path)
    call = fake_call(channel)
    task = start(call, text, svc)
    await until(lambda: channel.records)
    rec = channel.records[0]
    assert rec["beep"] and rec["silence"] == 3 and rec["path"].parent == tmp_path / "rec" / "demo"
    channel.press("#")  # the engine's finish key: StopRecord
    await asyncio.wait_for(task, 5)
    path = call.variables["ivr"]["variables"]["message"]
    assert path == str(rec["path"]) and read_wav(path).duration == 1.0


async def test_a_command_that_fails_ends_the_call_with_a_log_line(tmp_path, caplog):
    text = """
    start: a
    steps:
      a:
        - record: {into: message, max_length: 30}
        - hangup
    """
    channel, svc = FakeChannel(), services(tmp_path)
    channel.fail_record = True
    call = fake_call(channel)
    await asyncio.wait_for(start(call, text, svc), 5)
    assert call.hangups == ["error"]  # type: ignore[attr-defined]
    assert "ivr demo/main call 7 step 'a': StartRecord failed; ending the call" in caplog.text


async def test_the_caller_hanging_up_ends_the_run_where_it_is(tmp_path):
    channel, svc = FakeChannel(), services(tmp_path)
    call = fake_call(channel)
    task = start(call, MENU, svc)
    await until(lambda: channel.plays)
    call.finished("BYE")
    await asyncio.wait_for(task, 5)
    assert call.variables["ivr"]["outcome"] == "caller_hangup"
    assert svc.queues.requests == []  # type: ignore[union-attr]


async def test_dial_without_a_bridge_on_this_node_goes_to_the_fallback(tmp_path, caplog):
    text = """
    start: a
    steps:
      a:
        - dial: {agent: "1001", timeout: 20, fallback: nobody}
      nobody:
        - voicemail: {mailbox: "1001", greeting: "Nobody is here."}
    """
    channel, svc = FakeChannel(), services(tmp_path)
    channel.record_audio = b"\x10\x00" * 8000
    call = fake_call(channel)
    task = start(call, text, svc)
    await until(lambda: channel.plays)  # the greeting, then the beep and the recording
    channel.finish_play()
    await asyncio.wait_for(task, 5)
    trail = call.variables["ivr"]["trail"]
    detail = "this call cannot be connected onward"  # (a call with no way out: the fake's)
    assert ("dial_failed", detail) in [(e["kind"], e["detail"]) for e in trail]
    assert f"cannot dial agent 1001: {detail}" in caplog.text
    # voicemail: greeting, beep, the message and its metadata, complete
    box = tmp_path / "voicemail" / "demo" / "1001"
    (wav,) = box.glob("*.wav")
    meta = json.loads(wav.with_suffix(".json").read_text())
    assert read_wav(wav).duration == 1.0
    assert meta["caller"] == "+447700900123" and meta["seconds"] == 1.0 and meta["did"] == "100"
    assert not list(box.glob("*.tmp"))
    assert call.hangups == ["normal"]  # type: ignore[attr-defined]


async def test_dial_answered_through_connect_ends_the_run_and_waits_for_the_call_end(tmp_path):
    text = """
    start: a
    steps:
      a:
        - dial: {extension: "1002", timeout: 20, fallback: b}
      b:
        - hangup
    """
    asked: list[tuple[str, float]] = []

    async def connect(target: str, timeout: float):
        asked.append((target, timeout))
        return Connected(target, "agent", "1002", "sip:1002@127.0.0.1", 0.0, 1.0)

    channel, svc = FakeChannel(), services(tmp_path)
    call = fake_call(channel)
    call.connect = connect  # type: ignore[attr-defined]
    task = start(call, text, svc)
    await until(lambda: call.variables.get("ivr", {}).get("outcome") == "dial:1002")
    assert asked == [("1002", 20)] and not task.done()  # bridged: until the call ends
    call.finished("BYE")
    await asyncio.wait_for(task, 5)
    assert call.hangups == []  # type: ignore[attr-defined]


async def test_dial_not_answered_goes_to_the_fallback_with_the_status(tmp_path):
    text = """
    start: a
    steps:
      a:
        - dial: {extension: "1002", timeout: 5, fallback: b}
      b:
        - hangup
    """

    async def connect(target: str, timeout: float):
        return NotConnected(486, "Busy Here")

    channel, svc = FakeChannel(), services(tmp_path)
    call = fake_call(channel)
    call.connect = connect  # type: ignore[attr-defined]
    await asyncio.wait_for(start(call, text, svc), 5)
    trail = call.variables["ivr"]["trail"]
    assert ("dial_failed", "486 Busy Here") in [(e["kind"], e["detail"]) for e in trail]
    assert call.hangups == ["normal"]  # type: ignore[attr-defined]


async def test_callback_is_stored_and_the_flow_goes_on(tmp_path):
    text = """
    start: a
    steps:
      a:
        - set: {other: "+447700900999"}
        - callback: {queue: sales, number: "{{ vars.other }}"}
        - hangup
    """
    channel, svc = FakeChannel(), services(tmp_path)
    call = fake_call(channel)
    await asyncio.wait_for(start(call, text, svc), 5)
    await until(lambda: svc.callbacks.pending())  # type: ignore[union-attr]
    (entry,) = svc.callbacks.pending()  # type: ignore[union-attr]
    assert (entry["tenant"], entry["queue"], entry["number"]) == ("demo", "sales", "+447700900999")
    assert entry["variables"] == {"other": "+447700900999"}


async def _server(routes: list[web.RouteDef]):
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def test_http_answer_lands_in_variables_and_a_timeout_goes_to_the_fallback(tmp_path):
    seen: list[dict] = []

    async def crm(request: web.Request) -> web.Response:
        seen.append({"query": dict(request.query), "body": await request.json()})
        return web.json_response({"name": "Ann", "tier": "gold"})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.json_response({})

    runner, base = await _server([web.post("/crm", crm), web.get("/slow", slow)])
    text = f"""
    start: a
    steps:
      a:
        - http:
            url: "{base}/crm?number={{{{ caller.number }}}}"
            method: POST
            body: {{did: "{{{{ call.did }}}}"}}
            timeout: 2
            into: crm
        - set: {{tier: "{{{{ vars.crm.tier }}}}"}}
        - http: {{url: "{base}/slow", timeout: 0.3, into: slow, fallback: late}}
        - hangup
      late:
        - set: {{late: "yes"}}
        - hangup
    """
    channel, svc = FakeChannel(), services(tmp_path)
    call = fake_call(channel)
    try:
        await asyncio.wait_for(start(call, text, svc), 5)
    finally:
        await svc.http.close()  # type: ignore[union-attr]
        await runner.cleanup()
    variables = call.variables["ivr"]["variables"]
    assert variables["crm"] == {"name": "Ann", "tier": "gold"} and variables["tier"] == "gold"
    assert variables["late"] == "yes"
    assert seen == [{"query": {"number": "+447700900123"}, "body": {"did": "100"}}]


async def test_http_to_nowhere_fails_to_the_fallback(tmp_path):
    text = """
    start: a
    steps:
      a:
        - http: {url: "http://127.0.0.1:9/x", timeout: 2, into: crm, fallback: b}
        - hangup
      b:
        - set: {failed: "yes"}
        - hangup
    """
    channel, svc = FakeChannel(), services(tmp_path)
    call = fake_call(channel)
    await asyncio.wait_for(start(call, text, svc), 5)
    await svc.http.close()  # type: ignore[union-attr]
    assert call.variables["ivr"]["variables"]["failed"] == "yes"
    assert any(e["kind"] == "http_failed" for e in call.variables["ivr"]["trail"])


async def test_sms_goes_to_the_webhook_with_the_bearer_token(tmp_path):
    got: list[tuple[str, dict]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append((request.headers.get("Authorization", ""), await request.json()))
        return web.json_response({"ok": True})

    runner, base = await _server([web.post("/sms", hook)])
    notifier = Notifier(NotifyConfig(sms_url=f"{base}/sms", webhook_token="s3cret"))
    text = """
    start: a
    steps:
      a:
        - notify: {channel: sms, to: "{{ caller.number }}", body: "Brochure: https://x.example/b"}
        - hangup
    """
    channel, svc = FakeChannel(), services(tmp_path, notifier=notifier)
    call = fake_call(channel)
    try:
        await asyncio.wait_for(start(call, text, svc), 5)
        await until(lambda: notifier.sent + notifier.failed)
    finally:
        await runner.cleanup()
    assert notifier.sent == 1
    assert got == [("Bearer s3cret", {"channel": "sms", "to": "+447700900123",
                    "body": "Brochure: https://x.example/b", "subject": None,
                    "tenant": "demo"})]  # fmt: skip


async def test_notify_without_settings_logs_and_the_flow_goes_on(tmp_path, caplog):
    notifier = Notifier(NotifyConfig())
    sent = await notifier.send("demo", cmd.Notify("email", "a@b.example", "hi"))
    assert not sent and "smtp_host is not set" in caplog.text
    assert not await notifier.send("demo", cmd.Notify("fax", "+44", "hi"))
    assert "fax_url is not set" in caplog.text


async def test_a_call_finishes_on_the_flow_it_started_with_after_a_reload(tmp_path):
    first = flow(MENU)
    second = flow(MENU.replace("default: support", "default: sales"))
    current = {"set": FlowSet({("demo", "main"): first})}
    channel = FakeChannel()
    svc = services(tmp_path, flows=lambda: current["set"])
    call = fake_call(channel)
    task = asyncio.ensure_future(IvrApp(svc)(call))
    await until(lambda: channel.plays)
    current["set"] = FlowSet({("demo", "main"): second}, version=2)  # the reload
    for n in range(1, 4):
        await until(lambda n=n: len(channel.plays) == n)
        channel.finish_play()
    await asyncio.wait_for(task, 5)
    assert call.variables["ivr"]["version"] == first.digest != second.digest
    assert svc.queues.requests[0].queue == "support"  # type: ignore[union-attr]
    # a new call takes the new flow
    channel2 = FakeChannel()
    call2 = fake_call(channel2)
    task2 = asyncio.ensure_future(IvrApp(svc)(call2))
    await until(lambda: channel2.plays)
    call2.finished("BYE")
    await asyncio.wait_for(task2, 5)
    assert call2.variables["ivr"]["version"] == second.digest


async def test_an_unknown_flow_is_refused(tmp_path):
    call = fake_call(FakeChannel(), argument="nope")
    await IvrApp(services(tmp_path))(call)
    assert call.hangups == ["unavailable"]  # type: ignore[attr-defined]


async def test_the_caller_gone_before_the_answer(tmp_path):
    channel = FakeChannel()
    call = fake_call(channel)

    async def gone():
        raise CallEnded("gone")

    call._answer = gone  # type: ignore[method-assign]
    await asyncio.wait_for(start(call, MENU, services(tmp_path)), 5)
    assert call.variables["ivr"]["outcome"] == "caller_hangup"
