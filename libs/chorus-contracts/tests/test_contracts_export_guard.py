"""`export` refuses to overwrite a published schema with an incompatible one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from chorus_contracts.cli import main

pytestmark = pytest.mark.unit

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
TYPE = "chorus.identity.workspace.created.v1"


def _published_with_extra_field(tmp_path: Path) -> Path:
    """A copy of the committed schemas where the published version had one more field,
    i.e. the current model has removed a field that readers may rely on."""
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS / "events", target / "events")
    path = target / "events" / f"{TYPE}.json"
    schema = json.loads(path.read_text())
    schema["properties"]["legacyField"] = {"type": "string"}
    path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    return target


def test_export_refuses_an_incompatible_change(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    schemas = _published_with_extra_field(tmp_path)
    before = (schemas / "events" / f"{TYPE}.json").read_text()
    assert main(["--schemas-dir", str(schemas), "export"]) == 1
    assert "legacyField" in capsys.readouterr().out
    assert (schemas / "events" / f"{TYPE}.json").read_text() == before, "nothing was written"


def test_export_allow_breaking_overwrites(tmp_path: Path) -> None:
    schemas = _published_with_extra_field(tmp_path)
    assert main(["--schemas-dir", str(schemas), "export", "--allow-breaking"]) == 0
    assert "legacyField" not in (schemas / "events" / f"{TYPE}.json").read_text()
    assert main(["--schemas-dir", str(schemas), "export", "--check"]) == 0
