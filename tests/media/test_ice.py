"""switch.media.ice: ICE server settings, coturn REST API credentials, the
browsers' iceServers, and how failing servers are remembered (no sockets)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import textwrap

from switch.config import load_config
from switch.media.ice import (
    BROWSER_CREDENTIAL_TTL,
    NODE_CREDENTIAL_TTL,
    RETRY_AFTER,
    IceServer,
    IceSettings,
    ServerHealth,
    browser_ice_servers,
    turn_credentials,
)

NOW = 1_700_000_000.0


def _hmac(secret: str, username: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), "sha1").digest()).decode()


def test_turn_credentials_follow_coturns_use_auth_secret():
    username, password = turn_credentials("s3cret", "agent1004", 3600, now=NOW)
    assert username == f"{int(NOW) + 3600}:agent1004"
    assert password == _hmac("s3cret", username)
    assert len(base64.b64decode(password)) == hashlib.sha1().digest_size


def test_server_urls_are_written_as_browsers_read_them():
    assert IceServer("stun", "stun.example.com", 3478).url == "stun:stun.example.com:3478"
    assert (
        IceServer("turn", "2001:db8::1", 3478, "tcp").url == "turn:[2001:db8::1]:3478?transport=tcp"
    )
    assert IceServer("turns", "t.example", 5349, "tcp").url == "turns:t.example:5349?transport=tcp"


def test_browsers_get_minted_credentials_with_the_secret():
    settings = IceSettings(
        stun=(IceServer("stun", "s.example", 3478),),
        turn=(IceServer("turn", "t.example", 3478), IceServer("turn", "t.example", 443, "tcp")),
        turn_secret="s3cret",
    )
    servers = browser_ice_servers(settings, "agent1004", now=NOW)
    assert servers[0] == {"urls": ["stun:s.example:3478"]}
    expected = f"{int(NOW) + BROWSER_CREDENTIAL_TTL}:agent1004"
    assert servers[1:] == [
        {"urls": ["turn:t.example:3478?transport=udp"], "username": expected,
         "credential": _hmac("s3cret", expected)},
        {"urls": ["turn:t.example:443?transport=tcp"], "username": expected,
         "credential": _hmac("s3cret", expected)},
    ]  # fmt: skip


def test_without_a_secret_browsers_get_the_servers_fixed_credentials():
    settings = IceSettings(turn=(IceServer("turn", "t.example", 3478, "udp", "u", "p"),))
    assert browser_ice_servers(settings, "agent1004") == [
        {"urls": ["turn:t.example:3478?transport=udp"], "username": "u", "credential": "p"}
    ]
    assert browser_ice_servers(IceSettings(), "agent1004") == []


def test_the_node_logs_in_with_fixed_credentials_or_mints_its_own():
    fixed = IceServer("turn", "t.example", 3478, "udp", "u", "p")
    bare = IceServer("turn", "t.example", 3478)
    settings = IceSettings(turn=(fixed, bare), turn_secret="s3cret")
    assert settings.node_login(fixed, now=NOW) == ("u", "p")
    username, password = settings.node_login(bare, now=NOW)
    assert username == f"{int(NOW) + NODE_CREDENTIAL_TTL}:switch"
    assert password == _hmac("s3cret", username)


def test_a_failed_server_is_left_out_for_a_while_and_logged_once(caplog):
    caplog.set_level(logging.DEBUG, "switch.media")
    health, server = ServerHealth(), IceServer("stun", "s.example", 3478)
    assert health.usable(server, now=100.0)
    health.failed(server, "no answer within 2 s", now=100.0)
    assert not health.usable(server, now=100.0 + RETRY_AFTER - 1)
    assert health.usable(server, now=100.0 + RETRY_AFTER)
    health.failed(server, "no answer within 2 s", now=100.0 + RETRY_AFTER)
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING, logging.DEBUG]
    assert "stun:s.example:3478: no answer within 2 s" in caplog.records[0].getMessage()
    health.worked(server)
    assert caplog.records[-1].levelno == logging.INFO
    assert "answers again" in caplog.records[-1].getMessage()
    health.worked(server)  # (only the recovery is logged)
    assert len(caplog.records) == 3


def test_settings_come_from_the_media_section(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        textwrap.dedent("""
        [media]
        stun_servers = ["stun:stun.example.com", "stun:[2001:db8::1]:3479"]
        turn_servers = [
            { url = "turn:turn.example.com?transport=tcp", username = "u", password = "p" },
            { url = "turns:turn.example.com" },
        ]
        turn_secret = "s3cret"
        ice_policy = "relay"
        """)
    )
    settings = IceSettings.from_config(load_config(path).media)
    assert [s.url for s in settings.stun] == [
        "stun:stun.example.com:3478", "stun:[2001:db8::1]:3479"
    ]  # fmt: skip
    assert settings.turn == (
        IceServer("turn", "turn.example.com", 3478, "tcp", "u", "p"),
        IceServer("turns", "turn.example.com", 5349, "tcp"),
    )
    assert (settings.turn_secret, settings.policy, settings.lite) == ("s3cret", "relay", False)
    assert IceSettings.from_config(load_config(tmp_path / "c.toml").media) == settings
