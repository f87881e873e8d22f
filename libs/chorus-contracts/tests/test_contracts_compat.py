"""Compatibility rules: committed schemas vs models, every rule on synthetic pairs, and the
real pipeline (a modified pydantic model through the exporter) catching a break."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import Field, create_model

from chorus_contracts.catalog import EventData
from chorus_contracts.compat import (
    Direction,
    Incompatibility,
    check,
    check_backward,
    check_event_schemas,
    check_forward,
)
from chorus_contracts.events.identity import WorkspaceCreated
from chorus_contracts.registry import Compatibility, load_registry
from chorus_contracts.schema_export import (
    default_schemas_dir,
    event_schemas,
    load_committed_schemas,
    model_schema,
)

pytestmark = pytest.mark.unit

Mutation = Callable[[dict[str, Any]], None]

BASE: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Thing",
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string", "maxLength": 50, "minLength": 1},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "label": {"type": ["string", "null"], "default": None},
        "score": {"type": "number", "minimum": 0, "maximum": 100},
        "attempt": {"type": "integer", "minimum": 1},
        "status": {"$ref": "#/$defs/Status"},
        "tags": {"type": "array", "items": {"type": "string"}, "default": []},
        "meta": {"type": "object", "additionalProperties": {"type": "string"}},
        "nested": {"$ref": "#/$defs/Nested"},
        "children": {"type": "array", "items": {"$ref": "#/$defs/Nested"}, "default": []},
        "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
    },
    "required": ["id", "name", "status", "nested"],
    "$defs": {
        "Status": {"type": "string", "enum": ["draft", "scheduled", "published"]},
        "Nested": {
            "type": "object",
            "properties": {
                "x": {"type": "integer"},
                "y": {"type": "string", "default": ""},
            },
            "required": ["x"],
        },
    },
}


def _mutated(mutation: Mutation) -> dict[str, Any]:
    new = copy.deepcopy(BASE)
    mutation(new)
    return new


def _props(s: dict[str, Any]) -> dict[str, Any]:
    return s["properties"]


def _add_required(s: dict[str, Any]) -> None:
    _props(s)["region"] = {"type": "string"}
    s["required"].append("region")


def _make_required(s: dict[str, Any]) -> None:
    s["required"].append("score")


def _remove_optional(s: dict[str, Any]) -> None:
    del _props(s)["note"]


def _remove_required(s: dict[str, Any]) -> None:
    del _props(s)["name"]
    s["required"].remove("name")


# --- backward: (mutation, expected path, expected rule) ---------------------------------

BACKWARD_BREAKS: dict[str, tuple[Mutation, str, str]] = {
    "property removed": (_remove_optional, "$.note", "property-removed"),
    "required property removed": (_remove_required, "$.name", "property-removed"),
    "new required property": (_add_required, "$.region", "required-added"),
    "optional became required": (_make_required, "$.score", "required-added"),
    "anyOf nullable narrowed": (
        lambda s: _props(s).__setitem__("note", {"type": "string"}),
        "$.note",
        "type",
    ),
    "type list narrowed": (
        lambda s: _props(s)["label"].__setitem__("type", "string"),
        "$.label",
        "type",
    ),
    "number to integer": (
        lambda s: _props(s)["score"].__setitem__("type", "integer"),
        "$.score",
        "type",
    ),
    "string to integer": (
        lambda s: _props(s)["id"].update(type="integer", format=None),
        "$.id",
        "type",
    ),
    "enum lost a value": (
        lambda s: s["$defs"]["Status"]["enum"].remove("draft"),
        "$.status",
        "enum",
    ),
    "enum added": (
        lambda s: _props(s)["name"].__setitem__("enum", ["a", "b"]),
        "$.name",
        "enum",
    ),
    "const added": (
        lambda s: _props(s)["name"].__setitem__("const", "fixed"),
        "$.name",
        "enum",
    ),
    "format added": (
        lambda s: _props(s)["name"].__setitem__("format", "email"),
        "$.name",
        "format",
    ),
    "format changed": (
        lambda s: _props(s)["id"].__setitem__("format", "uri"),
        "$.id",
        "format",
    ),
    "pattern added": (
        lambda s: _props(s)["name"].__setitem__("pattern", "^[a-z]+$"),
        "$.name",
        "pattern",
    ),
    "additionalProperties tightened to false": (
        lambda s: s.__setitem__("additionalProperties", False),
        "$.*",
        "additional-properties",
    ),
    "additionalProperties value narrowed": (
        lambda s: _props(s)["meta"].__setitem__("additionalProperties", {"type": "integer"}),
        "$.meta.*",
        "type",
    ),
    "maxLength lowered": (
        lambda s: _props(s)["name"].__setitem__("maxLength", 20),
        "$.name",
        "bounds",
    ),
    "minLength raised": (
        lambda s: _props(s)["name"].__setitem__("minLength", 3),
        "$.name",
        "bounds",
    ),
    "maximum lowered": (
        lambda s: _props(s)["score"].__setitem__("maximum", 10),
        "$.score",
        "bounds",
    ),
    "maximum made exclusive": (
        lambda s: _props(s)["score"].update(maximum=None, exclusiveMaximum=100),
        "$.score",
        "bounds",
    ),
    "minimum raised": (
        lambda s: _props(s)["attempt"].__setitem__("minimum", 2),
        "$.attempt",
        "bounds",
    ),
    "maxItems added": (
        lambda s: _props(s)["tags"].__setitem__("maxItems", 5),
        "$.tags",
        "bounds",
    ),
    "array items narrowed": (
        lambda s: _props(s)["tags"]["items"].__setitem__("type", "integer"),
        "$.tags[*]",
        "type",
    ),
    "property removed inside $defs": (
        lambda s: s["$defs"]["Nested"]["properties"].pop("y"),
        "$.nested.y",
        "property-removed",
    ),
    "required added inside $defs, seen through array items": (
        lambda s: s["$defs"]["Nested"]["required"].append("y"),
        "$.children[*].y",
        "required-added",
    ),
    "oneOf lost a branch": (
        lambda s: _props(s)["either"].__setitem__("oneOf", [{"type": "string"}]),
        "$.either",
        "type",
    ),
}


def _drop_nones(schema: Any) -> Any:
    """Mutations set keywords to None to delete them."""
    if isinstance(schema, dict):
        return {k: _drop_nones(v) for k, v in schema.items() if v is not None}
    if isinstance(schema, list):
        return [_drop_nones(v) for v in schema]
    return schema


@pytest.mark.parametrize("case", sorted(BACKWARD_BREAKS))
def test_backward_break_is_detected(case: str) -> None:
    mutation, path, rule = BACKWARD_BREAKS[case]
    new = _drop_nones(_mutated(mutation))
    found = check_backward(BASE, new)
    assert any(i.path == path and i.rule == rule for i in found), found
    assert all(i.direction is Direction.BACKWARD for i in found)
    assert check(Compatibility.BACKWARD, BASE, new)
    assert check(Compatibility.FULL, BASE, new)
    assert check(Compatibility.NONE, BASE, new) == []


BACKWARD_SAFE: dict[str, Mutation] = {
    "new optional property": lambda s: _props(s).__setitem__("extra", {"type": "string"}),
    "required became optional": lambda s: s["required"].remove("name"),
    "string widened to nullable": lambda s: _props(s)["id"].__setitem__("type", ["string", "null"]),
    "integer widened to number": lambda s: _props(s)["attempt"].__setitem__("type", "number"),
    "enum gained a value": lambda s: s["$defs"]["Status"]["enum"].append("archived"),
    "format removed": lambda s: _props(s)["id"].pop("format"),
    "maxLength raised": lambda s: _props(s)["name"].__setitem__("maxLength", 80),
    "minimum lowered": lambda s: _props(s)["attempt"].__setitem__("minimum", 0),
    "annotations changed": lambda s: _props(s)["name"].update(
        title="Name", description="display name", default="x", examples=["Acme"]
    ),
    "ref inlined": lambda s: _props(s).__setitem__("status", copy.deepcopy(s["$defs"]["Status"])),
    "oneOf gained a branch": lambda s: _props(s)["either"]["oneOf"].append({"type": "null"}),
}


@pytest.mark.parametrize("case", sorted(BACKWARD_SAFE))
def test_backward_safe_change_passes(case: str) -> None:
    new = _mutated(BACKWARD_SAFE[case])
    assert check_backward(BASE, new) == []


FORWARD_BREAKS: dict[str, tuple[Mutation, str, str]] = {
    "required property removed": (_remove_required, "$.name", "required-removed"),
    "required became optional": (
        lambda s: s["required"].remove("name"),
        "$.name",
        "required-removed",
    ),
    "type widened to nullable": (
        lambda s: _props(s)["id"].__setitem__("type", ["string", "null"]),
        "$.id",
        "type",
    ),
    "integer widened to number": (
        lambda s: _props(s)["attempt"].__setitem__("type", "number"),
        "$.attempt",
        "type",
    ),
    "enum gained a value": (
        lambda s: s["$defs"]["Status"]["enum"].append("archived"),
        "$.status",
        "enum",
    ),
    "format removed": (lambda s: _props(s)["id"].pop("format"), "$.id", "format"),
    "maxLength raised": (
        lambda s: _props(s)["name"].__setitem__("maxLength", 80),
        "$.name",
        "bounds",
    ),
    "nested required removed": (
        lambda s: s["$defs"]["Nested"]["required"].remove("x"),
        "$.nested.x",
        "required-removed",
    ),
}


@pytest.mark.parametrize("case", sorted(FORWARD_BREAKS))
def test_forward_break_is_detected(case: str) -> None:
    mutation, path, rule = FORWARD_BREAKS[case]
    new = _mutated(mutation)
    found = check_forward(BASE, new)
    assert any(i.path == path and i.rule == rule for i in found), found
    assert all(i.direction is Direction.FORWARD for i in found)


def test_forward_allows_new_optional_fields_and_dropping_optional_ones() -> None:
    """Old readers ignore unknown fields (EventData extra="ignore") and default missing ones."""
    added = _mutated(lambda s: _props(s).__setitem__("extra", {"type": "string"}))
    assert check_forward(BASE, added) == []
    assert check_forward(BASE, _mutated(_remove_optional)) == []
    # ...and a new *required* field is new data old readers simply ignore.
    assert check_forward(BASE, _mutated(_add_required)) == []


def test_forward_rejects_new_property_when_old_reader_is_closed() -> None:
    closed = {**BASE, "additionalProperties": False}
    new = {**closed, "properties": {**BASE["properties"], "extra": {"type": "string"}}}
    found = check_forward(closed, new)
    assert [i.rule for i in found] == ["additional-properties"]


def test_full_catches_forward_breaks_that_backward_allows() -> None:
    new = _mutated(lambda s: s["$defs"]["Status"]["enum"].append("archived"))
    assert check(Compatibility.BACKWARD, BASE, new) == []
    found = check(Compatibility.FULL, BASE, new)
    assert [(i.direction, i.rule) for i in found] == [(Direction.FORWARD, "enum")]
    assert check("FORWARD", BASE, new) == found  # modes are accepted as registry strings


def test_full_reports_both_directions() -> None:
    new = _mutated(_remove_required)
    directions = {i.direction for i in check(Compatibility.FULL, BASE, new)}
    assert directions == {Direction.BACKWARD, Direction.FORWARD}


def test_none_allows_everything() -> None:
    wrecked = {"type": "array", "items": {"type": "boolean"}}
    assert check(Compatibility.NONE, BASE, wrecked) == []
    assert check(Compatibility.BACKWARD, BASE, wrecked)


def test_identical_schemas_are_compatible_both_ways() -> None:
    assert check(Compatibility.FULL, BASE, copy.deepcopy(BASE)) == []


def test_recursive_schemas_terminate() -> None:
    tree = {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
                "required": ["name"],
            }
        },
    }
    assert check(Compatibility.FULL, tree, copy.deepcopy(tree)) == []
    narrowed = copy.deepcopy(tree)
    narrowed["$defs"]["Node"]["properties"]["name"]["maxLength"] = 10
    found = check_backward(tree, narrowed)
    assert [i.path for i in found] == ["$.name"]


def test_incompatibility_renders_type_path_and_reason() -> None:
    issue = Incompatibility(
        path="$.name",
        reason="property 'name' removed",
        rule="property-removed",
        direction=Direction.BACKWARD,
        event_type="chorus.x.y.z.v1",
    )
    assert str(issue) == (
        "chorus.x.y.z.v1: $.name: property 'name' removed [backward, property-removed]"
    )


# --- the real pipeline -------------------------------------------------------------------


def test_committed_schemas_are_compatible_with_current_models() -> None:
    registry = load_registry()
    committed = load_committed_schemas(default_schemas_dir() / "events")
    modes = {ev.type: ev.compatibility for _, ev in registry.event_types()}
    assert check_event_schemas(committed, event_schemas(registry), modes) == []


def test_every_current_schema_is_fully_compatible_with_itself() -> None:
    for ce_type, schema in event_schemas().items():
        assert check(Compatibility.FULL, schema, schema) == [], ce_type


def test_removed_event_type_is_reported() -> None:
    schemas = event_schemas()
    gone = "chorus.identity.workspace.deleted.v1"
    current = {t: s for t, s in schemas.items() if t != gone}
    found = check_event_schemas(schemas, current, {})
    assert [(i.event_type, i.rule) for i in found] == [(gone, "type-removed")]


def _committed(ce_type: str) -> dict[str, Any]:
    return load_committed_schemas(default_schemas_dir() / "events")[ce_type]


def _export(model: type[EventData], ce_type: str) -> dict[str, Any]:
    topic = load_registry().topic_for_type(ce_type).name
    return model_schema(model, ce_type, topic=topic)


WS_CREATED = "chorus.identity.workspace.created.v1"


def test_model_with_new_required_field_fails_the_check() -> None:
    """A developer adds a required field to a v1 model: old events lack it → must fail."""
    changed = create_model("WorkspaceCreated", __base__=WorkspaceCreated, region=(str, ...))
    found = check(Compatibility.BACKWARD, _committed(WS_CREATED), _export(changed, WS_CREATED))
    assert [(i.path, i.rule) for i in found] == [("$.region", "required-added")]


def test_model_with_new_optional_field_passes_even_full() -> None:
    changed = create_model("WorkspaceCreated", __base__=WorkspaceCreated, region=(str | None, None))
    assert check(Compatibility.FULL, _committed(WS_CREATED), _export(changed, WS_CREATED)) == []


def test_model_with_field_removed_fails_the_check() -> None:
    fields = {
        name: (info.annotation, info)
        for name, info in WorkspaceCreated.model_fields.items()
        if name != "slug"
    }
    changed = create_model("WorkspaceCreated", __base__=EventData, **fields)  # type: ignore[call-overload]
    found = check(Compatibility.FULL, _committed(WS_CREATED), _export(changed, WS_CREATED))
    assert {(i.path, i.rule) for i in found} == {
        ("$.slug", "property-removed"),
        ("$.slug", "required-removed"),
    }


def test_model_with_enum_relaxed_to_string_is_a_forward_break() -> None:
    changed = create_model("WorkspaceCreated", __base__=WorkspaceCreated, plan=(str, ...))
    old, new = _committed(WS_CREATED), _export(changed, WS_CREATED)
    assert check(Compatibility.BACKWARD, old, new) == []
    assert [(i.path, i.rule) for i in check(Compatibility.FULL, old, new)] == [("$.plan", "enum")]


def test_model_with_tightened_constraint_fails_the_check() -> None:
    changed = create_model(
        "WorkspaceCreated",
        __base__=WorkspaceCreated,
        name=(str, Field(max_length=40)),
    )
    found = check(Compatibility.BACKWARD, _committed(WS_CREATED), _export(changed, WS_CREATED))
    assert [(i.path, i.rule) for i in found] == [("$.name", "bounds")]
