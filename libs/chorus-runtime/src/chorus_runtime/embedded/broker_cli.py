"""`chorus-broker`: run the embedded broker in the foreground for `make up` and tests.

Prints `bootstrap.servers=HOST:PORT` on stdout once the registry's topics (and their DLQs)
exist, writes it to `--ready-file` if given, and exits cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from chorus_contracts.registry import load_registry, physical_name
from chorus_runtime.embedded.broker import EmbeddedBroker


def registry_topics(prefix: str) -> list[str]:
    names: list[str] = []
    for spec in load_registry().topics.values():
        names += [physical_name(prefix, spec.name), physical_name(prefix, spec.dlq_name)]
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chorus-broker", description=__doc__)
    parser.add_argument("--prefix", default=os.environ.get("CHORUS_TOPIC_PREFIX", ""))
    parser.add_argument("--ready-file", type=Path, help="write the bootstrap address here")
    parser.add_argument("--no-topics", action="store_true", help="skip creating registry topics")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    broker = EmbeddedBroker()
    try:
        topics = [] if args.no_topics else broker.ensure_topics(registry_topics(args.prefix))
        print(f"embedded broker: {len(topics)} topics ready", file=sys.stderr, flush=True)
        line = f"bootstrap.servers={broker.bootstrap_servers}"
        if args.ready_file:
            args.ready_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = args.ready_file.with_suffix(".tmp")
            tmp.write_text(broker.bootstrap_servers + "\n")
            tmp.replace(args.ready_file)
        print(line, flush=True)
        stop.wait()
    finally:
        broker.close()
        if args.ready_file:
            args.ready_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
