"""`/_sandbox/*`: what tests and developers use to look inside and to break things."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from chorus_sandbox.faults import Fault, FaultKind, Faults
from chorus_sandbox.store import Store


class AdvanceIn(BaseModel):
    seconds: float = Field(gt=0, le=366 * 86400)


class FaultIn(BaseModel):
    platform: str
    kind: FaultKind
    count: int = Field(default=1, ge=1, le=1000)
    operation: str | None = Field(default=None, description="publish | refresh | … (any if empty)")


def inspection_router(store: Store, faults: Faults) -> APIRouter:
    router = APIRouter(prefix="/_sandbox", tags=["sandbox"])

    @router.get("/posts")
    async def posts(platform: str | None = None, accountId: str | None = None) -> dict[str, Any]:
        items = store.posts_of(platform, accountId)
        return {
            "posts": [
                {
                    "platform": p.platform,
                    "id": p.id,
                    "accountId": p.account_id,
                    "text": p.text,
                    "url": p.url,
                    "status": p.status,
                    "body": p.body,
                    "createdAt": p.created_at.isoformat(),
                    "metrics": p.metrics(),
                }
                for p in sorted(items, key=lambda p: p.created_at)
            ]
        }

    @router.post("/metrics/advance")
    async def advance(body: AdvanceIn) -> dict[str, Any]:
        """Move the sandbox clock: posts age and accounts gain followers, without sleeping."""
        return {"offsetSeconds": store.clock.advance(body.seconds), "now": store.now().isoformat()}

    @router.get("/calls")
    async def calls(platform: str | None = None) -> dict[str, Any]:
        return {"calls": [c for c in store.calls if platform in (None, c["platform"])]}

    @router.post("/faults", status_code=201)
    async def add_fault(body: FaultIn) -> dict[str, Any]:
        faults.add(Fault(body.platform, body.kind, body.count, body.operation))
        return {"faults": faults.pending()}

    @router.get("/faults")
    async def list_faults() -> dict[str, Any]:
        return {"faults": faults.pending()}

    @router.post("/reset", status_code=204)
    async def reset() -> None:
        store.reset()
        faults.reset()

    return router
