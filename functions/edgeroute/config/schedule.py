"""When a policy rule applies: days of the week and a time-of-day window in a time zone.

Times are wall-clock times in ``timezone`` (an IANA name, read through zoneinfo), so a
window keeps its local hours across daylight-saving changes: on the day clocks go
forward an hour inside the window does not exist, on the day they go back it happens
twice and both count. ``hours`` is ``"HH:MM-HH:MM"``, start included, end excluded; an
end at or before the start wraps past midnight, and such a window belongs to the day it
starts on (``days: [fri]``, ``hours: "22:00-06:00"`` is Friday night to Saturday 06:00).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator

from edgeroute.config.loading import StrictModel

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")
_DAY_MINUTES = 24 * 60


def _window(hours: str) -> tuple[int, int]:
    """``"HH:MM-HH:MM"`` as minutes after midnight (start, end); the form is checked."""
    match = _HOURS.match(hours)
    assert match is not None
    start_h, start_m, end_h, end_m = (int(g) for g in match.groups())
    return start_h * 60 + start_m, end_h * 60 + end_m


class Schedule(StrictModel):
    """A rule's time condition; every part given must hold (none given: always)."""

    days: tuple[Day, ...] = ()  # empty: every day
    hours: str | None = None  # "HH:MM-HH:MM"; None: all day
    timezone: str = "UTC"

    @field_validator("hours")
    @classmethod
    def _hours_form(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        match = _HOURS.match(value)
        if match is None or (match.group(3) == "24" and match.group(4) != "00"):
            raise ValueError(
                f"'{value}' is not a time window: write \"HH:MM-HH:MM\" on a 24-hour clock, "
                'e.g. "00:00-07:00" (an end before the start wraps past midnight)'
            )
        start, end = _window(value)
        if start == end % _DAY_MINUTES:
            raise ValueError(
                f"'{value}' starts and ends at the same time: leave 'hours' out for all day"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"'{value}' is not a time zone this system knows: use an IANA name such as "
                "Asia/Shanghai, Europe/Berlin or UTC"
            ) from None
        return value

    def covers(self, now: float) -> bool:
        """Whether the epoch time ``now`` falls in this schedule."""
        local = datetime.fromtimestamp(now, ZoneInfo(self.timezone))  # zoneinfo caches zones
        day = local.weekday()
        if self.hours is not None:
            start, end = _window(self.hours)
            minute = local.hour * 60 + local.minute
            if start < end:
                if not start <= minute < end:
                    return False
            elif minute < end:
                day = (day - 1) % 7  # the early hours of a window that began yesterday
            elif minute < start:
                return False
        return not self.days or DAYS[day] in self.days

    def describe(self) -> str:
        """The schedule as ``/v1/route`` shows it, e.g. ``sat,sun 00:00-07:00 Asia/Shanghai``."""
        days = ",".join(self.days) if self.days else "every day"
        return f"{days} {self.hours or 'all day'} {self.timezone}"
