"""Plans, override loading and route-group classification (pure logic)."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from chorus_contracts.events.common import Plan as ContractPlan
from chorus_gateway.plans import (
    DEFAULT_PLANS,
    Limit,
    Plan,
    PlanConfigError,
    Quotas,
    RouteGroup,
    load_plans,
    route_group,
)

pytestmark = pytest.mark.unit

# Cheapest first.
ORDER = [Plan.FREE, Plan.STARTER, Plan.PROFESSIONAL, Plan.ENTERPRISE]


def _inf(value: float | None) -> float:
    return math.inf if value is None else value


def test_plan_is_the_contracts_enum() -> None:
    assert Plan is ContractPlan
    assert [p.value for p in Plan] == ["free", "starter", "professional", "enterprise"]
    assert [g.value for g in RouteGroup] == ["auth", "api", "publish", "ai", "analytics"]


def test_every_plan_defines_every_group_with_sane_limits() -> None:
    assert set(DEFAULT_PLANS) == set(Plan)
    for plan, spec in DEFAULT_PLANS.items():
        assert set(spec.limits) == set(RouteGroup), plan
        for group, lim in spec.limits.items():
            assert lim.requests >= 1 and lim.window_seconds >= 1, (plan, group)


def test_documented_free_limits() -> None:
    free = DEFAULT_PLANS[Plan.FREE].limits
    assert free[RouteGroup.API] == Limit(120, 60)
    assert free[RouteGroup.PUBLISH] == Limit(30, 60)
    assert free[RouteGroup.AI] == Limit(10, 60)
    assert free[RouteGroup.ANALYTICS] == Limit(60, 60)
    assert free[RouteGroup.AUTH] == Limit(20, 60)
    assert DEFAULT_PLANS[Plan.ENTERPRISE].quotas == Quotas(None, None, None)


@pytest.mark.parametrize("group", list(RouteGroup))
def test_cheaper_plans_are_never_more_generous_on_limits(group: RouteGroup) -> None:
    for lower, higher in itertools.pairwise(ORDER):
        lo, hi = DEFAULT_PLANS[lower].limits[group], DEFAULT_PLANS[higher].limits[group]
        assert lo.per_second <= hi.per_second, (group, lower, higher)
        assert lo.requests <= hi.requests, (group, lower, higher)  # burst, too


@pytest.mark.parametrize("quota", ["seats", "connected_accounts", "ai_budget_usd_month"])
def test_cheaper_plans_are_never_more_generous_on_quotas(quota: str) -> None:
    for lower, higher in itertools.pairwise(ORDER):
        lo = _inf(getattr(DEFAULT_PLANS[lower].quotas, quota))
        hi = _inf(getattr(DEFAULT_PLANS[higher].quotas, quota))
        assert lo <= hi, (quota, lower, higher)


def test_higher_plans_are_strictly_better_somewhere() -> None:
    for lower, higher in itertools.pairwise(ORDER):
        lo, hi = DEFAULT_PLANS[lower].limits, DEFAULT_PLANS[higher].limits
        assert hi[RouteGroup.API].requests > lo[RouteGroup.API].requests


# --- load_plans --------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "", "   ", "{}"])
def test_no_override_gives_the_defaults(raw: str | None) -> None:
    assert load_plans(raw) == dict(DEFAULT_PLANS)


def test_loaded_plans_are_a_copy() -> None:
    plans = load_plans(None)
    plans[Plan.FREE].limits[RouteGroup.API] = Limit(1, 1)
    assert DEFAULT_PLANS[Plan.FREE].limits[RouteGroup.API] == Limit(120, 60)


def test_override_changes_only_what_is_named() -> None:
    raw = {
        "free": {
            "limits": {"api": {"requests": 200, "windowSeconds": 30}, "ai": {"requests": 5}},
            "quotas": {"seats": 2, "aiBudgetUsdMonth": None},
        },
        "enterprise": {"limits": {"publish": {"window_seconds": 10}}},
    }
    plans = load_plans(json.dumps(raw))
    free = plans[Plan.FREE]
    assert free.limits[RouteGroup.API] == Limit(200, 30)
    assert free.limits[RouteGroup.AI] == Limit(5, 60)  # window kept
    assert free.limits[RouteGroup.PUBLISH] == DEFAULT_PLANS[Plan.FREE].limits[RouteGroup.PUBLISH]
    # seats changed, connected accounts untouched, null = unlimited
    assert free.quotas == Quotas(2, DEFAULT_PLANS[Plan.FREE].quotas.connected_accounts, None)
    assert plans[Plan.ENTERPRISE].limits[RouteGroup.PUBLISH] == Limit(1200, 10)
    assert plans[Plan.STARTER] == DEFAULT_PLANS[Plan.STARTER]
    # the defaults themselves are untouched
    assert DEFAULT_PLANS[Plan.FREE].limits[RouteGroup.API] == Limit(120, 60)


def test_snake_and_camel_case_are_both_accepted() -> None:
    camel = load_plans('{"starter": {"quotas": {"connectedAccounts": 50}}}')
    snake = load_plans('{"starter": {"quotas": {"connected_accounts": 50}}}')
    assert camel == snake
    assert camel[Plan.STARTER].quotas.connected_accounts == 50


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("{", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"gold": {}}', "gold"),
        ('{"free": {"limits": {"video": {"requests": 1}}}}', "free.limits.video"),
        ('{"free": {"limits": {"api": {"requests": 0}}}}', "free.limits.api.requests"),
        ('{"free": {"limits": {"api": {"requests": "many"}}}}', "free.limits.api.requests"),
        ('{"free": {"limits": {"api": {"windowSeconds": -1}}}}', "windowSeconds"),
        ('{"free": {"limits": {"api": {"reqeusts": 10}}}}', "reqeusts"),
        ('{"free": {"quotas": {"seats": -1}}}', "free.quotas.seats"),
        ('{"free": {"limitz": {}}}', "limitz"),
    ],
)
def test_bad_overrides_fail_with_a_clear_error(raw: str, fragment: str) -> None:
    with pytest.raises(PlanConfigError) as info:
        load_plans(raw)
    assert fragment in str(info.value)
    assert "CHORUS_GATEWAY_PLANS_OVERRIDE" in str(info.value)


# --- route_group ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "group"),
    [
        ("POST", "/api/v1/auth/login", RouteGroup.AUTH),
        ("POST", "/api/v1/auth/refresh", RouteGroup.AUTH),
        ("GET", "/api/v1/auth/me", RouteGroup.AUTH),
        ("POST", "/api/v1/auth", RouteGroup.AUTH),
        ("POST", "/api/v1/posts/p_123/publish", RouteGroup.PUBLISH),
        ("post", "/api/v1/posts/p_123/publish/", RouteGroup.PUBLISH),
        ("POST", "/api/v1/posts/p_123/schedule", RouteGroup.PUBLISH),
        ("PUT", "/api/v1/posts/p_123/schedule", RouteGroup.PUBLISH),
        ("DELETE", "/api/v1/posts/p_123/schedule", RouteGroup.PUBLISH),
        ("POST", "/api/v1/posts/bulk", RouteGroup.PUBLISH),
        ("POST", "/api/v1/posts/bulk?dryRun=true", RouteGroup.PUBLISH),
        ("GET", "/api/v1/posts/p_123/schedule", RouteGroup.API),
        ("GET", "/api/v1/posts/p_123/publish", RouteGroup.API),
        ("GET", "/api/v1/posts/bulk", RouteGroup.API),
        ("POST", "/api/v1/posts", RouteGroup.API),
        ("GET", "/api/v1/posts/p_123", RouteGroup.API),
        ("POST", "/api/v1/posts/p_123/comments/publish", RouteGroup.API),
        ("POST", "/api/v1/ai/captions", RouteGroup.AI),
        ("GET", "/api/v1/ai", RouteGroup.AI),
        ("GET", "/api/v1/analytics/overview", RouteGroup.ANALYTICS),
        ("POST", "/api/v1/analytics/exports", RouteGroup.ANALYTICS),
        ("GET", "/api/v1/aid/x", RouteGroup.API),
        ("GET", "/api/v1/analyticsx", RouteGroup.API),
        ("GET", "/api/v1/workspaces/w1/members", RouteGroup.API),
        ("GET", "/api/v2/ai/captions", RouteGroup.API),
        ("GET", "/health", RouteGroup.API),
        ("GET", "/", RouteGroup.API),
        ("GET", "", RouteGroup.API),
        # Normalisation: dot segments and doubled slashes cannot dodge a stricter group.
        ("POST", "/api/v1/posts/../ai/captions", RouteGroup.AI),
        ("POST", "//api//v1//posts/p_1/publish", RouteGroup.PUBLISH),
        ("POST", "/api/v1/./auth/login", RouteGroup.AUTH),
    ],
)
def test_route_group(method: str, path: str, group: RouteGroup) -> None:
    assert route_group(method, path) is group
