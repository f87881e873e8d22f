"""Consumers of the connector: commands from publishing (publish, delete)."""

from __future__ import annotations

from chorus_connector.publisher import Publisher
from chorus_contracts.events.connector import DeleteRequested, PublishRequested
from chorus_runtime.service import ServiceRuntime

COMMAND_TYPES = {PublishRequested.event_type, DeleteRequested.event_type}


def register(runtime: ServiceRuntime, publisher: Publisher) -> None:
    runtime.consumers.subscribe(
        "connector.commands", publisher.handle, purpose="commands", event_types=COMMAND_TYPES
    )
