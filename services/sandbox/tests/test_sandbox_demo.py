"""The demo history generator: deterministic, plausible, and shaped like real events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from chorus_contracts.catalog import build_event
from chorus_contracts.events.connector import (
    AccountMetricsCollected,
    DeliverySucceeded,
    PostMetricsCollected,
)
from chorus_sandbox.demo import Demo, growth, history_events, parse_args

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def demo() -> Demo:
    return Demo(
        workspace_id=str(uuid.UUID(int=1)),
        user_id=str(uuid.UUID(int=2)),
        auth={},
        accounts={
            "x": {"id": str(uuid.UUID(int=10))},
            "linkedin": {"id": str(uuid.UUID(int=11))},
        },
    )


def test_one_post_per_account_and_day_with_growing_metrics() -> None:
    events = history_events(demo(), days=14, now=NOW)
    deliveries = [e for _, _, e in events if isinstance(e, DeliverySucceeded)]
    assert len(deliveries) == 2 * 14
    assert all(d.published_at < NOW for d in deliveries)
    assert len({d.published_at.date() for d in deliveries}) == 14
    by_target: dict[uuid.UUID, list[PostMetricsCollected]] = {}
    for _, _, e in events:
        if isinstance(e, PostMetricsCollected):
            by_target.setdefault(e.target_id, []).append(e)  # type: ignore[arg-type]
    assert set(by_target) == {d.target_id for d in deliveries}
    for snapshots in by_target.values():
        impressions = [s.impressions for s in sorted(snapshots, key=lambda s: s.collected_at)]
        assert impressions == sorted(impressions), "cumulative counts never go down"
        assert all(s.collected_at < NOW for s in snapshots)
    followers = [e.followers for _, _, e in events if isinstance(e, AccountMetricsCollected)]
    assert len(followers) == 2 * 14 and min(followers) > 0


def test_same_seed_same_numbers_and_every_event_builds() -> None:
    a = history_events(demo(), days=3, now=NOW, seed=1)
    b = history_events(demo(), days=3, now=NOW, seed=1)
    numbers = [(t, getattr(e, "impressions", None), getattr(e, "followers", None)) for t, _, e in a]
    assert numbers == [
        (t, getattr(e, "impressions", None), getattr(e, "followers", None)) for t, _, e in b
    ]
    assert [getattr(e, "post_id", None) for _, _, e in a] == [
        getattr(e, "post_id", None) for _, _, e in b
    ], "the same posts: a repeated replay adds no new ones"
    later = history_events(demo(), days=3, now=NOW.replace(hour=23), seed=1)
    assert {getattr(e, "post_id", None) for _, _, e in later} == {
        getattr(e, "post_id", None) for _, _, e in a
    }, "ids do not depend on the time of the run"
    topics = {t for t, _, _ in a}
    assert topics == {"publishing.posts", "connector.deliveries", "connector.metrics"}
    for _, _, data in a:
        event = build_event(data, source="/chorus/demo", tenant_id=str(uuid.UUID(int=1)))
        assert event.tenantid == str(uuid.UUID(int=1))


def test_growth_is_front_loaded() -> None:
    assert growth(1000, 0) == 0
    assert growth(1000, 1) > 400
    assert growth(1000, 10) > 990
    assert growth(1000, -1) == 0


def test_days_out_of_range_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(["--gateway-url", "http://x", "--kafka-bootstrap-servers", "y", "--days", "0"])
    assert info.value.code == 2
