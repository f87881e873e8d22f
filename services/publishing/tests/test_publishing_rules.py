"""Per-platform content rules (unit): text measured the way each platform counts it, media,
hashtags, titles and required options — every violation named (platform, field, rule)."""

from __future__ import annotations

import pytest

from chorus_contracts.events.common import Platform
from chorus_publishing import rules
from chorus_publishing.rules import Content, MediaInfo, validate

pytestmark = pytest.mark.unit

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # one grapheme, 7 code points
LONG_URL = "https://example.com/" + "a" * 200 + "?utm_source=chorus&utm_medium=social"
IMAGE = MediaInfo(id="img", kind="image", mime_type="image/jpeg")
VIDEO = MediaInfo(id="vid", kind="video", mime_type="video/mp4", duration_seconds=30)


def rule_names(platform: Platform, content: Content) -> set[tuple[str, str]]:
    return {(v.field, v.rule) for v in validate(platform, content)}


def assert_ok(platform: Platform, content: Content) -> None:
    assert validate(platform, content) == []


# -- X: weighted length ------------------------------------------------------------------------


def test_x_280_latin_characters_fit_and_281_do_not() -> None:
    assert_ok(Platform.X, Content(text="a" * 280))
    (violation,) = validate(Platform.X, Content(text="a" * 281))
    assert (violation.platform, violation.field, violation.rule) == ("x", "text", "max_length")
    assert "281 > 280" in violation.message


def test_x_cjk_weighs_two() -> None:
    assert rules.x_weighted_length("日本語") == 6
    assert_ok(Platform.X, Content(text="日" * 140))
    assert rule_names(Platform.X, Content(text="日" * 141)) == {("text", "max_length")}
    # Mixed: 100 CJK (200) + 80 Latin (80) = 280 exactly.
    assert_ok(Platform.X, Content(text="あ" * 100 + "b" * 80))
    assert rule_names(Platform.X, Content(text="あ" * 100 + "b" * 81)) == {("text", "max_length")}


def test_x_counts_every_url_as_23() -> None:
    assert len(LONG_URL) > 200
    assert rules.x_weighted_length(LONG_URL) == 23
    assert rules.x_weighted_length(f"read {LONG_URL} now") == 5 + 23 + 4
    assert rules.x_weighted_length("http://t.co") == 23, "short URLs count 23 too"
    # 256 Latin + space + URL(23) = 280 → fits, however long the URL is.
    assert_ok(Platform.X, Content(text="a" * 256 + " " + LONG_URL))
    assert rule_names(Platform.X, Content(text="a" * 257 + " " + LONG_URL)) == {
        ("text", "max_length")
    }


def test_x_trailing_punctuation_is_not_part_of_a_url() -> None:
    assert rules.x_weighted_length("see https://example.com/a.") == 4 + 23 + 1
    assert rules.x_weighted_length("(https://example.com/a), ok") == 1 + 23 + 5


def test_x_emoji_weigh_two() -> None:
    assert rules.x_weighted_length("😀") == 2
    assert rules.x_weighted_length("a😀b") == 4
    assert_ok(Platform.X, Content(text="😀" * 140))
    assert rule_names(Platform.X, Content(text="😀" * 141)) == {("text", "max_length")}


def test_x_emoji_sequences_weigh_two_like_single_emoji() -> None:
    """twitter-text parses emoji: a ZWJ family, a skin tone or a flag is one emoji (2)."""
    assert rules.x_weighted_length(FAMILY) == 2
    assert rules.x_weighted_length("👍🏽") == 2
    assert rules.x_weighted_length("🇩🇪") == 2
    assert_ok(Platform.X, Content(text=FAMILY * 140))
    assert rule_names(Platform.X, Content(text=FAMILY * 141)) == {("text", "max_length")}


def test_x_normalizes_before_counting() -> None:
    assert rules.x_weighted_length("e\u0301") == 1, "NFC: e + combining acute = é"


# -- other counters ------------------------------------------------------------------------------


def test_bluesky_counts_graphemes_not_code_points() -> None:
    assert len(FAMILY * 300) == 2100
    assert rules.grapheme_length(FAMILY * 300) == 300
    assert_ok(Platform.BLUESKY, Content(text=FAMILY * 300))
    (violation,) = validate(Platform.BLUESKY, Content(text=FAMILY * 301))
    assert (violation.platform, violation.field, violation.rule) == (
        "bluesky",
        "text",
        "max_length",
    )


@pytest.mark.parametrize(
    ("platform", "limit"),
    [
        (Platform.THREADS, 500),
        (Platform.LINKEDIN, 3000),
        (Platform.MASTODON, 500),
        (Platform.FACEBOOK, 63_206),
    ],
)
def test_text_limits(platform: Platform, limit: int) -> None:
    assert_ok(platform, Content(text="z" * limit))
    assert rule_names(platform, Content(text="z" * (limit + 1))) == {("text", "max_length")}


def test_mastodon_counts_urls_as_23() -> None:
    assert_ok(Platform.MASTODON, Content(text="m" * 476 + " " + LONG_URL))
    assert rule_names(Platform.MASTODON, Content(text="m" * 477 + " " + LONG_URL)) == {
        ("text", "max_length")
    }


# -- hashtags ----------------------------------------------------------------------------------


def test_hashtags_not_in_the_text_are_appended_and_counted() -> None:
    content = Content(text="Launch day #Chorus", hashtags=("chorus", "#news", "social"))
    assert rules.composed_text(content) == "Launch day #Chorus #news #social"
    assert rules.composed_text(Content(text="plain")) == "plain"
    # 272 + " #launch" (8) = 280 fits; one more character does not.
    assert_ok(Platform.X, Content(text="a" * 272, hashtags=("launch",)))
    assert rule_names(Platform.X, Content(text="a" * 273, hashtags=("launch",))) == {
        ("text", "max_length")
    }
    # A tag already in the text is not appended twice (case-insensitive).
    assert_ok(Platform.X, Content(text="a" * 272 + " #Launch", hashtags=("launch",)))


def test_instagram_allows_30_distinct_hashtags_counted_case_insensitively() -> None:
    in_text = " ".join(f"#tag{i}" for i in range(20))
    listed = tuple(f"TAG{i}" for i in range(10, 30))  # 10 repeat the text's tags
    content = Content(text=f"Launch {in_text}", hashtags=listed, media=(IMAGE,))
    assert len(rules.hashtags_in(content)) == 30
    assert_ok(Platform.INSTAGRAM, content)

    more = Content(text=f"Launch {in_text}", hashtags=(*listed, "#Extra"), media=(IMAGE,))
    assert len(rules.hashtags_in(more)) == 31
    (violation,) = validate(Platform.INSTAGRAM, more)
    assert (violation.platform, violation.field, violation.rule) == (
        "instagram",
        "hashtags",
        "max_count",
    )


# -- media, titles, options --------------------------------------------------------------------


def test_instagram_needs_media() -> None:
    (violation,) = validate(Platform.INSTAGRAM, Content(text="no picture"))
    assert (violation.platform, violation.field, violation.rule) == (
        "instagram",
        "media",
        "required",
    )
    assert_ok(Platform.INSTAGRAM, Content(text="a picture", media=(IMAGE,)))
    assert_ok(Platform.INSTAGRAM, Content(text="a reel", media=(VIDEO,)))
    assert_ok(Platform.INSTAGRAM, Content(text="a carousel", media=(IMAGE, VIDEO)))


def test_reddit_needs_a_title_and_a_subreddit() -> None:
    violations = validate(Platform.REDDIT, Content(text="hello"))
    assert {(v.platform, v.field, v.rule) for v in violations} == {
        ("reddit", "title", "required"),
        ("reddit", "options.subreddit", "required"),
    }
    assert rule_names(Platform.REDDIT, Content(text="hello", title="   ")) >= {
        ("title", "required")
    }
    assert_ok(Platform.REDDIT, Content(text="hello", title="Hi", options={"subreddit": "python"}))
    assert rule_names(
        Platform.REDDIT, Content(text="x", title="t" * 301, options={"subreddit": "python"})
    ) == {("title", "max_length")}


def test_youtube_needs_a_video_and_a_title() -> None:
    assert rule_names(Platform.YOUTUBE, Content(text="description")) == {
        ("title", "required"),
        ("media", "video_required"),
    }
    assert_ok(Platform.YOUTUBE, Content(text="description", title="Launch", media=(VIDEO,)))
    assert ("media", "max_images") in rule_names(
        Platform.YOUTUBE, Content(text="d", title="t", media=(VIDEO, IMAGE))
    )


def test_tiktok_needs_a_video_not_an_image() -> None:
    names = rule_names(Platform.TIKTOK, Content(text="dance", media=(IMAGE,)))
    assert ("media", "video_required") in names
    assert_ok(Platform.TIKTOK, Content(text="dance", media=(VIDEO,)))
    long_video = MediaInfo(id="v", kind="video", duration_seconds=601)
    assert rule_names(Platform.TIKTOK, Content(text="d", media=(long_video,))) == {
        ("media", "max_video_duration")
    }


def test_x_allows_four_images_and_no_mixed_media() -> None:
    four = tuple(MediaInfo(id=f"i{i}", kind="image") for i in range(4))
    assert_ok(Platform.X, Content(text="pics", media=four))
    five = (*four, MediaInfo(id="i5", kind="image"))
    (violation,) = validate(Platform.X, Content(text="pics", media=five))
    assert (violation.platform, violation.field, violation.rule) == ("x", "media", "max_images")

    (mixed,) = validate(Platform.X, Content(text="mixed", media=(IMAGE, VIDEO)))
    assert (mixed.platform, mixed.field, mixed.rule) == ("x", "media", "no_mixed_media")
    assert rule_names(Platform.X, Content(text="two videos", media=(VIDEO, VIDEO))) == {
        ("media", "max_videos")
    }


def test_violation_details_name_platform_field_and_rule() -> None:
    (violation,) = validate(Platform.INSTAGRAM, Content(text="none"))
    assert violation.as_detail() == {
        "platform": "instagram",
        "field": "media",
        "rule": "required",
        "message": "instagram needs an image or a video",
    }


def test_validate_all_collects_every_platform() -> None:
    out = rules.validate_all(
        [
            (Platform.X, Content(text="a" * 300)),
            (Platform.LINKEDIN, Content(text="a" * 300)),
            (Platform.INSTAGRAM, Content(text="a" * 300)),
        ]
    )
    assert [(v.platform, v.rule) for v in out] == [("x", "max_length"), ("instagram", "required")]
