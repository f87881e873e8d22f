"""The `make up` runner's command line: the options that keep test stacks apart from a
developer's and the guard that it never drops their databases."""

from __future__ import annotations

import pytest

from chorus_runtime.embedded.stack import main

pytestmark = pytest.mark.unit


def test_fresh_databases_refuse_to_run_without_a_suffix(
    capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["up", "--state-dir", str(tmp_path), "--fresh-databases"])
    assert info.value.code == 2
    assert "never drops your databases" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", ["-e2e", "_E2E", "_x; drop", "_" + "a" * 30])
def test_database_suffix_is_a_safe_identifier(
    suffix: str, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["status", "--state-dir", str(tmp_path), "--database-suffix", suffix])
    assert info.value.code == 2


def test_suffix_reaches_the_default_database_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from chorus_publishing.settings import PublishingSettings

    monkeypatch.setenv("CHORUS_DATABASE_NAME_SUFFIX", "_e2e")
    s = PublishingSettings()
    assert s.database_url.endswith("/chorus_publishing_e2e")
    assert "chorus_publishing_e2e_app@" in s.database_url
    assert s.migrations_url.endswith("/chorus_publishing_e2e")
