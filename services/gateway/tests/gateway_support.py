"""Helpers for gateway tests (a module of its own: `conftest` names are not importable)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from chorus_runtime.auth.tokens import Principal, verify_token
from chorus_testing.waiting import wait_for


class Tenant:
    """A registered workspace with its owner's session."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.access = body["accessToken"]
        self.refresh = body["refreshToken"]
        self.workspace_id = body["workspace"]["id"]
        self.user_id = body["user"]["id"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


async def register(
    client: httpx.AsyncClient,
    email: str,
    workspace: str = "Acme",
    password: str = "correct horse 42!",
) -> Tenant:
    resp = await client.post(
        "/api/v1/auth/register",
        json={
            "email": email,
            "password": password,
            "name": "Ann Owner",
            "workspaceName": workspace,
        },
    )
    assert resp.status_code == 201, resp.text
    return Tenant(resp.json())


# -- shared by the gateway_* test modules -----------------------------------------------------

PASSWORD = "correct horse 42!"
ERROR_FIELDS = {"code", "message", "details", "timestamp", "requestId"}
ISSUER = "chorus-gateway"
AUDIENCE = "chorus"


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The common error body (design.md §5), with the expected status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_FIELDS, error
    if code is not None:
        assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert error["timestamp"] and error["requestId"]
    return error  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def invite(
    client: httpx.AsyncClient, inviter: Tenant, email: str, role: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/team/invitations", json={"email": email, "role": role}, headers=inviter.headers
    )


async def accept(
    client: httpx.AsyncClient, token: str, *, name: str = "Invitee", password: str = PASSWORD
) -> httpx.Response:
    return await client.post(
        f"/api/v1/team/invitations/{token}/accept", json={"name": name, "password": password}
    )


async def join(
    client: httpx.AsyncClient,
    inviter: Tenant,
    email: str,
    role: str,
    *,
    password: str = PASSWORD,
) -> Tenant:
    """Invite `email` as `role` and accept: the new member's session in the inviter's workspace."""
    created = await invite(client, inviter, email, role)
    assert created.status_code == 201, created.text
    joined = await accept(client, created.json()["token"], name=role.title(), password=password)
    assert joined.status_code == 200, joined.text
    member = Tenant(joined.json())
    assert member.workspace_id == inviter.workspace_id
    return member


async def gateway_jwks(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.get("/.well-known/jwks.json")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def verify_with_gateway(client: httpx.AsyncClient, token: str) -> Principal:
    """Verify `token` as any service would: with the gateway's published JWKS."""
    return verify_token(token, await gateway_jwks(client), issuer=ISSUER, audience=AUDIENCE)


def unverified_header(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


# -- a real upstream (uvicorn on a free port, a task of the running loop) --------------------


class _Server(uvicorn.Server):
    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # leave pytest's SIGINT handling alone


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="off",
        http="h11",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
        proxy_headers=False,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_for(lambda: server.started or task.done(), timeout=10, interval=0.01)
    if task.done():
        task.result()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@dataclass
class Seen:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    @property
    def token(self) -> str:
        (authorization,) = self.values("authorization")
        scheme, _, token = authorization.partition(" ")
        assert scheme == "Bearer", authorization
        return token


@dataclass
class FakeUpstream:
    """Stands in for a domain service: checks nothing, records every request it receives."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.api_route(
            "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        )
        async def record(request: Request, path: str) -> JSONResponse:
            body = await request.body()
            self.seen.append(
                Seen(
                    request.method,
                    request.url.path,
                    [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
                    body,
                )
            )
            return JSONResponse({"ok": True, "path": request.url.path})

        return app

    def last(self) -> Seen:
        assert self.seen, "the upstream received nothing"
        return self.seen[-1]
