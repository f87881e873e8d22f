"""Publishing rules, free of I/O (design.md §9): posts, targets, what each action does.

A post is content plus targets (platform + account, optionally with custom content). It is
a draft until scheduled; scheduling needs approval when the workspace requires it for the
author's role (`workflows`); the scheduler dispatches one command per target; delivery
results move each target and, once all are terminal, the post.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import DeleteRequested, PublishContent, PublishRequested
from chorus_contracts.events.publishing import PostStatus, TargetStatus
from chorus_publishing import lifecycle, rules
from chorus_runtime.errors import Conflict, ValidationFailed


@dataclass(frozen=True)
class Content:
    text: str = ""
    title: str | None = None
    link: str | None = None
    first_comment: str | None = None
    hashtags: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    media_ids: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)

    def merged(self, custom: dict[str, Any] | None) -> Content:
        """Target-specific overrides on top of the post's content."""
        if not custom:
            return self
        updates: dict[str, Any] = {}
        for key in ("text", "title", "link", "first_comment"):
            if custom.get(key) is not None:
                updates[key] = custom[key]
        for key in ("hashtags", "mentions", "media_ids"):
            if custom.get(key) is not None:
                updates[key] = tuple(custom[key])
        if custom.get("options"):
            updates["options"] = {**self.options, **custom["options"]}
        return replace(self, **updates)


@dataclass(frozen=True)
class Target:
    id: str
    platform: Platform
    account_id: str
    status: TargetStatus = TargetStatus.PENDING
    attempts: int = 0
    custom: dict[str, Any] | None = None
    platform_post_id: str | None = None
    url: str | None = None
    last_error: str | None = None
    last_error_code: str | None = None
    next_attempt_at: datetime | None = None
    deadline_at: datetime | None = None
    published_at: datetime | None = None


@dataclass(frozen=True)
class Post:
    id: str
    workspace_id: str
    author_id: str | None
    status: PostStatus
    content: Content
    targets: tuple[Target, ...] = ()
    author_role: str | None = None
    scheduled_at: datetime | None = None
    timezone: str | None = None
    campaign: str | None = None
    tags: tuple[str, ...] = ()
    status_reason: str | None = None
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def target(self, target_id: str) -> Target:
        for t in self.targets:
            if t.id == target_id:
                return t
        raise KeyError(target_id)

    def with_target(self, updated: Target) -> Post:
        return replace(
            self, targets=tuple(updated if t.id == updated.id else t for t in self.targets)
        )


def new_post(
    *,
    workspace_id: str,
    author_id: str | None,
    author_role: str | None,
    content: Content,
    targets: list[tuple[Platform, str, dict[str, Any] | None]],
    campaign: str | None = None,
    tags: list[str] | None = None,
) -> Post:
    return Post(
        id=str(uuid.uuid4()),
        workspace_id=workspace_id,
        author_id=author_id,
        author_role=author_role,
        status=PostStatus.DRAFT,
        content=content,
        targets=tuple(
            Target(id=str(uuid.uuid4()), platform=p, account_id=a, custom=c) for p, a, c in targets
        ),
        campaign=campaign,
        tags=tuple(tags or ()),
    )


def rules_content(content: Content, media: dict[str, rules.MediaInfo]) -> rules.Content:
    return rules.Content(
        text=content.text,
        title=content.title,
        link=content.link,
        first_comment=content.first_comment,
        hashtags=content.hashtags,
        mentions=content.mentions,
        media=tuple(media[m] for m in content.media_ids if m in media),
        options=content.options,
    )


def check_publishable(post: Post, media: dict[str, rules.MediaInfo]) -> None:
    """Every target's content passes its platform's rules, or 422 naming each rule."""
    violations: list[rules.Violation] = []
    for t in post.targets:
        merged = post.content.merged(t.custom)
        missing = [m for m in merged.media_ids if m not in media]
        if missing:
            violations.append(
                rules.Violation(
                    t.platform.value,
                    "media",
                    "unknown_media",
                    f"unknown media {', '.join(missing)}",
                )
            )
        violations.extend(rules.validate(t.platform, rules_content(merged, media)))
    if violations:
        raise ValidationFailed(
            "the post breaks platform rules", details=[v.as_detail() for v in violations]
        )


def schedule(post: Post, *, at: datetime, timezone: str | None, approval_needed: bool) -> Post:
    target_status = PostStatus.PENDING_APPROVAL if approval_needed else PostStatus.SCHEDULED
    if post.status is not target_status:
        lifecycle.check_transition(post.status, target_status)
    return replace(
        post, status=target_status, scheduled_at=at, timezone=timezone, status_reason=None
    )


def unschedule(post: Post) -> Post:
    if post.status not in (PostStatus.SCHEDULED, PostStatus.PENDING_APPROVAL):
        raise Conflict(
            f"a {post.status.value} post is not scheduled", details={"status": post.status.value}
        )
    return replace(post, status=PostStatus.DRAFT, scheduled_at=None)


def command_for(
    post: Post,
    target: Target,
    *,
    attempt: int,
    now: datetime,
    deadline: timedelta,
    media: dict[str, Any] | None = None,
) -> PublishRequested:
    content = post.content.merged(target.custom)
    return PublishRequested(
        command_id=uuid.uuid4(),
        workspace_id=uuid.UUID(post.workspace_id),
        post_id=uuid.UUID(post.id),
        target_id=uuid.UUID(target.id),
        platform=target.platform,
        account_id=uuid.UUID(target.account_id),
        attempt=attempt,
        idempotency_key=target.id,  # one platform post per target, ever
        deadline=now + deadline,
        content=PublishContent(
            text=content.text,
            title=content.title,
            link=content.link,
            first_comment=content.first_comment,
            hashtags=list(content.hashtags),
            mentions=list(content.mentions),
            # In the order the content lists them (a carousel's order is the post's).
            media=[(media or {})[m] for m in content.media_ids if m in (media or {})],
            options=dict(content.options),
        ),
        requested_at=now,
    )


RESULT_GRACE = timedelta(seconds=60)


def dispatch(
    post: Post,
    *,
    now: datetime,
    deadline: timedelta,
    targets: list[str] | None = None,
    media: dict[str, Any] | None = None,
) -> tuple[Post, list[PublishRequested]]:
    """Send pending (or retry-due) targets: one command each; the post becomes `publishing`."""
    if post.status is not PostStatus.PUBLISHING:
        if post.status not in (PostStatus.DRAFT, PostStatus.SCHEDULED):
            raise Conflict(
                f"a {post.status.value} post cannot be published",
                details={"status": post.status.value},
            )
        post = replace(post, status=PostStatus.PUBLISHING, status_reason=None)
    wanted = set(targets) if targets is not None else None
    commands: list[PublishRequested] = []
    updated: list[Target] = []
    for t in post.targets:
        due = t.status is TargetStatus.PENDING or (
            t.status is TargetStatus.RETRYING and (wanted is None or t.id in wanted)
        )
        if wanted is not None and t.id not in wanted:
            due = False
        if not due:
            updated.append(t)
            continue
        attempt = t.attempts + 1
        command = command_for(post, t, attempt=attempt, now=now, deadline=deadline, media=media)
        commands.append(command)
        updated.append(
            replace(
                t,
                status=TargetStatus.DISPATCHED,
                attempts=attempt,
                next_attempt_at=None,
                deadline_at=command.deadline + RESULT_GRACE,
            )
        )
    return replace(post, targets=tuple(updated)), commands


def redispatch_overdue(
    post: Post,
    target: Target,
    *,
    now: datetime,
    deadline: timedelta,
    media: dict[str, Any] | None = None,
) -> tuple[Post, list[PublishRequested]]:
    """No result by the deadline: send again (the connector's ledger and read-back make a
    repeat safe) while attempts remain; otherwise fail the target loudly."""
    if target.attempts >= lifecycle.MAX_ATTEMPTS:
        failed = replace(
            target,
            status=TargetStatus.FAILED,
            deadline_at=None,
            last_error_code="no_result",
            last_error="no result from the connector before the deadline",
        )
        return finish(post.with_target(failed), now=now), []
    retrying = replace(target, status=TargetStatus.RETRYING)
    return dispatch(
        post.with_target(retrying), now=now, deadline=deadline, targets=[target.id], media=media
    )


def succeed(
    post: Post,
    target_id: str,
    *,
    platform_post_id: str,
    url: str | None,
    at: datetime,
    now: datetime,
) -> Post:
    t = post.target(target_id)
    if t.status in lifecycle.TERMINAL_TARGET:
        return post  # a late or repeated result changes nothing
    done = replace(
        t,
        status=TargetStatus.PUBLISHED,
        platform_post_id=platform_post_id,
        url=url,
        published_at=at,
        next_attempt_at=None,
        deadline_at=None,
        last_error=None,
        last_error_code=None,
    )
    return finish(post.with_target(done), now=now)


def fail(
    post: Post,
    target_id: str,
    *,
    attempt: int,
    kind: Any,
    code: str,
    message: str,
    retry_after: float | None,
    now: datetime,
) -> Post:
    t = post.target(target_id)
    if t.status in lifecycle.TERMINAL_TARGET or attempt < t.attempts:
        return post  # stale result of an earlier attempt
    decision = lifecycle.on_failure(
        attempt=attempt, kind=kind, code=code, message=message, retry_after=retry_after, now=now
    )
    updated = replace(
        t,
        status=decision.status,
        next_attempt_at=decision.next_attempt_at,
        deadline_at=None,
        last_error=decision.reason,
        last_error_code=code,
    )
    return finish(post.with_target(updated), now=now)


def finish(post: Post, *, now: datetime) -> Post:
    outcome = lifecycle.final_status([t.status for t in post.targets])
    if outcome is None or post.status is not PostStatus.PUBLISHING:
        return post
    failed = [t for t in post.targets if t.status is TargetStatus.FAILED]
    reason = "; ".join(f"{t.platform.value}: {t.last_error}" for t in failed) or None
    return replace(post, status=outcome, status_reason=reason)


def refuse(post: Post, *, reason: str) -> Post:
    """A claimed post that cannot be sent at all (its data breaks a rule the scheduler
    checks): it fails loudly with the reason instead of being claimed again forever."""
    targets = tuple(
        t
        if t.status in lifecycle.TERMINAL_TARGET
        else replace(
            t,
            status=TargetStatus.FAILED,
            next_attempt_at=None,
            deadline_at=None,
            last_error=reason,
            last_error_code="not_dispatchable",
        )
        for t in post.targets
    )
    return replace(post, status=PostStatus.FAILED, status_reason=reason, targets=targets)


def dataclasses_replace(post: Post, **changes: Any) -> Post:
    return replace(post, **changes)


def delete_commands(post: Post, *, now: datetime) -> list[DeleteRequested]:
    """Delete commands for every target that was published (and so exists on a platform)."""
    return [
        DeleteRequested(
            command_id=uuid.uuid4(),
            workspace_id=uuid.UUID(post.workspace_id),
            post_id=uuid.UUID(post.id),
            target_id=uuid.UUID(t.id),
            platform=t.platform,
            account_id=uuid.UUID(t.account_id),
            platform_post_id=t.platform_post_id,
            requested_at=now,
        )
        for t in post.targets
        if t.status is TargetStatus.PUBLISHED and t.platform_post_id
    ]
