"""12-factor settings (design.md §6): prefixes, embedded defaults, no usable secrets in
production."""

from __future__ import annotations

import os
from typing import ClassVar

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from chorus_runtime.settings import Mode, ServiceSettings, SettingsError

pytestmark = pytest.mark.unit


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHORUS_DEMO_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "demo"
    embedded_secret_defaults: ClassVar[dict[str, str]] = {
        "token_key": "dev",
        "webhook_secret": "dev-webhook",
    }

    token_key: str = ""
    webhook_secret: SecretStr = SecretStr("")
    port: int = 8099


class StatelessSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHORUS_STATELESS_", extra="ignore", frozen=True)
    service_name: ClassVar[str] = "stateless"

    @classmethod
    def needs_database(cls) -> bool:
        return False


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever CHORUS_* the developer's shell has must not leak into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("CHORUS_"):
            monkeypatch.delenv(name)


def test_defaults_are_embedded_mode() -> None:
    s = DemoSettings()
    assert s.mode is Mode.EMBEDDED
    assert s.port == 8099
    assert s.topic_prefix == ""
    assert s.physical_topic("publishing.posts") == "publishing.posts"


def test_service_prefix_beats_the_shared_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUS_KAFKA_BOOTSTRAP_SERVERS", "shared:9092")
    monkeypatch.setenv("CHORUS_TOPIC_PREFIX", "shared.")
    assert DemoSettings().kafka_bootstrap_servers == "shared:9092", "shared prefix applies"
    monkeypatch.setenv("CHORUS_DEMO_KAFKA_BOOTSTRAP_SERVERS", "mine:9092")
    s = DemoSettings()
    assert s.kafka_bootstrap_servers == "mine:9092", "the service prefix wins"
    assert s.topic_prefix == "shared.", "unrelated shared values still apply"
    assert s.physical_topic("publishing.posts") == "shared.publishing.posts"


def test_another_services_prefix_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUS_PUBLISHING_PORT", "1234")
    monkeypatch.setenv("CHORUS_PORT", "4321")
    assert DemoSettings().port == 4321


def test_init_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUS_DEMO_PORT", "1111")
    assert DemoSettings(port=2222).port == 2222


def test_env_values_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUS_DEMO_OUTBOX_BATCH_SIZE", "0")
    with pytest.raises(ValueError, match="outbox_batch_size"):
        DemoSettings()


def test_embedded_mode_fills_the_database_urls() -> None:
    s = DemoSettings()
    assert s.database_url == "postgresql+asyncpg://chorus_demo_app@127.0.0.1:5432/chorus_demo"
    assert s.migrations_database_url == "postgresql+asyncpg://postgres@127.0.0.1:5432/chorus_demo"
    assert s.migrations_url == s.migrations_database_url


def test_embedded_mode_keeps_a_database_url_that_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUS_DEMO_DATABASE_URL", "postgresql+asyncpg://me@db:5432/x")
    s = DemoSettings()
    assert s.database_url == "postgresql+asyncpg://me@db:5432/x"
    assert s.migrations_url == s.database_url, "no owner DSN invented for a foreign database"


def test_migrations_url_defaults_to_the_database_url() -> None:
    s = DemoSettings(
        mode="production",
        database_url="postgresql+asyncpg://app@db/x",
        token_key="k",
        webhook_secret="w",
    )
    assert s.migrations_database_url == ""
    assert s.migrations_url == "postgresql+asyncpg://app@db/x"


def test_production_without_a_database_url_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHORUS_MODE", "production")
    monkeypatch.setenv("CHORUS_DEMO_TOKEN_KEY", "k")
    monkeypatch.setenv("CHORUS_DEMO_WEBHOOK_SECRET", "w")
    with pytest.raises(SettingsError, match="CHORUS_DEMO_DATABASE_URL"):
        DemoSettings()


def test_production_error_uses_the_services_own_prefix() -> None:
    from chorus_publishing.settings import PublishingSettings

    with pytest.raises(SettingsError) as info:
        PublishingSettings(mode="production", media_signing_secret="s")
    assert "CHORUS_PUBLISHING_DATABASE_URL" in str(info.value)
    with pytest.raises(SettingsError) as info:
        PublishingSettings(mode="production", database_url="postgresql://app@db/x")
    assert "CHORUS_PUBLISHING_MEDIA_SIGNING_SECRET" in str(info.value)


def test_a_service_without_a_database_needs_no_url() -> None:
    s = StatelessSettings(mode="production")
    assert s.database_url == ""
    assert StatelessSettings().database_url == "", "embedded mode invents none either"


def test_embedded_mode_gets_the_secret_defaults() -> None:
    s = DemoSettings()
    assert s.token_key == "dev"
    assert s.webhook_secret.get_secret_value() == "dev-webhook"


def test_production_without_secrets_names_every_missing_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHORUS_DEMO_MODE", "production")
    monkeypatch.setenv("CHORUS_DEMO_DATABASE_URL", "postgresql+asyncpg://app@db/demo")
    with pytest.raises(SettingsError) as info:
        DemoSettings()
    message = str(info.value)
    assert "CHORUS_DEMO_TOKEN_KEY" in message
    assert "CHORUS_DEMO_WEBHOOK_SECRET" in message
    assert "dev" not in message.replace("demo", ""), "no default value is echoed"


def test_production_with_an_empty_secret_is_still_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUS_DEMO_MODE", "production")
    monkeypatch.setenv("CHORUS_DEMO_DATABASE_URL", "postgresql+asyncpg://app@db/demo")
    monkeypatch.setenv("CHORUS_DEMO_TOKEN_KEY", "")
    monkeypatch.setenv("CHORUS_DEMO_WEBHOOK_SECRET", "w")
    with pytest.raises(SettingsError, match="CHORUS_DEMO_TOKEN_KEY"):
        DemoSettings()


def test_production_with_secrets_set_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUS_MODE", "production")
    monkeypatch.setenv("CHORUS_DEMO_DATABASE_URL", "postgresql+asyncpg://app@db/demo")
    monkeypatch.setenv("CHORUS_DEMO_TOKEN_KEY", "real-key")
    monkeypatch.setenv("CHORUS_WEBHOOK_SECRET", "from-the-shared-prefix")
    s = DemoSettings()
    assert s.mode is Mode.PRODUCTION
    assert s.token_key == "real-key"
    assert s.webhook_secret.get_secret_value() == "from-the-shared-prefix"
    assert "from-the-shared-prefix" not in repr(s), "secrets are not printed"
    assert s.database_url == "postgresql+asyncpg://app@db/demo"


def test_settings_are_frozen() -> None:
    s = DemoSettings()
    with pytest.raises(ValueError):
        s.port = 1  # type: ignore[misc]


def test_env_name() -> None:
    assert DemoSettings.env_name("token_key") == "CHORUS_DEMO_TOKEN_KEY"
    assert ServiceSettings.env_name("database_url") == "CHORUS_DATABASE_URL"
