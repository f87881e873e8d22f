"""Publishing service wiring: the one place its dependencies are put together."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from chorus_publishing import bulk_api, csv_api, handlers, media_api, slots_api, workflows_api
from chorus_publishing.api import router
from chorus_publishing.dispatcher import Dispatcher
from chorus_publishing.settings import PublishingSettings
from chorus_runtime.service import Role, ServiceRuntime, run_cli

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: PublishingSettings | None = None) -> ServiceRuntime:
    settings = settings or PublishingSettings()
    runtime = ServiceRuntime(settings, title="Chorus Publishing", migrations_dir=MIGRATIONS)
    # Fixed paths (/posts/export, /posts/bulk …) before /posts/{post_id} claims them.
    for extra in (csv_api.router, bulk_api.router, slots_api.router, workflows_api.router):
        runtime.include_router(extra)
    runtime.include_router(router)
    media = media_api.install(runtime, settings)
    handlers.register(runtime)
    assert runtime.db is not None
    dispatcher = Dispatcher(
        runtime.db,
        deadline=timedelta(seconds=settings.dispatch_deadline_seconds),
        batch_size=settings.scheduler_batch_size,
        interval=settings.scheduler_interval_seconds,
        media=media,
    )
    runtime.add_task(Role.SCHEDULER, "dispatcher", dispatcher.run)
    runtime.dispatcher = dispatcher  # type: ignore[attr-defined]
    return runtime


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
