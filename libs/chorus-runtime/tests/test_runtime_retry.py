"""Consumer retry policy: backoff bounds and which errors count as transient (design.md §4)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from chorus_contracts.catalog import DataValidationError
from chorus_contracts.envelope import EnvelopeError
from chorus_runtime.consumer import PoisonMessage, RetryPolicy, TransientError, is_transient

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 8, 12])
def test_delay_is_full_jitter_within_the_exponential_cap(attempt: int) -> None:
    policy = RetryPolicy(initial=0.1, maximum=30.0)
    cap = min(30.0, 0.1 * 2 ** (attempt - 1))
    delays = [policy.delay(attempt) for _ in range(500)]
    assert all(cap / 2 <= d <= cap for d in delays), (min(delays), max(delays), cap)
    assert max(delays) - min(delays) > cap / 10, "jittered, not constant"


def test_delay_grows_then_stops_at_the_maximum() -> None:
    policy = RetryPolicy(initial=0.5, maximum=4.0)
    assert 0.25 <= policy.delay(1) <= 0.5
    assert 0.5 <= policy.delay(2) <= 1.0
    assert 2.0 <= policy.delay(4) <= 4.0
    for attempt in (5, 10, 50, 200):
        assert 2.0 <= policy.delay(attempt) <= 4.0


@pytest.mark.parametrize("attempt", [1023, 1100, 5000, 10**6])
def test_delay_survives_a_very_long_outage(attempt: int) -> None:
    """Transient errors retry forever: attempt numbers grow without bound (hours of a
    30 s capped outage) and the delay must stay at the cap instead of overflowing."""
    policy = RetryPolicy(initial=0.1, maximum=30.0)
    assert 15.0 <= policy.delay(attempt) <= 30.0


def _dbapi(orig: BaseException, **kw: object) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError("SELECT 1", {}, orig, **kw)  # type: ignore[arg-type]


class _AdaptedDriverError(Exception):
    """What SQLAlchemy's asyncpg dialect puts in `.orig`: an adapter, caused by the driver."""


def _adapted(driver_exc: BaseException) -> sa_exc.DBAPIError:
    adapted = _AdaptedDriverError(str(driver_exc))
    adapted.__cause__ = driver_exc
    return _dbapi(adapted)


@pytest.mark.parametrize(
    "exc",
    [
        TransientError("dependency down"),
        TimeoutError(),
        TimeoutError(),
        ConnectionError(),
        ConnectionRefusedError(),
        ConnectionResetError(),
        OSError("network unreachable"),
        asyncpg.PostgresConnectionError("gone"),
        asyncpg.CannotConnectNowError("starting up"),
        asyncpg.SerializationError("could not serialize access"),
        asyncpg.DeadlockDetectedError("deadlock detected"),
        _dbapi(Exception("server closed the connection"), connection_invalidated=True),
        _dbapi(asyncpg.SerializationError("x")),
        _adapted(asyncpg.SerializationError("x")),
        _adapted(asyncpg.DeadlockDetectedError("x")),
        _adapted(asyncpg.ConnectionFailureError("x")),
        _adapted(asyncpg.CannotConnectNowError("x")),
    ],
    ids=lambda e: f"{type(e).__name__}:{type(getattr(e, 'orig', None)).__name__}",
)
def test_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad input"),
        KeyError("x"),
        PoisonMessage("never"),
        EnvelopeError("missing", header="ce_id"),
        DataValidationError("data does not match"),
        RuntimeError("bug"),
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.PostgresSyntaxError("syntax error"),
        sa_exc.IntegrityError("INSERT", {}, asyncpg.UniqueViolationError("dup")),  # type: ignore[arg-type]
        _dbapi(asyncpg.PostgresSyntaxError("syntax")),
        _adapted(asyncpg.UniqueViolationError("dup")),
        _adapted(asyncpg.InsufficientPrivilegeError("permission denied")),
    ],
    ids=lambda e: f"{type(e).__name__}:{type(getattr(e, 'orig', None)).__name__}",
)
def test_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)
