"""Sandbox wiring. Dev/test only: simulates the platform APIs the connector calls."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from chorus_runtime.service import ServiceRuntime, run_cli
from chorus_sandbox.faults import Faults
from chorus_sandbox.inbound import WebhookSender, inbound_router
from chorus_sandbox.inspection import inspection_router
from chorus_sandbox.kit import PlatformKit, set_faults_window
from chorus_sandbox.platforms import available
from chorus_sandbox.settings import SandboxSettings
from chorus_sandbox.store import Store


def build(settings: SandboxSettings | None = None) -> ServiceRuntime:
    settings = settings or SandboxSettings()
    runtime = ServiceRuntime(
        settings, title="Chorus Sandbox", uses_database=False, uses_broker=False
    )
    set_faults_window(settings.rate_limit_window_seconds)
    store = Store(seed=settings.seed)
    faults = Faults()
    sender = WebhookSender(settings)
    runtime.include_router(inspection_router(store, faults))
    runtime.include_router(inbound_router(store, sender))
    for name, make_router in available().items():
        runtime.include_router(make_router(PlatformKit(name, store, faults, settings)))
    runtime.on_shutdown(sender.aclose)

    def configure(app: FastAPI) -> None:
        app.state.sandbox = (store, faults)
        app.state.webhooks = sender

    runtime.configure_app(configure)
    return runtime


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
