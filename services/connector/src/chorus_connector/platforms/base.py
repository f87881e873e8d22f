"""What every platform client provides, and the vocabulary they share."""

from __future__ import annotations

import email.utils
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import FailureKind, PublishContent


class PlatformError(Exception):
    """A platform call failed; `kind` drives what publishing does next.

    transient → retry with backoff (honouring `retry_after`); permanent → fail the target
    with `message`; auth → refresh the token once, else the account needs re-auth.
    `outcome_unknown` marks failures after the request may have been applied (timeouts,
    connection lost after sending): the caller must read back before retrying.
    """

    def __init__(
        self,
        kind: FailureKind,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.kind = kind
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown


@dataclass(frozen=True)
class OAuthTokens:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccountProfile:
    platform_account_id: str
    username: str
    display_name: str | None = None
    followers: int | None = None


@dataclass(frozen=True)
class Published:
    platform_post_id: str
    url: str | None
    published_at: datetime


@dataclass(frozen=True)
class RateLimitState:
    """What the platform's headers said about the budget after the last call."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None  # epoch seconds
    retry_after: float | None = None


@dataclass(frozen=True)
class MediaFile:
    """Media to upload: where to fetch it and what it is."""

    url: str
    mime_type: str
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None

    @property
    def is_video(self) -> bool:
        return self.mime_type.startswith("video/")


@dataclass(frozen=True)
class Endpoints:
    """Base URLs: the real platform's, or the sandbox's `<sandbox>/<platform>`."""

    api: str
    auth: str | None = None  # authorize page base (defaults to api)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def auth_base(self) -> str:
        return self.auth or self.api


@dataclass(frozen=True)
class AppCredentials:
    client_id: str
    client_secret: str


class PlatformClient(ABC):
    platform: ClassVar[Platform]
    supports_pkce: ClassVar[bool] = True
    default_scopes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, http: httpx.AsyncClient, endpoints: Endpoints, app: AppCredentials) -> None:
        self.http = http
        self.endpoints = endpoints
        self.app = app
        self.rate_limit = RateLimitState()

    # -- OAuth ---------------------------------------------------------------------------------

    @abstractmethod
    def authorize_url(
        self, *, state: str, redirect_uri: str, code_challenge: str | None, scopes: tuple[str, ...]
    ) -> str: ...

    @abstractmethod
    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None
    ) -> OAuthTokens: ...

    @abstractmethod
    async def refresh(self, refresh_token: str) -> OAuthTokens: ...

    @abstractmethod
    async def profile(self, access_token: str) -> AccountProfile: ...

    # -- content ---------------------------------------------------------------------------

    @abstractmethod
    async def publish(
        self,
        access_token: str,
        account: AccountProfile,
        content: PublishContent,
        media: list[MediaFile],
    ) -> Published: ...

    async def publish_idempotent(
        self,
        access_token: str,
        account: AccountProfile,
        content: PublishContent,
        media: list[MediaFile],
        *,
        idempotency_key: str,
    ) -> Published:
        """`publish` carrying the caller's idempotency key (one per post target, design §4).

        Platforms that deduplicate natively (Mastodon's `Idempotency-Key`) override this and
        send the key; by default it is not sent, and an unknown outcome is settled by
        `find_recent` before any retry."""
        return await self.publish(access_token, account, content, media)

    @abstractmethod
    async def find_recent(
        self, access_token: str, account: AccountProfile, *, text: str, since: datetime
    ) -> Published | None:
        """Read-back: the post this account made since `since` with this text, if any."""

    @abstractmethod
    async def delete(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> None: ...

    @abstractmethod
    async def post_metrics(
        self, access_token: str, account: AccountProfile, platform_post_id: str
    ) -> dict[str, int]: ...

    @abstractmethod
    async def account_metrics(
        self, access_token: str, account: AccountProfile
    ) -> dict[str, int]: ...


# -- helpers shared by the clients ---------------------------------------------------------------


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def classify_status(status: int) -> FailureKind:
    if status in (401,):
        return FailureKind.AUTH
    if status in (408, 425, 429) or status >= 500:
        return FailureKind.TRANSIENT
    return FailureKind.PERMANENT


def json_body(response: httpx.Response) -> Any:
    """The response's JSON (any shape), or `{}` when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return {}


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or `{}` when it is not one."""
    body = json_body(response)
    return body if isinstance(body, dict) else {}


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (`Z` allowed; UTC when it has no zone), or None."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


METRIC_KEYS = (
    "likes",
    "comments",
    "shares",
    "saves",
    "impressions",
    "reach",
    "clicks",
    "video_views",
)


def normalised(**known: Any) -> dict[str, int]:
    """Post metrics under Chorus's names, 0 for what the platform does not report."""
    return {k: int(known.get(k) or 0) for k in METRIC_KEYS}


def status_error(response: httpx.Response, code: str, message: str) -> PlatformError:
    """A failure classified by HTTP status alone, honouring `Retry-After`."""
    return PlatformError(
        classify_status(response.status_code),
        code,
        message,
        status=response.status_code,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def expires_at(expires_in: Any) -> datetime | None:
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(time.time() + seconds, UTC)


async def send(
    client: PlatformClient, request: httpx.Request, *, creates: bool = False
) -> httpx.Response:
    """Send with transport errors mapped to `PlatformError` (unknown outcome when the request
    may have been applied: anything after the request was written, for creating calls)."""
    try:
        return await client.http.send(request)
    except httpx.TimeoutException as exc:
        unknown = creates and not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
        raise PlatformError(
            FailureKind.TRANSIENT,
            "timeout",
            f"{client.platform.value} did not answer in time",
            outcome_unknown=unknown,
        ) from exc
    except (
        httpx.ConnectError,
        httpx.RemoteProtocolError,
        httpx.ReadError,
        httpx.WriteError,
    ) as exc:
        unknown = creates and not isinstance(exc, httpx.ConnectError)
        raise PlatformError(
            FailureKind.TRANSIENT,
            "connection",
            f"{client.platform.value}: {type(exc).__name__}",
            outcome_unknown=unknown,
        ) from exc


async def send_observed(
    client: PlatformClient,
    request: httpx.Request,
    creates: bool,
    rate_limit_state: Callable[[httpx.Response], RateLimitState],
    error_from: Callable[[httpx.Response, RateLimitState], PlatformError],
) -> httpx.Response:
    """`send`, then record the rate-limit headers and raise the platform's error if any."""
    response = await send(client, request, creates=creates)
    client.rate_limit = rate_limit_state(response)
    if response.is_error:
        raise error_from(response, client.rate_limit)
    return response


# -- composing text and reading it back ---------------------------------------------------------

# Platforms that report post times to the second (or with some clock skew) still count as "since".
READBACK_SKEW = timedelta(seconds=2)
_URL = re.compile(r"https?://\S+")


def compose_text(content: PublishContent, *, link: bool = True, hashtags: bool = True) -> str:
    """The post's text, then (if not already in it) its link and its hashtags."""
    text = content.text.strip()
    extra: list[str] = []
    if link and content.link and content.link not in text:
        extra.append(content.link)
    if hashtags:
        tags = ["#" + t.lstrip("#") for t in content.hashtags if t.strip("# ")]
        missing = [t for t in tags if t.lower() not in text.lower()]
        if missing:
            extra.append(" ".join(missing))
    return "\n\n".join(part for part in [text, *extra] if part)


def normalise_text(value: str) -> str:
    """Text as platforms echo it back: links masked (they get shortened or rewritten),
    whitespace collapsed, case folded."""
    return " ".join(_URL.sub("<link>", value).split()).casefold()


def text_matches(posted: str, text: str) -> bool:
    """Read-back: is `posted` (as the platform returns it) the post made from `text`?
    Prefix match, since clients append links and hashtags to the text they were given."""
    return normalise_text(posted).startswith(normalise_text(text))


def posted_since(when: datetime | None, since: datetime) -> bool:
    return when is not None and when >= since - READBACK_SKEW
