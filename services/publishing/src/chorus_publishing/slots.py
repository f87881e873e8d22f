"""Posting slots, free of I/O: per account, a weekday (Monday = 0) and a local wall time in
the workspace's time zone. Queueing a post puts it at the next free slot of its accounts.

Slot instants are computed day by day in local time and converted to UTC with zoneinfo, so
a 09:30 slot stays 09:30 on both sides of a DST change. A slot whose local time does not
exist that day (the spring-forward gap) is skipped that day; an ambiguous one (the repeated
hour) means its first occurrence, as in `scheduling.resolve`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

HORIZON_DAYS = 56  # how far ahead the queue looks for a free slot


@dataclass(frozen=True, order=True)
class Slot:
    account_id: str
    weekday: int  # 0 = Monday … 6 = Sunday
    time: time


def parse_time(value: str) -> time:
    """ "HH:MM" (24 h); ValueError otherwise."""
    hours, sep, minutes = value.partition(":")
    if not sep or len(hours) != 2 or len(minutes) != 2:
        raise ValueError("expected HH:MM")
    return time(int(hours), int(minutes))


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime | None:
    """The UTC instant of a local wall time that day, or None inside a DST gap."""
    local = datetime.combine(day, at).replace(tzinfo=tz, fold=0)
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != datetime.combine(day, at):
        return None
    return instant


def occurrences(
    slots: Iterable[Slot], tz: ZoneInfo, *, after: datetime, days: int = HORIZON_DAYS
) -> Iterator[datetime]:
    """Every slot instant strictly after `after`, in time order, for `days` local days."""
    by_weekday: dict[int, set[time]] = {}
    for s in slots:
        by_weekday.setdefault(s.weekday, set()).add(s.time)
    start = after.astimezone(tz).date()
    for offset in range(days + 1):
        day = start + timedelta(days=offset)
        for at in sorted(by_weekday.get(day.weekday(), ())):
            instant = local_instant(day, at, tz)
            if instant is not None and instant > after:
                yield instant


def next_free(
    slots: Iterable[Slot],
    accounts: Iterable[str],
    tz: ZoneInfo,
    *,
    now: datetime,
    taken: set[datetime],
    days: int = HORIZON_DAYS,
) -> datetime | None:
    """The first slot of any of the post's accounts at which none of them is taken."""
    mine = set(accounts)
    relevant = [s for s in slots if s.account_id in mine]
    for instant in occurrences(relevant, tz, after=now, days=days):
        if instant not in taken:
            return instant
    return None
