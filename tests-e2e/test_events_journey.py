"""Deploy-issue journey 7: a plain Kafka consumer (no Chorus code) reads `publishing.posts`
and finds CloudEvents binary-mode headers and payloads valid against the published JSON
Schemas in `schemas/events/`."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import jsonschema
import pytest
from e2e_client import connect, create_post, of_tenant, register
from e2e_stack import ROOT, read_endpoints

from chorus_testing.kafka_io import read_records

pytestmark = pytest.mark.e2e
SCHEMAS = ROOT / "schemas" / "events"
REQUIRED_HEADERS = ("ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "content-type")


async def test_plain_consumer_reads_valid_cloudevents(stack_state: Path) -> None:
    ep = read_endpoints(stack_state)
    async with httpx.AsyncClient(base_url=ep["GATEWAY_URL"], timeout=15) as gw:
        owner = await register(gw, "events")
        account = await connect(gw, owner.auth, "mastodon")
        created = await create_post(
            gw,
            owner.auth,
            {
                "content": {"text": "Events for everyone #schemas", "hashtags": ["schemas"]},
                "platforms": [{"platform": "mastodon", "accountId": account["id"]}],
            },
        )
        assert created.status_code == 201, created.text
        post_id = created.json()["post"]["id"]
        publish = await gw.post(f"/api/v1/posts/{post_id}/publish", headers=owner.auth)
        assert publish.status_code == 202, publish.text

    topic = f"{ep['TOPIC_PREFIX']}publishing.posts"

    def published(records: list) -> bool:  # type: ignore[type-arg]
        return any(
            json.loads(r.value).get("status") == "published"
            for r in of_tenant(records, owner.workspace_id)
        )

    records = of_tenant(
        await read_records(ep["KAFKA_BOOTSTRAP_SERVERS"], topic, until=published, timeout=30),
        owner.workspace_id,
    )
    assert published(records), [dict(r.headers).get("ce_type") for r in records]

    seen_types = set()
    ids = set()
    for record in records:
        headers = {k: v.decode() for k, v in record.headers}
        for name in REQUIRED_HEADERS:
            assert headers.get(name), f"{name} missing in {headers}"
        assert headers["ce_specversion"] == "1.0"
        assert headers["content-type"].startswith("application/json")
        assert uuid.UUID(headers["ce_id"]).version == 7
        assert datetime.fromisoformat(headers["ce_time"].replace("Z", "+00:00")).tzinfo
        assert record.key == post_id.encode(), "keyed by post: one partition orders a post"
        schema_file = SCHEMAS / f"{headers['ce_type']}.json"
        assert schema_file.exists(), f"no published schema for {headers['ce_type']}"
        payload = json.loads(record.value)
        jsonschema.validate(payload, json.loads(schema_file.read_text()))
        seen_types.add(headers["ce_type"])
        ids.add(headers["ce_id"])
    assert len(ids) == len(records), "every event has its own id"
    assert {
        "chorus.publishing.post.created.v1",
        "chorus.publishing.post.status_changed.v1",
    } <= seen_types
