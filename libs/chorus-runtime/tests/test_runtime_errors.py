"""The one error body (design.md §5) on every path a request can fail, and request ids."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from chorus_runtime import errors
from chorus_runtime.errors import ChorusError, install_error_handlers
from chorus_runtime.http import RequestContextMiddleware
from chorus_runtime.service import Role, ServiceRuntime
from chorus_runtime.settings import ServiceSettings
from chorus_runtime.telemetry import JsonFormatter

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-connection-string-postgres://admin:hunter2@db"
ERROR_CLASSES: list[tuple[type[ChorusError], int, str]] = [
    (errors.ChorusError, 400, "BAD_REQUEST"),
    (errors.ValidationFailed, 422, "VALIDATION_ERROR"),
    (errors.Unauthorized, 401, "UNAUTHORIZED"),
    (errors.Forbidden, 403, "FORBIDDEN"),
    (errors.NotFound, 404, "NOT_FOUND"),
    (errors.Conflict, 409, "CONFLICT"),
    (errors.AlreadyExists, 409, "ALREADY_EXISTS"),
    (errors.PayloadTooLarge, 413, "PAYLOAD_TOO_LARGE"),
    (errors.RateLimited, 429, "RATE_LIMIT_EXCEEDED"),
    (errors.QuotaExceeded, 403, "QUOTA_EXCEEDED"),
    (errors.PlatformApiError, 502, "PLATFORM_API_ERROR"),
    (errors.ServiceUnavailable, 503, "SERVICE_UNAVAILABLE"),
]
BY_NAME = {cls.__name__: cls for cls, _, _ in ERROR_CLASSES}


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    count: int = Field(ge=0)


def routes() -> APIRouter:
    router = APIRouter()

    @router.get("/raise/{name}")
    async def raise_named(name: str) -> None:
        cls = BY_NAME[name]
        raise cls(f"{name} happened", details={"why": name})

    @router.get("/rate-limited")
    async def rate_limited() -> None:
        raise errors.RateLimited("slow down", headers={"Retry-After": "7"}, details={"limit": 100})

    @router.get("/custom")
    async def custom() -> None:
        raise ChorusError("teapot", code="I_AM_A_TEAPOT", status_code=418)

    @router.post("/items", status_code=201)
    async def create_item(item: Item) -> Item:
        return item

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError(SECRET)

    return router


def bare_app() -> FastAPI:
    """Wiring without ServiceRuntime: the handlers plus the request-id middleware."""
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(routes())
    app.add_middleware(RequestContextMiddleware, service="errors-test")
    return app


def runtime_app() -> FastAPI:
    """The full stack every service gets (tracing instrumentation included); no I/O happens
    because the lifespan is not entered."""

    class Settings(ServiceSettings):
        service_name = "errtest"

    runtime = ServiceRuntime(
        Settings(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none"),
        title="errors test",
        uses_database=False,
    )
    runtime.include_router(routes())
    return runtime.create_app(Role.API)


@pytest.fixture(params=["bare", "runtime"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    app = bare_app() if request.param == "bare" else runtime_app()
    # raise_app_exceptions=False: Starlette re-raises a 500's exception after answering, as a
    # server would log it; the client must still see the response.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def assert_error_body(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert list(body) == ["error"]
    err = body["error"]
    assert set(err) == {"code", "message", "details", "timestamp", "requestId"}
    assert err["code"] == code
    assert isinstance(err["message"], str)
    assert err["message"]
    assert err["timestamp"].endswith("Z")
    stamp = datetime.fromisoformat(err["timestamp"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    assert err["requestId"], "every error names its request"
    assert resp.headers["x-request-id"] == err["requestId"]
    return err  # type: ignore[no-any-return]


@pytest.mark.parametrize(("cls", "status", "code"), ERROR_CLASSES)
async def test_chorus_errors_use_the_common_body(
    client: httpx.AsyncClient, cls: type[ChorusError], status: int, code: str
) -> None:
    resp = await client.get(f"/raise/{cls.__name__}", headers={"X-Request-ID": "req-1"})
    err = assert_error_body(resp, status, code)
    assert err["message"] == f"{cls.__name__} happened"
    assert err["details"] == {"why": cls.__name__}
    assert err["requestId"] == "req-1"


async def test_unauthorized_carries_www_authenticate(client: httpx.AsyncClient) -> None:
    resp = await client.get("/raise/Unauthorized")
    assert_error_body(resp, 401, "UNAUTHORIZED")
    assert resp.headers["www-authenticate"] == "Bearer"


async def test_error_headers_reach_the_client(client: httpx.AsyncClient) -> None:
    resp = await client.get("/rate-limited")
    err = assert_error_body(resp, 429, "RATE_LIMIT_EXCEEDED")
    assert resp.headers["retry-after"] == "7"
    assert err["details"] == {"limit": 100}


async def test_code_and_status_can_be_overridden(client: httpx.AsyncClient) -> None:
    assert_error_body(await client.get("/custom"), 418, "I_AM_A_TEAPOT")


async def test_request_validation_is_422_with_field_details(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/items", json={"name": "", "count": -1, "colour": "red"}, headers={"X-Request-ID": "v1"}
    )
    err = assert_error_body(resp, 422, "VALIDATION_ERROR")
    assert err["requestId"] == "v1"
    fields = {d["field"]: d for d in err["details"]}
    assert set(fields) == {"name", "count", "colour"}
    assert fields["name"]["type"] == "string_too_short"
    assert fields["count"]["type"] == "greater_than_equal"
    assert fields["colour"]["type"] == "extra_forbidden"
    for d in err["details"]:
        assert set(d) == {"field", "message", "type"}
        assert d["message"]


async def test_missing_body_is_422(client: httpx.AsyncClient) -> None:
    err = assert_error_body(await client.post("/items"), 422, "VALIDATION_ERROR")
    assert err["details"][0]["type"] == "missing"


async def test_valid_body_passes(client: httpx.AsyncClient) -> None:
    resp = await client.post("/items", json={"name": "a", "count": 1})
    assert resp.status_code == 201
    assert resp.json() == {"name": "a", "count": 1}
    assert resp.headers["x-request-id"]


@pytest.mark.parametrize("raw", [b"{", b'{"name": "a",}', b"not json", b'{"name": "a"'])
async def test_malformed_json_is_400(client: httpx.AsyncClient, raw: bytes) -> None:
    resp = await client.post("/items", content=raw, headers={"Content-Type": "application/json"})
    err = assert_error_body(resp, 400, "INVALID_JSON")
    assert err["details"][0]["type"] == "json_invalid"


async def test_unknown_route_is_404(client: httpx.AsyncClient) -> None:
    err = assert_error_body(await client.get("/no/such/route"), 404, "NOT_FOUND")
    assert err["details"] is None


async def test_wrong_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    resp = await client.delete("/items")
    assert_error_body(resp, 405, "METHOD_NOT_ALLOWED")
    assert resp.headers["allow"] == "POST"


class JsonCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("errors-test"))
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def test_unhandled_exception_is_500_without_internals(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    capture = JsonCapture()
    logging.getLogger("chorus.errors").addHandler(capture)
    try:
        resp = await client.get("/boom", headers={"X-Request-ID": "boom-1"})
    finally:
        logging.getLogger("chorus.errors").removeHandler(capture)
    err = assert_error_body(resp, 500, "INTERNAL_ERROR")
    assert err["message"] == "internal error"
    assert err["details"] is None
    assert err["requestId"] == "boom-1"
    for leak in (SECRET, "hunter2", "Traceback", "RuntimeError", "test_runtime_errors"):
        assert leak not in resp.text
    # The operator still gets the exception, tied to the request id.
    logged = [r for r in caplog.records if r.name == "chorus.errors"]
    assert logged
    assert logged[0].exc_info is not None
    assert SECRET in str(logged[0].exc_info[1])
    (line,) = capture.lines
    assert line["requestId"] == "boom-1", "the log line is tied to the request"
    assert "RuntimeError" in line["exc"]


# -- request ids -------------------------------------------------------------------------------


async def test_a_request_id_is_generated_and_echoed(client: httpx.AsyncClient) -> None:
    first = assert_error_body(await client.get("/raise/NotFound"), 404, "NOT_FOUND")
    second = assert_error_body(await client.get("/raise/NotFound"), 404, "NOT_FOUND")
    assert re.fullmatch(r"[0-9a-f]{32}", first["requestId"])
    assert first["requestId"] != second["requestId"]


async def test_a_generated_request_id_is_echoed_on_500(client: httpx.AsyncClient) -> None:
    err = assert_error_body(await client.get("/boom"), 500, "INTERNAL_ERROR")
    assert re.fullmatch(r"[0-9a-f]{32}", err["requestId"])


@pytest.mark.parametrize(
    "good", ["abc", "a-b_c.d", "0195807b-5e28-7c3e-8f5e-3a1b2c3d4e5f", "A" * 128]
)
async def test_a_sane_request_id_is_kept(client: httpx.AsyncClient, good: str) -> None:
    err = assert_error_body(
        await client.get("/raise/Conflict", headers={"X-Request-ID": good}), 409, "CONFLICT"
    )
    assert err["requestId"] == good


@pytest.mark.parametrize(
    "hostile",
    ["has spaces", "<script>alert(1)</script>", "a;b", "../../etc", "a%0d%0ab", "a/b"],
)
async def test_a_hostile_request_id_is_replaced(client: httpx.AsyncClient, hostile: str) -> None:
    resp = await client.get("/raise/Conflict", headers={"X-Request-ID": hostile})
    err = assert_error_body(resp, 409, "CONFLICT")
    assert err["requestId"] != hostile
    assert re.fullmatch(r"[0-9a-f]{32}", err["requestId"])


async def test_an_overlong_request_id_is_cut_to_128(client: httpx.AsyncClient) -> None:
    resp = await client.get("/raise/Conflict", headers={"X-Request-ID": "ab" * 100})
    assert assert_error_body(resp, 409, "CONFLICT")["requestId"] == "ab" * 64


@pytest.mark.parametrize(
    "raw",
    [
        b"abc\r\nSet-Cookie: x=1",
        b"abc\ndef",
        b"tab\there",
        b"\x00null",
        "caf\u00e9".encode("latin-1"),
    ],
)
async def test_control_and_non_ascii_request_ids_are_replaced(raw: bytes) -> None:
    """Below httpx (which refuses such headers): a raw ASGI request, as a server delivers it."""
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "headers": [(b"x-request-id", raw)],
    }
    await RequestContextMiddleware(app, service="errors-test")(scope, receive, send)
    (start,) = [m for m in sent if m["type"] == "http.response.start"]
    echoed = dict(start["headers"])[b"x-request-id"]
    assert echoed != raw
    assert re.fullmatch(rb"[0-9a-f]{32}", echoed)
