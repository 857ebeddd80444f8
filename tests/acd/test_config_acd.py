"""The ACD's config keys (queues, agents, [tenants.<id>.acd]) and errors that say what to write."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from switch.apps.acd import Acd, QueueRules, TenantRules
from switch.config import ConfigError, ExitTarget, load_config, load_demo_config

FULL = """
[tenants.acme]
timezone = "Europe/London"
[tenants.acme.numbers]
country_code = "44"
national_prefix = "0"
international_prefix = "00"

[tenants.acme.acd]
not_ready_reasons = ["break", "coaching"]
max_missed = 2
sticky_memory = 3600

[tenants.acme.agents."1001"]
password = "x"
queues = ["support", "sales"]
tiers = { sales = 2 }
skills = { english = 8 }
weight = 3

[tenants.acme.agents."1002"]
password = "y"
queues = ["support"]

[tenants.acme.ivr.main]
builtin = "demo"

[tenants.acme.queues.support]
strategy = "weighted-random"
timeout = 15
wrapup = 30
wrapup_max = 90
max_wait = 600
max_len = 50
weight = 1
priority_step = 30
vip_numbers = ["02079460000"]
vip_priority = 4
tier_waits = [20, 40]
skills = { english = 3 }
relax = [{ after = 30, lower = 1 }, { after = 60, lower = 3 }]
sticky_wait = 15
join_empty = false
leave_when_empty = true
announce_every = 45
callback = { mode = "customer-first", offer_ewt = 120, dial_timeout = 25 }
exits.max_wait = { queue = "sales" }
exits.full = { voicemail = "support-box" }
exits.empty = { ivr = "main" }
exits.closed = { message = "We are closed. Please call again tomorrow." }
hours = "paris"

[tenants.acme.hours.paris]
timezone = "Europe/Paris"
mon = ["08:00-12:00", "13:00-18:00"]
tue = "08:00-18:00"
sat = []
holidays = [2025-12-25, "2026-01-01"]

[tenants.acme.queues.sales]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "switch.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [line.removeprefix(f"{path}: ") for line in caught.value.lines]


def test_every_key_reaches_the_acd(tmp_path: Path) -> None:
    tenant = load_config(write(tmp_path, FULL)).tenants["acme"]
    rules = QueueRules.from_config("support", tenant.queues["support"], tenant)
    assert (rules.strategy, rules.ring_timeout, rules.wrapup, rules.wrapup_max) == (
        "weighted-random",
        15,
        30,
        90,
    )
    assert (rules.max_wait, rules.max_len, rules.weight, rules.priority_step) == (600, 50, 1, 30)
    assert rules.vip == frozenset({"+442079460000"}) and rules.vip_priority == 4
    assert rules.tier_waits == (20, 40) and dict(rules.skills) == {"english": 3}
    assert rules.relax == ((30, 1), (60, 3))
    assert (rules.sticky_wait, rules.join_empty, rules.leave_when_empty) == (15, False, True)
    assert (rules.announce_every, rules.callback_mode) == (45, "customer-first")
    assert (rules.callback_offer_ewt, rules.callback_dial_timeout) == (120, 25)
    assert rules.exit("max_wait") == ExitTarget(queue="sales")
    assert rules.exit("full").kind == "voicemail" and rules.exit("full").value == "support-box"
    assert rules.exit("empty") == ExitTarget(ivr="main")
    assert rules.exit("closed").message.startswith("We are closed")
    # The queue reads the tenant's calendar, the one the IVR reads too.
    assert rules.calendar.name == "paris" and rules.calendar.hours == tenant.hours["paris"]
    monday = datetime(2025, 12, 22, 12, 30, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    assert not rules.calendar.is_open(monday)  # the lunch break, in Paris
    assert rules.calendar.is_open(monday + 3600)
    assert not rules.calendar.is_open(monday + 3 * 86400 + 3600)  # the 25th: a holiday
    sales = QueueRules.from_config("sales", tenant.queues["sales"], tenant)
    assert sales.calendar is None and sales.exit("max_wait") == ExitTarget(message="")
    assert sales.wrapup_max == 120  # default: max(wrapup, 120)
    assert TenantRules.from_config(tenant.acd) == TenantRules(
        frozenset({"break", "coaching"}), 2, 3600.0
    )
    acd = Acd.from_config(tenant)
    agent = acd.agent("1001")
    assert (dict(agent.queues), dict(agent.skills), agent.weight, agent.position) == (
        {"support": 1, "sales": 2},
        {"english": 8},
        3,
        0,
    )
    assert acd.agent("1002").position == 1 and acd.agent("1002").status == "logged-out"


def test_the_demo_keeps_working_and_its_queues_route() -> None:
    tenant = load_demo_config().tenants["demo"]
    acd = Acd.from_config(tenant)
    assert sorted(acd.queues) == ["sales", "support"]
    acd.login("1003", 0, devices=["browser"])
    [offer] = acd.join("call-1", "support", 1, number="+442079460123")
    assert offer.agents == ("1003",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[queues.q.hours]\nmon = ["08:00-18:00"]\n',
            "queues.q.hours: a queue's hours name one of the tenant's calendars: move these "
            'keys to [tenants.X.hours.NAME] and write hours = "NAME" (the IVR reads the same '
            "calendars)",
        ),
        (
            '[queues.q]\nhours = "office"\n',
            "queues.q.hours: hours calendar 'office' does not exist in tenant 'default' "
            "(no hours defined)",
        ),
        (
            '[queues.q]\nexits.full = { queue = "q", message = "x" }\n',
            "queues.q.exits.full: needs exactly one of queue, voicemail, ivr or message "
            '(e.g. { queue = "sales" } or { message = "Please call back later." }); '
            "got queue, message",
        ),
        (
            "[queues.q]\nwrapup = 60\nwrapup_max = 30\n",
            "queues.q.wrapup_max: 30 is less than wrapup (60); raise it to at least 60",
        ),
        (
            "[queues.q]\ntier_waits = [60, 30]\n",
            "queues.q.tier_waits: [60, 30] must not decrease (e.g. [30, 60])",
        ),
        (
            "[queues.q]\nrelax = [{ after = 60, lower = 1 }, { after = 30, lower = 2 }]\n",
            "queues.q.relax: the steps' after ([60, 30]) must increase",
        ),
        (
            "[queues.q]\nrelax = [{ after = 30, lower = 3 }, { after = 60, lower = 1 }]\n",
            "queues.q.relax: the steps' lower ([3, 1]) must not decrease: each step says how many "
            "levels are taken off the original requirement from then on",
        ),
        (
            "[queues.q]\ncallback = { offer_ewt = 60 }\n",
            'queues.q.callback.offer_ewt: offering callbacks needs mode = "agent-first" or '
            '"customer-first"',
        ),
        (
            "[queues.q]\nskills = { english = 11 }\n",
            "queues.q.skills.english: 11 is too large (must be at most 10)",
        ),
        (
            "[queues.q]\nvip_priority = 0\n",
            "queues.q.vip_priority: 0 is too small (must be at least 1)",
        ),
        (
            # Tenant settings live under the tenant, as numbers do: [tenants.default.acd].
            "[acd]\nmax_missed = 1\n",
            "acd: unknown key (expected one of agents,",
        ),
    ],
)
def test_errors_say_what_to_write(tmp_path: Path, text: str, expected: str) -> None:
    lines = errors(tmp_path, text)
    assert any(line == expected or line.startswith(expected) for line in lines), lines


def test_references_and_tenant_settings(tmp_path: Path) -> None:
    lines = errors(
        tmp_path,
        """
        [tenants.t.acd]
        not_ready_reasons = ["lunch", "disconnected"]
        max_missed = -1
        [tenants.t.agents."1001"]
        password = "x"
        queues = ["q"]
        tiers = { other = 2 }
        [tenants.t.queues.q]
        exits.max_wait = { queue = "nowhere" }
        exits.empty = { ivr = "menu" }
        exits.full = { queue = "q" }
        """,
    )
    assert lines == [
        "tenants.t.acd.not_ready_reasons: 'disconnected' is set by the ACD itself; leave it out",
        "tenants.t.acd.max_missed: -1 is too small (must be at least 0)",
        "tenants.t.agents.1001.tiers.other: agent 1001 is not in queue 'other': add it to "
        "queues, or remove the tier",
        "tenants.t.queues.q.exits.max_wait.queue: queue 'nowhere' does not exist in tenant 't' "
        "(queues: q)",
        "tenants.t.queues.q.exits.empty.ivr: ivr 'menu' does not exist in tenant 't' "
        "(no ivr defined)",
        "tenants.t.queues.q.exits.full.queue: a queue cannot send its callers to itself",
    ]
