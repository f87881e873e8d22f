"""`/api/v1/publishing/workflows` and `/api/v1/publishing/accounts`: the workspace's approval
workflow (owners and admins change it) and the accounts its posts may target."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import Field, model_validator

from chorus_contracts.events.common import Role
from chorus_publishing import workflows
from chorus_publishing.accounts import AccountDirectory
from chorus_publishing.approval_store import ApprovalStore
from chorus_publishing.permissions import Reader, SettingsAdmin
from chorus_publishing.schemas import ApiModel
from chorus_runtime.service import ServiceRuntime

router = APIRouter(prefix="/api/v1/publishing", tags=["publishing settings"])

# Viewers cannot touch posts, so they cannot approve one either.
ApproverRole = Literal["owner", "admin", "manager", "editor"]


class StepIn(ApiModel):
    name: str = Field(min_length=1, max_length=80)
    approver_roles: list[ApproverRole] = Field(min_length=1, max_length=4)


class WorkflowIn(ApiModel):
    required_for: list[Role] = Field(
        default_factory=list, max_length=5, description="author roles whose posts need approval"
    )
    steps: list[StepIn] = Field(min_length=1, max_length=10, description="approved in order")

    @model_validator(mode="after")
    def _unique(self) -> WorkflowIn:
        names = [s.name.strip().lower() for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError("step names must be unique")
        return self

    def domain(self) -> workflows.Workflow:
        return workflows.Workflow(
            required_for=tuple(dict.fromkeys(r.value for r in self.required_for)),
            steps=tuple(
                workflows.Step(s.name.strip(), tuple(dict.fromkeys(s.approver_roles)))
                for s in self.steps
            ),
        )


class StepOut(ApiModel):
    name: str
    approver_roles: list[str]


class WorkflowOut(ApiModel):
    required_for: list[str]
    steps: list[StepOut]
    source: str = Field(description="workflow (configured here) or workspace_settings (fallback)")
    updated_at: datetime | None = None


class WorkflowEnvelope(ApiModel):
    workflow: WorkflowOut


def _out(wf: workflows.Workflow, updated_at: datetime | None) -> WorkflowEnvelope:
    return WorkflowEnvelope(
        workflow=WorkflowOut(
            required_for=list(wf.required_for),
            steps=[StepOut(name=s.name, approver_roles=list(s.approver_roles)) for s in wf.steps],
            source=wf.source,
            updated_at=updated_at,
        )
    )


def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


@router.get(
    "/workflows",
    response_model=WorkflowEnvelope,
    response_model_by_alias=True,
    summary="The approval workflow in force (configured, or the workspace settings' policy)",
)
async def get_workflow(request: Request, principal: Reader) -> WorkflowEnvelope:
    db = _runtime(request).db
    assert db is not None
    async with db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        store = ApprovalStore(uow)
        found = await store.configured()
        if found is not None:
            return _out(*found)
        return _out(await store.policy(), None)


@router.put(
    "/workflows",
    response_model=WorkflowEnvelope,
    response_model_by_alias=True,
    summary="Configure ordered approval steps (owners and admins)",
)
async def put_workflow(
    body: WorkflowIn, request: Request, principal: SettingsAdmin
) -> WorkflowEnvelope:
    db = _runtime(request).db
    assert db is not None
    async with db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        store = ApprovalStore(uow)
        await store.put(body.domain(), updated_by=principal.subject)
        found = await store.configured()
        await uow.commit()
    assert found is not None
    return _out(*found)


@router.delete(
    "/workflows",
    status_code=204,
    summary="Remove the workflow: the workspace settings' approval policy applies again",
)
async def delete_workflow(request: Request, principal: SettingsAdmin) -> Response:
    db = _runtime(request).db
    assert db is not None
    async with db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        await ApprovalStore(uow).remove()
        await uow.commit()
    return Response(status_code=204)


class AccountOut(ApiModel):
    id: str
    platform: str
    username: str
    status: str
    postable: bool


class AccountList(ApiModel):
    accounts: list[AccountOut]


@router.get(
    "/accounts",
    response_model=AccountList,
    response_model_by_alias=True,
    summary="The connected accounts posts of this workspace may target",
)
async def list_accounts(request: Request, principal: Reader) -> AccountList:
    db = _runtime(request).db
    assert db is not None
    async with db.unit_of_work(tenant_id=principal.workspace_id) as uow:
        found = await AccountDirectory(uow).all()
    return AccountList(
        accounts=[
            AccountOut(
                id=a.id,
                platform=a.platform,
                username=a.username,
                status=a.status,
                postable=a.postable,
            )
            for a in found
        ]
    )
