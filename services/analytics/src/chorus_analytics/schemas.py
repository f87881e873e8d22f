"""HTTP response bodies (camelCase on the wire, snake_case in Python)."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class PeriodOut(CamelModel):
    start_date: date
    end_date: date
    compare_start_date: date | None = None
    compare_end_date: date | None = None
    timezone: str = Field(default="UTC", description="zone the dates are days of")


class Change(CamelModel):
    current: float
    previous: float
    change: float
    change_percent: float | None = Field(description="null when previous is 0 and current is not")


class Metrics(CamelModel):
    likes: int = 0
    comments: int = 0
    shares: int = 0
    saves: int = 0
    impressions: int = 0
    reach: int = 0
    clicks: int = 0
    video_views: int = 0
    engagement: int = 0
    engagement_rate: float = 0.0


class DayMetrics(Metrics):
    date: date


class OverviewMetrics(CamelModel):
    followers: Change
    engagement: Change
    reach: Change
    impressions: Change
    posts: Change


class FollowerPoint(CamelModel):
    date: date
    followers: int
    change: int


class PlatformRow(CamelModel):
    platform: str
    posts: int
    engagement: int
    impressions: int
    reach: int
    followers: int


class TopPost(Metrics):
    post_id: UUID | None
    platform: str
    account_id: UUID
    platform_post_id: str
    text: str | None = None


class OverviewCharts(CamelModel):
    engagement: list[DayMetrics]
    follower_growth: list[FollowerPoint]
    platform_breakdown: list[PlatformRow]


class OverviewOut(CamelModel):
    period: PeriodOut
    metrics: OverviewMetrics
    charts: OverviewCharts
    top_posts: list[TopPost]


class PostTargetOut(Metrics):
    target_id: UUID | None
    platform: str
    account_id: UUID
    platform_post_id: str | None
    url: str | None = None
    status: str | None = Field(default=None, description="last delivery outcome")
    published_at: datetime | None = None


class PostOut(CamelModel):
    post_id: UUID
    text: str | None
    hashtags: list[str]
    status: str | None
    campaign: str | None = None
    deleted: bool = False
    totals: Metrics
    platforms: list[PostTargetOut]
    timeline: list[DayMetrics]


class AccountInfo(CamelModel):
    account_id: UUID
    platform: str
    username: str | None
    display_name: str | None
    status: str | None


class FollowerDay(CamelModel):
    date: date
    followers: int
    gained: int
    lost: int
    net: int


class Growth(CamelModel):
    start: int
    end: int
    gained: int
    lost: int
    net: int
    growth_percent: float | None


class AccountEngagement(Metrics):
    posts: int


class AccountOut(CamelModel):
    account: AccountInfo
    period: PeriodOut
    growth: Growth
    followers: list[FollowerDay]
    engagement: AccountEngagement
    compare: dict[str, Change]


class EngagementTotals(Metrics):
    posts: int


class PlatformEngagement(Metrics):
    platform: str
    posts: int


class EngagementOut(CamelModel):
    period: PeriodOut
    totals: EngagementTotals
    daily: list[DayMetrics]
    by_platform: list[PlatformEngagement]


class HashtagRow(Metrics):
    hashtag: str
    posts: int
    avg_engagement: float


class HashtagsOut(CamelModel):
    period: PeriodOut
    hashtags: list[HashtagRow]


class BestTimeCell(CamelModel):
    weekday: int = Field(description="ISO weekday, Monday = 1")
    hour: int
    posts: int = Field(description="sample size: published posts with impressions")
    engagement: int
    impressions: int
    engagement_rate: float


class BestTimeOut(CamelModel):
    timezone: str
    period: PeriodOut
    platform: str | None
    account_id: UUID | None
    min_samples: int
    grid: list[BestTimeCell]
    top_slots: list[BestTimeCell]


class AuditItem(CamelModel):
    event_id: UUID
    occurred_at: datetime
    actor_type: str
    actor_id: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    status_code: int
    ip: str | None
    user_agent: str | None
    request_id: str
    duration_ms: float


class AuditOut(CamelModel):
    items: list[AuditItem]
    next_cursor: str | None
