"""Everything generated under `schemas/`: event JSON Schemas and AsyncAPI documents.

One function computes the expected files in memory; writing and the drift check both use
it, so `export --check` and the drift test can never disagree with `export`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from chorus_contracts.asyncapi import ASYNCAPI_DIRNAME, rendered_asyncapi
from chorus_contracts.registry import Registry, load_registry
from chorus_contracts.schema_export import (
    EVENTS_DIRNAME,
    event_schemas,
    render_schema,
    schema_filename,
)

# Generated directories and the file pattern each owns (other files there are left alone).
GENERATED_GLOBS = {EVENTS_DIRNAME: "*.json", ASYNCAPI_DIRNAME: "*.yaml"}


@dataclass
class Drift:
    """How the files on disk differ from what the models and registry generate."""

    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra)

    def lines(self) -> list[str]:
        return (
            [f"drifted: {p}" for p in self.changed]
            + [f"missing: {p}" for p in self.missing]
            + [f"extra:   {p}" for p in self.extra]
        )


def generated_files(registry: Registry | None = None) -> dict[str, str]:
    """Relative path under `schemas/` (posix) → expected text, sorted by path."""
    reg = registry or load_registry()
    schemas = event_schemas(reg)
    files = {f"{EVENTS_DIRNAME}/{schema_filename(t)}": render_schema(s) for t, s in schemas.items()}
    files.update(
        {f"{ASYNCAPI_DIRNAME}/{n}": text for n, text in rendered_asyncapi(reg, schemas).items()}
    )
    return dict(sorted(files.items()))


def _existing(schemas_dir: Path) -> set[str]:
    found: set[str] = set()
    for sub, pattern in GENERATED_GLOBS.items():
        found.update(
            p.relative_to(schemas_dir).as_posix() for p in (schemas_dir / sub).glob(pattern)
        )
    return found


def check_generated(schemas_dir: Path, registry: Registry | None = None) -> Drift:
    expected = generated_files(registry)
    existing = _existing(schemas_dir)
    drift = Drift()
    for rel, text in expected.items():
        path = schemas_dir / rel
        if rel not in existing:
            drift.missing.append(rel)
        elif path.read_text(encoding="utf-8") != text:
            drift.changed.append(rel)
    drift.extra = sorted(existing - expected.keys())
    return drift


def write_generated(schemas_dir: Path, registry: Registry | None = None) -> Drift:
    """Bring the generated directories up to date; returns what had to change.

    Stale files (an event type or service that no longer exists) are deleted so the
    directories always mirror the models exactly.
    """
    drift = check_generated(schemas_dir, registry)
    for rel, text in generated_files(registry).items():
        path = schemas_dir / rel
        if rel in drift.changed or rel in drift.missing:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for rel in drift.extra:
        (schemas_dir / rel).unlink()
    return drift
