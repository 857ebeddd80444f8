"""Feature codes: an agent changes their ACD state from a desk phone.

The router sends a registered agent's call to one of the tenant's feature
codes (`[tenants.<id>.acd.feature_codes]`, default *61 log in, *62 log out,
*63 available, *64 not ready with the first reason or *64<n> with the n-th of
`not_ready_reasons`, *65 extend wrap-up by `extend_by` seconds) here, with
the agent's extension as the argument: the guard authenticated them by
digest, so an agent changes only their own state. The node answers, says
what was done (the node's text-to-speech, or a beep when speech is not
available; a low double tone when it could not be done) and hangs up.

`carry_out` does the change and gives the words; `FeatureCodeApp` is the
application around it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..call.app import AppCall, CallEnded
from ..config import FEATURE_CODES_APP
from ..media.player import Clip, Player, ToneItem
from ..media.tones import BEEP, progress_tone
from .acd import AcdError

if TYPE_CHECKING:
    from ..media.tts import Speech
    from .acd_service import AcdService

log = logging.getLogger(__name__)

NAME = FEATURE_CODES_APP


@dataclass(frozen=True, slots=True)
class Done:
    """What a feature code did: `ok` (done, or nothing to do) and the words said."""

    ok: bool
    text: str


def carry_out(service: AcdService, tenant: str, ext: str, dialled: str) -> Done:
    """Carry out the feature code `dialled` for agent `ext` of `tenant`."""
    config = service.config.tenants.get(tenant)
    acd = service.acds.get(tenant)
    if config is None or acd is None or ext not in config.agents:
        return Done(False, "Feature codes are for agents of a queue.")
    codes = config.acd.feature_codes
    found = codes.match(dialled)
    if found is None:
        return Done(False, "That is not a feature code.")
    action, number = found
    logged_in = service._agent(tenant, ext) is not None
    try:
        if action == "login":
            if logged_in:
                return Done(True, "You are already logged in.")
            service.login(tenant, ext)
            return Done(True, "You are logged in.")
        if not logged_in:
            return Done(False, "You are not logged in.")
        if action == "logout":
            service.logout(tenant, ext)
            return Done(True, "You are logged out.")
        if action == "available":
            service.set_ready(tenant, ext)
            return Done(True, "You are available.")
        if action == "not_ready":
            reasons = config.acd.not_ready_reasons
            n = 1 if number is None else number
            if not 1 <= n <= len(reasons):
                return Done(False, f"There is no reason number {n}.")
            service.set_not_ready(tenant, ext, reasons[n - 1])
            return Done(True, f"You are not ready: {reasons[n - 1]}.")
        if action == "extend_wrapup":
            if acd.agent(ext).status != "wrap-up":
                return Done(False, "You are not in wrap-up.")
            acd.extend_wrapup(ext, codes.extend_by, service.clock())
            service._carry(tenant, [])  # its event, and the wrap-up's new timer
            return Done(True, f"Wrap-up extended by {codes.extend_by} seconds.")
    except AcdError as exc:
        log.info("feature code %s of agent %s/%s: %s", dialled, tenant, ext, exc)
        return Done(False, "That cannot be done now.")
    return Done(False, "That is not a feature code.")  # (an action without a branch)


class FeatureCodeApp:
    """The application (`NAME`): answer, carry out, say it, hang up."""

    def __init__(
        self, service: Callable[[], AcdService | None], speech: Speech | None = None
    ) -> None:
        self.service = service  # the node's ACD service, made when the node starts
        self.speech = speech
        self.done: list[tuple[str, str, Done]] = []  # (agent, code, outcome), newest last

    async def __call__(self, call: AppCall) -> None:
        service = self.service()
        tenant, ext = call.caller.tenant, call.argument
        if service is None:
            done = Done(False, "There are no queues on this node.")
        else:
            done = carry_out(service, tenant, ext, call.did)
        self.done.append((f"{tenant}/{ext}", call.did, done))
        del self.done[:-100]
        log.info("feature code %s by %s/%s: %s", call.did, tenant, ext, done.text)
        try:
            channel = await call.answer()
        except CallEnded:
            return
        rate = 8000 if channel.rate == 8000 else 16000
        items: list = []
        if self.speech is not None:
            try:
                items = [Clip(await self.speech.say(done.text, rate=rate))]
            except Exception as exc:  # the change is made: a tone says so instead
                log.warning("feature code %s: cannot speak (%s); a tone instead", call.did, exc)
        if not items:
            items = [ToneItem(BEEP, 250)] if done.ok else [
                ToneItem(progress_tone("us", "busy"), 1000)
            ]  # fmt: skip
        player = Player(items, channel.rate, interruptible=False)
        await channel.play(player)
        call.hangup()
