"""Failpoints: named spots where a crash-safety test makes a real process die or stall.

Inert unless the `CHORUS_FAILPOINTS` environment variable names them (read once, at import):

    CHORUS_FAILPOINTS="publishing.dispatch.after_claim=crash"
    CHORUS_FAILPOINTS="connector.publish.after_send=crash,consumer.x.before_ack=sleep:5"

Actions:
- `crash`: `os._exit(137)` on the spot, as SIGKILL would: no cleanup, no flush, open
  transactions and unacknowledged messages left to the database and the broker;
- `sleep:S`: block the whole process for S seconds (a stall — GC pause, SIGSTOP, a frozen
  VM), with whatever it holds (row locks, an open transaction) still held.

Unarmed, `failpoint()` is one truthiness check, so the calls stay in production code.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

ENV = "CHORUS_FAILPOINTS"
CRASH_EXIT_CODE = 137  # what a shell reports for a SIGKILLed process


@dataclass(frozen=True)
class Action:
    kind: str  # "crash" | "sleep"
    seconds: float = 0.0


def parse(spec: str) -> dict[str, Action]:
    """`name=crash,other=sleep:2.5` → {name: Action}; a malformed spec raises ValueError
    (a typo must not silently disarm a test)."""
    armed: dict[str, Action] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, action = item.partition("=")
        name, action = name.strip(), action.strip()
        if not sep or not name:
            raise ValueError(f"{ENV}: expected name=action, got {item!r}")
        if action == "crash":
            armed[name] = Action("crash")
        elif action.startswith("sleep:"):
            try:
                seconds = float(action.removeprefix("sleep:"))
            except ValueError:
                raise ValueError(f"{ENV}: bad sleep in {item!r}") from None
            if seconds < 0:
                raise ValueError(f"{ENV}: negative sleep in {item!r}")
            armed[name] = Action("sleep", seconds)
        else:
            raise ValueError(f"{ENV}: unknown action {action!r} (crash | sleep:S)")
    return armed


_ARMED: dict[str, Action] = parse(os.environ.get(ENV, ""))


def failpoint(name: str) -> None:
    """Crash or stall here if `name` is armed; otherwise do nothing."""
    if not _ARMED:
        return
    action = _ARMED.get(name)
    if action is None:
        return
    # Said on stderr (not the log pipeline): the process may be gone a microsecond later.
    what = "crash" if action.kind == "crash" else f"sleep {action.seconds}s"
    sys.stderr.write(f"failpoint {name}: {what}\n")
    sys.stderr.flush()
    if action.kind == "crash":
        os._exit(CRASH_EXIT_CODE)
    time.sleep(action.seconds)


def arm(spec: str) -> None:
    """Replace the armed set (for tests in the same process; processes use the env var)."""
    global _ARMED
    _ARMED = parse(spec)
