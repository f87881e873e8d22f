"""One OpenAPI document for the whole platform: the gateway's own spec plus every reachable
service's, restricted to the paths the gateway actually routes to that service (design.md §2).

Rules (deterministic: same inputs → byte-identical JSON):

* a service contributes only paths that `proxy.resolve` sends to it (its /healthz, /metrics,
  or a path another service owns never leak into the public API);
* only the components its included paths reach (via `$ref`, discriminator mappings and
  security requirements) are taken;
* a component name defined by several sources with *different* content is kept once per
  source: the gateway's copy keeps the plain name, each service's copy becomes
  `<service>_<Name>`, and that service's `$ref`s are rewritten. Identical definitions (FastAPI's
  `HTTPValidationError`, a shared `HTTPBearer` scheme) are merged into one;
* untagged operations are tagged with the service name; an operationId defined by several
  sources gets the service prefix in each service (the gateway's keeps it);
* unreachable or unconfigured services are skipped and listed, sorted, in
  `info.x-unavailable-services`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from fastapi.openapi.docs import get_swagger_ui_html

from chorus_gateway.proxy import resolve

log = logging.getLogger("chorus.gateway.openapi")

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_REF_PREFIX = "#/components/"
_SCHEMA_REF_PREFIX = "#/components/schemas/"

Spec = dict[str, Any]
Key = tuple[str, str]  # (components section, name)


# -- fetching ------------------------------------------------------------------------------


async def fetch_spec(
    client: httpx.AsyncClient, base_url: str, *, timeout: float | httpx.Timeout
) -> Spec | None:
    """`<base_url>/openapi.json`, or None if it cannot be had (any error is "unavailable")."""
    try:
        response = await client.get(base_url.rstrip("/") + "/openapi.json", timeout=timeout)
        if response.status_code != 200:
            raise ValueError(f"status {response.status_code}")
        spec = response.json()
        if not isinstance(spec, dict) or not isinstance(spec.get("paths", {}), dict):
            raise ValueError("not an OpenAPI document")
    except Exception as exc:
        log.warning(
            "openapi of upstream unavailable",
            extra={"fields": {"url": base_url, "error": type(exc).__name__}},
        )
        return None
    return spec


async def merge_openapi(
    gateway_spec: Mapping[str, Any],
    upstreams: Mapping[str, str],
    client: httpx.AsyncClient,
    *,
    timeout: float | httpx.Timeout = 5.0,
) -> Spec:
    """Fetch every configured upstream's spec concurrently and merge (see module doc)."""
    names = sorted(upstreams)
    configured = [name for name in names if upstreams[name]]
    fetched = await asyncio.gather(
        *(fetch_spec(client, upstreams[name], timeout=timeout) for name in configured)
    )
    specs = {name: spec for name, spec in zip(configured, fetched, strict=True) if spec}
    unavailable = [name for name in names if name not in specs]
    return merge_specs(gateway_spec, specs, unavailable=unavailable)


def docs_html(openapi_url: str, *, title: str = "Chorus API") -> str:
    """Swagger UI page rendering the merged document."""
    return bytes(get_swagger_ui_html(openapi_url=openapi_url, title=title).body).decode()


# -- merging (pure) ------------------------------------------------------------------------


def merge_specs(
    gateway_spec: Mapping[str, Any],
    service_specs: Mapping[str, Mapping[str, Any]],
    *,
    unavailable: list[str] | tuple[str, ...] = (),
) -> Spec:
    result: Spec = copy.deepcopy(dict(gateway_spec))
    gateway_components = _components(result)
    parts = {name: _ServicePart.build(name, service_specs[name]) for name in sorted(service_specs)}
    renames = _resolve_collisions(gateway_components, parts)

    paths: dict[str, Any] = dict(result.get("paths") or {})
    components: dict[str, dict[str, Any]] = {
        section: dict(items) for section, items in gateway_components.items()
    }
    # operationIds defined more than once are prefixed in every service that has them.
    id_count = Counter(op.get("operationId") for _, op in _operations(paths))
    for part in parts.values():
        id_count.update({op.get("operationId") for _, op in _operations(part.paths)})
    taken_ids = {i for i in id_count if i}
    tags: list[dict[str, Any]] = list(result.get("tags") or [])
    tag_names = {t.get("name") for t in tags}

    for name, part in parts.items():
        mapping = renames[name]
        for (section, comp), value in sorted(part.components.items()):
            target = components.setdefault(section, {})
            new_name = mapping.get((section, comp), comp)
            # Not renamed and already present means identical content (collisions were
            # renamed above), so the first copy stands.
            target.setdefault(new_name, _rewrite(value, mapping))
        for path, raw_item in sorted(part.paths.items()):
            item = _rewrite(raw_item, mapping)
            for _, op in _operations({path: item}):
                _rename_security(op, mapping)
                if not op.get("tags"):
                    op["tags"] = [name]
                op_id = op.get("operationId")
                if op_id and id_count[op_id] > 1:
                    new_id, suffix = f"{name}_{op_id}", 2
                    while new_id in taken_ids:
                        new_id, suffix = f"{name}_{op_id}_{suffix}", suffix + 1
                    taken_ids.add(new_id)
                    op["operationId"] = new_id
            existing = paths.setdefault(path, {})
            for key, value in item.items():
                existing.setdefault(key, value)  # the gateway's own / earlier definition wins
        for tag in [*part.tags, {"name": name}]:
            used = any(tag.get("name") in op.get("tags", ()) for _, op in _operations(paths))
            if tag.get("name") not in tag_names and used:
                tags.append(tag)
                tag_names.add(tag.get("name"))

    result["paths"] = {p: paths[p] for p in sorted(paths)}
    merged_components = {
        section: {k: items[k] for k in sorted(items)}
        for section, items in sorted(components.items())
        if items
    }
    if merged_components:
        result["components"] = merged_components
    else:
        result.pop("components", None)
    if tags:
        result["tags"] = tags
    info = dict(result.get("info") or {})
    info["x-unavailable-services"] = sorted(unavailable)
    result["info"] = info
    return result


class _ServicePart:
    """What one service contributes: routed paths and the components they reach."""

    def __init__(
        self, paths: dict[str, Any], components: dict[Key, Any], tags: list[dict[str, Any]]
    ) -> None:
        self.paths = paths
        self.components = components
        self.tags = tags

    @classmethod
    def build(cls, service: str, spec: Mapping[str, Any]) -> _ServicePart:
        raw_paths = spec.get("paths") if isinstance(spec.get("paths"), dict) else {}
        paths = {
            p: copy.deepcopy(item)
            for p, item in (raw_paths or {}).items()
            if isinstance(item, dict) and resolve(p) == service
        }
        # A top-level security requirement would be lost in the merged document (the
        # gateway's own applies there), so push it down onto the operations.
        top_security = spec.get("security")
        if top_security is not None:
            for _, op in _operations(paths):
                op.setdefault("security", copy.deepcopy(top_security))
        all_components = _components(spec)
        reachable = _reachable(paths, all_components)
        components = {key: copy.deepcopy(all_components[key[0]][key[1]]) for key in reachable}
        used_tags = {t for _, op in _operations(paths) for t in op.get("tags") or ()}
        tags = [
            copy.deepcopy(t)
            for t in spec.get("tags") or []
            if isinstance(t, dict) and t.get("name") in used_tags
        ]
        return cls(paths, components, tags)


def _components(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    raw = spec.get("components")
    if not isinstance(raw, dict):
        return {}
    return {s: dict(items) for s, items in raw.items() if isinstance(items, dict)}


def _operations(paths: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(paths):
        item = paths[path]
        if not isinstance(item, dict):
            continue
        for method in HTTP_METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                yield path, op


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _parse_ref(ref: str) -> Key | None:
    if not ref.startswith(_REF_PREFIX):
        return None
    rest = ref[len(_REF_PREFIX) :].split("/")
    if len(rest) != 2:
        return None
    return rest[0], _unescape(rest[1])


def _refs(node: Any) -> Iterator[Key]:
    """Every component a subtree points at: `$ref`s, discriminator mappings, security."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and (key := _parse_ref(ref)):
            yield key
        disc = node.get("discriminator")
        if isinstance(disc, dict) and isinstance(disc.get("mapping"), dict):
            for target in disc["mapping"].values():
                if isinstance(target, str):
                    key = _parse_ref(target)
                    yield key if key else ("schemas", target)
        security = node.get("security")
        if isinstance(security, list):
            for requirement in security:
                if isinstance(requirement, dict):
                    for scheme in requirement:
                        yield "securitySchemes", scheme
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _reachable(paths: Mapping[str, Any], components: Mapping[str, Mapping[str, Any]]) -> set[Key]:
    seen: set[Key] = set()
    todo = [key for key in _refs(paths)]
    while todo:
        key = todo.pop()
        if key in seen or key[1] not in components.get(key[0], {}):
            continue
        seen.add(key)
        todo.extend(_refs(components[key[0]][key[1]]))
    return seen


def _rewrite(node: Any, mapping: Mapping[Key, str]) -> Any:
    """Copy of `node` with refs to renamed components pointing at the new names."""
    if not mapping:
        return copy.deepcopy(node)
    if isinstance(node, list):
        return [_rewrite(v, mapping) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _rewrite(v, mapping) for k, v in node.items()}
    ref = out.get("$ref")
    if isinstance(ref, str) and (key := _parse_ref(ref)) and key in mapping:
        out["$ref"] = f"{_REF_PREFIX}{key[0]}/{_escape(mapping[key])}"
    disc = out.get("discriminator")
    if isinstance(disc, dict) and isinstance(disc.get("mapping"), dict):
        new_mapping = {}
        for value, target in disc["mapping"].items():
            key = _parse_ref(target) if isinstance(target, str) else None
            if key and key in mapping:
                new_mapping[value] = f"{_REF_PREFIX}{key[0]}/{_escape(mapping[key])}"
            elif isinstance(target, str) and ("schemas", target) in mapping:
                new_mapping[value] = mapping[("schemas", target)]  # bare-name form
            else:
                new_mapping[value] = target
        out["discriminator"] = {**disc, "mapping": new_mapping}
    return out


def _rename_security(op: dict[str, Any], mapping: Mapping[Key, str]) -> None:
    security = op.get("security")
    if not isinstance(security, list):
        return
    op["security"] = [
        {mapping.get(("securitySchemes", k), k): v for k, v in req.items()}
        if isinstance(req, dict)
        else req
        for req in security
    ]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _resolve_collisions(
    gateway: Mapping[str, Mapping[str, Any]], parts: Mapping[str, _ServicePart]
) -> dict[str, dict[Key, str]]:
    """service → {(section, name): new name} for every component that must be prefixed.

    Iterates to a fixpoint: renaming `B` in one service changes the rewritten content of its
    `A` that refers to `B`, which may make an otherwise identical `A` collide too.
    """
    renames: dict[str, dict[Key, str]] = {name: {} for name in parts}
    taken: set[Key] = {(s, n) for s, items in gateway.items() for n in items}
    for part in parts.values():
        taken.update(part.components)
    keys = sorted(taken)
    while True:
        changed = False
        for key in keys:
            section, comp = key
            holders = [n for n in parts if key in parts[n].components and key not in renames[n]]
            if not holders:
                continue
            contents = {
                n: _canonical(_rewrite(parts[n].components[key], renames[n])) for n in holders
            }
            if comp in gateway.get(section, {}):
                reference: str | None = _canonical(gateway[section][comp])
                clashing = [n for n in holders if contents[n] != reference]
            elif len(set(contents.values())) > 1:
                clashing = holders
            else:
                clashing = []
            for n in clashing:
                new = f"{n}_{comp}"
                suffix = 2
                while (section, new) in taken:
                    new = f"{n}_{comp}_{suffix}"
                    suffix += 1
                taken.add((section, new))
                renames[n][key] = new
                changed = True
        if not changed:
            return renames
