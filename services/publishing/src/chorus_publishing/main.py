"""Publishing service wiring: the one place its dependencies are put together."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from chorus_publishing import handlers
from chorus_publishing.api import router
from chorus_publishing.dispatcher import Dispatcher
from chorus_publishing.settings import PublishingSettings
from chorus_runtime.service import Role, ServiceRuntime, run_cli

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: PublishingSettings | None = None) -> ServiceRuntime:
    settings = settings or PublishingSettings()
    runtime = ServiceRuntime(settings, title="Chorus Publishing", migrations_dir=MIGRATIONS)
    runtime.include_router(router)
    handlers.register(runtime)
    assert runtime.db is not None
    dispatcher = Dispatcher(
        runtime.db,
        deadline=timedelta(seconds=settings.dispatch_deadline_seconds),
        interval=settings.scheduler_interval_seconds,
    )
    runtime.add_task(Role.SCHEDULER, "dispatcher", dispatcher.run)
    runtime.dispatcher = dispatcher  # type: ignore[attr-defined]
    return runtime


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
