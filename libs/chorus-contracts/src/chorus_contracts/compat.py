"""Schema compatibility rules for event contracts (design.md §3).

Both directions reduce to one question, "does the *reader* schema accept everything the
*writer* schema allows?":

* BACKWARD — new consumers read old events: reader = new schema, writer = old schema.
  On top of that, removing a property is reported: consumers and the analytics store rely
  on every field, so a field disappears only through a new event version.
* FORWARD — old consumers read new events: reader = old schema, writer = new schema.
  A new optional property is fine (`EventData` ignores unknown fields); removing a
  required property or widening a type is not.
* FULL = both; NONE = no check.

The check is structural over the subset of JSON Schema that pydantic emits (type, enum,
const, format, pattern, bounds, properties/required/additionalProperties, items, local
`$ref`, anyOf/oneOf, type lists) and errs on the side of reporting. Annotations (title,
description, default, examples) never matter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from chorus_contracts.registry import Compatibility

Schema = Any  # a JSON Schema node: dict or bool


class Direction(StrEnum):
    BACKWARD = "backward"
    FORWARD = "forward"


@dataclass(frozen=True)
class Incompatibility:
    """One breaking difference: where (a JSONPath into the event data) and why."""

    path: str
    reason: str
    rule: str
    direction: Direction
    event_type: str = ""

    def __str__(self) -> str:
        prefix = f"{self.event_type}: " if self.event_type else ""
        return f"{prefix}{self.path}: {self.reason} [{self.direction}, {self.rule}]"


# Keywords that only annotate: never a compatibility concern.
_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$comment",
        "$schema",
        "$id",
        "$defs",
        "definitions",
    }
)
_UPPER_SIZE = ("maxLength", "maxItems", "maxProperties")
_LOWER_SIZE = ("minLength", "minItems", "minProperties")
_MAX_REF_DEPTH = 64


@dataclass
class _Branch:
    """A resolved, union-free schema node plus the `$ref` it came through (cycle guard)."""

    node: dict[str, Any]
    ref: str | None = None
    never: bool = False  # the `false` schema: accepts nothing


@dataclass
class _Checker:
    reader_doc: Mapping[str, Any]
    writer_doc: Mapping[str, Any]
    direction: Direction
    _active: set[tuple[str, str]] = field(default_factory=set)

    # --- entry -----------------------------------------------------------------------

    def run(self) -> list[Incompatibility]:
        return self.accepts(self.reader_doc, self.writer_doc, "$")

    # --- helpers ---------------------------------------------------------------------

    def issue(self, path: str, rule: str, reason: str) -> Incompatibility:
        return Incompatibility(path=path, reason=reason, rule=rule, direction=self.direction)

    def old_new(self, reader_value: Any, writer_value: Any) -> tuple[Any, Any]:
        """Order a (reader, writer) pair as (old, new) for messages."""
        if self.direction is Direction.BACKWARD:
            return writer_value, reader_value
        return reader_value, writer_value

    def expand(self, node: Schema, doc: Mapping[str, Any]) -> list[_Branch]:
        """Resolve refs and flatten anyOf/oneOf/type lists into union-free branches."""
        if node is True:
            return [_Branch({})]
        if node is False:
            return [_Branch({}, never=True)]
        node, ref = _resolve(node, doc)
        union_key = "anyOf" if "anyOf" in node else "oneOf" if "oneOf" in node else None
        if union_key is not None:
            # Sibling constraints of a union apply to every branch.
            rest = {k: v for k, v in node.items() if k not in {"anyOf", "oneOf"}}
            branches: list[_Branch] = []
            for sub in node[union_key]:
                for b in self.expand(sub, doc):
                    branches.append(
                        _Branch({**_constraints(rest), **b.node}, b.ref or ref, b.never)
                    )
            return branches
        types = node.get("type")
        if isinstance(types, list):
            return [_Branch({**node, "type": t}, ref) for t in types]
        return [_Branch(node, ref)]

    # --- core ------------------------------------------------------------------------

    def accepts(self, reader: Schema, writer: Schema, path: str) -> list[Incompatibility]:
        """Issues for which the reader may reject an instance the writer allows."""
        r_branches = self.expand(reader, self.reader_doc)
        w_branches = [b for b in self.expand(writer, self.writer_doc) if not b.never]
        r_branches = [b for b in r_branches if not b.never]
        issues: list[Incompatibility] = []
        for wb in w_branches:
            if not r_branches:
                issues.append(self.issue(path, "type", "the schema no longer accepts any value"))
                continue
            if len(r_branches) == 1:
                issues += self.accepts_branch(r_branches[0], wb, path)
                continue
            # A writer branch needs one reader branch that takes it whole.
            typed = [rb for rb in r_branches if _type_ok(rb.node.get("type"), _type_of(wb.node))]
            if not typed:
                issues.append(self.type_issue(path, r_branches, wb))
                continue
            best: list[Incompatibility] | None = None
            for rb in typed:
                found = self.accepts_branch(rb, wb, path)
                if not found:
                    best = []
                    break
                if best is None or len(found) < len(best):
                    best = found
            issues += best or []
        return issues

    def type_issue(self, path: str, readers: list[_Branch], writer: _Branch) -> Incompatibility:
        accepted = sorted({str(rb.node.get("type", "any")) for rb in readers})
        wt = _type_of(writer.node) or "any"
        if self.direction is Direction.BACKWARD:
            reason = f"type narrowed: {wt} is no longer accepted (new schema accepts {accepted})"
        else:
            reason = f"type widened: new schema allows {wt}, old readers accept {accepted}"
        return self.issue(path, "type", reason)

    def accepts_branch(self, rb: _Branch, wb: _Branch, path: str) -> list[Incompatibility]:
        r, w = rb.node, wb.node
        if "$ref" in r or "$ref" in w:  # non-local refs: only identical ones are comparable
            if r.get("$ref") != w.get("$ref"):
                return [self.issue(path, "ref", f"external $ref changed: {w.get('$ref')!r}")]
            return []
        rt = r.get("type")
        if rt is not None and not _type_ok(rt, _type_of(w)):
            return [self.type_issue(path, [rb], wb)]
        issues = self.check_values(r, w, path)
        issues += self.check_bounds(r, w, path)
        if rb.ref is not None and wb.ref is not None:
            key = (rb.ref, wb.ref)
            if key in self._active:  # recursive model: already being compared up the stack
                return issues
            self._active.add(key)
            try:
                issues += self.check_structure(r, w, path)
            finally:
                self._active.discard(key)
        else:
            issues += self.check_structure(r, w, path)
        return issues

    def check_values(
        self, r: dict[str, Any], w: dict[str, Any], path: str
    ) -> list[Incompatibility]:
        issues: list[Incompatibility] = []
        r_allowed, w_allowed = _allowed_values(r), _allowed_values(w)
        if r_allowed is not None:
            if w_allowed is None:
                if self.direction is Direction.BACKWARD:
                    reason = f"enum added: only {r_allowed} accepted now"
                else:
                    reason = f"enum removed: old readers accept only {r_allowed}"
                issues.append(self.issue(path, "enum", reason))
            else:
                missing = [v for v in w_allowed if v not in r_allowed]
                if missing:
                    if self.direction is Direction.BACKWARD:
                        reason = f"enum lost values {missing}"
                    else:
                        reason = f"enum gained values {missing} that old readers reject"
                    issues.append(self.issue(path, "enum", reason))
        for kw in ("format", "pattern"):
            rv, wv = r.get(kw), w.get(kw)
            if rv is not None and rv != wv:
                old, new = self.old_new(rv, wv)
                verb = "added" if old is None else "removed" if new is None else "changed"
                issues.append(self.issue(path, kw, f"{kw} {verb}: {old!r} -> {new!r}"))
        return issues

    def check_bounds(
        self, r: dict[str, Any], w: dict[str, Any], path: str
    ) -> list[Incompatibility]:
        issues: list[Incompatibility] = []
        for kw in _UPPER_SIZE:
            rv, wv = r.get(kw), w.get(kw)
            if rv is not None and (wv is None or wv > rv):
                issues.append(self.issue(path, "bounds", self.bound_reason(kw, rv, wv)))
        for kw in _LOWER_SIZE:
            rv, wv = r.get(kw), w.get(kw)
            if rv is not None and rv > (wv or 0):
                issues.append(self.issue(path, "bounds", self.bound_reason(kw, rv, wv)))
        r_hi, w_hi = (
            _bound(r, "maximum", "exclusiveMaximum"),
            _bound(w, "maximum", "exclusiveMaximum"),
        )
        if r_hi is not None and (
            w_hi is None or w_hi[0] > r_hi[0] or (w_hi[0] == r_hi[0] and r_hi[1] and not w_hi[1])
        ):
            issues.append(self.issue(path, "bounds", self.bound_reason("maximum", r_hi, w_hi)))
        r_lo, w_lo = (
            _bound(r, "minimum", "exclusiveMinimum"),
            _bound(w, "minimum", "exclusiveMinimum"),
        )
        if r_lo is not None and (
            w_lo is None or w_lo[0] < r_lo[0] or (w_lo[0] == r_lo[0] and r_lo[1] and not w_lo[1])
        ):
            issues.append(self.issue(path, "bounds", self.bound_reason("minimum", r_lo, w_lo)))
        rm, wm = r.get("multipleOf"), w.get("multipleOf")
        if rm is not None and (wm is None or wm % rm != 0):
            issues.append(self.issue(path, "bounds", self.bound_reason("multipleOf", rm, wm)))
        if r.get("uniqueItems") is True and w.get("uniqueItems") is not True:
            issues.append(self.issue(path, "bounds", "uniqueItems is required by the reader"))
        return issues

    def bound_reason(self, kw: str, reader_value: Any, writer_value: Any) -> str:
        old, new = (_fmt_bound(v) for v in self.old_new(reader_value, writer_value))
        if old is None:
            return f"{kw} added: {new}"
        if new is None:
            return f"{kw} removed (was {old})"
        return f"{kw} changed: {old} -> {new}"

    def check_structure(
        self, r: dict[str, Any], w: dict[str, Any], path: str
    ) -> list[Incompatibility]:
        issues: list[Incompatibility] = []
        # Only what the reader constrains can break it: a reader without object (array)
        # keywords accepts any object (array).
        if _is_object(r):
            issues += self.check_object(r, w, path)
        if "items" in r and r.get("type") in (None, "array"):
            issues += self.accepts(r["items"], w.get("items", True), f"{path}[*]")
        return issues

    def check_object(
        self, r: dict[str, Any], w: dict[str, Any], path: str
    ) -> list[Incompatibility]:
        issues: list[Incompatibility] = []
        r_props: dict[str, Any] = r.get("properties", {})
        w_props: dict[str, Any] = w.get("properties", {})
        r_extra = _normalise_bool(r.get("additionalProperties", True))
        w_extra = _normalise_bool(w.get("additionalProperties", True))
        for name, w_schema in w_props.items():
            sub = f"{path}.{name}"
            if name in r_props:
                issues += self.accepts(r_props[name], w_schema, sub)
            elif self.direction is Direction.BACKWARD:
                issues.append(self.issue(sub, "property-removed", f"property {name!r} removed"))
            elif r_extra is False:
                issues.append(
                    self.issue(
                        sub,
                        "additional-properties",
                        f"new property {name!r} is rejected by old readers "
                        "(additionalProperties: false)",
                    )
                )
            elif r_extra is not True:
                issues += self.accepts(r_extra, w_schema, sub)
        r_req, w_req = r.get("required", []), set(w.get("required", []))
        for name in r_req:
            if name in w_req:
                continue
            sub = f"{path}.{name}"
            if self.direction is Direction.BACKWARD:
                reason = (
                    f"property {name!r} became required"
                    if name in w_props
                    else f"new required property {name!r}"
                )
                issues.append(self.issue(sub, "required-added", reason))
            else:
                reason = (
                    f"property {name!r} is no longer required (old readers require it)"
                    if name in w_props
                    else f"required property {name!r} removed (old readers require it)"
                )
                issues.append(self.issue(sub, "required-removed", reason))
        # Properties the writer does not name are governed by additionalProperties.
        if w_extra is not False and r_extra is not True:
            if r_extra is False or w_extra is True:
                old, new = self.old_new(_fmt_extra(r_extra), _fmt_extra(w_extra))
                verb = "tightened" if self.direction is Direction.BACKWARD else "loosened"
                issues.append(
                    self.issue(
                        f"{path}.*",
                        "additional-properties",
                        f"additionalProperties {verb}: {old} -> {new}",
                    )
                )
            else:
                issues += self.accepts(r_extra, w_extra, f"{path}.*")
        return issues


# --- pure helpers ----------------------------------------------------------------------


def _resolve(node: dict[str, Any], doc: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Follow local `$ref`s (siblings win) and inline single `allOf`s; external refs stay."""
    last_ref: str | None = None
    for _ in range(_MAX_REF_DEPTH):
        if "allOf" in node:
            merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
            for sub in node["allOf"]:
                sub_node, sub_ref = _resolve(sub, doc) if isinstance(sub, dict) else ({}, None)
                merged = _merge(sub_node, merged)
                last_ref = last_ref or sub_ref
            node = merged
            continue
        ref = node.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#"):
            return node, last_ref
        target = _pointer(doc, ref)
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        node = {**(target if isinstance(target, dict) else {}), **siblings}
        last_ref = ref
    raise ValueError(f"$ref chain too deep (cycle?) at {last_ref}")


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Shallow conjunction of two schema nodes (enough for pydantic's allOf wrappers)."""
    out = {**a, **b}
    if "properties" in a and "properties" in b:
        out["properties"] = {**a["properties"], **b["properties"]}
    if "required" in a and "required" in b:
        out["required"] = list(dict.fromkeys([*a["required"], *b["required"]]))
    return out


def _pointer(doc: Mapping[str, Any], ref: str) -> Any:
    node: Any = doc
    for raw in ref.removeprefix("#").split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            raise ValueError(f"unresolvable $ref {ref!r}")
    return node


def _constraints(node: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k not in _ANNOTATIONS and not k.startswith("x-")}


def _type_of(node: dict[str, Any]) -> str | None:
    """The node's type, inferred from const/enum when the writer leaves it out."""
    t = node.get("type")
    if isinstance(t, str):
        return t
    values = _allowed_values(node)
    if values:
        kinds = {_json_type(v) for v in values}
        if len(kinds) == 1:
            return kinds.pop()
    return None


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _type_ok(reader_type: Any, writer_type: str | None) -> bool:
    if reader_type is None:
        return True
    if writer_type is None:
        return False
    return reader_type == writer_type or (reader_type == "number" and writer_type == "integer")


def _allowed_values(node: dict[str, Any]) -> list[Any] | None:
    if "const" in node:
        return [node["const"]]
    enum = node.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _bound(node: dict[str, Any], inclusive: str, exclusive: str) -> tuple[float, bool] | None:
    """The tighter of `maximum`/`exclusiveMaximum` (or the minimum pair) as (value, strict)."""
    inc, exc = node.get(inclusive), node.get(exclusive)
    if isinstance(exc, bool):  # draft-04 style boolean exclusivity
        exc, inc = (inc, None) if exc else (None, inc)
    if inc is None and exc is None:
        return None
    if inc is None:
        return (exc, True)
    if exc is None:
        return (inc, False)
    upper = inclusive == "maximum"
    if (exc <= inc) if upper else (exc >= inc):
        return (exc, True)
    return (inc, False)


def _fmt_bound(v: Any) -> Any:
    if isinstance(v, tuple):
        return f"{v[0]} (exclusive)" if v[1] else v[0]
    return v


def _is_object(node: dict[str, Any]) -> bool:
    """Does the node constrain objects? (A `null` branch split off a type list does not.)"""
    if node.get("type") not in (None, "object"):
        return False
    return any(k in node for k in ("properties", "required", "additionalProperties"))


def _normalise_bool(v: Any) -> Any:
    return True if v == {} else v


def _fmt_extra(v: Any) -> str:
    if v is True:
        return "any"
    if v is False:
        return "none"
    return "schema"


# --- public API ------------------------------------------------------------------------


def check_backward(
    old_schema: Mapping[str, Any], new_schema: Mapping[str, Any]
) -> list[Incompatibility]:
    """Can consumers on `new_schema` read every event written under `old_schema`?"""
    return _Checker(new_schema, old_schema, Direction.BACKWARD).run()


def check_forward(
    old_schema: Mapping[str, Any], new_schema: Mapping[str, Any]
) -> list[Incompatibility]:
    """Can consumers still on `old_schema` read every event written under `new_schema`?"""
    return _Checker(old_schema, new_schema, Direction.FORWARD).run()


def check(
    mode: Compatibility | str, old_schema: Mapping[str, Any], new_schema: Mapping[str, Any]
) -> list[Incompatibility]:
    """Apply the registry's compatibility mode for one event type."""
    mode = Compatibility(mode)
    issues: list[Incompatibility] = []
    if mode in (Compatibility.BACKWARD, Compatibility.FULL):
        issues += check_backward(old_schema, new_schema)
    if mode in (Compatibility.FORWARD, Compatibility.FULL):
        issues += check_forward(old_schema, new_schema)
    return issues


def check_event_schemas(
    old: Mapping[str, Mapping[str, Any]],
    new: Mapping[str, Mapping[str, Any]],
    modes: Mapping[str, Compatibility],
) -> list[Incompatibility]:
    """Compare two sets of exported schemas (`ce_type` → schema) type by type.

    A type that exists only in `new` is fine (nobody has written it yet). A type that
    exists only in `old` is reported: events of it may still sit in the topic, and its
    consumers would dead-letter them.
    """
    issues: list[Incompatibility] = []
    for ce_type in sorted(old):
        if ce_type not in new:
            issues.append(
                Incompatibility(
                    path="$",
                    reason="event type removed (its events may still be in the topic)",
                    rule="type-removed",
                    direction=Direction.BACKWARD,
                    event_type=ce_type,
                )
            )
            continue
        mode = modes.get(ce_type, Compatibility.BACKWARD)
        for found in check(mode, old[ce_type], new[ce_type]):
            issues.append(
                Incompatibility(
                    path=found.path,
                    reason=found.reason,
                    rule=found.rule,
                    direction=found.direction,
                    event_type=ce_type,
                )
            )
    return issues
