"""JSON Schema export of every event type's data (design.md §3).

One file per `ce_type` in `schemas/events/<ce_type>.json`. The schema is the pydantic
*validation* schema with camelCase aliases: it describes what a consumer accepts on the wire
(fields with defaults are optional), which is what compatibility is judged against.

Rendering is deterministic (sorted keys, 2-space indent, trailing newline) so the committed
files can be compared byte for byte with the models: that comparison is the drift test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from chorus_contracts.catalog import EventData, catalog
from chorus_contracts.registry import Registry, RegistryError, default_registry_dir, load_registry

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_BASE_URL = "https://chorus.dev/schemas/events/"
EVENTS_DIRNAME = "events"


class _ChorusJsonSchema(GenerateJsonSchema):
    """Pydantic's 2020-12 generator without auto field titles.

    Auto titles are derived from the alias ("workspaceId" → "Workspaceid"): noise in the
    files and in diffs. Explicit `Field(title=...)` titles are kept.
    """

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def default_schemas_dir() -> Path:
    """The `schemas/` directory of the checkout (the registry's parent)."""
    return default_registry_dir().parent


def schema_filename(ce_type: str) -> str:
    return f"{ce_type}.json"


def schema_id(ce_type: str) -> str:
    return SCHEMA_BASE_URL + schema_filename(ce_type)


def model_schema(
    model: type[EventData], ce_type: str, *, topic: str, description: str = ""
) -> dict:
    """The exported JSON Schema of `model` as event type `ce_type` on `topic`.

    Takes the model explicitly (not from the catalog) so tests can export a modified copy
    of a model and run it through the same compatibility check as the real one.
    """
    body = model.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_ChorusJsonSchema
    )
    doc: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "$id": schema_id(ce_type),
        "title": model.__name__,
        **{k: v for k, v in body.items() if k != "title"},
        "x-topic": topic,
    }
    if "description" not in doc:
        doc["description"] = description or f"Data of `{ce_type}` events on `{topic}`."
    return doc


def event_schema(ce_type: str, registry: Registry | None = None) -> dict:
    """The exported schema of a registered event type (model from the catalog)."""
    reg = registry or load_registry()
    models = catalog()
    if ce_type not in models:
        raise RegistryError(f"{ce_type} is in the registry but has no model in the catalog")
    topic = reg.topic_for_type(ce_type)
    spec = next(e for e in topic.events if e.type == ce_type)
    return model_schema(models[ce_type], ce_type, topic=topic.name, description=spec.description)


def render_schema(schema: dict) -> str:
    """Canonical text of a schema document: the exact bytes committed to the repo."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def check_catalog_matches_registry(registry: Registry) -> None:
    """Every model has a topic and every registered type has a model, or `RegistryError`."""
    models = set(catalog())
    declared = {ev.type for _, ev in registry.event_types()}
    problems = [f"{t}: model has no topic in schemas/topics" for t in sorted(models - declared)]
    problems += [f"{t}: registered type has no model" for t in sorted(declared - models)]
    if problems:
        raise RegistryError("catalog and registry disagree:\n  " + "\n  ".join(problems))


def event_schemas(registry: Registry | None = None) -> dict[str, dict]:
    """`ce_type` → exported schema, for every event type (sorted by type)."""
    reg = registry or load_registry()
    check_catalog_matches_registry(reg)
    return {t: event_schema(t, reg) for t in sorted(catalog())}


def rendered_event_schemas(registry: Registry | None = None) -> dict[str, str]:
    """File name (relative to `schemas/events/`) → text, without writing anything."""
    return {schema_filename(t): render_schema(s) for t, s in event_schemas(registry).items()}


def export_event_schemas(
    events_dir: Path | None = None, registry: Registry | None = None
) -> list[Path]:
    """Write every schema into `events_dir` (default `schemas/events/`); returns the paths."""
    out = events_dir or default_schemas_dir() / EVENTS_DIRNAME
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered_event_schemas(registry).items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def load_committed_schemas(events_dir: Path) -> dict[str, dict]:
    """`ce_type` → schema from a directory of exported files (e.g. a base branch's copy)."""
    return {
        p.name.removesuffix(".json"): json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(events_dir.glob("*.json"))
    }
