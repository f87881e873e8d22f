"""Builds the platform clients from configuration (one shared HTTP pool)."""

from __future__ import annotations

import httpx

from chorus_connector.platforms.base import AppCredentials, Endpoints, PlatformClient
from chorus_connector.platforms.registry import client_class
from chorus_connector.settings import ConnectorSettings
from chorus_contracts.events.common import Platform
from chorus_runtime.errors import ValidationFailed


class Clients:
    def __init__(self, settings: ConnectorSettings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.http_timeout_seconds, connect=5.0),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        self._clients: dict[Platform, PlatformClient] = {}

    def get(self, platform: Platform) -> PlatformClient:
        if platform not in self._clients:
            base = self.settings.base_url(platform.value)
            if base is None:
                raise ValidationFailed(
                    f"{platform.value} is not configured on this installation",
                    details=[
                        {
                            "field": "platform",
                            "message": "not configured",
                            "type": "platform_not_configured",
                        }
                    ],
                )
            try:
                cls = client_class(platform)
            except LookupError:
                raise ValidationFailed(
                    f"{platform.value} is not supported yet",
                    details=[
                        {
                            "field": "platform",
                            "message": "no client",
                            "type": "platform_not_supported",
                        }
                    ],
                ) from None
            creds = self.settings.platform_credentials.get(platform.value, {})
            self._clients[platform] = cls(
                self.http,
                Endpoints(api=base, auth=self.settings.auth_url(platform.value)),
                AppCredentials(
                    client_id=creds.get("id", self.settings.platform_client_id),
                    client_secret=creds.get("secret", self.settings.platform_client_secret),
                ),
            )
        return self._clients[platform]

    async def aclose(self) -> None:
        await self.http.aclose()
