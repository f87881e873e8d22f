"""Event models per domain. Importing this package registers them all in the catalog."""

from chorus_contracts.events import connector, gateway, identity, publishing

__all__ = ["connector", "gateway", "identity", "publishing"]
