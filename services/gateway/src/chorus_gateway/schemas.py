"""HTTP models of the gateway's own API (camelCase, unknown fields refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator
from pydantic.alias_generators import to_camel

from chorus_contracts.events.common import Plan, Role
from chorus_runtime.auth.permissions import ALL_PERMISSIONS


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class RegisterIn(ApiModel):
    email: EmailStr = Field(max_length=254)
    password: str = Field(max_length=256)
    name: str = Field(min_length=1, max_length=120)
    workspace_name: str = Field(min_length=1, max_length=120)


class LoginIn(ApiModel):
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=256)
    workspace_id: UUID | None = None


class RefreshIn(ApiModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class SwitchIn(ApiModel):
    workspace_id: UUID


class UserOut(ApiModel):
    id: UUID
    email: str
    name: str


class WorkspaceOut(ApiModel):
    id: UUID
    name: str
    slug: str
    plan: Plan


class TokensOut(ApiModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class SessionOut(TokensOut):
    user: UserOut
    workspace: WorkspaceOut


class MeOut(ApiModel):
    user: UserOut
    workspace: WorkspaceOut
    role: Role
    permissions: list[str]


class MembershipOut(ApiModel):
    workspace: WorkspaceOut
    role: Role
    joined_at: datetime


class WorkspacesOut(ApiModel):
    workspaces: list[MembershipOut]


class MemberOut(ApiModel):
    user_id: UUID
    email: str
    name: str
    role: Role
    joined_at: datetime


class MembersOut(ApiModel):
    members: list[MemberOut]


class InviteIn(ApiModel):
    email: EmailStr = Field(max_length=254)
    role: Role


class InvitationOut(ApiModel):
    id: UUID
    email: str
    role: Role
    expires_at: datetime


class InvitationCreatedOut(ApiModel):
    invitation: InvitationOut
    token: str


class AcceptIn(ApiModel):
    name: str = Field(min_length=1, max_length=120)
    password: str = Field(max_length=256)


class RoleIn(ApiModel):
    role: Role


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


class SettingsIn(ApiModel):
    timezone: str = Field(description="IANA time zone name, e.g. Europe/Berlin")
    default_locale: str = Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)
    approval_required_for: list[Role] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _iana(cls, v: str) -> str:
        if v not in _zones():
            raise ValueError("unknown IANA time zone")
        return v


class SettingsOut(SettingsIn):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class PlanIn(ApiModel):
    plan: Plan


class ApiKeyIn(ApiModel):
    name: str = Field(min_length=1, max_length=120)
    scopes: list[str] = Field(min_length=1, max_length=len(ALL_PERMISSIONS))
    expires_at: datetime | None = None

    @field_validator("scopes")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - ALL_PERMISSIONS)
        if unknown:
            raise ValueError(f"unknown scopes: {', '.join(unknown)}")
        return sorted(set(v))

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("must include a UTC offset")
        return v


class ApiKeyOut(ApiModel):
    id: UUID
    name: str
    scopes: list[str]
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = None


class ApiKeyCreatedOut(ApiModel):
    api_key: ApiKeyOut
    key: str


class ApiKeysOut(ApiModel):
    api_keys: list[ApiKeyOut]
