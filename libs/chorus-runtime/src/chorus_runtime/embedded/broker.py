"""Embedded Kafka-protocol broker: librdkafka's mock cluster from the confluent-kafka wheel.

It speaks the real wire protocol and keeps data in memory. The cluster lives inside the
client that created it, so this object keeps polling it from a thread. CreateTopics is not
supported: topics are made to exist by asking for their metadata (auto-create, 4 partitions).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable

from confluent_kafka import Producer

_BOOTSTRAP = re.compile(r"bootstrap\.servers=([0-9.:,\[\]a-f]+)")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bootstrap: str | None = None
        self.found = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.bootstrap is None:
            m = _BOOTSTRAP.search(record.getMessage())
            if m:
                self.bootstrap = m.group(1)
                self.found.set()


class EmbeddedBroker:
    def __init__(self, *, num_brokers: int = 1) -> None:
        self._capture = _Capture()
        self._logger = logging.getLogger(f"chorus.embedded-broker.{id(self)}")
        self._logger.propagate = False
        self._logger.addHandler(self._capture)
        self._logger.setLevel(logging.DEBUG)
        self._producer = Producer(
            {
                "test.mock.num.brokers": num_brokers,
                "debug": "mock",
                "logger": self._logger,
                "allow.auto.create.topics": True,
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="embedded-broker", daemon=True)
        self._thread.start()
        if not self._capture.found.wait(15):
            self.close()
            raise RuntimeError("embedded broker did not report its bootstrap address")
        assert self._capture.bootstrap is not None
        self.bootstrap_servers: str = self._capture.bootstrap
        # After start-up the debug logs are noise.
        self._logger.setLevel(logging.WARNING)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def ensure_topics(self, names: Iterable[str], *, timeout: float = 10.0) -> list[str]:
        """Make topics exist (auto-create through a metadata request). Returns their names."""
        created = []
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                md = self._producer.list_topics(
                    topic=name, timeout=max(0.5, deadline - time.monotonic())
                )
                topic = md.topics.get(name)
                if topic is not None and topic.error is None and topic.partitions:
                    created.append(name)
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topic {name} not created")
                time.sleep(0.05)
        return created

    def partitions(self, name: str) -> int:
        md = self._producer.list_topics(topic=name, timeout=5)
        return len(md.topics[name].partitions)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self._producer.flush(1)
