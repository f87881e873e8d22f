"""Pure dashboard logic: periods, formulas, series filling and the best-time grid.

Formulas (also in docs/data-team.md):

* engagement = likes + comments + shares + saves (clicks and video views are reported
  separately: they are not interactions with the post itself on every platform).
* Metric snapshots are cumulative. A post's value *in a period* is its last snapshot on or
  before the period's last day minus its last snapshot before the period's first day (0 if
  none); a workspace's value is the sum over posts. The daily chart uses the same rule per
  day, so its days add up to the period value.
* engagementRate = engagement / impressions × 100 (percent, 2 decimals; 0 when there are no
  impressions).
* followers = the sum over accounts of each account's last snapshot on or before the day
  (an account with no snapshot yet counts 0); a day's change is the sum of the accounts'
  changes from their previous known value (0 for an account's first snapshot: that is when
  Chorus started counting, not growth).
* posts = distinct posts with a successful delivery published in the period.
* change = current − previous; changePercent = change / previous × 100 (2 decimals), 0 when
  both are 0, null when only previous is 0.
* Without compare dates the comparison period is the one of the same length just before.
* Dashboard days are UTC days (the rollup granularity); the best-time grid is in the
  workspace's time zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

ENGAGEMENT_FIELDS = ("likes", "comments", "shares", "saves")
METRIC_FIELDS = (
    "likes",
    "comments",
    "shares",
    "saves",
    "impressions",
    "reach",
    "clicks",
    "video_views",
)
DEFAULT_PERIOD_DAYS = 30


class InvalidRange(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Period:
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]

    def previous(self) -> Period:
        end = self.start - timedelta(days=1)
        return Period(end - timedelta(days=self.days - 1), end)


def resolve_period(
    start: date | None,
    end: date | None,
    *,
    today: date,
    max_days: int,
    default_days: int = DEFAULT_PERIOD_DAYS,
    names: tuple[str, str] = ("startDate", "endDate"),
) -> Period:
    end = end or (start + timedelta(days=default_days - 1) if start else today)
    start = start or end - timedelta(days=default_days - 1)
    if start > end:
        raise InvalidRange(f"{names[0]} must not be after {names[1]}", names[0])
    period = Period(start, end)
    if period.days > max_days:
        raise InvalidRange(f"the range may span at most {max_days} days", names[1])
    return period


def resolve_periods(
    start: date | None,
    end: date | None,
    compare_start: date | None,
    compare_end: date | None,
    *,
    today: date,
    max_days: int,
) -> tuple[Period, Period]:
    """The period and its comparison period (the previous one of the same length by default)."""
    current = resolve_period(start, end, today=today, max_days=max_days)
    if compare_start is None and compare_end is None:
        return current, current.previous()
    if compare_start is None or compare_end is None:
        field = "compareStartDate" if compare_start is None else "compareEndDate"
        raise InvalidRange("compareStartDate and compareEndDate go together", field)
    compare = resolve_period(
        compare_start,
        compare_end,
        today=today,
        max_days=max_days,
        names=("compareStartDate", "compareEndDate"),
    )
    return current, compare


def change(current: float, previous: float) -> dict[str, Any]:
    diff = current - previous
    if previous == 0:
        percent: float | None = 0.0 if current == 0 else None
    else:
        percent = round(diff / previous * 100, 2)
    return {"current": current, "previous": previous, "change": diff, "changePercent": percent}


def engagement_of(m: Mapping[str, Any]) -> int:
    return sum(int(m.get(f, 0) or 0) for f in ENGAGEMENT_FIELDS)


def engagement_rate(engagement: float, impressions: float) -> float:
    return round(engagement / impressions * 100, 2) if impressions else 0.0


def zero_metrics() -> dict[str, int]:
    return dict.fromkeys(METRIC_FIELDS, 0)


def add_metrics(total: dict[str, int], m: Mapping[str, Any]) -> dict[str, int]:
    for f in METRIC_FIELDS:
        total[f] = total.get(f, 0) + int(m.get(f, 0) or 0)
    return total


def daily_series(
    period: Period, by_day: Mapping[date, Mapping[str, Any]], fields: Sequence[str]
) -> list[dict[str, Any]]:
    """One entry per day of the period; days without data are zeros."""
    out = []
    for d in period.dates():
        row = by_day.get(d, {})
        out.append({"date": d, **{f: int(row.get(f, 0) or 0) for f in fields}})
    return out


def follower_series(
    period: Period,
    points: Iterable[tuple[str, date, int]],
    baselines: Mapping[str, int],
) -> list[dict[str, Any]]:
    """Daily followers summed over accounts, with the net change per day.

    `points`: (account, day, followers at the end of that day) inside the period;
    `baselines`: each account's last value before the period.
    """
    by_account: dict[str, dict[date, int]] = {}
    for account, day, value in points:
        by_account.setdefault(account, {})[day] = int(value)
    accounts = set(by_account) | set(baselines)
    last: dict[str, int | None] = {a: baselines.get(a) for a in accounts}
    out = []
    for d in period.dates():
        total = 0
        delta = 0
        for a in accounts:
            value = by_account.get(a, {}).get(d)
            if value is not None:
                previous = last[a]
                if previous is not None:
                    delta += value - previous
                last[a] = value
            total += last[a] or 0
        out.append({"date": d, "followers": total, "change": delta})
    return out


def gained_lost(series: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per-day gained/lost from net changes (platforms report totals, not follows/unfollows)."""
    return [
        {
            "date": p["date"],
            "followers": p["followers"],
            "gained": max(p["change"], 0),
            "lost": max(-p["change"], 0),
            "net": p["change"],
        }
        for p in series
    ]


@dataclass(frozen=True)
class Cell:
    weekday: int  # ISO: Monday = 1
    hour: int
    posts: int
    engagement: int
    impressions: int


def best_time(
    cells: Iterable[Cell], *, min_samples: int, top: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The full 7 × 24 grid (rate = Σ engagement / Σ impressions × 100 per cell, with the
    number of posts behind it) and the `top` cells by rate among those with enough posts."""
    known = {(c.weekday, c.hour): c for c in cells}
    grid = []
    for weekday in range(1, 8):
        for hour in range(24):
            c = known.get((weekday, hour))
            grid.append(
                {
                    "weekday": weekday,
                    "hour": hour,
                    "posts": c.posts if c else 0,
                    "engagement": c.engagement if c else 0,
                    "impressions": c.impressions if c else 0,
                    "engagementRate": engagement_rate(c.engagement, c.impressions) if c else 0.0,
                }
            )
    eligible = [g for g in grid if g["posts"] >= max(1, min_samples)]
    eligible.sort(key=lambda g: (-g["engagementRate"], -g["posts"], g["weekday"], g["hour"]))
    return grid, eligible[:top]
