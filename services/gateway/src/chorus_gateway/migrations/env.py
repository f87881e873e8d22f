from chorus_gateway.tables import metadata
from chorus_runtime.db.migrate import run_env

run_env(metadata)
