"""Topic registry: the committed files load, agree with the catalog, and bad files fail."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chorus_contracts.catalog import catalog
from chorus_contracts.registry import (
    Compatibility,
    RegistryError,
    load_registry,
    physical_name,
)
from chorus_contracts.schema_export import check_catalog_matches_registry, event_schemas

pytestmark = pytest.mark.unit


def _topic(name: str = "billing.invoices", **overrides: object) -> dict:
    doc: dict[str, object] = {
        "name": name,
        "owner": "billing",
        "description": "Invoices. Key = invoice id.",
        "producers": ["billing"],
        "consumers": ["analytics"],
        "key": "invoiceId",
        "partitions": 4,
        "retention": "30d",
        "cleanup_policy": "delete",
        "events": [{"type": f"chorus.{name.partition('.')[0]}.invoice.issued.v1"}],
    }
    doc.update(overrides)
    return doc


def _write(directory: Path, doc: dict | str, filename: str | None = None) -> Path:
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    name = filename or f"{doc['name']}.yaml"  # type: ignore[index]
    path = directory / name
    path.write_text(text)
    return path


def test_committed_registry_loads() -> None:
    registry = load_registry()
    assert "publishing.posts" in registry.topics
    posts = registry.topic("publishing.posts")
    assert posts.owner in posts.producers
    assert posts.dlq_name == "publishing.posts.dlq"
    assert posts.kafka_config()["retention.ms"] == str(365 * 86_400_000)
    assert registry.topic("identity.workspaces").retention_ms == -1
    assert physical_name("staging.", "publishing.posts") == "staging.publishing.posts"


def test_every_registry_type_has_a_model_and_every_model_a_topic() -> None:
    registry = load_registry()
    declared = {ev.type for _, ev in registry.event_types()}
    models = set(catalog())
    assert declared - models == set(), "registered types without a model"
    assert models - declared == set(), "models without a topic"
    check_catalog_matches_registry(registry)


def test_model_event_type_matches_its_catalog_key() -> None:
    for ce_type, model in catalog().items():
        assert model.event_type == ce_type


def test_every_topic_key_is_a_field_of_every_event_on_it() -> None:
    """Key = aggregate id taken from the data: every event type on the topic must carry it."""
    registry = load_registry()
    schemas = event_schemas(registry)
    for topic in registry.topics.values():
        for ce_type in topic.event_types:
            assert topic.key in schemas[ce_type]["properties"], (topic.name, ce_type)


def test_lookups() -> None:
    registry = load_registry()
    assert registry.topic_for_type("chorus.connector.delivery.failed.v1").name == (
        "connector.deliveries"
    )
    assert "connector.commands" in {t.name for t in registry.consumed_by("connector")}
    assert "connector.commands" in {t.name for t in registry.produced_by("publishing")}
    with pytest.raises(RegistryError):
        registry.topic("nope.nothing")
    with pytest.raises(RegistryError):
        registry.topic_for_type("chorus.nope.thing.happened.v1")


def test_minimal_valid_registry(tmp_path: Path) -> None:
    _write(tmp_path, _topic())
    registry = load_registry(tmp_path)
    spec = registry.topic("billing.invoices")
    assert spec.replication_factor == 3
    assert spec.events[0].compatibility is Compatibility.BACKWARD


def test_malformed_yaml(tmp_path: Path) -> None:
    _write(tmp_path, "name: billing.invoices\nproducers: [billing\n", "billing.invoices.yaml")
    with pytest.raises(RegistryError, match=r"billing\.invoices\.yaml"):
        load_registry(tmp_path)


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    _write(tmp_path, "- just\n- a list\n", "billing.invoices.yaml")
    with pytest.raises(RegistryError):
        load_registry(tmp_path)


@pytest.mark.parametrize(
    "bad_name", ["Billing.Invoices", "billing", "billing.invoices.v1", "a.b.c"]
)
def test_bad_topic_name(tmp_path: Path, bad_name: str) -> None:
    _write(tmp_path, _topic(bad_name), f"{bad_name}.yaml")
    with pytest.raises(RegistryError, match="topic name"):
        load_registry(tmp_path)


def test_file_name_must_be_topic_name(tmp_path: Path) -> None:
    _write(tmp_path, _topic(), "billing.bills.yaml")
    with pytest.raises(RegistryError, match="file name"):
        load_registry(tmp_path)


def test_duplicate_event_type_across_topics(tmp_path: Path) -> None:
    _write(tmp_path, _topic())
    _write(
        tmp_path,
        _topic("billing.archive", events=[{"type": "chorus.billing.invoice.issued.v1"}]),
    )
    with pytest.raises(RegistryError, match="already declared"):
        load_registry(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("owner", "someone-else", "owner"),
        ("events", [], "at least one event"),
        ("retention", "a week", "retention"),
        ("partitions", 0, "partitions"),
        ("cleanup_policy", "keep", "cleanup_policy"),
        ("events", [{"type": "billing.invoice.issued"}], "event type"),
        (
            "events",
            [{"type": "chorus.billing.invoice.issued.v1", "compatibility": "SOME"}],
            "compatibility",
        ),
        ("colour", "blue", "colour"),  # unknown keys are typos, not extensions
    ],
)
def test_invalid_topic_fields(tmp_path: Path, field: str, value: object, match: str) -> None:
    _write(tmp_path, _topic(**{field: value}))
    with pytest.raises(RegistryError, match=match):
        load_registry(tmp_path)


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="no topic files"):
        load_registry(tmp_path)


def test_catalog_mismatch_is_reported(tmp_path: Path) -> None:
    _write(tmp_path, _topic())
    with pytest.raises(RegistryError, match="registered type has no model") as exc:
        check_catalog_matches_registry(load_registry(tmp_path))
    assert "model has no topic" in str(exc.value)
