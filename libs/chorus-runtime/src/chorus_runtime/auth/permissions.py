"""Roles and the permission matrix (design.md §5). The gateway puts permissions in tokens."""

from __future__ import annotations

from chorus_contracts.events.common import Role

POST_PERMISSIONS = ("post:create", "post:read", "post:update", "post:delete", "post:publish")
POST_APPROVE = "post:approve"
ANALYTICS = ("analytics:view", "analytics:export")
TEAM = ("team:invite", "team:manage")
SETTINGS = ("settings:view", "settings:update")
BILLING = ("billing:view", "billing:manage")
ACCOUNTS = ("accounts:view", "accounts:manage")
OTHER = (
    "listening:view",
    "listening:manage",
    "inbox:view",
    "inbox:reply",
    "inbox:manage",
    "ai:use",
    "ai:manage",
    "apikeys:manage",
)

ALL_PERMISSIONS: frozenset[str] = frozenset(
    (*POST_PERMISSIONS, POST_APPROVE, *ANALYTICS, *TEAM, *SETTINGS, *BILLING, *ACCOUNTS, *OTHER)
)

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.OWNER: ALL_PERMISSIONS,
    Role.ADMIN: ALL_PERMISSIONS - {"billing:manage"},
    Role.MANAGER: frozenset(
        {
            "post:create",
            "post:read",
            "post:update",
            "post:publish",
            POST_APPROVE,
            "analytics:view",
            "team:invite",
            "settings:view",
            "accounts:view",
            "listening:view",
            "inbox:view",
            "inbox:reply",
            "ai:use",
        }
    ),
    Role.EDITOR: frozenset(
        {
            "post:create",
            "post:read",
            "post:update",
            "analytics:view",
            "accounts:view",
            "listening:view",
            "inbox:view",
            "inbox:reply",
            "ai:use",
        }
    ),
    Role.VIEWER: frozenset(
        {"post:read", "analytics:view", "accounts:view", "listening:view", "inbox:view"}
    ),
}

ROLE_RANK: dict[Role, int] = {
    Role.VIEWER: 0,
    Role.EDITOR: 1,
    Role.MANAGER: 2,
    Role.ADMIN: 3,
    Role.OWNER: 4,
}


def permissions_for(role: Role | str) -> frozenset[str]:
    return ROLE_PERMISSIONS[Role(role)]
