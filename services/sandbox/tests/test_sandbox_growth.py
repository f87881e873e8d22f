"""The sandbox's metric generator: deterministic from seed, id and elapsed time, and growing
(sub-linearly) as time passes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from chorus_sandbox import growth
from chorus_sandbox.store import Store, StoredPost

pytestmark = pytest.mark.unit

HOUR = 3600.0
AGES = [0.0, 60.0, HOUR, 6 * HOUR, 24 * HOUR, 7 * 24 * HOUR, 30 * 24 * HOUR]


def test_seeds_are_stable_across_processes() -> None:
    # SHA-256, not Python's per-process string hash: a literal pins it.
    assert growth.stable_seed(42, "x", "1000000") == 0x6D01243B2ED54B37
    assert growth.stable_seed(42, "x", "1") != growth.stable_seed(43, "x", "1")
    assert growth.stable_seed(42, "x", "1") != growth.stable_seed(42, "linkedin", "1")


def test_same_seed_and_age_give_the_same_numbers() -> None:
    seed = growth.stable_seed(42, "x", "1000001")
    for age in AGES:
        assert growth.post_metrics(seed, age) == growth.post_metrics(seed, age)
    other = growth.stable_seed(7, "x", "1000001")
    assert growth.post_metrics(seed, 24 * HOUR) != growth.post_metrics(other, 24 * HOUR)


@pytest.mark.parametrize("video", [False, True])
def test_metrics_never_shrink_and_slow_down(video: bool) -> None:
    for post in range(50):
        seed = growth.stable_seed(42, "x", post)
        series = [growth.post_metrics(seed, age, video=video) for age in AGES]
        for earlier, later in itertools.pairwise(series):
            assert all(later[k] >= earlier[k] for k in earlier), (earlier, later)
        assert series[-1]["impressions"] > series[2]["impressions"] > series[0]["impressions"]
        assert (series[-1]["video_views"] > 0) is video
        # Sub-linear: the second day adds less than the first.
        day1 = growth.post_metrics(seed, 24 * HOUR)["impressions"]
        day2 = growth.post_metrics(seed, 48 * HOUR)["impressions"]
        first_day = day1 - series[0]["impressions"]
        assert 0 < day2 - day1 < first_day


def test_metrics_are_sane_ratios() -> None:
    m = growth.post_metrics(growth.stable_seed(1, "x", "p"), 24 * HOUR, video=True)
    assert m["reach"] <= m["impressions"]
    assert m["likes"] <= m["impressions"] and m["comments"] <= m["likes"]
    assert m["video_views"] <= m["impressions"]


def test_negative_age_is_the_first_moment() -> None:
    seed = growth.stable_seed(42, "x", "p")
    assert growth.post_metrics(seed, -100.0) == growth.post_metrics(seed, 0.0)


def test_followers_grow_by_the_hour_and_never_shrink() -> None:
    seed = growth.stable_seed(42, "x", "acct")
    counts = [growth.followers(seed, 5000, h * HOUR) for h in range(0, 24 * 60, 7)]
    assert counts[0] == 5000
    assert counts == sorted(counts) and counts[-1] > counts[0]
    # Two reads in the same hour agree (a test comparing them never races the clock).
    assert growth.followers(seed, 5000, 5 * HOUR + 1) == growth.followers(seed, 5000, 6 * HOUR - 1)


def test_stores_with_the_same_seed_simulate_the_same_world() -> None:
    def world(seed: int) -> tuple[dict[str, int], int]:
        store = Store(seed=seed)
        store.clock.freeze()
        account = store.account("x", "1234")
        created = datetime.fromtimestamp(store.clock() - 2 * HOUR, UTC)
        post = store.add_post(StoredPost("x", "555", "1234", "hi", {}, created, "u"))
        store.clock.advance(10 * HOUR)
        return post.metrics(), account.followers

    assert world(42) == world(42)
    assert world(42) != world(43)


def test_the_clock_moves_metrics_and_followers_forward() -> None:
    store = Store(seed=42)
    store.clock.freeze()
    account = store.account("x", "1234")
    created = datetime.fromtimestamp(store.clock(), UTC)
    post = store.add_post(StoredPost("x", "556", "1234", "hi", {}, created, "u"))
    before, followers = post.metrics(), account.followers
    store.clock.advance(3 * 24 * HOUR)
    assert post.metrics()["impressions"] > before["impressions"]
    assert account.followers > followers
    store.reset()
    assert store.clock.offset == 0 and store.clock.frozen_at is None
