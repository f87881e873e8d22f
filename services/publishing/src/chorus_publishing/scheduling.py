"""Turning what a user typed into one UTC instant (design.md §1: timezones are never wrong).

`scheduledAt` is ISO 8601 with an offset, or a local wall time plus an IANA `timezone`.
A naive time without a zone, an unknown zone, a local time that does not exist (the DST
gap) and a time in the past are refused with the field named. An ambiguous local time (the
hour repeated when clocks go back) means its first occurrence, as calendars do.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chorus_runtime.errors import ValidationFailed

PAST_GRACE = timedelta(seconds=5)


def _invalid(field: str, message: str, kind: str) -> ValidationFailed:
    return ValidationFailed(message, details=[{"field": field, "message": message, "type": kind}])


def zone(name: str) -> ZoneInfo:
    if not name or ("/" not in name and name not in ("UTC", "GMT")):
        raise _invalid("timezone", f"unknown time zone {name!r}", "unknown_timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _invalid("timezone", f"unknown time zone {name!r}", "unknown_timezone") from None


def resolve(
    scheduled_at: str, timezone: str | None, *, now: datetime, allow_past: bool = False
) -> datetime:
    """The UTC instant a post should go out."""
    try:
        parsed = datetime.fromisoformat(scheduled_at.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _invalid("scheduledAt", "not an ISO 8601 date-time", "invalid_datetime") from None
    tz = zone(timezone) if timezone is not None else None
    if parsed.tzinfo is None:
        if tz is None:
            raise _invalid(
                "scheduledAt",
                "a time without an offset needs a timezone (IANA name, e.g. Europe/Berlin)",
                "naive_datetime",
            )
        local = parsed.replace(tzinfo=tz, fold=0)
        # A wall time in the spring-forward gap does not round-trip through UTC.
        if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != parsed:
            raise _invalid(
                "scheduledAt",
                f"{parsed.isoformat()} does not exist in {timezone} (clocks go forward)",
                "nonexistent_local_time",
            )
        instant = local.astimezone(UTC)
    else:
        instant = parsed.astimezone(UTC)
    if not allow_past and instant < now - PAST_GRACE:
        raise _invalid("scheduledAt", "must be in the future", "past_datetime")
    return instant


def local_display(instant: datetime, timezone: str | None) -> str:
    tz = zone(timezone) if timezone else UTC
    return instant.astimezone(tz).isoformat()
