"""A live node on loopback, started in the test's event loop."""

from __future__ import annotations

import pytest

from switch.config import load_demo_config
from switch.node import Node


@pytest.fixture
async def node(tmp_path):
    config = load_demo_config().with_overrides(
        sip_listen="127.0.0.1:0", http_listen="127.0.0.1:0", data_dir=str(tmp_path / "data")
    )
    n = Node(config)
    await n.start()
    try:
        yield n
    finally:
        await n.stop()


def sip_address(node: Node, transport: str = "udp") -> tuple[str, int]:
    for listener in node.sip_listeners:
        kind, _, hostport = listener.partition(":")
        if kind == transport:
            host, _, port = hostport.rpartition(":")
            return host.strip("[]"), int(port)
    raise AssertionError(f"no {transport} listener in {node.sip_listeners}")
