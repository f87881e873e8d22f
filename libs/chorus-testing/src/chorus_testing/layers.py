"""Test layers (design.md §8): every test names its layer with a marker, and the run ends
with a per-layer table of passed / failed / skipped (with the skip reasons)."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

LAYERS = ("unit", "component", "integration", "e2e", "docker")


def layer_of(item: pytest.Item) -> str | None:
    for name in LAYERS:
        if item.get_closest_marker(name) is not None:
            return name
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [i.nodeid for i in items if layer_of(i) is None]
    if unmarked:
        listing = "\n  ".join(unmarked[:20])
        raise pytest.UsageError(
            f"{len(unmarked)} test(s) name no layer marker ({', '.join(LAYERS)}):\n  {listing}"
        )
    for item in items:
        item.user_properties.append(("layer", layer_of(item)))


_counts: dict[str, Counter[str]] = defaultdict(Counter)
_skips: Counter[tuple[str, str]] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    layer = dict(report.user_properties).get("layer", "?")
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = report.outcome
        if report.when == "setup" and outcome == "failed":
            outcome = "error"
        _counts[str(layer)][outcome] += 1
        if outcome == "skipped" and isinstance(report.longrepr, tuple):
            _skips[(str(layer), str(report.longrepr[2]))] += 1
    elif report.when == "teardown" and report.outcome == "failed":
        _counts[str(layer)]["error"] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _counts:
        return
    tr = terminalreporter
    tr.section("Chorus test layers")
    tr.write_line(f"{'layer':<12}{'passed':>8}{'failed':>8}{'errors':>8}{'skipped':>9}")
    for layer in (*LAYERS, "?"):
        c = _counts.get(layer)
        if not c:
            continue
        tr.write_line(
            f"{layer:<12}{c['passed']:>8}{c['failed']:>8}{c['error']:>8}{c['skipped']:>9}"
        )
    for (layer, reason), n in sorted(_skips.items()):
        tr.write_line(f"  skipped {n} {layer}: {reason}")
