"""Where the connector finds each platform: API base and authorize-page base."""

from __future__ import annotations

import pytest

from chorus_connector.settings import ConnectorSettings

pytestmark = pytest.mark.unit


def test_sandbox_serves_api_and_authorize_pages_by_default() -> None:
    s = ConnectorSettings(sandbox_url="http://sandbox:8000/")
    assert s.base_url("x") == "http://sandbox:8000/x"
    assert s.auth_url("x") is None, "the API base serves the authorize page"


def test_public_sandbox_url_is_what_browsers_are_sent_to() -> None:
    s = ConnectorSettings(
        sandbox_url="http://sandbox:8000", sandbox_public_url="http://127.0.0.1:8099"
    )
    assert s.base_url("linkedin") == "http://sandbox:8000/linkedin"
    assert s.auth_url("linkedin") == "http://127.0.0.1:8099/linkedin"


def test_explicit_platform_urls_win() -> None:
    s = ConnectorSettings(
        sandbox_url="http://sandbox:8000",
        sandbox_public_url="http://127.0.0.1:8099",
        platform_base_urls={"x": "https://api.x.com"},
        platform_auth_urls={"x": "https://x.com/i/oauth2"},
    )
    assert s.base_url("x") == "https://api.x.com"
    assert s.auth_url("x") == "https://x.com/i/oauth2"
