"""Fault injection: the next `count` matching calls of a platform fail in a chosen way."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    TIMEOUT_AFTER_CREATE = "timeout_after_create"
    TOKEN_EXPIRED = "token_expired"
    INVALID_TOKEN = "invalid_token"


@dataclass
class Fault:
    platform: str
    kind: FaultKind
    remaining: int
    operation: str | None = None  # None = any call; "publish" = calls that create posts


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take(self, platform: str, operation: str) -> FaultKind | None:
        """Consume one matching fault (oldest first) for a call, or None."""
        with self._lock:
            for fault in self._faults:
                if fault.platform != platform or fault.remaining <= 0:
                    continue
                if fault.operation not in (None, operation):
                    continue
                # Create-only faults apply to the call that creates the post.
                if fault.kind is FaultKind.TIMEOUT_AFTER_CREATE and operation != "publish":
                    continue
                fault.remaining -= 1
                return fault.kind
        return None

    def pending(self) -> list[dict[str, object]]:
        with self._lock:
            return [
                {
                    "platform": f.platform,
                    "kind": f.kind.value,
                    "remaining": f.remaining,
                    "operation": f.operation,
                }
                for f in self._faults
                if f.remaining > 0
            ]

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
