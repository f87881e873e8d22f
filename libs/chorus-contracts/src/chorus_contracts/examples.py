"""Example events in `schemas/examples/<ce_type>/<name>.json` (design.md §3, §9).

Examples are full CloudEvents in *structured* JSON form (attributes and `data` in one
object) because that reads well in review; `example_to_kafka` turns one into the binary-mode
Kafka message a consumer really receives, through the same `envelope.encode` producers use.

Service tests feed every example of a topic through every consumer of that topic:

    for path, event in examples_for_topic("publishing.posts"):
        msg = example_to_kafka(event)
        await handler(msg.headers, msg.value)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from chorus_contracts.envelope import SPEC_VERSION, CloudEvent, encode
from chorus_contracts.registry import Registry, load_registry
from chorus_contracts.schema_export import default_schemas_dir

EXAMPLES_DIRNAME = "examples"
# Attributes an example may carry: the CloudEvent fields plus `specversion`. Anything else
# is a typo (e.g. `tenantId`) that would otherwise be silently dropped.
_ALLOWED_KEYS = frozenset({"specversion", *CloudEvent.model_fields})


class ExampleError(ValueError):
    """An example file is not a well-formed CloudEvent."""


@dataclass(frozen=True)
class KafkaMessage:
    """An example as it travels on Kafka: logical topic, key, headers and value."""

    topic: str
    key: bytes | None
    headers: list[tuple[str, bytes]]
    value: bytes


def default_examples_dir() -> Path:
    return default_schemas_dir() / EXAMPLES_DIRNAME


def load_example(path: Path) -> CloudEvent:
    """Parse one example file; its directory name must be its `type`."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ExampleError(f"{path}: not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ExampleError(f"{path}: must be a JSON object")
    unknown = sorted(set(raw) - _ALLOWED_KEYS)
    if unknown:
        raise ExampleError(f"{path}: unknown attributes {unknown}")
    if raw.pop("specversion", None) != SPEC_VERSION:
        raise ExampleError(f"{path}: specversion must be {SPEC_VERSION!r}")
    try:
        event = CloudEvent.model_validate(raw)
    except ValidationError as exc:
        raise ExampleError(f"{path}: {exc}") from None
    if event.type != path.parent.name:
        raise ExampleError(f"{path}: type {event.type!r} does not match its directory")
    return event


def load_examples(examples_dir: Path | None = None) -> list[tuple[Path, CloudEvent]]:
    """Every example, sorted by path, as (path, CloudEvent)."""
    root = examples_dir or default_examples_dir()
    return [(p, load_example(p)) for p in sorted(root.glob("*/*.json"))]


def examples_for_type(
    ce_type: str, examples_dir: Path | None = None
) -> list[tuple[Path, CloudEvent]]:
    return [(p, e) for p, e in load_examples(examples_dir) if e.type == ce_type]


def examples_for_topic(
    topic: str, examples_dir: Path | None = None, registry: Registry | None = None
) -> list[tuple[Path, CloudEvent]]:
    """Every example of every event type carried by `topic` (a logical name)."""
    types = set((registry or load_registry()).topic(topic).event_types)
    return [(p, e) for p, e in load_examples(examples_dir) if e.type in types]


def example_to_kafka(event: CloudEvent, registry: Registry | None = None) -> KafkaMessage:
    """The binary-mode Kafka message for `event`, keyed like its topic's producers key it."""
    spec = (registry or load_registry()).topic_for_type(event.type)
    headers, value = encode(event)
    key = event.data.get(spec.key)
    return KafkaMessage(
        topic=spec.name,
        key=None if key is None else str(key).encode(),
        headers=headers,
        value=value,
    )
