"""Examples in schemas/examples: valid against the exported JSON Schema and the model, one
or more per event type, and usable as Kafka messages for consumer tests."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from chorus_contracts.catalog import catalog, parse_data
from chorus_contracts.envelope import decode
from chorus_contracts.examples import (
    ExampleError,
    default_examples_dir,
    example_to_kafka,
    examples_for_topic,
    examples_for_type,
    load_example,
    load_examples,
)
from chorus_contracts.registry import load_registry
from chorus_contracts.schema_export import default_schemas_dir

pytestmark = pytest.mark.unit

EXAMPLES = load_examples()
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _format_checker() -> FormatChecker:
    """jsonschema's checker plus `date-time`, which it only has with an optional extra."""
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True  # formats only constrain strings
        if not RFC3339.match(value):
            return False
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # rejects 2025-13-40
        return True

    return checker


def _validator(ce_type: str) -> Draft202012Validator:
    path = default_schemas_dir() / "events" / f"{ce_type}.json"
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_format_checker())


def _ids(examples: list[tuple[Path, Any]]) -> list[str]:
    return [f"{p.parent.name}/{p.stem}" for p, _ in examples]


def test_every_event_type_has_an_example() -> None:
    covered = {event.type for _, event in EXAMPLES}
    assert set(catalog()) - covered == set()
    assert covered - set(catalog()) == set(), "examples for types without a model"


@pytest.mark.parametrize(("path", "event"), EXAMPLES, ids=_ids(EXAMPLES))
def test_example_validates_against_json_schema(path: Path, event: Any) -> None:
    errors = sorted(_validator(event.type).iter_errors(event.data), key=str)
    assert not errors, [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


@pytest.mark.parametrize(("path", "event"), EXAMPLES, ids=_ids(EXAMPLES))
def test_example_validates_against_model(path: Path, event: Any) -> None:
    data = parse_data(event)
    # The model reads every field the example carries (no typo'd, silently ignored keys).
    assert set(event.data) <= set(data.to_data()), path


@pytest.mark.parametrize(("path", "event"), EXAMPLES, ids=_ids(EXAMPLES))
def test_example_follows_envelope_conventions(path: Path, event: Any) -> None:
    topic = load_registry().topic_for_type(event.type)
    assert event.source in {f"/chorus/{p}" for p in topic.producers}
    if "workspaceId" in event.data:
        assert event.tenantid == event.data["workspaceId"]
    key = event.data.get(topic.key)
    assert event.subject == key  # the outbox's default subject is the key


@pytest.mark.parametrize(("path", "event"), EXAMPLES, ids=_ids(EXAMPLES))
def test_example_as_kafka_message_decodes_back(path: Path, event: Any) -> None:
    message = example_to_kafka(event)
    topic = load_registry().topic_for_type(event.type)
    assert message.topic == topic.name
    key = event.data.get(topic.key)
    assert message.key == (None if key is None else str(key).encode())
    decoded = decode(message.headers, message.value, known_types=catalog())
    assert decoded == event
    parse_data(decoded)


def test_the_format_checker_really_checks_formats() -> None:
    """Guard against a validator that silently ignores `format` (it does by default)."""
    validator = _validator("chorus.identity.workspace.deleted.v1")
    good = {
        "workspaceId": "0195807b-5e28-7c3e-8f5e-3a1b2c3d4e5f",
        "deletedBy": "0195807b-5e28-7c3e-8f5e-3a1b2c3d4e5f",
        "deletedAt": "2025-03-12T08:00:00Z",
    }
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "workspaceId": "ws-1"})
    assert not validator.is_valid({**good, "deletedAt": "2025-03-12 08:00"})
    assert not validator.is_valid({**good, "deletedAt": "2025-13-12T08:00:00Z"})
    assert not validator.is_valid({k: v for k, v in good.items() if k != "deletedBy"})


def test_examples_per_topic_cover_every_topic() -> None:
    registry = load_registry()
    for name, topic in registry.topics.items():
        found = examples_for_topic(name)
        assert {e.type for _, e in found} == set(topic.event_types), name
    assert examples_for_type("chorus.connector.delivery.failed.v1")


def _write(tmp_path: Path, ce_type: str, doc: dict[str, Any]) -> Path:
    path = tmp_path / ce_type / "case.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _doc(**overrides: Any) -> dict[str, Any]:
    path = default_examples_dir() / "chorus.identity.workspace.deleted.v1" / "basic.json"
    doc: dict[str, Any] = json.loads(path.read_text())
    doc.update(overrides)
    return doc


def test_load_example_rejects_malformed_files(tmp_path: Path) -> None:
    ce_type = "chorus.identity.workspace.deleted.v1"
    assert load_example(_write(tmp_path, ce_type, _doc())).type == ce_type
    bad = {
        "typo'd attribute": _doc(tenantId="x"),
        "wrong specversion": _doc(specversion="0.3"),
        "uuid4 id": _doc(id="9b2f6f4e-0c3e-4b8e-9a57-0f2d8d0b1c11"),
        "naive time": _doc(time="2025-03-12T08:00:00"),
        "wrong directory": _doc(type="chorus.identity.member.removed.v1"),
    }
    for case, doc in bad.items():
        with pytest.raises(ExampleError):
            load_example(_write(tmp_path, ce_type, doc))
            pytest.fail(case)
    path = tmp_path / ce_type / "broken.json"
    path.write_text("{")
    with pytest.raises(ExampleError, match="not JSON"):
        load_example(path)
