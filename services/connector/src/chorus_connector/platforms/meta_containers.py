"""Graph's container → publish flow, shared by the Instagram and Threads clients.

Both platforms post the same way: `POST /{user-id}/<container_edge>` makes a container per item
(carousel items first, then a `CAROUSEL` container), `GET /{container-id}?fields=<status_field>`
is polled until `FINISHED`, and `POST /{user-id}/<publish_edge>` publishes it — the one creating
call, whose unknown outcome is read back from `GET /{user-id}/<container_edge>`. Both issue a
short-lived token for the code and exchange it at once for a long-lived one, which refreshes
itself (so it is also stored as the refresh token).

A subclass names its edges, fields and grant types and says how an item becomes a container
form (`_media_form`) and how a first comment is posted (`_first_comment`).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from datetime import UTC, datetime
from typing import Any, ClassVar

from chorus_connector.platforms.base import (
    READBACK_SKEW,
    AccountProfile,
    MediaFile,
    OAuthTokens,
    PlatformError,
    Published,
    compose_text,
    expires_at,
    posted_since,
    text_matches,
)
from chorus_connector.platforms.facebook import GraphClient, graph_time
from chorus_contracts.events.connector import FailureKind, PublishContent


class ContainerClient(GraphClient):
    """A Graph client that publishes through media containers."""

    supports_pkce = False
    max_carousel: ClassVar[int]
    carousel_name: ClassVar[str]  # "an Instagram carousel", in messages
    exchange_grant: ClassVar[str]  # short-lived → long-lived token
    refresh_grant: ClassVar[str]  # long-lived → fresh long-lived token
    container_edge: ClassVar[str]  # creates containers; lists the user's posts
    publish_edge: ClassVar[str]
    text_field: ClassVar[str]  # the post's text in container forms and read-back
    status_field: ClassVar[str]  # a container's state (`FINISHED` when ready)
    status_detail_field: ClassVar[str]  # why a container failed

    @property
    def _log(self) -> logging.Logger:
        return logging.getLogger(type(self).__module__)

    # -- OAuth ---------------------------------------------------------------------------------

    def _oauth_base(self) -> str:
        """Where the code is exchanged for a short-lived token."""
        return self.endpoints.api.rstrip("/")

    def _short_lived(self, body: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        """(short-lived token, granted scopes if reported) from the code exchange."""
        return str(body["access_token"]), ()

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None
    ) -> OAuthTokens:
        body = await self._oauth(
            "POST",
            f"{self._oauth_base()}/oauth/access_token",
            data={
                "client_id": self.app.client_id,
                "client_secret": self.app.client_secret,
                "grant_type": "authorization_code",
                "redirect_uri": redirect_uri,
                "code": code,
            },
        )
        short, scopes = self._short_lived(body)
        long_lived = await self._oauth(
            "GET",
            f"{self.endpoints.api.rstrip('/')}/access_token",
            params={
                "grant_type": self.exchange_grant,
                "client_secret": self.app.client_secret,
                "access_token": short,
            },
        )
        return self._tokens(long_lived, scopes or self.default_scopes)

    async def refresh(self, refresh_token: str) -> OAuthTokens:
        body = await self._oauth(
            "GET",
            f"{self.endpoints.api.rstrip('/')}/refresh_access_token",
            params={"grant_type": self.refresh_grant, "access_token": refresh_token},
        )
        return self._tokens(body, self.default_scopes)

    def _tokens(self, body: dict[str, Any], scopes: tuple[str, ...]) -> OAuthTokens:
        token = str(body["access_token"])
        return OAuthTokens(token, token, expires_at(body.get("expires_in")), scopes)

    async def _oauth(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        return await self._token_call(method, "", url=url, **kwargs)

    # -- content -------------------------------------------------------------------------------

    @abstractmethod
    def _media_form(self, item: MediaFile, *, carousel_item: bool = False) -> dict[str, str]:
        """The container form for one image or video (without the text)."""

    @abstractmethod
    async def _first_comment(self, access_token: str, user: str, media_id: str, text: str) -> None:
        """Post the first comment; the post exists already, so failures are logged."""

    def _check_media(self, media: list[MediaFile]) -> None:
        if len(media) > self.max_carousel:
            raise PlatformError(
                FailureKind.PERMANENT,
                "too_many_media",
                f"{self.carousel_name} holds at most {self.max_carousel} items",
            )

    async def publish(
        self,
        access_token: str,
        account: AccountProfile,
        content: PublishContent,
        media: list[MediaFile],
    ) -> Published:
        user = account.platform_account_id
        self._check_media(media)
        text = compose_text(content)
        if len(media) > 1:
            children = [
                await self._container(
                    access_token, user, self._media_form(item, carousel_item=True)
                )
                for item in media
            ]
            for child in children:
                await self._ready(access_token, child)
            form = {"media_type": "CAROUSEL", "children": ",".join(children), self.text_field: text}
        elif media:
            form = {**self._media_form(media[0]), self.text_field: text}
        else:
            form = {"media_type": "TEXT", self.text_field: text}
        container = await self._container(access_token, user, form)
        await self._ready(access_token, container)
        body = await self._publish_container(access_token, user, container, creates=True)
        media_id = str(body["id"])
        url = await self._permalink(access_token, media_id)
        if content.first_comment:
            await self._first_comment(access_token, user, media_id, content.first_comment)
        return Published(media_id, url, datetime.now(UTC))

    async def _container(self, access_token: str, user: str, form: dict[str, str]) -> str:
        body = await self._call("POST", f"/{user}/{self.container_edge}", access_token, data=form)
        return str(body["id"])

    async def _ready(self, access_token: str, container_id: str) -> None:
        await self._wait_for(
            access_token,
            container_id,
            field=self.status_field,
            done="FINISHED",
            detail_field=self.status_detail_field,
        )

    async def _publish_container(
        self, access_token: str, user: str, container_id: str, *, creates: bool = False
    ) -> dict[str, Any]:
        return await self._call(
            "POST",
            f"/{user}/{self.publish_edge}",
            access_token,
            data={"creation_id": container_id},
            creates=creates,
        )

    async def _permalink(self, access_token: str, media_id: str) -> str | None:
        """The post exists already: a failure here costs only the URL."""
        try:
            body = await self._call(
                "GET", f"/{media_id}", access_token, params={"fields": "permalink"}
            )
        except PlatformError as exc:
            self._log.warning(
                "%s: permalink of %s unavailable: %s", self.platform.value, media_id, exc
            )
            return None
        return body.get("permalink")

    async def find_recent(
        self, access_token: str, account: AccountProfile, *, text: str, since: datetime
    ) -> Published | None:
        body = await self._call(
            "GET",
            f"/{account.platform_account_id}/{self.container_edge}",
            access_token,
            params={
                "fields": f"id,{self.text_field},timestamp,permalink",
                "since": str(int((since - READBACK_SKEW).timestamp())),
                "limit": "50",
            },
        )
        matches = []
        for item in body.get("data") or []:
            created = graph_time(item.get("timestamp"))
            posted = item.get(self.text_field) or ""
            if posted_since(created, since) and text_matches(posted, text):
                matches.append((created, str(item["id"]), item.get("permalink")))
        if not matches:
            return None
        created, media_id, url = min(matches, key=lambda m: m[0])
        return Published(media_id, url, created)
