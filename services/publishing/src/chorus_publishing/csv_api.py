"""`POST /api/v1/posts/import` (CSV in, one result per row) and `GET /api/v1/posts/export`
(CSV out, streamed page by page from the database)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import Field, ValidationError
from sqlalchemy.exc import DBAPIError
from starlette.datastructures import UploadFile

from chorus_publishing import csv_io
from chorus_publishing.api import PostFilters, _posts, create_in
from chorus_publishing.permissions import Creator, Reader
from chorus_publishing.schemas import ApiModel, PostIn
from chorus_runtime.errors import ChorusError, PayloadTooLarge, ValidationFailed
from chorus_runtime.service import ServiceRuntime

log = logging.getLogger("chorus.publishing.csv")
router = APIRouter(prefix="/api/v1/posts", tags=["posts"])

EXPORT_PAGE = 200


class RowResult(ApiModel):
    row: int
    status: Literal["created", "valid", "error"]
    post_id: str | None = None
    errors: list[dict[str, Any]] | None = None


class ImportOut(ApiModel):
    rows: list[RowResult]
    created: int
    failed: int
    dry_run: bool = Field(description="true: validated only, nothing was stored")


def _settings(request: Request) -> Any:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime.settings


async def _read_upload(request: Request, limit: int) -> str:
    """The CSV text from a multipart `file` field or a text/csv (or text/plain) body."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the file is larger than {limit} bytes", details={"maxBytes": limit})
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=5)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ValidationFailed(
                "send the CSV as the multipart field `file`",
                details=[{"field": "file", "message": "missing", "type": "missing"}],
            )
        raw = await upload.read(limit + 1)
    elif kind in ("text/csv", "text/plain", "application/csv"):
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                break
    else:
        raise ChorusError(
            "send text/csv or multipart/form-data with a `file` field",
            code="UNSUPPORTED_MEDIA_TYPE",
            status_code=415,
        )
    if len(raw) > limit:
        raise PayloadTooLarge(f"the file is larger than {limit} bytes", details={"maxBytes": limit})
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed(
            "the file is not UTF-8 text",
            details=[{"field": "file", "message": "not UTF-8", "rule": "encoding"}],
        ) from None


def _column(loc: tuple[Any, ...]) -> str:
    """Where a POST /posts body error sits, as a CSV column."""
    head = str(loc[0]) if loc else ""
    if head == "content":
        return "text"
    if head == "platforms":
        return "accountIds" if "accountId" in loc else "platforms"
    return head or "row"


def _pydantic_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "column": _column(e["loc"]),
            "field": ".".join(str(p) for p in e["loc"]),
            "message": e["msg"],
            "type": e["type"],
        }
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _chorus_errors(exc: ChorusError) -> list[dict[str, Any]]:
    if isinstance(exc.details, list) and all(isinstance(d, dict) for d in exc.details):
        return [{"code": exc.code, **d} for d in exc.details]
    return [{"code": exc.code, "message": exc.message, "details": exc.details}]


@router.post(
    "/import",
    response_model=ImportOut,
    response_model_by_alias=True,
    summary="Create posts from a CSV file; each row is validated exactly as POST /posts",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    },
)
async def import_posts(
    request: Request,
    principal: Creator,
    dry_run: Annotated[bool, Query(alias="dryRun")] = False,
) -> ImportOut:
    settings = _settings(request)
    text = await _read_upload(request, settings.import_max_bytes)
    rows = csv_io.read(text, max_rows=settings.import_max_rows)
    results: list[RowResult] = []
    for n, cells in rows:
        problems = csv_io.shape_errors(cells)
        if problems:
            results.append(RowResult(row=n, status="error", errors=problems))
            continue
        try:
            body = PostIn.model_validate(csv_io.to_body(cells))
        except ValidationError as exc:
            results.append(RowResult(row=n, status="error", errors=_pydantic_errors(exc)))
            continue
        try:
            # Each row is its own transaction: a bad row leaves the others created.
            async with _posts(request, principal) as repo:
                post = await create_in(repo, principal, body, datetime.now(UTC))
                if not dry_run:
                    await repo.uow.commit()
        except ChorusError as exc:
            results.append(RowResult(row=n, status="error", errors=_chorus_errors(exc)))
            continue
        except DBAPIError:
            # Whatever the database refuses for one row is that row's error: the rows before
            # it are committed, so the answer must still say which ones were created.
            log.exception("import row %s could not be stored", n)
            failure = {"code": "INTERNAL_ERROR", "message": "the row could not be stored"}
            results.append(RowResult(row=n, status="error", errors=[failure]))
            continue
        if dry_run:
            results.append(RowResult(row=n, status="valid"))
        else:
            results.append(RowResult(row=n, status="created", post_id=post.id))
    return ImportOut(
        rows=results,
        created=sum(r.status == "created" for r in results),
        failed=sum(r.status == "error" for r in results),
        dry_run=dry_run,
    )


@router.get(
    "/export",
    summary="The posts as CSV (same filters as the list; columns import again)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_posts(
    request: Request,
    principal: Reader,
    filters: PostFilters,
    fmt: Annotated[Literal["csv"], Query(alias="format")] = "csv",
) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        yield csv_io.header()
        cursor: str | None = None
        while True:
            # One short transaction per page (keyset pagination): a large export never
            # holds a transaction open, nor all posts in memory.
            async with _posts(request, principal) as repo:
                page = await repo.page(**filters, cursor=cursor, limit=EXPORT_PAGE)
            for line in csv_io.lines(page.items):
                yield line
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="posts.csv"'},
    )
