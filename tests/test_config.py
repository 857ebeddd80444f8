"""switch.config: the demo config, tenants, and errors a person can act on."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pydantic
import pytest

from switch.config import (
    DEMO_PASSWORDS,
    Config,
    ConfigError,
    HostPort,
    load_config,
    load_demo_config,
)

STRATEGIES = (
    "ringall, longest-idle, round-robin, fewest-calls, least-talk-time, random, linear, "
    "weighted-random"
)


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == "\n".join(caught.value.lines)
    return caught.value.lines


# ---------------------------------------------------------------------------
# The demo configuration


def test_demo_node_defaults() -> None:
    cfg = load_demo_config()
    assert cfg.source == "<demo>"
    assert cfg.sip.listen == HostPort("127.0.0.1", 5060)
    assert str(cfg.sip.listen) == "127.0.0.1:5060"
    assert cfg.sip.transports == ["udp", "tcp"]
    assert cfg.sip.public_address == "127.0.0.1"
    assert str(cfg.http.listen) == "127.0.0.1:8080"
    assert cfg.http.tls is False
    assert cfg.state.backend == "memory"
    assert cfg.records.backend == "sqlite"
    assert cfg.node.data_dir == Path("./data")
    assert cfg.records.dsn == str(Path("data") / "switch.db")
    assert cfg.node.log_level == "info"


def test_demo_tenant_objects() -> None:
    cfg = load_demo_config()
    assert list(cfg.tenants) == ["demo"]
    demo = cfg.tenants["demo"]
    assert (demo.id, demo.name, demo.timezone) == ("demo", "Demo Company", "UTC")

    assert list(demo.agents) == ["1001", "1002", "1003", "1004", "1005"]
    for ext, agent in demo.agents.items():
        assert agent.password == f"agent{ext}"
        assert agent.name
    support = [ext for ext, a in demo.agents.items() if "support" in a.queues]
    sales = [ext for ext, a in demo.agents.items() if "sales" in a.queues]
    assert support == ["1001", "1002", "1003"]
    assert sales == ["1003", "1004", "1005"]

    trunk = demo.trunks["demo-trunk"]
    assert list(demo.trunks) == ["demo-trunk"]
    assert trunk.inbound_from == [ipaddress.ip_network("127.0.0.1/32")]
    assert trunk.accepts("127.0.0.1") and not trunk.accepts("10.0.0.1")
    assert trunk.outbound_host == HostPort("127.0.0.1", 5090)
    assert trunk.transport == "udp"
    assert trunk.codecs == ["pcmu", "pcma", "telephone-event"]

    assert sorted(demo.queues) == ["sales", "support"]
    assert {q.strategy for q in demo.queues.values()} == {"longest-idle"}
    assert demo.ivr["demo"].builtin == "demo" and demo.ivr["demo"].file is None

    assert {number: did.target for number, did in demo.dids.items()} == {
        "100": ("ivr", "demo"),
        "200": ("queue", "support"),
        "300": ("app", "echo"),
        "400": ("forward", "4000"),
    }
    assert demo.dids["400"].trunk == "demo-trunk"

    route = demo.outbound["external"]
    assert (route.prefix, route.strip, route.trunk) == ("9", 1, "demo-trunk")
    assert route.allow_international is False
    assert route.trunk_order == ["demo-trunk"]

    assert {login: (u.password, u.role) for login, u in demo.users.items()} == {
        "supervisor": ("supervisor", "supervisor"),
        "admin": ("admin", "admin"),
    }
    assert cfg.uses_demo_passwords() is True


def test_config_is_read_only() -> None:
    cfg = load_demo_config()
    with pytest.raises(pydantic.ValidationError):
        cfg.sip.listen = HostPort("0.0.0.0", 5060)  # type: ignore[misc]


# ---------------------------------------------------------------------------
# Tenants


def test_top_level_objects_belong_to_the_default_tenant(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [agents."1001"]
        password = "s3cret-1001"
        queues = ["support"]

        [queues.support]

        [dids."200"]
        queue = "support"
        """,
    )
    cfg = load_config(path)
    assert list(cfg.tenants) == ["default"]
    tenant = cfg.tenants["default"]
    assert tenant.name == "default"
    assert tenant.agents["1001"].queues == ["support"]
    assert tenant.queues["support"].strategy == "longest-idle"
    assert tenant.queues["support"].timeout == 20
    assert tenant.dids["200"].target == ("queue", "support")
    assert cfg.source == str(path)
    assert cfg.uses_demo_passwords() is False


def test_tenants_are_separate(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [queues.support]

        [tenants.acme]
        name = "Acme Corp"
        timezone = "Europe/Paris"

        [tenants.acme.queues.sales]
        strategy = "ringall"
        """,
    )
    cfg = load_config(path)
    assert sorted(cfg.tenants) == ["acme", "default"]
    assert list(cfg.tenants["acme"].queues) == ["sales"]
    assert list(cfg.tenants["default"].queues) == ["support"]
    assert cfg.tenants["acme"].zone.key == "Europe/Paris"


def test_ivr_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "main.yaml").write_text("- answer\n")
    path = write(tmp_path, '[ivr.main]\nfile = "flows/main.yaml"\n')
    cfg = load_config(path)
    assert cfg.tenants["default"].ivr["main"].file == tmp_path / "flows" / "main.yaml"


# ---------------------------------------------------------------------------
# The error examples, word for word


def test_bad_strategy(tmp_path: Path) -> None:
    path = write(tmp_path, '[queues.support]\nstrategy = "longest"\n')
    assert errors_of(path) == [
        f"{path}: queues.support.strategy: 'longest' is not one of {STRATEGIES}"
    ]


def test_missing_queue_in_tenant(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [tenants.acme.queues.support]
        [tenants.acme.queues.sales]
        [tenants.acme.dids."200"]
        queue = "suport"
        """,
    )
    assert errors_of(path) == [
        f"{path}: tenants.acme.dids.200.queue: queue 'suport' does not exist in tenant 'acme' "
        "(queues: sales, support)"
    ]


def test_listen_without_port(tmp_path: Path) -> None:
    path = write(tmp_path, '[sip]\nlisten = "127.0.0.1"\n')
    assert errors_of(path) == [
        f"{path}: sip.listen: '127.0.0.1' is not HOST:PORT (e.g. 0.0.0.0:5060 or [::]:5060)"
    ]


def test_ipv6_listen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[sip]\nlisten = "[::1]:5070"\n'))
    assert cfg.sip.listen == HostPort("::1", 5070)
    assert str(cfg.sip.listen) == "[::1]:5070"


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[sip]\nlisten = "127.0.0.1:5060"\n\n[http]\nlisten\n')
    assert errors_of(path) == [
        f"{path}: line 5, column 7: TOML syntax error: Expected '=' after a key in a key/value pair"
    ]


def test_toml_duplicate_table_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[queues.support]\n\n[queues.support]\nstrategy = "random"\n')
    # tomllib writes the key as a Python tuple, ('queues', 'support'): we write it as TOML.
    assert errors_of(path) == [
        f"{path}: line 3, column 16: TOML syntax error: Cannot declare queues.support twice"
    ]


def test_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[agents."1001"]\npassword = "x"\ncolour = "red"\n')
    assert errors_of(path) == [
        f"{path}: agents.1001.colour: unknown key"
        " (expected one of caller_id, may_dial, name, password, qualify, queues,"
        " ring_timeout, skills, tiers, weight, withhold_caller_id)"
    ]


def test_unknown_top_level_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent."1001"]\npassword = "x"\n')
    assert errors_of(path) == [
        f"{path}: agent: unknown key (expected one of agents, api_keys, calls, dids, dns, "
        "hours, http, ivr, media, node, notify, "
        "outbound, queues, recording, records, registrar, sip, state, tenants, trunks, users); "
        "did you mean 'agents'?"
    ]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    assert errors_of(path) == [f"{path}: no such file"]


# ---------------------------------------------------------------------------
# Several problems at once, in file order, in plain words


def test_all_errors_are_reported_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [sip]
        listen = "127.0.0.1"

        [agents."1001"]
        queues = "support"
        skills = { french = 11 }

        [queues.support]
        timeout = "20"

        [tenants.acme]
        timezone = "Europe/Pariss"
        """,
    )
    assert errors_of(path) == [
        f"{path}: sip.listen: '127.0.0.1' is not HOST:PORT (e.g. 0.0.0.0:5060 or [::]:5060)",
        f"{path}: agents.1001.queues: expected an array, got 'support' (a string) "
        '(for a single item write ["support"])',
        f"{path}: agents.1001.skills.french: 11 is too large (must be at most 10)",
        f"{path}: agents.1001.password: required key is missing",
        f"{path}: queues.support.timeout: expected an integer, got '20' (a string)",
        f"{path}: tenants.acme.timezone: 'Europe/Pariss' is not an IANA time zone "
        "(e.g. UTC, Europe/Paris, America/New_York); did you mean 'Europe/Paris'?",
    ]


def test_no_pydantic_jargon(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [node]
        log_level = 3
        [trunks.t]
        inbound_from = ["10.0.0.1/24", "carrier.example"]
        max_calls = -1
        register = "yes"
        [users.bob]
        role = "boss"
        """,
    )
    lines = errors_of(path)
    assert lines == [
        f"{path}: node.log_level: 3 is not one of debug, info, warning, error",
        f"{path}: trunks.t.inbound_from: '10.0.0.1/24' has host bits set; "
        "did you mean '10.0.0.0/24'?",
        f"{path}: trunks.t.inbound_from: 'carrier.example' is a host name; inbound_from needs "
        "IP addresses (e.g. 203.0.113.5 or 203.0.113.0/24)",
        f"{path}: trunks.t.max_calls: -1 is too small (must be at least 0)",
        f"{path}: trunks.t.register: expected true or false, got 'yes' (a string) (without quotes)",
        f"{path}: users.bob.role: 'boss' is not one of agent, supervisor, admin, operator",
        f"{path}: users.bob.password: required key is missing",
    ]
    for line in lines:
        assert "Input should" not in line.removeprefix(str(path))


def test_cross_references(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [agents."1001"]
        password = "x"
        queues = ["support", "salse"]

        [queues.support]

        [dids."100"]
        ivr = "main"
        [dids."101"]
        agent = "1009"
        [dids."102"]
        forward = "4000"
        trunk = "carrier"

        [outbound.external]
        prefix = "9"
        trunk = "carrier"
        trunks = ["backup"]
        """,
    )
    assert errors_of(path) == [
        f"{path}: agents.1001.queues: queue 'salse' does not exist in tenant 'default' "
        "(queues: support)",
        f"{path}: dids.100.ivr: ivr 'main' does not exist in tenant 'default' (no ivr defined)",
        f"{path}: dids.101.agent: agent '1009' does not exist in tenant 'default' (agents: 1001)",
        f"{path}: dids.102.trunk: trunk 'carrier' does not exist in tenant 'default' "
        "(no trunks defined)",
        f"{path}: outbound.external.trunk: trunk 'carrier' does not exist in tenant 'default' "
        "(no trunks defined)",
        f"{path}: outbound.external.trunks: trunk 'backup' does not exist in tenant 'default' "
        "(no trunks defined)",
    ]


def test_references_do_not_cross_tenants(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [queues.support]
        [tenants.acme.dids."200"]
        queue = "support"
        """,
    )
    assert errors_of(path) == [
        f"{path}: tenants.acme.dids.200.queue: queue 'support' does not exist in tenant "
        "'acme' (no queues defined)"
    ]


def test_did_targets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [queues.support]
        [dids."200"]
        queue = "support"
        app = "echo"
        [dids."201"]
        [dids."202"]
        app = "music"
        """,
    )
    assert errors_of(path) == [
        f"{path}: dids.200: has 2 targets (queue, app); a DID routes to exactly one of ivr, "
        "queue, agent, app or forward",
        f"{path}: dids.201: needs a target: one of ivr, queue, agent, app or forward",
        f"{path}: dids.202.app: 'music' is not one of echo",
    ]


def test_a_number_belongs_to_one_tenant(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [dids."300"]
        app = "echo"
        [tenants.acme.dids."300"]
        app = "echo"
        """,
    )
    assert errors_of(path) == [
        f"{path}: tenants.acme.dids.300: the number '300' is also a DID at dids.300; "
        "a number can belong to one tenant only"
    ]


def test_node_section_rules(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [sip]
        transports = ["udp", "tls"]
        [http]
        tls_cert = "web.pem"
        [state]
        backend = "redis"
        [records]
        backend = "postgresql"
        """,
    )
    assert errors_of(path) == [
        f'{path}: sip.tls_cert: required when "tls" is in transports (path to a PEM file)',
        f'{path}: sip.tls_key: required when "tls" is in transports (path to a PEM file)',
        f"{path}: http.tls_cert: 'web.pem' does not exist (looked for {tmp_path / 'web.pem'})",
        f'{path}: state.redis_url: required when backend = "redis" (e.g. redis://127.0.0.1:6379/0)',
        f'{path}: records.dsn: required when backend = "postgresql" '
        "(e.g. postgresql://switch:secret@db.example/switch)",
    ]


def test_http_and_sip_cannot_share_a_tcp_port(tmp_path: Path) -> None:
    path = write(tmp_path, '[sip]\nlisten = "0.0.0.0:5060"\n[http]\nlisten = "127.0.0.1:5060"\n')
    assert errors_of(path) == [
        f"{path}: http.listen: '127.0.0.1:5060' is also sip.listen, where SIP over TCP "
        "listens; pick another port"
    ]


def test_quoted_keys_are_quoted_in_paths(tmp_path: Path) -> None:
    path = write(tmp_path, '[dids."+15551234567"]\nqueue = "nope"\n')
    assert errors_of(path) == [
        f"{path}: dids.\"+15551234567\".queue: queue 'nope' does not exist in tenant "
        "'default' (no queues defined)"
    ]


# ---------------------------------------------------------------------------
# Command-line overrides


def test_with_overrides_returns_a_new_validated_config(tmp_path: Path) -> None:
    cfg = load_demo_config()
    new = cfg.with_overrides(
        sip_listen="[::]:5070", http_listen="127.0.0.1:0", data_dir=str(tmp_path)
    )
    assert isinstance(new, Config) and new is not cfg
    assert new.sip.listen == HostPort("::", 5070)
    assert new.sip.public_address == ""  # a wildcard says nothing about our address
    assert new.http.listen == HostPort("127.0.0.1", 0)
    assert new.node.data_dir == tmp_path
    assert new.records.dsn == str(tmp_path / "switch.db")
    assert str(cfg.sip.listen) == "127.0.0.1:5060"  # the original is untouched
    assert cfg.with_overrides() is cfg


def test_with_overrides_rejects_a_bad_sip_listen() -> None:
    with pytest.raises(ConfigError) as caught:
        load_demo_config().with_overrides(sip_listen="nonsense")
    assert caught.value.lines == [
        "--sip-listen: 'nonsense' is not HOST:PORT (e.g. 0.0.0.0:5060 or [::]:5060)"
    ]


def test_with_overrides_rejects_an_out_of_range_port() -> None:
    with pytest.raises(ConfigError) as caught:
        load_demo_config().with_overrides(http_listen="127.0.0.1:80800")
    assert caught.value.lines == [
        "--http-listen: '127.0.0.1:80800': port 80800 is not between 0 and 65535"
    ]


def test_demo_passwords_are_the_demo_config_passwords() -> None:
    demo = load_demo_config().tenants["demo"]
    used = {a.password for a in demo.agents.values()} | {u.password for u in demo.users.values()}
    assert used == DEMO_PASSWORDS


def test_trunk_rules(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [trunks.a]
        [trunks.b]
        inbound_from = ["203.0.113.5"]
        username = "acct"
        register = true
        [trunks.c]
        inbound_from = ["2001:db8::/32"]
        codecs = ["telephone-event"]
        """,
    )
    assert errors_of(path) == [
        f"{path}: trunks.a: a trunk needs inbound_from (to accept calls), outbound_host "
        "(to place calls) or both; or register = true (we register to the carrier) or "
        "inbound_register (it registers to us)",
        f"{path}: trunks.b.register: register = true also needs outbound_host, password",
        # A missing key sorts after the keys its table does have.
        f"{path}: trunks.b.password: required because username is set (they go together)",
        f"{path}: trunks.c.codecs: needs at least one audio codec (pcmu, pcma, g722 or opus)",
    ]


def test_outbound_host_port_and_transport_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [trunks.plain]
        outbound_host = "carrier.example"
        [trunks.secure]
        outbound_host = "carrier.example"
        transport = "tls"
        [trunks.named]
        outbound_host = "carrier.example:5070"
        [trunks.address]
        outbound_host = "203.0.113.5"
        transport = "tls"
        [trunks.explicit]
        outbound_host = "[2001:db8::1]:5080"
        """,
    )
    trunks = load_config(path).tenants["default"].trunks
    # A name without a port is for DNS to locate (RFC 3263): SRV gives the
    # port, NAPTR the transport unless one is given.
    assert trunks["plain"].outbound_host == HostPort("carrier.example", 0)
    assert trunks["plain"].transport is None
    assert trunks["secure"].outbound_host == HostPort("carrier.example", 0)
    assert trunks["secure"].transport == "tls"
    # With a port, or an address: the port as written or the transport's, UDP by default.
    assert trunks["named"].outbound_host == HostPort("carrier.example", 5070)
    assert trunks["named"].transport == "udp"
    assert trunks["address"].outbound_host == HostPort("203.0.113.5", 5061)
    assert str(trunks["explicit"].outbound_host) == "[2001:db8::1]:5080"
    assert trunks["explicit"].transport == "udp"


def test_dns_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [dns]
        nameservers = ["192.0.2.53", "127.0.0.1:5353", "[2001:db8::53]:53", "2001:db8::54"]
        timeout = 1.5
        negative_ttl = 10
        """,
    )
    dns = load_config(path).dns
    assert dns.nameservers == [
        HostPort("192.0.2.53", 53),
        HostPort("127.0.0.1", 5353),
        HostPort("2001:db8::53", 53),
        HostPort("2001:db8::54", 53),
    ]
    assert (dns.timeout, dns.negative_ttl) == (1.5, 10)
    assert load_demo_config().dns.nameservers == []  # the system's resolver


def test_dns_section_errors_name_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [dns]
        nameservers = ["ns1.example", "127.0.0.1:99999"]
        timeout = 0
        nameserver = "192.0.2.53"
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.lines == [
        f"{path}: dns.nameservers: 'ns1.example' is not a nameserver address "
        "IP[:PORT] (e.g. 192.0.2.53, 127.0.0.1:5353 or [2001:db8::53]:53)",
        f"{path}: dns.nameservers: '127.0.0.1:99999': the port is not a number from 1 to 65535",
        f"{path}: dns.timeout: 0 is too small (must be at least 0.1)",
        f"{path}: dns.nameserver: unknown key (expected one of nameservers, negative_ttl, "
        "timeout); did you mean 'nameservers'?",
    ]


def test_calls_section_defaults_and_errors(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[calls]\n"))
    assert (config.calls.session_expires, config.calls.min_se) == (1800, 90)
    assert config.calls.redirects == "report"
    assert load_config(write(tmp_path, "[calls]\nsession_expires = 0\n")).calls.session_expires == 0
    cases = {
        "[calls]\nsession_expires = 60\n": "calls.session_expires: 60 is shorter than min_se "
        "(90): raise it, or set 0 to turn session timers off",
        "[calls]\nmin_se = 30\n": "calls.min_se: 30 is too small (must be at least 90)",
        '[calls]\nredirects = "bounce"\n': "calls.redirects: 'bounce' is not one of report, follow",
    }
    for text, error in cases.items():
        path = write(tmp_path, text)
        assert errors_of(path) == [f"{path}: {error}"]
