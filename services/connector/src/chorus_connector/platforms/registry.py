"""Platform → client class, discovered from the modules present (one module per platform,
each exposing `CLIENT`)."""

from __future__ import annotations

import importlib

from chorus_connector.platforms.base import PlatformClient
from chorus_contracts.events.common import Platform


def client_class(platform: Platform) -> type[PlatformClient]:
    try:
        module = importlib.import_module(f"chorus_connector.platforms.{platform.value}")
    except ModuleNotFoundError as exc:
        if exc.name == f"chorus_connector.platforms.{platform.value}":
            raise LookupError(f"no client for {platform.value}") from None
        raise
    cls: type[PlatformClient] = module.CLIENT
    return cls


def available() -> list[Platform]:
    out = []
    for p in Platform:
        try:
            client_class(p)
        except LookupError:
            continue
        out.append(p)
    return out
