"""Helpers for gateway tests (a module of its own: `conftest` names are not importable)."""

from __future__ import annotations

from typing import Any

import httpx


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
