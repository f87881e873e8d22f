"""The post and target status machines, and what a delivery result does to them (pure).

post:   draft → pending_approval → scheduled → publishing → published | partially_published
        | failed; draft/pending_approval/scheduled → cancelled
target: pending → dispatched → published | retrying → dispatched … | failed | cancelled
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from chorus_contracts.events.connector import FailureKind
from chorus_contracts.events.publishing import PostStatus, TargetStatus
from chorus_runtime.errors import Conflict

MAX_ATTEMPTS = 5
EDITABLE = frozenset({PostStatus.DRAFT, PostStatus.PENDING_APPROVAL, PostStatus.SCHEDULED})
TERMINAL_TARGET = frozenset(
    {TargetStatus.PUBLISHED, TargetStatus.FAILED, TargetStatus.CANCELLED, TargetStatus.DELETED}
)

POST_TRANSITIONS: dict[PostStatus, frozenset[PostStatus]] = {
    PostStatus.DRAFT: frozenset(
        {
            PostStatus.PENDING_APPROVAL,
            PostStatus.SCHEDULED,
            PostStatus.PUBLISHING,
            PostStatus.CANCELLED,
        }
    ),
    PostStatus.PENDING_APPROVAL: frozenset(
        {PostStatus.SCHEDULED, PostStatus.DRAFT, PostStatus.PUBLISHING, PostStatus.CANCELLED}
    ),
    PostStatus.SCHEDULED: frozenset(
        {PostStatus.PUBLISHING, PostStatus.DRAFT, PostStatus.PENDING_APPROVAL, PostStatus.CANCELLED}
    ),
    PostStatus.PUBLISHING: frozenset(
        {PostStatus.PUBLISHED, PostStatus.PARTIALLY_PUBLISHED, PostStatus.FAILED}
    ),
    PostStatus.PUBLISHED: frozenset(),
    PostStatus.PARTIALLY_PUBLISHED: frozenset(),
    PostStatus.FAILED: frozenset(),
    PostStatus.CANCELLED: frozenset(),
}


def check_transition(current: PostStatus, target: PostStatus) -> None:
    if target not in POST_TRANSITIONS[current]:
        raise Conflict(
            f"a {current.value} post cannot become {target.value}",
            details={"status": current.value, "requested": target.value},
        )


def final_status(targets: list[TargetStatus]) -> PostStatus | None:
    """The post's outcome once every target is terminal, else None (still publishing)."""
    if not targets or any(t not in TERMINAL_TARGET for t in targets):
        return None
    published = sum(t is TargetStatus.PUBLISHED for t in targets)
    if published == len(targets):
        return PostStatus.PUBLISHED
    return PostStatus.PARTIALLY_PUBLISHED if published else PostStatus.FAILED


def retry_delay(
    attempt: int, retry_after: float | None, *, rng: random.Random | None = None
) -> float:
    """Exponential backoff with jitter (5 s, 10 s, 20 s … ≤ 5 min), never sooner than the
    platform's Retry-After."""
    r = rng or random
    base = min(300.0, 5.0 * 2 ** max(0, attempt - 1))
    delay = r.uniform(base / 2, base)
    return max(delay, retry_after or 0.0)


@dataclass(frozen=True)
class FailureDecision:
    status: TargetStatus
    next_attempt_at: datetime | None
    reason: str


def on_failure(
    *,
    attempt: int,
    kind: FailureKind,
    code: str,
    message: str,
    retry_after: float | None,
    now: datetime,
    rng: random.Random | None = None,
) -> FailureDecision:
    """Transient failures retry (at most MAX_ATTEMPTS attempts); permanent and auth failures
    fail the target at once with the platform's reason."""
    if kind is FailureKind.TRANSIENT and attempt < MAX_ATTEMPTS:
        delay = retry_delay(attempt, retry_after, rng=rng)
        return FailureDecision(
            TargetStatus.RETRYING, now + timedelta(seconds=delay), f"{code}: {message} (retrying)"
        )
    if kind is FailureKind.TRANSIENT:
        return FailureDecision(
            TargetStatus.FAILED, None, f"{code}: {message} (gave up after {attempt} attempts)"
        )
    if kind is FailureKind.AUTH:
        return FailureDecision(
            TargetStatus.FAILED, None, f"{code}: {message} (reconnect the account)"
        )
    return FailureDecision(TargetStatus.FAILED, None, f"{code}: {message}")
