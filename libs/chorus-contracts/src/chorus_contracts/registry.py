"""Topic registry: `schemas/topics/*.yaml` is the one source of truth for topics.

Topic creation (embedded broker, compose init job, Helm job), consumers and the schema
export all read it through `load_registry`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chorus_contracts.envelope import TYPE_PATTERN

TOPIC_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*(\.v[2-9][0-9]*)?$")
DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
DLQ_SUFFIX = ".dlq"


class RegistryError(ValueError):
    """The registry files are inconsistent or malformed."""


class Compatibility(StrEnum):
    BACKWARD = "BACKWARD"
    FORWARD = "FORWARD"
    FULL = "FULL"
    NONE = "NONE"


class EventTypeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    description: str = ""
    compatibility: Compatibility = Compatibility.BACKWARD

    @field_validator("type")
    @classmethod
    def _check(cls, v: str) -> str:
        if not TYPE_PATTERN.match(v):
            raise ValueError(
                f"event type {v!r} must look like chorus.<domain>.<entity>.<action>.vN"
            )
        return v


class TopicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    owner: str
    description: str = ""
    producers: tuple[str, ...]
    consumers: tuple[str, ...] = ()
    key: str = Field(description="the aggregate id used as the Kafka key")
    partitions: int = Field(ge=1, le=1024)
    replication_factor: int = Field(default=3, ge=1)
    retention: str = "30d"
    cleanup_policy: Literal["delete", "compact", "compact,delete"] = "delete"
    events: tuple[EventTypeSpec, ...]

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        if not TOPIC_NAME.match(v):
            raise ValueError(f"topic name {v!r} must be <domain>.<stream> (optionally .vN)")
        return v

    @field_validator("retention")
    @classmethod
    def _check_retention(cls, v: str) -> str:
        if v != "forever" and not DURATION.match(v):
            raise ValueError("retention must be like 7d, 12h, 30m or 'forever'")
        return v

    @model_validator(mode="after")
    def _check_owner(self) -> TopicSpec:
        if self.owner not in self.producers:
            raise ValueError("the owner must be one of the producers")
        if not self.events:
            raise ValueError("a topic needs at least one event type")
        return self

    @property
    def retention_ms(self) -> int:
        if self.retention == "forever":
            return -1
        m = DURATION.match(self.retention)
        assert m is not None
        return int(m.group(1)) * _UNIT_MS[m.group(2)]

    @property
    def dlq_name(self) -> str:
        return self.name + DLQ_SUFFIX

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(e.type for e in self.events)

    def kafka_config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}


class Registry(BaseModel):
    model_config = ConfigDict(frozen=True)

    topics: dict[str, TopicSpec]

    def topic(self, name: str) -> TopicSpec:
        try:
            return self.topics[name]
        except KeyError:
            raise RegistryError(f"topic {name!r} is not in the registry") from None

    def topic_for_type(self, event_type: str) -> TopicSpec:
        for spec in self.topics.values():
            if event_type in spec.event_types:
                return spec
        raise RegistryError(f"event type {event_type!r} is not in the registry")

    def event_types(self) -> Iterator[tuple[TopicSpec, EventTypeSpec]]:
        for spec in self.topics.values():
            for ev in spec.events:
                yield spec, ev

    def consumed_by(self, service: str) -> list[TopicSpec]:
        return [t for t in self.topics.values() if service in t.consumers]

    def produced_by(self, service: str) -> list[TopicSpec]:
        return [t for t in self.topics.values() if service in t.producers]


def physical_name(prefix: str, logical: str) -> str:
    """Physical topic name = configurable prefix + logical name (e.g. `staging.` + name)."""
    return f"{prefix}{logical}"


def default_registry_dir() -> Path:
    """Where the YAML files live: env override, the repo checkout, or the packaged copy."""
    env = os.environ.get("CHORUS_REGISTRY_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "schemas" / "topics"
        if candidate.is_dir():
            return candidate
    packaged = here.parent / "topics"
    if packaged.is_dir():
        return packaged
    raise RegistryError("topic registry not found: set CHORUS_REGISTRY_DIR")


def load_registry(directory: Path | str | None = None) -> Registry:
    return _load(str(Path(directory) if directory else default_registry_dir()))


@lru_cache(maxsize=8)
def _load(directory: str) -> Registry:
    topics: dict[str, TopicSpec] = {}
    seen_types: dict[str, str] = {}
    files = sorted(Path(directory).glob("*.yaml"))
    if not files:
        raise RegistryError(f"no topic files in {directory}")
    for path in files:
        try:
            raw = yaml.safe_load(path.read_text())
            spec = TopicSpec.model_validate(raw)
        except (yaml.YAMLError, ValidationError) as exc:
            raise RegistryError(f"{path.name}: {exc}") from None
        if path.stem != spec.name:
            raise RegistryError(f"{path.name}: file name must be the topic name {spec.name!r}")
        for ev in spec.events:
            if ev.type in seen_types:
                raise RegistryError(
                    f"{path.name}: {ev.type} is already declared by {seen_types[ev.type]}"
                )
            seen_types[ev.type] = spec.name
        topics[spec.name] = spec
    return Registry(topics=topics)
