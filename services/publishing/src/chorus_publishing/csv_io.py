"""Posts as CSV, free of I/O: what import reads and export writes (the same columns, so an
export imports again).

Columns: text, platforms, accountIds, scheduledAt, timezone, tags, campaign; export adds the
read-only id and status, which import ignores. platforms, accountIds and tags hold several
values separated by `|`; the n-th platform goes with the n-th account. Cells a spreadsheet
would run as a formula (starting with = + - @ or a tab) are written behind a `'` and read
back without it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from chorus_publishing.domain import Post
from chorus_runtime.errors import PayloadTooLarge, ValidationFailed

SEP = "|"
COLUMNS = ("text", "platforms", "accountIds", "scheduledAt", "timezone", "tags", "campaign")
READ_ONLY = ("status", "id")
EXPORT_COLUMNS = (*COLUMNS, *READ_ONLY)
REQUIRED = ("text", "platforms", "accountIds")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_QUOTE = "'"
_SHAPE = "\0shape"  # marks a row whose cell count does not match the header


def _protect(cell: str) -> str:
    return _QUOTE + cell if cell.startswith((*_FORMULA, _QUOTE)) else cell


def _unprotect(cell: str) -> str:
    if cell.startswith(_QUOTE) and cell[1:2] and cell[1:].startswith((*_FORMULA, _QUOTE)):
        return cell[1:]
    return cell


def _split(cell: str) -> list[str]:
    return [v.strip() for v in cell.split(SEP) if v.strip()]


def _invalid(message: str, **detail: Any) -> ValidationFailed:
    return ValidationFailed(message, details=[{"message": message, **detail}])


def read(text: str, *, max_rows: int) -> list[tuple[int, dict[str, str]]]:
    """(row number, cells) per data row; row 1 is the first line after the header."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise _invalid("the file is empty", rule="empty_file") from None
    except csv.Error as exc:
        raise _invalid(f"not a CSV file: {exc}", rule="malformed_csv") from None
    names = [h.strip().lstrip("\ufeff") for h in header]
    unknown = [n for n in names if n not in EXPORT_COLUMNS]
    missing = [n for n in REQUIRED if n not in names]
    if unknown or missing or len(set(names)) != len(names):
        raise ValidationFailed(
            "the header does not match the import columns",
            details=[
                {
                    "message": "unexpected, missing or repeated columns",
                    "rule": "invalid_header",
                    "unknown": unknown,
                    "missing": missing,
                    "expected": list(COLUMNS),
                }
            ],
        )
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for n, cells in enumerate(reader, start=1):
            if not any(c.strip() for c in cells):
                continue  # blank lines (a trailing newline in an editor) are not rows
            if len(rows) >= max_rows:
                raise PayloadTooLarge(
                    f"at most {max_rows} rows per import",
                    details={"maxRows": max_rows},
                )
            if len(cells) != len(names):
                shape = f"{len(cells)} cells, the header has {len(names)}"
                rows.append((n, {_SHAPE: shape}))
                continue
            rows.append((n, {k: _unprotect(v) for k, v in zip(names, cells, strict=True)}))
    except csv.Error as exc:
        raise _invalid(f"not a CSV file: {exc}", rule="malformed_csv") from None
    return rows


def shape_errors(cells: dict[str, str]) -> list[dict[str, Any]]:
    """Problems of a row's shape, before it is read as a post."""
    if _SHAPE in cells:
        return [{"field": "row", "rule": "wrong_column_count", "message": cells[_SHAPE]}]
    platforms, accounts = _split(cells["platforms"]), _split(cells["accountIds"])
    if len(platforms) != len(accounts):
        return [
            {
                "field": "accountIds",
                "rule": "platforms_accounts_mismatch",
                "message": f"{len(platforms)} platforms but {len(accounts)} account ids "
                "(the n-th platform goes with the n-th account)",
            }
        ]
    return []


def to_body(cells: dict[str, str]) -> dict[str, Any]:
    """A row as the JSON body POST /posts takes, so it is validated exactly the same way."""
    body: dict[str, Any] = {
        "content": {"text": cells.get("text", "")},
        "platforms": [
            {"platform": p, "accountId": a}
            for p, a in zip(_split(cells["platforms"]), _split(cells["accountIds"]), strict=False)
        ],
        "tags": _split(cells.get("tags", "")),
    }
    for column in ("scheduledAt", "timezone", "campaign"):
        value = cells.get(column, "").strip()
        if value:
            body[column] = value
    return body


def header() -> str:
    return _line(list(EXPORT_COLUMNS))


def row(post: Post) -> str:
    scheduled = post.scheduled_at.isoformat().replace("+00:00", "Z") if post.scheduled_at else ""
    return _line(
        [
            post.content.text,
            SEP.join(t.platform.value for t in post.targets),
            SEP.join(t.account_id for t in post.targets),
            scheduled,
            post.timezone or "",
            SEP.join(post.tags),
            post.campaign or "",
            post.status.value,
            post.id,
        ]
    )


def _line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([_protect(c) for c in cells])
    return out.getvalue()


def lines(posts: list[Post]) -> Iterator[str]:
    for p in posts:
        yield row(p)
