"""A circuit breaker per upstream service, so a dead or drowning service fails fast at the
gateway instead of tying up connections and client time (design.md §2, gateway proxy).

What counts (decided for the gateway proxy, which is the only caller):

* **failure** — the upstream could not be reached (connect error, reset, protocol error), a
  timeout (connect, read, write), or a **5xx** response: the service is unhealthy or
  overloaded, and more traffic will not help it.
* **success** — any response below 500. A **4xx** is the *client's* mistake (validation,
  auth, not found, rate limit) and says the service is healthy.
* **neither** (`release()`) — a call that ended for a reason unrelated to the upstream's
  health: the client's body was too large, the client went away, the gateway's own
  connection pool was exhausted.

States:

* ``closed`` — calls pass; ``failure_threshold`` *consecutive* failures open the circuit.
* ``open`` — calls are refused until ``reset_timeout`` seconds after it opened;
  ``retry_after()`` says how long is left (the gateway returns it as ``Retry-After``).
* ``half_open`` — at most ``half_open_max_calls`` trial calls are admitted. Once that many
  trials have succeeded the circuit closes; any failed trial re-opens it for another
  ``reset_timeout``. Trials that never report back (a cancelled task) are forgotten after
  ``reset_timeout`` so the breaker cannot wedge in half-open.

Pure and synchronous: no I/O, no locks (the gateway runs it on one event loop), time only
from the injected ``clock`` so tests drive it with a fake one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 10.0,
        half_open_max_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or half_open_max_calls < 1 or reset_timeout < 0:
            raise ValueError(
                "failure_threshold and half_open_max_calls must be >= 1, reset_timeout >= 0"
            )
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0  # consecutive, while closed
        self._opened_at = 0.0
        self._trials_admitted = 0  # while half-open
        self._trials_succeeded = 0
        self._half_open_since = 0.0

    # -- inspection ------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """Current state; an open circuit whose timeout has passed reads as half-open."""
        self._advance()
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_after(self) -> float:
        """Seconds until the next call may be admitted (0 when one may be admitted now or
        only the half-open trial slots are busy)."""
        self._advance()
        if self._state is BreakerState.OPEN:
            return max(0.0, self._opened_at + self.reset_timeout - self._clock())
        return 0.0

    # -- protocol: allow() before the call, then exactly one record_*/release ----------------

    def allow(self) -> bool:
        """May a call go out now? In half-open this *reserves* a trial slot."""
        self._advance()
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            return False
        if self._trials_admitted >= self.half_open_max_calls:
            # Trials that never reported (cancelled) must not block recovery forever.
            if self._clock() - self._half_open_since < self.reset_timeout:
                return False
            self._enter_half_open()
        self._trials_admitted += 1
        return True

    def record_success(self) -> None:
        self._advance()
        if self._state is BreakerState.CLOSED:
            self._failures = 0
        elif self._state is BreakerState.HALF_OPEN:
            self._trials_succeeded += 1
            if self._trials_succeeded >= self.half_open_max_calls:
                self._close()
        # OPEN: a straggler admitted before the circuit opened; not evidence of recovery.

    def record_failure(self) -> None:
        self._advance()
        if self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()
        elif self._state is BreakerState.HALF_OPEN:
            self._open()
        # OPEN: stragglers do not extend the open period.

    def release(self) -> None:
        """The admitted call ended without saying anything about the upstream's health."""
        if self._state is BreakerState.HALF_OPEN and self._trials_admitted > 0:
            self._trials_admitted -= 1

    # -- transitions -----------------------------------------------------------------------

    def _advance(self) -> None:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            self._enter_half_open()

    def _enter_half_open(self) -> None:
        self._state = BreakerState.HALF_OPEN
        self._trials_admitted = 0
        self._trials_succeeded = 0
        self._half_open_since = self._clock()

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._failures = 0

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._trials_admitted = 0
        self._trials_succeeded = 0

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state.value}, failures={self._failures})"
