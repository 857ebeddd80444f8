"""A live node on loopback, started in the test's event loop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switch.call.model import Call
from switch.config import demo_config_text, load_config, load_demo_config
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


@contextlib.asynccontextmanager
async def running_node(
    tmp_path: Path, name: str = "n1", changes: dict[str, str] | None = None
) -> AsyncIterator[Node]:
    """A node on the demo configuration, with some of its lines changed."""
    text = demo_config_text()
    changes = dict(changes or {})
    # The demo trunk's far end is whatever a test puts there, and it should
    # not have to answer keepalive pings: off unless the test says otherwise.
    changes.setdefault("keepalive = 30 ", "keepalive = 0 ")
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    config = load_config(path).with_overrides(
        sip_listen="127.0.0.1:0", http_listen="127.0.0.1:0", data_dir=tmp_path / name
    )
    node = Node(config)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


def ended_calls(node: Node) -> list[Call]:
    """The calls of `node` as they end, in order (its `on_end` hook, before
    the node's own: the records)."""
    assert node.calls is not None
    ended: list[Call] = []
    records = node.calls.on_end

    def seen(call: Call) -> None:
        ended.append(call)
        if records is not None:
            records(call)

    node.calls.on_end = seen
    return ended
