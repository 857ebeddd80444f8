"""The echo test (DID 300 of the demo): the caller hears itself.

Installers call it to hear their own voice through the whole path: codec,
network, NAT, the node. The call is answered, and every packet the caller
sends comes straight back as it came (`Channel.echo()`), for a phone or a
browser alike, until the caller hangs up. The delayed echo with a spoken
prompt first (`switch.media.echo`) is the same call with `delay_ms`.
"""

from __future__ import annotations

from ..call.app import AppCall

NAME = "echo"


async def run(call: AppCall) -> None:
    channel = await call.answer()
    channel.echo()
    await call.wait_ended()
