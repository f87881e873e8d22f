"""Dashboard reports: repository reads + the pure rules of `domain.py`."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from chorus_analytics import domain
from chorus_analytics.domain import METRIC_FIELDS, Period
from chorus_analytics.repository import NIL, AnalyticsRepository, AuditFilters, Filters
from chorus_runtime.errors import NotFound, ValidationFailed


def _metrics(m: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {f: int(m.get(f, 0) or 0) for f in METRIC_FIELDS}
    out["engagement"] = domain.engagement_of(out)
    out["engagement_rate"] = domain.engagement_rate(out["engagement"], out["impressions"])
    return out


def _totals(rows: list[dict[str, Any]], prefix: str = "") -> dict[str, Any]:
    total = domain.zero_metrics()
    for r in rows:
        domain.add_metrics(total, {f: r.get(prefix + f, 0) for f in METRIC_FIELDS})
    return _metrics(total)


def period_out(current: Period, compare: Period | None = None, tz: str = "UTC") -> dict[str, Any]:
    return {
        "start_date": current.start,
        "end_date": current.end,
        "compare_start_date": compare.start if compare else None,
        "compare_end_date": compare.end if compare else None,
        "timezone": tz,
    }


class Reports:
    def __init__(self, repo: AnalyticsRepository) -> None:
        self.repo = repo

    # -- overview ------------------------------------------------------------------------

    async def overview(
        self, ws: uuid.UUID, current: Period, compare: Period, f: Filters, *, top: int = 5
    ) -> dict[str, Any]:
        r = self.repo
        (gains, prev_gains), daily, followers, (published, prev_published) = await asyncio.gather(
            r.post_gains_two(ws, current, compare, f),
            r.daily_gains(ws, current, f),
            r.follower_summary(ws, current, compare.end, f),
            r.published_two(ws, current, compare, f),
        )
        now, before = _totals(gains), _totals(prev_gains)
        metrics = {
            "followers": domain.change(
                sum(followers.at_end.values()), sum(followers.at_compare_end.values())
            ),
            "engagement": domain.change(now["engagement"], before["engagement"]),
            "reach": domain.change(now["reach"], before["reach"]),
            "impressions": domain.change(now["impressions"], before["impressions"]),
            "posts": domain.change(published.total, prev_published.total),
        }
        chart = [
            {**_metrics(day), "date": day["date"]}
            for day in domain.daily_series(current, daily, METRIC_FIELDS)
        ]
        growth = domain.follower_series(current, followers.points, followers.baselines)
        return {
            "period": period_out(current, compare),
            "metrics": metrics,
            "charts": {
                "engagement": chart,
                "follower_growth": growth,
                "platform_breakdown": _platforms(
                    gains, published.by_platform, followers.by_platform(followers.at_end)
                ),
            },
            "top_posts": await self._top_posts(ws, gains, top),
        }

    async def _top_posts(
        self, ws: uuid.UUID, gains: list[dict[str, Any]], top: int
    ) -> list[dict[str, Any]]:
        ranked = sorted(
            ((_metrics(g), g) for g in gains),
            key=lambda mg: (-mg[0]["engagement"], -mg[0]["impressions"], mg[1]["platform_post_id"]),
        )[:top]
        ids = [g["post_id"] for _, g in ranked if g["post_id"] != NIL]
        texts = await self.repo.post_texts(ws, ids)
        return [
            {
                **m,
                "post_id": g["post_id"] if g["post_id"] != NIL else None,
                "platform": g["platform"],
                "account_id": g["account_id"],
                "platform_post_id": g["platform_post_id"],
                "text": texts.get(g["post_id"], {}).get("text"),
            }
            for m, g in ranked
            if m["engagement"] or m["impressions"]
        ]

    # -- engagement ----------------------------------------------------------------------

    async def engagement(self, ws: uuid.UUID, current: Period, f: Filters) -> dict[str, Any]:
        gains, daily, (published, _) = await asyncio.gather(
            self.repo.post_gains(ws, current, f),
            self.repo.daily_gains(ws, current, f),
            self.repo.published_two(ws, current, current, f),
        )
        by_platform: dict[str, list[dict[str, Any]]] = {}
        for g in gains:
            by_platform.setdefault(g["platform"], []).append(g)
        platforms = sorted(set(by_platform) | set(published.by_platform))
        return {
            "period": period_out(current),
            "totals": {**_totals(gains), "posts": published.total},
            "daily": [
                {**_metrics(day), "date": day["date"]}
                for day in domain.daily_series(current, daily, METRIC_FIELDS)
            ],
            "by_platform": [
                {
                    **_totals(by_platform.get(p, [])),
                    "platform": p,
                    "posts": published.by_platform.get(p, 0),
                }
                for p in platforms
            ],
        }

    # -- one post ------------------------------------------------------------------------

    async def post(self, ws: uuid.UUID, post_id: uuid.UUID) -> dict[str, Any]:
        if not await self.repo.post_exists(ws, post_id):
            raise NotFound("post not found")
        info, targets, days = await asyncio.gather(
            self.repo.post_info(ws, post_id),
            self.repo.post_targets(ws, post_id),
            self.repo.post_metric_days(ws, post_id),
        )
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for row in days:  # ordered by day: the last row per target is its latest value
            latest[(str(row["account_id"]), row["platform_post_id"])] = row
        platforms = []
        seen: set[tuple[str, str]] = set()
        for t in targets:
            key = (str(t["account_id"]), t["platform_post_id"])
            m = latest.get(key, {}) if t["platform_post_id"] else {}
            seen.add(key)
            platforms.append(
                {
                    **_metrics(m),
                    "target_id": t["target_id"],
                    "platform": t["platform"],
                    "account_id": t["account_id"],
                    "platform_post_id": t["platform_post_id"] or None,
                    "url": t["url"] or None,
                    "status": t["last_outcome"],
                    "published_at": t["published_at"] if t["published"] else None,
                }
            )
        for key, m in latest.items():
            if key not in seen:  # metrics for a target whose delivery we have not seen
                platforms.append(
                    {
                        **_metrics(m),
                        "target_id": m["target_id"] if m["target_id"] != NIL else None,
                        "platform": m["platform"],
                        "account_id": m["account_id"],
                        "platform_post_id": m["platform_post_id"],
                    }
                )
        return {
            "post_id": post_id,
            "text": info["text"] if info else None,
            "hashtags": list(info["hashtags"]) if info else [],
            "status": (info["status"] or None) if info else None,
            "campaign": info["campaign"] if info else None,
            "deleted": bool(info["deleted"]) if info else False,
            "totals": _totals(list(latest.values())),
            "platforms": platforms,
            "timeline": _timeline(days),
        }

    # -- one account ---------------------------------------------------------------------

    async def account(
        self, ws: uuid.UUID, account_id: uuid.UUID, current: Period, compare: Period
    ) -> dict[str, Any]:
        if not await self.repo.account_exists(ws, account_id):
            raise NotFound("account not found")
        f = Filters(accounts=(account_id,))
        info, followers, (gains, prev_gains), (published, prev_published) = await asyncio.gather(
            self.repo.account_info(ws, account_id),
            self.repo.follower_summary(ws, current, compare.end, f),
            self.repo.post_gains_two(ws, current, compare, f),
            self.repo.published_two(ws, current, compare, f),
        )
        series = domain.gained_lost(
            domain.follower_series(current, followers.points, followers.baselines)
        )
        key = str(account_id)
        first = next((v for a, _, v in followers.points if a == key), 0)
        start = followers.baselines.get(key, first)
        end = series[-1]["followers"] if series else 0
        gained = sum(d["gained"] for d in series)
        lost = sum(d["lost"] for d in series)
        engagement = {**_totals(gains), "posts": published.total}
        before = _totals(prev_gains)
        return {
            "account": {
                "account_id": account_id,
                "platform": info.get("platform") or followers.platforms.get(key, ""),
                "username": info.get("username"),
                "display_name": info.get("display_name"),
                "status": info.get("status") or None,
            },
            "period": period_out(current, compare),
            "growth": {
                "start": start,
                "end": end,
                "gained": gained,
                "lost": lost,
                "net": end - start,
                "growth_percent": domain.change(end, start)["changePercent"],
            },
            "followers": series,
            "engagement": engagement,
            "compare": {
                "followers": domain.change(end, sum(followers.at_compare_end.values())),
                "engagement": domain.change(engagement["engagement"], before["engagement"]),
                "impressions": domain.change(engagement["impressions"], before["impressions"]),
                "posts": domain.change(published.total, prev_published.total),
            },
        }

    # -- hashtags ------------------------------------------------------------------------

    async def hashtags(
        self, ws: uuid.UUID, current: Period, f: Filters, limit: int
    ) -> dict[str, Any]:
        rows = await self.repo.hashtags(ws, current, f, limit)
        out = []
        for r in rows:
            m = _metrics(r)
            posts = int(r["posts"])
            out.append(
                {
                    **m,
                    "hashtag": r["tag"],
                    "posts": posts,
                    "avg_engagement": round(m["engagement"] / posts, 2) if posts else 0.0,
                }
            )
        return {"period": period_out(current), "hashtags": out}

    # -- best time -----------------------------------------------------------------------

    async def best_time(
        self,
        ws: uuid.UUID,
        current: Period,
        f: Filters,
        *,
        min_samples: int,
        top: int,
    ) -> dict[str, Any]:
        tz = await self.repo.timezone(ws)
        zone = ZoneInfo(tz)
        # The dates are days in the workspace's zone.
        start = datetime.combine(current.start, time.min, zone).astimezone(UTC)
        end = datetime.combine(current.end + timedelta(days=1), time.min, zone).astimezone(UTC)
        rows = await self.repo.best_time_cells(ws, start, end, tz, f)
        cells = [
            domain.Cell(
                int(r["weekday"]),
                int(r["hour"]),
                int(r["posts"]),
                int(r["engagement"]),
                int(r["impressions"]),
            )
            for r in rows
        ]
        grid, slots = domain.best_time(cells, min_samples=min_samples, top=top)
        return {
            "timezone": tz,
            "period": period_out(current, tz=tz),
            "platform": f.platform or None,
            "account_id": f.accounts[0] if f.accounts else None,
            "min_samples": min_samples,
            "grid": grid,
            "top_slots": slots,
        }

    # -- audit ---------------------------------------------------------------------------

    async def audit(
        self,
        ws: uuid.UUID,
        current: Period,
        f: AuditFilters,
        *,
        limit: int,
        cursor: str | None,
    ) -> dict[str, Any]:
        start = datetime.combine(current.start, time.min, UTC)
        end = datetime.combine(current.end + timedelta(days=1), time.min, UTC)
        rows = await self.repo.audit(
            ws, start, end, f, limit=limit + 1, before=decode_cursor(cursor) if cursor else None
        )
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if rows else None
        return {
            "items": rows,
            "next_cursor": encode_cursor(last["occurred_at"], last["event_id"])
            if more and last
            else None,
        }


def _platforms(
    gains: list[dict[str, Any]], posts: Mapping[str, int], follower_totals: Mapping[str, int]
) -> list[dict[str, Any]]:
    by_platform: dict[str, list[dict[str, Any]]] = {}
    for g in gains:
        by_platform.setdefault(g["platform"], []).append(g)
    out = []
    for p in sorted(set(by_platform) | set(posts) | set(follower_totals)):
        m = _totals(by_platform.get(p, []))
        out.append(
            {
                "platform": p,
                "posts": posts.get(p, 0),
                "engagement": m["engagement"],
                "impressions": m["impressions"],
                "reach": m["reach"],
                "followers": follower_totals.get(p, 0),
            }
        )
    return out


def _timeline(days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per day with data: the post's cumulative totals, each target carried forward."""
    by_day: dict[date, list[dict[str, Any]]] = {}
    for row in days:
        by_day.setdefault(row["day"], []).append(row)
    current: dict[tuple[str, str], dict[str, Any]] = {}
    out = []
    for day in sorted(by_day):
        for row in by_day[day]:
            current[(str(row["account_id"]), row["platform_post_id"])] = row
        out.append({**_totals(list(current.values())), "date": day})
    return out


def encode_cursor(at: datetime, event_id: uuid.UUID) -> str:
    raw = f"{at.astimezone(UTC).isoformat()}|{event_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, event_id = raw.partition("|")
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("naive")
        return when, uuid.UUID(event_id)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed(
            "invalid cursor", details=[{"field": "cursor", "message": "malformed"}]
        ) from None
