"""The sandbox's state: what each simulated platform has received and issued.

In memory on purpose: the sandbox stands in for third-party platforms, not for a Chorus
database; `POST /_sandbox/reset` empties it between tests.
"""

from __future__ import annotations

import itertools
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chorus_sandbox import growth


@dataclass
class PlatformAccount:
    platform: str
    id: str  # the platform's own account id
    username: str
    display_name: str
    base_followers: int = 1000
    seed: int = 0
    created_at: float = field(default_factory=time.time)  # on the sandbox clock
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    @property
    def followers(self) -> int:
        """Grows with the account's age on the sandbox clock (deterministic per seed)."""
        return growth.followers(self.seed, self.base_followers, self.clock() - self.created_at)


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
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def metrics(self, now: float | None = None) -> dict[str, int]:
        """Metrics grow with the post's age on the sandbox clock (deterministic per post)."""
        age = (now if now is not None else self.clock()) - self.created_at.timestamp()
        return growth.post_metrics(self.seed, age, video=bool(self.extra.get("video")))


@dataclass
class InboundRecord:
    """A comment, message or mention the sandbox made up and pushed by webhook."""

    platform: str
    kind: str  # comment | message | mention
    id: str
    account_id: str  # the account it is for (on the platform)
    author_id: str
    author_username: str
    author_name: str
    text: str
    created_at: datetime
    post_id: str | None = None


class Store:
    def __init__(self, seed: int = 42) -> None:
        self.seed = seed
        self.clock = growth.Clock()
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
            self.inbound: list[InboundRecord] = []
            self._ids = itertools.count(1_000_000)
            self._rng = random.Random(self.seed)
            self.clock.reset()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def rng(self, *parts: object) -> random.Random:
        """A generator for one purpose, deterministic from the seed and `parts`."""
        return random.Random(growth.stable_seed(self.seed, *parts))

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
                    base_followers=self._rng.randint(100, 50_000),
                    seed=growth.stable_seed(self.seed, platform, account_id),
                    created_at=self.clock(),
                    clock=self.clock,
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
            post.seed = growth.stable_seed(self.seed, post.platform, post.id)
            post.clock = self.clock
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

    def add_inbound(self, record: InboundRecord) -> InboundRecord:
        with self._lock:
            self.inbound.append(record)
        return record

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
