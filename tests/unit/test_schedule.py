"""Time-of-day policy rules: when a schedule holds (wrap-around, time zones, daylight
saving, days), how a bad one is refused, and the rule applied at an injected time,
down to ``/v1/route``'s explanation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from edgeroute.config.policy import parse_policy
from edgeroute.config.schedule import Schedule
from edgeroute.errors import ConfigError
from edgeroute.pipeline.autoroute import Limits, decide
from edgeroute.store.keys import mint_key
from edgeroute.types import Kind
from tests.support.inprocess import Client, chat_body, memory_gateway
from tests.unit.test_autoroute import REGISTRY, _c


def _at(text: str) -> float:
    """An ISO time in UTC as epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _covers(when: str, **schedule: Any) -> bool:
    return Schedule.model_validate(schedule).covers(_at(when))


def test_a_window_within_a_day_includes_its_start_and_excludes_its_end() -> None:
    window = {"hours": "09:00-17:30"}
    assert _covers("2026-11-30T09:00:00", **window)
    assert _covers("2026-11-30T17:29:59", **window)
    assert not _covers("2026-11-30T17:30:00", **window)
    assert not _covers("2026-11-30T08:59:59", **window)


def test_a_window_wraps_past_midnight() -> None:
    night = {"hours": "22:00-06:00"}
    assert _covers("2026-11-30T23:30:00", **night)
    assert _covers("2026-12-01T00:00:00", **night)
    assert _covers("2026-12-01T05:59:59", **night)
    assert not _covers("2026-12-01T06:00:00", **night)
    assert not _covers("2026-12-01T21:59:59", **night)


def test_a_wrapping_window_belongs_to_the_day_it_starts_on() -> None:
    friday_night = {"days": ["fri"], "hours": "22:00-06:00"}
    assert _covers("2026-12-04T23:00:00", **friday_night)  # Friday
    assert _covers("2026-12-05T03:00:00", **friday_night)  # Saturday morning: Friday's night
    assert not _covers("2026-12-04T03:00:00", **friday_night)  # Friday morning: Thursday's
    assert not _covers("2026-12-05T23:00:00", **friday_night)  # Saturday night


def test_days_alone_and_an_end_of_24_00() -> None:
    assert _covers("2026-12-05T12:00:00", days=["sat", "sun"])  # a Saturday
    assert not _covers("2026-12-07T12:00:00", days=["sat", "sun"])  # a Monday
    assert _covers("2026-12-07T23:59:59", hours="18:00-24:00")
    assert not _covers("2026-12-07T00:00:00", hours="18:00-24:00")
    assert _covers("2026-12-07T00:00:00")  # no condition: always


def test_hours_and_days_are_read_in_the_schedules_time_zone() -> None:
    off_peak = {"hours": "00:00-07:00", "timezone": "Asia/Shanghai"}  # UTC+8
    assert _covers("2026-11-29T18:00:00", **off_peak)  # 02:00 in Shanghai
    assert _covers("2026-11-29T16:00:00", **off_peak)  # 00:00
    assert not _covers("2026-11-29T23:00:00", **off_peak)  # 07:00
    assert not _covers("2026-11-29T03:00:00", **off_peak)  # 11:00
    # Sunday 20:00 UTC is already Monday 05:00 in Tokyo.
    assert _covers("2026-11-29T20:00:00", days=["mon"], timezone="Asia/Tokyo")
    assert not _covers("2026-11-29T20:00:00", days=["mon"])


def test_daylight_saving_keeps_local_hours() -> None:
    new_york = {"timezone": "America/New_York"}
    # 2026-03-08: clocks go from 02:00 EST straight to 03:00 EDT.
    assert not _covers("2026-03-08T06:59:59", hours="02:00-03:00", **new_york)  # 01:59:59
    assert not _covers("2026-03-08T07:00:00", hours="02:00-03:00", **new_york)  # 03:00
    assert _covers("2026-03-08T06:30:00", hours="01:00-04:00", **new_york)  # 01:30 EST
    assert _covers("2026-03-08T07:30:00", hours="01:00-04:00", **new_york)  # 03:30 EDT
    assert not _covers("2026-03-08T08:00:00", hours="01:00-04:00", **new_york)  # 04:00 EDT
    # 2026-11-01: 01:00-02:00 happens twice (EDT, then EST); both count.
    assert _covers("2026-11-01T05:30:00", hours="01:00-02:00", **new_york)  # 01:30 EDT
    assert _covers("2026-11-01T06:30:00", hours="01:00-02:00", **new_york)  # 01:30 EST
    assert not _covers("2026-11-01T07:00:00", hours="01:00-02:00", **new_york)  # 02:00 EST
    # Summer and winter, the same local window at a different UTC hour.
    assert _covers("2026-07-01T13:00:00", hours="09:00-10:00", **new_york)  # EDT, UTC-4
    assert _covers("2026-12-01T14:00:00", hours="09:00-10:00", **new_york)  # EST, UTC-5
    assert not _covers("2026-12-01T13:00:00", hours="09:00-10:00", **new_york)


def _policy_error(schedule: str) -> str:
    text = f"""
rules:
  - name: off-peak
    when: {{schedule: {schedule}}}
    tier: large
"""
    with pytest.raises(ConfigError) as refused:
        parse_policy(text, "routing.yaml")
    return str(refused.value)


@pytest.mark.parametrize(
    ("schedule", "field", "says"),
    [
        ('{hours: "7-9"}', "hours", 'write "HH:MM-HH:MM" on a 24-hour clock'),
        ('{hours: "25:00-07:00"}', "hours", "is not a time window"),
        ('{hours: "00:00-24:30"}', "hours", "is not a time window"),
        ('{hours: "07:00-07:00"}', "hours", "leave 'hours' out for all day"),
        ("{timezone: Mars/Olympus}", "timezone", "use an IANA name such as Asia/Shanghai"),
        ("{days: [monday]}", "days.0", "'mon', 'tue'"),
        ("{hour: '00:00-07:00'}", "hour", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_schedule_names_the_rule_and_the_field(schedule: str, field: str, says: str) -> None:
    message = _policy_error(schedule)
    assert f"routing.yaml: rules.off-peak.when.schedule.{field}:" in message
    assert says in message


POLICY = parse_policy(
    """
rules:
  - name: off-peak-batch-to-large
    when:
      key_name: [nightly-batch]
      schedule: {hours: "00:00-07:00", timezone: Asia/Shanghai}
    tier: large
  - name: peak-low-priority-to-small
    when:
      priority_below: 1
      schedule: {days: [mon, tue, wed, thu, fri], hours: "09:00-18:00", timezone: Asia/Shanghai}
    tier: small
""",
    "routing.yaml",
)
OFF_PEAK = _at("2026-11-30T18:30:00")  # Tuesday 02:30 in Shanghai
PEAK = _at("2026-12-01T03:00:00")  # Tuesday 11:00 in Shanghai
EVENING = _at("2026-12-01T13:00:00")  # Tuesday 21:00 in Shanghai


def _first(key_name: str, priority: int, now: float, complexity: float) -> tuple[str, Any]:
    key = mint_key(key_name, priority=priority)[1]
    decision = decide(
        name="auto",
        kind=Kind.CHAT,
        payload={"max_tokens": 100},
        c=_c("code", complexity),
        registry=REGISTRY,
        policy=POLICY,
        principal=key,
        health={},
        limits=Limits(),
        now=now,
    )
    return decision.targets[0].name, decision.rule


def test_a_scheduled_rule_applies_only_in_its_window_and_for_its_keys() -> None:
    easy, hard = 0.05, 0.8
    # Off-peak, the batch key's easy prompt goes to the large tier.
    assert _first("nightly-batch", 1, OFF_PEAK, easy) == (
        "big",
        {
            "name": "off-peak-batch-to-large",
            "tier": "large",
            "schedule": "every day 00:00-07:00 Asia/Shanghai",
        },
    )
    assert _first("nightly-batch", 1, PEAK, easy) == ("tiny", None)  # outside the window
    assert _first("interactive", 1, OFF_PEAK, easy) == ("tiny", None)  # another key
    # At peak a low-priority key's hard prompt goes to small; a priority 1 key's does not.
    name, rule = _first("interactive", 0, PEAK, hard)
    assert name == "tiny" and rule["name"] == "peak-low-priority-to-small"
    assert _first("interactive", 1, PEAK, hard) == ("big", None)
    assert _first("interactive", 0, EVENING, hard) == ("big", None)


async def test_the_gateway_clock_decides_and_v1_route_shows_the_rule() -> None:
    gw = memory_gateway(
        """
models:
  - {name: tiny, endpoint: 'http://small:1/v1', tier: small}
  - {name: big, endpoint: 'http://big:1/v1', tier: large}
""",
        policy=POLICY,
    )
    secret, key = mint_key("nightly-batch", priority=1)
    await gw.store.put_key(key)
    client = Client(gw, secret)

    async def route_at(now: float) -> dict[str, Any]:
        gw.clock = lambda: now
        answer = await client.post("/v1/route", chat_body("auto"))
        assert answer.status_code == 200, answer.text
        explained: dict[str, Any] = answer.json()
        return explained

    off_peak = await route_at(OFF_PEAK)
    assert off_peak["model"] == "big"
    assert off_peak["rule"] == {
        "name": "off-peak-batch-to-large",
        "tier": "large",
        "schedule": "every day 00:00-07:00 Asia/Shanghai",
    }
    assert "rule 'off-peak-batch-to-large' (every day 00:00-07:00" in off_peak["reason"]
    peak = await route_at(PEAK)
    assert peak["model"] == "tiny" and peak["rule"] is None
