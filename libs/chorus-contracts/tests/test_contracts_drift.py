"""Generated files under schemas/ match the models and the registry, and the CLI works."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import create_model

from chorus_contracts import cli
from chorus_contracts.asyncapi import rendered_asyncapi, services
from chorus_contracts.events.publishing import PostDeleted
from chorus_contracts.generate import check_generated, generated_files, write_generated
from chorus_contracts.registry import load_registry
from chorus_contracts.schema_export import (
    SCHEMA_DIALECT,
    default_schemas_dir,
    event_schemas,
    model_schema,
    render_schema,
    rendered_event_schemas,
    schema_id,
)

pytestmark = pytest.mark.unit

SCHEMAS = default_schemas_dir()
FIX = "run `python -m chorus_contracts.cli export` and commit the result"


def test_committed_event_schemas_match_the_models() -> None:
    expected = rendered_event_schemas()
    on_disk = {p.name for p in (SCHEMAS / "events").glob("*.json")}
    assert on_disk - expected.keys() == set(), f"stale schema files; {FIX}"
    assert expected.keys() - on_disk == set(), f"missing schema files; {FIX}"
    for name, text in expected.items():
        assert (SCHEMAS / "events" / name).read_text() == text, f"{name} drifted; {FIX}"


def test_committed_asyncapi_documents_match_the_registry() -> None:
    expected = rendered_asyncapi()
    on_disk = {p.name for p in (SCHEMAS / "asyncapi").glob("*.yaml")}
    assert on_disk == expected.keys(), FIX
    for name, text in expected.items():
        assert (SCHEMAS / "asyncapi" / name).read_text() == text, f"{name} drifted; {FIX}"


def test_generate_check_is_clean() -> None:
    drift = check_generated(SCHEMAS)
    assert drift.ok, "\n".join([*drift.lines(), FIX])


def test_rendering_is_deterministic_and_canonical() -> None:
    first, second = generated_files(), generated_files()
    assert first == second
    for rel, text in first.items():
        assert text.endswith("\n") and not text.endswith("\n\n"), rel
        if rel.endswith(".json"):
            assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n", rel


def test_exported_schema_metadata() -> None:
    registry = load_registry()
    for ce_type, schema in event_schemas(registry).items():
        assert schema["$schema"] == SCHEMA_DIALECT
        assert schema["$id"] == f"https://chorus.dev/schemas/events/{ce_type}.json"
        assert schema["$id"] == schema_id(ce_type)
        assert schema["x-topic"] == registry.topic_for_type(ce_type).name
        assert schema["title"] and schema["description"]
        assert schema["type"] == "object"
        # camelCase on the wire, like EventData.to_data().
        assert all("_" not in name for name in schema["properties"]), ce_type


def _copy_schemas(tmp_path: Path) -> Path:
    root = tmp_path / "schemas"
    for sub in ("topics", "events", "asyncapi"):
        shutil.copytree(SCHEMAS / sub, root / sub)
    return root


def test_drift_detection_reports_changed_missing_and_extra(tmp_path: Path) -> None:
    root = _copy_schemas(tmp_path)
    assert check_generated(root).ok
    changed = root / "events" / "chorus.publishing.post.deleted.v1.json"
    changed.write_text(changed.read_text().replace('"fromPlatforms"', '"fromPlatform"'))
    (root / "events" / "chorus.identity.member.removed.v1.json").unlink()
    (root / "asyncapi" / "gateway.yaml").write_text("asyncapi: 3.0.0\n")
    (root / "events" / "chorus.old.thing.happened.v1.json").write_text("{}\n")
    (root / "events" / "README.md").write_text("not generated, left alone\n")

    drift = check_generated(root)
    assert drift.changed == [
        "asyncapi/gateway.yaml",
        "events/chorus.publishing.post.deleted.v1.json",
    ]
    assert drift.missing == ["events/chorus.identity.member.removed.v1.json"]
    assert drift.extra == ["events/chorus.old.thing.happened.v1.json"]

    fixed = write_generated(root)
    assert fixed.lines() == drift.lines()
    assert check_generated(root).ok
    assert (root / "events" / "README.md").exists()


def test_model_change_shows_up_as_drift() -> None:
    """Changing a model (here: a copy with one more field) changes the exported text."""
    ce_type = "chorus.publishing.post.deleted.v1"
    committed = (SCHEMAS / "events" / f"{ce_type}.json").read_text()
    same = model_schema(PostDeleted, ce_type, topic="publishing.posts")
    assert render_schema(same) == committed
    changed = create_model("PostDeleted", __base__=PostDeleted, reason=(str | None, None))
    assert render_schema(model_schema(changed, ce_type, topic="publishing.posts")) != committed


# --- CLI -----------------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_export_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy_schemas(tmp_path)
    code, out, err = _run(capsys, "--schemas-dir", str(root), "export", "--check")
    assert (code, out) == (0, "")
    assert "up to date" in err

    (root / "events" / "chorus.identity.member.removed.v1.json").unlink()
    (root / "asyncapi" / "sandbox.yaml").write_text("stale\n")
    code, out, err = _run(capsys, "--schemas-dir", str(root), "export", "--check")
    assert code == 1
    assert out.splitlines() == [
        "missing: events/chorus.identity.member.removed.v1.json",
        "extra:   asyncapi/sandbox.yaml",
    ]
    assert "out of date" in err
    assert not (root / "events" / "chorus.identity.member.removed.v1.json").exists()

    code, out, err = _run(capsys, "--schemas-dir", str(root), "export")
    assert code == 0
    assert "wrote   events/chorus.identity.member.removed.v1.json" in err
    assert "removed asyncapi/sandbox.yaml" in err
    assert _run(capsys, "--schemas-dir", str(root), "export", "--check")[0] == 0


def test_cli_compat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "compat")
    assert (code, out) == (0, "")
    assert "compatible" in err

    # A baseline where the type still had a required field the current model lacks.
    base = tmp_path / "base"
    shutil.copytree(SCHEMAS / "events", base)
    path = base / "chorus.publishing.post.deleted.v1.json"
    doc: dict[str, Any] = json.loads(path.read_text())
    doc["properties"]["reason"] = {"type": "string"}
    doc["required"].append("reason")
    path.write_text(json.dumps(doc))
    code, out, err = _run(capsys, "compat", "--against", str(base))
    assert code == 1
    assert out.splitlines() == [
        "chorus.publishing.post.deleted.v1: $.reason: property 'reason' removed"
        " [backward, property-removed]"
    ]
    assert "1 incompatibility" in err

    code, _, err = _run(capsys, "compat", "--against", str(tmp_path / "nope"))
    assert code == 2


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["frobnicate"], ["export", "--bogus"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
    capsys.readouterr()


def test_cli_registry_error_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "topics").mkdir()
    code, _, err = _run(capsys, "--registry-dir", str(tmp_path / "topics"), "export", "--check")
    assert code == 2
    assert "no topic files" in err


# --- AsyncAPI ------------------------------------------------------------------------------


def _pointer(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_asyncapi_documents_are_consistent_with_the_registry() -> None:
    registry = load_registry()
    assert [p.stem for p in sorted((SCHEMAS / "asyncapi").glob("*.yaml"))] == services(registry)
    for service in services(registry):
        doc = yaml.safe_load((SCHEMAS / "asyncapi" / f"{service}.yaml").read_text())
        assert doc["asyncapi"] == "3.0.0"
        for ref in _refs(doc):  # every reference resolves: in-document or to an exported file
            if ref.startswith("#/"):
                _pointer(doc, ref)
            else:
                assert (SCHEMAS / "asyncapi" / ref).resolve().is_file(), ref
        sends = {
            op["channel"]["$ref"].split("/")[-1]
            for op in doc["operations"].values()
            if op["action"] == "send"
        }
        receives = {
            op["channel"]["$ref"].split("/")[-1]
            for op in doc["operations"].values()
            if op["action"] == "receive"
        }
        assert sends == {t.name for t in registry.produced_by(service)}
        assert receives == {t.name for t in registry.consumed_by(service)}
        for name in sends | receives:
            topic = registry.topic(name)
            channel = doc["channels"][name]
            kafka = channel["bindings"]["kafka"]
            assert kafka["partitions"] == topic.partitions
            assert kafka["topicConfiguration"]["retention.ms"] == topic.retention_ms
            assert list(channel["messages"]) == list(topic.event_types)
            for ce_type in topic.event_types:
                message = doc["components"]["messages"][ce_type]
                assert message["payload"]["schema"]["$ref"] == f"../events/{ce_type}.json"
                assert topic.key in message["bindings"]["kafka"]["key"]["description"]
        headers = doc["components"]["schemas"]["CloudEventHeaders"]
        assert {"ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time"} <= set(
            headers["required"]
        )
        assert {"ce_subject", "ce_tenantid", "traceparent", "content-type"} <= set(
            headers["properties"]
        )


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_cli_compat_against_git_ref(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--against-ref` reads the baseline from history, e.g. the PR's base branch."""
    import subprocess

    root = _copy_schemas(tmp_path)

    def git(*argv: str) -> None:
        subprocess.run(["git", *argv], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    path = root / "events" / "chorus.publishing.post.deleted.v1.json"
    doc: dict[str, Any] = json.loads(path.read_text())
    doc["$defs"] = {"Mode": {"type": "string", "enum": ["soft"]}}
    doc["properties"]["fromPlatforms"] = {"$ref": "#/$defs/Mode"}
    path.write_text(json.dumps(doc))
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base")
    ok = _run(capsys, "--schemas-dir", str(root), "compat", "--against-ref", "HEAD")
    assert ok[0] == 1
    assert "$.fromPlatforms: type narrowed: string is no longer accepted" in ok[1]
    assert _run(capsys, "--schemas-dir", str(root), "compat", "--against-ref", "nope")[0] == 2
