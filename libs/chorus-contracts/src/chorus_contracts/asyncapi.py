"""AsyncAPI 3.0 document per service, generated from the topic registry (design.md §3).

For every service named as a producer or consumer in `schemas/topics/`: one channel per topic
it touches (Kafka channel binding: partitions, replicas, retention, cleanup policy), a `send`
operation per produced topic and a `receive` operation per consumed one, and one message per
event type. Payloads reference the exported JSON Schemas (`../events/<ce_type>.json`) instead
of copying them, so there is one definition of each payload. The CloudEvents attributes
travel as Kafka headers (binary mode) and are documented as the message `headers` schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from chorus_contracts import envelope
from chorus_contracts.registry import Registry, TopicSpec, load_registry
from chorus_contracts.schema_export import default_schemas_dir, event_schemas, schema_filename

ASYNCAPI_VERSION = "3.0.0"
# Event versions live in each `ce_type`; the document itself does not version separately.
DOC_VERSION = "1.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
# The exported files declare draft 2020-12 but use only keywords draft-07 also has ($defs is
# only a `$ref` target): draft-07 is the JSON Schema format AsyncAPI 3.0 tooling knows.
PAYLOAD_SCHEMA_FORMAT = "application/schema+json;version=draft-07"
ASYNCAPI_DIRNAME = "asyncapi"
HEADERS_SCHEMA = "CloudEventHeaders"
UUID7_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
_ANNOTATIONS = ("title", "description", "default", "examples")

GENERATED_NOTICE = (
    "# Generated from schemas/topics by `python -m chorus_contracts.cli export`. Do not edit.\n"
)


def services(registry: Registry) -> list[str]:
    """Every service that produces or consumes a registered topic."""
    names: set[str] = set()
    for topic in registry.topics.values():
        names.update(topic.producers)
        names.update(topic.consumers)
    return sorted(names)


def cloudevent_headers_schema() -> dict[str, Any]:
    """Kafka headers of a Chorus CloudEvent (binary mode); values are UTF-8 strings."""
    return {
        "type": "object",
        "description": "CloudEvents 1.0 attributes as Kafka headers (binary content mode).",
        "required": [
            envelope.H_SPECVERSION,
            envelope.H_ID,
            envelope.H_TYPE,
            envelope.H_SOURCE,
            envelope.H_TIME,
        ],
        "properties": {
            envelope.H_SPECVERSION: {"type": "string", "const": envelope.SPEC_VERSION},
            envelope.H_ID: {
                "type": "string",
                "format": "uuid",
                "pattern": UUID7_PATTERN,
                "description": "UUIDv7 event id; consumers deduplicate on it.",
            },
            envelope.H_TYPE: {
                "type": "string",
                "pattern": envelope.TYPE_PATTERN.pattern,
                "description": "chorus.<domain>.<entity>.<action>.v<N>",
            },
            envelope.H_SOURCE: {
                "type": "string",
                "description": "The producing service as `/chorus/<service>`.",
            },
            envelope.H_TIME: {"type": "string", "format": "date-time"},
            envelope.H_SUBJECT: {
                "type": "string",
                "description": "The aggregate id the event is about (defaults to the Kafka key).",
            },
            envelope.H_TENANT: {
                "type": "string",
                "description": "CloudEvents extension: the workspace (tenant) id.",
            },
            envelope.H_TRACEPARENT: {
                "type": "string",
                "pattern": envelope.TRACEPARENT_PATTERN.pattern,
                "description": "W3C Trace Context of the request that caused the event.",
            },
            envelope.H_TRACESTATE: {"type": "string"},
            envelope.H_CONTENT_TYPE: {"type": "string", "const": envelope.CONTENT_TYPE},
        },
    }


def _key_schema(topic: TopicSpec, schemas: dict[str, dict]) -> dict[str, Any]:
    """The Kafka key: the topic's key field as it appears in the event data."""
    variants: list[dict[str, Any]] = []
    for ce_type in topic.event_types:
        prop = schemas[ce_type].get("properties", {}).get(topic.key)
        if prop is None:
            continue
        stripped = {k: v for k, v in prop.items() if k not in _ANNOTATIONS}
        if stripped not in variants:
            variants.append(stripped)
    base: dict[str, Any] = variants[0] if len(variants) == 1 else {"anyOf": variants}
    if not variants:
        base = {"type": "string"}
    return {
        **base,
        "description": (
            f"`{topic.key}` of the event data (the aggregate id) as UTF-8: "
            "one entity's events share a partition and stay ordered."
        ),
    }


def _message(ce_type: str, topic: TopicSpec, schemas: dict[str, dict]) -> dict[str, Any]:
    schema = schemas[ce_type]
    spec = next(e for e in topic.events if e.type == ce_type)
    message: dict[str, Any] = {
        "name": ce_type,
        "title": schema.get("title", ce_type),
        "summary": spec.description or schema.get("description", ""),
        "contentType": envelope.CONTENT_TYPE,
        "headers": {
            "allOf": [
                {"$ref": f"#/components/schemas/{HEADERS_SCHEMA}"},
                {
                    "type": "object",
                    "properties": {
                        envelope.H_TYPE: {"const": ce_type},
                        envelope.H_SOURCE: {"examples": [f"/chorus/{p}" for p in topic.producers]},
                    },
                },
            ]
        },
        "payload": {
            "schemaFormat": PAYLOAD_SCHEMA_FORMAT,
            "schema": {"$ref": f"../events/{schema_filename(ce_type)}"},
        },
        "bindings": {
            "kafka": {
                "key": _key_schema(topic, schemas),
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
        "x-compatibility": str(spec.compatibility),
    }
    return message


def _channel(topic: TopicSpec) -> dict[str, Any]:
    description = (
        f"{topic.description}\n\nOwner: {topic.owner}. Producers: {', '.join(topic.producers)}."
        f" Consumers: {', '.join(topic.consumers) or 'none'}. Physical topic name ="
        f" CHORUS_TOPIC_PREFIX + `{topic.name}`; dead letters go to `{topic.dlq_name}`."
    )
    return {
        "address": topic.name,
        "title": topic.name,
        "description": description.strip(),
        "messages": {t: {"$ref": f"#/components/messages/{t}"} for t in topic.event_types},
        "bindings": {
            "kafka": {
                "topic": topic.name,
                "partitions": topic.partitions,
                "replicas": topic.replication_factor,
                "topicConfiguration": {
                    "cleanup.policy": topic.cleanup_policy.split(","),
                    "retention.ms": topic.retention_ms,
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _operation(action: str, service: str, topic: TopicSpec) -> dict[str, Any]:
    verb = "produces" if action == "send" else "consumes"
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{topic.name}"},
        "summary": f"{service} {verb} `{topic.name}`.",
        "messages": [{"$ref": f"#/channels/{topic.name}/messages/{t}"} for t in topic.event_types],
    }


def service_document(service: str, registry: Registry, schemas: dict[str, dict]) -> dict[str, Any]:
    """The AsyncAPI document of one service (plain data, ready to dump)."""
    produced = {t.name for t in registry.produced_by(service)}
    consumed = {t.name for t in registry.consumed_by(service)}
    topics = [registry.topics[name] for name in sorted(produced | consumed)]
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in topics:
        channels[topic.name] = _channel(topic)
        for ce_type in topic.event_types:
            messages[ce_type] = _message(ce_type, topic, schemas)
        if topic.name in produced:
            operations[f"send.{topic.name}"] = _operation("send", service, topic)
        if topic.name in consumed:
            operations[f"receive.{topic.name}"] = _operation("receive", service, topic)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": f"Chorus {service} events",
            "version": DOC_VERSION,
            "description": (
                f"Topics the `{service}` service produces and consumes. Every message is a"
                " CloudEvents 1.0 event in Kafka binary mode: attributes in `ce_*` headers,"
                " the JSON data as the value (camelCase fields)."
            ),
        },
        "defaultContentType": envelope.CONTENT_TYPE,
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The Chorus Kafka cluster.",
                "variables": {
                    "bootstrap": {
                        "default": "127.0.0.1:9092",
                        "description": "CHORUS_KAFKA_BOOTSTRAP_SERVERS",
                    }
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {HEADERS_SCHEMA: cloudevent_headers_schema()},
            "messages": messages,
        },
    }


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings as literal blocks (readable descriptions)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def render_document(doc: dict[str, Any]) -> str:
    """Deterministic YAML: insertion order is already sorted by construction."""
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return GENERATED_NOTICE + body


def asyncapi_filename(service: str) -> str:
    return f"{service}.yaml"


def rendered_asyncapi(
    registry: Registry | None = None, schemas: dict[str, dict] | None = None
) -> dict[str, str]:
    """File name (relative to `schemas/asyncapi/`) → text, without writing anything."""
    reg = registry or load_registry()
    all_schemas = schemas if schemas is not None else event_schemas(reg)
    return {
        asyncapi_filename(s): render_document(service_document(s, reg, all_schemas))
        for s in services(reg)
    }


def export_asyncapi(out_dir: Path | None = None, registry: Registry | None = None) -> list[Path]:
    out = out_dir or default_schemas_dir() / ASYNCAPI_DIRNAME
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered_asyncapi(registry).items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
