"""Through the gateway only: register, create and publish a post, then see the events on the
topics with a plain Kafka consumer (not Chorus code)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from e2e_stack import read_endpoints

pytestmark = pytest.mark.e2e


async def read_topic(bootstrap: str, topic: str, want: int, timeout: float = 20.0) -> list:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"e2e-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(out) < want and loop.time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


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
        accounts = [str(uuid.uuid4()), str(uuid.uuid4())]
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
    commands = await read_topic(bootstrap, f"{prefix}connector.commands", want=2)
    mine = [r for r in commands if dict(r.headers).get("ce_tenantid") == workspace.encode()]
    assert len(mine) == 2, "one publish command per target, exactly once"
    posts = await read_topic(bootstrap, f"{prefix}publishing.posts", want=2)
    types = {
        dict(r.headers)["ce_type"].decode()
        for r in posts
        if dict(r.headers).get("ce_tenantid") == workspace.encode()
    }
    assert {
        "chorus.publishing.post.created.v1",
        "chorus.publishing.post.status_changed.v1",
    } <= types
    workspaces = await read_topic(bootstrap, f"{prefix}identity.workspaces", want=1)
    assert any(dict(r.headers).get("ce_tenantid") == workspace.encode() for r in workspaces)
