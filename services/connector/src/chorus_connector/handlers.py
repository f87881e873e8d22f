"""Consumers of the connector (thin: decode is done by the runtime; effect via repository).

Foundation slice: a publish command is recorded in the idempotency ledger, one row per
post target. The platform call itself arrives with the platform clients.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert

from chorus_connector.tables import publish_ledger
from chorus_contracts.events.connector import PublishRequested
from chorus_runtime.consumer import Delivery, PoisonMessage
from chorus_runtime.service import ServiceRuntime

COMMAND_TYPES = {PublishRequested.event_type}


async def on_command(delivery: Delivery) -> None:
    command = delivery.data
    if not isinstance(command, PublishRequested):
        raise PoisonMessage(f"unexpected data {type(command).__name__}")
    if delivery.event.tenantid != str(command.workspace_id):
        raise PoisonMessage("ce_tenantid does not match the command's workspace")
    assert delivery.uow is not None
    stmt = insert(publish_ledger).values(
        target_id=str(command.target_id),
        workspace_id=str(command.workspace_id),
        post_id=str(command.post_id),
        account_id=str(command.account_id),
        platform=command.platform.value,
        status="received",
        last_command_id=str(command.command_id),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[publish_ledger.c.target_id],
        set_={
            "commands_received": publish_ledger.c.commands_received + 1,
            "last_command_id": stmt.excluded.last_command_id,
            "updated_at": func.now(),
        },
    )
    await delivery.uow.session.execute(stmt)


def register(runtime: ServiceRuntime) -> None:
    runtime.consumers.subscribe(
        "connector.commands", on_command, purpose="commands", event_types=COMMAND_TYPES
    )
