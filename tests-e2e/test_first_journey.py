"""Through the gateway only: register, create and publish a post, then see the events on the
topics with a plain Kafka consumer (not Chorus code)."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from e2e_client import connect, of_tenant, wait_postable
from e2e_stack import read_endpoints

from chorus_testing.kafka_io import read_records

pytestmark = pytest.mark.e2e


async def test_register_post_publish_through_the_gateway(stack_state: Path) -> None:
    ep = read_endpoints(stack_state)
    prefix = ep["TOPIC_PREFIX"]
    async with httpx.AsyncClient(base_url=ep["GATEWAY_URL"], timeout=10) as gw:
        reg = await gw.post(
            "/api/v1/auth/register",
            json={
                "email": f"e2e-{uuid.uuid4().hex[:8]}@example.com",
                "password": "a long e2e passphrase",
                "name": "E2E Owner",
                "workspaceName": "E2E",
            },
        )
        assert reg.status_code == 201, reg.text
        workspace = reg.json()["workspace"]["id"]
        auth = {"Authorization": f"Bearer {reg.json()['accessToken']}"}
        # Posts target connected accounts only: connect two in the sandbox, and wait until
        # publishing has heard of them.
        accounts = [(await connect(gw, auth, p))["id"] for p in ("x", "linkedin")]
        await wait_postable(gw, auth, accounts)
        created = await gw.post(
            "/api/v1/posts",
            headers=auth,
            json={
                "content": {"text": "Hello from the gateway"},
                "platforms": [
                    {"platform": "x", "accountId": accounts[0]},
                    {"platform": "linkedin", "accountId": accounts[1]},
                ],
            },
        )
        assert created.status_code == 201, created.text
        assert created.headers["RateLimit-Remaining"]
        post_id = created.json()["post"]["id"]
        published = await gw.post(f"/api/v1/posts/{post_id}/publish", headers=auth)
        assert published.status_code == 202, published.text
        fetched = await gw.get(f"/api/v1/posts/{post_id}", headers=auth)
        assert fetched.json()["post"]["status"] == "publishing"
        anonymous = await gw.get(f"/api/v1/posts/{post_id}")
        assert anonymous.status_code == 401

    bootstrap = ep["KAFKA_BOOTSTRAP_SERVERS"]

    def at_least(n: int):  # type: ignore[no-untyped-def]
        return lambda records: len(of_tenant(records, workspace)) >= n

    commands = await read_records(bootstrap, f"{prefix}connector.commands", until=at_least(2))
    assert len(of_tenant(commands, workspace)) == 2, "one publish command per target, once"
    posts = await read_records(bootstrap, f"{prefix}publishing.posts", until=at_least(2))
    types = {dict(r.headers)["ce_type"].decode() for r in of_tenant(posts, workspace)}
    assert {
        "chorus.publishing.post.created.v1",
        "chorus.publishing.post.status_changed.v1",
    } <= types
    workspaces = await read_records(bootstrap, f"{prefix}identity.workspaces", until=at_least(1))
    assert of_tenant(workspaces, workspace)
