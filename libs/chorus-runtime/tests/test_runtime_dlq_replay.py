"""Dead-letter replay against the real Kafka protocol (embedded broker): records go back to
their topic with their original headers, resumably, and never loop forever."""

from __future__ import annotations

import pytest

from chorus_runtime.dlq_replay import REPLAYS_HEADER, replay_dlq, replay_headers
from chorus_runtime.topics_cli import main as topics_main
from chorus_testing.broker import BrokerProcess
from chorus_testing.kafka_io import produce_records, read_records


def dead_letter(i: int, replays: int = 0) -> tuple[list, bytes]:  # type: ignore[type-arg]
    headers = [
        ("ce_id", f"id-{i}".encode()),
        ("ce_type", b"chorus.test.thing.happened.v1"),
        ("dlq_error", b"ValueError: boom"),
        ("dlq_original_offset", str(i).encode()),
    ]
    if replays:
        headers.append((REPLAYS_HEADER, str(replays).encode()))
    return headers, f"value-{i}".encode()


@pytest.mark.unit
def test_replay_headers_strip_the_dlq_ones_and_count() -> None:
    headers, previous = replay_headers(
        [("ce_id", b"1"), ("dlq_error", b"x"), (REPLAYS_HEADER, b"2"), ("traceparent", b"t")]
    )
    assert previous == 2
    assert headers == [("ce_id", b"1"), ("traceparent", b"t"), (REPLAYS_HEADER, b"3")]
    # A count that is not a number is taken as "replayed too often": left and reported.
    _, garbled = replay_headers([(REPLAYS_HEADER, b"x1")])
    assert garbled >= 1_000


@pytest.mark.integration
async def test_replay_moves_dead_letters_back_once(
    kafka_broker: BrokerProcess, topic_prefix: str
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    topic = f"{topic_prefix}things"
    await produce_records(bootstrap, f"{topic}.dlq", [dead_letter(i) for i in range(3)])
    await produce_records(bootstrap, f"{topic}.dlq", [dead_letter(9, replays=3)])

    dry = await replay_dlq(bootstrap, topic, dry_run=True)
    assert (dry.replayed, dry.skipped) == (3, 1)

    report = await replay_dlq(bootstrap, topic, progress_every=1)
    assert (report.replayed, report.skipped) == (3, 1)
    assert report.skipped_offsets == [(0, 3)]
    back = await read_records(bootstrap, topic, expect=3, timeout=10, settle=0.5)
    assert [r.value for r in back] == [b"value-0", b"value-1", b"value-2"]
    for r in back:
        names = [k for k, _ in r.headers]
        assert not [n for n in names if n.startswith("dlq_") and n != REPLAYS_HEADER]
        assert dict(r.headers)[REPLAYS_HEADER] == b"1"
        assert r.key == b"k"

    again = await replay_dlq(bootstrap, topic)
    assert (again.replayed, again.skipped) == (0, 0), "the replay group remembers its place"
    await produce_records(bootstrap, f"{topic}.dlq", [dead_letter(4)])
    assert (await replay_dlq(bootstrap, topic)).replayed == 1, "only what is new"


@pytest.mark.integration
async def test_replay_of_an_empty_or_missing_dlq_is_nothing(
    kafka_broker: BrokerProcess, topic_prefix: str
) -> None:
    report = await replay_dlq(kafka_broker.bootstrap_servers, f"{topic_prefix}never")
    assert (report.replayed, report.skipped) == (0, 0)


@pytest.mark.unit
def test_cli_refuses_a_topic_outside_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        topics_main(["replay-dlq", "no.such.topic", "--bootstrap-servers", "127.0.0.1:9"])
    assert info.value.code == 2
    assert "connector.commands" in capsys.readouterr().err
