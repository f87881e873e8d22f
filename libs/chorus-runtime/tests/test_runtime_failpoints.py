"""Failpoints: inert unless armed by CHORUS_FAILPOINTS; a crash is an immediate exit 137."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from chorus_runtime import failpoints
from chorus_runtime.failpoints import Action, failpoint, parse

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _disarmed() -> Iterator[None]:
    failpoints.arm("")
    yield
    failpoints.arm("")


def test_spec_names_points_and_actions() -> None:
    assert parse("") == {}
    assert parse(" a.b=crash , c.d=sleep:0.25,") == {
        "a.b": Action("crash"),
        "c.d": Action("sleep", 0.25),
    }


@pytest.mark.parametrize(
    "spec", ["a.b", "=crash", "a.b=explode", "a.b=sleep:", "a.b=sleep:soon", "a.b=sleep:-1"]
)
def test_a_malformed_spec_is_refused_not_ignored(spec: str) -> None:
    with pytest.raises(ValueError, match="CHORUS_FAILPOINTS"):
        parse(spec)


def test_unarmed_and_other_names_do_nothing() -> None:
    failpoint("publishing.dispatch.after_claim")
    failpoints.arm("something.else=crash")
    failpoint("publishing.dispatch.after_claim")  # still alive


def test_sleep_stalls_the_caller() -> None:
    failpoints.arm("here=sleep:0.2")
    started = time.monotonic()
    failpoint("here")
    assert time.monotonic() - started >= 0.2


def test_crash_exits_137_at_once_without_cleanup() -> None:
    code = (
        "import atexit; atexit.register(lambda: print('cleanup ran'));"
        "from chorus_runtime.failpoints import failpoint;"
        "failpoint('not.armed'); print('before', flush=True);"
        "failpoint('svc.point'); print('after')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "CHORUS_FAILPOINTS": "svc.point=crash"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 137
    assert done.stdout == "before\n", "nothing after the failpoint, no atexit handlers"
    assert "failpoint svc.point: crash" in done.stderr
