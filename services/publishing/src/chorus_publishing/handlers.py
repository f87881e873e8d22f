"""Consumers of the publishing service (thin: the runtime decodes, dedupes, retries).

- `connector.deliveries` → target results (published / retry / failed) and the post outcome;
- `connector.accounts` → the accounts a workspace may post to;
- `identity.workspaces` → timezone and approval policy.
"""

from __future__ import annotations

from datetime import UTC, datetime

from chorus_contracts.events.connector import (
    AccountConnected,
    AccountDisconnected,
    AccountStatusChanged,
    DeliveryFailed,
    DeliverySucceeded,
)
from chorus_contracts.events.identity import WorkspaceCreated, WorkspaceSettingsChanged
from chorus_publishing import domain, events
from chorus_publishing.repository import (
    lock_post,
    record,
    save,
    set_account_status,
    upsert_account,
    upsert_settings,
)
from chorus_runtime.consumer import Delivery
from chorus_runtime.service import ServiceRuntime


async def on_delivery(d: Delivery) -> None:
    assert d.uow is not None
    data = d.data
    if not isinstance(data, DeliverySucceeded | DeliveryFailed):
        return
    # Results arrive tenant-scoped; reading the post under its lock keeps concurrent
    # results for its targets from overwriting each other.
    post = await lock_post(d.uow.session, str(data.post_id))
    if post is None or post.workspace_id != str(data.workspace_id):
        return  # deleted meanwhile: nothing to update
    now = datetime.now(UTC)
    target_id = str(data.target_id)
    try:
        post.target(target_id)
    except KeyError:
        return
    if isinstance(data, DeliverySucceeded):
        after = domain.succeed(
            post,
            target_id,
            platform_post_id=data.platform_post_id,
            url=data.url,
            at=data.published_at,
            now=now,
        )
    else:
        after = domain.fail(
            post,
            target_id,
            attempt=data.attempt,
            kind=data.kind,
            code=data.error_code,
            message=data.error_message,
            retry_after=data.retry_after_seconds,
            now=now,
        )
    if after == post:
        return
    await save(d.uow.session, after)
    if after.status is not post.status:
        await record(d.uow.session, after, "finished", previous=post.status, actor_id=None)
    await events.changes(d.uow.session, post, after, actor=None, now=now)


async def on_account(d: Delivery) -> None:
    assert d.uow is not None
    data = d.data
    if isinstance(data, AccountConnected):
        await upsert_account(
            d.uow.session,
            id=str(data.account_id),
            workspace_id=str(data.workspace_id),
            platform=data.platform.value,
            username=data.username,
            status="active",
        )
    elif isinstance(data, AccountStatusChanged):
        await set_account_status(d.uow.session, str(data.account_id), data.status.value)
    elif isinstance(data, AccountDisconnected):
        await set_account_status(d.uow.session, str(data.account_id), "revoked")


async def on_workspace(d: Delivery) -> None:
    assert d.uow is not None
    data = d.data
    if isinstance(data, WorkspaceCreated):
        await upsert_settings(
            d.uow.session,
            workspace_id=str(data.workspace_id),
            timezone=data.timezone,
            approval_required_for=[],
        )
    elif isinstance(data, WorkspaceSettingsChanged):
        await upsert_settings(
            d.uow.session,
            workspace_id=str(data.workspace_id),
            timezone=data.timezone,
            approval_required_for=[r.value for r in data.approval_required_for],
        )


def register(runtime: ServiceRuntime) -> None:
    c = runtime.consumers
    c.subscribe(
        "connector.deliveries",
        on_delivery,
        purpose="deliveries",
        event_types={DeliverySucceeded.event_type, DeliveryFailed.event_type},
    )
    c.subscribe("connector.accounts", on_account, purpose="accounts")
    c.subscribe(
        "identity.workspaces",
        on_workspace,
        purpose="workspaces",
        event_types={WorkspaceCreated.event_type, WorkspaceSettingsChanged.event_type},
    )
