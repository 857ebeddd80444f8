"""The applications every node has, by the name a DID's `app` gives.

`switch.node` hands this mapping (or one a test or a bench extends) to the
call layer; `switch.config.BUILTIN_APPS` names the same applications for
the config's checks (a test keeps the two in step).
"""

from __future__ import annotations

from ..call.app import AppRunner
from . import echo


def builtin_apps() -> dict[str, AppRunner]:
    """Name -> application, for the node's call layer."""
    return {echo.NAME: echo.run}
