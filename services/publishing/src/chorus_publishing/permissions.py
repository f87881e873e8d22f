"""Who may call what: the publishing endpoints' permission dependencies, in one place."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from chorus_runtime.auth import Principal, require_permission

Reader = Annotated[Principal, Depends(require_permission("post:read"))]
Creator = Annotated[Principal, Depends(require_permission("post:create"))]
Updater = Annotated[Principal, Depends(require_permission("post:update"))]
Deleter = Annotated[Principal, Depends(require_permission("post:delete"))]
Publisher = Annotated[Principal, Depends(require_permission("post:publish"))]
# Owners and admins only: the roles holding settings:update.
SettingsAdmin = Annotated[Principal, Depends(require_permission("settings:update"))]
