"""`/api/v1/analytics/*` (behind the gateway): dashboards, audit log and exports.

Every read is scoped to the caller's workspace (from the verified token, never from the
request); another workspace's post or account is a 404. `analytics:view` reads,
`analytics:export` exports. Dates are `YYYY-MM-DD`; a bad range is a 422.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from chorus_analytics import schemas
from chorus_analytics.domain import InvalidRange, Period, resolve_period, resolve_periods
from chorus_analytics.exports import MEDIA_TYPES, Dataset, Format, stream_export
from chorus_analytics.reports import Reports
from chorus_analytics.repository import AnalyticsRepository, AuditFilters, Filters
from chorus_contracts.events.common import Platform
from chorus_runtime.auth import Principal, require_permission
from chorus_runtime.errors import ValidationFailed

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

Viewer = Annotated[Principal, Depends(require_permission("analytics:view"))]
Exporter = Annotated[Principal, Depends(require_permission("analytics:export"))]


@dataclass
class AnalyticsApi:
    """What the handlers need, put on `app.state.analytics` by `main.build`."""

    repo: AnalyticsRepository
    max_range_days: int = 366

    @property
    def reports(self) -> Reports:
        return Reports(self.repo)


def _api(request: Request) -> AnalyticsApi:
    return request.app.state.analytics  # type: ignore[no-any-return]


def _today() -> date:
    return datetime.now(UTC).date()


def _invalid(exc: InvalidRange) -> ValidationFailed:
    return ValidationFailed(
        "invalid date range", details=[{"field": exc.field, "message": str(exc)}]
    )


def _ws(principal: Principal) -> uuid.UUID:
    return uuid.UUID(principal.workspace_id)


StartDate = Annotated[date | None, Query(alias="startDate", description="first day, inclusive")]
EndDate = Annotated[date | None, Query(alias="endDate", description="last day, inclusive")]
AccountsParam = Annotated[
    list[str] | None,
    Query(alias="accounts", description="account ids, comma-separated or repeated"),
]
PlatformParam = Annotated[Platform | None, Query(alias="platform")]


def _filters(accounts: list[str] | None, platform: Platform | None) -> Filters:
    ids: list[uuid.UUID] = []
    for chunk in accounts or []:
        for raw in chunk.split(","):
            if not raw.strip():
                continue
            try:
                ids.append(uuid.UUID(raw.strip()))
            except ValueError:
                raise ValidationFailed(
                    "invalid account id",
                    details=[{"field": "accounts", "message": f"not a UUID: {raw[:64]!r}"}],
                ) from None
    return Filters(accounts=tuple(ids), platform=platform.value if platform else "")


def _period(api: AnalyticsApi, start: date | None, end: date | None, days: int = 30) -> Period:
    try:
        return resolve_period(
            start, end, today=_today(), max_days=api.max_range_days, default_days=days
        )
    except InvalidRange as exc:
        raise _invalid(exc) from None


@router.get("/overview", response_model=schemas.OverviewOut)
async def overview(
    request: Request,
    principal: Viewer,
    start_date: StartDate = None,
    end_date: EndDate = None,
    accounts: AccountsParam = None,
    compare_start: Annotated[date | None, Query(alias="compareStartDate")] = None,
    compare_end: Annotated[date | None, Query(alias="compareEndDate")] = None,
    top_posts: Annotated[int, Query(alias="topPosts", ge=0, le=50)] = 5,
) -> dict[str, object]:
    """Headline metrics against a comparison period (by default the previous period of the
    same length), daily charts, per-platform breakdown and the top posts of the period."""
    api = _api(request)
    try:
        current, compare = resolve_periods(
            start_date,
            end_date,
            compare_start,
            compare_end,
            today=_today(),
            max_days=api.max_range_days,
        )
    except InvalidRange as exc:
        raise _invalid(exc) from None
    return await api.reports.overview(
        _ws(principal), current, compare, _filters(accounts, None), top=top_posts
    )


@router.get("/engagement", response_model=schemas.EngagementOut)
async def engagement(
    request: Request,
    principal: Viewer,
    start_date: StartDate = None,
    end_date: EndDate = None,
    accounts: AccountsParam = None,
    platform: PlatformParam = None,
) -> dict[str, object]:
    """Engagement per day, in total and per platform."""
    api = _api(request)
    period = _period(api, start_date, end_date)
    return await api.reports.engagement(_ws(principal), period, _filters(accounts, platform))


@router.get("/posts/{post_id}", response_model=schemas.PostOut)
async def post(request: Request, principal: Viewer, post_id: uuid.UUID) -> dict[str, object]:
    """A post's totals, per-platform metrics and daily timeline."""
    return await _api(request).reports.post(_ws(principal), post_id)


@router.get("/accounts/{account_id}", response_model=schemas.AccountOut)
async def account(
    request: Request,
    principal: Viewer,
    account_id: uuid.UUID,
    start_date: StartDate = None,
    end_date: EndDate = None,
) -> dict[str, object]:
    """Followers gained and lost per day, growth over the period, and engagement."""
    api = _api(request)
    period = _period(api, start_date, end_date)
    return await api.reports.account(_ws(principal), account_id, period, period.previous())


@router.get("/hashtags", response_model=schemas.HashtagsOut)
async def hashtags(
    request: Request,
    principal: Viewer,
    start_date: StartDate = None,
    end_date: EndDate = None,
    accounts: AccountsParam = None,
    platform: PlatformParam = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, object]:
    """Hashtags of the posts published in the period, by engagement."""
    api = _api(request)
    period = _period(api, start_date, end_date)
    return await api.reports.hashtags(_ws(principal), period, _filters(accounts, platform), limit)


@router.get("/best-time", response_model=schemas.BestTimeOut)
async def best_time(
    request: Request,
    principal: Viewer,
    platform: PlatformParam = None,
    account_id: Annotated[uuid.UUID | None, Query(alias="accountId")] = None,
    start_date: StartDate = None,
    end_date: EndDate = None,
    min_samples: Annotated[int, Query(alias="minSamples", ge=1, le=1000)] = 3,
    top: Annotated[int, Query(ge=1, le=168)] = 3,
) -> dict[str, object]:
    """Weekday × hour grid of engagement rate (with sample sizes) for posts published in
    the period (last 90 days by default), in the workspace's time zone, and the top slots."""
    api = _api(request)
    period = _period(api, start_date, end_date, days=90)
    f = Filters(
        accounts=(account_id,) if account_id else (), platform=platform.value if platform else ""
    )
    return await api.reports.best_time(_ws(principal), period, f, min_samples=min_samples, top=top)


@router.get("/audit", response_model=schemas.AuditOut)
async def audit(
    request: Request,
    principal: Viewer,
    start_date: StartDate = None,
    end_date: EndDate = None,
    actor_id: Annotated[str, Query(alias="actorId", max_length=200)] = "",
    actor_type: Annotated[str, Query(alias="actorType", max_length=50)] = "",
    action: Annotated[str, Query(max_length=300, description="prefix, e.g. 'POST '")] = "",
    resource_type: Annotated[str, Query(alias="resourceType", max_length=100)] = "",
    resource_id: Annotated[str, Query(alias="resourceId", max_length=200)] = "",
    status_code: Annotated[
        str, Query(alias="statusCode", pattern=r"^([1-5][0-9]{2}|[1-5]xx)?$")
    ] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, object]:
    """The workspace's audit log, newest first; `nextCursor` pages on."""
    api = _api(request)
    period = _period(api, start_date, end_date)
    lo = hi = 0
    if status_code.endswith("xx"):
        lo, hi = int(status_code[0]) * 100, int(status_code[0]) * 100 + 99
    elif status_code:
        lo = hi = int(status_code)
    f = AuditFilters(
        actor_id=actor_id,
        actor_type=actor_type,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        status_min=lo,
        status_max=hi,
    )
    return await api.reports.audit(_ws(principal), period, f, limit=limit, cursor=cursor)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
)
async def export(
    request: Request,
    principal: Exporter,
    dataset: Dataset,
    format: Format = Format.CSV,
    start_date: StartDate = None,
    end_date: EndDate = None,
) -> StreamingResponse:
    """Stream a dataset of the workspace as CSV or JSON lines (UTC days)."""
    api = _api(request)
    period = _period(api, start_date, end_date)
    filename = f"chorus-{dataset.value}-{period.start}-{period.end}.{format.value}"
    return StreamingResponse(
        stream_export(api.repo, _ws(principal), dataset, format, period),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
