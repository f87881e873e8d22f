"""`python -m chorus_sandbox.demo`: a demo workspace for `make up` (dev only).

Everything a visitor does by hand goes through the gateway like any client: register the
demo owner, upgrade the plan, connect three sandbox accounts through their OAuth pages,
publish two posts now, keep one scheduled for tomorrow and one draft. Two weeks of history
cannot be published in the past, so it is replayed onto the topics as the connector and
publishing would have emitted it (deliveries, metric snapshots, follower counts): the
analytics dashboards show real charts at once, from the same pipeline as live data.

Idempotent: the owner, posts and history are added only when missing; the three accounts
are reconnected on every run (same sandbox users, so the same accounts with fresh tokens).
Exit codes: 0 seeded (or already there), 1 failed (the message says where), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from chorus_contracts.catalog import EventData, build_event
from chorus_contracts.envelope import encode
from chorus_contracts.events.connector import (
    AccountMetricsCollected,
    DeliverySucceeded,
    PostMetricsCollected,
)
from chorus_contracts.events.publishing import (
    PostCreated,
    PostStatus,
    PostStatusChanged,
    TargetRef,
)

DEMO_EMAIL = "demo@chorus.dev"
DEMO_PASSWORD = "harmony across every network"
DEMO_PLATFORMS = ("x", "linkedin", "mastodon")
REDIRECT_URI = "https://app.chorus.dev/oauth/callback"
HISTORY_TEXTS = (
    "Behind the scenes: how our team plans a launch week #launch #teamwork",
    "Five lessons from a year of shipping weekly #productivity",
    "Customer story: scaling support without losing the human touch #customers",
    "Our roadmap for the next quarter, in one thread #roadmap",
    "Live Q&A on Thursday at 17:00 CET: bring your questions #community",
    "What we learned moving our analytics to SQL #data",
    "A small feature that saves our users an hour a week #productivity",
)


class DemoError(Exception):
    """The demo could not be seeded; the message says which step failed."""


def say(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


@dataclass
class Demo:
    workspace_id: str
    user_id: str
    auth: dict[str, str]
    accounts: dict[str, dict[str, Any]]


# -- through the gateway ---------------------------------------------------------------------


async def _check(resp: httpx.Response, step: str, *ok: int) -> dict[str, Any]:
    if resp.status_code not in ok:
        raise DemoError(f"{step}: HTTP {resp.status_code} {resp.text[:300]}")
    return resp.json() if resp.content else {}


async def sign_in(gw: httpx.AsyncClient) -> Demo:
    """Log in as the demo owner, registering (and upgrading the plan) the first time."""
    resp = await gw.post(
        "/api/v1/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
    )
    if resp.status_code != 200:
        say("registering the demo owner and upgrading the plan")
        resp = await gw.post(
            "/api/v1/auth/register",
            json={
                "email": DEMO_EMAIL,
                "password": DEMO_PASSWORD,
                "name": "Demo Owner",
                "workspaceName": "Chorus Demo",
            },
        )
        await _check(resp, "register the demo owner", 201)
    body = resp.json()
    demo = Demo(
        body["workspace"]["id"],
        body["user"]["id"],
        {"Authorization": f"Bearer {body['accessToken']}"},
        {},
    )
    await _check(
        await gw.put("/api/v1/workspace/plan", headers=demo.auth, json={"plan": "professional"}),
        "upgrade the demo plan",
        200,
    )
    return demo


async def connect(gw: httpx.AsyncClient, demo: Demo, platform: str) -> dict[str, Any]:
    start = await _check(
        await gw.post(
            f"/api/v1/accounts/connect/{platform}",
            headers=demo.auth,
            json={"redirectUri": REDIRECT_URI},
        ),
        f"start connecting {platform}",
        200,
    )
    # The sandbox's consent page answers with a redirect straight back, carrying the code.
    # A fixed sandbox user per platform: reconnecting (after the in-memory sandbox restarted
    # and the old tokens died) renews the same account instead of adding another.
    async with httpx.AsyncClient(timeout=10) as browser:
        url = httpx.URL(start["authorizeUrl"])
        consent = await browser.get(url.copy_add_param("sandbox_account", f"demo-{platform}"))
    if consent.status_code not in (302, 303):
        raise DemoError(f"{platform} consent page: HTTP {consent.status_code}")
    query = parse_qs(urlparse(consent.headers["location"]).query)
    done = await _check(
        await gw.get(
            f"/api/v1/accounts/callback/{platform}",
            headers=demo.auth,
            params={"code": query["code"][0], "state": query["state"][0]},
        ),
        f"finish connecting {platform}",
        201,
    )
    return done["account"]  # type: ignore[no-any-return]


async def create_post(
    gw: httpx.AsyncClient, demo: Demo, payload: dict[str, Any], timeout: float = 30.0
) -> dict[str, Any]:
    """POST /posts, waiting while publishing has not yet heard of the new accounts (their
    projection arrives through `connector.accounts`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        resp = await gw.post("/api/v1/posts", headers=demo.auth, json=payload)
        if resp.status_code == 201:
            return resp.json()["post"]  # type: ignore[no-any-return]
        rules = {d.get("rule") for d in (resp.json().get("error", {}).get("details") or [])}
        waiting = resp.status_code == 422 and "account_not_connected" in rules
        if not waiting or asyncio.get_running_loop().time() > deadline:
            raise DemoError(f"create a demo post: HTTP {resp.status_code} {resp.text[:300]}")
        await asyncio.sleep(0.5)


def targets(demo: Demo) -> list[dict[str, str]]:
    return [{"platform": p, "accountId": a["id"]} for p, a in demo.accounts.items()]


async def live_posts(gw: httpx.AsyncClient, demo: Demo) -> None:
    for text in (
        "Welcome to Chorus: this post went out through the sandbox just now #chorus",
        "One calendar, every network: scheduling made boring (in the good way) #chorus",
    ):
        post = await create_post(gw, demo, {"content": {"text": text}, "platforms": targets(demo)})
        await _check(
            await gw.post(f"/api/v1/posts/{post['id']}/publish", headers=demo.auth),
            "publish a demo post",
            202,
        )
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    await create_post(
        gw,
        demo,
        {
            "content": {"text": "Tomorrow morning: our weekly product notes #release"},
            "platforms": targets(demo),
            "scheduledAt": f"{tomorrow.isoformat()}T09:00:00",
            "timezone": "Europe/Berlin",
            "campaign": "weekly-notes",
        },
    )
    await create_post(
        gw,
        demo,
        {"content": {"text": "Draft: ideas for next month's campaign"}, "platforms": targets(demo)},
    )


# -- history, replayed onto the topics -------------------------------------------------------


def growth(total: int, days: float) -> int:
    """Cumulative count `days` after publishing: most engagement comes in the first days."""
    return int(total * (1 - math.exp(-max(days, 0.0) / 1.5)))


def history_events(
    demo: Demo, *, days: int, now: datetime, seed: int = 7
) -> list[tuple[str, str, EventData]]:
    """(topic, key, event) for `days` of published posts with daily metric snapshots and
    follower counts. Deterministic for a seed."""
    # Seeded per workspace: a second replay (seeding raced the first one's ingestion) repeats
    # the same posts, ids and numbers, which the dashboards' per-post rollups absorb.
    rng = random.Random(f"{seed}:{demo.workspace_id}")
    out: list[tuple[str, str, EventData]] = []
    ws = uuid.UUID(demo.workspace_id)
    author = uuid.UUID(demo.user_id)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for platform, account in demo.accounts.items():
        account_id = uuid.UUID(account["id"])
        followers = rng.randint(800, 5000)
        for day in range(days, 0, -1):
            midnight = today - timedelta(days=day)
            followers += rng.randint(3, 40)
            out.append(
                (
                    "connector.metrics",
                    str(account_id),
                    AccountMetricsCollected(
                        workspace_id=ws,
                        account_id=account_id,
                        platform=platform,
                        followers=followers,
                        following=rng.randint(100, 300),
                        posts=days - day,
                        collected_at=midnight + timedelta(hours=23, minutes=30),
                    ),
                )
            )
            # Mornings and late afternoons do better: something for best-time to find.
            hour = rng.choice((8, 9, 12, 17, 18, 21))
            published_at = midnight + timedelta(hours=hour, minutes=rng.randint(0, 59))
            out.extend(
                _history_post(rng, ws, author, platform, account_id, published_at, now, hour)
            )
    return out


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _history_post(
    rng: random.Random,
    ws: uuid.UUID,
    author: uuid.UUID,
    platform: str,
    account_id: uuid.UUID,
    published_at: datetime,
    now: datetime,
    hour: int,
) -> list[tuple[str, str, EventData]]:
    post_id, target_id, command_id = (_uuid(rng) for _ in range(3))
    text = rng.choice(HISTORY_TEXTS)
    hashtags = [w[1:] for w in text.split() if w.startswith("#")]
    key = str(post_id)
    scheduled = published_at - timedelta(seconds=1)
    events: list[tuple[str, str, EventData]] = [
        (
            "publishing.posts",
            key,
            PostCreated(
                post_id=post_id,
                workspace_id=ws,
                author_id=author,
                status=PostStatus.SCHEDULED,
                text=text,
                hashtags=hashtags,
                targets=[TargetRef(target_id=target_id, platform=platform, account_id=account_id)],
                scheduled_at=scheduled,
                timezone="UTC",
                created_at=published_at - timedelta(days=1),
            ),
        ),
        (
            "publishing.posts",
            key,
            PostStatusChanged(
                post_id=post_id,
                workspace_id=ws,
                previous_status=PostStatus.PUBLISHING,
                status=PostStatus.PUBLISHED,
                scheduled_at=scheduled,
                changed_at=published_at,
            ),
        ),
    ]
    platform_post_id = f"demo-{_uuid(rng).hex[:12]}"
    events.append(
        (
            "connector.deliveries",
            str(account_id),
            DeliverySucceeded(
                command_id=command_id,
                workspace_id=ws,
                post_id=post_id,
                target_id=target_id,
                platform=platform,
                account_id=account_id,
                attempt=1,
                platform_post_id=platform_post_id,
                published_at=published_at,
            ),
        )
    )
    boost = 1.6 if hour in (8, 9, 17, 18) else 1.0
    impressions = int(rng.randint(400, 4000) * boost)
    totals = {
        "impressions": impressions,
        "reach": int(impressions * 0.7),
        "likes": int(impressions * rng.uniform(0.02, 0.06)),
        "comments": int(impressions * rng.uniform(0.002, 0.01)),
        "shares": int(impressions * rng.uniform(0.002, 0.008)),
        "saves": int(impressions * rng.uniform(0.001, 0.005)),
        "clicks": int(impressions * rng.uniform(0.01, 0.03)),
    }
    snapshot = published_at + timedelta(hours=6)
    while snapshot < now:
        age = (snapshot - published_at).total_seconds() / 86400
        events.append(
            (
                "connector.metrics",
                str(account_id),
                PostMetricsCollected(
                    workspace_id=ws,
                    account_id=account_id,
                    platform=platform,
                    post_id=post_id,
                    target_id=target_id,
                    platform_post_id=platform_post_id,
                    collected_at=snapshot,
                    **{name: growth(total, age) for name, total in totals.items()},
                ),
            )
        )
        snapshot += timedelta(days=1)
    return events


async def replay(bootstrap: str, prefix: str, events: list[tuple[str, str, EventData]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        sends = []
        for topic, key, data in events:
            tenant = str(data.workspace_id)  # type: ignore[attr-defined]
            event = build_event(data, source="/chorus/demo", subject=key, tenant_id=tenant)
            headers, value = encode(event)
            sends.append(
                await producer.send(
                    f"{prefix}{topic}", value=value, key=key.encode(), headers=headers
                )
            )
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


# -- the command -----------------------------------------------------------------------------


async def seed(args: argparse.Namespace) -> int:
    # Each part is checked on its own: Postgres outlives the embedded broker and the
    # analytics store, so a re-run may find the workspace but not its history.
    async with httpx.AsyncClient(base_url=args.gateway_url, timeout=15) as gw:
        demo = await sign_in(gw)
        listed = await _check(await gw.get("/api/v1/accounts", headers=demo.auth), "accounts", 200)
        demo.accounts = {a["platform"]: a for a in listed["accounts"]}
        # Always (re)connected: the sandbox keeps its tokens in memory, so after a restart
        # the stored ones are dead; reconnecting the same sandbox user renews the same account.
        for platform in DEMO_PLATFORMS:
            say(f"connecting the sandbox {platform} account")
            demo.accounts[platform] = await connect(gw, demo, platform)
        posts = await _check(await gw.get("/api/v1/posts", headers=demo.auth), "posts", 200)
        if not posts["posts"]:
            say("publishing two posts now, scheduling one for tomorrow, keeping one draft")
            await live_posts(gw, demo)
        overview = await _check(
            await gw.get("/api/v1/analytics/overview", headers=demo.auth), "overview", 200
        )
        has_history = overview["metrics"]["posts"]["current"] > len(posts["posts"])
    if not has_history:
        events = history_events(demo, days=args.days, now=datetime.now(UTC))
        say(f"replaying {args.days} days of history ({len(events)} events) onto the topics")
        await replay(args.kafka_bootstrap_servers, args.topic_prefix, events)
    say(f"demo ready: log in as {DEMO_EMAIL} / {DEMO_PASSWORD!r}")
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="chorus-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway-url", required=True)
    parser.add_argument("--kafka-bootstrap-servers", required=True)
    parser.add_argument("--topic-prefix", default="")
    parser.add_argument("--days", type=int, default=14, help="days of history (default 14)")
    args = parser.parse_args(argv)
    if not 1 <= args.days <= 90:
        parser.error("--days must be between 1 and 90")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(seed(args))
    except (DemoError, httpx.HTTPError, KafkaError, OSError) as exc:
        say(f"failed: {exc}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
