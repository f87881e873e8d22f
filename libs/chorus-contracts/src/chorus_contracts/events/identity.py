"""Identity events (owner: gateway) on `identity.workspaces` and `identity.members`."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from chorus_contracts.catalog import EventData, event_type
from chorus_contracts.events.common import Plan, Role


@event_type("chorus.identity.workspace.created.v1")
class WorkspaceCreated(EventData):
    workspace_id: UUID
    name: str
    slug: str
    plan: Plan
    owner_user_id: UUID
    timezone: str = "UTC"
    created_at: datetime


@event_type("chorus.identity.workspace.plan_changed.v1")
class WorkspacePlanChanged(EventData):
    workspace_id: UUID
    previous_plan: Plan
    plan: Plan
    changed_by: UUID
    changed_at: datetime


@event_type("chorus.identity.workspace.settings_changed.v1")
class WorkspaceSettingsChanged(EventData):
    workspace_id: UUID
    timezone: str
    default_locale: str
    approval_required_for: list[Role] = []
    changed_by: UUID
    changed_at: datetime


@event_type("chorus.identity.workspace.deleted.v1")
class WorkspaceDeleted(EventData):
    workspace_id: UUID
    deleted_by: UUID
    deleted_at: datetime


@event_type("chorus.identity.member.joined.v1")
class MemberJoined(EventData):
    workspace_id: UUID
    user_id: UUID
    role: Role
    invited_by: UUID | None = None
    joined_at: datetime


@event_type("chorus.identity.member.role_changed.v1")
class MemberRoleChanged(EventData):
    workspace_id: UUID
    user_id: UUID
    previous_role: Role
    role: Role
    changed_by: UUID
    changed_at: datetime


@event_type("chorus.identity.member.removed.v1")
class MemberRemoved(EventData):
    workspace_id: UUID
    user_id: UUID
    removed_by: UUID
    removed_at: datetime
