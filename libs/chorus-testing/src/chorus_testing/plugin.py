"""pytest plugin shared by every Chorus test suite (loaded with `-p chorus_testing.plugin`).

Fixtures: real Postgres databases per test (cloned from a migrated template), Redis, one
embedded Kafka-protocol broker per session, JWT signing, and a Docker probe that skips
`docker` tests with the reason shown. Layers: see `layers.py`.
"""

from chorus_testing.fixtures import *  # noqa: F403
from chorus_testing.layers import (  # noqa: F401
    pytest_collection_modifyitems,
    pytest_runtest_logreport,
    pytest_terminal_summary,
)
