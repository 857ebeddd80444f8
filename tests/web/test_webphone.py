"""The agent webphone in a real browser (Debian's Chromium) against a live node.

The page is the built webphone served at /phone/; it logs in through the
REST API, registers with JsSIP over the node's /sip WebSocket and follows
the CTI socket. The demo trunk calls DID 200 (queue support) from a test
phone with its own RTP socket, so that audio is checked by content: the
caller sends CALLER_HZ, the browser's fake microphone plays AGENT_HZ; the
caller must hear AGENT_HZ and the page's WebRTC stats must show inbound
audio energy growing. Screenshots go to test-output/.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from switch.node import Node
from switch.sip.message import Request
from switch.web.static import PHONE_DIR
from tests.integration.conftest import running_node, sip_address
from tests.integration.test_acd_calls import _status, _until, queue_call
from tests.integration.test_app_connect import (
    AGENT_HZ,
    CALLER_HZ,
    _heard,
    _loud,
    _next,
    _reply,
    _sdp,
    _talk,
    agent_phone,
    rtp_socket,
)
from tests.integration.test_apps import RtpSocket, _invite, _offer
from tests.integration.test_ivr import _sipp
from tests.media.audio import peaks
from tests.support.chromium import chromium, needs_chromium, screenshot_path, tone_wav
from tests.support.sipclient import UdpPhone
from tests.support.sipp import needs_sipp

pytestmark = [needs_chromium, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def _built() -> None:
    # Not a skip: `make test` builds the page (make install), so a missing
    # build is a broken setup to fix, not a reason to test less.
    if not (PHONE_DIR / "index.html").is_file():
        pytest.fail(
            "the webphone is not built: run `make install` "
            "(or `npm ci && npm run build` in webphone/)"
        )


WRAPUP = 3  # seconds of wrap-up on queue support in these tests
LAPTOP = {"width": 1366, "height": 768}


@contextlib.asynccontextmanager
async def phone_node(tmp_path: Path) -> AsyncIterator[Node]:
    changes = {"wrapup = 10               #": f"wrapup = {WRAPUP}                #"}
    async with running_node(tmp_path, changes=changes) as node:
        yield node


async def _log_in(page: Page, node: Node, ext: str = "1001") -> None:
    await page.goto(f"{node.http_url}/phone/")
    await page.get_by_label("Username").fill(ext)
    await page.get_by_label("Password").fill(f"agent{ext}")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("#sip-status")).to_have_text("Phone ready", timeout=10_000)


ANSWER_DIRECTION = {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


class FarEnd:
    """The caller's side of a call in progress: answers the node's in-dialog
    requests (the agent's hold and resume re-INVITEs, BYE) as a carrier would,
    and keeps them for the test to read."""

    def __init__(self, trunk: UdpPhone, media_port: int) -> None:
        self.trunk = trunk
        self.media_port = media_port
        self.requests: list[Request] = []
        self._version = 1
        self._task = asyncio.ensure_future(self._serve())

    async def _serve(self) -> None:
        while True:
            try:
                msg = await self.trunk.receive(3600)
            except TimeoutError:
                continue
            if not isinstance(msg, Request) or msg.method == "ACK":
                continue
            self.requests.append(msg)
            if msg.method == "INVITE":
                self._version += 1
                sdp = _offer(self.media_port).replace("o=caller 1 1", f"o=caller 1 {self._version}")
                offered = next((d for d in ANSWER_DIRECTION if f"a={d}" in msg.body.decode()), "")
                if offered:
                    sdp += f"a={ANSWER_DIRECTION[offered]}\r\n"
                _reply(self.trunk, msg, 200, "c1", sdp)
            else:
                _reply(self.trunk, msg, 200, "c1")

    async def next(self, method: str, seen: int = 0, seconds: float = 5.0) -> Request:
        """The first `method` request after the first `seen` requests."""
        deadline = time.monotonic() + seconds
        while True:
            for req in self.requests[seen:]:
                if req.method == method:
                    return req
            if time.monotonic() > deadline:
                raise AssertionError(f"no {method} within {seconds} s: {self.requests}")
            await asyncio.sleep(0.05)

    def close(self) -> None:
        self._task.cancel()


def keep_console(page: Page, name: str) -> None:
    """The page's console, in test-output/<name>.log (JsSIP logs there when asked)."""
    path = screenshot_path(name).with_suffix(".log")
    path.write_text("")

    def write(line: str) -> None:
        with path.open("a") as out:
            out.write(line.replace("%c", "") + "\n")

    page.on("console", lambda m: write(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: write(f"pageerror: {e}"))


async def _inbound(page: Page, seconds: float = 3.0) -> dict:
    """The page's inbound audio stats; they exist once the first packet came."""
    deadline = time.monotonic() + seconds
    while (stats := await page.evaluate("window.webphone.inboundAudio()")) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"no inbound audio on the page within {seconds} s")
        await asyncio.sleep(0.1)
    return stats


async def _grows(page: Page, talk: asyncio.Future | None = None) -> tuple[dict, dict]:
    """Inbound audio stats before and after the caller talks (or a second)."""
    before = await _inbound(page)
    if talk is not None:
        await talk
    else:
        await asyncio.sleep(1.0)
    await asyncio.sleep(0.3)
    return before, await _inbound(page)


async def test_an_agent_logs_in_takes_a_queue_call_with_screen_pop_audio_hold_and_wrapup(
    tmp_path,
):
    wav = tone_wav(tmp_path / "agent.wav", AGENT_HZ)
    async with phone_node(tmp_path) as node, chromium(wav) as browser:
        page = await browser.new_page(viewport=LAPTOP)
        keep_console(page, "webphone-call")
        await page.goto(f"{node.http_url}/phone/")
        await page.evaluate("localStorage.debug = 'JsSIP:*'")
        await page.screenshot(path=screenshot_path("webphone-login"))
        await _log_in(page, node)
        await expect(page.locator("#agent-name")).to_have_text("Alice Archer (1001)")

        # State control: not ready with a reason, then available.
        await page.get_by_label("Reason").select_option("break")
        await page.get_by_role("button", name="Not ready").click()
        await _until(lambda: _status(node, "1001") == ("not-ready", "break"), what="on a break")
        await expect(page.locator("#agent-state")).to_have_text("Not ready \u2013 Break")
        await page.get_by_role("button", name="Available").click()
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        await expect(page.locator("#agent-state")).to_have_text("Available")
        await page.screenshot(path=screenshot_path("webphone-idle"))

        async with queue_call(node) as (trunk, caller_media, _answered, node_a):
            far = FarEnd(trunk, caller_media.port)
            # The screen pop, before answering.
            panel = page.locator("#call-panel")
            await expect(panel.get_by_role("heading")).to_have_text("Incoming call")
            await expect(page.locator("#pop-caller")).to_contain_text("+442079460001")
            await expect(page.locator("#pop-caller")).to_contain_text("Ann Caller")
            await expect(page.locator("#pop-queue")).to_have_text("support")
            await expect(page.locator("#pop-did")).to_contain_text("200")
            await expect(page.locator("#pop-wait")).not_to_have_text("\u2013")
            assert _status(node, "1001")[0] == "reserved"
            # The pop is the offer of this very call (the INVITE's X-Switch-Call).
            (call,) = node.calls._by_invite.values()
            match = await page.evaluate("window.webphone.popMatch()")
            assert match == {"callId": str(call.id), "offer": call.id}, match
            assert await page.evaluate("window.webphone.ringing"), "no ringtone"
            await page.screenshot(path=screenshot_path("webphone-ringing"))

            await page.get_by_role("button", name="Answer").click()
            await _until(lambda: _status(node, "1001")[0] == "on-call", 10, "1001 on call")
            await expect(panel.get_by_role("heading")).to_have_text("On call")
            assert not await page.evaluate("window.webphone.ringing"), "rings on"

            # Audio both ways: the caller's tone reaches the page, the page's the caller.
            since = time.monotonic()
            talk = asyncio.ensure_future(_talk(caller_media, node_a, CALLER_HZ, 2.0, 0x1111))
            before, after = await _grows(page, talk)
            assert after["bytesReceived"] > before["bytesReceived"] + 5000, (before, after)
            assert after["totalAudioEnergy"] > before["totalAudioEnergy"] + 0.01, (before, after)
            to_caller = _loud(_heard(caller_media, since))
            assert len(to_caller) >= 8000, "the caller heard too little of the agent"
            assert peaks(to_caller[-8000:], 8000, 1) == pytest.approx([AGENT_HZ], abs=15)
            await page.screenshot(path=screenshot_path("webphone-on-call"))

            # Mute by its shortcut, unmute by the button.
            await page.keyboard.press("m")
            await expect(page.get_by_role("button", name="Unmute")).to_be_visible()
            await page.get_by_role("button", name="Unmute").click()
            await expect(page.get_by_role("button", name="Mute", exact=True)).to_be_visible()

            # Hold, then resume: the call goes on and audio flows again.
            # The hold reaches the caller's side as a re-INVITE (sendonly), the
            # resume as another (sendrecv again).
            seen = len(far.requests)
            await page.get_by_role("button", name="Hold").click()
            hold = await far.next("INVITE", seen)
            assert "a=sendonly" in hold.body.decode()
            await expect(page.get_by_role("button", name="Resume")).to_be_visible(timeout=5000)
            await expect(panel.get_by_role("heading")).to_have_text("On hold")
            await page.screenshot(path=screenshot_path("webphone-on-hold"))
            seen = len(far.requests)
            await page.get_by_role("button", name="Resume").click()
            resume = await far.next("INVITE", seen)
            assert "a=sendonly" not in resume.body.decode()
            await expect(page.get_by_role("button", name="Hold")).to_be_visible(timeout=5000)
            # A new SSRC: _talk numbers its packets from 0 again, which the
            # browser's SRTP would drop as replays under the first one.
            talk = asyncio.ensure_future(_talk(caller_media, node_a, CALLER_HZ, 1.5, 0x3333))
            await asyncio.sleep(0.3)
            before, after = await _grows(page, talk)
            assert after["totalAudioEnergy"] > before["totalAudioEnergy"] + 0.005, (before, after)
            assert _status(node, "1001")[0] == "on-call"

            seen = len(far.requests)
            await page.get_by_role("button", name="Hang up").click()
            await far.next("BYE", seen)
            far.close()

        # Wrap-up: the node's wrap-up state, the form, the call in the day's list.
        await _until(lambda: _status(node, "1001")[0] == "wrap-up", what="1001 in wrap-up")
        wrapup = page.locator("#wrapup-panel")
        await expect(wrapup).to_be_visible()
        # The countdown comes from the node's wrap-up end in the agent.state event.
        await expect(page.locator("#state-line")).to_contain_text(re.compile(r"[0-9]+ s left"))
        await page.get_by_label("Disposition").select_option("resolved")
        await page.get_by_label("Notes").fill("Asked about invoice 42; answered.")
        await page.screenshot(path=screenshot_path("webphone-wrapup"))
        await wrapup.get_by_role("button", name="Save").click()
        await expect(wrapup).to_be_hidden()
        await expect(page.locator("#state-line")).to_contain_text("Saved")
        # The form is on the call's CDR (through the records' outbox).
        assert await node.records.flush()
        (cdr,) = [c for c in await node.records.fetch("cdrs") if c["queue"] == "support"]
        assert (cdr["disposition"], cdr["notes"], cdr["agent"]) == (
            "resolved", "Asked about invoice 42; answered.", "1001",
        )  # fmt: skip
        row = page.locator("#history tbody tr").first
        await expect(row).to_contain_text("+442079460001")
        await expect(row).to_contain_text("support")
        await expect(row).to_contain_text("Resolved")
        await _until(lambda: _status(node, "1001")[0] == "available", WRAPUP + 3, "available")
        await expect(page.locator("#agent-state")).to_have_text("Available")
        await page.screenshot(path=screenshot_path("webphone-after-call"))


async def test_the_page_says_when_the_connection_drops_and_registers_again(tmp_path):
    async with phone_node(tmp_path) as node, chromium() as browser:
        page = await browser.new_page(viewport=LAPTOP)
        keep_console(page, "webphone-reconnect")
        await page.goto(f"{node.http_url}/phone/")
        await page.evaluate("localStorage.debug = 'JsSIP:Transport,JsSIP:UA'")
        await _log_in(page, node)
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        assert node.transports is not None
        flows = [c for c in node.transports._conns.values() if c.flow.transport == "ws"]
        assert flows, "the page has no SIP WebSocket open"
        for conn in flows:
            conn.abort()  # as a network drop: no close frame
        banner = page.get_by_role("alert").filter(has_text="Connection to the switch lost")
        await expect(banner).to_be_visible(timeout=5000)
        await page.screenshot(path=screenshot_path("webphone-connection-lost"))
        # JsSIP reconnects and registers again; the ACD gives the agent back their state.
        await expect(page.locator("#sip-status")).to_have_text("Phone ready", timeout=15_000)
        await expect(banner).to_be_hidden()
        await _until(lambda: _status(node, "1001")[0] == "available", 10, "available again")

        # The CTI socket closed by the node: said, and opened again.
        assert node.api is not None
        (client,) = node.api.cti.clients
        await client.ws.close()
        lost = page.get_by_role("alert").filter(has_text="Live updates lost")
        await expect(lost).to_be_visible(timeout=5000)
        await expect(lost).to_be_hidden(timeout=10_000)
        await _until(lambda: len(node.api.cti.clients) == 1, 5, "the CTI socket back")

        # Log out: the ACD logs the agent out, the page unregisters and shows the login.
        await page.get_by_role("button", name="Log out").click()
        await expect(page.get_by_role("button", name="Log in")).to_be_visible()
        await _until(lambda: _status(node, "1001")[0] == "logged-out", 5, "logged out")
        await _until(lambda: not node.api.cti.clients, 5, "the CTI socket closed")


async def test_a_blocked_microphone_is_shown_and_sets_the_agent_not_ready(tmp_path):
    async with phone_node(tmp_path) as node, chromium(microphone=False) as browser:
        page = await browser.new_page(viewport=LAPTOP)
        await _log_in(page, node)
        alert = page.get_by_role("alert").filter(has_text="Your microphone is blocked")
        await expect(alert).to_be_visible()
        # The presence frame on the CTI socket: the ACD offers no calls to a muted browser.
        await _until(
            lambda: _status(node, "1001") == ("not-ready", "disconnected"), what="not ready"
        )
        await expect(page.locator("#agent-state")).to_have_text("Not ready \u2013 Disconnected")
        await page.screenshot(path=screenshot_path("webphone-microphone-blocked"))


async def test_without_the_api_the_page_logs_in_over_sip_alone(tmp_path):
    async with phone_node(tmp_path) as node, chromium() as browser:
        page = await browser.new_page(viewport=LAPTOP)
        # A node without the REST API answers 404 there.
        await page.route(
            "**/api/login",
            lambda route: route.fulfill(status=404, json={"error": "not_found", "message": "no"}),
        )
        await _log_in(page, node)
        await expect(page.locator("#state-panel")).to_be_hidden()
        await expect(page.get_by_text("This switch has no agent API")).to_be_visible()
        # Registered with the SIP password: the ACD sees the agent's device.
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")


async def test_a_wrong_password_is_refused_with_a_message(tmp_path):
    async with phone_node(tmp_path) as node, chromium() as browser:
        page = await browser.new_page(viewport=LAPTOP)
        await page.goto(f"{node.http_url}/phone/")
        await page.get_by_label("Username").fill("1001")
        await page.get_by_label("Password").fill("not-the-password")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
        await expect(page.locator("#desk-view")).to_be_hidden()


async def test_the_page_speaks_simplified_chinese_and_remembers_it(tmp_path):
    async with phone_node(tmp_path) as node, chromium() as browser:
        page = await browser.new_page(viewport=LAPTOP)
        await page.goto(f"{node.http_url}/phone/")
        await page.get_by_label("Language").select_option("zh")
        await expect(page.get_by_role("button", name="登录")).to_be_visible()
        await page.reload()
        await page.get_by_label("用户名").fill("1002")
        await page.get_by_label("密码").fill("agent1002")
        await page.get_by_role("button", name="登录").click()
        await expect(page.locator("#sip-status")).to_have_text("电话已就绪", timeout=10_000)
        await expect(page.get_by_role("heading", name="我的状态")).to_be_visible()
        await expect(page.get_by_role("button", name="空闲")).to_be_visible()
        assert await page.evaluate("document.documentElement.lang") == "zh-CN"
        await page.screenshot(path=screenshot_path("webphone-zh"))


async def _ringing(page: Page) -> None:
    heading = page.locator("#call-panel").get_by_role("heading")
    await expect(heading).to_have_text("Incoming call", timeout=10_000)


async def test_declined_by_shortcut_the_caller_waits_on_and_the_page_lists_it(tmp_path):
    async with (
        phone_node(tmp_path) as node,
        chromium() as browser,
    ):
        page = await browser.new_page(viewport=LAPTOP)
        await _log_in(page, node)
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        async with queue_call(node) as (trunk, _media, _ok, _addr):
            far = FarEnd(trunk, _media.port)
            await _ringing(page)
            await page.keyboard.press("d")
            await expect(page.locator("#call-panel")).to_be_hidden()
            row = page.locator("#history tbody tr").first
            await expect(row).to_contain_text("+442079460001")
            await expect(row).to_have_class("missed")
            await expect(page.locator("#wrapup-panel")).to_be_hidden()
            # Declined is not answered: the caller is still in the queue, not hung up.
            assert node.queues.waiting("demo")
            assert not [r for r in far.requests if r.method == "BYE"]
            # ... and the agent sees them waiting in "My queues" (queue.stats events).
            support = page.locator('#queues tr[data-queue="support"] td')
            await expect(support.nth(1)).to_have_text("1")
            await expect(support.nth(2)).not_to_have_text("\u2013")
            await page.screenshot(path=screenshot_path("webphone-declined"))
            far.close()


async def test_answered_by_shortcut_keypad_digits_reach_the_caller_then_a_blind_transfer(
    tmp_path,
):
    async with phone_node(tmp_path) as node, chromium() as browser:
        page = await browser.new_page(viewport=LAPTOP)
        keep_console(page, "webphone-transfer")
        await _log_in(page, node)
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        async with queue_call(node) as (trunk, caller_media, _ok, _addr):
            far = FarEnd(trunk, caller_media.port)
            await _ringing(page)
            await page.keyboard.press("a")
            await _until(lambda: _status(node, "1001")[0] == "on-call", 10, "1001 on call")

            # The keypad: digit 5 reaches the caller as RFC 4733 events (payload type 101).
            await page.get_by_role("button", name="Keypad").click()
            before = len(caller_media.payloads(101))
            await page.get_by_role("button", name="Digit 5").click()
            await _until(lambda: len(caller_media.payloads(101)) > before, 5, "DTMF at the caller")
            event = caller_media.payloads(101)[-1]
            assert event[0] == 5, event
            await page.screenshot(path=screenshot_path("webphone-keypad"))

            # Blind transfer to agent 1002 (a desk phone): the node calls 1002 with
            # the caller's media and lets the browser go when 1002 answers.
            async with agent_phone(node, "1002") as desk, rtp_socket() as desk_media:
                await page.get_by_label("Transfer to").fill("1002")
                await page.get_by_role("button", name="Transfer").click()
                invite = await _next(desk, "INVITE", 10)
                _reply(desk, invite, 200, "ag2", _sdp(desk_media.port))
                await _next(desk, "ACK")
                await expect(page.locator("#call-panel")).to_be_hidden(timeout=10_000)
                await expect(page.get_by_text("Transferred to 1002.")).to_be_visible()
                await expect(page.locator("#wrapup-panel")).to_be_visible()
                assert not [r for r in far.requests if r.method == "BYE"], "caller hung up"
            far.close()


@needs_sipp
async def test_a_sipp_caller_who_pressed_1_in_the_ivr_pops_up_with_the_choice(tmp_path):
    async with phone_node(tmp_path) as node, chromium() as browser:
        page = await browser.new_page(viewport=LAPTOP)
        await _log_in(page, node)
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        # SIPp calls DID 100 from the demo trunk, presses 1 (support), stays 10 s, hangs up.
        sipp = _sipp(node, "ivr_uac_press_1.xml", 10_000)
        try:
            await _ringing(page)
            await expect(page.locator("#pop-caller")).to_contain_text("+442079460123")
            await expect(page.locator("#pop-caller")).to_contain_text("IVR Caller")
            await expect(page.locator("#pop-did")).to_contain_text("100")
            await expect(page.locator("#pop-queue")).to_have_text("support")
            await expect(page.locator("#pop-ivr")).to_have_text("1")
            await expect(page.locator("#pop-crm")).to_contain_text("department: support")
            await expect(page.locator("#pop-crm")).to_contain_text("caller@demo.example")
            await page.screenshot(path=screenshot_path("webphone-ivr-pop"))
            await page.get_by_role("button", name="Answer").click()
            await _until(lambda: _status(node, "1001")[0] == "on-call", 10, "1001 on call")
            result = await sipp
            assert result.ok, result.output
            # The caller hung up: the page goes to wrap-up.
            await expect(page.locator("#wrapup-panel")).to_be_visible(timeout=5000)
        finally:
            if not sipp.done():
                sipp.cancel()


CRM_FLOW = """
start: main
steps:
  main:
    - answer
    - set: {crm_url: "https://crm.example/customers?phone={number}", account: "A-7"}
    - enqueue: support
"""


async def test_an_ivr_that_sets_crm_url_gives_the_agent_a_link_to_the_customer(tmp_path):
    (tmp_path / "crm.yaml").write_text(CRM_FLOW)
    changes = {'builtin = "demo"': 'file = "crm.yaml"'}
    async with running_node(tmp_path, changes=changes) as node, chromium() as browser:
        page = await browser.new_page(viewport=LAPTOP)
        await _log_in(page, node)
        await _until(lambda: _status(node, "1001")[0] == "available", what="1001 available")
        loop = asyncio.get_running_loop()
        _, media = await loop.create_datagram_endpoint(RtpSocket, local_addr=("127.0.0.1", 0))
        try:
            async with UdpPhone(sip_address(node)) as trunk:
                trunk.send(_invite(trunk, _offer(media.port), did="100"))
                await _ringing(page)
                link = page.get_by_role("link", name="Open in CRM")
                await expect(link).to_have_attribute(
                    "href", "https://crm.example/customers?phone=%2B442079460001"
                )
                await expect(link).to_have_attribute("target", "_blank")
                await expect(page.locator("#pop-crm")).to_contain_text("account: A-7")
                await expect(page.locator("#pop-crm")).not_to_contain_text("crm_url")
        finally:
            media.transport.close()
