"""`python -m chorus_runtime.topics_cli create|plan|replay-dlq`: Kafka topics, from the registry.

`create` is used by the compose `kafka-init` job and the Helm topics Job against real Kafka:
creates missing topics (and their DLQs) with the registry's partitions, retention and
cleanup policy; raises partition counts that are too low; never deletes anything.
`replay-dlq <topic>` republishes a topic's dead letters once their cause is fixed
(`chorus_runtime.dlq_replay`). Exit codes: 0 done, 1 failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from chorus_contracts.registry import Registry, load_registry, physical_name


@dataclass(frozen=True)
class TopicPlan:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


def plan(registry: Registry, prefix: str, replication_factor: int | None) -> list[TopicPlan]:
    out = []
    for spec in registry.topics.values():
        rf = replication_factor or spec.replication_factor
        out.append(
            TopicPlan(physical_name(prefix, spec.name), spec.partitions, rf, spec.kafka_config())
        )
        # Dead letters are rare: fewer partitions, kept long enough to investigate and replay.
        out.append(
            TopicPlan(
                physical_name(prefix, spec.dlq_name),
                1,
                rf,
                {"retention.ms": str(30 * 86_400_000), "cleanup.policy": "delete"},
            )
        )
    return out


def apply(bootstrap: str, topics: list[TopicPlan], *, timeout: float = 30.0) -> int:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=timeout).topics
    to_create = [t for t in topics if t.name not in existing]
    failures = 0
    if to_create:
        futures = admin.create_topics(
            [
                NewTopic(
                    t.name,
                    num_partitions=t.partitions,
                    replication_factor=t.replication_factor,
                    config=t.config,
                )
                for t in to_create
            ],
            operation_timeout=timeout,
        )
        for name, fut in futures.items():
            try:
                fut.result()
                print(f"created {name}", file=sys.stderr)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" in str(exc):
                    print(f"exists  {name}", file=sys.stderr)
                else:
                    failures += 1
                    print(f"FAILED  {name}: {exc}", file=sys.stderr)
    grow = [
        NewPartitions(t.name, t.partitions)
        for t in topics
        if t.name in existing and len(existing[t.name].partitions) < t.partitions
    ]
    if grow:
        for name, fut in admin.create_partitions(grow, operation_timeout=timeout).items():
            try:
                fut.result()
                print(f"grown   {name}", file=sys.stderr)
            except KafkaException as exc:
                failures += 1
                print(f"FAILED  {name}: {exc}", file=sys.stderr)
    for t in topics:
        if t.name in existing:
            print(f"ok      {t.name}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chorus-topics", description=__doc__)
    parser.add_argument("command", choices=["create", "plan", "replay-dlq"])
    parser.add_argument(
        "topic", nargs="?", help="replay-dlq: the logical topic, e.g. connector.commands"
    )
    parser.add_argument("--limit", type=int, default=None, help="replay-dlq: at most N records")
    parser.add_argument(
        "--max-replays", type=int, default=3, help="replay-dlq: leave records replayed N times"
    )
    parser.add_argument("--dry-run", action="store_true", help="replay-dlq: count, send nothing")
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("CHORUS_KAFKA_BOOTSTRAP_SERVERS", "")
    )
    parser.add_argument("--prefix", default=os.environ.get("CHORUS_TOPIC_PREFIX", ""))
    parser.add_argument(
        "--replication-factor",
        type=int,
        default=int(os.environ["CHORUS_TOPIC_REPLICATION_FACTOR"])
        if os.environ.get("CHORUS_TOPIC_REPLICATION_FACTOR")
        else None,
        help="override the registry's replication factor (e.g. 1 on a single broker)",
    )
    args = parser.parse_args(argv)
    registry = load_registry()
    if args.command == "replay-dlq":
        if args.topic not in registry.topics:
            parser.error(f"replay-dlq needs a registry topic, one of: {', '.join(registry.topics)}")
        if not args.bootstrap_servers:
            parser.error("--bootstrap-servers (or CHORUS_KAFKA_BOOTSTRAP_SERVERS) is required")
        return _replay(args)
    topics = plan(registry, args.prefix, args.replication_factor)
    if args.command == "plan":
        for t in topics:
            cfg = ",".join(f"{k}={v}" for k, v in sorted(t.config.items()))
            print(f"{t.name}\tpartitions={t.partitions}\trf={t.replication_factor}\t{cfg}")
        return 0
    if not args.bootstrap_servers:
        parser.error("--bootstrap-servers (or CHORUS_KAFKA_BOOTSTRAP_SERVERS) is required")
    return apply(args.bootstrap_servers, topics)


def _replay(args: argparse.Namespace) -> int:
    from chorus_runtime.dlq_replay import replay_dlq

    topic = physical_name(args.prefix, args.topic)
    try:
        report = asyncio.run(
            replay_dlq(
                args.bootstrap_servers,
                topic,
                limit=args.limit,
                max_replays=args.max_replays,
                dry_run=args.dry_run,
            )
        )
    except Exception as exc:
        print(f"replay of {topic}.dlq failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {report.replayed} record(s) from {topic}.dlq into {topic}", file=sys.stderr)
    if report.skipped:
        print(
            f"left {report.skipped} record(s) replayed {args.max_replays} times already "
            f"(partition, offset): {report.skipped_offsets[:20]}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
