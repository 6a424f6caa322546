"""PingSource schedules, read as Knative reads them, evaluated by cronsim.

Knative's PingSource parses `spec.schedule` with robfig/cron's standard parser: five
fields (minute hour day-of-month month day-of-week) with names, ranges, lists, steps and
`?`; the descriptors `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
`@midnight`, `@hourly` and `@every <Go duration>`; and a `CRON_TZ=<zone>` (or `TZ=`)
prefix. `spec.timezone` names the zone too. Without one, Knative's adapter runs in UTC.

The fields themselves are cronsim's job (a well-kept parser and evaluator, which knows
when a schedule can never fire without searching for it). What is here is the part
robfig/cron adds: descriptors, `@every`, the zone prefix, and refusing cronsim's
extensions (`L`, `W`, `#`) that a cluster's PingSource would refuse.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from troupe.local.conventions import parse_go_duration
from troupe.local.errors import InvalidFieldError

SCHEDULE_FIELD: Final = "spec.schedule"
TIMEZONE_FIELD: Final = "spec.timezone"
_DESCRIPTORS: Final = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *",
                       "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
                       "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                       "@hourly": "0 * * * *"}
_ZONE_PREFIXES: Final = ("CRON_TZ=", "TZ=")
_FIELD_NAMES: Final = ("minute", "hour", "day of month", "month", "day of week")
# Month and weekday names, taken out before looking for cronsim's L, W and # ("WED" has a W).
_NAMES: Final = re.compile(r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|"
                           r"sun|mon|tue|wed|thu|fri|sat", re.IGNORECASE)
_EXAMPLE: Final = "e.g. '*/5 * * * *', '@hourly' or '@every 30s'"


class CronError(InvalidFieldError):
    """A schedule (or its time zone) that Knative's PingSource would refuse; `field` says
    which of `spec.schedule` and `spec.timezone` is wrong."""


@dataclass(frozen=True)
class CronSchedule:
    """When a PingSource fires: a five-field expression in a zone, or a fixed interval."""

    expression: str  # five fields, descriptors expanded; "" for @every
    zone: tzinfo
    every: timedelta | None = None

    @classmethod
    def parse(cls, text: str, timezone: str | None = None) -> CronSchedule:
        """The schedule `text` means, in `timezone` (spec.timezone) unless it names its own
        zone; raises CronError naming the field at fault."""
        expression = " ".join(text.split())
        zone_name = timezone or None
        first, _, rest = expression.partition(" ")
        if first.startswith(_ZONE_PREFIXES):
            if timezone:
                raise CronError(SCHEDULE_FIELD, f"{text!r} names a time zone and so does "
                                f"{TIMEZONE_FIELD}: keep one of them")
            zone_name, expression = first.partition("=")[2], rest
        zone = _zone(zone_name, TIMEZONE_FIELD if timezone else SCHEDULE_FIELD)
        if expression.startswith("@every"):
            return cls("", zone, _interval(expression, text))
        expression = _DESCRIPTORS.get(expression, expression)
        if expression.startswith("@"):
            raise CronError(SCHEDULE_FIELD, f"{text!r}: unknown descriptor; use one of "
                            f"{', '.join(_DESCRIPTORS)} or '@every <duration>'")
        fields = expression.split(" ")
        if len(fields) != 5:
            raise CronError(SCHEDULE_FIELD, f"{text!r} has {len(fields)} fields; a schedule "
                            "has 5 (minute hour day-of-month month day-of-week), " + _EXAMPLE)
        for name, value in zip(_FIELD_NAMES, fields, strict=True):
            extension = next((c for c in "LW#" if c in _NAMES.sub("", value).upper()), None)
            if extension is not None:
                raise CronError(SCHEDULE_FIELD, f"{text!r}: the {name} uses {extension!r}, "
                                "which Knative's PingSource does not accept")
        # robfig/cron reads a lone '?' in the day fields as '*'; cronsim does not know it.
        fields = [("*" if value == "?" and index in (2, 4) else value)
                  for index, value in enumerate(fields)]
        schedule = cls(" ".join(fields), zone)
        try:
            CronSim(schedule.expression, datetime.now(zone))
        except CronSimError as error:
            raise CronError(SCHEDULE_FIELD, f"{text!r}: {error}; {_EXAMPLE}") from None
        return schedule

    def next_after(self, moment: datetime) -> datetime:
        """The first firing strictly after `moment`, as an aware datetime."""
        if self.every is not None:
            # robfig/cron's ConstantDelaySchedule: on whole seconds.
            return moment.replace(microsecond=0) + self.every
        local = moment.astimezone(self.zone)
        return next(CronSim(self.expression, local))


def _zone(name: str | None, field: str) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(field, f"unknown time zone {name!r}: use an IANA name such as "
                        "'Europe/Paris' or 'UTC'") from None


def _interval(expression: str, text: str) -> timedelta:
    duration = expression.removeprefix("@every").strip()
    try:
        seconds = parse_go_duration(duration)
    except ValueError:
        raise CronError(SCHEDULE_FIELD, f"{text!r}: '@every' takes a duration such as "
                        "'30s', '5m' or '1h30m'") from None
    if seconds <= 0:
        raise CronError(SCHEDULE_FIELD, f"{text!r}: the interval must be positive")
    # robfig/cron rounds an interval down to whole seconds, and up to at least one.
    return timedelta(seconds=max(1, math.floor(seconds)))
