"""Per-platform content rules, each violation named (platform, field, rule) — pure code.

Text is measured the way each platform counts it: X weighs code points (most scripts 2,
Latin and punctuation 1, an emoji 2 even as a ZWJ sequence) and counts every URL as 23;
Bluesky counts grapheme clusters; Mastodon counts URLs as 23; the others count Unicode
code points.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import regex

from chorus_contracts.events.common import Platform

URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
# Sentence punctuation right after a URL is not part of it (twitter-text's valid path
# endings): "see https://x.com/a." is a URL and a full stop.
_URL_TRAILING = ".,;:!?"
# One emoji, however many code points (ZWJ sequences, skin tones, flags, keycaps).
_EMOJI_CLUSTER = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}]|\ufe0f|\u20e3")
HASHTAG = re.compile(r"(?<![\w#])#(\w+)", re.UNICODE)
URL_WEIGHT = 23
# twitter-text v3 (scale 100): these ranges weigh 100, everything else 200, a URL 2300;
# the budget is 280 after dividing by the scale.
_X_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))


@dataclass(frozen=True)
class MediaInfo:
    id: str
    kind: str  # image | video | gif
    mime_type: str = ""
    size_bytes: int = 0
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None


@dataclass(frozen=True)
class Content:
    text: str = ""
    title: str | None = None
    link: str | None = None
    first_comment: str | None = None
    hashtags: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    media: tuple[MediaInfo, ...] = ()
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Violation:
    platform: str
    field: str
    rule: str
    message: str

    def as_detail(self) -> dict[str, str]:
        return {
            "platform": self.platform,
            "field": self.field,
            "rule": self.rule,
            "message": self.message,
        }


@dataclass(frozen=True)
class PlatformRules:
    text_limit: int
    counter: str = "codepoints"  # codepoints | x_weighted | graphemes | urls_as_23
    media_required: bool = False
    video_required: bool = False
    max_images: int = 10
    max_videos: int = 1
    mix_images_and_video: bool = False
    max_hashtags: int | None = None
    title_required: bool = False
    title_limit: int | None = None
    required_options: tuple[str, ...] = ()
    max_video_seconds: float | None = None


RULES: dict[Platform, PlatformRules] = {
    Platform.X: PlatformRules(280, "x_weighted", max_images=4, max_videos=1, max_video_seconds=140),
    Platform.THREADS: PlatformRules(
        500, max_images=10, max_videos=10, mix_images_and_video=True, max_video_seconds=300
    ),
    Platform.INSTAGRAM: PlatformRules(
        2200,
        media_required=True,
        max_images=10,
        max_videos=10,
        mix_images_and_video=True,
        max_hashtags=30,
        max_video_seconds=900,
    ),
    Platform.LINKEDIN: PlatformRules(3000, max_images=20, max_videos=1, max_video_seconds=900),
    Platform.FACEBOOK: PlatformRules(63_206, max_images=10, max_videos=1),
    Platform.PINTEREST: PlatformRules(
        500, media_required=True, max_images=1, max_videos=1, title_limit=100
    ),
    Platform.REDDIT: PlatformRules(
        40_000,
        title_required=True,
        title_limit=300,
        max_images=20,
        max_videos=1,
        required_options=("subreddit",),
    ),
    Platform.BLUESKY: PlatformRules(
        300, "graphemes", max_images=4, max_videos=1, max_video_seconds=180
    ),
    Platform.MASTODON: PlatformRules(500, "urls_as_23", max_images=4, max_videos=1),
    Platform.TIKTOK: PlatformRules(
        2200, video_required=True, max_images=0, max_videos=1, max_video_seconds=600
    ),
    Platform.YOUTUBE: PlatformRules(
        5000, video_required=True, title_required=True, title_limit=100, max_images=0, max_videos=1
    ),
}


def url_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each URL in `text`, without trailing punctuation."""
    spans: list[tuple[int, int]] = []
    for m in URL.finditer(text):
        start, end = m.span()
        while end > start:
            last = text[end - 1]
            url = text[start:end]
            if last in _URL_TRAILING or (last == ")" and url.count(")") > url.count("(")):
                end -= 1
            else:
                break
        spans.append((start, end))
    return spans


def x_weighted_length(text: str) -> int:
    text = unicodedata.normalize("NFC", text)
    total = 0
    cursor = 0
    for start, end in url_spans(text):
        total += _x_weight(text[cursor:start]) + URL_WEIGHT
        cursor = end
    total += _x_weight(text[cursor:])
    return total


def _x_weight(chunk: str) -> int:
    weight = 0
    for cluster in regex.findall(r"\X", chunk):
        if len(cluster) > 1 and _EMOJI_CLUSTER.search(cluster):
            weight += 2  # an emoji sequence counts as one emoji
            continue
        for ch in cluster:
            cp = ord(ch)
            light = any(lo <= cp <= hi for lo, hi in _X_LIGHT_RANGES)
            weight += 1 if light else 2
    return weight


def _urls_as_23(text: str) -> str:
    out: list[str] = []
    cursor = 0
    for start, end in url_spans(text):
        out += [text[cursor:start], "x" * URL_WEIGHT]
        cursor = end
    return "".join([*out, text[cursor:]])


def grapheme_length(text: str) -> int:
    return len(regex.findall(r"\X", text))


def text_length(text: str, counter: str) -> int:
    if counter == "x_weighted":
        return x_weighted_length(text)
    if counter == "graphemes":
        return grapheme_length(text)
    if counter == "urls_as_23":
        return len(_urls_as_23(text))
    return len(text)


def hashtags_in(content: Content) -> set[str]:
    tags = {t.lower().lstrip("#") for t in content.hashtags}
    tags |= {t.lower() for t in HASHTAG.findall(content.text)}
    return tags


def validate(platform: Platform, content: Content) -> list[Violation]:
    """Every rule `content` breaks on `platform` (empty when it can be published)."""
    r = RULES[platform]
    p = platform.value
    out: list[Violation] = []
    length = text_length(composed_text(content), r.counter)
    if length > r.text_limit:
        out.append(
            Violation(
                p, "text", "max_length", f"{length} > {r.text_limit} as {p} counts ({r.counter})"
            )
        )
    if r.title_required and not (content.title or "").strip():
        out.append(Violation(p, "title", "required", f"{p} needs a title"))
    if r.title_limit is not None and content.title and len(content.title) > r.title_limit:
        out.append(Violation(p, "title", "max_length", f"title longer than {r.title_limit}"))
    for option in r.required_options:
        if not content.options.get(option):
            out.append(Violation(p, f"options.{option}", "required", f"{p} needs {option}"))
    images = [m for m in content.media if m.kind in ("image", "gif")]
    videos = [m for m in content.media if m.kind == "video"]
    if r.media_required and not content.media:
        out.append(Violation(p, "media", "required", f"{p} needs an image or a video"))
    if r.video_required and not videos:
        out.append(Violation(p, "media", "video_required", f"{p} needs a video"))
    if len(images) > r.max_images:
        out.append(Violation(p, "media", "max_images", f"at most {r.max_images} images"))
    if len(videos) > r.max_videos:
        out.append(Violation(p, "media", "max_videos", f"at most {r.max_videos} videos"))
    if images and videos and not r.mix_images_and_video:
        out.append(Violation(p, "media", "no_mixed_media", "images and video cannot be mixed"))
    if r.max_video_seconds is not None:
        for v in videos:
            if v.duration_seconds is not None and v.duration_seconds > r.max_video_seconds:
                out.append(
                    Violation(
                        p,
                        "media",
                        "max_video_duration",
                        f"video longer than {r.max_video_seconds:g} s",
                    )
                )
    if r.max_hashtags is not None and len(hashtags_in(content)) > r.max_hashtags:
        out.append(Violation(p, "hashtags", "max_count", f"at most {r.max_hashtags} hashtags"))
    return out


def composed_text(content: Content) -> str:
    """The text as it will be sent: hashtags not already in the text are appended."""
    present = {t.lower() for t in HASHTAG.findall(content.text)}
    extra = [f"#{t.lstrip('#')}" for t in content.hashtags if t.lower().lstrip("#") not in present]
    return " ".join([content.text, *extra]).strip() if extra else content.text


def validate_all(targets: Sequence[tuple[Platform, Content]]) -> list[Violation]:
    out: list[Violation] = []
    for platform, content in targets:
        out.extend(validate(platform, content))
    return out
