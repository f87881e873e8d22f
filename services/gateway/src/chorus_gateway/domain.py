"""Identity rules, free of I/O: who may grant what, the last-owner rule, slugs, claims."""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Any

from chorus_contracts.events.common import Plan, Role
from chorus_runtime.auth.permissions import ROLE_RANK, permissions_for
from chorus_runtime.errors import Forbidden, ValidationFailed

DEFAULT_SETTINGS: dict[str, Any] = {
    "timezone": "UTC",
    "defaultLocale": "en-US",
    "approvalRequiredFor": [],
}


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:40] or "workspace"
    return f"{slug}-{uuid.uuid4().hex[:6]}"


def access_claims(
    *, user_id: str, workspace_id: str, role: Role, plan: Plan, email: str
) -> dict[str, Any]:
    return {
        "sub": user_id,
        "wid": workspace_id,
        "role": role.value,
        "perms": sorted(permissions_for(role)),
        "plan": plan.value,
        "typ": "user",
        "email": email,
    }


def api_key_claims(
    *, key_id: str, workspace_id: str, scopes: list[str], plan: Plan
) -> dict[str, Any]:
    return {
        "sub": f"apikey:{key_id}",
        "wid": workspace_id,
        "role": "api_key",
        "perms": sorted(scopes),
        "plan": plan.value,
        "typ": "api_key",
    }


def check_can_grant(actor_role: Role, role: Role) -> None:
    """Nobody grants a role above their own."""
    if ROLE_RANK[role] > ROLE_RANK[actor_role]:
        raise Forbidden(
            f"a {actor_role.value} cannot grant the {role.value} role",
            details={"role": role.value},
        )


def check_can_manage(actor_role: Role, target_role: Role) -> None:
    """Changing or removing someone ranked above you is not allowed."""
    if ROLE_RANK[target_role] > ROLE_RANK[actor_role]:
        raise Forbidden(f"a {actor_role.value} cannot change a {target_role.value}")


def check_owner_remains(current_role: Role, new_role: Role | None, owners: int) -> None:
    """The last owner can be neither removed nor demoted."""
    if current_role is Role.OWNER and new_role is not Role.OWNER and owners <= 1:
        raise ValidationFailed(
            "the workspace needs at least one owner",
            details=[{"field": "role", "message": "last owner", "type": "last_owner"}],
        )


def check_scopes(requested: list[str], granted: frozenset[str]) -> None:
    """API key scopes must be a subset of the creator's permissions."""
    extra = sorted(set(requested) - granted)
    if extra:
        raise Forbidden("scopes exceed your permissions", details={"scopes": extra})
