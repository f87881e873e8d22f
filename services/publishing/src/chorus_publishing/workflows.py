"""Approval workflows, free of I/O.

A workspace may configure its own workflow: the author roles that need approval and ordered
steps, each naming the roles that may approve it. A post waiting in `pending_approval`
becomes `scheduled` (or a draft again, when it has no time) only after every step was
approved in order, each by a different member. Without a configured workflow the policy is
the identity settings' `approval_required_for` with one step any holder of `post:approve`
may approve (the behaviour before workflows existed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from chorus_contracts.events.publishing import PostStatus
from chorus_publishing.domain import Post
from chorus_runtime.errors import Conflict, Forbidden

CONFIGURED = "workflow"
FALLBACK = "workspace_settings"
FALLBACK_STEP = "approval"
APPROVE_PERMISSION = "post:approve"


@dataclass(frozen=True)
class Step:
    name: str
    approver_roles: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "approverRoles": list(self.approver_roles)}


@dataclass(frozen=True)
class Workflow:
    required_for: tuple[str, ...]
    steps: tuple[Step, ...]
    source: str = CONFIGURED

    @property
    def configured(self) -> bool:
        return self.source == CONFIGURED

    def needs_approval(self, role: str | None) -> bool:
        return role is not None and role in self.required_for


@dataclass(frozen=True)
class Approval:
    """One approved step of the post's current approval round."""

    step: int
    approver_id: str


def fallback(approval_required_for: list[str]) -> Workflow:
    return Workflow(
        required_for=tuple(approval_required_for),
        steps=(Step(FALLBACK_STEP, ()),),
        source=FALLBACK,
    )


def from_row(required_for: list[str], steps: list[dict[str, Any]]) -> Workflow:
    return Workflow(
        required_for=tuple(required_for),
        steps=tuple(Step(s["name"], tuple(s["approverRoles"])) for s in steps),
    )


def _waiting(post: Post) -> None:
    if post.status is not PostStatus.PENDING_APPROVAL:
        raise Conflict(
            f"a {post.status.value} post is not waiting for approval",
            details={"status": post.status.value},
        )


def current_step(workflow: Workflow, approvals: list[Approval]) -> int:
    """The index of the first step not yet approved (steps are approved in order)."""
    done = {a.step for a in approvals}
    for i in range(len(workflow.steps)):
        if i not in done:
            return i
    return len(workflow.steps)


def check_approver(
    workflow: Workflow, step: int, *, role: str, permissions: frozenset[str]
) -> None:
    """Who may act on a step: its roles (configured), or `post:approve` (fallback)."""
    if not workflow.configured:
        if APPROVE_PERMISSION not in permissions:
            raise Forbidden(
                f"missing permission {APPROVE_PERMISSION}",
                details={"required": [APPROVE_PERMISSION]},
            )
        return
    s = workflow.steps[step]
    if role not in s.approver_roles:
        raise Forbidden(
            f"step {s.name!r} is approved by {', '.join(s.approver_roles)}",
            details={"step": s.name, "approverRoles": list(s.approver_roles)},
        )


@dataclass(frozen=True)
class StepApproved:
    post: Post  # unchanged until the last step, then scheduled (or a draft without a time)
    step: int
    step_name: str
    final: bool
    # False when the step already holds an approval (the workflow lost steps since): the
    # post completes without a second approval row for that step.
    new_step: bool = True


def approve(
    post: Post,
    workflow: Workflow,
    approvals: list[Approval],
    *,
    approver_id: str,
    role: str,
    permissions: frozenset[str],
) -> StepApproved:
    _waiting(post)
    step = current_step(workflow, approvals)
    covered = step >= len(workflow.steps)
    if covered:
        # Only reachable when the workflow lost steps meanwhile: its approvals already cover
        # every step that is left, so this approval finishes the post.
        step = len(workflow.steps) - 1
    mine = next((a for a in approvals if a.approver_id == approver_id), None)
    if mine is not None:
        # A repeated click (or a member holding roles of several steps) must not pass two
        # steps: every step needs its own approver.
        name = workflow.steps[min(mine.step, len(workflow.steps) - 1)].name
        raise Conflict(
            f"you already approved step {name!r} of this post",
            details={"step": name, "reason": "already_approved"},
        )
    check_approver(workflow, step, role=role, permissions=permissions)
    final = step == len(workflow.steps) - 1
    after = post
    if final:
        status = PostStatus.SCHEDULED if post.scheduled_at is not None else PostStatus.DRAFT
        after = replace(post, status=status)
    return StepApproved(after, step, workflow.steps[step].name, final, new_step=not covered)


def reject(
    post: Post,
    workflow: Workflow,
    approvals: list[Approval],
    *,
    role: str,
    permissions: frozenset[str],
) -> tuple[Post, str]:
    """Any approver of the current step may send the post back to draft."""
    _waiting(post)
    step = min(current_step(workflow, approvals), len(workflow.steps) - 1)
    check_approver(workflow, step, role=role, permissions=permissions)
    return replace(post, status=PostStatus.DRAFT, scheduled_at=None), workflow.steps[step].name
