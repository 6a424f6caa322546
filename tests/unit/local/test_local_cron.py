"""PingSource schedules: what Knative's PingSource accepts is accepted, and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from troupe.local.eventing.sources.cron import CronError, CronSchedule

NOON = datetime(2026, 1, 5, 12, 2, 30, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(("schedule", "expected"), [
    ("*/5 * * * *", datetime(2026, 1, 5, 12, 5, tzinfo=UTC)),
    ("0 9 * * mon-fri", datetime(2026, 1, 6, 9, 0, tzinfo=UTC)),
    ("0 0 ? * *", datetime(2026, 1, 6, 0, 0, tzinfo=UTC)),
    ("@hourly", datetime(2026, 1, 5, 13, 0, tzinfo=UTC)),
    ("@daily", datetime(2026, 1, 6, 0, 0, tzinfo=UTC)),
    ("@midnight", datetime(2026, 1, 6, 0, 0, tzinfo=UTC)),
    ("@weekly", datetime(2026, 1, 11, 0, 0, tzinfo=UTC)),
    ("@monthly", datetime(2026, 2, 1, 0, 0, tzinfo=UTC)),
    ("@yearly", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
    ("@annually", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
    ("@every 30s", datetime(2026, 1, 5, 12, 3, 0, tzinfo=UTC)),
    ("@every 1h30m", datetime(2026, 1, 5, 13, 32, 30, tzinfo=UTC)),
    ("CRON_TZ=UTC 0 9 * * mon-fri", datetime(2026, 1, 6, 9, 0, tzinfo=UTC)),
    # 09:00 in Paris is 08:00 UTC in winter.
    ("CRON_TZ=Europe/Paris 0 9 * * *", datetime(2026, 1, 6, 8, 0, tzinfo=UTC)),
    ("TZ=America/New_York 0 9 * * *", datetime(2026, 1, 5, 14, 0, tzinfo=UTC)),
])
def test_knative_schedules_fire_when_knative_fires_them(schedule: str,
                                                        expected: datetime) -> None:
    assert CronSchedule.parse(schedule).next_after(NOON) == expected


def test_spec_timezone_is_the_zone_of_the_schedule() -> None:
    schedule = CronSchedule.parse("0 9 * * *", "Asia/Tokyo")

    fired = schedule.next_after(NOON)

    assert fired == datetime(2026, 1, 6, 0, 0, tzinfo=UTC)
    assert fired.astimezone(ZoneInfo("Asia/Tokyo")).hour == 9


def test_every_rounds_as_robfig_cron_does() -> None:
    assert CronSchedule.parse("@every 1500ms").every == timedelta(seconds=1)
    assert CronSchedule.parse("@every 100ms").every == timedelta(seconds=1)


@pytest.mark.parametrize(("schedule", "timezone", "field"), [
    ("61 * * * *", None, "spec.schedule"),
    ("every minute", None, "spec.schedule"),
    ("* * * *", None, "spec.schedule"),
    ("0 0 30 2 *", None, "spec.schedule"),  # never fires
    ("0 0 31 4 *", None, "spec.schedule"),
    ("1_0 * * * *", None, "spec.schedule"),  # int() would read it as 10
    ("0 0 ¹ * *", None, "spec.schedule"),  # isdigit() is True for it
    ("0 0 L * *", None, "spec.schedule"),  # cronsim's, not Knative's
    ("0 0 * * 5#2", None, "spec.schedule"),
    ("@fortnightly", None, "spec.schedule"),
    ("@every", None, "spec.schedule"),
    ("@every soon", None, "spec.schedule"),
    ("@every 0s", None, "spec.schedule"),
    ("CRON_TZ=Mars/Olympus 0 9 * * *", None, "spec.schedule"),
    ("0 9 * * *", "Mars/Olympus", "spec.timezone"),
    ("CRON_TZ=UTC 0 9 * * *", "Europe/Paris", "spec.schedule"),
])
def test_what_knative_refuses_is_refused_naming_the_field(schedule: str, timezone: str | None,
                                                          field: str) -> None:
    with pytest.raises(CronError) as error:
        CronSchedule.parse(schedule, timezone)

    assert error.value.field == field
    assert error.value.problem
