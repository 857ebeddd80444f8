"""[media] ICE keys: STUN/TURN server URLs, credentials, ICE-lite and the relay
policy; every error says what to write."""

from __future__ import annotations

from pathlib import Path

from switch.config import IceUrl, demo_config_text, load_config, load_demo_config
from tests.test_config import errors_of, write


def test_the_default_is_host_candidates_only_with_full_ice():
    media = load_demo_config().media
    assert (media.stun_servers, media.turn_servers, media.turn_secret) == ([], [], "")
    assert (media.ice_lite, media.ice_policy) == (False, "all")


def test_server_urls_are_read_with_their_default_ports(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [media]
        stun_servers = ["stun:stun.example.com", "STUN:192.0.2.1:3479"]
        turn_servers = [
            { url = "turn:turn.example.com", username = "u", password = "p" },
            { url = "turn:[2001:db8::1]:443?transport=tcp", username = "u", password = "p" },
            { url = "turns:turn.example.com", username = "u", password = "p" },
        ]
        """)  # fmt: skip
    media = load_config(path).media
    assert media.stun_servers == [
        IceUrl("stun", "stun.example.com", 3478, "udp"), IceUrl("stun", "192.0.2.1", 3479, "udp")
    ]  # fmt: skip
    assert [t.url for t in media.turn_servers] == [
        IceUrl("turn", "turn.example.com", 3478, "udp"),
        IceUrl("turn", "2001:db8::1", 443, "tcp"),
        IceUrl("turns", "turn.example.com", 5349, "tcp"),
    ]
    assert str(media.turn_servers[1].url) == "turn:[2001:db8::1]:443?transport=tcp"


def test_bad_server_urls_say_what_to_write(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [media]
        stun_servers = ["turn:x.example", "stun:x.example?transport=udp", 5, "stun:x.example:0"]
        turn_servers = [
            { url = "turn:10.0.0.300" , username = "u", password = "p" },
            { url = "turn:t.example?transport=sctp", username = "u", password = "p" },
            { url = "turns:t.example?transport=udp", username = "u", password = "p" },
            { url = "turn:t.example", username = "u" },
        ]
        """)  # fmt: skip
    example = '"stun:stun.example.com:3478"'
    assert errors_of(path) == [
        f"{path}: media.stun_servers: 'turn:x.example' is not a STUN URL: write {example}",
        f"{path}: media.stun_servers: 'stun:x.example?transport=udp': after the address write "
        "nothing",
        f"{path}: media.stun_servers: expected a STUN URL such as {example}, got 5 (an integer)",
        f"{path}: media.stun_servers: 'stun:x.example:0': the port is not a number from 1 to 65535",
        f"{path}: media.turn_servers.url: 'turn:10.0.0.300' has no valid host: write "
        '"turn:turn.example.com:3478?transport=udp" (or transport=tcp, or turns: for TLS)',
        f"{path}: media.turn_servers.url: 'turn:t.example?transport=sctp': after the address "
        "write ?transport=udp or ?transport=tcp",
        f"{path}: media.turn_servers.url: 'turns:t.example?transport=udp': turns: is TLS over "
        "TCP; write transport=tcp",
        f"{path}: media.turn_servers.password: required because username is set (they go together)",
    ]


def test_turn_servers_need_credentials_or_the_secret(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [media]
        turn_servers = [{ url = "turn:t.example" }]
        """)  # fmt: skip
    assert errors_of(path) == [
        f"{path}: media.turn_servers: turn:t.example:3478?transport=udp has no username and "
        "password: give them, or set turn_secret (coturn's static-auth-secret) to mint them"
    ]
    fixed = write(tmp_path, """
        [media]
        turn_servers = [{ url = "turn:t.example" }]
        turn_secret = "s3cret"
        """, "fixed.toml")  # fmt: skip
    assert load_config(fixed).media.turn_secret == "s3cret"


def test_the_relay_policy_needs_turn_and_excludes_ice_lite(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [media]
        ice_policy = "relay"
        """)  # fmt: skip
    assert errors_of(path) == [
        f'{path}: media.ice_policy: "relay" needs turn_servers (the node advertises only TURN '
        'relay candidates): add one, or write ice_policy = "all"'
    ]
    both = write(tmp_path, """
        [media]
        ice_policy = "relay"
        ice_lite = true
        turn_servers = [{ url = "turn:t.example", username = "u", password = "p" }]
        """, "both.toml")  # fmt: skip
    assert errors_of(both) == [
        f"{both}: media.ice_lite: ice_lite = true is for a node reachable directly at its "
        'address, ice_policy = "relay" for one behind NAT: set ice_lite = false or '
        'ice_policy = "all"'
    ]
    bad = write(tmp_path, '[media]\nice_policy = "turn"\n', "bad.toml")
    assert errors_of(bad) == [f"{bad}: media.ice_policy: 'turn' is not one of all, relay"]


def test_the_demo_configs_commented_example_loads(tmp_path: Path) -> None:
    text = demo_config_text()
    start = text.index("# stun_servers = ")
    end = text.index("\n", text.index("# ice_policy = "))
    example = "\n".join(line[2:] for line in text[start:end].splitlines())
    path = tmp_path / "c.toml"
    path.write_text(text.replace(text[start:end], example))
    media = load_config(path).media
    assert [str(t.url) for t in media.turn_servers] == [
        "turn:turn.example.com:3478?transport=udp", "turn:turn.example.com:443?transport=tcp"
    ]  # fmt: skip
    assert (media.turn_secret, media.ice_lite, media.ice_policy) == ("...", False, "all")
