"""CSV import and export (component; the codec itself is unit-tested at the end)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker
from publishing_testkit import Publishing

from chorus_publishing import csv_io
from chorus_publishing.main import build as build_publishing
from chorus_publishing.settings import PublishingSettings
from chorus_runtime.errors import PayloadTooLarge, ValidationFailed
from chorus_runtime.service import Role
from chorus_testing.apps import running
from chorus_testing.auth import TestTokens
from chorus_testing.postgres import ServiceDatabase

IMPORT = "/api/v1/posts/import"
EXPORT = "/api/v1/posts/export"
HEADER = "text,platforms,accountIds,scheduledAt,timezone,tags\n"


def later(hours: int = 2) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0).isoformat()


async def send_csv(
    p: Publishing, workspace: str, text: str, role: str = "owner", **params: Any
) -> Any:
    return await p.client.post(
        IMPORT,
        content=text.encode(),
        params=params,
        headers={**p.headers(workspace, role), "Content-Type": "text/csv"},
    )


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.component
async def test_import_creates_valid_rows_and_reports_each_bad_one(publishing: Publishing) -> None:
    workspace, stranger = str(uuid.uuid4()), str(uuid.uuid4())
    x = await publishing.connect(workspace, "x")
    li = await publishing.connect(workspace, "linkedin")
    foreign = await publishing.connect(stranger, "x")
    at = later()
    text = (
        HEADER
        + f'"Hello, world",x|linkedin,{x}|{li},{at},,launch|q2\n'
        + f"Local time,x,{x},2030-03-01T09:30:00,Europe/Berlin,\n"
        + f"No account,x,{foreign},,,\n"
        + f"Mismatch,x|linkedin,{x},,,\n"
        + f"Bad platform,myspace,{x},,,\n"
        + f",x,{x},,,\n"
        + f"Past,x,{x},2020-01-01T00:00:00Z,,\n"
        + f"{'a' * 300},x,{x},{at},,\n"
        + "too,few\n"
        + "\n"
    )
    resp = await send_csv(publishing, workspace, text)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert (out["created"], out["failed"], out["dryRun"]) == (2, 7, False)
    by_row = {r["row"]: r for r in out["rows"]}
    assert [by_row[n]["status"] for n in range(1, 10)] == ["created"] * 2 + ["error"] * 7

    def rules(n: int) -> list[tuple[str, str]]:
        return [
            (e.get("column") or e.get("field"), e.get("rule") or e.get("type"))
            for e in by_row[n]["errors"]
        ]

    assert rules(3) == [("platforms.0.accountId", "account_not_connected")]
    assert rules(4) == [("accountIds", "platforms_accounts_mismatch")]
    assert rules(5) == [("platforms", "enum")]
    assert rules(6) == [("text", "value_error")]
    assert rules(7) == [("scheduledAt", "past_datetime")]
    assert by_row[8]["errors"][0]["rule"] == "max_length"
    assert rules(9) == [("row", "wrong_column_count")]

    first = await publishing.get(workspace, by_row[1]["postId"])
    assert first["content"]["text"] == "Hello, world"
    assert {(t["platform"], t["accountId"]) for t in first["targets"]} == {
        ("x", x),
        ("linkedin", li),
    }
    assert (first["status"], first["tags"]) == ("scheduled", ["launch", "q2"])
    second = await publishing.get(workspace, by_row[2]["postId"])
    assert datetime.fromisoformat(second["scheduledAt"]) == datetime(2030, 3, 1, 8, 30, tzinfo=UTC)
    assert await publishing.scalar("SELECT count(*) FROM posts") == 2


@pytest.mark.component
async def test_dry_run_validates_without_storing(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    x = await publishing.connect(workspace, "x")
    text = HEADER + f"fine,x,{x},,,\n" + "broken,x,not-a-uuid,,,\n"
    resp = await send_csv(publishing, workspace, text, dryRun="true")
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert [r["status"] for r in out["rows"]] == ["valid", "error"]
    assert (out["created"], out["failed"], out["dryRun"]) == (0, 1, True)
    assert await publishing.scalar("SELECT count(*) FROM posts") == 0
    assert await publishing.outbox() == []


@pytest.mark.component
async def test_multipart_upload_works_too(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    x = await publishing.connect(workspace, "x")
    resp = await publishing.client.post(
        IMPORT,
        files={"file": ("posts.csv", (HEADER + f"from a file,x,{x},,,\n").encode(), "text/csv")},
        headers=publishing.headers(workspace),
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] == 1
    no_file = await publishing.client.post(
        IMPORT, files={"other": ("a.csv", b"x", "text/csv")}, headers=publishing.headers(workspace)
    )
    assert no_file.status_code == 422, no_file.text


BAD_FILES: dict[str, tuple[bytes, str, int]] = {
    "wrong header": (b"words,where\nhi,x\n", "text/csv", 422),
    "missing column": (b"text,platforms\nhi,x\n", "text/csv", 422),
    "empty": (b"", "text/csv", 422),
    "not utf-8": (b"text,platforms,accountIds\n\xff\xfe,x,y\n", "text/csv", 422),
    "json body": (b'{"text": "hi"}', "application/json", 415),
}


@pytest.mark.component
@pytest.mark.parametrize("case", list(BAD_FILES))
async def test_a_bad_file_is_refused(publishing: Publishing, case: str) -> None:
    content, kind, status = BAD_FILES[case]
    resp = await publishing.client.post(
        IMPORT,
        content=content,
        headers={**publishing.headers(str(uuid.uuid4())), "Content-Type": kind},
    )
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] in ("VALIDATION_ERROR", "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.component
async def test_viewers_cannot_import(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    x = await publishing.connect(workspace, "x")
    resp = await send_csv(publishing, workspace, HEADER + f"hi,x,{x},,,\n", role="viewer")
    assert resp.status_code == 403, resp.text
    assert await publishing.scalar("SELECT count(*) FROM posts") == 0


@pytest.fixture
async def small_imports(
    publishing_db: ServiceDatabase, tokens: TestTokens
) -> AsyncIterator[Publishing]:
    settings = PublishingSettings(
        database_url=publishing_db.app_url,
        migrations_database_url=publishing_db.owner_url,
        kafka_bootstrap_servers="127.0.0.1:9",
        import_max_rows=3,
        import_max_bytes=2000,
    )
    runtime = build_publishing(settings)
    async with (
        TestKafkaBroker(runtime.broker) as broker,
        running(runtime, Role.API, verifier=tokens.verifier()) as svc,
    ):
        yield Publishing(svc.client, publishing_db, tokens, runtime=runtime, broker=broker)


@pytest.mark.component
async def test_the_row_and_size_limits_are_configurable(small_imports: Publishing) -> None:
    workspace = str(uuid.uuid4())
    x = await small_imports.connect(workspace, "x")
    three = HEADER + "".join(f"row {i},x,{x},,,\n" for i in range(3))
    assert (await send_csv(small_imports, workspace, three)).json()["created"] == 3
    four = HEADER + "".join(f"row {i},x,{x},,,\n" for i in range(4))
    resp = await send_csv(small_imports, workspace, four)
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"]["details"] == {"maxRows": 3}
    big = HEADER + f"{'a' * 2100},x,{x},,,\n"
    assert (await send_csv(small_imports, workspace, big)).status_code == 413
    assert await small_imports.scalar("SELECT count(*) FROM posts") == 3


# -- export ------------------------------------------------------------------------------------


@pytest.mark.component
async def test_export_round_trips_through_import(publishing: Publishing) -> None:
    workspace, stranger = str(uuid.uuid4()), str(uuid.uuid4())
    x = await publishing.connect(workspace, "x")
    li = await publishing.connect(workspace, "linkedin")
    at = later()
    rows = [
        f'"Quote ""this"", and, commas",x|linkedin,{x}|{li},{at},Europe/Berlin,a|b\n',
        f"=1+1 looks like a formula,x,{x},,,\n",
        f'"multi\nline",linkedin,{li},,,promo\n',
    ]
    created = await send_csv(publishing, workspace, HEADER + "".join(rows))
    assert created.json()["created"] == 3, created.text
    await publishing.create_ok(stranger, "x")  # not in my export

    resp = await publishing.client.get(EXPORT, headers=publishing.headers(workspace, "viewer"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    exported = parse(resp.text)
    assert len(exported) == 3
    assert list(exported[0]) == list(csv_io.EXPORT_COLUMNS)
    texts = {r["text"] for r in exported}
    assert "'=1+1 looks like a formula" in texts  # not a formula in a spreadsheet
    scheduled = next(r for r in exported if r["scheduledAt"])
    assert (scheduled["timezone"], scheduled["tags"], scheduled["status"]) == (
        "Europe/Berlin",
        "a|b",
        "scheduled",
    )

    # Imported into another workspace with the same accounts (ids rewritten), the posts
    # come back identical.
    other = str(uuid.uuid4())
    ox, oli = await publishing.connect(other, "x"), await publishing.connect(other, "linkedin")
    again = resp.text.replace(x, ox).replace(li, oli)
    reimported = await send_csv(publishing, other, again)
    assert reimported.json()["created"] == 3, reimported.text
    second = parse((await publishing.client.get(EXPORT, headers=publishing.headers(other))).text)

    def comparable(rows: list[dict[str, str]]) -> list[tuple[str, ...]]:
        return sorted(
            (r["text"], r["platforms"], r["scheduledAt"], r["timezone"], r["tags"], r["status"])
            for r in rows
        )

    assert comparable(second) == comparable(exported)
    assert {r["id"] for r in second}.isdisjoint({r["id"] for r in exported})


@pytest.mark.component
async def test_export_filters_pages_and_formats(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    x = await publishing.connect(workspace, "x")
    n = 450  # more than two export pages (200 each)
    text = HEADER + "".join(f"post {i},x,{x},,,{'odd' if i % 2 else 'even'}\n" for i in range(n))
    assert (await send_csv(publishing, workspace, text)).json()["created"] == n

    everything = parse(
        (await publishing.client.get(EXPORT, headers=publishing.headers(workspace))).text
    )
    assert len(everything) == n
    assert len({r["id"] for r in everything}) == n
    odd = await publishing.client.get(
        EXPORT, params={"tag": "odd", "format": "csv"}, headers=publishing.headers(workspace)
    )
    assert len(parse(odd.text)) == n // 2
    none = await publishing.client.get(
        EXPORT, params={"status": "scheduled"}, headers=publishing.headers(workspace)
    )
    assert parse(none.text) == []

    for params in (
        {"format": "xlsx"},
        {"status": "nope"},
        {"startDate": "2026-01-01T00:00:00"},
        {"startDate": "2026-02-01T00:00:00Z", "endDate": "2026-01-01T00:00:00Z"},
    ):
        bad = await publishing.client.get(
            EXPORT, params=params, headers=publishing.headers(workspace)
        )
        assert bad.status_code == 422, (params, bad.text)
        assert bad.json()["error"]["code"] == "VALIDATION_ERROR"
    assert (await publishing.client.get(EXPORT)).status_code == 401


# -- codec (unit) ------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("cell", ["=SUM(A1)", "+1", "-2", "@x", "'quoted", "''", "plain", "'"])
def test_formula_protection_round_trips(cell: str) -> None:
    assert csv_io._unprotect(csv_io._protect(cell)) == cell


@pytest.mark.unit
def test_the_reader_refuses_bad_headers_and_too_many_rows() -> None:
    with pytest.raises(ValidationFailed):
        csv_io.read("text,platforms,accountIds,text\n", max_rows=5)
    with pytest.raises(PayloadTooLarge):
        csv_io.read(HEADER + "a,x,1,,,\n" * 3, max_rows=2)
    rows = csv_io.read(HEADER + "\n\na,x,1,,,\n", max_rows=1)
    assert [n for n, _ in rows] == [3]


@pytest.mark.component
async def test_nul_characters_are_a_row_error_and_a_422_never_a_500(
    publishing: Publishing,
) -> None:
    """Postgres text cannot hold U+0000: the row that has one fails alone, the others are
    created, and the same in a JSON body or a list/export filter is a 422."""
    workspace = str(uuid.uuid4())
    x = await publishing.connect(workspace, "x")
    text = HEADER + f"fine,x,{x},,,\n" + f"bad\x00byte,x,{x},,,\n" + f"also fine,x,{x},,,\n"
    resp = await send_csv(publishing, workspace, text)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert [r["status"] for r in out["rows"]] == ["created", "error", "created"]
    assert "NUL" in str(out["rows"][1]["errors"])

    body = await publishing.body(workspace, "x")
    body["content"]["text"] = "nul\x00inside"
    direct = await publishing.client.post(
        "/api/v1/posts", json=body, headers=publishing.headers(workspace, "owner")
    )
    assert direct.status_code == 422, direct.text
    for path in ("/api/v1/posts", "/api/v1/posts/export"):
        listed = await publishing.client.get(
            path, params={"tag": "a\x00b"}, headers=publishing.headers(workspace, "owner")
        )
        assert listed.status_code == 422, (path, listed.text)
