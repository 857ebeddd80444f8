"""The `notify` verb: an e-mail through SMTP, an SMS or a fax through an HTTP webhook.

Fire and forget for the flow: `send` never raises, it logs why a message
was not sent and returns False. E-mail goes by the standard library's
smtplib in a thread (one short connection per message); SMS and fax are a
JSON POST to the configured URL with an optional bearer token:

    {"channel": "sms", "to": "+4477...", "body": "...", "subject": null, "tenant": "demo"}
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import smtplib
from email.message import EmailMessage
from pathlib import Path

import aiohttp

from ...config import NotifyConfig
from .commands import Notify

log = logging.getLogger("switch.ivr")


class Notifier:
    def __init__(self, config: NotifyConfig) -> None:
        self.config = config
        self.sent = 0
        self.failed = 0

    async def send(self, tenant: str, note: Notify) -> bool:
        try:
            if note.channel == "email":
                ok = await self._email(note)
            else:
                ok = await self._webhook(tenant, note)
        except Exception:
            log.exception("notify %s to %s failed", note.channel, note.to)
            ok = False
        if ok:
            self.sent += 1
        else:
            self.failed += 1
        return ok

    async def _email(self, note: Notify) -> bool:
        cfg = self.config
        if not cfg.smtp_host:
            log.warning("notify: no e-mail sent to %s: [notify] smtp_host is not set", note.to)
            return False
        if "@" not in note.to or any(c in note.to for c in "\r\n,;"):
            log.warning("notify: %r is not one e-mail address; nothing sent", note.to[:100])
            return False
        msg = EmailMessage()
        msg["From"] = cfg.sender
        msg["To"] = note.to
        msg["Subject"] = " ".join((note.subject or "Message").splitlines())
        msg.set_content(note.body)
        if note.attachment is not None:
            data = await asyncio.to_thread(Path(note.attachment).read_bytes)
            kind, _ = mimetypes.guess_type(note.attachment.name)
            main, sub = (kind or "application/octet-stream").split("/", 1)
            msg.add_attachment(data, maintype=main, subtype=sub, filename=note.attachment.name)
        try:
            await asyncio.to_thread(self._smtp, msg)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("notify: e-mail to %s not sent: %s (check [notify] smtp_host/port "
                        "and credentials)", note.to, exc)  # fmt: skip
            return False
        log.info("notify: e-mail sent to %s", note.to)
        return True

    def _smtp(self, msg: EmailMessage) -> None:
        cfg = self.config
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.timeout) as smtp:
            if cfg.smtp_starttls:
                smtp.starttls()
            if cfg.smtp_user:
                smtp.login(cfg.smtp_user, cfg.smtp_password)
            smtp.send_message(msg)

    async def _webhook(self, tenant: str, note: Notify) -> bool:
        cfg = self.config
        url = cfg.sms_url if note.channel == "sms" else cfg.fax_url
        if not url:
            log.warning("notify: no %s sent to %s: [notify] %s_url is not set",
                        note.channel, note.to, note.channel)  # fmt: skip
            return False
        headers = {"Authorization": f"Bearer {cfg.webhook_token}"} if cfg.webhook_token else {}
        body = {
            "channel": note.channel,
            "to": note.to,
            "body": note.body,
            "subject": note.subject,
            "tenant": tenant,
        }
        if note.attachment is not None:
            body["attachment"] = str(note.attachment)
        timeout = aiohttp.ClientTimeout(total=cfg.timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url, json=body, headers=headers) as resp,
            ):
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("notify: %s to %s not sent: %s: %s", note.channel, note.to,
                        type(exc).__name__, exc)  # fmt: skip
            return False
        if not 200 <= status < 300:
            log.warning("notify: %s to %s: the webhook answered %d", note.channel, note.to, status)
            return False
        log.info("notify: %s sent to %s", note.channel, note.to)
        return True
