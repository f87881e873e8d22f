"""Persistence of approval workflows and of the approved steps of each post (tenant-scoped)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert

from chorus_publishing import workflows
from chorus_publishing.tables import approval_workflows, post_approvals, workspace_settings
from chorus_runtime.db.repository import TenantRepository


class ApprovalStore(TenantRepository):
    async def configured(self) -> tuple[workflows.Workflow, Any] | None:
        row = (await self.session.execute(self.select(approval_workflows))).mappings().first()
        if row is None:
            return None
        return workflows.from_row(list(row["required_for"]), list(row["steps"])), row["updated_at"]

    async def policy(self) -> workflows.Workflow:
        """The workflow in force: the configured one, else the identity settings' policy."""
        found = await self.configured()
        if found is not None:
            return found[0]
        required = (
            await self.session.execute(
                self.select(workspace_settings, workspace_settings.c.approval_required_for)
            )
        ).scalar()
        return workflows.fallback(list(required or []))

    async def put(self, workflow: workflows.Workflow, *, updated_by: str) -> None:
        values = {
            "workspace_id": self.workspace_id,
            "required_for": list(workflow.required_for),
            "steps": [s.as_json() for s in workflow.steps],
            "updated_by": updated_by,
        }
        stmt = pg_insert(approval_workflows).values(**values)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[approval_workflows.c.workspace_id],
                set_={k: stmt.excluded[k] for k in values if k != "workspace_id"}
                | {"updated_at": func.now()},
            )
        )

    async def remove(self) -> bool:
        result = await self.session.execute(self.delete(approval_workflows))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def approvals(self, post_id: str) -> list[workflows.Approval]:
        rows = await self.session.execute(
            self.select(post_approvals, post_approvals.c.step, post_approvals.c.approver_id)
            .where(post_approvals.c.post_id == post_id)
            .order_by(post_approvals.c.step)
        )
        return [workflows.Approval(r.step, r.approver_id) for r in rows]

    async def add_approval(
        self, post_id: str, step: int, step_name: str, approver_id: str, comment: str | None
    ) -> None:
        await self.session.execute(
            insert(post_approvals).values(
                **self.values(
                    post_id=post_id,
                    step=step,
                    step_name=step_name,
                    approver_id=approver_id,
                    comment=comment,
                )
            )
        )

    async def reset(self, post_id: str) -> None:
        """A new approval round (the post was (re)submitted or changed): earlier approvals
        no longer count."""
        await self.session.execute(
            self.delete(post_approvals).where(post_approvals.c.post_id == post_id)
        )
