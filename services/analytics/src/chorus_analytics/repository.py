"""Read access to the analytics store: one method per statement of `queries.py`.

Every method takes the caller's workspace id first and binds it; nothing here can read
another workspace's rows. Results are plain dicts of Python values.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from chorus_analytics import queries
from chorus_analytics.domain import METRIC_FIELDS, Period
from chorus_runtime.clickhouse import ClickHouseClient

NIL = uuid.UUID(int=0)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAR = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Filters:
    accounts: tuple[uuid.UUID, ...] = ()
    platform: str = ""

    def params(self) -> dict[str, Any]:
        return {"accounts": list(self.accounts), "platform": self.platform}


@dataclass(frozen=True)
class AuditFilters:
    actor_id: str = ""
    actor_type: str = ""
    action: str = ""
    resource_type: str = ""
    resource_id: str = ""
    status_min: int = 0
    status_max: int = 0


@dataclass
class FollowerData:
    """Per account (key: account id text): per-day values inside the period, the last value
    before it (only when there is one), and the values at the end of either period."""

    points: list[tuple[str, date, int]] = field(default_factory=list)
    baselines: dict[str, int] = field(default_factory=dict)
    platforms: dict[str, str] = field(default_factory=dict)
    at_end: dict[str, int] = field(default_factory=dict)
    at_compare_end: dict[str, int] = field(default_factory=dict)

    def by_platform(self, values: dict[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for key, value in values.items():
            platform = self.platforms.get(key, "")
            out[platform] = out.get(platform, 0) + value
        return out


@dataclass
class Published:
    total: int = 0
    by_platform: dict[str, int] = field(default_factory=dict)


_ZONES: frozenset[str] | None = None


def valid_zone(name: str | None) -> str:
    """An IANA zone known to Python (ClickHouse ships the same database), else UTC."""
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    if name and name in _ZONES:
        ZoneInfo(name)
        return name
    return "UTC"


class AnalyticsRepository:
    def __init__(self, client: ClickHouseClient, *, export_chunk_rows: int = 5_000) -> None:
        self.client = client
        self.chunk = export_chunk_rows

    async def _rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        return await self.client.query(sql, params)

    # -- workspace -----------------------------------------------------------------------

    async def timezone(self, ws: uuid.UUID) -> str:
        rows = await self._rows(queries.WORKSPACE_TIMEZONE, ws=ws)
        return valid_zone(rows[0]["timezone"] if rows else None)

    # -- dashboards ----------------------------------------------------------------------

    async def post_gains(self, ws: uuid.UUID, period: Period, f: Filters) -> list[dict[str, Any]]:
        return await self._rows(
            queries.POST_GAINS, ws=ws, start=period.start, end=period.end, **f.params()
        )

    async def daily_gains(
        self, ws: uuid.UUID, period: Period, f: Filters
    ) -> dict[date, dict[str, Any]]:
        rows = await self._rows(
            queries.DAILY_GAINS, ws=ws, start=period.start, end=period.end, **f.params()
        )
        return {r["day"]: r for r in rows}

    async def post_gains_two(
        self, ws: uuid.UUID, current: Period, compare: Period, f: Filters
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Per post target, what it gained in `current` and in `compare` (one query)."""
        rows = await self._rows(
            queries.POST_GAINS_TWO,
            ws=ws,
            start=current.start,
            end=current.end,
            cmp_start=compare.start,
            cmp_end=compare.end,
            last=max(current.end, compare.end),
            **f.params(),
        )
        now: list[dict[str, Any]] = []
        before: list[dict[str, Any]] = []
        for r in rows:
            key = {k: r[k] for k in ("account_id", "platform", "platform_post_id", "post_id")}
            last_day = r["last_day"]
            # A target whose last snapshot is before the period gained nothing in it.
            if last_day is not None and last_day >= current.start:
                now.append({**key, **{m: r[m] for m in METRIC_FIELDS}})
            before.append({**key, **{m: r["cmp_" + m] for m in METRIC_FIELDS}})
        return now, before

    async def follower_summary(
        self, ws: uuid.UUID, current: Period, compare_end: date, f: Filters
    ) -> FollowerData:
        rows = await self._rows(
            queries.FOLLOWERS_SUMMARY,
            ws=ws,
            start=current.start,
            end=current.end,
            cmp_end=compare_end,
            last=max(current.end, compare_end),
            **f.params(),
        )
        data = FollowerData()
        for r in rows:
            key = str(r["account_id"])
            data.platforms[key] = r["platform"]
            if r["has_baseline"]:
                data.baselines[key] = int(r["baseline"])
            data.points.extend((key, day, int(value)) for day, value in r["points"])
            data.at_end[key] = int(r["at_end"])
            data.at_compare_end[key] = int(r["at_cmp_end"])
        return data

    async def published_two(
        self, ws: uuid.UUID, current: Period, compare: Period, f: Filters
    ) -> tuple[Published, Published]:
        """Distinct posts published in each period, in total and per platform (one query)."""
        rows = await self._rows(
            queries.PUBLISHED_TWO,
            ws=ws,
            start=current.start,
            end=current.end,
            cmp_start=compare.start,
            cmp_end=compare.end,
            **f.params(),
        )
        now, before = Published(), Published()
        for r in rows:
            if r["platform"] == "":  # the ROLLUP total
                now.total, before.total = int(r["cur_posts"]), int(r["cmp_posts"])
            else:
                if r["cur_posts"]:
                    now.by_platform[r["platform"]] = int(r["cur_posts"])
                if r["cmp_posts"]:
                    before.by_platform[r["platform"]] = int(r["cmp_posts"])
        return now, before

    async def post_texts(
        self, ws: uuid.UUID, ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, dict[str, Any]]:
        if not ids:
            return {}
        rows = await self._rows(queries.POST_TEXTS, ws=ws, ids=ids)
        return {r["post_id"]: r for r in rows}

    # -- one post ------------------------------------------------------------------------

    async def post_exists(self, ws: uuid.UUID, post: uuid.UUID) -> bool:
        rows = await self._rows(queries.POST_EXISTS, ws=ws, post=post)
        return bool(rows and rows[0]["n"])

    async def post_info(self, ws: uuid.UUID, post: uuid.UUID) -> dict[str, Any] | None:
        rows = await self._rows(queries.POST_INFO, ws=ws, post=post)
        return rows[0] if rows else None

    async def post_targets(self, ws: uuid.UUID, post: uuid.UUID) -> list[dict[str, Any]]:
        return await self._rows(queries.POST_TARGETS, ws=ws, post=post)

    async def post_metric_days(self, ws: uuid.UUID, post: uuid.UUID) -> list[dict[str, Any]]:
        return await self._rows(queries.POST_METRIC_DAYS, ws=ws, post=post)

    # -- one account ---------------------------------------------------------------------

    async def account_exists(self, ws: uuid.UUID, account: uuid.UUID) -> bool:
        rows = await self._rows(queries.ACCOUNT_EXISTS, ws=ws, account=account)
        return bool(rows and rows[0]["n"])

    async def account_info(self, ws: uuid.UUID, account: uuid.UUID) -> dict[str, Any]:
        rows = await self._rows(queries.ACCOUNT_INFO, ws=ws, account=account)
        if rows:
            return rows[0]
        fallback = await self._rows(queries.ACCOUNT_PLATFORM, ws=ws, account=account)
        platform = fallback[0]["platform"] if fallback else ""
        return {"platform": platform, "status": "", "username": None, "display_name": None}

    # -- hashtags, best time, audit ------------------------------------------------------

    async def hashtags(
        self, ws: uuid.UUID, period: Period, f: Filters, limit: int
    ) -> list[dict[str, Any]]:
        return await self._rows(
            queries.HASHTAGS, ws=ws, start=period.start, end=period.end, limit=limit, **f.params()
        )

    async def best_time_cells(
        self, ws: uuid.UUID, start: datetime, end: datetime, tz: str, f: Filters
    ) -> list[dict[str, Any]]:
        # Metrics as of today: a post's latest snapshot, whenever it was taken.
        return await self._rows(
            queries.BEST_TIME,
            ws=ws,
            **{"from": start, "to": end},
            end=datetime.now(UTC).date() + timedelta(days=1),
            tz=valid_zone(tz),
            **f.params(),
        )

    async def audit(
        self,
        ws: uuid.UUID,
        start: datetime,
        end: datetime,
        f: AuditFilters,
        *,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> list[dict[str, Any]]:
        before_at, before_id = before or (_FAR, NIL)
        return await self._rows(
            queries.AUDIT,
            ws=ws,
            **{"from": start, "to": end},
            actor_id=f.actor_id,
            actor_type=f.actor_type,
            action=f.action,
            resource_type=f.resource_type,
            resource_id=f.resource_id,
            status_min=f.status_min,
            status_max=f.status_max,
            before_at=before_at,
            before_id=before_id,
            limit=limit,
        )

    # -- exports: keyset pages, one chunk in memory at a time ----------------------------

    async def export_events(
        self, ws: uuid.UUID, start: datetime, end: datetime
    ) -> AsyncIterator[list[dict[str, Any]]]:
        async for rows in self._keyset_pages(queries.EXPORT_EVENTS, ws, start, end, "event_time"):
            yield rows

    async def export_audit(
        self, ws: uuid.UUID, start: datetime, end: datetime
    ) -> AsyncIterator[list[dict[str, Any]]]:
        async for rows in self._keyset_pages(queries.EXPORT_AUDIT, ws, start, end, "occurred_at"):
            yield rows

    async def _keyset_pages(
        self, query: str, ws: uuid.UUID, start: datetime, end: datetime, time_column: str
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of `query` ordered by (time_column, event_id), resumed after the last row."""
        after: tuple[datetime, uuid.UUID] = (_EPOCH, NIL)
        while True:
            rows = await self._rows(
                query,
                ws=ws,
                **{"from": start, "to": end},
                after_at=after[0],
                after_id=after[1],
                limit=self.chunk,
            )
            if not rows:
                return
            yield rows
            if len(rows) < self.chunk:
                return
            after = (rows[-1][time_column], rows[-1]["event_id"])

    async def export_accounts(
        self, ws: uuid.UUID, period: Period
    ) -> AsyncIterator[list[dict[str, Any]]]:
        after: tuple[date, uuid.UUID] = (date(1970, 1, 1), NIL)
        while True:
            rows = await self._rows(
                queries.EXPORT_ACCOUNTS,
                ws=ws,
                start=period.start,
                end=period.end,
                after_day=after[0],
                after_id=after[1],
                limit=self.chunk,
            )
            if not rows:
                return
            yield rows
            if len(rows) < self.chunk:
                return
            after = (rows[-1]["day"], rows[-1]["account_id"])

    async def export_posts(
        self, ws: uuid.UUID, period: Period
    ) -> AsyncIterator[list[dict[str, Any]]]:
        after: tuple[uuid.UUID, str] = (NIL, "")
        while True:
            rows = await self._rows(
                queries.EXPORT_POSTS,
                ws=ws,
                start=period.start,
                end=period.end,
                after_account=after[0],
                after_post=after[1],
                limit=self.chunk,
            )
            if not rows:
                return
            yield rows
            if len(rows) < self.chunk:
                return
            after = (rows[-1]["account_id"], rows[-1]["platform_post_id"])
