"""The embedded broker as a child process, shared by a test session.

A separate process (not a thread in the test process) so tests can freeze it with SIGSTOP
to simulate an outage, exactly as a real broker would disappear.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import Producer


class BrokerProcess:
    def __init__(self, proc: subprocess.Popen[bytes], bootstrap: str) -> None:
        self.proc = proc
        self.bootstrap_servers = bootstrap

    @classmethod
    def start(cls, timeout: float = 30.0) -> BrokerProcess:
        ready = Path(tempfile.mkdtemp(prefix="chorus-broker-")) / "bootstrap"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chorus_runtime.embedded.broker_cli",
                "--no-topics",
                "--ready-file",
                str(ready),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("embedded broker failed to start")
            time.sleep(0.05)
        return cls(proc, ready.read_text().strip())

    def ensure_topics(self, names: Iterable[str], timeout: float = 10.0) -> None:
        client = Producer({"bootstrap.servers": self.bootstrap_servers})
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                md = client.list_topics(topic=name, timeout=5)
                t = md.topics.get(name)
                if t is not None and t.error is None and t.partitions:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topic {name} not created")
                time.sleep(0.05)

    def pause(self) -> None:
        """Freeze the broker: connections hang, as in a network partition."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
