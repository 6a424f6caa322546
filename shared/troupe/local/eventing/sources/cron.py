"""Five-field cron schedules (minute hour day-of-month month day-of-week), as PingSource takes them.

Supports `*`, lists, ranges, steps (`*/5`, `1-10/2`), month and weekday names, and an
optional `CRON_TZ=`/`TZ=` prefix (accepted, evaluated in UTC as Knative's default is).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from troupe.local.errors import LocalError

_MONTHS = {n: i for i, n in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    start=1)}
_WEEKDAYS = {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _WEEKDAYS))
_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@hourly": "0 * * * *"}


class CronError(LocalError, ValueError):
    """A schedule that is not a valid five-field cron expression."""


@dataclass(frozen=True)
class CronSchedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        expression = text.strip()
        if expression.split(" ", 1)[0].startswith(("CRON_TZ=", "TZ=")):
            expression = expression.split(" ", 1)[1] if " " in expression else ""
        expression = _MACROS.get(expression, expression)
        parts = expression.split()
        if len(parts) != 5:
            raise CronError(f"{text!r} has {len(parts)} fields; a cron schedule has 5 "
                            "(minute hour day-of-month month day-of-week), e.g. '*/1 * * * *'")
        sets = [_parse_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(sets[0], sets[1], sets[2], sets[3], weekdays,
                   any_day=parts[2] == "*", any_weekday=parts[4] == "*")

    def matches(self, moment: datetime) -> bool:
        if moment.minute not in self.minutes or moment.hour not in self.hours:
            return False
        if moment.month not in self.months:
            return False
        day_ok = moment.day in self.days
        weekday_ok = (moment.isoweekday() % 7) in self.weekdays
        # Classic cron: when both day fields are restricted, either one matching is enough.
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok

    def next_after(self, moment: datetime) -> datetime:
        """The first matching minute strictly after `moment` (UTC)."""
        candidate = moment.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(60 * 24 * 366 * 5):
            if self.matches(candidate):
                return candidate
            candidate += timedelta(minutes=1)
        raise CronError("the schedule never fires")


def _parse_field(part: str, name: str, low: int, high: int,
                 names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        body, _, step_text = item.partition("/")
        step = _number(step_text, name, names) if step_text else 1
        if step < 1:
            raise CronError(f"{name}: step {step_text!r} must be at least 1")
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, last = body.split("-", 1)
            start, end = _number(first, name, names), _number(last, name, names)
        else:
            start = _number(body, name, names)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high and start <= end):
            raise CronError(f"{name}: {item!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _number(text: str, name: str, names: dict[str, int]) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isdigit():
        raise CronError(f"{name}: {text!r} is not a number")
    return int(text)
