"""The sandbox's state: what each simulated platform has received and issued.

In memory on purpose: the sandbox stands in for third-party platforms, not for a Chorus
database; `POST /_sandbox/reset` empties it between tests.
"""

from __future__ import annotations

import itertools
import math
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class PlatformAccount:
    platform: str
    id: str  # the platform's own account id
    username: str
    display_name: str
    followers: int = 1000


@dataclass
class Token:
    platform: str
    account_id: str
    access_token: str
    refresh_token: str
    expires_at: float
    scopes: list[str]
    revoked: bool = False


@dataclass
class StoredPost:
    platform: str
    id: str
    account_id: str
    text: str
    body: Any
    created_at: datetime
    url: str
    kind: str = "post"  # post | container | upload | comment
    status: str = "published"  # published | pending (containers) | deleted
    extra: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def metrics(self, now: float | None = None) -> dict[str, int]:
        """Metrics grow with the post's age (deterministic per post)."""
        age_h = max(0.0, ((now or time.time()) - self.created_at.timestamp()) / 3600)
        rng = random.Random(self.seed)
        base = rng.randint(50, 500)
        growth = math.log1p(age_h * 12)
        impressions = int(base * 20 * growth) + rng.randint(0, 10)
        reach = int(impressions * rng.uniform(0.6, 0.9))
        likes = int(impressions * rng.uniform(0.02, 0.08))
        return {
            "impressions": impressions,
            "reach": reach,
            "likes": likes,
            "comments": int(likes * rng.uniform(0.05, 0.2)),
            "shares": int(likes * rng.uniform(0.02, 0.1)),
            "saves": int(likes * rng.uniform(0.01, 0.05)),
            "clicks": int(impressions * rng.uniform(0.005, 0.02)),
            "video_views": int(impressions * rng.uniform(0.3, 0.6))
            if self.extra.get("video")
            else 0,
        }


class Store:
    def __init__(self, seed: int = 42) -> None:
        self.seed = seed
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.accounts: dict[tuple[str, str], PlatformAccount] = {}
            self.tokens: dict[str, Token] = {}  # access token → Token
            self.refresh: dict[str, Token] = {}  # refresh token → Token
            self.codes: dict[str, dict[str, Any]] = {}  # auth code → {account, challenge, …}
            self.posts: dict[tuple[str, str], StoredPost] = {}
            self.calls: list[dict[str, Any]] = []
            self._ids = itertools.count(1_000_000)
            self._rng = random.Random(self.seed)

    def next_id(self) -> str:
        with self._lock:
            return str(next(self._ids))

    def account(self, platform: str, account_id: str | None = None) -> PlatformAccount:
        """The account behind an authorization (a new simulated user for each new id)."""
        with self._lock:
            account_id = account_id or str(next(self._ids))
            key = (platform, account_id)
            if key not in self.accounts:
                self.accounts[key] = PlatformAccount(
                    platform,
                    account_id,
                    username=f"{platform}_user_{account_id[-4:]}",
                    display_name=f"Sandbox {platform.title()} {account_id[-4:]}",
                    followers=self._rng.randint(100, 50_000),
                )
            return self.accounts[key]

    def issue_token(self, platform: str, account_id: str, scopes: list[str], ttl: float) -> Token:
        token = Token(
            platform,
            account_id,
            access_token=f"sbx-{platform}-at-{secrets.token_urlsafe(18)}",
            refresh_token=f"sbx-{platform}-rt-{secrets.token_urlsafe(18)}",
            expires_at=time.time() + ttl,
            scopes=scopes,
        )
        with self._lock:
            self.tokens[token.access_token] = token
            self.refresh[token.refresh_token] = token
        return token

    def rotate(self, refresh_token: str, ttl: float) -> Token | None:
        with self._lock:
            old = self.refresh.pop(refresh_token, None)
            if old is None or old.revoked:
                return None
            old.revoked = True
        return self.issue_token(old.platform, old.account_id, old.scopes, ttl)

    def token(self, platform: str, access_token: str) -> Token | None:
        token = self.tokens.get(access_token)
        if token is None or token.platform != platform or token.revoked:
            return None
        return token

    def add_post(self, post: StoredPost) -> StoredPost:
        with self._lock:
            post.seed = hash((post.platform, post.id, self.seed)) & 0xFFFFFFFF
            self.posts[(post.platform, post.id)] = post
        return post

    def get_post(self, platform: str, post_id: str) -> StoredPost | None:
        return self.posts.get((platform, post_id))

    def posts_of(
        self, platform: str | None = None, account_id: str | None = None
    ) -> list[StoredPost]:
        return [
            p
            for p in self.posts.values()
            if (platform is None or p.platform == platform)
            and (account_id is None or p.account_id == account_id)
            and p.kind == "post"
        ]

    def record_call(self, platform: str, method: str, path: str, status: int) -> None:
        with self._lock:
            self.calls.append(
                {
                    "platform": platform,
                    "method": method,
                    "path": path,
                    "status": status,
                    "at": datetime.now(UTC).isoformat(),
                }
            )
