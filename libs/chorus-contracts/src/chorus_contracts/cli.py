"""Contracts tooling: `python -m chorus_contracts.cli {export,compat}`.

    export            write schemas/events/*.json and schemas/asyncapi/*.yaml
    export --check    write nothing; exit 1 listing drifted, missing or extra files
    compat            compare the models with the schemas in schemas/events/ (or --against
                      DIR, or --against-ref GIT_REF such as origin/main) using each event
                      type's compatibility mode from the registry; exit 1 on a break

Exit codes: 0 ok, 1 check failed, 2 usage or configuration error. Findings go to stdout,
progress and the summary to stderr.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from chorus_contracts.compat import check_event_schemas
from chorus_contracts.generate import check_generated, write_generated
from chorus_contracts.registry import RegistryError, load_registry
from chorus_contracts.schema_export import (
    EVENTS_DIRNAME,
    default_schemas_dir,
    event_schemas,
    load_committed_schemas,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def _cmd_export(args: argparse.Namespace) -> int:
    schemas_dir: Path = args.schemas_dir
    registry = load_registry(args.registry_dir)
    if args.check:
        drift = check_generated(schemas_dir, registry)
        for line in drift.lines():
            print(line)
        if drift.ok:
            _log(f"export: {schemas_dir} is up to date")
            return EXIT_OK
        _log(
            f"export: {len(drift.lines())} generated file(s) out of date;"
            " run `python -m chorus_contracts.cli export`"
        )
        return EXIT_FAILED
    if not args.allow_breaking:
        # The committed schemas are the published contract: refuse to overwrite them with an
        # incompatible version (the drift test then keeps the models from diverging silently).
        events_dir = schemas_dir / EVENTS_DIRNAME
        old = load_committed_schemas(events_dir) if events_dir.is_dir() else {}
        modes = {ev.type: ev.compatibility for _, ev in registry.event_types()}
        issues = check_event_schemas(old, event_schemas(registry), modes)
        if issues:
            for issue in issues:
                print(issue)
            _log(
                f"export: refused, {len(issues)} incompatible change(s); add a new type version"
                " (…v2) or pass --allow-breaking if nothing was ever published"
            )
            return EXIT_FAILED
    drift = write_generated(schemas_dir, registry)
    for rel in drift.changed + drift.missing:
        _log(f"wrote   {rel}")
    for rel in drift.extra:
        _log(f"removed {rel}")
    _log(f"export: {len(drift.lines())} file(s) changed under {schemas_dir}")
    return EXIT_OK


def _schemas_at_ref(ref: str, events_dir: Path) -> dict[str, dict]:
    """The committed schemas as they are at a git ref (e.g. the base branch of a PR)."""

    def git(cwd: Path, *argv: str) -> str:
        return subprocess.run(
            ["git", *argv], cwd=cwd, check=True, capture_output=True, text=True
        ).stdout

    top = Path(git(events_dir.parent, "rev-parse", "--show-toplevel").strip()).resolve()
    # Paths given to ls-tree are relative to the working directory: run from the top.
    rel = events_dir.resolve().relative_to(top).as_posix()
    out: dict[str, dict] = {}
    for name in git(top, "ls-tree", "-r", "--name-only", ref, "--", rel).splitlines():
        if name.endswith(".json"):
            text = git(top, "show", f"{ref}:{name}")
            out[Path(name).name.removesuffix(".json")] = json.loads(text)
    return out


def _cmd_compat(args: argparse.Namespace) -> int:
    registry = load_registry(args.registry_dir)
    events_dir = args.schemas_dir / EVENTS_DIRNAME
    if args.against_ref:
        try:
            old = _schemas_at_ref(args.against_ref, events_dir)
        except (subprocess.CalledProcessError, ValueError, OSError) as exc:
            _log(f"compat: cannot read schemas at {args.against_ref!r}: {exc}")
            return EXIT_USAGE
        baseline = f"{events_dir} at {args.against_ref}"
    else:
        against: Path = args.against or events_dir
        if not against.is_dir():
            _log(f"compat: {against} is not a directory")
            return EXIT_USAGE
        old = load_committed_schemas(against)
        baseline = str(against)
    if not old:
        _log(f"compat: warning: no baseline schemas in {baseline}; nothing to compare")
    new = event_schemas(registry)
    modes = {ev.type: ev.compatibility for _, ev in registry.event_types()}
    for ce_type in sorted(new.keys() - old.keys()):
        _log(f"new event type (nothing to compare): {ce_type}")
    issues = check_event_schemas(old, new, modes)
    for issue in issues:
        print(issue)
    compared = len(old.keys() & new.keys())
    if issues:
        _log(f"compat: {len(issues)} incompatibility(ies) against {baseline}")
        return EXIT_FAILED
    _log(f"compat: {compared} event type(s) compatible with {baseline}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chorus_contracts.cli", description="Chorus event contracts tooling."
    )
    parser.add_argument(
        "--schemas-dir",
        type=Path,
        default=None,
        help="the schemas/ directory (default: the checkout's)",
    )
    parser.add_argument(
        "--registry-dir",
        type=Path,
        default=None,
        help="topic registry (default: CHORUS_REGISTRY_DIR or schemas/topics)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write exported schemas and AsyncAPI documents")
    export.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if anything is out of date"
    )
    export.add_argument(
        "--allow-breaking",
        action="store_true",
        help="overwrite committed schemas even when the change is incompatible",
    )
    export.set_defaults(func=_cmd_export)
    compat = sub.add_parser("compat", help="check the models against committed schemas")
    source = compat.add_mutually_exclusive_group()
    source.add_argument("--against", type=Path, default=None, help="directory of baseline schemas")
    source.add_argument(
        "--against-ref", default=None, help="git ref whose schemas/events is the baseline"
    )
    compat.set_defaults(func=_cmd_compat)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.schemas_dir is None:
            args.schemas_dir = (
                args.registry_dir.parent if args.registry_dir else default_schemas_dir()
            )
        return int(args.func(args))
    except RegistryError as exc:
        _log(f"error: {exc}")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
