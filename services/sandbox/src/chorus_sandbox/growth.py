"""Deterministic growth of simulated metrics (pure: no clock, no state).

The same seed, id and elapsed time always give the same numbers, in any process (the seed is
derived with SHA-256, never Python's per-process `hash`), and the numbers never go down as
time passes. Engagement grows fast at first and then slows (logarithmically), like a real
post's; followers grow with the square root of the account's age in whole hours, so two reads
within the same hour agree.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time


def stable_seed(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def post_metrics(seed: int, age_seconds: float, *, video: bool = False) -> dict[str, int]:
    """A post's metrics `age_seconds` after it was published."""
    age_h = max(0.0, age_seconds / 3600)
    rng = random.Random(seed)  # the post's fixed character: reach, rates
    base = rng.randint(50, 500)
    growth = math.log1p(age_h * 12)
    impressions = int(base * 20 * growth) + rng.randint(0, 10)
    reach = int(impressions * rng.uniform(0.6, 0.9))
    likes = int(impressions * rng.uniform(0.02, 0.08))
    comments = int(likes * rng.uniform(0.05, 0.2))
    shares = int(likes * rng.uniform(0.02, 0.1))
    saves = int(likes * rng.uniform(0.01, 0.05))
    clicks = int(impressions * rng.uniform(0.005, 0.02))
    views = int(impressions * rng.uniform(0.3, 0.6))
    return {
        "impressions": impressions,
        "reach": reach,
        "likes": likes,
        "comments": comments,
        "shares": shares,
        "saves": saves,
        "clicks": clicks,
        "video_views": views if video else 0,
    }


def followers(seed: int, base: int, age_seconds: float) -> int:
    """An account's followers `age_seconds` after the sandbox first saw it."""
    hours = int(max(0.0, age_seconds) // 3600)
    rate = random.Random(seed).uniform(0.5, 3.0)  # followers per sqrt(hour)
    return base + int(rate * math.sqrt(hours) * max(1.0, base / 1000))


class Clock:
    """The sandbox's clock: real time plus an offset that tests move forward
    (`POST /_sandbox/metrics/advance`), so metrics grow without sleeping."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.offset = 0.0
        self.frozen_at: float | None = None

    def __call__(self) -> float:
        base = self.frozen_at if self.frozen_at is not None else time.time()
        return base + self.offset

    def freeze(self) -> None:
        """Stop real time (only `advance` moves the clock): tests compare exact numbers."""
        self.frozen_at = time.time()

    def advance(self, seconds: float) -> float:
        with self._lock:
            self.offset += seconds
            return self.offset

    def reset(self) -> None:
        with self._lock:
            self.offset = 0.0
            self.frozen_at = None
