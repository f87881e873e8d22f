"""Event catalog: `ce_type` → pydantic model of the event's data.

Each domain module registers its models with `@event_type(...)`; importing
`chorus_contracts.events` loads them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from chorus_contracts.envelope import CloudEvent, EnvelopeError, UnknownEventType


class EventData(BaseModel):
    """Base of every event payload: camelCase on the wire, unknown fields ignored.

    Ignoring unknown fields is what lets an old consumer read a newer, compatible event.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    event_type: ClassVar[str] = ""

    def to_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=False)


_CATALOG: dict[str, type[EventData]] = {}
M = TypeVar("M", bound=type[EventData])


def event_type(name: str) -> Callable[[M], M]:
    def register(cls: M) -> M:
        if name in _CATALOG and _CATALOG[name] is not cls:
            raise ValueError(f"{name} registered twice")
        cls.event_type = name
        _CATALOG[name] = cls
        return cls

    return register


def catalog() -> dict[str, type[EventData]]:
    import chorus_contracts.events  # noqa: F401  (registers every domain module)

    return dict(_CATALOG)


def model_for(type_name: str) -> type[EventData]:
    models = catalog()
    try:
        return models[type_name]
    except KeyError:
        raise UnknownEventType(f"unknown event type {type_name!r}", header="ce_type") from None


class DataValidationError(EnvelopeError):
    """The envelope is fine but the data does not match the type's contract."""


def parse_data(event: CloudEvent) -> EventData:
    model = model_for(event.type)
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        raise DataValidationError(f"data does not match {event.type}: {exc}") from None


def build_event(
    data: EventData,
    *,
    source: str,
    subject: str | None = None,
    tenant_id: str | None = None,
    traceparent: str | None = None,
) -> CloudEvent:
    # `event_type` is a class attribute, so an unregistered subclass would inherit its
    # parent's type: only the exact registered class may build the event.
    if not data.event_type or _CATALOG.get(data.event_type) is not type(data):
        raise ValueError(f"{type(data).__name__} is not a registered event model")
    return CloudEvent(
        type=data.event_type,
        source=source,
        subject=subject,
        tenantid=tenant_id,
        traceparent=traceparent,
        data=data.to_data(),
    )
