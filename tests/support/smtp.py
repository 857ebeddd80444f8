"""A tiny SMTP server on loopback that keeps every message it is sent (tests only)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage


@dataclass
class SmtpSink:
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        sender, rcpts = "", []
        await say("220 sink ESMTP")
        try:
            while line := await reader.readline():
                verb = line.decode(errors="replace").strip()
                upper = verb.upper()
                if upper.startswith(("EHLO", "HELO")):
                    await say("250 sink")
                elif upper.startswith("MAIL FROM:"):
                    sender, rcpts = verb[10:].strip(" <>"), []
                    await say("250 ok")
                elif upper.startswith("RCPT TO:"):
                    rcpts.append(verb[8:].strip(" <>"))
                    await say("250 ok")
                elif upper == "DATA":
                    await say("354 go on")
                    data = bytearray()
                    while (chunk := await reader.readline()) not in (b".\r\n", b""):
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    msg = message_from_bytes(bytes(data), policy=policy.default)
                    self.messages.append(msg)  # type: ignore[arg-type]
                    self.envelopes.append((sender, rcpts))
                    self.received.set()
                    await say("250 kept")
                elif upper == "QUIT":
                    await say("221 bye")
                    break
                else:
                    await say("250 ok")
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    server = await asyncio.start_server(sink._session, "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()
