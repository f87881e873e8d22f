"""Text codecs for the chdb backend: query parameters, JSON results, JSON inserts (by column).

chdb hands back text formats only, so typing is rebuilt here from the column types the
engine reports, mirroring what clickhouse-connect returns from a server (Native format).
"""

from __future__ import annotations

import ipaddress
import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_FLOOR, Decimal
from enum import Enum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from chorus_runtime.clickhouse.base import ClickHouseError, utc_if_naive

Converter = Callable[[Any], Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DT_TZ_RE = re.compile(r"DateTime(?:64)?\s*\((?:\s*\d+\s*,)?\s*'([^']+)'")
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Zulu"})

# Session settings the decoder below relies on (set once when the chdb session opens).
RESULT_SETTINGS: dict[str, str] = {
    # Epoch seconds: unambiguous whatever the column's or session's zone.
    "date_time_output_format": "unix_timestamp",
    # Python's json keeps big ints exact, so no quoting is needed for them...
    "output_format_json_quote_64bit_integers": "0",
    # ...but Decimal must not pass through float.
    "output_format_json_quote_decimals": "1",
    # nan/inf as strings instead of null, so they survive.
    "output_format_json_quote_denormals": "1",
    "output_format_json_named_tuples_as_objects": "1",
}


# ---------------------------------------------------------------------------- type strings


def split_args(args: str) -> list[str]:
    """Split a type's argument list on top-level commas."""
    parts: list[str] = []
    depth, start, i, n = 0, 0, 0, len(args)
    while i < n:
        ch = args[i]
        if ch in "'`":
            j = i + 1
            while j < n and args[j] != ch:
                j += 2 if args[j] == "\\" else 1
            i = j + 1
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(args[start:i].strip())
            start = i + 1
        i += 1
    tail = args[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def unwrap(type_name: str) -> tuple[str, list[str]]:
    """``Array(Nullable(String))`` -> (``Array``, [``Nullable(String)``])."""
    type_name = type_name.strip()
    open_at = type_name.find("(")
    if open_at == -1 or not type_name.endswith(")"):
        return type_name, []
    return type_name[:open_at].strip(), split_args(type_name[open_at + 1 : -1])


def _tuple_field(element: str) -> tuple[str | None, str]:
    """``x UInt8`` -> (``x``, ``UInt8``); ``UInt8`` -> (None, ``UInt8``)."""
    if element.startswith("`"):
        end = element.index("`", 1)
        return element[1:end], element[end + 1 :].strip()
    depth = 0
    for i, ch in enumerate(element):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch.isspace() and depth == 0:
            return element[:i], element[i:].strip()
    return None, element


def zone_for(name: str | None) -> tzinfo:
    if name is None or name in _UTC_NAMES:
        return UTC
    return ZoneInfo(name)


def column_zone(type_name: str, default: tzinfo) -> tzinfo:
    match = _DT_TZ_RE.search(type_name)
    return zone_for(match.group(1)) if match else default


# ---------------------------------------------------------------------------- results


def _epoch_to_datetime(zone: tzinfo) -> Converter:
    def convert(value: Any) -> datetime:
        micros = (Decimal(str(value)) * 1_000_000).to_integral_value(rounding=ROUND_FLOOR)
        return (_EPOCH + timedelta(microseconds=int(micros))).astimezone(zone)

    return convert


def _parse_time(value: Any) -> timedelta:
    text = str(value)
    sign = -1 if text.startswith("-") else 1
    hours, minutes, seconds = text.lstrip("-").split(":")
    total = timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds))
    return sign * total


def _nullable(inner: Converter) -> Converter:
    return lambda v: None if v is None else inner(v)


@lru_cache(maxsize=2048)
def result_converter(type_name: str) -> Converter:
    """Converter from a JSON-decoded value of ``type_name`` to the Python value."""
    name, args = unwrap(type_name)
    if name == "Nullable":
        return _nullable(result_converter(args[0]))
    if name in ("LowCardinality", "SimpleAggregateFunction"):
        return result_converter(args[-1])
    if name == "Array":
        element = result_converter(args[0])
        return lambda v: [element(x) for x in v]
    if name == "Map":
        key, val = result_converter(args[0]), result_converter(args[1])
        return lambda v: {key(k): val(x) for k, x in v.items()}
    if name == "Tuple":
        fields = [_tuple_field(a) for a in args]
        convs = [result_converter(t) for _, t in fields]
        if fields and all(n is not None for n, _ in fields):
            by_name = {n: c for (n, _), c in zip(fields, convs, strict=True)}
            names = [n for n, _ in fields]

            def named(v: Any) -> dict[str, Any]:
                if isinstance(v, Mapping):
                    return {k: by_name[k](x) if k in by_name else x for k, x in v.items()}
                return {n: c(x) for n, c, x in zip(names, convs, v, strict=False)}

            return named
        return lambda v: tuple(c(x) for c, x in zip(convs, v, strict=False))
    if name.startswith(("UInt", "Int")):  # Int*, UInt* and Interval*: ints, as clickhouse-connect
        return int
    if name in ("Float32", "Float64", "BFloat16"):
        return float
    if name.startswith("Decimal"):
        return lambda v: Decimal(str(v))
    if name == "Bool":
        return bool
    if name == "FixedString":
        return lambda v: v.encode()
    if name == "UUID":
        return uuid.UUID
    if name in ("Date", "Date32"):
        return date.fromisoformat
    if name in ("DateTime", "DateTime64"):
        return _epoch_to_datetime(column_zone(type_name, UTC))
    if name in ("Time", "Time64"):
        return _parse_time
    if name == "IPv4":
        return ipaddress.IPv4Address
    if name == "IPv6":
        return ipaddress.IPv6Address
    if name == "Nothing":
        return lambda _v: None
    # String, Enum*, JSON, Object, Dynamic, Variant, ...: JSON already has the right shape.
    return lambda v: v


def decode_json_compact(payload: bytes) -> list[dict[str, Any]]:
    """Rows of a ``JSONCompact`` result as dicts of typed values."""
    if not payload.strip():
        return []
    # Invalid UTF-8 inside a String value would break json; keep the row, flag the bytes.
    try:
        doc = json.loads(payload.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise ClickHouseError(
            "query() reads JSONCompact output; leave FORMAT clauses out of the SQL"
        ) from exc
    meta = doc.get("meta", [])
    names = [m["name"] for m in meta]
    convs = [result_converter(m["type"]) for m in meta]
    return [
        {n: c(v) for n, c, v in zip(names, convs, row, strict=True)} for row in doc.get("data", [])
    ]


# ---------------------------------------------------------------------------- parameters


def escape_text(value: str) -> str:
    """ClickHouse's escaped text (what parameter values are parsed as) for one string."""
    return (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\0", "\\0")
        .replace("\b", "\\b")
        .replace("\f", "\\f")
    )


def _format_datetime(value: datetime, type_name: str, default_zone: tzinfo) -> str:
    local = utc_if_naive(value).astimezone(column_zone(type_name, default_zone))
    # A DateTime (seconds) parameter rejects a fraction; DateTime64 needs it.
    fraction = "DateTime64" in type_name or ("DateTime" not in type_name and local.microsecond)
    return local.strftime("%Y-%m-%d %H:%M:%S.%f" if fraction else "%Y-%m-%d %H:%M:%S")


def format_param(value: Any, type_name: str, default_zone: tzinfo, *, top: bool = True) -> str:
    """One parameter value as text; nested container elements are SQL literals."""

    def quoted(text: str) -> str:
        return escape_text(text) if top else f"'{escape_text(text)}'"

    def nested(item: Any, item_type: str) -> str:
        return format_param(item, item_type, default_zone, top=False)

    if value is None:
        return "\\N" if top else "NULL"
    if isinstance(value, Enum):
        return format_param(value.value, type_name, default_zone, top=top)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, datetime):
        return quoted(_format_datetime(value, type_name, default_zone))
    if isinstance(value, date):
        return quoted(value.isoformat())
    if isinstance(value, time):
        return quoted(value.isoformat())
    if isinstance(value, uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return quoted(str(value))
    name, args = unwrap(type_name)
    while name in ("Nullable", "LowCardinality") and args:
        name, args = unwrap(args[0])
    if isinstance(value, list | tuple):
        if isinstance(value, tuple) or name == "Tuple":
            types = [_tuple_field(a)[1] for a in args] if name == "Tuple" else []
            items = [nested(v, types[i] if i < len(types) else "") for i, v in enumerate(value)]
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        item_type = args[0] if name == "Array" and args else ""
        return "[" + ", ".join(nested(v, item_type) for v in value) + "]"
    if isinstance(value, Mapping):
        key_type, val_type = (args[0], args[1]) if name == "Map" and len(args) == 2 else ("", "")
        pairs = (f"{nested(k, key_type)}: {nested(v, val_type)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    return quoted(str(value))


def format_params(
    params: Mapping[str, Any], declared: Mapping[str, str], default_zone: tzinfo
) -> dict[str, str]:
    return {k: format_param(v, declared.get(k, ""), default_zone) for k, v in params.items()}


# ---------------------------------------------------------------------------- inserts


_JSON_NATIVE = frozenset({str, int, float, bool})


def _naive_text(value: datetime, zone: tzinfo) -> str:
    # isoformat is several times faster than strftime; the wall time is in the column's zone.
    local = utc_if_naive(value).astimezone(zone).replace(tzinfo=None)
    return local.isoformat(" ", "microseconds")


def _default_json(value: Any) -> Any:
    """JSON shape of a value whose column type gives no better hint."""
    if type(value) in _JSON_NATIVE:  # the common case, first
        return value
    if isinstance(value, Enum):
        return _default_json(value.value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return _naive_text(value, UTC)
    if isinstance(value, date | time | uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        # JSON can't carry arbitrary bytes; String columns get the UTF-8 text.
        return bytes(value).decode("utf-8")
    if isinstance(value, list | tuple):
        return [_default_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(_default_json(k)): _default_json(v) for k, v in value.items()}
    return value


@lru_cache(maxsize=2048)
def insert_converter(type_name: str, default_zone: tzinfo) -> Converter:
    """Converter from a Python value to what JSONCompactEachRow parses as ``type_name``."""
    name, args = unwrap(type_name)
    if name == "Nullable":
        return _nullable(insert_converter(args[0], default_zone))
    if name == "LowCardinality":
        return insert_converter(args[0], default_zone)
    if name == "Array":
        element = insert_converter(args[0], default_zone)
        return lambda v: [element(x) for x in v]
    if name == "Map":
        key, val = insert_converter(args[0], default_zone), insert_converter(args[1], default_zone)

        def to_map(v: Mapping[Any, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k, x in v.items():
                json_key = key(k)
                out[json_key if isinstance(json_key, str) else json.dumps(json_key)] = val(x)
            return out

        return to_map
    if name == "Tuple":
        fields = [_tuple_field(a) for a in args]
        convs = [insert_converter(t, default_zone) for _, t in fields]
        by_name = {n: c for (n, _), c in zip(fields, convs, strict=True) if n is not None}
        names = [n for n, _ in fields] if len(by_name) == len(fields) else None

        def to_tuple(v: Any) -> Any:
            if isinstance(v, Mapping):
                return {
                    k: by_name[k](x) if k in by_name else _default_json(x) for k, x in v.items()
                }
            items = [c(x) for c, x in zip(convs, v, strict=False)]
            # JSON input reads a named tuple as an object only (json_named_tuples_as_objects).
            return dict(zip(names, items, strict=False)) if names else items

        return to_tuple
    if name in ("DateTime", "DateTime64"):
        zone = column_zone(type_name, default_zone)
        # A DateTime (seconds) column rejects a fraction in text input.
        cut = None if name == "DateTime64" else 19

        def to_datetime(v: Any) -> Any:
            if isinstance(v, datetime):
                return _naive_text(v, zone)[:cut]
            return _default_json(v)

        return to_datetime
    if name in ("Date", "Date32"):
        return lambda v: v.date().isoformat() if isinstance(v, datetime) else _default_json(v)
    if name in ("JSON", "Object"):
        # The JSON type takes objects or JSON text, like clickhouse-connect (which decides per
        # batch from the first value, so don't mix the two in one batch).
        return lambda v: json.loads(v) if isinstance(v, str | bytes) else _default_json(v)
    if name.startswith("Float") or name == "BFloat16":
        return lambda v: float(v) if isinstance(v, Decimal) else _default_json(v)
    return _default_json


def encode_json_each_row(
    rows: list[Any], column_names: list[str], types: Mapping[str, str], default_zone: tzinfo
) -> str:
    """``JSONCompactEachRow`` text (one JSON array per row, in ``column_names`` order).

    ``json.dumps`` does all escaping (quotes, backslashes, newlines, unicode), so no value
    is ever spliced into SQL.
    """
    convs = [
        insert_converter(types[c], default_zone) if c in types else _default_json
        for c in column_names
    ]
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    lines = [
        dumps([None if v is None else conv(v) for conv, v in zip(convs, row, strict=True)])
        for row in rows
    ]
    return "\n".join(lines) + "\n"


# Column-at-a-time encoding for batch inserts: one `json.dumps` over whole columns instead of
# one per row, and the common column shapes (plain scalars, UUIDs, datetimes) converted with
# one pass each instead of a converter call per cell. Values mean exactly what
# `insert_converter` would send; anything unusual takes that per-value path.

_PASS_THROUGH = frozenset({str, int, float, bool, type(None)})
_UUIDS = frozenset({uuid.UUID, type(None)})
_DATETIMES = frozenset({datetime, type(None)})
# Types whose converter reshapes even plain values (JSON text is parsed, sequences iterated).
_CONTAINERS = frozenset({"JSON", "Object", "Array", "Map", "Tuple"})
# Epoch seconds as a float are exact to the microsecond (repr gives back the decimal) while
# the float spacing stays under half a microsecond: from 1970 until 2038.
_EPOCH_FLOAT_MAX = float(2**31)


def _base_type(type_name: str) -> str:
    name, args = unwrap(type_name)
    while name in ("Nullable", "LowCardinality") and args:
        name, args = unwrap(args[0])
    return name


def _epoch_seconds(column: tuple[Any, ...], whole: bool) -> list[Any] | None:
    """Aware or naive (UTC) datetimes as epoch numbers; None when out of the exact range."""
    out = [
        None if v is None else (v if v.tzinfo is not None else v.replace(tzinfo=UTC)).timestamp()
        for v in column
    ]
    present = [v for v in out if v is not None] if None in out else out
    if present and not (min(present) >= 0.0 and max(present) < _EPOCH_FLOAT_MAX):
        return None
    if whole:  # a DateTime (seconds) column: drop the fraction like the text form does
        return [None if v is None else int(v) for v in out]
    return out


def encode_column(
    column: tuple[Any, ...], type_name: str | None, default_zone: tzinfo
) -> list[Any] | tuple[Any, ...]:
    """One column's values in the JSON shape `insert_converter` gives them."""
    kinds = set(map(type, column))
    base = _base_type(type_name) if type_name is not None else ""
    if kinds <= _PASS_THROUGH and base not in _CONTAINERS:
        return column  # already what the per-value converter would return
    if kinds <= _UUIDS and base == "UUID":
        # 32 hex digits parse as the same UUID and format several times faster than str().
        return [None if v is None else v.hex for v in column]
    if kinds <= _DATETIMES and base in ("DateTime", "DateTime64"):
        epoch = _epoch_seconds(column, whole=base == "DateTime")
        if epoch is not None:
            return epoch
    conv = insert_converter(type_name, default_zone) if type_name is not None else _default_json
    return [None if v is None else conv(v) for v in column]


def encode_json_columns(
    rows: list[Any], column_names: list[str], types: Mapping[str, str], default_zone: tzinfo
) -> str:
    """``JSONCompactColumns`` text: one JSON array per column, in ``column_names`` order."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in column_names]
    encoded = [
        encode_column(col, types.get(name), default_zone)
        for col, name in zip(columns, column_names, strict=True)
    ]
    return json.dumps(encoded, ensure_ascii=False, separators=(",", ":"))
