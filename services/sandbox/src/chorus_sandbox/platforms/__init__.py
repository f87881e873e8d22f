"""One module per simulated platform; each exposes `router(kit) -> APIRouter` serving that
platform's documented paths under `/<platform>` (e.g. `/x/2/tweets`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from fastapi import APIRouter

from chorus_sandbox.kit import PlatformKit

PLATFORMS = (
    "x",
    "linkedin",
    "facebook",
    "instagram",
    "threads",
    "tiktok",
    "youtube",
    "pinterest",
    "reddit",
    "mastodon",
    "bluesky",
)


def available() -> dict[str, Callable[[PlatformKit], APIRouter]]:
    """Platform modules present in this build (each is added as it is written)."""
    found = {}
    for name in PLATFORMS:
        try:
            module = importlib.import_module(f"chorus_sandbox.platforms.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"chorus_sandbox.platforms.{name}":
                raise
            continue
        found[name] = module.router
    return found
