"""The applications that need the node's services: the IVR and the queues.

`NodeApps(config, flows)` builds, once per node, what they share: speech
(espeak-ng, cached in `<data_dir>/tts`), the IVR's HTTP client, notifier,
voicemail boxes and callback store, and gives the applications by name:
"ivr" (DIDs with `ivr = "..."`), "queue" (DIDs with `queue = "..."`) and
"acd-codes" (agents' feature codes, which the router sends there).
The queues themselves (the ACD service, which needs the node's state) are
handed in at the node's start with `use_queues`. `close()` at the node's stop.
"""

from __future__ import annotations

from collections.abc import Callable

from ..call.app import AppRunner
from ..config import Config
from ..media.tts import Speech, cache_dir
from . import acd_codes
from .acd_service import AcdService
from .ivr.callback import Callbacks
from .ivr.http import HttpClient
from .ivr.load import FlowSet
from .ivr.notify import Notifier
from .ivr.prompts import Prompts
from .ivr.runner import IvrApp, QueueApp, Services
from .ivr.voicemail import Voicemails
from .queueing import Queues

IVR = "ivr"
QUEUE = "queue"


class NodeApps:
    def __init__(self, config: Config, flows: Callable[[], FlowSet]) -> None:
        data = config.node.data_dir
        self.speech = Speech(cache_dir(data))
        self.http = HttpClient()
        self.services = Services(
            prompts=Prompts(self.speech),
            flows=flows,
            http=self.http,
            notifier=Notifier(config.notify),
            voicemails=Voicemails(data),
            callbacks=Callbacks(data / "callbacks.jsonl"),
            recordings=data / "ivr-recordings",
        )

    def apps(self) -> dict[str, AppRunner]:
        return {
            IVR: IvrApp(self.services),
            QUEUE: QueueApp(self.services),
            # Agents' feature codes (*61 ...): the ACD service, once the node made it.
            acd_codes.NAME: acd_codes.FeatureCodeApp(self._acd, self.speech),
        }

    def _acd(self) -> AcdService | None:
        queues = self.services.queues
        return queues if isinstance(queues, AcdService) else None

    def use_queues(self, queues: Queues) -> None:
        """The node's queue service: where the IVR's enqueue and queue DIDs send callers."""
        self.services.queues = queues

    def configure(self, config: Config) -> None:
        """A reloaded config: its notify settings (the node reconfigures the queues)."""
        notifier = self.services.notifier
        if notifier is not None:
            notifier.config = config.notify

    async def close(self) -> None:
        await self.http.close()
