"""Plans, their per-route-group rate limits and quotas (design.md §5), and route classification.

The numbers below are the defaults; ops can override any plan / group / quota without a
release through a JSON document (see `load_plans`, env `CHORUS_GATEWAY_PLANS_OVERRIDE`).

Default limits (requests per window; `auth` is per client IP, the rest per workspace):

    group       free      starter   professional  enterprise
    auth        20/min    20/min    20/min        20/min     (pre-auth: the plan is unknown)
    api         120/min   300/min   1200/min      6000/min
    publish     30/min    60/min    300/min       1200/min
    ai          10/min    30/min    120/min       600/min
    analytics   60/min    120/min   600/min       3000/min

Default quotas (None = unlimited):

    quota                 free   starter  professional  enterprise
    seats                 1      3        10            unlimited
    connected accounts    3      10       25            unlimited
    AI budget (USD/month) 1      10       50            unlimited
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from chorus_contracts.events.common import Plan

__all__ = [
    "DEFAULT_PLANS",
    "PLANS_OVERRIDE_ENV",
    "Limit",
    "Plan",
    "PlanConfigError",
    "PlanSpec",
    "Quotas",
    "RouteGroup",
    "load_plans",
    "route_group",
]

# GatewaySettings.plans_override reads this variable.
PLANS_OVERRIDE_ENV = "CHORUS_GATEWAY_PLANS_OVERRIDE"


class RouteGroup(StrEnum):
    AUTH = "auth"
    API = "api"
    PUBLISH = "publish"
    AI = "ai"
    ANALYTICS = "analytics"


@dataclass(frozen=True, slots=True)
class Limit:
    requests: int
    window_seconds: int

    @property
    def per_second(self) -> float:
        return self.requests / self.window_seconds


@dataclass(frozen=True, slots=True)
class Quotas:
    """None means unlimited."""

    seats: int | None
    connected_accounts: int | None
    ai_budget_usd_month: float | None


@dataclass(frozen=True, slots=True)
class PlanSpec:
    limits: dict[RouteGroup, Limit]
    quotas: Quotas

    def limit(self, group: RouteGroup) -> Limit:
        return self.limits[group]


MINUTE = 60


def _spec(
    *, auth: int, api: int, publish: int, ai: int, analytics: int, quotas: Quotas
) -> PlanSpec:
    per_minute = {
        RouteGroup.AUTH: auth,
        RouteGroup.API: api,
        RouteGroup.PUBLISH: publish,
        RouteGroup.AI: ai,
        RouteGroup.ANALYTICS: analytics,
    }
    return PlanSpec({g: Limit(n, MINUTE) for g, n in per_minute.items()}, quotas)


# `auth` is identical everywhere on purpose: login/refresh are limited per IP before the
# caller is known, so the plan cannot be looked up.
DEFAULT_PLANS: MappingProxyType[Plan, PlanSpec] = MappingProxyType(
    {
        Plan.FREE: _spec(
            auth=20, api=120, publish=30, ai=10, analytics=60, quotas=Quotas(1, 3, 1.0)
        ),
        Plan.STARTER: _spec(
            auth=20, api=300, publish=60, ai=30, analytics=120, quotas=Quotas(3, 10, 10.0)
        ),
        Plan.PROFESSIONAL: _spec(
            auth=20, api=1200, publish=300, ai=120, analytics=600, quotas=Quotas(10, 25, 50.0)
        ),
        Plan.ENTERPRISE: _spec(
            auth=20,
            api=6000,
            publish=1200,
            ai=600,
            analytics=3000,
            quotas=Quotas(None, None, None),
        ),
    }
)


# --- overrides ---------------------------------------------------------------------------


class PlanConfigError(ValueError):
    """The plan override document is not valid; the message says where and why."""


class _Model(BaseModel):
    # extra="forbid": a typo in an ops override must fail loudly, not be silently ignored.
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
    )


class _LimitOverride(_Model):
    # Either may be omitted to keep the default's value.
    requests: int | None = Field(default=None, ge=1, le=10_000_000)
    window_seconds: int | None = Field(default=None, ge=1, le=86_400)


class _QuotasOverride(_Model):
    # A field that is absent keeps the default; an explicit null means unlimited.
    seats: int | None = Field(default=None, ge=0)
    connected_accounts: int | None = Field(default=None, ge=0)
    ai_budget_usd_month: float | None = Field(default=None, ge=0)


class _PlanOverride(_Model):
    limits: dict[RouteGroup, _LimitOverride] = Field(default_factory=dict)
    quotas: _QuotasOverride | None = None


class _Overrides(_Model):
    plans: dict[Plan, _PlanOverride]


def _format_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"][1:])  # drop the synthetic "plans" root
        parts.append(f"{loc or '<root>'}: {err['msg']}")
    return "; ".join(parts)


def load_plans(override_json: str | None = None) -> dict[Plan, PlanSpec]:
    """Defaults merged with an optional JSON override, e.g.

        {"free": {"limits": {"api": {"requests": 200, "windowSeconds": 60}},
                  "quotas": {"seats": 2, "aiBudgetUsdMonth": null}}}

    Only what is named changes; a limit may give just `requests` or `windowSeconds`. Keys
    may be camelCase or snake_case. Unknown plans, groups or fields, non-positive limits and
    malformed JSON raise `PlanConfigError`, so a bad override stops startup.
    """
    plans = {plan: replace(spec, limits=dict(spec.limits)) for plan, spec in DEFAULT_PLANS.items()}
    if override_json is None or not override_json.strip():
        return plans
    try:
        raw: Any = json.loads(override_json)
    except json.JSONDecodeError as exc:
        raise PlanConfigError(f"{PLANS_OVERRIDE_ENV} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise PlanConfigError(f"{PLANS_OVERRIDE_ENV} must be a JSON object keyed by plan")
    try:
        overrides = _Overrides.model_validate({"plans": raw})
    except ValidationError as exc:
        raise PlanConfigError(f"invalid {PLANS_OVERRIDE_ENV}: {_format_errors(exc)}") from None

    for plan, override in overrides.plans.items():
        spec = plans[plan]
        limits = dict(spec.limits)
        for group, lim in override.limits.items():
            base = limits[group]
            limits[group] = Limit(
                lim.requests if lim.requests is not None else base.requests,
                lim.window_seconds if lim.window_seconds is not None else base.window_seconds,
            )
        quotas = spec.quotas
        if override.quotas is not None:
            changed = {
                name: getattr(override.quotas, name) for name in override.quotas.model_fields_set
            }
            quotas = replace(quotas, **changed)
        plans[plan] = PlanSpec(limits, quotas)
    return plans


# --- route classification ----------------------------------------------------------------

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PREFIX = ("api", "v1")


def route_group(method: str, path: str) -> RouteGroup:
    """Which limit bucket a gateway request draws from.

    The path is normalised first (query dropped, `//`, `.` and `..` resolved) so that
    `/api/v1/posts/../ai/x` cannot spend the cheaper `api` budget on an `ai` route.
    """
    method = method.upper()
    path = path.split("?", 1)[0]
    norm = posixpath.normpath("/" + path.lstrip("/")) if path else "/"
    segs = [s for s in norm.split("/") if s]
    if tuple(segs[:2]) != _PREFIX or len(segs) < 3:
        return RouteGroup.API
    head, rest = segs[2], segs[3:]
    if head == "auth":
        return RouteGroup.AUTH
    if head == "ai":
        return RouteGroup.AI
    if head == "analytics":
        return RouteGroup.ANALYTICS
    if head == "posts" and method not in _SAFE_METHODS:
        # Publishing actions are what cost platform API quota, so they have their own budget.
        if len(rest) == 2 and rest[1] in ("publish", "schedule"):
            return RouteGroup.PUBLISH
        if rest == ["bulk"] and method == "POST":
            return RouteGroup.PUBLISH
    return RouteGroup.API
