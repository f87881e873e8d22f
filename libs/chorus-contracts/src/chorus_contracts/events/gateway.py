"""Gateway audit events on `gateway.audit`: one per mutating request."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import Field

from chorus_contracts.catalog import EventData, event_type


@event_type("chorus.gateway.request.audited.v1")
class RequestAudited(EventData):
    workspace_id: UUID | None = None
    actor_type: str = Field(description="user | api_key | anonymous")
    actor_id: str | None = None
    action: str = Field(description="HTTP method and route template, e.g. POST /api/v1/posts")
    resource_type: str | None = None
    resource_id: str | None = None
    status_code: int = Field(ge=100, le=599)
    ip: str | None = None
    user_agent: str | None = None
    request_id: str
    duration_ms: float = Field(ge=0)
    occurred_at: datetime
