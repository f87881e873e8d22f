from chorus_publishing.tables import metadata
from chorus_runtime.db.migrate import run_env

run_env(metadata)
