"""Merged OpenAPI: real FastAPI upstreams served by uvicorn on free ports, fetched over HTTP.

No `from __future__ import annotations` here: the fake services define their models inside
functions (so two of them can both be called `Post`), and FastAPI must resolve them eagerly.
"""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from chorus_gateway.openapi_merge import docs_html, merge_openapi, merge_specs
from chorus_testing.waiting import wait_for

pytestmark = pytest.mark.integration


class _Server(uvicorn.Server):
    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # leave pytest's SIGINT handling alone


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", http="h11", log_level="warning")
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_for(lambda: server.started or task.done(), timeout=10, interval=0.01)
    if task.done():
        task.result()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the services --------------------------------------------------------------------------

bearer = HTTPBearer()


def publishing_app() -> FastAPI:
    class Post(BaseModel):
        id: str
        text: str
        status: str

    class Page(BaseModel):
        items: list[Post]

    class Error(BaseModel):
        reason: str

    class Health(BaseModel):
        ok: bool

    app = FastAPI(title="publishing")

    @app.get("/api/v1/posts", response_model=Page, responses={409: {"model": Error}})
    async def list_posts(
        limit: int = 10, credentials: HTTPAuthorizationCredentials = Depends(bearer)
    ) -> Any: ...

    @app.post("/api/v1/posts", response_model=Post, tags=["posts"])
    async def create_post(post: Post) -> Any: ...

    @app.get("/api/v1/media/{media_id}", operation_id="get_item")
    async def get_media(media_id: str) -> dict[str, str]: ...

    @app.get("/api/v1/accounts/not-mine")  # routed to the connector, not here
    async def stray() -> dict[str, str]: ...

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Any: ...

    return app


def connector_app() -> FastAPI:
    class Post(BaseModel):  # same name, different shape
        platform: str
        platform_post_id: str

    class Page(BaseModel):  # identical text to publishing's, but its Post is another one
        items: list[Post]

    class Account(BaseModel):
        id: str
        handle: str
        last_post: Post | None = None

    app = FastAPI(title="connector")

    @app.get("/api/v1/accounts", response_model=list[Account])
    async def list_accounts(credentials: HTTPAuthorizationCredentials = Depends(bearer)) -> Any: ...

    @app.get("/api/v1/accounts/{account_id}/posts", response_model=Page)
    async def account_posts(account_id: str) -> Any: ...

    @app.post("/webhooks/{platform}", operation_id="get_item")
    async def webhook(platform: str) -> dict[str, str]: ...

    @app.delete("/api/v1/posts/{post_id}")  # publishing's path: must not come from here
    async def hijack(post_id: str) -> dict[str, str]: ...

    return app


def gateway_spec() -> dict[str, Any]:
    class Error(BaseModel):
        code: str
        message: str

    class Token(BaseModel):
        access_token: str

    app = FastAPI(title="Chorus API", version="1.2.3")

    @app.post(
        "/api/v1/auth/login", response_model=Token, tags=["auth"], responses={401: {"model": Error}}
    )
    async def login() -> Any: ...

    return app.openapi()


@pytest.fixture(scope="module")
async def services() -> AsyncIterator[dict[str, str]]:
    async with (
        serve(publishing_app()) as publishing,
        serve(connector_app()) as connector,
        serve(FastAPI(openapi_url=None)) as ai,
    ):
        yield {
            "publishing": publishing,
            "connector": connector,
            "ai": ai,  # up, but serves no spec
            "listening": f"http://127.0.0.1:{free_port()}",  # nothing listening
            "inbox": "",  # not deployed
        }


def all_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from all_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_refs(value)


def schema_of(spec: dict[str, Any], path: str, method: str, status: str = "200") -> Any:
    content = spec["paths"][path][method]["responses"][status]["content"]
    return content["application/json"]["schema"]


def assert_refs_resolve(spec: dict[str, Any]) -> None:
    for ref in all_refs(spec):
        _, _, section, name = ref.split("/")
        assert name in spec["components"][section], ref


# -- tests ---------------------------------------------------------------------------------


async def test_merge_real_services(services: dict[str, str]) -> None:
    async with httpx.AsyncClient() as client:
        merged = await merge_openapi(gateway_spec(), services, client, timeout=2.0)

    assert merged["info"]["title"] == "Chorus API"
    assert merged["info"]["version"] == "1.2.3"
    assert merged["info"]["x-unavailable-services"] == ["ai", "inbox", "listening"]

    # Only what each service owns per the gateway's routes.
    assert sorted(merged["paths"]) == [
        "/api/v1/accounts",
        "/api/v1/accounts/{account_id}/posts",
        "/api/v1/auth/login",
        "/api/v1/media/{media_id}",
        "/api/v1/posts",
        "/webhooks/{platform}",
    ]
    assert list(merged["paths"]) == sorted(merged["paths"])
    assert "delete" not in merged["paths"].get("/api/v1/posts/{post_id}", {})
    assert set(merged["paths"]["/api/v1/posts"]) == {"get", "post"}

    schemas = merged["components"]["schemas"]
    # Colliding names: both kept, prefixed, refs rewritten inside each service.
    assert "Post" not in schemas
    assert set(schemas["publishing_Post"]["properties"]) == {"id", "text", "status"}
    assert set(schemas["connector_Post"]["properties"]) == {"platform", "platform_post_id"}
    assert schema_of(merged, "/api/v1/posts", "post") == {
        "$ref": "#/components/schemas/publishing_Post"
    }
    # `Page` is textually identical in both, but points at different `Post`s: split too.
    assert "Page" not in schemas
    assert schemas["publishing_Page"]["properties"]["items"]["items"] == {
        "$ref": "#/components/schemas/publishing_Post"
    }
    assert schemas["connector_Page"]["properties"]["items"]["items"] == {
        "$ref": "#/components/schemas/connector_Post"
    }
    assert schema_of(merged, "/api/v1/posts", "get") == {
        "$ref": "#/components/schemas/publishing_Page"
    }
    account_post = schemas["Account"]["properties"]["last_post"]["anyOf"][0]
    assert account_post == {"$ref": "#/components/schemas/connector_Post"}
    # The gateway's own `Error` keeps its name; the service's different one is prefixed.
    assert set(schemas["Error"]["properties"]) == {"code", "message"}
    assert set(schemas["publishing_Error"]["properties"]) == {"reason"}
    assert schema_of(merged, "/api/v1/posts", "get", "409") == {
        "$ref": "#/components/schemas/publishing_Error"
    }
    # Identical definitions are merged, not duplicated.
    assert "HTTPValidationError" in schemas
    assert not any(k.endswith("_HTTPValidationError") for k in schemas)
    assert not any(k.endswith("_ValidationError") for k in schemas)
    assert list(merged["components"]["securitySchemes"]) == ["HTTPBearer"]
    # Components only reachable from dropped paths are not taken.
    assert "Health" not in schemas and "publishing_Health" not in schemas
    assert list(schemas) == sorted(schemas)
    assert_refs_resolve(merged)

    # Tags: explicit ones kept, untagged operations get their service's name.
    assert merged["paths"]["/api/v1/auth/login"]["post"]["tags"] == ["auth"]
    assert merged["paths"]["/api/v1/posts"]["post"]["tags"] == ["posts"]
    assert merged["paths"]["/api/v1/posts"]["get"]["tags"] == ["publishing"]
    assert merged["paths"]["/webhooks/{platform}"]["post"]["tags"] == ["connector"]
    assert {t["name"] for t in merged["tags"]} >= {"publishing", "connector"}
    # Clashing operationIds are made unique.
    assert (
        merged["paths"]["/api/v1/media/{media_id}"]["get"]["operationId"] == "publishing_get_item"
    )
    assert merged["paths"]["/webhooks/{platform}"]["post"]["operationId"] == "connector_get_item"


async def test_merge_is_deterministic(services: dict[str, str]) -> None:
    reordered = dict(reversed(list(services.items())))
    async with httpx.AsyncClient() as client:
        first, second = await asyncio.gather(
            merge_openapi(gateway_spec(), services, client, timeout=2.0),
            merge_openapi(gateway_spec(), reordered, client, timeout=2.0),
        )
    assert json.dumps(first) == json.dumps(second)


async def test_unreachable_services_only_listed() -> None:
    spec = gateway_spec()
    upstreams = {"publishing": f"http://127.0.0.1:{free_port()}", "analytics": ""}
    async with httpx.AsyncClient() as client:
        merged = await merge_openapi(spec, upstreams, client, timeout=1.0)
    assert merged["info"]["x-unavailable-services"] == ["analytics", "publishing"]
    assert list(merged["paths"]) == ["/api/v1/auth/login"]
    assert merged["components"] == spec["components"]


@pytest.mark.unit
def test_merge_rewrites_discriminators_and_security() -> None:
    gateway = {
        "openapi": "3.1.0",
        "info": {"title": "g", "version": "1"},
        "paths": {},
        "components": {"securitySchemes": {"Key": {"type": "apiKey", "in": "header", "name": "K"}}},
    }
    inbox = {
        "openapi": "3.1.0",
        "security": [{"Key": []}],  # top level: must survive on each operation
        "paths": {
            "/api/v1/inbox/messages": {
                "get": {
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Msg"}}
                            }
                        }
                    }
                }
            }
        },
        "components": {
            "securitySchemes": {"Key": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Msg": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/Dm"},
                        {"$ref": "#/components/schemas/Comment"},
                    ],
                    "discriminator": {
                        "propertyName": "kind",
                        "mapping": {"dm": "#/components/schemas/Dm", "comment": "Comment"},
                    },
                },
                "Dm": {"type": "object", "properties": {"kind": {"const": "dm"}}},
                "Comment": {"type": "object", "properties": {"kind": {"const": "comment"}}},
                "Unused": {"type": "string"},
            },
        },
    }
    analytics_comment = {"type": "object", "properties": {"likes": {"type": "integer"}}}
    analytics = {
        "paths": {
            "/api/v1/analytics/comments": {
                "get": {
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Comment"}
                                }
                            }
                        }
                    }
                }
            }
        },
        "components": {"schemas": {"Comment": analytics_comment}},
    }
    merged = merge_specs(gateway, {"inbox": inbox, "analytics": analytics}, unavailable=["ai"])
    schemas = merged["components"]["schemas"]
    assert set(schemas) == {"Dm", "inbox_Comment", "analytics_Comment", "Msg"}
    assert schemas["Msg"]["discriminator"]["mapping"] == {
        "dm": "#/components/schemas/Dm",
        "comment": "inbox_Comment",
    }
    assert schemas["Msg"]["oneOf"][1] == {"$ref": "#/components/schemas/inbox_Comment"}
    assert schemas["analytics_Comment"] == analytics_comment
    # The service's `Key` differs from the gateway's: renamed, and its requirement follows.
    assert set(merged["components"]["securitySchemes"]) == {"Key", "inbox_Key"}
    op = merged["paths"]["/api/v1/inbox/messages"]["get"]
    assert op["security"] == [{"inbox_Key": []}]
    assert merged["info"]["x-unavailable-services"] == ["ai"]
    assert "security" not in merged  # the gateway's top level is untouched
    assert_refs_resolve(merged)
    # The inputs are not modified.
    assert "inbox_Comment" not in json.dumps(inbox)
    assert "schemas" not in gateway["components"]


@pytest.mark.unit
def test_docs_html() -> None:
    html = docs_html("/api/v1/openapi.json")
    assert "/api/v1/openapi.json" in html
    assert "swagger-ui" in html
