"""Pure rules: periods, formulas, series, the best-time grid, SQL scoping, settings, readers."""

from __future__ import annotations

import re
import uuid
from datetime import date

import pytest

from chorus_analytics import queries, readers
from chorus_analytics.domain import (
    Cell,
    InvalidRange,
    Period,
    best_time,
    change,
    engagement_of,
    engagement_rate,
    follower_series,
    gained_lost,
    resolve_period,
    resolve_periods,
)
from chorus_analytics.exports import COLUMNS, Dataset, Encoder, Format
from chorus_analytics.settings import EMBEDDED_CLICKHOUSE_URL, AnalyticsSettings
from chorus_runtime.settings import SettingsError

pytestmark = pytest.mark.unit

TODAY = date(2025, 3, 31)


def test_periods_default_to_the_last_30_days_and_compare_with_the_one_before() -> None:
    current, compare = resolve_periods(None, None, None, None, today=TODAY, max_days=366)
    assert current == Period(date(2025, 3, 2), date(2025, 3, 31))
    assert compare == Period(date(2025, 1, 31), date(2025, 3, 1))
    assert current.days == compare.days == 30
    week = resolve_period(date(2025, 3, 8), date(2025, 3, 14), today=TODAY, max_days=366)
    assert week.previous() == Period(date(2025, 3, 1), date(2025, 3, 7))
    assert resolve_period(date(2025, 3, 8), None, today=TODAY, max_days=366).days == 30


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((date(2025, 3, 9), date(2025, 3, 8), None, None), "startDate"),
        ((date(2024, 1, 1), date(2025, 3, 8), None, None), "endDate"),
        ((None, None, date(2025, 1, 1), None), "compareEndDate"),
        ((None, None, None, date(2025, 1, 1)), "compareStartDate"),
        ((None, None, date(2025, 1, 2), date(2025, 1, 1)), "compareStartDate"),
    ],
)
def test_invalid_ranges(args: tuple[date | None, ...], field: str) -> None:
    with pytest.raises(InvalidRange) as err:
        resolve_periods(*args, today=TODAY, max_days=366)
    assert err.value.field == field


def test_change_and_rates() -> None:
    assert change(110, 100) == {
        "current": 110,
        "previous": 100,
        "change": 10,
        "changePercent": 10.0,
    }
    assert change(0, 0)["changePercent"] == 0.0
    assert change(5, 0)["changePercent"] is None
    assert change(1, 3)["changePercent"] == -66.67
    assert engagement_of({"likes": 1, "comments": 2, "shares": 3, "saves": 4, "clicks": 99}) == 10
    assert engagement_rate(1, 3) == 33.33
    assert engagement_rate(5, 0) == 0.0


def test_follower_series_carries_values_forward_and_ignores_first_snapshots() -> None:
    period = Period(date(2025, 3, 1), date(2025, 3, 4))
    points = [("a", date(2025, 3, 2), 90), ("b", date(2025, 3, 3), 10), ("b", date(2025, 3, 4), 15)]
    series = follower_series(period, points, {"a": 100})
    assert [(p["followers"], p["change"]) for p in series] == [
        (100, 0),
        (90, -10),
        (100, 0),
        (105, 5),
    ]
    assert [(d["gained"], d["lost"]) for d in gained_lost(series)] == [
        (0, 0),
        (0, 10),
        (0, 0),
        (5, 0),
    ]


def test_the_best_time_grid_is_complete_and_ranks_eligible_slots() -> None:
    cells = [Cell(1, 9, 4, 40, 400), Cell(2, 10, 1, 90, 100), Cell(3, 8, 5, 30, 200)]
    grid, top = best_time(cells, min_samples=3, top=5)
    assert len(grid) == 168
    assert [(g["weekday"], g["hour"]) for g in grid[:2]] == [(1, 0), (1, 1)]
    assert [(t["weekday"], t["hour"], t["engagementRate"]) for t in top] == [
        (3, 8, 15.0),
        (1, 9, 10.0),
    ]


def test_every_statement_is_scoped_to_the_callers_workspace() -> None:
    assert len(queries.ALL_STATEMENTS) > 15
    for name, sql in queries.ALL_STATEMENTS.items():
        assert "workspace_id = {ws:UUID}" in sql, name
        # Values are bound, never formatted in: no quoted literals besides fixed words.
        for literal in re.findall(r"'([^']*)'", sql):
            assert literal in {"", "succeeded", "deleted", "workspace_id"}, (name, literal)


def test_settings_embedded_default_and_production_requirement() -> None:
    s = AnalyticsSettings(mode="embedded", topic_prefix="")
    assert s.clickhouse_url == EMBEDDED_CLICKHOUSE_URL and s.embedded_clickhouse
    e2e = AnalyticsSettings(mode="embedded", topic_prefix="e2e.")
    assert e2e.clickhouse_url == EMBEDDED_CLICKHOUSE_URL + "-e2e", "one store per deployment"
    assert s.port == 8005 and not AnalyticsSettings.needs_database()
    assert (s.ingest_batch_max_rows, s.ingest_batch_max_seconds) == (10_000, 1.0)
    with pytest.raises(SettingsError, match="CHORUS_ANALYTICS_CLICKHOUSE_URL"):
        AnalyticsSettings(mode="production")
    prod = AnalyticsSettings(mode="production", clickhouse_url="clickhouse://u:p@ch:8123/")
    assert not prod.embedded_clickhouse
    with pytest.raises(ValueError):
        AnalyticsSettings(clickhouse_database="x; DROP")


def test_reader_names_and_statements() -> None:
    ws = uuid.UUID("01955b80-74a0-721a-a30e-03772a58aff1")
    user = readers.reader_user(ws, "bi")
    assert user == "ws_01955b8074a0721aa30e03772a58aff1_bi"
    assert readers.workspace_of(user) == ws
    assert readers.workspace_of("default") is None
    with pytest.raises(readers.ReaderError):
        readers.reader_user(ws, "Robert'); DROP")
    statements = readers.grant_statements("db", user, ws, ["events", "audit_log"], ["posts"])
    assert statements[:3] == [
        f"GRANT SELECT ON `db`.`events` TO `{user}`",
        f"GRANT SELECT ON `db`.`audit_log` TO `{user}`",
        f"GRANT SELECT ON `db`.`posts` TO `{user}`",
    ]
    assert statements[3] == (
        f"CREATE ROW POLICY OR REPLACE `chorus_reader_{user}` ON `db`.`events` FOR SELECT "
        f"USING workspace_id = toUUID('{ws}') AS PERMISSIVE TO `{user}`"
    )
    assert len(statements) == 5, "policies on tables only (a view reads through its tables)"
    everyone = readers.unrestricted_statements("db", ["events"], [user])
    assert everyone == [
        "CREATE ROW POLICY OR REPLACE `chorus_unrestricted` ON `db`.`events` FOR SELECT "
        f"USING 1 AS PERMISSIVE TO ALL EXCEPT `{user}`"
    ]


def test_csv_and_jsonl_encoding() -> None:
    rows = [{"date": date(2025, 3, 1), "accountId": "a", "platform": "x", "followers": 1,
             "following": 2, "posts": 3}]  # fmt: skip
    csv_encoder = Encoder(Format.CSV, COLUMNS[Dataset.ACCOUNTS])
    assert csv_encoder.header() == "date,accountId,platform,followers,following,posts\n"
    assert csv_encoder.encode(rows) == "2025-03-01,a,x,1,2,3\n"
    jsonl = Encoder(Format.JSONL, COLUMNS[Dataset.ACCOUNTS])
    assert jsonl.header() == ""
    assert jsonl.encode(rows) == (
        '{"date": "2025-03-01", "accountId": "a", "platform": "x", "followers": 1, '
        '"following": 2, "posts": 3}\n'
    )
